//! Segment writer: buffers rows column-wise and encodes each full row group
//! to Parquet immediately, so memory stays bounded by one group plus the
//! compressed output.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, Int8Builder, LargeBinaryBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::schema::{encode_schema, err, value_mismatch, ColumnKind, Error, Result, Schema, Value};
use crate::stats::{encode_all, GroupStats};
use crate::storage::{encode_storage, scale_numeric, Storage};
use crate::{FORMAT_VERSION, ROW_NUMBER_COLUMN};

/// Key-value metadata keys.
pub(crate) const KEY_VERSION: &str = "omendb.format_version";
pub(crate) const KEY_SCHEMA: &str = "omendb.schema";
pub(crate) const KEY_STATS: &str = "omendb.stats";
pub(crate) const KEY_STORAGE: &str = "omendb.storage";
/// The format of segments whose columns are all [`Storage::Plain`].
pub(crate) const PLAIN_FORMAT_VERSION: u32 = 1;

/// A row group is cut early once its raw values exceed this many bytes, so a
/// run of huge varlenas cannot make one group (and its memory) unbounded.
const MAX_GROUP_BYTES: usize = 256 << 20;

/// Rows per Parquet data page: a fetch of one row by its TID decompresses
/// one page per column, so pages are kept well below the row group's size.
pub const DATA_PAGE_ROWS: usize = 4096;
/// A column's dictionary page is decoded by every read of its chunk, even
/// of one row: past this size a column falls back to plain encoding (which
/// zstd compresses about as well for values that rarely repeat).
const DICTIONARY_PAGE_BYTES: usize = 64 << 10;

