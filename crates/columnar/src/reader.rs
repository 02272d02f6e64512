//! Segment reader: parses the footer once, then decodes single row groups
//! from just the column chunks a scan needs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, LargeBinaryArray, RecordBatch,
};
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;

use crate::logical::{self, Logical};
use crate::schema::{check_schema, decode_schema, err, ColumnKind, Error, Result, Schema, Value};
use crate::stats::{decode_all, GroupStats};
use crate::storage::{decode_storage, unscale_all, Storage};
use crate::writer::{
    arrow_schema, KEY_SCHEMA, KEY_STATS, KEY_STORAGE, KEY_VERSION, PLAIN_FORMAT_VERSION,
};
use crate::FORMAT_VERSION;

mod ipc;
mod parts;

pub use parts::{Part, PartCache};

/// Where segment bytes come from; the caller copies them out of database pages.
#[allow(clippy::len_without_is_empty)]
pub trait SegmentSource {
    /// Total segment size in bytes.
    fn len(&self) -> u64;
    /// Exactly `len` bytes starting at `offset`, or an error.
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
}

impl SegmentSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(len)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error(format!(
                    "read of {len} bytes at offset {offset} is beyond the {}-byte segment",
                    <[u8]>::len(self)
                ))
            })
    }
}

impl SegmentSource for Vec<u8> {
    fn len(&self) -> u64 {
        SegmentSource::len(self.as_slice())
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.as_slice().read(offset, len)
    }
}

/// Lets a `&[u8]` (or any reference to a source) be passed as `&dyn SegmentSource`.
impl<T: SegmentSource + ?Sized> SegmentSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        (**self).read(offset, len)
    }
}

/// Byte ranges of a segment copied out of wherever it is stored, so that
/// reads of them can run elsewhere (another thread) later.
pub struct CopiedChunks {
    len: u64,
    /// (offset, bytes), sorted by offset, not overlapping.
    chunks: Vec<(u64, Vec<u8>)>,
}

impl CopiedChunks {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|(_, b)| b.len()).sum()
    }
}

impl SegmentSource for CopiedChunks {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let i = self.chunks.partition_point(|(start, _)| *start <= offset);
        let found = i.checked_sub(1).and_then(|i| {
            let (start, bytes) = &self.chunks[i];
            let from = usize::try_from(offset - start).ok()?;
            bytes.get(from..from.checked_add(len)?)
        });
        found.map(<[u8]>::to_vec).ok_or_else(|| {
            Error(format!(
                "read of {len} bytes at offset {offset} was not copied out of the segment"
            ))
        })
    }
}

/// Parsed metadata of one segment; holds no column data.
pub struct SegmentReader {
    meta: ArrowReaderMetadata,
    kinds: Vec<ColumnKind>,
    storage: Vec<Storage>,
    schema: Schema,
    stats: Vec<GroupStats>,
    /// (min, max) row number per group, validated at open.
    row_ranges: Vec<(u64, u64)>,
}

const MAGIC: &[u8; 4] = b"PAR1";

/// Reads exactly `len` bytes, refusing ranges outside the segment before
/// asking the source (so corrupt metadata cannot trigger huge allocations).
fn read_exact(src: &dyn SegmentSource, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > src.len()) {
        return err(format!(
            "{what} at offset {offset} length {len} exceeds the {}-byte segment",
            src.len()
        ));
    }
    let len = usize::try_from(len).map_err(|_| Error(format!("{what} is too large")))?;
    let bytes = src.read(offset, len)?;
    if bytes.len() != len {
        return err(format!(
            "{what}: source returned {} bytes, wanted {len}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Runs a Parquet/Arrow decoding step, turning a panic on corrupt input into
/// an error (the decoders are not guaranteed panic-free on hostile bytes).
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            err(format!("{what} failed on corrupt data: {msg}"))
        }
    }
}

impl SegmentReader {
    /// Parses the footer of `src` and checks it against `expected`.
    pub fn open(src: &dyn SegmentSource, expected: &Schema) -> Result<Self> {
        Self::open_inner(src, Some(expected))
    }

    /// Parses the footer of `src`, taking the schema stored in it; the caller
    /// checks [`SegmentReader::schema`] against what it expects (a table whose
    /// columns were renamed, added or dropped still reads its old segments).
    pub fn open_stored(src: &dyn SegmentSource) -> Result<Self> {
        Self::open_inner(src, None)
    }

