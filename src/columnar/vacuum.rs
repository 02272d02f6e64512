//! VACUUM: index entries of rows whose deletion every transaction sees are
//! removed, and relfrozenxid advances (the table's pages hold no xids; its
//! catalog rows are vacuumed with the catalog tables). Merging segments and
//! purging deleted rows needs catalog writes, which lazy VACUUM's
//! transaction must not make; `omendb.columnar_compact` does it. Pages no
//! one owns at the end of the file are truncated (`space::truncate_tail`).

use super::purge::{live_rows, remove_index_entries};
use super::{catalog, pending, storage};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

#[pg_guard]
pub unsafe extern "C-unwind" fn relation_vacuum(
    rel: pg_sys::Relation,
    params: *mut pg_sys::VacuumParams,
    bstrategy: pg_sys::BufferAccessStrategy,
) {
    pending::flush_relation(rel);
    let live = live_rows(rel);
    // Rows whose deletion every running transaction sees: their index
    // entries can go.
    let dead: HashSet<u64> = match storage::meta(rel) {
        // SAFETY: horizon lookup for an open relation.
        Some(m) => catalog::deleted_before(m.storage_id, unsafe {
            pg_sys::GetOldestNonRemovableTransactionId(rel)
        })
        .into_iter()
        .map(|(row, _)| row)
        .collect(),
        None => HashSet::new(),
    };
    // SAFETY: params is VACUUM's.
    let verbose = !params.is_null() && unsafe { (*params).options } & pg_sys::VACOPT_VERBOSE != 0;
    let nindexes = remove_index_entries(rel, &dead, live as f64, bstrategy, verbose);
    // Pages no one owns at the end of the file go back to the operating
    // system, unless VACUUM (TRUNCATE false) or the table's vacuum_truncate
    // option says no (PostgreSQL resolved the two into `truncate`).
    // SAFETY: params is VACUUM's.
    let may_truncate = params.is_null()
        || unsafe { (*params).truncate } != pg_sys::VacOptValue::VACOPTVALUE_DISABLED;
    if may_truncate {
        let given = super::space::truncate_tail(rel);
        if given > 0 {
            let msg = format!(
                "table \"{}\": truncated {given} pages no segment uses",
                super::relation_name(rel)
            );
            if verbose {
                info!("{msg}");
            } else {
                debug1!("{msg}");
            }
        }
    }
    super::autocompact::after_vacuum(rel);
    // SAFETY: as heap's lazy vacuum updates pg_class.
    unsafe {
        let mut fz = false;
        let mut mm = false;
        pg_sys::vac_update_relstats(
            rel,
            storage::nblocks(rel),
            live as f64,
            0,
            nindexes > 0,
            pg_sys::GetOldestNonRemovableTransactionId(rel),
            pg_sys::GetOldestMultiXactId(),
            &mut fz,
            &mut mm,
            false,
        );
    }
    crate::pg::pgstat::report_vacuum(rel, live);
}
