//! The snapshot view of a table: which segments and deleted rows a
//! snapshot sees, from the catalog tables' MVCC. Every reader starts here:
//! sequential and index scans, VACUUM, statistics, the DataFusion scan.

use super::catalog::{self, Segment};
use super::{pending, storage};
use pgrx::pg_sys;
use std::collections::HashSet;

/// Everything `snapshot` sees of `rel`: segments and deleted rows. ANALYZE
/// scans without a snapshot: it samples what the transaction sees.
pub fn visible(rel: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> (Vec<Segment>, HashSet<u64>) {
    pending::flush_relation(rel);
    // SAFETY: the transaction snapshot is valid until the next call; the
    // catalog reads below finish before that.
    let snapshot = if snapshot.is_null() {
        unsafe { pg_sys::GetTransactionSnapshot() }
    } else {
        snapshot
    };
    match storage::meta(rel) {
        None => (Vec::new(), HashSet::new()),
        // SnapshotAny would return replaced and aborted segments too,
        // whose pages may hold other data now: in-use ones instead.
        // SAFETY: a valid snapshot.
        Some(m) if unsafe { (*snapshot).snapshot_type } == pg_sys::SnapshotType::SNAPSHOT_ANY => (
            catalog::segments_in_use(m.storage_id),
            catalog::deleted_rows(m.storage_id, snapshot),
        ),
        Some(m) => (
            catalog::segments(m.storage_id, snapshot),
            catalog::deleted_rows(m.storage_id, snapshot),
        ),
    }
}
