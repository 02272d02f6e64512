//! Storage codec for omendb's columnar table access method.
//!
//! PostgreSQL rows arrive here already reduced to raw datum images
//! ([`Value`]), so this crate never links against PostgreSQL. It provides:
//!
//! * row records ([`encode_row`] / [`decode_row`]): a compact, self-delimiting
//!   per-row encoding used by the row-format write store;
//! * segments ([`SegmentWriter`] / [`SegmentReader`]): Parquet files holding
//!   many rows column by column, plus exact per-row-group statistics
//!   ([`GroupStats`]) with PostgreSQL comparison semantics for skipping.
//!
//! Word conventions (what [`Value::Word`] holds when decoding):
//! * `Bool`: 0 or 1 (any non-zero word encodes as true);
//! * `Char`, `Int16`, `Int32`: sign-extended from their width, like
//!   PostgreSQL's `CharGetDatum`/`Int16GetDatum`/`Int32GetDatum`;
//! * `Int64`, `Float64`: the full word;
//! * `Float32`: the f32 bit pattern, zero-extended.
//!
//! Only the low bits of each width are ever stored, so callers may pass
//! words with any high bits.

pub mod logical;
pub mod numeric;
pub mod prune;
mod reader;
mod row;
mod schema;
mod stats;
pub mod storage;
mod writer;

pub use reader::{
    ColumnData, CopiedChunks, DecodedGroup, Part, PartCache, SegmentReader, SegmentSource,
};
pub use row::{decode_row, encode_row};
pub use schema::{ColumnKind, ColumnSpec, Error, Result, Schema, Value};
pub use stats::{ColumnStats, GroupStats};
pub use writer::{SegmentWriter, DATA_PAGE_ROWS};

/// Written into the Parquet key-value metadata as `omendb.format_version`;
/// bump when the segment layout or metadata encoding changes incompatibly.
/// Readers accept every version from 1 up to this one: version 1 stores
/// every column as its PostgreSQL image, version 2 adds per-column
/// [`storage::Storage`] (scaled numerics). A segment that needs nothing of
/// version 2 is still written as version 1.
pub const FORMAT_VERSION: u32 = 2;

/// Name of the hidden, always-first Parquet column holding row numbers.
pub const ROW_NUMBER_COLUMN: &str = "__omendb_row";
