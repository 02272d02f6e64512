//! Compaction, `omendb.columnar_compact(regclass)`: runs of adjacent
//! segments (in row-number order) are rewritten as one Parquet segment,
//! without the rows whose deletion every transaction sees; the replaced
//! segments' pages become free extents that later segments reuse.
//!
//! Row numbers are kept, so TIDs in indexes stay valid; purged rows' index
//! entries are removed first, as VACUUM does. Everything else is one
//! transaction: old snapshots keep reading the replaced segments (their
//! catalog rows are deleted, not gone), a crash or ROLLBACK leaves them in
//! place. A freed extent is reused only once the catalog rows of the
//! segments it held are pruned from `omendb.columnar_segment`, so no
//! snapshot can read them any more, here or on a standby (the pruning
//! record makes the standby cancel or wait for such snapshots first).

use super::catalog::{self, Entry, Kind, Segment, State};
use super::pending::{self, RowBuf, SEGMENT_MAX_BYTES, SEGMENT_MAX_ROWS};
use super::rows::{Cursor, Step, Table};
use super::{datum, purge, space, storage};
use omendb_columnar::encode_row;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::{HashMap, HashSet};

/// Segments with fewer live rows than a Parquet row group are merged with
/// their neighbours; larger ones are left alone (merging small ones into
/// them would rewrite them over and over) unless they have rows to purge.
const SMALL_ROWS: u64 = pending::ROWS_PER_GROUP as u64;
/// A larger segment is rewritten once this fraction of its rows is purgeable.
const PURGE_FRACTION: f64 = 0.1;

#[derive(Default)]
pub(super) struct Report {
    pub replaced: i64,
    pub written: i64,
    pub purged: i64,
    pub blocks_freed: i64,
    /// Free pages at the end of the file, for VACUUM to truncate.
    pub tail_released: i64,
}

/// Segments to rewrite as one, and the purgeable rows among them.
struct Group<'a> {
    entries: Vec<&'a Entry>,
    rows: u64,
    bytes: u64,
    purge: u64,
}

impl Group<'_> {
    fn worth_rewriting(&self) -> bool {
        self.entries.len() > 1 || self.purge > 0
    }
}

/// The purgeable rows inside `seg`'s range (`dead` sorted).
fn dead_in<'a>(seg: &Segment, dead: &'a [u64]) -> &'a [u64] {
    omendb_columnar::logical::within(dead, seg.first_row, seg.last_row)
}

/// Split the committed segments into groups worth rewriting: adjacent small
/// segments, and segments with enough rows to purge. A group ends at any
/// catalog row a running transaction is changing (its row numbers may lie
/// between), at a segment left alone, and at the size of one segment.
fn plan<'a>(entries: &'a [Entry], dead: &[u64]) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    let mut open: Option<Group> = None;
    let close = |g: Option<Group<'a>>, out: &mut Vec<Group<'a>>| {
        if let Some(g) = g.filter(|g| g.worth_rewriting()) {
            out.push(g);
        }
    };
    for e in entries {
        let seg = &e.segment;
        match e.state {
            State::Dead => continue,
            State::Busy => {
                close(open.take(), &mut out);
                continue;
            }
            State::Live => {}
        }
        let purge = dead_in(seg, dead).len() as u64;
        let rows = seg.row_count - purge.min(seg.row_count);
        let small = seg.kind == Kind::WriteStore || rows < SMALL_ROWS;
        let purge_worth = purge as f64 >= PURGE_FRACTION * seg.row_count as f64 && purge > 0;
        if seg.kind == Kind::Reserved || !(small || purge_worth) {
            close(open.take(), &mut out);
            continue;
        }
        let fits = open.as_ref().is_some_and(|g| {
            g.rows + rows <= SEGMENT_MAX_ROWS as u64
                && g.bytes + seg.byte_length <= SEGMENT_MAX_BYTES as u64
        });
        if !fits {
            close(open.take(), &mut out);
        }
        let g = open.get_or_insert_with(|| Group {
            entries: Vec::new(),
            rows: 0,
            bytes: 0,
            purge: 0,
        });
        g.entries.push(e);
        g.rows += rows;
        g.bytes += seg.byte_length;
        g.purge += purge;
    }
    close(open.take(), &mut out);
    out
}

/// Pages a segment occupies.
fn blocks_of(rel: pg_sys::Relation, seg: &Segment) -> Vec<u32> {
    match seg.kind {
        Kind::Parquet => (seg.first_block..seg.first_block + seg.block_count).collect(),
        Kind::WriteStore => storage::write_store_blocks(rel, seg.first_block, seg.block_count),
        Kind::Reserved => Vec::new(),
    }
}

