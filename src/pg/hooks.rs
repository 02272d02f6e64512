//! Chaining omendb's hooks to the previous hook or PostgreSQL's standard
//! function without pgrx's FFI guard.
//!
//! pgrx's guard turns an ERROR raised inside the call into a Rust panic and
//! raises it again at the hook's boundary from a copy that keeps only the
//! code, message, detail, hint and context: the statement position and the
//! schema, table, column and constraint fields are lost, and with
//! `RUST_BACKTRACE` set a Rust backtrace becomes its DETAIL. Called
//! unguarded, PostgreSQL's ERROR jumps straight back to PostgreSQL, exactly
//! as it does when the previous hook is another extension's.
//!
//! Callers must hold nothing that needs dropping across these calls: the
//! jump skips Rust destructors in the hook's frame.

use pgrx::pg_sys;
use std::ffi::{c_char, c_int};

mod raw {
    use super::*;
    // Declared here without #[pg_guard] (pgrx's bindings of the same
    // symbols are guarded).
    unsafe extern "C-unwind" {
        pub fn standard_planner(
            parse: *mut pg_sys::Query,
            query_string: *const c_char,
            cursor_options: c_int,
            bound_params: pg_sys::ParamListInfo,
        ) -> *mut pg_sys::PlannedStmt;
        pub fn standard_ExecutorStart(query: *mut pg_sys::QueryDesc, eflags: c_int);
        pub fn standard_ExecutorEnd(query: *mut pg_sys::QueryDesc);
    }
}

/// The previous planner hook, or `standard_planner`.
///
/// # Safety
/// Main thread, from a planner hook, with no value needing drop in scope.
pub unsafe fn planner(
    prev: pg_sys::planner_hook_type,
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the caller's contract.
    unsafe {
        match prev {
            Some(f) => f(parse, query_string, cursor_options, bound_params),
            None => raw::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

/// The previous ExecutorStart hook, or `standard_ExecutorStart`.
///
/// # Safety
/// As for [`planner`], from an ExecutorStart hook.
pub unsafe fn executor_start(
    prev: pg_sys::ExecutorStart_hook_type,
    query: *mut pg_sys::QueryDesc,
    eflags: c_int,
) {
    // SAFETY: the caller's contract.
    unsafe {
        match prev {
            Some(f) => f(query, eflags),
            None => raw::standard_ExecutorStart(query, eflags),
        }
    }
}

/// The previous ExecutorEnd hook, or `standard_ExecutorEnd`.
///
/// # Safety
/// As for [`planner`], from an ExecutorEnd hook.
pub unsafe fn executor_end(prev: pg_sys::ExecutorEnd_hook_type, query: *mut pg_sys::QueryDesc) {
    // SAFETY: the caller's contract.
    unsafe {
        match prev {
            Some(f) => f(query),
            None => raw::standard_ExecutorEnd(query),
        }
    }
}
