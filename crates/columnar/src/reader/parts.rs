//! Reading a row group through a cache of its parts: each decoded column
//! (and, for a group with gaps in its row numbers, the row numbers) kept by
//! itself as bytes, so that scans projecting different columns share them.
//! What the cache holds is read from it; the rest is decoded from the
//! segment in one pass and offered to it. The cache (shared memory, in the
//! server) is a trait, so this is tested over a plain map. A part is kept
//! as its Arrow buffers behind a small header, not as an IPC stream: it is
//! copied once into the cache and read back without a copy.

use std::sync::{Arc, OnceLock};

use arrow_array::{make_array, Array, ArrayRef, Int64Array};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_schema::DataType;

use super::{
    check_row_numbers, guarded, typed, DecodedColumn, DecodedGroup, ScaledColumn, SegmentReader,
};
use crate::schema::{err, Error, Result};
use crate::storage::Storage;

/// A part of a decoded row group that a cache keeps by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The row numbers (kept only for groups with gaps in them).
    RowNumbers,
    /// A schema column, as stored (a scaled numeric as its integers).
    Column(usize),
}

/// Where decoded parts of one row group are kept, as bytes.
pub trait PartCache {
    /// Copy `part`'s bytes into `out` if the cache has them.
    fn get(&mut self, part: Part, out: &mut Vec<u8>) -> bool;
    /// Whether a part of about `bytes` bytes may be offered (so that one
    /// the cache would refuse is not serialized for nothing).
    fn accepts(&self, bytes: usize) -> bool;
    /// Offer `part`'s bytes, the concatenation of `bytes`; the cache may
    /// refuse them.
    fn put(&mut self, part: Part, bytes: &[&[u8]]);
}

/// The layout of a cached part: this header (little-endian), then its
/// buffers, each padded to 8 bytes: the validity bitmap if `has_nulls`,
/// then the array's data buffers. The arrays are read back sharing the
/// bytes (no copy) and validated in full, so bytes that are not a part
/// of this shape are refused, never trusted.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct PartHeader {
    /// [`PART_MAGIC`]: also the layout's version.
    magic: u32,
    /// The Arrow type ([`type_tag`]).
    tag: u32,
    /// A fixed-size binary's width; 0 otherwise.
    width: u32,
    has_nulls: u32,
    /// Data buffers (1, or 2 for a binary's offsets and values).
    buffers: u32,
    _pad: u32,
    rows: u64,
    /// Bytes of each buffer as stored: validity (0 without), data.
    lens: [u64; 3],
}
const _: () = assert!(std::mem::size_of::<PartHeader>() == 56);

/// "OMP1".
const PART_MAGIC: u32 = 0x3150_4d4f;
const ZEROS: [u8; 8] = [0; 8];

