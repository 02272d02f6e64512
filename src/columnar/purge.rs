//! Index entries of purged rows, shared by VACUUM (rows whose deletion
//! every transaction sees) and compaction (the rows it purges): removed
//! from every index of the table as lazy vacuum removes heap tuples'.

use super::snapshot::visible;
use super::tid_to_row;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

/// Rows a fresh snapshot sees.
pub fn live_rows(rel: pg_sys::Relation) -> u64 {
    // SAFETY: snapshot registered for the duration of the catalog reads.
    unsafe {
        let snap = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let (segments, deleted) = visible(rel, snap);
        pg_sys::UnregisterSnapshot(snap);
        segments
            .iter()
            .map(|s| s.row_count)
            .sum::<u64>()
            .saturating_sub(deleted.len() as u64)
    }
}

/// Remove the index entries of rows `dead` from every index of `rel` and
/// update the indexes' statistics, as lazy vacuum does; returns the number
/// of indexes. The caller holds a lock that excludes concurrent VACUUM.
pub fn remove_index_entries(
    rel: pg_sys::Relation,
    dead: &HashSet<u64>,
    live_rows: f64,
    strategy: pg_sys::BufferAccessStrategy,
    verbose: bool,
) -> usize {
    // SAFETY: vacuum's index handling, as heap's lazy vacuum does it.
    unsafe {
        let mut nindexes = 0;
        let mut indexes: *mut pg_sys::Relation = std::ptr::null_mut();
        pg_sys::vac_open_indexes(
            rel,
            pg_sys::RowExclusiveLock as i32,
            &mut nindexes,
            &mut indexes,
        );
        for i in 0..nindexes as usize {
            let index = *indexes.add(i);
            let mut info = pg_sys::IndexVacuumInfo {
                index,
                analyze_only: false,
                report_progress: false,
                estimated_count: false,
                message_level: if verbose {
                    pg_sys::INFO as i32
                } else {
                    pg_sys::DEBUG2 as i32
                },
                num_heap_tuples: live_rows,
                strategy,
            };
            let mut stats = std::ptr::null_mut();
            if !dead.is_empty() {
                stats = pg_sys::index_bulk_delete(
                    &mut info,
                    stats,
                    Some(is_dead),
                    dead as *const HashSet<u64> as *mut std::ffi::c_void,
                );
            }
            stats = pg_sys::index_vacuum_cleanup(&mut info, stats);
            if !stats.is_null() && !(*stats).estimated_count {
                let mut fz = false;
                let mut mm = false;
                pg_sys::vac_update_relstats(
                    index,
                    (*stats).num_pages,
                    (*stats).num_index_tuples,
                    0,
                    false,
                    pg_sys::InvalidTransactionId,
                    pg_sys::InvalidTransactionId,
                    &mut fz,
                    &mut mm,
                    false,
                );
            }
        }
        pg_sys::vac_close_indexes(nindexes, indexes, pg_sys::NoLock as i32);
        nindexes as usize
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn is_dead(
    tid: pg_sys::ItemPointer,
    state: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: state is the HashSet passed to index_bulk_delete.
    unsafe {
        let dead = &*(state as *const HashSet<u64>);
        tid_to_row(&*tid).is_some_and(|r| dead.contains(&r))
    }
}
