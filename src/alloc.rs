//! The allocator of omendb's Rust code: mimalloc, with a bound on the
//! freed memory a backend keeps between queries, and a reserve that turns a
//! failed allocation into an ERROR instead of an abort.
//!
//! Stable Rust aborts the process when an allocation fails, and an aborted
//! backend makes the postmaster restart every connection. So a failed
//! allocation is retried, first after giving back the reserve, then after
//! mimalloc returns its cached free pages; when the retry succeeds the
//! statement goes on until the main thread next checks ([`check`]) and then
//! stops with PostgreSQL's `out of memory` ERROR (53200), which frees what
//! it held. Only when even the retry fails does the backend abort. To keep
//! the big allocations from getting there, [`headroom`] tells DataFusion's
//! memory cap what the operating system can still give.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Rust allocations (DataFusion's batches and hash tables above all) come
/// from mimalloc, which keeps freed pages for reuse: glibc's malloc unmaps
/// large blocks at once, and the kernel zeroed fresh pages again and again
/// within one query (up to 30% of a TPC-H query's time in the profile).
/// The TLS model (local_dynamic_tls) suits a library loaded with dlopen.
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// Given back when an allocation fails, so the statement can reach its next
/// check and unwind (dropping DataFusion's batches, say) with room to spare.
const RESERVE_BYTES: usize = 8 << 20;
const RESERVE: Layout = match Layout::from_size_align(RESERVE_BYTES, 4096) {
    Ok(l) => l,
    Err(_) => panic!("reserve layout"),
};
/// The reserve block, or null while it is spent (or not yet taken).
static RESERVE_BLOCK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// The largest request that failed since the last check; 0 if none.
static FAILED: AtomicUsize = AtomicUsize::new(0);
/// Tests: the next request of at least this many bytes fails once (0: off).
static INJECT: AtomicUsize = AtomicUsize::new(0);

struct Allocator;

impl Allocator {
    /// Whether this request is the injected failure.
    fn injected(size: usize) -> bool {
        let at = INJECT.load(Ordering::Relaxed);
        at != 0
            && size >= at
            && INJECT
                .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Make a request of `size` bytes with `call`, failing it if it is the
    /// injected failure, and retrying it through [`Self::failed`] if it
    /// returns null.
    #[inline]
    fn serve(size: usize, mut call: impl FnMut() -> *mut u8) -> *mut u8 {
        let p = if Self::injected(size) {
            std::ptr::null_mut()
        } else {
            call()
        };
        if p.is_null() {
            Self::failed(size, call)
        } else {
            p
        }
    }

    /// A request of `size` bytes failed: note it, give back the reserve and
    /// retry, then give back mimalloc's cached pages and retry once more.
    /// Allocates nothing itself.
    #[cold]
    fn failed(size: usize, mut retry: impl FnMut() -> *mut u8) -> *mut u8 {
        FAILED.fetch_max(size.max(1), Ordering::Relaxed);
        let reserve = RESERVE_BLOCK.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !reserve.is_null() {
            // SAFETY: the block was allocated with RESERVE by mimalloc.
            unsafe { mimalloc::MiMalloc.dealloc(reserve, RESERVE) };
            let p = retry();
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: mimalloc's collection, outside any mimalloc call.
        unsafe { mi_collect(true) };
        retry()
    }
}

// SAFETY: every call is passed to mimalloc unchanged; only a null result
// (or the injected one) leads to `failed`, which retries the same call.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        Self::serve(layout.size(), || unsafe {
            mimalloc::MiMalloc.alloc(layout)
        })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        Self::serve(layout.size(), || unsafe {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on; a failed realloc leaves
        // `ptr` as it was, so retrying it is sound.
        Self::serve(new_size, || unsafe {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        })
    }
}

/// Main thread, where a statement may stop: raise `out of memory` if an
/// allocation failed since the last check (it was served from the reserve
/// or from cached pages), so the statement lets go of what it holds.
pub(crate) fn check() {
    let size = FAILED.swap(0, Ordering::Relaxed);
    if size != 0 {
        crate::error::error_with_detail(
            pgrx::PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
            "out of memory".into(),
            format!(
                "omendb failed on a request of {size} bytes; the statement was stopped to give memory back"
            ),
        );
    }
}

/// Main thread, when a statement starts: take the reserve again if it was
/// spent, and forget a failure no check reported (the statement that met it
/// finished, its allocation served from the reserve).
pub(crate) fn statement_start() {
    if FAILED.swap(0, Ordering::Relaxed) != 0 {
        pgrx::log!("omendb: an allocation failed and was served from the reserve after all");
    }
    if RESERVE_BLOCK.load(Ordering::Relaxed).is_null() {
        // SAFETY: a plain allocation; null if memory is short, and then the
        // reserve is tried again at the next statement.
        let block = unsafe { mimalloc::MiMalloc.alloc(RESERVE) };
        if !block.is_null() {
            RESERVE_BLOCK.store(block, Ordering::Relaxed);
        }
    }
}

/// `omendb.inject_allocation_failure(min_bytes)`: the next Rust allocation of
/// at least `min_bytes` in this backend fails once (0 cancels), to test
/// that a failed allocation is an ERROR and not a crash.
pub(crate) fn inject_failure(min_bytes: usize) {
    INJECT.store(min_bytes, Ordering::Relaxed);
}