impl PartHeader {
    fn to_bytes(self) -> [u8; 56] {
        let mut out = [0u8; 56];
        let words = [
            self.magic,
            self.tag,
            self.width,
            self.has_nulls,
            self.buffers,
            0,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        for (i, w) in std::iter::once(self.rows).chain(self.lens).enumerate() {
            out[24 + i * 8..32 + i * 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Option<PartHeader> {
        let b = b.get(..56)?;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(PartHeader {
            magic: u32_at(0),
            tag: u32_at(4),
            width: u32_at(8),
            has_nulls: u32_at(12),
            buffers: u32_at(16),
            _pad: 0,
            rows: u64_at(24),
            lens: [u64_at(32), u64_at(40), u64_at(48)],
        })
    }
}

/// The types decoded columns have (as stored), by tag.
fn type_tag(t: &DataType) -> Option<(u32, u32)> {
    Some(match t {
        DataType::Boolean => (1, 0),
        DataType::Int8 => (2, 0),
        DataType::Int16 => (3, 0),
        DataType::Int32 => (4, 0),
        DataType::Int64 => (5, 0),
        DataType::Float32 => (6, 0),
        DataType::Float64 => (7, 0),
        DataType::FixedSizeBinary(w) => (8, u32::try_from(*w).ok()?),
        DataType::LargeBinary => (9, 0),
        _ => return None,
    })
}

fn tag_type(tag: u32, width: u32) -> Option<DataType> {
    Some(match tag {
        1 => DataType::Boolean,
        2 => DataType::Int8,
        3 => DataType::Int16,
        4 => DataType::Int32,
        5 => DataType::Int64,
        6 => DataType::Float32,
        7 => DataType::Float64,
        8 => DataType::FixedSizeBinary(i32::try_from(width).ok()?),
        9 => DataType::LargeBinary,
        _ => return None,
    })
}

/// Offer `array` to `cache` as `part`, copied from its own buffers. An
/// array of another type, or a slice (an offset), is not offered.
fn offer(cache: &mut dyn PartCache, part: Part, array: &ArrayRef) {
    let data = array.to_data();
    let Some((tag, width)) = type_tag(data.data_type()) else {
        return;
    };
    let nulls = data.nulls().filter(|n| n.null_count() > 0);
    if data.offset() != 0 || nulls.is_some_and(|n| n.offset() != 0) || data.buffers().len() > 2 {
        return;
    }
    let mut slices: Vec<&[u8]> = Vec::with_capacity(3);
    slices.extend(nulls.map(|n| n.buffer().as_slice()));
    slices.extend(data.buffers().iter().map(|b| b.as_slice()));
    let mut header = PartHeader {
        magic: PART_MAGIC,
        tag,
        width,
        has_nulls: u32::from(nulls.is_some()),
        buffers: data.buffers().len() as u32,
        rows: data.len() as u64,
        ..Default::default()
    };
    let mut lens = [0u64; 3];
    let first = usize::from(nulls.is_none());
    for (i, s) in slices.iter().enumerate() {
        lens[first + i] = s.len() as u64;
    }
    header.lens = lens;
    let size: usize = 56
        + slices
            .iter()
            .map(|s| s.len().next_multiple_of(8))
            .sum::<usize>();
    if !cache.accepts(size) {
        return;
    }
    let head = header.to_bytes();
    let mut parts: Vec<&[u8]> = vec![&head];
    for s in &slices {
        parts.push(s);
        let pad: usize = s.len().next_multiple_of(8) - s.len();
        parts.push(&ZEROS[..pad]);
    }
    cache.put(part, &parts);
}

/// The array of a cached part of `rows` rows, sharing `bytes`.
fn part_array(bytes: Vec<u8>, rows: usize) -> Result<ArrayRef> {
    let bad = || Error("cached column is malformed".into());
    let h = PartHeader::from_bytes(&bytes).ok_or_else(bad)?;
    if h.magic != PART_MAGIC
        || h.rows != rows as u64
        || h.has_nulls > 1
        || !(1..=2).contains(&h.buffers)
    {
        return Err(bad());
    }
    let dt = tag_type(h.tag, h.width).ok_or_else(bad)?;
    let buffer = Buffer::from_vec(bytes);
    let mut at = 56usize;
    let mut take = |len: u64| -> Result<Buffer> {
        let len = usize::try_from(len).map_err(|_| bad())?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= buffer.len())
            .ok_or_else(bad)?;
        let b = buffer.slice_with_length(at, len);
        at = end.next_multiple_of(8);
        Ok(b)
    };
    let nulls = if h.has_nulls == 1 {
        Some(take(h.lens[0])?)
    } else {
        None
    };
    let mut buffers = Vec::with_capacity(2);
    for i in 0..h.buffers as usize {
        buffers.push(take(h.lens[1 + i])?);
    }
    let data = guarded("reading a cached column", || {
        Ok(ArrayData::builder(dt)
            .len(rows)
            .null_bit_buffer(nulls)
            .buffers(buffers)
            .align_buffers(true)
            .build()?)
    })?;
    Ok(make_array(data))
}

impl DecodedGroup {
    /// The stored form of `part` (decoded) as one array.
    fn part(&self, part: Part) -> Option<ArrayRef> {
        match part {
            Part::RowNumbers => Some(Arc::new(self.row_numbers.clone())),
            Part::Column(c) => match self.columns.get(c)?.as_ref()? {
                DecodedColumn::Scaled(s) => Some(Arc::new(s.ints.clone())),
                _ => self.array(c),
            },
        }
    }
}

impl SegmentReader {
    /// Schema column `col` of a `rows`-row group, from its cached bytes.
    fn cached_column(&self, bytes: Vec<u8>, col: usize, rows: usize) -> Result<DecodedColumn> {
        let array = part_array(bytes, rows)?;
        match self.storage[col] {
            Storage::ScaledNumeric { scale } => Ok(DecodedColumn::Scaled(ScaledColumn {
                ints: typed(&array, "scaled numeric")?,
                scale,
                images: OnceLock::new(),
            })),
            storage => DecodedColumn::new(self.kinds[col], storage, &array, col),
        }
    }

    /// [`SegmentReader::read_group`] through `cache`: the parts it holds
    /// are read from it, the others decoded from `src` and offered to it.
    /// Bytes that do not read back as the part (a different shape or
    /// type) count as missing. Returns the rows and how many parts came
    /// from the cache.
    pub fn read_group_through(
        &self,
        // Not imported: its `len` would shadow that of byte slices.
        src: &dyn super::SegmentSource,
        group: usize,
        columns: &[usize],
        cache: &mut dyn PartCache,
    ) -> Result<(DecodedGroup, usize)> {
        if group >= self.stats.len() {
            return err(format!("row group {group} does not exist"));
        }
        let rows = usize::try_from(self.stats[group].rows).unwrap_or(usize::MAX);
        let mut cols = columns.to_vec();
        cols.sort_unstable();
        cols.dedup();
        let mut found: Vec<Option<DecodedColumn>> = (0..self.kinds.len()).map(|_| None).collect();
        let mut missing = Vec::new();
        let mut hits = 0;
        // A part's bytes become its arrays' buffers: a new vector each.
        let mut get = |part: Part| {
            let mut buf = Vec::new();
            cache.get(part, &mut buf).then_some(buf)
        };
        for &c in &cols {
            let cached = c < self.kinds.len()
                && get(Part::Column(c)).is_some_and(|b| {
                    self.cached_column(b, c, rows)
                        .map(|col| found[c] = Some(col))
                        .is_ok()
                });
            if cached {
                hits += 1;
            } else {
                missing.push(c);
            }
        }
        // Without gaps the row numbers are the group's range.
        let (lo, hi) = self.row_ranges[group];
        let mut row_numbers =
            if hi.checked_sub(lo).and_then(|d| d.checked_add(1)) == Some(rows as u64) {
                Some(Int64Array::from_iter_values(lo as i64..=hi as i64))
            } else {
                // Cached row numbers must be what the footer says the group
                // holds: ascending, from its first to its last.
                let valid = |a: &Int64Array| {
                    check_row_numbers(a, group).is_ok()
                        && a.values().first() == Some(&(lo as i64))
                        && a.values().last() == Some(&(hi as i64))
                };
                get(Part::RowNumbers)
                    .and_then(|b| {
                        part_array(b, rows)
                            .and_then(|a| typed::<Int64Array>(&a, "row number"))
                            .ok()
                    })
                    .filter(valid)
                    .inspect(|_| hits += 1)
            };
        if !missing.is_empty() || row_numbers.is_none() {
            let mut decoded = self.read_group(src, group, &missing)?;
            let mut keep = |part: Part, d: &DecodedGroup| {
                if let Some(a) = d.part(part) {
                    offer(cache, part, &a);
                }
            };
            for &c in &missing {
                keep(Part::Column(c), &decoded);
                found[c] = decoded.columns[c].take();
            }
            if row_numbers.is_none() {
                keep(Part::RowNumbers, &decoded);
            }
            row_numbers = Some(decoded.row_numbers);
        }
        let row_numbers = row_numbers.expect("read or decoded");
        if row_numbers.len() != rows {
            return err(format!(
                "row group {group} has {} row numbers for {rows} rows",
                row_numbers.len()
            ));
        }
        Ok((
            DecodedGroup {
                row_numbers,
                columns: found,
            },
            hits,
        ))
    }
}
