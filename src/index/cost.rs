//! The planner's cost for an alex scan.
//!
//! alex answers the same operators as btree in the same order, so btree's
//! estimator gives the right selectivity, heap-fetch cost and correlation
//! (from the column's pg_statistic). What differs is the descent: a probe
//! reads the model pages on its path and then one data page. Once this
//! backend caches the model levels (after enough probes, see readers.rs) a
//! probe reads only the data page, and btcostestimate is told a tree of
//! height 0; before that, the index's model levels.

use pgrx::pg_sys;
use pgrx::prelude::*;

unsafe extern "C-unwind" {
    fn btcostestimate(
        root: *mut pg_sys::PlannerInfo,
        path: *mut pg_sys::IndexPath,
        loop_count: f64,
        startup: *mut pg_sys::Cost,
        total: *mut pg_sys::Cost,
        selectivity: *mut pg_sys::Selectivity,
        correlation: *mut f64,
        pages: *mut f64,
    );
}

/// Pages a probe reads before its data page, in this backend.
unsafe fn model_levels(index_oid: pg_sys::Oid) -> i32 {
    let rel = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as i32);
    let levels = super::open(rel).model_reads_per_lookup().unwrap_or(0);
    pg_sys::index_close(rel, pg_sys::AccessShareLock as i32);
    levels.min(i32::MAX as u32) as i32
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    let info = (*path).indexinfo;
    (*info).tree_height = model_levels((*info).indexoid);
    // btcostestimate may ERROR: cross the FFI boundary as pgrx requires.
    pg_sys::ffi::pg_guard_ffi_boundary(|| {
        btcostestimate(
            root,
            path,
            loop_count,
            startup,
            total,
            selectivity,
            correlation,
            pages,
        )
    });
}
