//! VACUUM: remove entries whose heap tuples are dead (one WAL record per
//! data page), merge thinned data pages and hand free pages to the free
//! space map, and report sizes.

use super::keys::heap_tid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ops::Bound;

/// Count the entries (VACUUM without a bulk delete, for pg_class.reltuples).
unsafe fn count_entries(index: pg_sys::Relation) -> f64 {
    let ix = super::open(index);
    let mut n = 0u64;
    for r in ix.range(Bound::Unbounded, Bound::Unbounded, alex::Direction::Forward) {
        r.unwrap_or_else(|e| super::raise(index, e));
        n += 1;
        if n % 1024 == 0 {
            pgrx::check_for_interrupts!();
            pg_sys::vacuum_delay_point();
        }
    }
    n as f64
}

unsafe fn fill_sizes(index: pg_sys::Relation, stats: *mut pg_sys::IndexBulkDeleteResult) {
    (*stats).num_pages =
        pg_sys::RelationGetNumberOfBlocksInFork(index, pg_sys::ForkNumber::MAIN_FORKNUM);
    (*stats).estimated_count = false;
}

/// The index opened for VACUUM's changes, its metapage first made to say
/// truthfully whether they are logged by our resource manager (wal.rs): a
/// standby serves index-only scans only when they are.
fn vacuum_store(index: pg_sys::Relation) -> alex::Alex<super::storage::PgStore> {
    let mut ix = super::open_with(index, super::storage::PgStore::for_vacuum(index));
    let flag = super::wal::FLAG_CLEANUP_REDO;
    let has = ix.meta().unwrap_or_else(|e| super::raise(index, e)).flags & flag != 0;
    if has != super::wal::available() {
        let (set, clear) = if has { (0, flag) } else { (flag, 0) };
        ix.set_meta_flags(set, clear)
            .unwrap_or_else(|e| super::raise(index, e));
        // Plans (on standbys too, via the commit record) chose index-only
        // scans by the old flag: make them plan again.
        // SAFETY: an open index relation.
        unsafe { pg_sys::CacheInvalidateRelcache(index) };
    }
    ix
}

/// Merge thinned data pages into their left neighbours, then record every
/// free page (merged away now or earlier, or left zeroed by an aborted
/// allocation) in the free space map, where splits find them.
unsafe fn reclaim_pages(index: pg_sys::Relation, stats: *mut pg_sys::IndexBulkDeleteResult) {
    let mut ix = vacuum_store(index);
    let freed = ix
        .merge_pages(|| {
            pgrx::check_for_interrupts!();
            pg_sys::vacuum_delay_point();
        })
        .unwrap_or_else(|e| super::raise(index, e));
    let free = super::storage::record_free_pages(index);
    (*stats).pages_newly_deleted = freed.len() as u32;
    (*stats).pages_deleted = free;
    (*stats).pages_free = free;
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    let index = (*info).index;
    let stats = if stats.is_null() {
        PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0().into_pg()
    } else {
        stats
    };
    let Some(callback) = callback else {
        return stats;
    };
    // Every data page in key order under a cleanup lock (nbtree's interlock:
    // wait out scans still returning entries copied from it), one WAL record
    // per page that loses entries. The callback is PostgreSQL's (e.g. CREATE
    // INDEX CONCURRENTLY's, which may ERROR): call it across a guarded
    // boundary.
    let mut ix = vacuum_store(index);
    let (kept, removed) = ix
        .vacuum_pages(
            |_, tid| {
                let mut t = heap_tid(tid);
                pg_sys::ffi::pg_guard_ffi_boundary(|| callback(&mut t, callback_state))
            },
            || {
                pgrx::check_for_interrupts!();
                pg_sys::vacuum_delay_point();
            },
        )
        .unwrap_or_else(|e| super::raise(index, e));
    (*stats).tuples_removed += removed as f64;
    (*stats).num_index_tuples = kept as f64;
    fill_sizes(index, stats);
    stats
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    if (*info).analyze_only {
        return stats;
    }
    let index = (*info).index;
    let stats = if stats.is_null() {
        // No bulk delete ran (nothing to remove): count the entries so
        // pg_class.reltuples stays right.
        let stats = PgBox::<pg_sys::IndexBulkDeleteResult>::alloc0().into_pg();
        (*stats).num_index_tuples = count_entries(index);
        stats
    } else {
        stats
    };
    reclaim_pages(index, stats);
    fill_sizes(index, stats);
    stats
}
