//! How the library was loaded, and the check features use when they need
//! `shared_preload_libraries = 'omendb'` (shared memory, hooks, workers).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

static PRELOADED: AtomicBool = AtomicBool::new(false);

pub(crate) fn init() {
    // SAFETY: a plain global flag PostgreSQL sets while it runs
    // shared_preload_libraries; read on the main thread during _PG_init.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloading, Ordering::Relaxed);
}

/// True when this process inherited omendb from `shared_preload_libraries`.
pub(crate) fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Raise a clear ERROR when `feature` needs the library preloaded and it was not.
#[allow(dead_code)] // first user: the shared-memory cache
pub(crate) fn require_preload(feature: &str) {
    if !preloaded() {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("omendb {feature} requires omendb to be preloaded"),
            "Add omendb to shared_preload_libraries in postgresql.conf and restart the server."
                .into(),
        );
    }
}
