//! ERRORs that carry PostgreSQL's constraint fields.
//!
//! pgrx's `ErrorReport` keeps a code, message, detail and hint; a unique
//! violation also names its schema, table and constraint
//! (`errtableconstraint`), which drivers expose (psycopg's
//! `diag.constraint_name`, JDBC's `ServerErrorMessage`). This raises one the
//! way nbtree does, through PostgreSQL's own `ereport` calls, declared here
//! without pgrx's guard so the ERROR jumps straight back to PostgreSQL.

use pgrx::pg_sys;
use std::ffi::{c_char, c_int, CString};

mod raw {
    use super::*;
    unsafe extern "C-unwind" {
        pub fn errstart(elevel: c_int, domain: *const c_char) -> bool;
        pub fn errcode(sqlerrcode: c_int) -> c_int;
        pub fn errmsg(fmt: *const c_char, ...) -> c_int;
        pub fn errdetail(fmt: *const c_char, ...) -> c_int;
        pub fn errtableconstraint(rel: pg_sys::Relation, conname: *const c_char) -> c_int;
        pub fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
    }
}

/// A constraint ERROR, its text already in memory PostgreSQL owns (so
/// nothing Rust owns is skipped by the jump).
pub struct ConstraintError {
    code: c_int,
    message: *mut c_char,
    detail: *mut c_char,
    table: pg_sys::Relation,
    constraint: *mut c_char,
    /// Where it was made, for the report's LOCATION. Static: PostgreSQL
    /// keeps the pointer (CopyErrorData, ReThrowError) past any context.
    file: &'static std::ffi::CStr,
    line: c_int,
    function: &'static std::ffi::CStr,
}

/// A palloc'd copy of `s` (interior NULs, impossible in names and key
/// descriptions, are cut).
fn pstrdup(s: &str) -> *mut c_char {
    let c = CString::new(s.replace('\0', "")).unwrap_or_default();
    // SAFETY: copies a NUL-terminated string into CurrentMemoryContext.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// A NUL-terminated copy of a source file name that lives as long as the
/// process: one leaked copy per file, made the first time it is needed.
fn static_cstr(s: &'static str) -> &'static std::ffi::CStr {
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::HashMap<&'static str, &'static std::ffi::CStr>> =
            Default::default();
    }
    NAMES.with(|m| {
        *m.borrow_mut().entry(s).or_insert_with(|| {
            Box::leak(
                CString::new(s.replace('\0', ""))
                    .unwrap_or_default()
                    .into_boxed_c_str(),
            )
        })
    })
}

impl ConstraintError {
    /// `code` with `message` and an optional `detail`, naming `constraint`
    /// on `table` (an open relation), raised on behalf of `function`.
    #[track_caller]
    pub fn new(
        function: &'static std::ffi::CStr,
        code: pgrx::PgSqlErrorCode,
        message: &str,
        detail: Option<&str>,
        table: pg_sys::Relation,
        constraint: &str,
    ) -> ConstraintError {
        let at = std::panic::Location::caller();
        ConstraintError {
            file: static_cstr(at.file()),
            line: at.line() as c_int,
            function,
            code: code as c_int,
            message: pstrdup(message),
            detail: detail.map_or(std::ptr::null_mut(), pstrdup),
            table,
            constraint: pstrdup(constraint),
        }
    }

    /// Raise it.
    ///
    /// # Safety
    /// Main thread, outside any pgrx guard's closure, with no value that
    /// needs dropping in the calling frames up to PostgreSQL's caller.
    pub unsafe fn raise(self) -> ! {
        // SAFETY: the caller's contract; "%s" formats keep the text literal.
        unsafe {
            if raw::errstart(pgrx::PgLogLevel::ERROR as c_int, std::ptr::null()) {
                raw::errcode(self.code);
                raw::errmsg(c"%s".as_ptr(), self.message);
                if !self.detail.is_null() {
                    raw::errdetail(c"%s".as_ptr(), self.detail);
                }
                raw::errtableconstraint(self.table, self.constraint);
                raw::errfinish(self.file.as_ptr(), self.line, self.function.as_ptr());
            }
        }
        unreachable!("ereport(ERROR) returned")
    }
}

/// Raise PANIC at once, from inside a critical section: through PostgreSQL's
/// own `ereport`, which aborts the process right there, so no Rust frame
/// unwinds and no buffer lock is released over a half-changed page (a pgrx
/// ERROR would unwind first and become a PANIC only at the guard).
///
/// # Safety
/// Main thread.
#[track_caller]
pub unsafe fn panic_now(message: &str) -> ! {
    let at = std::panic::Location::caller();
    let text = pstrdup(message);
    // SAFETY: the caller's contract; "%s" keeps the text literal.
    unsafe {
        if raw::errstart(pgrx::PgLogLevel::PANIC as c_int, std::ptr::null()) {
            raw::errcode(pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR as c_int);
            raw::errmsg(c"%s".as_ptr(), text);
            raw::errfinish(
                static_cstr(at.file()).as_ptr(),
                at.line() as c_int,
                c"omendb".as_ptr(),
            );
        }
    }
    std::process::abort()
}
