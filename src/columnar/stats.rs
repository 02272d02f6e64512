//! `omendb.columnar_stats`, `omendb.columnar_column_bytes` and
//! `omendb.columnar_verify`.

use super::catalog::{Kind, Segment};
use super::rows::{Cursor, Step, Table};
use super::snapshot::visible;
use super::{catalog, corrupt, storage};
use crate::pg::privilege::{self, Access, Expected};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

/// An omen_columnar table opened by OID, closed on drop.
pub struct Open(pub pg_sys::Relation);

impl Open {
    /// Check `oid`'s kind and the caller's right to run `function` on it,
    /// then open it with `lock` and check its kind again.
    pub fn new(oid: pg_sys::Oid, lock: u32, access: Access, function: &str) -> Open {
        privilege::expect_kind(oid, Expected::ColumnarTable);
        privilege::require(oid, access, function);
        // SAFETY: open by OID; the relation exists (checked above, and
        // table_open raises an ERROR if it was dropped since).
        let open = Open(unsafe { pg_sys::table_open(oid, lock as i32) });
        // ALTER TABLE ... SET ACCESS METHOD may have run before the lock.
        privilege::expect_kind(oid, Expected::ColumnarTable);
        open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // SAFETY: opened in new(); the lock is kept to transaction end.
        unsafe { pg_sys::table_close(self.0, pg_sys::NoLock as i32) };
    }
}

/// The segments and deletions a fresh snapshot sees.
fn current(rel: pg_sys::Relation) -> (Vec<Segment>, HashSet<u64>) {
    // SAFETY: snapshot registered for the duration of the catalog reads.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let r = visible(rel, snap);
        pg_sys::UnregisterSnapshot(snap);
        r
    }
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.columnar_stats(tbl pg_catalog.regclass)
RETURNS TABLE (segments bigint, parquet_segments bigint, write_store_segments bigint, row_count bigint,
               deleted_rows bigint, pages bigint, free_pages bigint, stored_bytes bigint, uncompressed_bytes bigint,
               compression_ratio double precision, format_version integer)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.columnar_stats(pg_catalog.regclass) IS
    'Segments, rows, deleted rows and sizes of an omen_columnar table (compression_ratio = uncompressed Parquet bytes / stored Parquet bytes)';
")]
#[allow(clippy::type_complexity)]
fn columnar_stats(
    tbl: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(segments, i64),
        name!(parquet_segments, i64),
        name!(write_store_segments, i64),
        name!(row_count, i64),
        name!(deleted_rows, i64),
        name!(pages, i64),
        name!(free_pages, i64),
        name!(stored_bytes, i64),
        name!(uncompressed_bytes, i64),
        name!(compression_ratio, Option<f64>),
        name!(format_version, i32),
    ),