    /// The schema the segment was written with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn open_inner(src: &dyn SegmentSource, expected: Option<&Schema>) -> Result<Self> {
        let total = src.len();
        if total < 12 {
            return err(format!("segment of {total} bytes is too short"));
        }
        if read_exact(src, 0, 4, "segment header")? != MAGIC {
            return err("segment header magic is not PAR1");
        }
        let tail = read_exact(src, total - 8, 8, "segment footer")?;
        if tail[4..] != MAGIC[..] {
            return err("segment footer magic is not PAR1");
        }
        let meta_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        if meta_len > total - 12 {
            return err(format!(
                "segment footer is truncated: metadata length {meta_len} exceeds the {total}-byte segment"
            ));
        }
        let meta_start = total - 8 - meta_len;
        let buf = read_exact(src, meta_start, meta_len, "segment metadata")?;
        let meta = guarded("parsing segment metadata", || {
            Ok(ParquetMetaDataReader::decode_metadata(&buf)?)
        })?;

        let kv = |key: &str| {
            meta.file_metadata()
                .key_value_metadata()
                .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.clone())
                .ok_or_else(|| Error(format!("segment metadata lacks {key}")))
        };
        let version = kv(KEY_VERSION)?;
        let version = version
            .parse::<u32>()
            .ok()
            .filter(|v| (PLAIN_FORMAT_VERSION..=FORMAT_VERSION).contains(v))
            .ok_or_else(|| {
                Error(format!(
                    "segment format version {version:?} is not one this omendb reads (1 to {FORMAT_VERSION})"
                ))
            })?;
        let stored = decode_schema(&kv(KEY_SCHEMA)?)?;
        let kinds: Vec<ColumnKind> = stored.columns.iter().map(|c| c.kind).collect();
        let storage = if version == PLAIN_FORMAT_VERSION {
            vec![Storage::Plain; kinds.len()]
        } else {
            decode_storage(&kv(KEY_STORAGE)?, &stored.columns)?
        };
        if let Some(expected) = expected {
            check_schema(&stored, expected)?;
        }
        let expected = &stored;
        let n = expected.columns.len();
        let stats = decode_all(&kv(KEY_STATS)?, meta.num_row_groups(), n)?;

        let row_ranges = check_layout(&meta, n, meta_start, &stats)?;
        let meta = with_offset_index(src, meta, meta_start)?;
        let meta = guarded("reading segment arrow schema", || {
            Ok(ArrowReaderMetadata::try_new(
                Arc::new(meta),
                ArrowReaderOptions::new(),
            )?)
        })?;
        let want = arrow_schema(expected, &storage);
        let got = meta.schema();
        if got.fields().len() != want.fields().len() {
            return err("segment arrow schema has the wrong number of fields");
        }
        for (i, (g, w)) in got.fields().iter().zip(want.fields()).enumerate() {
            if g.data_type() != w.data_type() {
                return err(format!(
                    "segment field {i} has arrow type {} instead of {}",
                    g.data_type(),
                    w.data_type()
                ));
            }
        }
        Ok(SegmentReader {
            meta,
            kinds,
            storage,
            schema: stored,
            stats,
            row_ranges,
        })
    }

    fn parquet(&self) -> &ParquetMetaData {
        self.meta.metadata()
    }

    /// Total rows in the segment.
    pub fn rows(&self) -> u64 {
        self.stats.iter().map(|s| s.rows).sum()
    }

    pub fn row_groups(&self) -> usize {
        self.stats.len()
    }

    /// Rows in `group` (panics if the group does not exist).
    pub fn group_rows(&self, group: usize) -> u64 {
        self.stats[group].rows
    }

    /// Smallest and largest row number in `group`, from the row-number
    /// column's Parquet statistics (their presence is checked at open).
    pub fn group_row_range(&self, group: usize) -> (u64, u64) {
        self.row_ranges[group]
    }

    /// Statistics the writer computed for `group`.
    pub fn group_stats(&self, group: usize) -> &GroupStats {
        &self.stats[group]
    }

    /// Statistics merged over all groups.
    pub fn segment_stats(&self) -> GroupStats {
        let mut all = GroupStats::empty(self.kinds.len());
        for s in &self.stats {
            all.merge(s);
        }
        all
    }

    /// Compressed bytes per schema column, summed over groups.
    pub fn column_chunk_bytes(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.kinds.len()];
        for rg in self.parquet().row_groups() {
            for (i, total) in out.iter_mut().enumerate() {
                *total += rg.column(i + 1).compressed_size().max(0) as u64;
            }
        }
        out
    }

    /// Uncompressed bytes of all column chunks (row numbers included).
    pub fn uncompressed_bytes(&self) -> u64 {
        let chunks = self
            .parquet()
            .row_groups()
            .iter()
            .flat_map(|rg| rg.columns());
        chunks.map(|c| c.uncompressed_size().max(0) as u64).sum()
    }

    /// Copy out of `src` the column chunks that [`SegmentReader::read_group`]
    /// of `columns` needs for each of `groups`.
    pub fn copy_chunks(
        &self,
        src: &dyn SegmentSource,
        groups: &[usize],
        columns: &[usize],
    ) -> Result<CopiedChunks> {
        let mut chunks = Vec::new();
        for &group in groups {
            let (_, leaves) = self.projection(group, columns)?;
            let rg = self.parquet().row_group(group);
            for leaf in leaves {
                let (start, len) = rg.column(leaf).byte_range();
                chunks.push((start, read_exact(src, start, len, "column chunk")?));
            }
        }
        chunks.sort_by_key(|c| c.0);
        Ok(CopiedChunks {
            len: src.len(),
            chunks,
        })
    }

    /// Decodes `columns` (schema column indexes) and the row numbers of
    /// `group`, reading only those column chunks from `src`.
    pub fn read_group(
        &self,
        src: &dyn SegmentSource,
        group: usize,
        columns: &[usize],
    ) -> Result<DecodedGroup> {
        let (wanted, leaves) = self.projection(group, columns)?;
        let rg = self.parquet().row_group(group);
        let mut chunks = Vec::with_capacity(leaves.len());
        for &leaf in &leaves {
            let (start, len) = rg.column(leaf).byte_range();
            let bytes = read_exact(src, start, len, "column chunk")?;
            chunks.push((start, Bytes::from(bytes)));
        }
        chunks.sort_by_key(|c| c.0);
        let sparse = Sparse {
            len: src.len(),
            chunks,
        };
        let rows = self.stats[group].rows;
        self.decode(sparse, group, &wanted, leaves, None, rows)
    }

    /// Like [`SegmentReader::read_group`], for `count` rows of `group` from
    /// position `first` (0-based within the group): only the data pages
    /// holding them (and dictionaries) are read and decoded, if the segment
    /// has a page index; otherwise the whole column chunks are read.
    pub fn read_rows(
        &self,
        src: &dyn SegmentSource,
        group: usize,
        columns: &[usize],
        first: u64,
        count: u64,
    ) -> Result<DecodedGroup> {
        let (wanted, leaves) = self.projection(group, columns)?;
        let rows = self.stats[group].rows;
        if count == 0 || first.checked_add(count).is_none_or(|end| end > rows) {
            return err(format!(
                "rows {first}+{count} are outside row group {group}'s {rows}"
            ));
        }
        let rg = self.parquet().row_group(group);
        let index = self.parquet().offset_index().and_then(|x| x.get(group));
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &leaf in &leaves {
            let (start, len) = rg.column(leaf).byte_range();
            let pages = index
                .and_then(|cols| cols.get(leaf))
                .map(|o| o.page_locations());
            let Some(pages) = pages.filter(|p| !p.is_empty()) else {
                ranges.push((start, len));
                continue;
            };
            // Pages must lie inside their chunk (else: read the chunk).
            let inside = pages.iter().all(|p| {
                let (o, l) = (p.offset as u64, p.compressed_page_size as u64);
                p.offset >= 0 && o >= start && o.saturating_add(l) <= start + len
            });
            if !inside {
                ranges.push((start, len));
                continue;
            }
            // The dictionary page (before the first data page), then the
            // data pages overlapping the selected rows.
            let first_data = pages[0].offset as u64;
            if first_data > start {
                ranges.push((start, first_data - start));
            }
            let end_row = first + count;
            for (k, p) in pages.iter().enumerate() {
                let lo = p.first_row_index.max(0) as u64;
                let hi = pages
                    .get(k + 1)
                    .map_or(rows, |n| n.first_row_index.max(0) as u64);
                if lo < end_row && hi > first {
                    ranges.push((p.offset as u64, p.compressed_page_size as u64));
                }
            }
        }
        ranges.sort_unstable();
        let mut chunks: Vec<(u64, Bytes)> = Vec::with_capacity(ranges.len());
        for (start, len) in ranges {
            // Adjacent pages are read as one chunk.
            if let Some((base, bytes)) = chunks.last_mut() {
                if *base + bytes.len() as u64 == start {
                    let more = read_exact(src, start, len, "data page")?;
                    let mut joined = bytes.to_vec();
                    joined.extend_from_slice(&more);
                    *bytes = Bytes::from(joined);
                    continue;
                }
            }
            chunks.push((
                start,
                Bytes::from(read_exact(src, start, len, "data page")?),
            ));
        }
        let sparse = Sparse {
            len: src.len(),
            chunks,
        };
        let selection = RowSelection::from(vec![
            RowSelector::skip(first as usize),
            RowSelector::select(count as usize),
        ]);
        self.decode(sparse, group, &wanted, leaves, Some(selection), count)
    }

    /// Check `group` and `columns`; returns the columns sorted and deduped,
    /// and the Parquet leaves to read (the row numbers, then those).
    fn projection(&self, group: usize, columns: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
        if group >= self.row_groups() {
            return err(format!(
                "row group {group} does not exist (segment has {})",
                self.row_groups()
            ));
        }
        let mut wanted: Vec<usize> = columns.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if let Some(&bad) = wanted.iter().find(|&&c| c >= self.kinds.len()) {
            return err(format!(
                "column {bad} does not exist (schema has {})",
                self.kinds.len()
            ));
        }
        let leaves: Vec<usize> = std::iter::once(0)
            .chain(wanted.iter().map(|c| c + 1))
            .collect();
        Ok((wanted, leaves))
    }

    /// Decode `leaves` of `group` (all its rows, or `selection`) from the
    /// bytes in `sparse`; `rows` is how many rows that must give.
    fn decode(
        &self,
        sparse: Sparse,
        group: usize,
        wanted: &[usize],
        leaves: Vec<usize>,
        selection: Option<RowSelection>,
        rows: u64,
    ) -> Result<DecodedGroup> {
        let batch_size = usize::try_from(rows).unwrap_or(usize::MAX).max(1);
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), leaves);
        let batches = guarded("decoding row group", || {
            let mut builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(sparse, self.meta.clone())
                    .with_row_groups(vec![group])
                    .with_projection(mask)
                    .with_batch_size(batch_size);
            if let Some(selection) = selection {
                builder = builder.with_row_selection(selection);
            }
            let reader = builder.build()?;
            Ok(reader.collect::<std::result::Result<Vec<RecordBatch>, _>>()?)
        })?;
        let decoded: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if decoded != rows || batches.len() > 1 {
            return err(format!(
                "row group {group} decoded {decoded} rows in {} batches, expected {rows} in one",
                batches.len()
            ));
        }
        let mut out = DecodedGroup {
            row_numbers: Int64Array::from(Vec::<i64>::new()),
            columns: (0..self.kinds.len()).map(|_| None).collect(),
        };
        let Some(batch) = batches.into_iter().next() else {
            return Ok(out);
        };
        if batch.num_columns() != wanted.len() + 1 {
            return err("decoded row group has the wrong number of columns");
        }
        out.row_numbers = typed::<Int64Array>(batch.column(0), "row number")?;
        check_row_numbers(&out.row_numbers, group)?;
        for (k, &col) in wanted.iter().enumerate() {
            let decoded =
                DecodedColumn::new(self.kinds[col], self.storage[col], batch.column(k + 1), col)?;
            out.columns[col] = Some(decoded);
        }
        Ok(out)
    }
}

