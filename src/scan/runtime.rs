//! The tokio runtime DataFusion runs on, one per backend, started on first
//! use (never in `_PG_init`, which may run in the postmaster).
//!
//! Worker threads start with every signal blocked, so PostgreSQL's handlers
//! (cancel, timeouts, terminate, latch wake-ups) always run on the main
//! thread. The main thread waits for each batch in slices, checking for
//! interrupts between them.

use pgrx::pg_sys;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

static RUNTIME: OnceLock<(tokio::runtime::Runtime, usize)> = OnceLock::new();

/// Run `f` with every signal blocked on this thread, restoring the mask
/// after: threads it starts inherit the blocked mask.
fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain sigset manipulation on the calling thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

fn block_all_signals() {
    // SAFETY: as above, on a new worker thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// The backend's runtime and its worker count.
pub fn get() -> &'static (tokio::runtime::Runtime, usize) {
    RUNTIME.get_or_init(|| {
        let threads = super::settings::threads();
        let rt = with_signals_blocked(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("omendb-datafusion")
                .on_thread_start(block_all_signals)
                .enable_time()
                .build()
        })
        .unwrap_or_else(|e| {
            crate::error::error(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                format!("omendb could not start DataFusion's threads: {e}"),
            )
        });
        // SAFETY: registering an exit callback on the main thread.
        unsafe { pg_sys::before_shmem_exit(Some(leave_cache), pg_sys::Datum::from(0)) };
        (rt, threads)
    })
}

/// At backend exit: no DataFusion thread may be left copying out of the
/// shared cache (its pin would outlive the process).
unsafe extern "C-unwind" fn leave_cache(_code: i32, _arg: pg_sys::Datum) {
    crate::cache::shared::quiesce();
}

/// Drive `fut` to completion on the main thread, checking for interrupts
/// (query cancel, statement_timeout, terminate) every 50 ms: a pending
/// interrupt raises its ERROR here, and dropping the caller's stream stops
/// the work.
pub fn wait<F: Future>(fut: F) -> F::Output {
    let (rt, _) = get();
    let mut fut = std::pin::pin!(fut);
    loop {
        let step = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), fut.as_mut()).await
        });
        // A failed allocation (served from the reserve) stops the query
        // here, as an interrupt does.
        crate::alloc::check();
        match step {
            Ok(out) => return out,
            Err(_) => {
                pgrx::check_for_interrupts!();
            }
        }
    }
}
