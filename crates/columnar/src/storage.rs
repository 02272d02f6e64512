//! How a segment stores each column (format version 2).
//!
//! Version 1 stored every column as its PostgreSQL image. That is exact but
//! slow for `numeric(p, s)`: a scan parses each varlena digit by digit. From
//! version 2, a `numeric(p, s)` column with `0 <= s <= p <= 18` is stored as
//! the scaled integer `value * 10^s` in a Parquet INT64 (which compresses
//! better too), and turned back into PostgreSQL's exact image on read. This
//! is lossless because PostgreSQL gives every value of such a column display
//! scale `s` (the typmod coercion sets it), and the writer checks each value
//! round-trips byte for byte; `NaN`, the one special value the column can
//! hold, is the integer [`NAN_SENTINEL`], outside every precision's range.
//!
//! The per-column choice is written to the segment metadata
//! (`omendb.storage`); a segment where every column is plain is written in
//! version 1, byte for byte as before.

use arrow_array::builder::LargeBinaryBuilder;
use arrow_array::{Int64Array, LargeBinaryArray};

use crate::logical::{i128_to_numeric, numeric_into, numeric_to_i128, NUMERIC_MAX};
use crate::schema::{err, ColumnKind, ColumnSpec, Error, Result};

/// PostgreSQL's `NUMERICOID` (fixed in its catalog).
pub const NUMERIC_OID: u32 = 1700;
/// PostgreSQL's `VARHDRSZ`: numeric typmods are offset by it.
const VARHDRSZ: i32 = 4;
/// Stands for `NaN` in a scaled column: below -(10^18 - 1), so no value of
/// any `numeric(p <= 18, s)` column can be confused with it.
pub const NAN_SENTINEL: i64 = i64::MIN;
/// The payload (varlena contents) of PostgreSQL's numeric `NaN`.
const NAN_PAYLOAD: [u8; 2] = 0xC000u16.to_le_bytes();
/// Largest precision a scaled column may have: 10^18 - 1 fits an i64.
const MAX_SCALED_PRECISION: i32 = 18;

/// How one column of a segment is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The PostgreSQL image, as the column's [`ColumnKind`] says.
    Plain,
    /// A `numeric` as `value * 10^scale` in an INT64.
    ScaledNumeric { scale: u16 },
}

impl Storage {
    /// The storage a writer uses for `col`.
    pub fn for_column(col: &ColumnSpec) -> Storage {
        if col.kind != ColumnKind::Bytes || col.type_oid != NUMERIC_OID || col.typmod < VARHDRSZ {
            return Storage::Plain;
        }
        let t = col.typmod - VARHDRSZ;
        let precision = (t >> 16) & 0xFFFF;
        // PostgreSQL 15 packs the scale as an 11-bit signed field.
        let scale = ((t & 0x7FF) ^ 1024) - 1024;
        if (1..=MAX_SCALED_PRECISION).contains(&precision) && (0..=precision).contains(&scale) {
            Storage::ScaledNumeric {
                scale: scale as u16,
            }
        } else {
            Storage::Plain
        }
    }

    fn tag(self) -> String {
        match self {
            Storage::Plain => "p".into(),
            Storage::ScaledNumeric { scale } => format!("n{scale}"),
        }
    }
}

/// Serializes the storage of each column: `p` or `n<scale>`, `;`-separated.
pub(crate) fn encode_storage(storage: &[Storage]) -> String {
    storage
        .iter()
        .map(|s| s.tag())
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses [`encode_storage`]'s text for a segment whose schema is
/// `columns`: a column is scaled only where [`Storage::for_column`] allows
/// exactly that scale.
pub(crate) fn decode_storage(text: &str, columns: &[ColumnSpec]) -> Result<Vec<Storage>> {
    let tags: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(';').collect()
    };
    if tags.len() != columns.len() {
        return err(format!(
            "segment storage lists {} columns, its schema {}",
            tags.len(),
            columns.len()
        ));
    }
    tags.iter()
        .zip(columns)
        .enumerate()
        .map(|(i, (tag, col))| {
            let bad = || Error(format!("segment storage entry {i} ({tag:?}) is malformed"));
            if *tag == "p" {
                return Ok(Storage::Plain);
            }
            let scale: u16 = tag
                .strip_prefix('n')
                .and_then(|s| s.parse().ok())
                .filter(|&s| i32::from(s) <= MAX_SCALED_PRECISION)
                .ok_or_else(bad)?;
            let scaled = Storage::ScaledNumeric { scale };
            if Storage::for_column(col) != scaled {
                return Err(bad());
            }
            Ok(scaled)
        })
        .collect()
}

