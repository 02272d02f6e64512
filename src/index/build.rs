//! CREATE INDEX: scan the table, sort (key, TID) pairs in Rust (no fmgr
//! comparator calls), bulk load the learned index in memory, write its pages
//! without WAL and then WAL-log them with one `log_newpage_range`.
//!
//! Memory: 16 bytes per row for the sort, plus the finished pages (about 20
//! bytes per row), regardless of maintenance_work_mem.

use super::handler::{PHASE_LOAD, PHASE_SCAN, PHASE_SORT, PHASE_WRITE};
use super::keys::{entry_tid, KeyType, NULL_KEY};
use super::storage::write_new_relation;
use crate::pg::report::ConstraintError;
use alex::{Alex, MemStore, PageStore, Tid};
use pgrx::pg_sys;
use pgrx::prelude::*;

struct BuildState {
    kind: KeyType,
    entries: Vec<(u64, Tid)>,
    /// For a unique index: rows the scan reports dead to all but old
    /// snapshots, which are indexed but may share a key (nbtree's spool2).
    unique: bool,
    dead: Vec<Tid>,
}

fn progress(param: u32, value: i64) {
    // SAFETY: plain progress reporting from the backend running the build.
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    tuple_is_alive: bool,
    state: *mut std::ffi::c_void,
) {
    let state = &mut *(state as *mut BuildState);
    let is_null = *isnull;
    let key = if is_null {
        NULL_KEY
    } else {
        state.kind.encode(*values)
    };
    if state.entries.try_reserve(1).is_err() {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
            format!(
                "out of memory sorting {} keys for an alex index",
                state.entries.len()
            ),
            "An alex build needs about 40 bytes of memory per row.".into(),
        );
    }
    let entry = entry_tid(&*tid, is_null);
    state.entries.push((key, entry));
    if state.unique && !tuple_is_alive {
        state.dead.push(entry);
    }
}

/// `table_index_build_scan`: calls `callback` for each row to index and
/// returns the table's live row count. The table AM's function may ERROR
/// (cancel, a failing expression): cross the boundary the way pgrx requires.
pub(super) unsafe fn scan_table(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    progress: bool,
    callback: pg_sys::IndexBuildCallback,
    state: *mut std::ffi::c_void,
) -> f64 {
    let Some(scan) = (*(*heap).rd_tableam).index_build_range_scan else {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "table \"{}\" cannot be scanned to build an index",
                super::relation_name(heap)
            ),
        );
    };
    pg_sys::ffi::pg_guard_ffi_boundary(|| {
        scan(
            heap,
            index,
            index_info,
            true,
            false,
            progress,
            0,
            pg_sys::InvalidBlockNumber,
            callback,
            state,
            std::ptr::null_mut(),
        )
    })
}

fn is_permanent(rel: pg_sys::Relation) -> bool {
    // SAFETY: rd_rel of an open relation.
    unsafe {
        (*(*rel).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char
    }
}

/// Not guarded itself: a duplicate key in a unique build is raised from here
/// by PostgreSQL's own ereport, as in aminsert.
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    let mut violation = None;
    // SAFETY: PostgreSQL's arguments, passed on.
    let result = unsafe { build(heap, index, index_info, &mut violation) };
    if let Some(v) = violation {
        // SAFETY: main thread, outside the guard, nothing left to drop.
        unsafe { v.raise() }
    }
    result
}

#[pg_guard]
unsafe extern "C-unwind" fn build(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    violation: *mut Option<ConstraintError>,
) -> *mut pg_sys::IndexBuildResult {
    if super::storage::PgStore::new(index).nblocks() != 0 {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "alex index \"{}\" already contains data",
                super::relation_name(index)
            ),
        );
    }
    // The scan returns rows in index order; only ASC NULLS LAST is supported.
    if *(*index).rd_indoption != 0 {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "alex index \"{}\" must be in ascending order with NULLS LAST",
                super::relation_name(index)
            ),
            "Remove DESC / NULLS FIRST: the index serves ORDER BY ... DESC by scanning backward."
                .into(),
        );
    }
    let mut state = BuildState {
        kind: KeyType::of_index(index),
        entries: Vec::new(),
        unique: (*index_info).ii_Unique,
        dead: Vec::new(),
    };

    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_SCAN);
    let heap_tuples = scan_table(
        heap,
        index,
        index_info,
        true,
        Some(build_callback),
        &mut state as *mut BuildState as *mut std::ffi::c_void,
    );

    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_SORT);
    progress(
        pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL,
        state.entries.len() as i64,
    );
    state.entries.sort_unstable();
    if state.unique {
        state.dead.sort_unstable();
        let checked =
            super::unique::check_build(index, heap, state.kind, &state.entries, &state.dead);
        if let Err(v) = checked {
            *violation = Some(v);
            return std::ptr::null_mut();
        }
    }

    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
    let n_entries = state.entries.len();
    let built = Alex::bulk_load(
        MemStore::new(),
        super::alex_options(state.kind),
        std::mem::take(&mut state.entries),
    )
    .unwrap_or_else(|e| super::raise(index, e));
    let store = with_redo_flag(built, index).into_store();

    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
    let pages: Vec<&alex::page::Page> =
        (0..store.nblocks()).filter_map(|b| store.page(b)).collect();
    let per_page = n_entries.div_ceil(pages.len().max(1));
    write_new_relation(
        index,
        pg_sys::ForkNumber::MAIN_FORKNUM,
        &pages,
        is_permanent(index),
        |done| {
            if done % 64 == 0 || done == pages.len() {
                progress(
                    pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE,
                    (done * per_page).min(n_entries) as i64,
                );
            }
        },
    );

    let mut result = PgBox::<pg_sys::IndexBuildResult>::alloc0();
    result.heap_tuples = heap_tuples;
    result.index_tuples = n_entries as f64;
    result.into_pg()
}

/// Mark a new index whose VACUUM records this server will write with our
/// resource manager (see wal.rs).
fn with_redo_flag(mut ix: Alex<MemStore>, index: pg_sys::Relation) -> Alex<MemStore> {
    if super::wal::available() {
        ix.set_meta_flags(super::wal::FLAG_CLEANUP_REDO, 0)
            .unwrap_or_else(|e| super::raise(index, e));
    }
    ix
}

/// The init fork of an index on an unlogged table: an empty index that
/// replaces the main fork after a crash.
#[pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    let empty = Alex::create(
        MemStore::new(),
        super::alex_options(KeyType::of_index(index)),
    )
    .unwrap_or_else(|e| super::raise(index, e));
    let store = with_redo_flag(empty, index).into_store();
    let pages: Vec<&alex::page::Page> =
        (0..store.nblocks()).filter_map(|b| store.page(b)).collect();
    // Init forks are always WAL-logged, so recovery can recreate them.
    write_new_relation(
        index,
        pg_sys::ForkNumber::INIT_FORKNUM,
        &pages,
        true,
        |_| {},
    );
}
