//! Raising PostgreSQL errors from Rust: an SQLSTATE, a message that names the
//! object, and a hint that says what to do.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// `ereport(ERROR)` with a hint. Never returns.
pub(crate) fn error_with_hint(code: PgSqlErrorCode, message: String, hint: String) -> ! {
    ErrorReport::new(code, message, "omendb")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// `ereport(ERROR)` with a detail. Never returns.
pub(crate) fn error_with_detail(code: PgSqlErrorCode, message: String, detail: String) -> ! {
    ErrorReport::new(code, message, "omendb")
        .set_detail(detail)
        .report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// `ereport(ERROR)`. Never returns.
pub(crate) fn error(code: PgSqlErrorCode, message: String) -> ! {
    ErrorReport::new(code, message, "omendb").report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Keep Rust backtraces out of the errors clients see.
///
/// pgrx attaches `std::backtrace::Backtrace::capture()` to every error it
/// raises as the DETAIL, so a server started from a shell with
/// `RUST_BACKTRACE` set would send a Rust backtrace with every omendb or
/// PostgreSQL error passing through omendb. `RUST_LIB_BACKTRACE=0` turns
/// `capture()` off (an explicit setting is respected); a genuine Rust panic
/// then writes its backtrace to the server log instead, when
/// `RUST_BACKTRACE` asks for one.
pub(crate) fn init() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // _PG_init runs before omendb starts any thread, and PostgreSQL's
        // own processes are single-threaded.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // Worker threads' panics are printed by Rust's default hook already.
    let main_thread = std::thread::current().id();
    let pgrx_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        pgrx_hook(info);
        let payload = info.payload();
        let raised_error = payload.is::<pgrx::pg_sys::panic::CaughtError>()
            || payload.is::<pgrx::pg_sys::panic::ErrorReportWithLevel>();
        let wanted = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
        if !raised_error && wanted && std::thread::current().id() == main_thread {
            let location = info
                .location()
                .map_or_else(String::new, |l| format!(" at {l}"));
            // Never panic here (a panic in the hook aborts the backend).
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "omendb: Rust panic{location}:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
        }
    }));
}