> {
    let open = Open::new(
        tbl,
        pg_sys::AccessShareLock,
        Access::Read,
        "omendb.columnar_stats",
    );
    let rel = open.0;
    let (segments, deleted) = current(rel);
    let table = Table::new(rel);
    let (mut stored, mut raw, mut parquet_stored) = (0u64, 0u64, 0u64);
    let mut parquet = 0;
    for s in &segments {
        stored += s.byte_length;
        if s.kind == Kind::Parquet {
            parquet += 1;
            parquet_stored += s.byte_length;
            let (reader, _) = table.open_parquet(s);
            raw += reader.uncompressed_bytes();
        }
    }
    let rows: u64 = segments.iter().map(|s| s.row_count).sum();
    TableIterator::once((
        segments.len() as i64,
        parquet,
        segments.len() as i64 - parquet,
        rows as i64,
        deleted.len() as i64,
        storage::nblocks(rel) as i64,
        free_pages(rel),
        stored as i64,
        raw as i64,
        (parquet_stored > 0).then(|| raw as f64 / parquet_stored as f64),
        // The newest segment format in the table (what this build writes
        // when it has no Parquet segment yet).
        segments
            .iter()
            .filter(|s| s.kind == Kind::Parquet)
            .map(|s| s.format_version)
            .max()
            .unwrap_or(omendb_columnar::FORMAT_VERSION) as i32,
    ))
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.columnar_column_bytes(tbl pg_catalog.regclass)
RETURNS TABLE (column_name pg_catalog.text, stored_bytes bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.columnar_column_bytes(pg_catalog.regclass) IS
    'Compressed bytes per column over the Parquet segments of an omen_columnar table';
")]
fn columnar_column_bytes(
    tbl: pg_sys::Oid,
) -> TableIterator<'static, (name!(column_name, String), name!(stored_bytes, i64))> {
    let open = Open::new(
        tbl,
        pg_sys::AccessShareLock,
        Access::Read,
        "omendb.columnar_column_bytes",
    );
    let rel = open.0;
    let (segments, _) = current(rel);
    let table = Table::new(rel);
    let mut bytes = vec![0u64; table.schema.columns.len()];
    for s in segments.iter().filter(|s| s.kind == Kind::Parquet) {
        let (reader, _) = table.open_parquet(s);
        for (i, b) in reader.column_chunk_bytes().into_iter().enumerate() {
            if let Some(t) = bytes.get_mut(i) {
                *t += b;
            }
        }
    }
    // SAFETY: the open relation's descriptor.
    let atts = unsafe {
        (*(*rel).rd_att)
            .attrs
            .as_slice((*(*rel).rd_att).natts as usize)
    };
    let rows: Vec<(String, i64)> = atts
        .iter()
        .zip(bytes)
        .filter(|(a, _)| !a.attisdropped)
        .map(|(a, b)| (pgrx::name_data_to_str(&a.attname).to_string(), b as i64))
        .collect();
    TableIterator::new(rows)
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.columnar_verify(tbl pg_catalog.regclass)
RETURNS TABLE (segments bigint, rows_checked bigint, deleted_rows bigint, pages bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.columnar_verify(pg_catalog.regclass) IS
    'Check every invariant of an omen_columnar table: page formats, segment ranges and contents, deletions; ERROR on the first failure';
")]
fn columnar_verify(
    tbl: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(segments, i64),
        name!(rows_checked, i64),
        name!(deleted_rows, i64),
        name!(pages, i64),
    ),
> {
    // ShareLock: no writer changes the table while we check it.
    let open = Open::new(
        tbl,
        pg_sys::ShareLock,
        Access::Owner,
        "omendb.columnar_verify",
    );
    let rel = open.0;
    let nblocks = storage::nblocks(rel);
    let Some(meta) = storage::meta(rel) else {
        return TableIterator::once((0, 0, 0, nblocks as i64));
    };
    let (segments, deleted) = current(rel);
    let table = Table::new(rel);
    let mut prev_last: Option<u64> = None;
    let mut parquet_pages: Vec<(u32, u32, &str)> = Vec::new();
    let mut checked = 0i64;
    // SAFETY: a slot for decoding rows, dropped below.
    let slot = unsafe { pg_sys::table_slot_create(rel, std::ptr::null_mut()) };
    let columns: Vec<usize> = (0..table.schema.columns.len()).collect();
    for s in &segments {
        let range = format!("segment of rows {}..{}", s.first_row, s.last_row);
        if s.first_row > s.last_row || s.last_row >= meta.next_row {
            corrupt(
                rel,
                format!("{range} is outside the reserved rows 0..{}", meta.next_row),
            );
        }
        if prev_last.is_some_and(|p| s.first_row <= p) {
            corrupt(rel, format!("{range} overlaps the previous segment"));
        }
        prev_last = Some(s.last_row);
        if s.block_count == 0
            || s.first_block == 0
            || s.first_block as u64 + s.block_count as u64 > nblocks as u64
                && s.kind == Kind::Parquet
        {
            corrupt(
                rel,
                format!(
                    "{range} has pages {}+{} outside the table's {nblocks}",
                    s.first_block, s.block_count
                ),
            );
        }
        if s.kind == Kind::Parquet {
            parquet_pages.push((s.first_block, s.block_count, "segment"));
        }
        let mut cursor = Cursor::open(&table, s);
        let mut n = 0u64;
        let mut last: Option<u64> = None;
        let mut order_ok = true;
        let mut step = |r: u64| {
            if last.is_some_and(|l| r <= l) || r < s.first_row || r > s.last_row {
                order_ok = false;
            }
            last = Some(r);
            n += 1;
            Step::Take
        };
        while cursor.next(&table, slot, &columns, &mut step).is_some() {
            pgrx::check_for_interrupts!();
        }
        if !order_ok {
            corrupt(
                rel,
                format!("{range} holds row numbers out of order or out of its range"),
            );
        }
        if n != s.row_count {
            corrupt(
                rel,
                format!(
                    "{range} holds {n} rows, its catalog row says {}",
                    s.row_count
                ),
            );
        }
        checked += n as i64;
    }
    check_pages(rel, meta.storage_id, &segments, parquet_pages, nblocks);
    // Segment ids are never reused. (A segment may lack one: catalog rows
    // from before 0.2.0, as a snapshot older than the upgrade sees them.)
    let mut ids: Vec<u64> = segments
        .iter()
        .filter_map(|s| s.id.map(|(_, n)| n))
        .collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        corrupt(rel, format!("two segments have id {}", w[0]));
    }
    for r in &deleted {
        let i = segments.partition_point(|s| s.first_row <= *r);
        if i == 0 || segments[i - 1].last_row < *r {
            corrupt(rel, format!("deleted row {r} is in no segment"));
        }
    }
    // SAFETY: created above.
    unsafe { pg_sys::ExecDropSingleTupleTableSlot(slot) };
    TableIterator::once((
        segments.len() as i64,
        checked,
        deleted.len() as i64,
        nblocks as i64,
    ))
}

/// Parquet segments and free extents (as a fresh snapshot sees them) must
/// not share pages, with each other or with write-store pages in use, and
/// free extents must lie inside the table.
fn check_pages(
    rel: pg_sys::Relation,
    storage_id: u64,
    segments: &[Segment],
    mut ranges: Vec<(u32, u32, &str)>,
    nblocks: u32,
) {
    // SAFETY: snapshot registered for the duration of the catalog read.
    let free = unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let free = catalog::free_extents(storage_id, snap);
        pg_sys::UnregisterSnapshot(snap);
        free
    };
    for x in &free {
        if x.first_block == 0 || x.first_block as u64 + x.block_count as u64 > nblocks as u64 {
            corrupt(
                rel,
                format!(
                    "free extent {}+{} is outside the table's {nblocks} pages",
                    x.first_block, x.block_count
                ),
            );
        }
        ranges.push((x.first_block, x.block_count, "free extent"));
    }
    let write_store: HashSet<u32> = segments
        .iter()
        .filter(|s| s.kind == Kind::WriteStore)
        .flat_map(|s| storage::write_store_blocks(rel, s.first_block, s.block_count))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            corrupt(
                rel,
                format!(
                    "{} at block {} and {} at block {} share pages",
                    w[0].2, w[0].0, w[1].2, w[1].0
                ),
            );
        }
    }
    for (first, count, what) in &ranges {
        if let Some(b) = (*first..first + count).find(|b| write_store.contains(b)) {
            corrupt(
                rel,
                format!("{what} at block {first} holds write-store page {b}"),
            );
        }
    }
}

/// Pages in free extents a fresh snapshot sees (reusable now or once the
/// replaced segments' catalog rows are pruned).
fn free_pages(rel: pg_sys::Relation) -> i64 {
    let Some(meta) = storage::meta(rel) else {
        return 0;
    };
    // SAFETY: snapshot registered for the duration of the catalog read.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let n = catalog::free_extents(meta.storage_id, snap)
            .iter()
            .map(|x| x.block_count as i64)
            .sum();
        pg_sys::UnregisterSnapshot(snap);
        n
    }
}
