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

/// `ereport(ERROR)`. Never returns.
pub(crate) fn error(code: PgSqlErrorCode, message: String) -> ! {
    ErrorReport::new(code, message, "omendb").report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}
