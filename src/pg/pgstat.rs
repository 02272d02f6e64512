//! Table statistics for PostgreSQL's cumulative statistics system
//! (`pg_stat_user_tables`). heapam counts its own inserts, updates, deletes
//! and scans; a table access method must do the same, or autovacuum never
//! sees changes and never ANALYZEs the table — and a planner without
//! statistics sends `WHERE key = $1` through a scan instead of the index.

use pgrx::pg_sys;

/// The relation's pending statistics entry, if statistics are collected
/// for it (`pgstat_should_count_relation`, a macro in PostgreSQL).
#[inline]
fn entry(rel: pg_sys::Relation) -> Option<*mut pg_sys::PgStat_TableStatus> {
    // SAFETY: `rel` is an open relation; pgstat_assoc_relation sets
    // pgstat_info (or clears pgstat_enabled) as the macro expects.
    unsafe {
        if !(*rel).pgstat_enabled {
            return None;
        }
        if (*rel).pgstat_info.is_null() {
            pg_sys::pgstat_assoc_relation(rel);
        }
        let info = (*rel).pgstat_info;
        (!info.is_null()).then_some(info)
    }
}

/// `n` rows inserted (counted as heap does: dead again if the
/// transaction aborts).
pub fn count_inserts(rel: pg_sys::Relation, n: usize) {
    if n > 0 {
        // SAFETY: an open relation.
        unsafe { pg_sys::pgstat_count_heap_insert(rel, n as pg_sys::PgStat_Counter) }
    }
}

/// One row deleted.
pub fn count_delete(rel: pg_sys::Relation) {
    // SAFETY: an open relation.
    unsafe { pg_sys::pgstat_count_heap_delete(rel) }
}

/// One row updated (never HOT: an update is a deletion and an insert).
pub fn count_update(rel: pg_sys::Relation) {
    // SAFETY: an open relation.
    unsafe { pg_sys::pgstat_count_heap_update(rel, false) }
}

/// A sequential scan started (`seq_scan`).
pub fn count_scan(rel: pg_sys::Relation) {
    if let Some(info) = entry(rel) {
        // SAFETY: the entry pgstat gave this relation.
        unsafe { (*info).t_counts.t_numscans += 1 }
    }
}

/// `n` rows returned by a sequential scan (`seq_tup_read`).
#[inline]
pub fn count_returned(rel: pg_sys::Relation, n: u64) {
    if n == 0 {
        return;
    }
    if let Some(info) = entry(rel) {
        // SAFETY: the entry pgstat gave this relation.
        unsafe { (*info).t_counts.t_tuples_returned += n as pg_sys::PgStat_Counter }
    }
}

/// VACUUM finished: `live` rows remain (`n_live_tup`), and no dead ones
/// VACUUM could remove are left (`n_dead_tup`): rows deleted before the
/// horizon lost their index entries, and their bytes go with the next
/// compaction, which this VACUUM scheduled if due.
pub fn report_vacuum(rel: pg_sys::Relation, live: u64) {
    // SAFETY: an open relation.
    unsafe {
        pg_sys::pgstat_report_vacuum(
            (*rel).rd_id,
            (*(*rel).rd_rel).relisshared,
            live as pg_sys::PgStat_Counter,
            0,
        )
    }
}