/// Load the offset index (page locations) into `meta` if the segment has
/// one inside its data area; without it, reads fall back to whole chunks.
fn with_offset_index(
    src: &dyn SegmentSource,
    meta: ParquetMetaData,
    data_end: u64,
) -> Result<ParquetMetaData> {
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for rg in meta.row_groups() {
        for c in rg.columns() {
            match (c.offset_index_offset(), c.offset_index_length()) {
                (Some(o), Some(l)) if o >= 0 && l > 0 => {
                    lo = lo.min(o as u64);
                    hi = hi.max((o as u64).saturating_add(l as u64));
                }
                _ => return Ok(meta), // not every chunk has one: do without
            }
        }
    }
    if lo >= hi || hi > data_end {
        return Ok(meta);
    }
    let bytes = read_exact(src, lo, hi - lo, "page index")?;
    let total = src.len();
    let sparse = Sparse {
        len: total,
        chunks: vec![(lo, Bytes::from(bytes))],
    };
    guarded("reading segment page index", || {
        let mut r = ParquetMetaDataReader::new_with_metadata(meta)
            .with_offset_index_policy(PageIndexPolicy::Optional)
            .with_column_index_policy(PageIndexPolicy::Skip);
        r.read_page_indexes_sized(&sparse, total)?;
        Ok(r.finish()?)
    })
}

