//! Every PostgreSQL hook omendb installs, registered and chained here, in
//! one place. Each hook calls the one installed before omendb's (another
//! extension's) or PostgreSQL's standard function, unguarded (pg/hooks.rs),
//! so PostgreSQL's ERRORs pass through untouched, and hands the result to the
//! parts that need it:
//!
//! - planner: the DataFusion scan may replace the whole plan
//!   (scan/planner.rs);
//! - set_rel_pathlist: scans of columnar tables need ctid
//!   (columnar/pushdown.rs); the DataFusion scan notes each table's estimated
//!   rows for its join order and scan statistics (scan/noted.rs);
//! - ExecutorStart: ON CONFLICT targets with unique alex indexes are opened
//!   for speculative insertion (index/speculative.rs), then columnar scans get
//!   their pushed-down hints (columnar/pushdown.rs);
//! - ExecutorEnd: rows the statement buffered for columnar tables are written
//!   first (columnar/pending.rs);
//! - object_access: a dropped columnar table's storage is forgotten
//!   (columnar/ddl.rs);
//! - shmem_request / shmem_startup (preloaded only): the shared structs of
//!   pg/shmem.rs are reserved and attached (background compaction's state),
//!   and the shared cache's region (cache/shared.rs).

use crate::columnar::{autocompact_state, ddl, pending, pushdown};
use crate::index::speculative;
use crate::scan::planner;
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_SET_REL_PATHLIST: pg_sys::set_rel_pathlist_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;
static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;
static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;

#[pg_guard]
unsafe extern "C-unwind" fn planner_hook(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: PostgreSQL's arguments; nothing in scope needs dropping when
    // the chained planner raises an ERROR.
    unsafe {
        let candidate = planner::before_planning(parse);
        let stmt = crate::pg::hooks::planner(
            PREV_PLANNER,
            parse,
            query_string,
            cursor_options,
            bound_params,
        );
        match candidate {
            Some(c) => planner::after_planning(c, stmt, cursor_options, bound_params),
            None => stmt,
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn set_rel_pathlist_hook(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    // SAFETY: PostgreSQL's planner structures.
    unsafe {
        if let Some(prev) = PREV_SET_REL_PATHLIST {
            prev(root, rel, rti, rte);
        }
        pushdown::set_rel_pathlist(rel, rte);
        crate::scan::note_rel_estimate(root, rel, rti);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start_hook(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: chaining (nothing in scope needs dropping), then the parts
    // that read the initialised executor state.
    crate::alloc::statement_start();
    unsafe {
        crate::pg::hooks::executor_start(PREV_EXECUTOR_START, query, eflags);
        speculative::after_executor_start(query, eflags);
        pushdown::after_executor_start(query, eflags);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end_hook(query: *mut pg_sys::QueryDesc) {
    pending::before_executor_end();
    // SAFETY: chaining to the previous hook or the standard function.
    unsafe { crate::pg::hooks::executor_end(PREV_EXECUTOR_END, query) }
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access_hook(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: i32,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: chaining first, then the columnar part.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS {
            prev(access, class_id, object_id, sub_id, arg);
        }
        ddl::object_access(access, class_id, object_id, sub_id);
        if access == pg_sys::ObjectAccessType::OAT_DROP && sub_id == 0 {
            if class_id == pg_sys::DatabaseRelationId {
                crate::cache::shared::database_dropped(object_id);
            } else if class_id == pg_sys::RelationRelationId
                && crate::columnar::catalog::is_segment_catalog(object_id)
            {
                crate::cache::shared::catalog_dropped(object_id);
                crate::cache::local::clear();
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_request_hook() {
    // SAFETY: chaining first; requests are allowed inside this hook.
    unsafe {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            prev();
        }
    }
    autocompact_state::SHARED.request();
    crate::cache::shared::request();
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup_hook() {
    // SAFETY: chaining first, as every shmem_startup_hook does.
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            prev();
        }
    }
    autocompact_state::SHARED.attach();
    crate::cache::shared::attach();
}

/// Install every hook (from `_PG_init`, once per process).
pub(crate) fn init() {
    // SAFETY: hook registration in _PG_init, single-threaded.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner_hook);
        PREV_SET_REL_PATHLIST = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(set_rel_pathlist_hook);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start_hook);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end_hook);
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access_hook);
        if crate::loading::preloaded() {
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(shmem_request_hook);
            PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(shmem_startup_hook);
        }
    }
}