extern "C" {
    fn mi_collect(force: bool);
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// Memory (committed, freed or not) a backend may keep between queries.
const KEEP_FREE_MEMORY: usize = 256 << 20;

/// When a DataFusion scan ends (or is torn down by an ERROR) on the main
/// thread: if the backend holds more than [`KEEP_FREE_MEMORY`], return what
/// is free to the system now. mimalloc purges freed pages only after a delay
/// and only when it next runs, which an idle backend never does. Measured:
/// after TPC-H Q18 (1.5 GB) the backend's anonymous memory falls to 47 MB.
pub(crate) fn release_free_memory() {
    let mut v = [0usize; 8];
    // SAFETY: mimalloc's process statistics and a forced collection.
    unsafe {
        let [a, b, c, d, e, f, g, h] = &mut v;
        mi_process_info(a, b, c, d, e, f, g, h);
        if v[5] > KEEP_FREE_MEMORY {
            mi_collect(true)
        }
    }
}

/// Bytes this backend can still allocate before the operating system
/// refuses or kills it: the least of the memory cgroup's limit less its
/// usage, not counting file cache the kernel reclaims before it kills
/// (every ancestor's limit applies), the commit limit less what is
/// committed when overcommit is off (`vm.overcommit_memory = 2`, as
/// PostgreSQL recommends), or else the machine's available memory. None if
/// nothing can be read. (`ulimit -v` is not consulted: mimalloc reserves
/// address space it has not used, so the mapped size says nothing.)
pub(crate) fn headroom() -> Option<usize> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut room = read("/proc/self/cgroup").and_then(|c| cgroup_headroom(&c, &|p| read(p)));
    let mut take = |r: usize| least(&mut room, r);
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| stat_field(&meminfo, name).map(|kb| kb * 1024);
    let strict = read("/proc/sys/vm/overcommit_memory").is_some_and(|m| m.trim() == "2");
    if strict {
        if let (Some(limit), Some(used)) = (field("CommitLimit:"), field("Committed_AS:")) {
            take(limit.saturating_sub(used));
        }
    } else if let Some(avail) = field("MemAvailable:") {
        take(avail);
    }
    room
}

/// `room` becomes the lesser of itself and `r`.
fn least(room: &mut Option<usize>, r: usize) {
    *room = Some(room.map_or(r, |x| x.min(r)));
}

/// The number after `name` on its line of a `/proc` or cgroup stat file.
fn stat_field(text: &str, name: &str) -> Option<usize> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// The least headroom of the memory cgroups this process is in and their
/// ancestors, cgroup v1 or v2; `read` reads a file (None if absent).
fn cgroup_headroom(proc_cgroup: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<usize> {
    let mut room: Option<usize> = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        // (directory, limit file, usage file, file-cache fields of
        // memory.stat; shared memory is not among them)
        type Layout = (&'static str, &'static str, &'static str, [&'static str; 2]);
        const V2: [&str; 2] = ["active_file ", "inactive_file "];
        const V1: [&str; 2] = ["total_active_file ", "total_inactive_file "];
        let layout: &[Layout] = if controllers.is_empty() {
            &[
                ("/sys/fs/cgroup", "memory.max", "memory.current", V2),
                ("/sys/fs/cgroup/unified", "memory.max", "memory.current", V2),
            ]
        } else if controllers.split(',').any(|c| c == "memory") {
            &[(
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                V1,
            )]
        } else {
            continue;
        };
        for (root, limit_file, usage_file, cache_fields) in layout {
            let mut dir = path.trim_end_matches('/').to_string();
            loop {
                let at = |f: &str| read(&format!("{root}{dir}/{f}"));
                let limit = at(limit_file).and_then(|l| l.trim().parse::<usize>().ok());
                let usage = at(usage_file).and_then(|u| u.trim().parse::<usize>().ok());
                if let (Some(limit), Some(usage)) = (limit, usage) {
                    let cache: usize = at("memory.stat").map_or(0, |s| {
                        cache_fields.iter().filter_map(|f| stat_field(&s, f)).sum()
                    });
                    least(&mut room, limit.saturating_sub(usage.saturating_sub(cache)));
                }
                match dir.rfind('/') {
                    Some(i) => dir.truncate(i),
                    None => break,
                }
                if dir.is_empty() {
                    break;
                }
            }
        }
    }
    room
}

#[pgrx::pg_schema]
mod omendb {
    use pgrx::prelude::*;

    /// Fault injection for tests of the out-of-memory path: the next Rust
    /// allocation of at least `min_bytes` in this backend fails once.
    #[pg_extern(sql = "
CREATE FUNCTION omendb.inject_allocation_failure(min_bytes pg_catalog.int8) RETURNS pg_catalog.void
STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
REVOKE ALL ON FUNCTION omendb.inject_allocation_failure(pg_catalog.int8) FROM PUBLIC;
COMMENT ON FUNCTION omendb.inject_allocation_failure(pg_catalog.int8) IS
    'Tests: the next allocation of at least min_bytes by omendb in this session fails once (0 cancels)';
")]
    fn inject_allocation_failure(min_bytes: i64) {
        crate::pg::privilege::require_superuser("omendb.inject_allocation_failure()");
        if min_bytes < 0 {
            crate::error::error(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("omendb.inject_allocation_failure: min_bytes must be 0 or more, not {min_bytes}"),
            );
        }
        super::inject_failure(min_bytes as usize);
    }
}