/// Checks the Parquet layout matches the writer's (column count, sane
/// sizes, chunks inside the data area, row-number statistics present) and
/// returns each group's row-number range.
fn check_layout(
    meta: &ParquetMetaData,
    n: usize,
    data_end: u64,
    stats: &[GroupStats],
) -> Result<Vec<(u64, u64)>> {
    if meta.file_metadata().schema_descr().num_columns() != n + 1 {
        return err(format!(
            "segment has {} Parquet columns, expected {}",
            meta.file_metadata().schema_descr().num_columns(),
            n + 1
        ));
    }
    let mut ranges = Vec::with_capacity(meta.num_row_groups());
    for (g, rg) in meta.row_groups().iter().enumerate() {
        if rg.num_columns() != n + 1 {
            return err(format!("row group {g} has {} columns", rg.num_columns()));
        }
        if u64::try_from(rg.num_rows()).ok() != Some(stats[g].rows) {
            return err(format!(
                "row group {g} has {} rows but its stats say {}",
                rg.num_rows(),
                stats[g].rows
            ));
        }
        for (c, chunk) in rg.columns().iter().enumerate() {
            let (start, len) = chunk.byte_range();
            if start.checked_add(len).is_none_or(|end| end > data_end) {
                return err(format!(
                    "row group {g} column chunk {c} lies outside the segment data"
                ));
            }
        }
        let range = match rg.column(0).statistics() {
            Some(Statistics::Int64(s)) => s.min_opt().copied().zip(s.max_opt().copied()),
            _ => None,
        };
        match range {
            Some((min, max)) if 0 <= min && min <= max => ranges.push((min as u64, max as u64)),
            _ => return err(format!("row group {g} lacks valid row-number statistics")),
        }
    }
    Ok(ranges)
}

