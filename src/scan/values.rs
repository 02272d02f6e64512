//! PostgreSQL datums <-> Arrow values, on the main thread: constants and
//! parameters going in, result batches coming out (straight into the
//! virtual slot's `tts_values` / `tts_isnull`).

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use omendb_columnar::logical::{i128_to_numeric, numeric_to_i128};
use pgrx::pg_sys;

use super::translate::{Unsupported, R};
use super::types::Pg;

/// The display scale stored in a numeric payload.
fn numeric_dscale(payload: &[u8]) -> Option<i8> {
    let h = u16::from_le_bytes([*payload.first()?, *payload.get(1)?]);
    let d = match h & 0xC000 {
        0xC000 => return None,
        0x8000 => (h & 0x1F80) >> 7,
        _ => h & 0x3FFF,
    };
    i8::try_from(d).ok()
}

/// A varlena datum's payload (detoasted into the current memory context).
unsafe fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: `d` is a varlena datum.
    unsafe {
        let p = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        let len = pgrx::varlena::varsize_any_exhdr(p);
        let data = pgrx::varlena::vardata_any(p) as *const u8;
        std::slice::from_raw_parts(data, len)
    }
}

/// A constant or parameter as a DataFusion literal of `pg`'s Arrow type.
/// Numeric constants keep their own scale (`Pg::Numeric` with precision 0
/// asks for it).
pub unsafe fn datum_to_scalar(
    d: pg_sys::Datum,
    isnull: bool,
    oid: pg_sys::Oid,
    pg: Pg,
) -> R<ScalarValue> {
    if isnull {
        if let Pg::Numeric { precision: 0, .. } = pg {
            return Ok(ScalarValue::Decimal128(None, 1, 0));
        }
        return Ok(ScalarValue::try_from(&pg.arrow())?);
    }
    let w = d.value() as u64;
    let _ = oid;
    // SAFETY: `d` is a datum of type `oid`.
    Ok(unsafe {
        match pg {
            Pg::DynNumeric | Pg::MixedNumeric(_) => {
                return Err(Unsupported("a per-value-scale numeric constant".into()))
            }
            Pg::Bool => ScalarValue::Boolean(Some(w & 1 != 0)),
            Pg::Int2 => ScalarValue::Int16(Some(w as i16)),
            Pg::Int4 | Pg::Date => ScalarValue::Int32(Some(w as i32)),
            Pg::Int8 | Pg::Timestamp | Pg::TimestampTz => ScalarValue::Int64(Some(w as i64)),
            Pg::Float4 => ScalarValue::Float32(Some(f32::from_bits(w as u32))),
            Pg::Float8 => ScalarValue::Float64(Some(f64::from_bits(w))),
            Pg::Text | Pg::Varchar => {
                let b = varlena_bytes(d);
                let s = std::str::from_utf8(b)
                    .map_err(|_| Unsupported("a constant that is not UTF-8".into()))?;
                ScalarValue::Utf8(Some(s.to_string()))
            }
            Pg::BpChar(_) => {
                let b = varlena_bytes(d);
                let s = std::str::from_utf8(b)
                    .map_err(|_| Unsupported("a constant that is not UTF-8".into()))?;
                ScalarValue::Utf8(Some(s.trim_end_matches(' ').to_string()))
            }
            Pg::Numeric { precision, scale } => {
                let b = varlena_bytes(d);
                let scale = if precision == 0 {
                    numeric_dscale(b)
                        .ok_or_else(|| Unsupported("a numeric NaN or infinity constant".into()))?
                } else {
                    scale
                };
                let v = numeric_to_i128(b, scale)
                    .map_err(|e| Unsupported(format!("numeric constant: {e}")))?;
                let digits = (v.unsigned_abs().checked_ilog10().unwrap_or(0) + 1) as u8;
                let precision = if precision == 0 {
                    digits.max(scale as u8).max(1)
                } else {
                    precision
                };
                if precision > super::types::MAX_PRECISION {
                    return Err(Unsupported(
                        "a numeric constant of more than 38 digits".into(),
                    ));
                }
                ScalarValue::Decimal128(Some(v), precision, scale)
            }
        }
    })
}

/// Converts result columns into datums, typed once per batch.
pub enum OutColumn {
    Bool(BooleanArray),
    Int16(Int16Array),
    Int32(Int32Array),
    Int64(Int64Array),
    Float32(Float32Array),
    Float64(Float64Array),
    Numeric(Decimal128Array, u16),
    /// Numerics with a display scale per value.
    DynNumeric(ArrayRef),
    Text(StringArray, Option<usize>),
}