/// The scaled integer of a numeric payload, or an error if it would not
/// read back as the same bytes (PostgreSQL never stores such a value in a
/// column with this typmod).
pub(crate) fn scale_numeric(payload: &[u8], scale: u16) -> Result<i64> {
    if payload == NAN_PAYLOAD {
        return Ok(NAN_SENTINEL);
    }
    let v = numeric_to_i128(payload, scale as i8)?;
    let fits = i64::try_from(v).ok().filter(|&v| v != NAN_SENTINEL);
    match fits {
        Some(v) if i128_to_numeric(i128::from(v), scale) == payload => Ok(v),
        _ => err(format!(
            "numeric value is not in the canonical form of scale {scale} (or has over 18 digits)"
        )),
    }
}

/// Appends the numeric payload a scaled integer stands for to `out`.
pub(crate) fn unscale_numeric(v: i64, scale: u16, out: &mut Vec<u8>) {
    let mut img = [0u8; NUMERIC_MAX];
    let len = scaled_into(v, scale, &mut img);
    out.extend_from_slice(&img[..len]);
}

/// The numeric payload a stored scaled integer stands for (NaN included),
/// written into `out`; returns its length.
pub fn scaled_into(v: i64, scale: u16, out: &mut [u8; NUMERIC_MAX]) -> usize {
    if v == NAN_SENTINEL {
        out[..NAN_PAYLOAD.len()].copy_from_slice(&NAN_PAYLOAD);
        NAN_PAYLOAD.len()
    } else {
        numeric_into(i128::from(v), scale, out)
    }
}

/// The PostgreSQL images of a scaled column's integers.
pub(crate) fn unscale_all(ints: &Int64Array, scale: u16) -> LargeBinaryArray {
    let mut b = LargeBinaryBuilder::with_capacity(ints.len(), ints.len() * 8);
    let mut buf = Vec::with_capacity(16);
    for v in ints.iter() {
        match v {
            Some(v) => {
                buf.clear();
                unscale_numeric(v, scale, &mut buf);
                b.append_value(&buf);
            }
            None => b.append_null(),
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(typmod: i32) -> ColumnSpec {
        ColumnSpec {
            name: "n".into(),
            kind: ColumnKind::Bytes,
            type_oid: NUMERIC_OID,
            typmod,
        }
    }

    fn typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7FF)) + VARHDRSZ
    }

    #[test]
    fn only_bounded_numerics_are_scaled() {
        assert_eq!(
            Storage::for_column(&numeric(typmod(15, 2))),
            Storage::ScaledNumeric { scale: 2 }
        );
        assert_eq!(
            Storage::for_column(&numeric(typmod(18, 18))),
            Storage::ScaledNumeric { scale: 18 }
        );
        for plain in [-1, typmod(19, 2), typmod(10, -2), typmod(5, 7)] {
            assert_eq!(
                Storage::for_column(&numeric(plain)),
                Storage::Plain,
                "{plain}"
            );
        }
        let mut text = numeric(typmod(15, 2));
        text.type_oid = 25;
        assert_eq!(Storage::for_column(&text), Storage::Plain);
    }

    #[test]
    fn scaled_values_round_trip_and_odd_ones_are_refused() {
        for (v, s) in [
            (0i64, 2u16),
            (12345, 2),
            (-12345, 2),
            (999_999_999_999_999_999, 0),
            (1, 18),
        ] {
            let p = i128_to_numeric(i128::from(v), s);
            assert_eq!(scale_numeric(&p, s).unwrap(), v);
            let mut out = vec![7];
            unscale_numeric(v, s, &mut out);
            assert_eq!(out[1..], p[..]);
        }
        assert_eq!(scale_numeric(&NAN_PAYLOAD, 2).unwrap(), NAN_SENTINEL);
        let mut out = Vec::new();
        unscale_numeric(NAN_SENTINEL, 2, &mut out);
        assert_eq!(out, NAN_PAYLOAD);
        // Display scale 1 in a scale-2 column would read back as 1.20.
        assert!(scale_numeric(&i128_to_numeric(12, 1), 2).is_err());
        // Infinity cannot be stored in a typmod'd column.
        assert!(scale_numeric(&0xD000u16.to_le_bytes(), 2).is_err());
        assert!(scale_numeric(&i128_to_numeric(10i128.pow(19), 0), 0).is_err());
    }

    #[test]
    fn storage_text_round_trips_and_is_checked() {
        let mut int = numeric(typmod(10, 4));
        int.kind = ColumnKind::Int32;
        let cols = [int, numeric(typmod(10, 4))];
        let s = [Storage::Plain, Storage::ScaledNumeric { scale: 4 }];
        assert_eq!(decode_storage(&encode_storage(&s), &cols).unwrap(), s);
        assert_eq!(decode_storage("p;p", &cols).unwrap(), [Storage::Plain; 2]);
        assert!(decode_storage("p", &cols).is_err());
        assert!(decode_storage("n4;n4", &cols).is_err()); // not a numeric
        assert!(decode_storage("p;n2", &cols).is_err()); // not its scale
        assert!(decode_storage("p;n99", &cols).is_err());
        assert!(decode_storage("p;x", &cols).is_err());
    }
}