fn typed<T: Array + Clone + 'static>(array: &ArrayRef, what: &str) -> Result<T> {
    array.as_any().downcast_ref::<T>().cloned().ok_or_else(|| {
        Error(format!(
            "decoded {what} column has arrow type {}",
            array.data_type()
        ))
    })
}

/// Row numbers must be non-NULL, non-negative and strictly ascending.
fn check_row_numbers(rn: &Int64Array, group: usize) -> Result<()> {
    if rn.null_count() != 0 {
        return err(format!("row group {group} has NULL row numbers"));
    }
    if rn.values().first().is_some_and(|&v| v < 0) || rn.values().windows(2).any(|w| w[0] >= w[1]) {
        return err(format!("row group {group} row numbers are not ascending"));
    }
    Ok(())
}

/// A decoded column, typed once so `value` does not downcast per call.
enum DecodedColumn {
    Bool(BooleanArray),
    Char(Int8Array),
    Int16(Int16Array),
    Int32(Int32Array),
    Int64(Int64Array),
    Float32(Float32Array),
    Float64(Float64Array),
    Fixed(FixedSizeBinaryArray),
    Bytes(LargeBinaryArray),
    /// A [`Storage::ScaledNumeric`] column; the PostgreSQL images are built
    /// on first use by the row-at-a-time paths.
    Scaled(ScaledColumn),
}

/// The scaled integers of a numeric column and, once asked for, their
/// PostgreSQL images.
struct ScaledColumn {
    ints: Int64Array,
    scale: u16,
    images: OnceLock<LargeBinaryArray>,
}

impl ScaledColumn {
    fn images(&self) -> &LargeBinaryArray {
        self.images
            .get_or_init(|| unscale_all(&self.ints, self.scale))
    }
}

