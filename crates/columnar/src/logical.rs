//! Arrow arrays in the logical form a query engine computes on.
//!
//! Segments store PostgreSQL's in-memory images (see the crate docs). Most
//! of them are already what an engine needs: integers, floats, booleans,
//! and dates and timestamps as PostgreSQL's own day / microsecond counts
//! (kept in PostgreSQL's epoch, with its infinities, so nothing is shifted
//! or can overflow; the engine's translator knows the PostgreSQL type). Three
//! need a conversion, once per batch:
//! * `numeric(p, s)` payloads become `Decimal128(p, s)`;
//! * `text` / `varchar` payloads become `Utf8`;
//! * `char(n)` payloads become `Utf8` without trailing blanks, which is how
//!   PostgreSQL compares, hashes and casts them (padding is put back on
//!   output by the caller).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, Int8Builder, LargeBinaryBuilder,
};
use arrow_array::{Array, ArrayRef, Decimal128Array, Int64Array, LargeBinaryArray, StringArray};
use arrow_buffer::OffsetBuffer;

use crate::schema::{err, ColumnKind, Error, Result, Value};

/// How a stored column is presented to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logical {
    /// The stored array as it is (bool, integers, floats, date/time words).
    Stored,
    /// `numeric(precision, scale)` payloads as `Decimal128(precision, scale)`.
    Numeric { precision: u8, scale: i8 },
    /// `text` / `varchar` payloads as `Utf8`.
    Text,
    /// `char(n)` payloads as `Utf8`, trailing blanks removed.
    BpChar,
}

/// Convert one stored array (as decoded from a segment or built from row
/// records) to its logical form.
pub fn to_logical(stored: &ArrayRef, logical: Logical) -> Result<ArrayRef> {
    let bytes = || {
        stored
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .ok_or_else(|| {
                Error(format!(
                    "a {logical:?} column is stored as {}, not as bytes",
                    stored.data_type()
                ))
            })
    };
    Ok(match logical {
        Logical::Stored => stored.clone(),
        Logical::Text => Arc::new(text(bytes()?, false)?),
        Logical::BpChar => Arc::new(text(bytes()?, true)?),
        Logical::Numeric { precision, scale } => {
            let a = bytes()?;
            let mut b = Decimal128Builder::with_capacity(a.len());
            for i in 0..a.len() {
                if a.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(numeric_to_i128(a.value(i), scale)?);
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(precision, scale)
                    .map_err(|e| Error(format!("numeric({precision},{scale}): {e}")))?,
            )
        }
    })
}

/// Byte values as a `Utf8` array, without trailing blanks if `trim`.
/// UTF-8 is checked once over all the bytes (and at each value's start),
/// not per value; untrimmed values share the byte buffer.
fn text(a: &LargeBinaryArray, trim: bool) -> Result<StringArray> {
    let offsets = a.value_offsets();
    let data = a.values().as_slice();
    let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
    // A value starts on a character boundary if its first byte is not a
    // continuation byte; with the whole range valid, so is every value.
    let boundaries = offsets
        .iter()
        .all(|&o| data.get(o as usize).is_none_or(|&b| (b as i8) >= -0x40));
    if !boundaries || std::str::from_utf8(&data[first..last]).is_err() {
        return err("a text value is not valid UTF-8");
    }
    let too_large = || Error("text values of one row group exceed 2 GB".into());
    // bpchar values stored without trailing blanks (most are: 'A', 'N')
    // need no copy.
    let blank_at_end = |w: &[i64]| w[0] < w[1] && data[w[1] as usize - 1] == b' ';
    if !trim || !offsets.windows(2).any(blank_at_end) {
        let narrow: Vec<i32> = offsets
            .iter()
            .map(|&o| i32::try_from(o).map_err(|_| too_large()))
            .collect::<Result<_>>()?;
        // SAFETY: ascending offsets into the shared buffer, each at a
        // character boundary of valid UTF-8 (checked above).
        return Ok(unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(narrow.into()),
                a.values().clone(),
                a.nulls().cloned(),
            )
        });
    }
    let mut values: Vec<u8> = Vec::with_capacity(last - first);
    let mut out: Vec<i32> = Vec::with_capacity(offsets.len());
    out.push(0);
    for w in offsets.windows(2) {
        let mut v = &data[w[0] as usize..w[1] as usize];
        while let [rest @ .., b' '] = v {
            v = rest;
        }
        values.extend_from_slice(v);
        out.push(i32::try_from(values.len()).map_err(|_| too_large())?);
    }
    // SAFETY: as above; removing ASCII blanks keeps each value UTF-8.
    Ok(unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new_unchecked(out.into()),
            values.into(),
            a.nulls().cloned(),
        )
    })
}

