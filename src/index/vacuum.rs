//! VACUUM: remove entries whose heap tuples are dead (one WAL record per
//! data page), merge thinned data pages and hand free pages to the free
//! space map, and report sizes.

use super::keys::heap_tid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ops::Bound;

/// Walk every entry once; returns (live entries, dead entries found).
unsafe fn scan_all(
    index: pg_sys::Relation,
    mut is_dead: impl FnMut(&mut pg_sys::ItemPointerData) -> bool,
) -> (f64, Vec<(u64, alex::Tid)>) {
    let ix = super::open(index);
    let mut live = 0.0;
    let mut dead = Vec::new();
    for (n, r) in ix
        .range(Bound::Unbounded, Bound::Unbounded, alex::Direction::Forward)
        .enumerate()
    {
        let (key, tid) = r.unwrap_or_else(|e| super::raise(index, e));
        let mut t = heap_tid(tid);
        if is_dead(&mut t) {
            dead.push((key, tid));
        } else {
            live += 1.0;
        }
        if n % 1024 == 0 {
            pgrx::check_for_interrupts!();
            pg_sys::vacuum_delay_point();
        }
    }
    (live, dead)
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
    // The callback is PostgreSQL's (e.g. CREATE INDEX CONCURRENTLY's, which
    // may ERROR): call it across a guarded boundary.
    let (live, dead) = scan_all(index, |t| {
        pg_sys::ffi::pg_guard_ffi_boundary(|| callback(t, callback_state))
    });
    // Cleanup locks on data pages: wait out scans still returning entries.
    // One WAL record per data page, not per entry; `dead` is in index order.
    let mut ix = vacuum_store(index);
    let items: Vec<alex::Item> = dead.iter().map(|&(k, t)| alex::Item::new(k, t)).collect();
    for chunk in items.chunks(4096) {
        pgrx::check_for_interrupts!();
        pg_sys::vacuum_delay_point();
        (*stats).tuples_removed += ix
            .delete_many(chunk)
            .unwrap_or_else(|e| super::raise(index, e)) as f64;
    }
    (*stats).num_index_tuples = live;
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
        (*stats).num_index_tuples = scan_all(index, |_| false).0;
        stats
    } else {
        stats
    };
    reclaim_pages(index, stats);
    fill_sizes(index, stats);
    stats
}