/// Read a group's rows, except `purge`d ones, encoded for the table's
/// current schema (columns added since a segment was written get their
/// missing values, as a heap rewrite does).
fn read_group(table: &Table, group: &Group, purge: &HashSet<u64>) -> RowBuf {
    let rel = table.rel;
    let mut buf = RowBuf::default();
    let columns: Vec<usize> = (0..table.schema.columns.len()).collect();
    let mut row_cx = pgrx::PgMemoryContexts::new("omen_columnar compaction row");
    // SAFETY: a slot of the table's descriptor, dropped below.
    let slot = unsafe { pg_sys::table_slot_create(rel, std::ptr::null_mut()) };
    let mut values = Vec::new();
    for e in &group.entries {
        let mut cursor = Cursor::open(table, &e.segment);
        let mut step = |r: u64| {
            if purge.contains(&r) {
                Step::Skip
            } else {
                Step::Take
            }
        };
        loop {
            // SAFETY: the row's datums live in row_cx until its reset.
            let more = unsafe {
                row_cx.switch_to(|_| match cursor.next(table, slot, &columns, &mut step) {
                    Some(row) => {
                        datum::values_of(slot, &table.schema, &mut values);
                        buf.push(row, |d| encode_row(&table.schema, &values, d));
                        values.clear();
                        true
                    }
                    None => false,
                })
            };
            // SAFETY: nothing allocated in row_cx outlives this point; the
            // delay point sleeps only when background throttling is on.
            unsafe {
                row_cx.reset();
                pg_sys::vacuum_delay_point();
            }
            if !more {
                break;
            }
        }
    }
    // SAFETY: created above.
    unsafe { pg_sys::ExecDropSingleTupleTableSlot(slot) };
    buf
}

/// What compaction would start from: the table's segments, and the
/// deletions every transaction sees.
struct Survey {
    storage_id: u64,
    deletions: HashMap<u64, pg_sys::ItemPointerData>,
    /// The purgeable row numbers, sorted.
    dead: Vec<u64>,
    entries: Vec<Entry>,
    ws_tail: Option<u32>,
}

/// None for a table without storage, or, unless `wait`, when a writer
/// holds the change lock.
fn survey(rel: pg_sys::Relation, wait: bool) -> Option<Survey> {
    let storage_id = storage::meta(rel)?.storage_id;
    // SAFETY: horizon lookup for an open relation.
    let horizon = unsafe { pg_sys::GetOldestNonRemovableTransactionId(rel) };
    let deletions: HashMap<u64, pg_sys::ItemPointerData> =
        catalog::deleted_before(storage_id, horizon)
            .into_iter()
            .collect();
    let mut dead: Vec<u64> = deletions.keys().copied().collect();
    dead.sort_unstable();
    let (entries, ws_tail) = {
        let _sync = if wait {
            storage::ChangeLock::exclusive(rel)
        } else {
            storage::ChangeLock::try_exclusive(rel)?
        };
        let entries = catalog::segment_entries(storage_id);
        let tail = storage::meta(rel).map(|m| m.ws_tail);
        (entries, tail)
    };
    Some(Survey {
        storage_id,
        deletions,
        dead,
        entries,
        ws_tail,
    })
}

/// Whether automatic compaction should rewrite the surveyed table now: at
/// least `min_segments` segments would be merged, or the purgeable rows are
/// at least `deleted_fraction` of the table's rows.
fn due(s: &Survey, min_segments: usize, deleted_fraction: f64) -> bool {
    let groups = plan(&s.entries, &s.dead);
    let merged: usize = groups
        .iter()
        .filter(|g| g.entries.len() > 1)
        .map(|g| g.entries.len())
        .sum();
    let purge: u64 = groups.iter().map(|g| g.purge).sum();
    let rows: u64 = s
        .entries
        .iter()
        .filter(|e| e.state == State::Live)
        .map(|e| e.segment.row_count)
        .sum();
    merged >= min_segments || (purge > 0 && purge as f64 >= deleted_fraction * rows as f64)
}

/// When [`compact`] rewrites segments.
#[derive(Clone, Copy)]
pub(super) enum When {
    /// `omendb.columnar_compact`: every run worth rewriting.
    Always,
    /// Background compaction: only if at least `min_segments` segments
    /// would be merged, or the purgeable rows are at least
    /// `deleted_fraction` of the table's rows.
    Due {
        min_segments: usize,
        deleted_fraction: f64,
    },
}

/// Compact `rel` if `when` says so, and tidy its free space. Before a
/// rewrite, a tidy that keeps the end of the file listed: extents earlier
/// compactions freed become reusable once their segments' rows are pruned,
/// and merge, so the rewrite writes into them instead of extending the
/// file. None when there was nothing to do. The caller holds
/// ShareUpdateExclusiveLock.
pub(super) fn compact(rel: pg_sys::Relation, when: When) -> Option<Report> {
    pending::flush_relation(rel);
    let s = survey(rel, true)?;
    let storage_id = s.storage_id;
    let rewrite_now = match when {
        When::Always => true,
        When::Due {
            min_segments,
            deleted_fraction,
        } => due(&s, min_segments, deleted_fraction),
    };
    let mut report = Report::default();
    if rewrite_now {
        let mut before = Report::default();
        tidy(rel, storage_id, &mut before, space::Tail::Keep);
        report = rewrite(rel, s);
        report.blocks_freed += before.blocks_freed;
    }
    tidy(rel, storage_id, &mut report, space::Tail::Release);
    let idle = !rewrite_now && report.blocks_freed == 0 && report.tail_released == 0;
    (!idle).then_some(report)
}

