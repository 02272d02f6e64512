//! Removing entries whose rows are dead to every transaction, before VACUUM.
//!
//! A row updated again and again without changing its key (YCSB's hot keys, a
//! counter) leaves one index entry per version. nbtree keeps such keys short
//! by marking the entries of dead versions as it meets them (an index scan's
//! `kill_prior_tuple`, a unique check's `all_dead`) and deleting them before a
//! page would split; without that, every read and every unique check of a hot
//! key visits all its versions until VACUUM runs. alex removes them outright,
//! in the same two places: the entries a scan was told are dead (removed when
//! the scan is rescanned or ends, never while it still returns entries from
//! their page), and the dead entries a unique check walked over.
//!
//! The table access method decides what is removable (`index_delete_tuples`,
//! which checks every candidate against the oldest snapshot anyone may still
//! use, and reports the newest removed row's xid); the removal is one
//! `PageOp::Remove` record per page of omendb's resource manager carrying that
//! xid, so a hot standby first cancels queries whose snapshots could still see
//! those rows, as nbtree's deletion records make it do. Without omendb
//! preloaded (no resource manager), nothing is removed early.

use super::keys::heap_tid;
use alex::{Item, Tid};
use pgrx::pg_sys;

/// Most candidates examined per call (the table AM's request numbers them in
/// an int16).
const MAX_CANDIDATES: usize = 4096;

/// Remove those of `candidates` (key, entry) whose rows are dead to all.
/// Returns how many entries were removed.
pub fn remove_dead(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    candidates: &[(u64, Tid)],
) -> u64 {
    if candidates.is_empty() || heap.is_null() || !super::wal::available() {
        return 0;
    }
    let candidates = &candidates[..candidates.len().min(MAX_CANDIDATES)];
    let (horizon, dead) = dead_to_all(index, heap, candidates);
    if dead.is_empty() {
        return 0;
    }
    let mut items: Vec<Item> = dead.iter().map(|&(k, t)| Item::new(k, t)).collect();
    items.sort_unstable();
    items.dedup();
    super::open(index)
        .remove_entries(&items, horizon.into_inner())
        .unwrap_or_else(|e| super::raise(index, e))
}

/// Ask the table which candidates' rows are dead to every transaction; the
/// conflict horizon for removing them, and those candidates.
fn dead_to_all(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    candidates: &[(u64, Tid)],
) -> (pg_sys::TransactionId, Vec<(u64, Tid)>) {
    let n = candidates.len();
    let mut deltids: Vec<pg_sys::TM_IndexDelete> = candidates
        .iter()
        .enumerate()
        .map(|(i, &(_, t))| pg_sys::TM_IndexDelete {
            tid: heap_tid(t),
            id: i as i16,
        })
        .collect();
    let mut status: Vec<pg_sys::TM_IndexStatus> = (0..n)
        .map(|_| pg_sys::TM_IndexStatus {
            idxoffnum: 0,
            knowndeletable: false,
            promising: false,
            freespace: 0,
        })
        .collect();
    let mut op = pg_sys::TM_IndexDeleteOp {
        irel: index,
        iblknum: pg_sys::InvalidBlockNumber,
        bottomup: false,
        bottomupfreespace: 0,
        ndeltids: n as i32,
        deltids: deltids.as_mut_ptr(),
        status: status.as_mut_ptr(),
    };
    // SAFETY: an open table; the arrays outlive the call, which may reorder
    // and shorten `deltids` and sets `knowndeletable` on removable ones.
    let horizon = unsafe {
        match (*(*heap).rd_tableam).index_delete_tuples {
            Some(f) => f(heap, &mut op),
            None => return (pg_sys::InvalidTransactionId, Vec::new()),
        }
    };
    let kept = (op.ndeltids.max(0) as usize).min(n);
    let dead = deltids[..kept]
        .iter()
        .filter_map(|d| {
            let i = d.id as usize;
            (i < n && status[i].knowndeletable).then(|| candidates[i])
        })
        .collect();
    (horizon, dead)
}
