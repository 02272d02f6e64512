//! Index keys: PostgreSQL Datums of the supported types <-> the core's u64
//! keys, whose unsigned order is the SQL order.
//!
//! All integer types share the i64 domain and all float types the f64 domain,
//! so cross-type comparisons (an int8 column against an int4 constant) need no
//! conversion functions. NULLs are stored as key `u64::MAX` with the top bit of
//! the TID's offset set (real heap offsets never use it). A real key can also
//! map to `u64::MAX` (int8's maximum), so scans tell the two apart by the flag
//! and return NULLs last (first, backward), as PostgreSQL orders them.

use alex::{Key, Tid};
use pgrx::pg_sys::{self, Datum, Oid};

pub const NULL_KEY: u64 = u64::MAX;
const NULL_FLAG: u16 = 0x8000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Date,
    Timestamp,
    TimestampTz,
}

/// The names users see in the unsupported-type error.
pub const SUPPORTED: &str =
    "smallint, integer, bigint, real, double precision, date, timestamp, timestamptz";

impl KeyType {
    pub fn from_type(oid: Oid) -> Option<KeyType> {
        Some(match oid {
            pg_sys::INT2OID => KeyType::Int2,
            pg_sys::INT4OID => KeyType::Int4,
            pg_sys::INT8OID => KeyType::Int8,
            pg_sys::FLOAT4OID => KeyType::Float4,
            pg_sys::FLOAT8OID => KeyType::Float8,
            pg_sys::DATEOID => KeyType::Date,
            pg_sys::TIMESTAMPOID => KeyType::Timestamp,
            pg_sys::TIMESTAMPTZOID => KeyType::TimestampTz,
            _ => return None,
        })
    }

    /// The key type of an alex index (its operator class's input type).
    pub fn of_index(index: pg_sys::Relation) -> KeyType {
        // SAFETY: an open index relation has rd_opcintype for each key column.
        let oid = unsafe { *(*index).rd_opcintype };
        KeyType::from_type(oid).unwrap_or_else(|| {
            crate::error::error_with_hint(
                pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "alex index \"{}\": column type {} is not supported",
                    super::relation_name(index),
                    type_name(index)
                ),
                format!("alex indexes support {SUPPORTED}; use btree for other types."),
            )
        })
    }

    /// Tag recorded in the metapage.
    pub fn kind_tag(self) -> u32 {
        100 + self as u32
    }

    fn is_float(self) -> bool {
        matches!(self, KeyType::Float4 | KeyType::Float8)
    }

    /// Encode a non-NULL datum of this type.
    pub fn encode(self, d: Datum) -> u64 {
        let v = d.value();
        match self {
            KeyType::Int2 => (v as i16 as i64).to_ordered_u64(),
            KeyType::Int4 | KeyType::Date => (v as i32 as i64).to_ordered_u64(),
            KeyType::Int8 | KeyType::Timestamp | KeyType::TimestampTz => {
                (v as i64).to_ordered_u64()
            }
            KeyType::Float4 => (f32::from_bits(v as u32) as f64).to_ordered_u64(),
            KeyType::Float8 => f64::from_bits(v as u64).to_ordered_u64(),
        }
    }

    /// The datum for a key, for index tuples handed to index-only scans.
    /// Exact for integer and date/time types; floats are None (-0 and 0
    /// share a key), so amcanreturn is false for them.
    pub fn decode(self, key: u64) -> Option<Datum> {
        let i = i64::from_ordered_u64(key);
        Some(match self {
            KeyType::Int2 => Datum::from(i as i16),
            KeyType::Int4 | KeyType::Date => Datum::from(i as i32),
            KeyType::Int8 | KeyType::Timestamp | KeyType::TimestampTz => Datum::from(i),
            KeyType::Float4 | KeyType::Float8 => return None,
        })
    }

    /// A datum of this type whose value is `key`'s, for messages (a float
    /// key of -0 reads as 0, which equals it).
    pub fn describable(self, key: u64) -> Datum {
        match self {
            KeyType::Float4 => Datum::from((f64::from_ordered_u64(key) as f32).to_bits() as usize),
            KeyType::Float8 => Datum::from(f64::from_ordered_u64(key).to_bits() as usize),
            _ => self.decode(key).unwrap_or(Datum::from(0)),
        }
    }

    /// Encode a comparison argument of type `arg_type` (a cross-type operator's
    /// right-hand side) into this index's key domain.
    pub fn encode_arg(self, arg_type: Oid, d: Datum) -> Option<u64> {
        let arg = if arg_type == pg_sys::InvalidOid {
            self
        } else {
            KeyType::from_type(arg_type)?
        };
        let same_domain = arg.is_float() == self.is_float()
            && matches!(arg, KeyType::Date) == matches!(self, KeyType::Date)
            && matches!(arg, KeyType::Timestamp) == matches!(self, KeyType::Timestamp)
            && matches!(arg, KeyType::TimestampTz) == matches!(self, KeyType::TimestampTz);
        same_domain.then(|| arg.encode(d))
    }
}

/// The SQL name of an index's key column type.
fn type_name(index: pg_sys::Relation) -> String {
    // SAFETY: the index's tuple descriptor has one attribute.
    unsafe {
        let att = (*(*index).rd_att).attrs.as_ptr();
        let name = pg_sys::format_type_be((*att).atttypid);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The stored TID for a heap TID, with the NULL flag when the value is NULL.
pub fn entry_tid(heap_tid: &pg_sys::ItemPointerData, is_null: bool) -> Tid {
    if heap_tid.ip_posid & NULL_FLAG != 0 {
        crate::error::error(
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "alex cannot index a row whose tuple offset {} is 32768 or more",
                heap_tid.ip_posid
            ),
        );
    }
    let block = ((heap_tid.ip_blkid.bi_hi as u32) << 16) | heap_tid.ip_blkid.bi_lo as u32;
    let offset = heap_tid.ip_posid | if is_null { NULL_FLAG } else { 0 };
    Tid::new(block, offset)
}

pub fn is_null_entry(key: u64, tid: Tid) -> bool {
    key == NULL_KEY && tid.offset & NULL_FLAG != 0
}

/// The heap TID an entry points to.
pub fn heap_tid(tid: Tid) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData {
            bi_hi: (tid.block >> 16) as u16,
            bi_lo: tid.block as u16,
        },
        ip_posid: tid.offset & !NULL_FLAG,
    }
}
