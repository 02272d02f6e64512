//! Storage lifecycle (create, truncate, copy, drop), index builds, and size
//! estimates.

use super::catalog::{self, Segment};
use super::rows::{Cursor, Step, Table};
use super::snapshot::visible;
use super::{pending, relation_name, row_to_tid, storage, tid_to_row};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_set_new_filenode(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    minmulti: *mut pg_sys::MultiXactId,
) {
    if persistence == pg_sys::RELPERSISTENCE_UNLOGGED as std::ffi::c_char {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "omen_columnar table \"{}\" cannot be UNLOGGED",
                relation_name(rel)
            ),
            "Create it as a regular (logged) or TEMPORARY table.".into(),
        );
    }
    // SAFETY: rel and newrnode are valid; for a relation being created they
    // name the same (not yet existing) file.
    unsafe {
        let replacing = (*rel).rd_node.relNode != (*newrnode).relNode
            || (*rel).rd_node.spcNode != (*newrnode).spcNode;
        if replacing {
            // TRUNCATE: the old storage's rows go with it (transactionally).
            pending::discard_relation(rel);
            if let Some(m) = storage::meta(rel) {
                catalog::forget_storage(m.storage_id);
            }
        }
        // No transaction ids are stored in the table: everything is frozen
        // from the start (visibility lives in the catalog tables).
        *freeze_xid = pg_sys::RecentXmin;
        *minmulti = pg_sys::GetOldestMultiXactId();
        let srel = pg_sys::RelationCreateStorage(*newrnode, persistence, true);
        pg_sys::smgrclose(srel);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_nontransactional_truncate(rel: pg_sys::Relation) {
    pending::discard_relation(rel);
    if let Some(m) = storage::meta(rel) {
        catalog::forget_storage(m.storage_id);
    }
    // SAFETY: TRUNCATE of a table created in this transaction.
    unsafe { pg_sys::RelationTruncate(rel, 0) };
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_copy_data(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
) {
    // ALTER TABLE SET TABLESPACE: the same pages (and storage id) in a new
    // file. The copy reads the file, not shared buffers: flush them first.
    // SAFETY: as heapam_relation_copy_data.
    unsafe {
        pending::flush_relation(rel);
        pg_sys::FlushRelationBuffers(rel);
        let persistence = (*(*rel).rd_rel).relpersistence;
        let dst = pg_sys::RelationCreateStorage(*newrnode, persistence, true);
        pg_sys::RelationCopyStorage(
            pg_sys::RelationGetSmgr(rel),
            dst,
            pg_sys::ForkNumber::MAIN_FORKNUM,
            persistence,
        );
        pg_sys::RelationDropStorage(rel);
        pg_sys::smgrclose(dst);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_copy_for_cluster(
    old: pg_sys::Relation,
    new: pg_sys::Relation,
    old_index: pg_sys::Relation,
    _use_sort: bool,
    _oldest_xmin: pg_sys::TransactionId,
    _xid_cutoff: *mut pg_sys::TransactionId,
    _multi_cutoff: *mut pg_sys::MultiXactId,
    num_tuples: *mut f64,
    tups_vacuumed: *mut f64,
    tups_recently_dead: *mut f64,
) {
    if !old_index.is_null() {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "CLUSTER is not supported on omen_columnar table \"{}\"",
                relation_name(old)
            ),
            "Rows are stored in insertion order; VACUUM FULL copies the table.".into(),
        );
    }
    // VACUUM FULL copies the pages: row numbers, TIDs and the catalog rows
    // (with their original transaction ids, so MVCC is preserved) carry over.
    pending::flush_relation(old);
    storage::copy_pages(old, new);
    storage::mark_moved(old);
    // SAFETY: the caller's counters.
    let (segments, deleted) = visible(old, unsafe { pg_sys::GetActiveSnapshot() });
    let rows: u64 = segments.iter().map(|s| s.row_count).sum();
    unsafe {
        *num_tuples = rows.saturating_sub(deleted.len() as u64) as f64;
        *tups_vacuumed = 0.0;
        *tups_recently_dead = 0.0;
    }
}

/// VACUUM: remove index entries of rows whose deletion every transaction
/// sees, and update the table's statistics and relfrozenxid (the table
/// itself stores no transaction ids).
/// Evaluate an index predicate (ExecQual) in the per-tuple context.
unsafe fn qual_passes(state: *mut pg_sys::ExprState, econtext: *mut pg_sys::ExprContext) -> bool {
    if state.is_null() {
        return true;
    }
    // SAFETY: a prepared qual and its expression context.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
        let mut isnull = false;
        let d = pg_sys::ExecEvalExpr(state, econtext, &mut isnull);
        pg_sys::MemoryContextSwitchTo(old);
        !isnull && d.value() != 0
    }
}

/// Per-row index datum evaluation, as heap's index build does it.
struct IndexRows {
    estate: *mut pg_sys::EState,
    econtext: *mut pg_sys::ExprContext,
    predicate: *mut pg_sys::ExprState,
    slot: *mut pg_sys::TupleTableSlot,
    info: *mut pg_sys::IndexInfo,
    values: [pg_sys::Datum; pg_sys::INDEX_MAX_KEYS as usize],
    nulls: [bool; pg_sys::INDEX_MAX_KEYS as usize],
}

impl IndexRows {
    unsafe fn new(table: pg_sys::Relation, info: *mut pg_sys::IndexInfo) -> IndexRows {
        // SAFETY: executor state for evaluating index expressions.
        unsafe {
            let estate = pg_sys::CreateExecutorState();
            let econtext = pg_sys::MakePerTupleExprContext(estate);
            let slot = pg_sys::table_slot_create(table, std::ptr::null_mut());
            (*econtext).ecxt_scantuple = slot;
            let predicate = pg_sys::ExecPrepareQual((*info).ii_Predicate, estate);
            IndexRows {
                estate,
                econtext,
                predicate,
                slot,
                info,
                values: [pg_sys::Datum::from(0); 32],
                nulls: [false; 32],
            }
        }
    }

    /// Form the index values of the row in `self.slot`; false if the
    /// index's predicate excludes it.
    unsafe fn form(&mut self) -> bool {
        // SAFETY: slot holds a row of the table.
        unsafe {
            pg_sys::MemoryContextReset((*self.econtext).ecxt_per_tuple_memory);
            if !qual_passes(self.predicate, self.econtext) {
                return false;
            }
            pg_sys::FormIndexDatum(
                self.info,
                self.slot,
                self.estate,
                self.values.as_mut_ptr(),
                self.nulls.as_mut_ptr(),
            );
            true
        }
    }
}

impl Drop for IndexRows {
    fn drop(&mut self) {
        // SAFETY: created in new().
        unsafe {
            pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            pg_sys::FreeExecutorState(self.estate);
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_build_range_scan(
    table_rel: pg_sys::Relation,
    index_rel: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    _allow_sync: bool,
    anyvisible: bool,
    progress: bool,
    _start_blockno: pg_sys::BlockNumber,
    _numblocks: pg_sys::BlockNumber,
    callback: pg_sys::IndexBuildCallback,
    callback_state: *mut std::ffi::c_void,
    scan: pg_sys::TableScanDesc,
) -> f64 {
    let Some(callback) = callback else { return 0.0 };
    pending::flush_relation(table_rel);
    // Heap's build scan counts as a sequential scan; a caller's scan was
    // counted when it began.
    if scan.is_null() {
        crate::pg::pgstat::count_scan(table_rel);
    }
    // SAFETY: index build state handed in by PostgreSQL.
    unsafe {
        let concurrent = (*index_info).ii_Concurrent;
        // The snapshot deciding which rows are alive: the caller's scan's if
        // it is an MVCC one (CREATE INDEX CONCURRENTLY), else a fresh one (a
        // plain build's scan has SnapshotAny).
        let mvcc = !scan.is_null()
            && (*(*scan).rs_snapshot).snapshot_type == pg_sys::SnapshotType::SNAPSHOT_MVCC;
        let (snap, registered) = if mvcc {
            ((*scan).rs_snapshot, false)
        } else {
            (
                pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot()),
                true,
            )
        };
        let (alive_segs, alive_deleted) = visible(table_rel, snap);
        let alive_firsts: HashSet<u64> = alive_segs.iter().map(|s| s.first_row).collect();
        // A plain build indexes rows some older snapshot may still see too:
        // every segment, deleted rows included (entries for rows nobody can
        // see are harmless: fetching them finds nothing).
        let all = if concurrent || anyvisible {
            alive_segs
        } else {
            match storage::meta(table_rel) {
                Some(m) => catalog::segments_in_use(m.storage_id),
                None => Vec::new(),
            }
        };
        // A parallel build (btree's) gives every participant a parallel
        // scan: each indexes the segments whose first block it claims.
        let parallel = !scan.is_null() && !(*scan).rs_parallel.is_null();
        let mut serial = all.iter();
        let mut claimed: Vec<&Segment> = Vec::new();
        let mut next_segment = || -> Option<&Segment> {
            if !parallel {
                return serial.next();
            }
            while claimed.is_empty() {
                let blk = super::scan::claim_build_block(scan)?;
                claimed = all.iter().filter(|s| s.first_block == blk).rev().collect();
            }
            claimed.pop()
        };
        let table = Table::new(table_rel);
        let mut rows = IndexRows::new(table_rel, index_info);
        let columns: Vec<usize> = (0..table.schema.columns.len()).collect();
        let mut count = 0f64;
        let total: u64 = all.iter().map(|s| s.row_count).sum();
        if progress {
            pg_sys::pgstat_progress_update_param(
                pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL as i32,
                total as i64,
            );
        }
        while let Some(seg) = next_segment() {
            let mut cursor = Cursor::open(&table, seg);
            let seg_alive = alive_firsts.contains(&seg.first_row);
            loop {
                let skip_dead = concurrent || anyvisible;
                let mut step = |r: u64| {
                    if skip_dead && alive_deleted.contains(&r) {
                        Step::Skip
                    } else {
                        Step::Take
                    }
                };
                let Some(row) = cursor.next(&table, rows.slot, &columns, &mut step) else {
                    break;
                };
                let alive = seg_alive && !alive_deleted.contains(&row);
                let mut tid = row_to_tid(row);
                (*rows.slot).tts_tid = tid;
                if rows.form() {
                    callback(
                        index_rel,
                        &mut tid,
                        rows.values.as_mut_ptr(),
                        rows.nulls.as_mut_ptr(),
                        alive,
                        callback_state,
                    );
                }
                count += 1.0;
                if progress && (count as u64) % 1024 == 0 {
                    pg_sys::pgstat_progress_update_param(
                        pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE as i32,
                        count as i64,
                    );
                }
                pgrx::check_for_interrupts!();
            }
        }
        drop(rows);
        if registered {
            pg_sys::UnregisterSnapshot(snap);
        }
        count
    }
}

/// CREATE INDEX CONCURRENTLY, validation phase: index the rows `snapshot`
/// sees that the first phase missed.
#[pg_guard]
pub unsafe extern "C-unwind" fn index_validate_scan(
    table_rel: pg_sys::Relation,
    index_rel: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    snapshot: pg_sys::Snapshot,
    state: *mut pg_sys::ValidateIndexState,
) {
    pending::flush_relation(table_rel);
    // SAFETY: validate state handed in by PostgreSQL.
    unsafe {
        let mut indexed = HashSet::new();
        loop {
            let mut d = pg_sys::Datum::from(0);
            let mut isnull = false;
            if !pg_sys::tuplesort_getdatum(
                (*state).tuplesort,
                true,
                &mut d,
                &mut isnull,
                std::ptr::null_mut(),
            ) {
                break;
            }
            if isnull {
                continue;
            }
            let mut tid = pg_sys::ItemPointerData::default();
            pg_sys::itemptr_decode(&mut tid, d.value() as i64);
            if let Some(r) = tid_to_row(&tid) {
                indexed.insert(r);
            }
            (*state).itups += 1.0;
        }
        let (segments, deleted) = visible(table_rel, snapshot);
        let table = Table::new(table_rel);
        let mut rows = IndexRows::new(table_rel, index_info);
        let columns: Vec<usize> = (0..table.schema.columns.len()).collect();
        for seg in &segments {
            let mut cursor = Cursor::open(&table, seg);
            let mut step = |r: u64| {
                if deleted.contains(&r) || indexed.contains(&r) {
                    Step::Skip
                } else {
                    Step::Take
                }
            };
            while let Some(row) = cursor.next(&table, rows.slot, &columns, &mut step) {
                (*state).htups += 1.0;
                let mut tid = row_to_tid(row);
                (*rows.slot).tts_tid = tid;
                if rows.form() {
                    let check = if (*index_info).ii_Unique {
                        pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
                    } else {
                        pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
                    };
                    pg_sys::index_insert(
                        index_rel,
                        rows.values.as_mut_ptr(),
                        rows.nulls.as_mut_ptr(),
                        &mut tid,
                        table_rel,
                        check,
                        false,
                        index_info,
                    );
                    (*state).tups_inserted += 1.0;
                }
            }
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_size(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
) -> u64 {
    // SAFETY: block-based size of the fork(s).
    unsafe { pg_sys::table_block_relation_size(rel, fork) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_needs_toast_table(_rel: pg_sys::Relation) -> bool {
    false // values are stored detoasted inside segments
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_toast_am(_rel: pg_sys::Relation) -> pg_sys::Oid {
    pg_sys::InvalidOid
}

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_fetch_toast_slice(
    _toastrel: pg_sys::Relation,
    _valueid: pg_sys::Oid,
    _attrsize: i32,
    _sliceoffset: i32,
    _slicelength: i32,
    _result: *mut pg_sys::varlena,
) {
    crate::error::error(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        "omen_columnar tables have no TOAST relation".into(),
    );
}

/// The planner's size estimate: pages from the file, rows from the catalog.
#[pg_guard]
pub unsafe extern "C-unwind" fn relation_estimate_size(
    rel: pg_sys::Relation,
    _attr_widths: *mut i32,
    pages: *mut pg_sys::BlockNumber,
    tuples: *mut f64,
    allvisfrac: *mut f64,
) {
    let n = storage::nblocks(rel);
    let rows = match storage::meta(rel) {
        // SAFETY: the catalog snapshot suffices for an estimate.
        Some(m) => catalog::segments(m.storage_id, unsafe {
            pg_sys::GetCatalogSnapshot(pg_sys::InvalidOid)
        })
        .iter()
        .map(|s| s.row_count)
        .sum::<u64>(),
        None => 0,
    };
    // SAFETY: the planner's out-parameters.
    unsafe {
        *pages = n;
        *tuples = rows as f64;
        *allvisfrac = 0.0;
    }
}

/// DROP TABLE (the object_access hook, hooks.rs): forget the dropped
/// storage's catalog rows (transactionally).
///
/// # Safety
/// From the object_access hook.
pub(crate) unsafe fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: i32,
) {
    // SAFETY: reading a relation being dropped (its dropper holds
    // AccessExclusiveLock on it).
    unsafe {
        if access != pg_sys::ObjectAccessType::OAT_DROP
            || class_id != pg_sys::RelationRelationId
            || sub_id != 0
        {
            return;
        }
        if pg_sys::get_rel_relkind(object_id) != pg_sys::RELKIND_RELATION as std::ffi::c_char {
            return;
        }
        let rel = pg_sys::relation_open(object_id, pg_sys::NoLock as i32);
        if super::is_columnar(rel) {
            super::autocompact_state::forget(object_id);
        }
        if super::is_columnar(rel) && catalog::available() {
            // Lenient: a damaged table must still be droppable.
            if let Some(m) = storage::meta_if_valid(rel) {
                if !m.moved {
                    pending::discard_relation(rel);
                    catalog::forget_storage(m.storage_id);
                }
            }
        }
        pg_sys::relation_close(rel, pg_sys::NoLock as i32);
    }
}