/// Builds one Parquet segment from rows pushed in row-number order.
pub struct SegmentWriter {
    kinds: Vec<ColumnKind>,
    storage: Vec<Storage>,
    /// Scaled integers of the row being pushed, computed before any column
    /// is appended so a refused value leaves the writer unchanged.
    scaled: Vec<Option<i64>>,
    /// The scaled column whose value the last refused push could not store.
    refused: Option<usize>,
    arrow_schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    rows_per_group: usize,
    row_numbers: Int64Builder,
    builders: Vec<ColumnBuilder>,
    group: GroupStats,
    group_rows: usize,
    group_bytes: usize,
    stats: Vec<GroupStats>,
    rows: u64,
    last_row: Option<u64>,
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    Char(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Fixed(FixedSizeBinaryBuilder),
    Bytes(LargeBinaryBuilder),
    /// A [`Storage::ScaledNumeric`] column.
    Scaled(Int64Builder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind, storage: Storage) -> ColumnBuilder {
        if let Storage::ScaledNumeric { .. } = storage {
            return ColumnBuilder::Scaled(Int64Builder::new());
        }
        match kind {
            ColumnKind::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnKind::Char => ColumnBuilder::Char(Int8Builder::new()),
            ColumnKind::Int16 => ColumnBuilder::Int16(Int16Builder::new()),
            ColumnKind::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            ColumnKind::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            ColumnKind::Float32 => ColumnBuilder::Float32(Float32Builder::new()),
            ColumnKind::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            ColumnKind::Fixed(n) => ColumnBuilder::Fixed(FixedSizeBinaryBuilder::new(i32::from(n))),
            ColumnKind::Bytes => ColumnBuilder::Bytes(LargeBinaryBuilder::new()),
        }
    }

    /// Appends a value already checked by `value_mismatch` (and, for a
    /// scaled column, converted to `scaled`).
    fn append(&mut self, value: &Value, scaled: Option<i64>) -> Result<()> {
        use ColumnBuilder as B;
        match (self, *value) {
            (B::Scaled(b), Value::Null) => b.append_null(),
            (B::Scaled(b), Value::Bytes(_)) => match scaled {
                Some(v) => b.append_value(v),
                None => return err("scaled value was not converted"),
            },
            (B::Bool(b), Value::Null) => b.append_null(),
            (B::Char(b), Value::Null) => b.append_null(),
            (B::Int16(b), Value::Null) => b.append_null(),
            (B::Int32(b), Value::Null) => b.append_null(),
            (B::Int64(b), Value::Null) => b.append_null(),
            (B::Float32(b), Value::Null) => b.append_null(),
            (B::Float64(b), Value::Null) => b.append_null(),
            (B::Fixed(b), Value::Null) => b.append_null(),
            (B::Bytes(b), Value::Null) => b.append_null(),
            (B::Bool(b), Value::Word(w)) => b.append_value(w != 0),
            (B::Char(b), Value::Word(w)) => b.append_value(w as u8 as i8),
            (B::Int16(b), Value::Word(w)) => b.append_value(w as u16 as i16),
            (B::Int32(b), Value::Word(w)) => b.append_value(w as u32 as i32),
            (B::Int64(b), Value::Word(w)) => b.append_value(w as i64),
            (B::Float32(b), Value::Word(w)) => b.append_value(f32::from_bits(w as u32)),
            (B::Float64(b), Value::Word(w)) => b.append_value(f64::from_bits(w)),
            (B::Fixed(b), Value::Bytes(v)) => b.append_value(v)?,
            (B::Bytes(b), Value::Bytes(v)) => b.append_value(v),
            _ => return err("value does not match column kind"),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Char(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Fixed(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
            ColumnBuilder::Scaled(b) => Arc::new(b.finish()),
        }
    }
}

/// Arrow schema of a segment: the row-number column, then `c0`, `c1`, ...
/// (PostgreSQL names may repeat or be odd; the real names live in metadata).
pub(crate) fn arrow_schema(schema: &Schema, storage: &[Storage]) -> ArrowSchema {
    let mut fields = vec![Field::new(ROW_NUMBER_COLUMN, DataType::Int64, false)];
    for (i, (col, st)) in schema.columns.iter().zip(storage).enumerate() {
        let ty = match st {
            Storage::Plain => col.kind.arrow_type(),
            Storage::ScaledNumeric { .. } => DataType::Int64,
        };
        fields.push(Field::new(format!("c{i}"), ty, true));
    }
    ArrowSchema::new(fields)
}

impl SegmentWriter {
    /// Starts a segment for `schema`, cutting a row group every
    /// `rows_per_group` rows (or earlier for very large values).
    pub fn new(schema: &Schema, rows_per_group: usize) -> Result<Self> {
        let storage = schema.columns.iter().map(Storage::for_column).collect();
        Self::with_storage(schema, rows_per_group, storage)
    }

    /// Like [`SegmentWriter::new`], writing the version-1 layout (every
    /// column as its PostgreSQL image), as releases before format 2 did:
    /// for tests that old segments still read.
    pub fn new_plain(schema: &Schema, rows_per_group: usize) -> Result<Self> {
        let storage = vec![Storage::Plain; schema.columns.len()];
        Self::with_storage(schema, rows_per_group, storage)
    }

    /// Like [`SegmentWriter::new`] with the storage of each column chosen
    /// by the caller: [`Storage::Plain`] for any column, or what
    /// [`Storage::for_column`] says. A caller whose push is refused by a
    /// scaled column ([`SegmentWriter::refused_column`]) starts again with
    /// that column plain.
    pub fn with_storage(
        schema: &Schema,
        rows_per_group: usize,
        storage: Vec<Storage>,
    ) -> Result<Self> {
        if storage.len() != schema.columns.len() {
            return err("storage must list every column");
        }
        for (i, (col, st)) in schema.columns.iter().zip(&storage).enumerate() {
            if *st != Storage::Plain && *st != Storage::for_column(col) {
                return err(format!("column {i} cannot be stored as {st:?}"));
            }
        }
        if rows_per_group == 0 {
            return err("rows_per_group must be positive");
        }
        for (i, col) in schema.columns.iter().enumerate() {
            if col.kind == ColumnKind::Fixed(0) {
                return err(format!("column {i} has fixed length 0"));
            }
        }
        let arrow_schema = Arc::new(arrow_schema(schema, &storage));
        let plain = storage.iter().all(|s| *s == Storage::Plain);
        let version = if plain {
            PLAIN_FORMAT_VERSION
        } else {
            FORMAT_VERSION
        };
        let mut kv = vec![
            KeyValue::new(KEY_VERSION.to_string(), version.to_string()),
            KeyValue::new(KEY_SCHEMA.to_string(), encode_schema(schema)),
        ];
        if !plain {
            kv.push(KeyValue::new(
                KEY_STORAGE.to_string(),
                encode_storage(&storage),
            ));
        }
        let mut props = WriterProperties::builder();
        // Integers (and dates, timestamps, scaled numerics) are bit-packed
        // deltas and not zstd'd: as small, and a scan or fetch no longer
        // pays zstd (parquet-rs makes a decompression context per page,
        // which cost more than decoding the values).
        let packed = |path: &str, props: WriterPropertiesBuilder| {
            props
                .set_column_dictionary_enabled(ColumnPath::from(path), false)
                .set_column_encoding(ColumnPath::from(path), Encoding::DELTA_BINARY_PACKED)
                .set_column_compression(ColumnPath::from(path), Compression::UNCOMPRESSED)
        };
        props = packed(ROW_NUMBER_COLUMN, props);
        for (i, (col, st)) in schema.columns.iter().zip(&storage).enumerate() {
            let integer = matches!(
                col.kind,
                ColumnKind::Char | ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64
            );
            if integer || *st != Storage::Plain {
                props = packed(&format!("c{i}"), props);
            }
        }
        let props = props
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_max_row_group_size(rows_per_group)
            .set_data_page_row_count_limit(DATA_PAGE_ROWS)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_key_value_metadata(Some(kv))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), arrow_schema.clone(), Some(props))?;
        let kinds: Vec<ColumnKind> = schema.columns.iter().map(|c| c.kind).collect();
        Ok(SegmentWriter {
            builders: kinds
                .iter()
                .zip(&storage)
                .map(|(k, s)| ColumnBuilder::new(*k, *s))
                .collect(),
            group: GroupStats::empty(kinds.len()),
            scaled: vec![None; kinds.len()],
            refused: None,
            kinds,
            storage,
            arrow_schema,
            writer,
            rows_per_group,
            row_numbers: Int64Builder::new(),
            group_rows: 0,
            group_bytes: 0,
            stats: Vec::new(),
            rows: 0,
            last_row: None,
        })
    }

    /// Adds one row. Row numbers must be strictly increasing and at most
    /// `i64::MAX` (they are stored as Parquet INT64). A rejected row leaves
    /// the writer unchanged.
    pub fn push(&mut self, row_number: u64, values: &[Value]) -> Result<()> {
        self.refused = None;
        if values.len() != self.kinds.len() {
            return err(format!(
                "row has {} values, schema has {} columns",
                values.len(),
                self.kinds.len()
            ));
        }
        if let Some(last) = self.last_row {
            if row_number <= last {
                return err(format!(
                    "row number {row_number} does not follow previous row number {last}"
                ));
            }
        }
        let Ok(row_i64) = i64::try_from(row_number) else {
            return err(format!("row number {row_number} exceeds i64::MAX"));
        };
        let mut bytes = 8;
        for (i, (kind, value)) in self.kinds.iter().zip(values).enumerate() {
            if let Some(msg) = value_mismatch(*kind, value) {
                return err(format!("column {i}: {msg}"));
            }
            self.scaled[i] = match (self.storage[i], value) {
                (Storage::ScaledNumeric { scale }, Value::Bytes(b)) => {
                    Some(scale_numeric(b, scale).map_err(|e| {
                        self.refused = Some(i);
                        Error(format!("column {i}: {e}"))
                    })?)
                }
                _ => None,
            };
            bytes += match value {
                Value::Null => 0,
                Value::Word(_) => kind.word_width(),
                Value::Bytes(b) => b.len() + 8,
            };
        }
        for ((builder, value), scaled) in self.builders.iter_mut().zip(values).zip(&self.scaled) {
            builder.append(value, *scaled)?;
        }
        self.row_numbers.append_value(row_i64);
        self.group.add_row(&self.kinds, values);
        self.group_rows += 1;
        self.group_bytes += bytes;
        self.rows += 1;
        self.last_row = Some(row_number);
        if self.group_rows >= self.rows_per_group || self.group_bytes >= MAX_GROUP_BYTES {
            self.flush_group()?;
        }
        Ok(())
    }

    /// The format version the segment is written in: 1 when every column
    /// is stored plain, else [`FORMAT_VERSION`].
    pub fn format_version(&self) -> u32 {
        if self.storage.iter().all(|s| *s == Storage::Plain) {
            PLAIN_FORMAT_VERSION
        } else {
            FORMAT_VERSION
        }
    }

    /// The column of the last refused push, if a scaled column refused it
    /// (a value that [`Storage::Plain`] would store).
    pub fn refused_column(&self) -> Option<usize> {
        self.refused
    }

    /// The storage of each column.
    pub fn storage(&self) -> &[Storage] {
        &self.storage
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rough memory held: unencoded values of the open group plus the
    /// encoded segment so far.
    pub fn buffered_bytes(&self) -> usize {
        self.group_bytes + self.writer.in_progress_size() + self.writer.bytes_written()
    }

    /// Encodes any open group and returns the complete Parquet file.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.flush_group()?;
        self.writer.append_key_value_metadata(KeyValue::new(
            KEY_STATS.to_string(),
            encode_all(&self.stats),
        ));
        // into_inner writes the footer itself; calling finish first would
        // write it twice.
        Ok(self.writer.into_inner()?)
    }

    /// Encodes the open group (if any) as one Parquet row group.
    fn flush_group(&mut self) -> Result<()> {
        if self.group_rows == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.row_numbers.finish())];
        columns.extend(self.builders.iter_mut().map(ColumnBuilder::finish));
        let batch = RecordBatch::try_new(self.arrow_schema.clone(), columns)?;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        let fresh = GroupStats::empty(self.kinds.len());
        self.stats.push(std::mem::replace(&mut self.group, fresh));
        self.group_rows = 0;
        self.group_bytes = 0;
        Ok(())
    }
}
