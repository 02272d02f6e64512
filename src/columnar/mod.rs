//! The `omen_columnar` table access method.
//!
//! Rows are stored in immutable *segments*: Parquet files (`crates/columnar`)
//! written into the table's own main-fork pages, or small row-format batches
//! in shared "write store" pages. Every segment covers a range of row numbers
//! reserved from the metapage; a row's TID encodes its row number, so indexes
//! work unchanged. Which segments exist, and which rows are deleted, is
//! recorded in the extension's catalog tables (`omendb.columnar_segment`,
//! `omendb.columnar_deleted`), so PostgreSQL's heap MVCC on those rows decides
//! visibility: a segment is visible iff its catalog row is, a row is deleted
//! iff its deletion row is.
//!
//! One file per concern: `handler` (routine table and SQL), `catalog`,
//! `storage` (metapage and page formats), `datum` (slots <-> values),
//! `pending` (rows inserted by the running statement), `rows` (reading
//! segments under a snapshot), `scan`, `fetch`, `modify` (delete, update,
//! lock), `ddl` (new storage, truncate, copy, index build), `vacuum`,
//! `compact` (merging segments, purging deleted rows; `purge` removes their
//! index entries, for VACUUM too), `space` (free pages:
//! reuse, reclaiming what aborted writers left, truncation), `stats`.

mod autocompact;
pub(crate) mod autocompact_state;
pub(crate) mod catalog;
mod compact;
mod datum;
pub(crate) mod ddl;
mod fetch;
mod group;
mod handler;
mod modify;
pub(crate) mod pending;
mod purge;
pub(crate) mod pushdown;
pub(crate) mod rows;
mod scan;
pub(crate) mod snapshot;
mod space;
pub(crate) mod stats;
mod storage;
mod vacuum;

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Whether `rel` is an omen_columnar table.
pub(crate) fn is_columnar(rel: pg_sys::Relation) -> bool {
    // SAFETY: open relation.
    std::ptr::eq(unsafe { (*rel).rd_tableam }, &handler::ROUTINE)
}

fn relation_name(rel: pg_sys::Relation) -> String {
    crate::pg::relation_name(rel)
}

/// A stored segment or page of table `rel` is not what it should be.
fn corrupt(rel: pg_sys::Relation, what: String) -> ! {
    crate::error::error_with_hint(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!("omen_columnar table \"{}\": {what}", relation_name(rel)),
        "omendb.columnar_verify reports what is damaged; restore the table from a backup."
            .to_string(),
    )
}

/// Segment at `first_block` of table `rel` could not be read.
pub(crate) fn corrupt_segment(
    rel: pg_sys::Relation,
    first_block: u32,
    e: impl std::fmt::Display,
) -> ! {
    corrupt(rel, format!("segment at block {first_block}: {e}"))
}

/// Rows per TID "block": heap's MaxHeapTuplesPerPage for 8 KiB pages, so a
/// TID's offset stays within what every PostgreSQL component accepts.
const ROWS_PER_TID_BLOCK: u64 = 291;
/// Highest row number a TID can carry (block numbers stop below InvalidBlockNumber).
const MAX_ROW_NUMBER: u64 = (pg_sys::InvalidBlockNumber as u64) * ROWS_PER_TID_BLOCK - 1;

fn row_to_tid(row: u64) -> pg_sys::ItemPointerData {
    let mut tid = pg_sys::ItemPointerData::default();
    let block = (row / ROWS_PER_TID_BLOCK) as u32;
    let offset = (row % ROWS_PER_TID_BLOCK) as u16 + 1;
    tid.ip_blkid.bi_hi = (block >> 16) as u16;
    tid.ip_blkid.bi_lo = (block & 0xffff) as u16;
    tid.ip_posid = offset;
    tid
}

/// The row number a TID names, or None for a TID we never hand out.
fn tid_to_row(tid: &pg_sys::ItemPointerData) -> Option<u64> {
    let block = ((tid.ip_blkid.bi_hi as u32) << 16) | tid.ip_blkid.bi_lo as u32;
    let offset = tid.ip_posid as u64;
    if block == pg_sys::InvalidBlockNumber || offset == 0 || offset > ROWS_PER_TID_BLOCK {
        return None;
    }
    Some(block as u64 * ROWS_PER_TID_BLOCK + offset - 1)
}

/// Called from _PG_init.
pub(crate) fn init() {
    autocompact::init();
    pending::init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_round_trip() {
        for row in [0, 1, 290, 291, 292, 1 << 40, MAX_ROW_NUMBER] {
            assert_eq!(tid_to_row(&row_to_tid(row)), Some(row), "row {row}");
        }
        let mut bad = row_to_tid(5);
        bad.ip_posid = 0;
        assert_eq!(tid_to_row(&bad), None);
    }
}
