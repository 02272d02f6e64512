//! The planner's cost for an alex scan.
//!
//! alex answers the same operators as btree in the same order, so btree's
//! estimator gives the right selectivity, heap-fetch cost and correlation
//! (from the column's pg_statistic). What differs is the descent: a probe
//! reads the model pages on its path and then one data page. Until backends
//! cache the model levels, that path is as long as the index's model levels,
//! so that is the tree height btcostestimate is told.

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

/// Model levels above the data pages, from the metapage.
unsafe fn model_levels(index_oid: pg_sys::Oid) -> i32 {
    let rel = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as i32);
    let levels = super::open(rel).meta().map(|m| m.levels).unwrap_or(1);
    pg_sys::index_close(rel, pg_sys::AccessShareLock as i32);
    levels.saturating_sub(1).min(i32::MAX as u32) as i32
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
