//! Row records for the write store.
//!
//! Layout for a schema of `n` columns:
//! * null bitmap, `ceil(n / 8)` bytes, bit `i % 8` of byte `i / 8` set when
//!   column `i` is NULL (unused high bits are zero);
//! * then, for each non-NULL column in order: byval kinds in their natural
//!   width little-endian (bool 1 byte 0/1, "char" 1, int16 2, int32/float32 4,
//!   int64/float64 8), `Fixed(n)` as exactly `n` bytes, `Bytes` as a u32 LE
//!   length followed by the bytes.
//!
//! The schema supplies all widths, so a record carries no per-column type
//! tags; decoding checks every length against the record and rejects trailing
//! bytes, so corruption is reported instead of misread.

use crate::schema::{canonical_word, value_mismatch, ColumnKind, Error, Result, Schema, Value};

/// Appends the row record for `values` to `out`.
///
/// Panics if `values` does not match `schema` (wrong count, a word for a
/// by-reference column, a Fixed value of the wrong length, or a Bytes value
/// of 4 GiB or more): those are caller bugs, not data errors.
pub fn encode_row(schema: &Schema, values: &[Value], out: &mut Vec<u8>) {
    let n = schema.columns.len();
    assert_eq!(
        values.len(),
        n,
        "encode_row: {} values for {} columns",
        values.len(),
        n
    );
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, (col, value)) in schema.columns.iter().zip(values).enumerate() {
        if let Some(msg) = value_mismatch(col.kind, value) {
            panic!("encode_row: column {i}: {msg}");
        }
        match *value {
            Value::Null => out[bitmap_at + i / 8] |= 1 << (i % 8),
            Value::Word(w) => {
                let w = canonical_word(col.kind, w);
                out.extend_from_slice(&w.to_le_bytes()[..col.kind.word_width()]);
            }
            Value::Bytes(b) => {
                if col.kind == ColumnKind::Bytes {
                    let len = u32::try_from(b.len())
                        .unwrap_or_else(|_| panic!("encode_row: column {i} value exceeds 4 GiB"));
                    out.extend_from_slice(&len.to_le_bytes());
                }
                out.extend_from_slice(b);
            }
        }
    }
}

/// Decodes a row record into one [`Value`] per column (clearing `out`
/// first). Byval words come back in the canonical form described in the
/// crate docs; byte values borrow from `record`.
/// On error `out` is left empty.
pub fn decode_row<'a>(schema: &Schema, record: &'a [u8], out: &mut Vec<Value<'a>>) -> Result<()> {
    out.clear();
    let result = decode_into(schema, record, out);
    if result.is_err() {
        out.clear();
    }
    result
}

fn decode_into<'a>(schema: &Schema, record: &'a [u8], out: &mut Vec<Value<'a>>) -> Result<()> {
    let n = schema.columns.len();
    let bitmap_len = n.div_ceil(8);
    if record.len() < bitmap_len {
        return Err(Error(format!(
            "row record of {} bytes is shorter than its {bitmap_len}-byte null bitmap",
            record.len()
        )));
    }
    let (bitmap, mut rest) = record.split_at(bitmap_len);
    if !n.is_multiple_of(8) && bitmap[bitmap_len - 1] >> (n % 8) != 0 {
        return Err(Error(
            "row record null bitmap has bits beyond the last column".into(),
        ));
    }
    out.reserve(n);
    for (i, col) in schema.columns.iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            out.push(Value::Null);
            continue;
        }
        let value = match col.kind {
            ColumnKind::Fixed(len) => Value::Bytes(take(&mut rest, usize::from(len), i)?),
            ColumnKind::Bytes => {
                let len_bytes = take(&mut rest, 4, i)?;
                let len =
                    u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
                let len = usize::try_from(len).map_err(|_| {
                    Error(format!("row record column {i} length {len} is too large"))
                })?;
                Value::Bytes(take(&mut rest, len, i)?)
            }
            kind => {
                let raw = take(&mut rest, kind.word_width(), i)?;
                let mut word = [0u8; 8];
                word[..raw.len()].copy_from_slice(raw);
                let w = u64::from_le_bytes(word);
                if kind == ColumnKind::Bool && w > 1 {
                    return Err(Error(format!("row record column {i} bool byte is {w}")));
                }
                Value::Word(canonical_word(kind, w))
            }
        };
        out.push(value);
    }
    if !rest.is_empty() {
        let extra = rest.len();
        return Err(Error(format!(
            "row record has {extra} trailing bytes after the last column"
        )));
    }
    Ok(())
}

/// Splits `len` bytes off the front of `rest`, or reports a truncated column.
fn take<'a>(rest: &mut &'a [u8], len: usize, column: usize) -> Result<&'a [u8]> {
    if len > rest.len() {
        return Err(Error(format!(
            "row record column {column} length {len} exceeds the {} bytes left in the record",
            rest.len()
        )));
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}