impl OutColumn {
    /// `a` as output column of PostgreSQL type `oid` / `typmod`.
    pub fn new(a: &ArrayRef, oid: pg_sys::Oid, pg: Pg) -> Result<OutColumn, String> {
        let bad = || {
            format!(
                "DataFusion produced {} for a column of {}",
                a.data_type(),
                super::types::type_name(oid)
            )
        };
        Ok(match a.data_type() {
            DataType::Boolean => OutColumn::Bool(a.as_boolean().clone()),
            DataType::Int16 => OutColumn::Int16(a.as_primitive().clone()),
            DataType::Int32 => OutColumn::Int32(a.as_primitive().clone()),
            DataType::Int64 => OutColumn::Int64(a.as_primitive().clone()),
            DataType::Float32 => OutColumn::Float32(a.as_primitive().clone()),
            DataType::Float64 => OutColumn::Float64(a.as_primitive().clone()),
            DataType::Decimal128(_, s) if oid == pg_sys::NUMERICOID => OutColumn::Numeric(
                a.as_primitive().clone(),
                u16::try_from(*s).map_err(|_| bad())?,
            ),
            DataType::Struct(_) if oid == pg_sys::NUMERICOID => OutColumn::DynNumeric(a.clone()),
            DataType::Utf8View | DataType::LargeUtf8 => {
                let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)
                    .map_err(|e| e.to_string())?;
                return OutColumn::new(&a, oid, pg);
            }
            DataType::Utf8 => {
                let pad = match pg {
                    Pg::BpChar(n) if n >= 0 => Some(n as usize),
                    _ => None,
                };
                OutColumn::Text(a.as_string::<i32>().clone(), pad)
            }
            DataType::Null => OutColumn::Bool(BooleanArray::new_null(a.len())),
            _ => return Err(bad()),
        })
    }

    /// Row `i` as a datum (by-reference values palloc'd in the current
    /// memory context), or None for NULL.
    pub fn datum(&self, i: usize) -> Option<pg_sys::Datum> {
        use pg_sys::Datum;
        macro_rules! word {
            ($a:expr, $conv:expr) => {
                if $a.is_null(i) {
                    None
                } else {
                    Some(Datum::from($conv($a.value(i))))
                }
            };
        }
        match self {
            OutColumn::Bool(a) => word!(a, |v: bool| v as usize),
            OutColumn::Int16(a) => word!(a, |v: i16| v as isize as usize),
            OutColumn::Int32(a) => word!(a, |v: i32| v as isize as usize),
            OutColumn::Int64(a) => word!(a, |v: i64| v as usize),
            OutColumn::Float32(a) => word!(a, |v: f32| v.to_bits() as usize),
            OutColumn::Float64(a) => word!(a, |v: f64| v.to_bits() as usize),
            OutColumn::Numeric(a, s) => {
                if a.is_null(i) {
                    return None;
                }
                let v = a.value(i);
                if *s == 0 && v.unsigned_abs() == super::functions::NUMERIC_INFINITY as u128 {
                    // NUMERIC_PINF / NUMERIC_NINF headers.
                    let h: u16 = if v > 0 { 0xD000 } else { 0xF000 };
                    return Some(varlena(&h.to_le_bytes(), 0));
                }
                Some(varlena(&i128_to_numeric(v, *s), 0))
            }
            OutColumn::DynNumeric(a) => {
                let (u, s) = super::functions::numeric_at(a, i)?;
                Some(varlena(&i128_to_numeric(u, s as u16), 0))
            }
            OutColumn::Text(a, pad) => {
                if a.is_null(i) {
                    return None;
                }
                let s = a.value(i);
                let extra = match pad {
                    Some(n) => n.saturating_sub(s.chars().count()),
                    None => 0,
                };
                Some(varlena(s.as_bytes(), extra))
            }
        }
    }
}

/// A new varlena holding `bytes` followed by `blanks` spaces.
fn varlena(bytes: &[u8], blanks: usize) -> pg_sys::Datum {
    let len = bytes.len() + blanks;
    // SAFETY: palloc'd in the current context, header set for len bytes.
    unsafe {
        let total = len + pg_sys::VARHDRSZ;
        let p = pg_sys::palloc(total) as *mut u8;
        pgrx::set_varsize_4b(p as *mut pg_sys::varlena, total as i32);
        let data = p.add(pg_sys::VARHDRSZ);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        std::ptr::write_bytes(data.add(bytes.len()), b' ', blanks);
        pg_sys::Datum::from(p)
    }
}
