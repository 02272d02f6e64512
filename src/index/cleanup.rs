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
//! What is removable is decided with the entries' index page locked (as
//! nbtree does, so VACUUM cannot remove them and free their row slots in
//! between): each HOT chain must be dead to the oldest snapshot anyone may
//! still use, and the table access method (`index_delete_tuples`) confirms
//! them and reports the newest removed row's xid. The removal is one
//! `PageOp::Remove` record per page of omendb's resource manager carrying that
//! xid, so a hot standby first cancels queries whose snapshots could still see
//! those rows, as nbtree's deletion records make it do, and waits for standby
//! scans holding the page as VACUUM's records do. It takes a cleanup lock,
//! and skips a page another scan holds. Without omendb preloaded (no resource
//! manager), and on standbys, nothing is removed early.

use super::keys::heap_tid;
use alex::{Item, Tid};
use pgrx::pg_sys;

/// Most entries of one page judged at once (the table AM's request numbers
/// them with index offsets, at most 2048).
const MAX_CANDIDATES: usize = 2048;

/// Remove those of `candidates` (key, entry) whose rows are dead to all.
/// Returns how many entries were removed.
pub fn remove_dead(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    candidates: &[(u64, Tid)],
) -> u64 {
    // SAFETY: plain state checks.
    let in_recovery = unsafe { pg_sys::RecoveryInProgress() };
    if candidates.is_empty() || heap.is_null() || in_recovery || !super::wal::available() {
        return 0;
    }
    let mut items: Vec<Item> = candidates.iter().map(|&(k, t)| Item::new(k, t)).collect();
    items.sort_unstable();
    items.dedup();
    let mut ix = super::open(index);
    // The judgement runs with the entries' page locked, as nbtree's does: VACUUM
    // cannot remove them (and let their row slots be reused) in between.
    ix.remove_entries(&items, &mut |blk, present| {
        dead_to_all(index, heap, blk, present)
    })
    .unwrap_or_else(|e| super::raise(index, e))
}

/// Which of `present` (entries on index page `blk`, which is locked) have
/// rows dead to every transaction, and the conflict horizon for removing them.
fn dead_to_all(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    blk: u32,
    present: &[Item],
) -> (Vec<Item>, u32) {
    // First the HOT chain of each (the table's `all_dead`, against the oldest
    // snapshot anyone may still use); the table AM then confirms those and
    // reports the newest removed row's xid.
    let dead: Vec<Item> = present
        .iter()
        .copied()
        .filter(|it| chain_dead(heap, heap_tid(it.tid)))
        .take(MAX_CANDIDATES)
        .collect();
    if dead.is_empty() {
        return (Vec::new(), 0);
    }
    let n = dead.len();
    let mut deltids: Vec<pg_sys::TM_IndexDelete> = dead
        .iter()
        .enumerate()
        .map(|(i, it)| pg_sys::TM_IndexDelete {
            tid: heap_tid(it.tid),
            id: i as i16,
        })
        .collect();
    let mut status: Vec<pg_sys::TM_IndexStatus> = (0..n)
        .map(|i| pg_sys::TM_IndexStatus {
            // Any valid offset: the table AM only hands it back.
            idxoffnum: (i + 1) as pg_sys::OffsetNumber,
            knowndeletable: true,
            promising: false,
            freespace: 0,
        })
        .collect();
    let mut op = pg_sys::TM_IndexDeleteOp {
        irel: index,
        iblknum: blk,
        bottomup: false,
        bottomupfreespace: 0,
        ndeltids: n as i32,
        deltids: deltids.as_mut_ptr(),
        status: status.as_mut_ptr(),
    };
    // SAFETY: an open table; the arrays outlive the call, which may reorder
    // `deltids` and leaves `knowndeletable` set on those it removes.
    let horizon = unsafe {
        match (*(*heap).rd_tableam).index_delete_tuples {
            Some(f) => f(heap, &mut op),
            None => return (Vec::new(), 0),
        }
    };
    let kept = (op.ndeltids.max(0) as usize).min(n);
    let removable = deltids[..kept]
        .iter()
        .filter_map(|d| {
            let i = d.id as usize;
            (i < n && status[i].knowndeletable).then(|| dead[i])
        })
        .collect();
    (removable, horizon.into_inner())
}

/// Whether every version in the HOT chain at `tid` is dead to all.
fn chain_dead(heap: pg_sys::Relation, tid: pg_sys::ItemPointerData) -> bool {
    let mut tid = tid;
    // SAFETY: SnapshotData is plain data; a zeroed one with its type set is
    // how InitDirtySnapshot makes one.
    let mut dirty: pg_sys::SnapshotData = unsafe { std::mem::zeroed() };
    dirty.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
    let mut all_dead = false;
    // SAFETY: an open table; follows the HOT chain from `tid`.
    let visible =
        unsafe { pg_sys::table_index_fetch_tuple_check(heap, &mut tid, &mut dirty, &mut all_dead) };
    !visible && all_dead
}
