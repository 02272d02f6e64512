//! The allocator of omendb's Rust code: mimalloc, with a bound on the
//! freed memory a backend keeps between queries.

/// Rust allocations (DataFusion's batches and hash tables above all) come
/// from mimalloc, which keeps freed pages for reuse: glibc's malloc unmaps
/// large blocks at once, and the kernel zeroed fresh pages again and again
/// within one query (up to 30% of a TPC-H query's time in the profile).
/// The TLS model (local_dynamic_tls) suits a library loaded with dlopen.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