impl DecodedColumn {
    fn new(
        kind: ColumnKind,
        storage: Storage,
        array: &ArrayRef,
        col: usize,
    ) -> Result<DecodedColumn> {
        let what = format!("schema column {col}");
        if let Storage::ScaledNumeric { scale } = storage {
            return Ok(DecodedColumn::Scaled(ScaledColumn {
                ints: typed(array, &what)?,
                scale,
                images: OnceLock::new(),
            }));
        }
        Ok(match kind {
            ColumnKind::Bool => DecodedColumn::Bool(typed(array, &what)?),
            ColumnKind::Char => DecodedColumn::Char(typed(array, &what)?),
            ColumnKind::Int16 => DecodedColumn::Int16(typed(array, &what)?),
            ColumnKind::Int32 => DecodedColumn::Int32(typed(array, &what)?),
            ColumnKind::Int64 => DecodedColumn::Int64(typed(array, &what)?),
            ColumnKind::Float32 => DecodedColumn::Float32(typed(array, &what)?),
            ColumnKind::Float64 => DecodedColumn::Float64(typed(array, &what)?),
            ColumnKind::Fixed(n) => {
                let a: FixedSizeBinaryArray = typed(array, &what)?;
                if a.value_length() != i32::from(n) {
                    return err(format!("{what} has fixed width {}", a.value_length()));
                }
                DecodedColumn::Fixed(a)
            }
            ColumnKind::Bytes => DecodedColumn::Bytes(typed(array, &what)?),
        })
    }
}

