//! omendb's configuration settings. Every setting lives under the reserved
//! `omendb.` prefix; features register theirs here as they land.

use pgrx::pg_sys;

pub(crate) fn init() {
    // SAFETY: called from _PG_init on the main thread with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"omendb".as_ptr()) };
}
