//! The planner's cost for an alex scan.
//!
//! alex answers the same operators as btree in the same order, so btree's
//! estimator gives the right selectivity, heap-fetch cost and correlation
//! (from the column's pg_statistic). What differs is the descent: the model
//! levels are arithmetic over a few cached pages, so a probe costs one data
//! page — told to btcostestimate as a tree of height 0.

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
    (*(*path).indexinfo).tree_height = 0;
    // btcostestimate may ERROR: cross the FFI boundary as pgrx requires.
    pg_sys::ffi::pg_guard_ffi_boundary(|| {
        btcostestimate(root, path, loop_count, startup, total, selectivity, correlation, pages)
    });
}