/// One decoded column as stored (see [`DecodedGroup::column_data`]); words
/// are the arrays' values, which [`DecodedGroup::value`] turns into the
/// canonical words of the crate docs.
pub enum ColumnData<'a> {
    Bool(&'a BooleanArray),
    Char(&'a Int8Array),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Fixed(&'a FixedSizeBinaryArray),
    Bytes(&'a LargeBinaryArray),
    /// A scaled numeric's stored integers and scale; value i's image is
    /// [`crate::storage::scaled_into`]`(ints[i], scale)` (NaN included).
    Scaled(&'a Int64Array, u16),
}

/// The decoded rows of one row group (row numbers plus projected columns).
pub struct DecodedGroup {
    row_numbers: Int64Array,
    columns: Vec<Option<DecodedColumn>>,
}

impl DecodedGroup {
    pub fn len(&self) -> usize {
        self.row_numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row number of row `i` (ascending in `i`).
    pub fn row_number(&self, i: usize) -> u64 {
        self.row_numbers.value(i) as u64
    }

    /// The row numbers, ascending.
    pub fn row_numbers(&self) -> &Int64Array {
        &self.row_numbers
    }

    /// Schema column `column` as stored (see [`crate::logical`]), or None if
    /// it was not decoded.
    pub fn array(&self, column: usize) -> Option<ArrayRef> {
        let col = self.columns.get(column)?.as_ref()?;
        Some(match col {
            DecodedColumn::Bool(a) => Arc::new(a.clone()),
            DecodedColumn::Char(a) => Arc::new(a.clone()),
            DecodedColumn::Int16(a) => Arc::new(a.clone()),
            DecodedColumn::Int32(a) => Arc::new(a.clone()),
            DecodedColumn::Int64(a) => Arc::new(a.clone()),
            DecodedColumn::Float32(a) => Arc::new(a.clone()),
            DecodedColumn::Float64(a) => Arc::new(a.clone()),
            DecodedColumn::Fixed(a) => Arc::new(a.clone()),
            DecodedColumn::Bytes(a) => Arc::new(a.clone()),
            DecodedColumn::Scaled(c) => Arc::new(c.images().clone()),
        })
    }

    /// Schema column `column` in its logical form ([`logical::to_logical`]),
    /// or None if it was not decoded. A scaled numeric becomes a
    /// `Decimal128` without building its PostgreSQL images.
    pub fn logical_array(&self, column: usize, logical: Logical) -> Option<Result<ArrayRef>> {
        if let Some(DecodedColumn::Scaled(c)) = self.columns.get(column).and_then(Option::as_ref) {
            if let Logical::Numeric { precision, scale } = logical {
                if i32::from(scale) == i32::from(c.scale) {
                    return Some(logical::scaled_to_decimal(&c.ints, precision, scale));
                }
            }
        }
        let stored = self.array(column)?;
        Some(logical::to_logical(&stored, logical))
    }

    /// [`DecodedGroup::logical_array`] of the rows at positions `rows`
    /// only (all rows if None): they are taken before the conversion, so
    /// a scan that filtered most rows out converts only the rest.
    pub fn logical_array_at(
        &self,
        column: usize,
        logical: Logical,
        rows: Option<&arrow_array::UInt32Array>,
    ) -> Option<Result<ArrayRef>> {
        let Some(rows) = rows else {
            return self.logical_array(column, logical);
        };
        let take = |a: &dyn Array| {
            arrow_select::take::take(a, rows, None)
                .map_err(|e| Error(format!("selecting rows of column {column}: {e}")))
        };
        if let Some(DecodedColumn::Scaled(c)) = self.columns.get(column).and_then(Option::as_ref) {
            if let Logical::Numeric { precision, scale } = logical {
                if i32::from(scale) == i32::from(c.scale) {
                    return Some(take(&c.ints).and_then(|a| {
                        let ints = a.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
                            Error("a scaled numeric's integers are not Int64".into())
                        })?;
                        logical::scaled_to_decimal(ints, precision, scale)
                    }));
                }
            }
        }
        let stored = self.array(column)?;
        Some(take(&stored).and_then(|a| logical::to_logical(&a, logical)))
    }

    /// Bytes the decoded arrays occupy (what a cache holding this group
    /// counts; a scaled numeric's images, built later on demand, are
    /// counted as twice its integers).
    pub fn memory_size(&self) -> usize {
        let column = |c: &DecodedColumn| match c {
            DecodedColumn::Bool(a) => a.get_array_memory_size(),
            DecodedColumn::Char(a) => a.get_array_memory_size(),
            DecodedColumn::Int16(a) => a.get_array_memory_size(),
            DecodedColumn::Int32(a) => a.get_array_memory_size(),
            DecodedColumn::Int64(a) => a.get_array_memory_size(),
            DecodedColumn::Float32(a) => a.get_array_memory_size(),
            DecodedColumn::Float64(a) => a.get_array_memory_size(),
            DecodedColumn::Fixed(a) => a.get_array_memory_size(),
            DecodedColumn::Bytes(a) => a.get_array_memory_size(),
            DecodedColumn::Scaled(c) => 3 * c.ints.get_array_memory_size(),
        };
        self.row_numbers.get_array_memory_size()
            + self.columns.iter().flatten().map(column).sum::<usize>()
    }

    /// Index of the row with `row_number`, by binary search.
    pub fn position_of(&self, row_number: u64) -> Option<usize> {
        let target = i64::try_from(row_number).ok()?;
        self.row_numbers.values().binary_search(&target).ok()
    }

    /// An upper bound on the total bytes of the by-reference values of
    /// schema column `column`: exact for byte columns, every slot (NULLs
    /// included) for fixed-width ones, 0 for word columns. Panics if the
    /// column was not decoded.
    pub fn value_bytes(&self, column: usize) -> usize {
        match self.columns.get(column).and_then(Option::as_ref) {
            Some(DecodedColumn::Bytes(a)) => {
                let offsets = a.value_offsets();
                (offsets[offsets.len() - 1] - offsets[0]) as usize
            }
            Some(DecodedColumn::Fixed(a)) => a.len() * a.value_length() as usize,
            Some(DecodedColumn::Scaled(c)) => {
                let a = c.images();
                let offsets = a.value_offsets();
                (offsets[offsets.len() - 1] - offsets[0]) as usize
            }
            Some(_) => 0,
            None => panic!("DecodedGroup::value_bytes: column {column} was not decoded"),
        }
    }

    /// Schema column `column`'s decoded arrays, borrowed, for callers that
    /// convert a whole column at a time; None if it was not decoded.
    pub fn column_data(&self, column: usize) -> Option<ColumnData<'_>> {
        let col = self.columns.get(column)?.as_ref()?;
        Some(match col {
            DecodedColumn::Bool(a) => ColumnData::Bool(a),
            DecodedColumn::Char(a) => ColumnData::Char(a),
            DecodedColumn::Int16(a) => ColumnData::Int16(a),
            DecodedColumn::Int32(a) => ColumnData::Int32(a),
            DecodedColumn::Int64(a) => ColumnData::Int64(a),
            DecodedColumn::Float32(a) => ColumnData::Float32(a),
            DecodedColumn::Float64(a) => ColumnData::Float64(a),
            DecodedColumn::Fixed(a) => ColumnData::Fixed(a),
            DecodedColumn::Bytes(a) => ColumnData::Bytes(a),
            DecodedColumn::Scaled(c) => ColumnData::Scaled(&c.ints, c.scale),
        })
    }

    /// Every value of schema column `column`, in row order, as
    /// [`DecodedGroup::value`] gives them (one dispatch per column, not per
    /// value). Panics if the column was not decoded (a caller bug).
    pub fn for_each_value<'a>(&'a self, column: usize, mut f: impl FnMut(usize, Value<'a>)) {
        let Some(col) = self.columns.get(column).and_then(Option::as_ref) else {
            panic!("DecodedGroup::for_each_value: column {column} was not decoded");
        };
        macro_rules! each {
            ($a:expr, |$v:ident| $make:expr) => {
                for i in 0..$a.len() {
                    if $a.is_null(i) {
                        f(i, Value::Null)
                    } else {
                        let $v = $a.value(i);
                        f(i, $make)
                    }
                }
            };
        }
        match col {
            DecodedColumn::Bool(a) => each!(a, |v| Value::Word(u64::from(v))),
            DecodedColumn::Char(a) => each!(a, |v| Value::Word(i64::from(v) as u64)),
            DecodedColumn::Int16(a) => each!(a, |v| Value::Word(i64::from(v) as u64)),
            DecodedColumn::Int32(a) => each!(a, |v| Value::Word(i64::from(v) as u64)),
            DecodedColumn::Int64(a) => each!(a, |v| Value::Word(v as u64)),
            DecodedColumn::Float32(a) => each!(a, |v| Value::Word(u64::from(v.to_bits()))),
            DecodedColumn::Float64(a) => each!(a, |v| Value::Word(v.to_bits())),
            DecodedColumn::Fixed(a) => each!(a, |v| Value::Bytes(v)),
            DecodedColumn::Bytes(a) => each!(a, |v| Value::Bytes(v)),
            DecodedColumn::Scaled(c) => each!(c.images(), |v| Value::Bytes(v)),
        }
    }

    /// Value of schema column `column` in row `i`, with words in the
    /// canonical form of the crate docs. Panics if the column was not
    /// decoded or `i` is out of range (caller bugs).
    pub fn value(&self, column: usize, i: usize) -> Value<'_> {
        let Some(col) = self.columns.get(column).and_then(Option::as_ref) else {
            panic!("DecodedGroup::value: column {column} was not decoded");
        };
        macro_rules! word {
            ($a:expr, $conv:expr) => {
                if $a.is_null(i) {
                    Value::Null
                } else {
                    Value::Word($conv($a.value(i)))
                }
            };
        }
        match col {
            DecodedColumn::Bool(a) => word!(a, u64::from),
            DecodedColumn::Char(a) => word!(a, |v: i8| i64::from(v) as u64),
            DecodedColumn::Int16(a) => word!(a, |v: i16| i64::from(v) as u64),
            DecodedColumn::Int32(a) => word!(a, |v: i32| i64::from(v) as u64),
            DecodedColumn::Int64(a) => word!(a, |v: i64| v as u64),
            DecodedColumn::Float32(a) => word!(a, |v: f32| u64::from(v.to_bits())),
            DecodedColumn::Float64(a) => word!(a, f64::to_bits),
            DecodedColumn::Fixed(a) if a.is_null(i) => Value::Null,
            DecodedColumn::Fixed(a) => Value::Bytes(a.value(i)),
            DecodedColumn::Bytes(a) if a.is_null(i) => Value::Null,
            DecodedColumn::Bytes(a) => Value::Bytes(a.value(i)),
            DecodedColumn::Scaled(c) if c.images().is_null(i) => Value::Null,
            DecodedColumn::Scaled(c) => Value::Bytes(c.images().value(i)),
        }
    }
}

/// In-memory copy of just the column chunks a read needs, addressed by
/// their offsets in the whole segment.
struct Sparse {
    len: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl Sparse {
    /// The bytes from `start` to the end of the chunk containing it.
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        for (base, bytes) in &self.chunks {
            if start >= *base && start - base < bytes.len() as u64 {
                return Ok(bytes.slice((start - base) as usize..));
            }
        }
        Err(ParquetError::General(format!(
            "offset {start} is outside the column chunks read"
        )))
    }
}

impl Length for Sparse {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Sparse {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let rest = self.from(start)?;
        if rest.len() < length {
            return Err(ParquetError::General(format!(
                "{length} bytes at offset {start} run past the column chunk read"
            )));
        }
        Ok(rest.slice(..length))
    }
}
