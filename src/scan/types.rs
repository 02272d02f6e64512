//! PostgreSQL types the DataFusion scan computes on, and their Arrow forms.
//!
//! Dates and timestamps stay PostgreSQL's own day and microsecond counts
//! (epoch 2000-01-01, infinities as the extreme values) in Int32 / Int64
//! arrays: every operation on them is translated by us, so nothing shifts
//! epochs or can overflow. `char(n)` is Utf8 without trailing blanks (how
//! PostgreSQL compares it); output pads it again.

use datafusion::arrow::datatypes::DataType;
use omendb_columnar::logical::Logical;
use pgrx::pg_sys;

/// Largest Decimal128 precision.
pub const MAX_PRECISION: u8 = 38;

/// A PostgreSQL type we can represent exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pg {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric with a known display scale for every value: Decimal128.
    Numeric {
        precision: u8,
        scale: i8,
    },
    /// numeric whose display scale varies per value (division, avg): a
    /// struct of the unscaled value and its scale.
    DynNumeric,
    /// numeric values of several display scales, at most this one (CASE or
    /// COALESCE of numerics of different scales), represented as DynNumeric.
    MixedNumeric(i8),
    Text,
    /// char(n); n = -1 for bpchar without a length.
    BpChar(i32),
    Varchar,
    Date,
    Timestamp,
    TimestampTz,
}

impl Pg {
    /// The type of a value of PostgreSQL type `oid` with `typmod`, or why
    /// there is none.
    pub fn of(oid: pg_sys::Oid, typmod: i32) -> Result<Pg, String> {
        Ok(match oid {
            pg_sys::BOOLOID => Pg::Bool,
            pg_sys::INT2OID => Pg::Int2,
            pg_sys::INT4OID => Pg::Int4,
            pg_sys::INT8OID => Pg::Int8,
            pg_sys::FLOAT4OID => Pg::Float4,
            pg_sys::FLOAT8OID => Pg::Float8,
            pg_sys::NUMERICOID => {
                if typmod < 4 {
                    return Err("numeric without a precision and scale".into());
                }
                let t = typmod - 4; // VARHDRSZ
                                    // Checked before narrowing: PostgreSQL allows precision up
                                    // to 1000 and scale from -1000 to 1000.
                let precision = (t >> 16) & 0xffff;
                let scale = ((t & 0x7ff) ^ 1024) - 1024;
                if precision > i32::from(MAX_PRECISION) || scale < 0 || scale > precision {
                    return Err(format!("numeric({precision},{scale})"));
                }
                Pg::Numeric {
                    precision: precision as u8,
                    scale: scale as i8,
                }
            }
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID if !utf8_database() => {
                return Err("text in a database whose encoding is not UTF8".into());
            }
            pg_sys::TEXTOID => Pg::Text,
            pg_sys::VARCHAROID => Pg::Varchar,
            pg_sys::BPCHAROID => Pg::BpChar(if typmod >= 4 { typmod - 4 } else { -1 }),
            pg_sys::DATEOID => Pg::Date,
            pg_sys::TIMESTAMPOID => Pg::Timestamp,
            pg_sys::TIMESTAMPTZOID => Pg::TimestampTz,
            _ => return Err(format!("type {}", type_name(oid))),
        })
    }

    pub fn arrow(self) -> DataType {
        match self {
            Pg::Bool => DataType::Boolean,
            Pg::Int2 => DataType::Int16,
            Pg::Int4 | Pg::Date => DataType::Int32,
            Pg::Int8 | Pg::Timestamp | Pg::TimestampTz => DataType::Int64,
            Pg::Float4 => DataType::Float32,
            Pg::Float8 => DataType::Float64,
            Pg::Numeric { precision, scale } => DataType::Decimal128(precision, scale),
            Pg::DynNumeric | Pg::MixedNumeric(_) => super::functions::dyn_numeric(),
            Pg::Text | Pg::Varchar | Pg::BpChar(_) => DataType::Utf8,
        }
    }

    /// How a stored column of this type is presented (see `crates/columnar`).
    pub fn logical(self) -> Logical {
        match self {
            Pg::Numeric { precision, scale } => Logical::Numeric { precision, scale },
            Pg::Text | Pg::Varchar => Logical::Text,
            Pg::BpChar(_) => Logical::BpChar,
            _ => Logical::Stored,
        }
    }

    /// A numeric whose display scale varies per value.
    pub fn is_dyn(self) -> bool {
        matches!(self, Pg::DynNumeric | Pg::MixedNumeric(_))
    }

    pub fn is_int(self) -> bool {
        matches!(self, Pg::Int2 | Pg::Int4 | Pg::Int8)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Pg::Float4 | Pg::Float8)
    }

    pub fn is_text(self) -> bool {
        matches!(self, Pg::Text | Pg::Varchar | Pg::BpChar(_))
    }
}

/// Arrow strings are UTF-8; so must the database's text be.
fn utf8_database() -> bool {
    // SAFETY: reads the backend's database encoding.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

/// A type's name, for messages.
pub fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be works for any OID (it prints ??? for unknown ones).
    unsafe {
        let p = pg_sys::format_type_be(oid);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