/// Whether automatic compaction would do something to `rel` now (false
/// when a writer holds the change lock: VACUUM does not wait for it).
pub(super) fn is_due(rel: pg_sys::Relation, min_segments: usize, deleted_fraction: f64) -> bool {
    survey(rel, false).is_some_and(|s| {
        due(&s, min_segments, deleted_fraction)
            || space::untidy(rel, s.storage_id, &s.entries, s.ws_tail)
    })
}

/// Pages no one owns become free, adjacent free extents merge, and free
/// pages at the end of the file are left for VACUUM to truncate (see
/// `space`).
fn tidy(rel: pg_sys::Relation, storage_id: u64, report: &mut Report, tail: space::Tail) {
    let _sync = storage::ChangeLock::exclusive(rel);
    let entries = space::prune_replaced(storage_id, catalog::segment_entries(storage_id));
    let ws_tail = storage::meta(rel).map(|m| m.ws_tail);
    let t = space::tidy(rel, storage_id, &entries, ws_tail, tail);
    report.blocks_freed += t.reclaimed as i64;
    report.tail_released += t.tail as i64;
}

fn rewrite(rel: pg_sys::Relation, survey: Survey) -> Report {
    let mut report = Report::default();
    let Survey {
        storage_id,
        deletions,
        dead,
        entries,
        ws_tail,
    } = survey;
    let groups = plan(&entries, &dead);
    if groups.is_empty() {
        return report;
    }
    // Purged rows leave the indexes first (not transactional, like
    // VACUUM's: those rows are dead to every transaction either way).
    let purge: HashSet<u64> = groups
        .iter()
        .flat_map(|g| g.entries.iter())
        .flat_map(|e| dead_in(&e.segment, &dead).iter().copied())
        .collect();
    if !purge.is_empty() {
        let live = purge::live_rows(rel) as f64;
        purge::remove_index_entries(rel, &purge, live, std::ptr::null_mut(), false);
    }
    let table = Table::new(rel);
    // SAFETY: plain xact-state lookup; our catalog rows carry this command.
    let cid = unsafe { pg_sys::GetCurrentCommandId(true) };
    let mut freed: Vec<u32> = Vec::new();
    for g in &groups {
        let buf = read_group(&table, g, &purge);
        if !buf.rows.is_empty() {
            let n = buf.rows.len();
            pending::write_rows(rel, &table.schema, &buf, 0..n, storage_id, cid, false);
            report.written += 1;
        }
        let tids: Vec<_> = g.entries.iter().map(|e| e.tid).collect();
        catalog::delete_segments(&tids);
        for e in &g.entries {
            freed.extend(blocks_of(rel, &e.segment));
        }
        report.replaced += g.entries.len() as i64;
        pgrx::check_for_interrupts!();
        crate::alloc::check();
        // SAFETY: sleeps only when the background worker's throttling is on.
        unsafe { pg_sys::vacuum_delay_point() };
    }
    let purged: Vec<_> = purge
        .iter()
        .filter_map(|r| deletions.get(r).copied())
        .collect();
    catalog::delete_deletions(&purged);
    report.purged = purged.len() as i64;
    // Write-store pages are shared: keep those a kept segment still uses,
    // and the tail, where the next small insert goes.
    let replaced: HashSet<*const Entry> = groups
        .iter()
        .flat_map(|g| g.entries.iter().map(|e| *e as *const Entry))
        .collect();
    let mut kept: HashSet<u32> = ws_tail.into_iter().collect();
    for e in &entries {
        if e.state != State::Dead && !replaced.contains(&(e as *const Entry)) {
            kept.extend(blocks_of(rel, &e.segment));
        }
    }
    freed.retain(|b| !kept.contains(b));
    report.blocks_freed = space::release(storage_id, freed) as i64;
    report
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.columnar_compact(tbl pg_catalog.regclass)
RETURNS TABLE (segments_replaced bigint, segments_written bigint, rows_purged bigint, blocks_freed bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.columnar_compact(pg_catalog.regclass) IS
    'Merge adjacent small segments of an omen_columnar table and purge rows whose deletion every transaction sees; freed pages are reused by later segments';
")]
fn columnar_compact(
    tbl: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(segments_replaced, i64),
        name!(segments_written, i64),
        name!(rows_purged, i64),
        name!(blocks_freed, i64),
    ),
> {
    // VACUUM's lock: writers and readers go on, VACUUM, CREATE INDEX and
    // another compaction wait.
    let open = super::stats::Open::new(
        tbl,
        pg_sys::ShareUpdateExclusiveLock,
        crate::pg::privilege::Access::Owner,
        "omendb.columnar_compact",
    );
    let rel = open.0;
    let r = compact(rel, When::Always).unwrap_or_default();
    super::autocompact_state::record(tbl, false, &r);
    TableIterator::once((r.replaced, r.written, r.purged, r.blocks_freed))
}