/// A scaled-numeric column ([`crate::storage`]) as `Decimal128(precision,
/// scale)`. NaN has no Decimal128 image and is an error, as in
/// [`numeric_to_i128`].
pub fn scaled_to_decimal(ints: &Int64Array, precision: u8, scale: i8) -> Result<ArrayRef> {
    let sentinel = crate::storage::NAN_SENTINEL;
    let nan = ints.values().contains(&sentinel) && ints.iter().any(|v| v == Some(sentinel));
    if nan {
        return err("numeric NaN or infinity has no decimal image");
    }
    let d: Decimal128Array = ints.unary(i128::from);
    Ok(Arc::new(
        d.with_precision_and_scale(precision, scale)
            .map_err(|e| Error(format!("numeric({precision},{scale}): {e}")))?,
    ))
}

/// PostgreSQL's numeric base: each digit of a numeric holds 4 decimal digits.
const NBASE: i128 = 10_000;
const NUMERIC_SIGN_MASK: u16 = 0xC000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SPECIAL: u16 = 0xC000;
const SHORT_SIGN: u16 = 0x2000;
const SHORT_DSCALE_MASK: u16 = 0x1F80;
const SHORT_DSCALE_SHIFT: u16 = 7;
const SHORT_WEIGHT_SIGN: u16 = 0x0040;
const SHORT_WEIGHT_MASK: u16 = 0x003F;

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// The value of a numeric payload (a varlena without its header) times
/// 10^scale. NaN and ±Infinity have no Decimal128 image and are errors, as
/// are values with more fractional digits than `scale` or too many digits.
pub fn numeric_to_i128(payload: &[u8], scale: i8) -> Result<i128> {
    let word = |i: usize| -> Result<u16> {
        payload
            .get(i..i + 2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .ok_or_else(|| Error("numeric value is truncated".into()))
    };
    let header = word(0)?;
    let (negative, weight, digits_at) = match header & NUMERIC_SIGN_MASK {
        NUMERIC_SPECIAL => return err("numeric NaN or infinity has no decimal image"),
        NUMERIC_SHORT => {
            let mut w = (header & SHORT_WEIGHT_MASK) as i32;
            if header & SHORT_WEIGHT_SIGN != 0 {
                w -= 64;
            }
            (header & SHORT_SIGN != 0, w, 2)
        }
        sign => (sign == NUMERIC_NEG, word(2)? as i16 as i32, 4),
    };
    if !(payload.len() - digits_at).is_multiple_of(2) {
        return err("numeric value has an odd number of digit bytes");
    }
    let overflow = || {
        Error(format!(
            "numeric value does not fit 38 digits at scale {scale}"
        ))
    };
    let mut acc: i128 = 0;
    for (i, d) in payload[digits_at..].chunks(2).enumerate() {
        let d = u16::from_le_bytes([d[0], d[1]]) as i128;
        if d >= NBASE {
            return err("numeric digit out of range");
        }
        // This digit stands for d * 10^(4 * (weight - i)); scaled: + scale.
        let e = 4 * (weight - i as i32) + scale as i32;
        let term = if e >= 0 {
            d.checked_mul(pow10(e as u32).ok_or_else(overflow)?)
                .ok_or_else(overflow)?
        } else {
            let div = pow10((-e) as u32).unwrap_or(i128::MAX);
            if d % div != 0 {
                return err(format!(
                    "numeric value has more than {scale} fractional digits"
                ));
            }
            d / div
        };
        acc = acc.checked_add(term).ok_or_else(overflow)?;
    }
    Ok(if negative { -acc } else { acc })
}

/// The base-10000 digits of `mag` (least significant first) into `out`,
/// the lowest shifted up by `pad` (< 4) decimal places so the fraction
/// fills whole digits (the lowest digit holds the lowest 4 - pad decimal
/// digits: mag * 10^pad could overflow); returns how many.
fn base_10000<T>(mut mag: T, pad: u16, out: &mut [u16; 12]) -> usize
where
    T: Copy
        + PartialOrd
        + From<u16>
        + TryInto<u16>
        + std::ops::Rem<Output = T>
        + std::ops::Div<Output = T>
        + std::ops::Mul<Output = T>,
{
    let digit = |v: T| v.try_into().unwrap_or(0);
    let zero = T::from(0);
    let mut total = 0;
    // Each pad divides by a constant (a multiply, not a division).
    macro_rules! pad_by {
        ($q:expr, $p:expr) => {{
            out[0] = digit((mag % T::from($q)) * T::from($p));
            total = 1;
            mag = mag / T::from($q);
        }};
    }
    match pad {
        0 => {}
        1 => pad_by!(1000, 10),
        2 => pad_by!(100, 100),
        3 => pad_by!(10, 1000),
        _ => unreachable!("pad is below 4"),
    }
    let base = T::from(10_000);
    while mag > zero {
        out[total] = digit(mag % base);
        total += 1;
        mag = mag / base;
    }
    total
}

/// The numeric payload (varlena contents without its header) of
/// `unscaled * 10^-scale`, with display scale `scale`: what PostgreSQL's
/// `make_result` would store for that value (short format when it fits).
pub fn i128_to_numeric(unscaled: i128, scale: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    write_numeric(unscaled, scale, &mut out);
    out
}

/// [`i128_to_numeric`], appending to `out` without allocating.
pub fn write_numeric(unscaled: i128, scale: u16, out: &mut Vec<u8>) {
    let mut img = [0u8; NUMERIC_MAX];
    let len = numeric_into(unscaled, scale, &mut img);
    out.extend_from_slice(&img[..len]);
}

/// Longest numeric payload [`numeric_into`] writes: a 4-byte header and 11
/// base-10000 digits (|i128| < 10^39, plus one digit for the fraction's
/// padding).
pub const NUMERIC_MAX: usize = 4 + 2 * 11;

/// [`i128_to_numeric`] written into `out` (for callers that lay images out
/// in memory of their own, a datum arena); returns its length.
pub fn numeric_into(unscaled: i128, scale: u16, out: &mut [u8; NUMERIC_MAX]) -> usize {
    let negative = unscaled < 0;
    let mag = unscaled.unsigned_abs();
    // Align the fraction to whole base-10000 digits: pad to a multiple of 4.
    let pad = (4 - scale % 4) % 4;
    let frac_digits = (scale + pad) / 4;
    // Least significant first.
    let mut base_digits = [0u16; 12];
    // Magnitudes that fit 64 bits (every scaled column's) divide in 64-bit
    // arithmetic; 128-bit division is a library call per digit.
    let total = match u64::try_from(mag) {
        Ok(m) => base_10000(m, pad, &mut base_digits),
        Err(_) => base_10000(mag, pad, &mut base_digits),
    };
    // Weight of the most significant digit: digits above the fraction.
    let mut weight = total as i32 - frac_digits as i32 - 1;
    // Strip trailing (least significant) and leading zero digits.
    let mut lo = 0;
    while lo < total && base_digits[lo] == 0 {
        lo += 1;
    }
    let mut hi = total;
    while hi > lo && base_digits[hi - 1] == 0 {
        hi -= 1;
        weight -= 1;
    }
    let digits = &base_digits[lo..hi];
    if digits.is_empty() {
        weight = 0;
    }
    let mut len = 0;
    let mut push = |v: u16| {
        out[len..len + 2].copy_from_slice(&v.to_le_bytes());
        len += 2;
    };
    let short = scale <= (SHORT_DSCALE_MASK >> SHORT_DSCALE_SHIFT) && (-64..64).contains(&weight);
    if short {
        let mut h = NUMERIC_SHORT | (scale << SHORT_DSCALE_SHIFT);
        if negative && !digits.is_empty() {
            h |= SHORT_SIGN;
        }
        if weight < 0 {
            h |= SHORT_WEIGHT_SIGN;
        }
        h |= (weight as u16) & SHORT_WEIGHT_MASK;
        push(h);
    } else {
        let sign = if negative && !digits.is_empty() {
            NUMERIC_NEG
        } else {
            0
        };
        push(sign | (scale & 0x3FFF));
        push(weight as i16 as u16);
    }
    for d in digits.iter().rev() {
        push(*d);
    }
    len
}

/// Build stored-form arrays for `kinds` from rows of values (write-store
/// rows); `rows[r][c]` is column `c` of row `r`, missing trailing columns
/// read as NULL.
pub fn values_to_arrays<'a>(
    kinds: &[ColumnKind],
    rows: &[Vec<Value<'a>>],
) -> Result<Vec<ArrayRef>> {
    let mut out = Vec::with_capacity(kinds.len());
    for (c, &kind) in kinds.iter().enumerate() {
        let value = |r: &Vec<Value<'a>>| -> Value<'a> { r.get(c).copied().unwrap_or(Value::Null) };
        macro_rules! words {
            ($builder:ty, |$w:ident| $conv:expr) => {{
                let mut b = <$builder>::with_capacity(rows.len());
                for r in rows {
                    match value(r) {
                        Value::Word($w) => b.append_value($conv),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        out.push(match kind {
            ColumnKind::Bool => words!(BooleanBuilder, |w| w != 0),
            ColumnKind::Char => words!(Int8Builder, |w| w as i8),
            ColumnKind::Int16 => words!(Int16Builder, |w| w as i16),
            ColumnKind::Int32 => words!(Int32Builder, |w| w as i32),
            ColumnKind::Int64 => words!(Int64Builder, |w| w as i64),
            ColumnKind::Float32 => words!(Float32Builder, |w| f32::from_bits(w as u32)),
            ColumnKind::Float64 => words!(Float64Builder, |w| f64::from_bits(w)),
            ColumnKind::Fixed(n) => {
                let mut b = FixedSizeBinaryBuilder::with_capacity(rows.len(), i32::from(n));
                for r in rows {
                    match value(r) {
                        Value::Bytes(v) => b
                            .append_value(v)
                            .map_err(|e| Error(format!("column {c}: {e}")))?,
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnKind::Bytes => {
                let mut b = LargeBinaryBuilder::new();
                for r in rows {
                    match value(r) {
                        Value::Bytes(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        });
    }
    Ok(out)
}

/// The part of `sorted` (ascending) from `lo` to `hi`, both included.
pub fn within(sorted: &[u64], lo: u64, hi: u64) -> &[u64] {
    let a = sorted.partition_point(|&d| d < lo);
    let b = sorted.partition_point(|&d| d <= hi);
    &sorted[a..b.max(a)]
}

/// Positions of `row_numbers` that are not in `deleted` (sorted ascending).
pub fn live_positions(row_numbers: &Int64Array, deleted: &[u64]) -> Option<Vec<u32>> {
    if deleted.is_empty() || row_numbers.is_empty() {
        return None;
    }
    let (first, last) = (
        row_numbers.value(0) as u64,
        row_numbers.value(row_numbers.len() - 1) as u64,
    );
    let dead = within(deleted, first, last);
    if dead.is_empty() {
        return None;
    }
    let mut keep = Vec::with_capacity(row_numbers.len());
    let mut k = 0;
    for (i, &r) in row_numbers.values().iter().enumerate() {
        let r = r as u64;
        while k < dead.len() && dead[k] < r {
            k += 1;
        }
        if k < dead.len() && dead[k] == r {
            continue;
        }
        keep.push(i as u32);
    }
    Some(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_values_become_text_once_checked() {
        let input: Vec<Option<&[u8]>> = vec![
            Some(b"ab   "),
            None,
            Some("h\u{e9}llo  ".as_bytes()),
            Some(b"   "),
            Some(b""),
            Some(b"x y "),
        ];
        let a: ArrayRef = Arc::new(LargeBinaryArray::from(input.clone()));
        for (logical, trim) in [(Logical::Text, false), (Logical::BpChar, true)] {
            let t = to_logical(&a, logical).unwrap();
            let t = t.as_any().downcast_ref::<StringArray>().unwrap();
            assert!(t.to_data().validate_full().is_ok());
            let want: Vec<Option<String>> = input
                .iter()
                .map(|v| {
                    v.map(|b| {
                        let s = std::str::from_utf8(b).unwrap();
                        if trim { s.trim_end_matches(' ') } else { s }.to_string()
                    })
                })
                .collect();
            let got: Vec<Option<String>> = t.iter().map(|v| v.map(str::to_string)).collect();
            assert_eq!(got, want);
        }
        // A slice (offsets not from 0) converts too.
        let sliced = a.slice(2, 3);
        let t = to_logical(&sliced, Logical::Text).unwrap();
        assert_eq!(
            t.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "h\u{e9}llo  "
        );
        // Invalid UTF-8, also split inside a character, is an error.
        let bad: ArrayRef = Arc::new(LargeBinaryArray::from(vec![Some(&b"\xff"[..])]));
        assert!(to_logical(&bad, Logical::Text).is_err());
        let e = "\u{e9}".as_bytes();
        let split: ArrayRef = Arc::new(LargeBinaryArray::from(vec![Some(&e[..1]), Some(&e[1..])]));
        assert!(to_logical(&split, Logical::BpChar).is_err());
    }

    #[test]
    fn numeric_round_trips() {
        for (v, s) in [
            (0i128, 0u16),
            (0, 2),
            (1, 0),
            (-1, 0),
            (12345, 2),
            (-12345, 2),
            (100000000, 0),
            (1, 20),
            (-999999999999999999, 4),
            (i128::MAX / 10, 10),
            (5, 1),
            (10000, 0),
            (123, 7),
        ] {
            let p = i128_to_numeric(v, s);
            assert_eq!(numeric_to_i128(&p, s as i8).unwrap(), v, "{v} scale {s}");
            // One more scale digit reads ten times larger.
            if s < 30 {
                assert_eq!(numeric_to_i128(&p, s as i8 + 1).unwrap(), v * 10);
            }
        }
    }

    /// The 64-bit digit loop gives the 128-bit one's digits.
    #[test]
    fn numeric_digits_agree_in_64_and_128_bits() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = match i % 4 {
                0 => x,
                1 => x % 100_000,
                2 => u64::MAX - (x % 1000),
                _ => 10u64.pow((x % 20) as u32),
            };
            for pad in 0..4u16 {
                let (mut a, mut b) = ([0u16; 12], [0u16; 12]);
                let na = base_10000(m, pad, &mut a);
                let nb = base_10000(m as u128, pad, &mut b);
                assert_eq!((na, a), (nb, b), "{m} pad {pad}");
            }
            let v = m as i128 * if i % 2 == 0 { 1 } else { -1 };
            for scale in [0u16, 1, 2, 3, 4, 7, 15] {
                let p = i128_to_numeric(v, scale);
                assert_eq!(
                    numeric_to_i128(&p, scale as i8).unwrap(),
                    v,
                    "{v} scale {scale}"
                );
            }
        }
    }

    #[test]
    fn numeric_rejects_specials_and_lost_digits() {
        assert!(numeric_to_i128(&0xC000u16.to_le_bytes(), 2).is_err());
        let p = i128_to_numeric(12345, 3); // 12.345
        assert!(numeric_to_i128(&p, 2).is_err());
        assert!(numeric_to_i128(&[1], 0).is_err());
    }
}
