//! Each backend keeps the alex reader caches (root block, a copy of the model
//! levels) per index across statements, so a probe reads one data page
//! instead of descending through the model pages every time.
//!
//! The caches may be stale (model pages never move, so a stale route still
//! lands at or left of the right page and the scan moves right; a data page
//! merged away or reused since sends the reader back to the root), but they
//! must never outlive the index they describe: a relcache invalidation of the index
//! (DROP, REINDEX, TRUNCATE, ALTER) drops its entry.

use alex::ReaderCache;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

thread_local! {
    /// Keyed by (index OID, relfilenode). Only the backend's main thread
    /// touches it.
    static CACHES: RefCell<HashMap<(u32, u32), Arc<ReaderCache>>> = RefCell::new(HashMap::new());
}

/// The shared reader cache for `index`.
pub fn for_index(index: pg_sys::Relation) -> Arc<ReaderCache> {
    // SAFETY: an open relation's id and file node.
    let key = unsafe { ((*index).rd_id.to_u32(), (*index).rd_node.relNode.to_u32()) };
    CACHES.with(|c| c.borrow_mut().entry(key).or_default().clone())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn invalidate(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Runs inside invalidation processing: touch nothing but our map.
    let _ = CACHES.try_with(|c| {
        if let Ok(mut map) = c.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                map.clear();
            } else {
                map.retain(|(oid, _), _| *oid != relid.to_u32());
            }
        }
    });
}

/// Register the invalidation callback (once per process, from _PG_init).
pub fn init() {
    // SAFETY: registering a callback with a static function.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(invalidate), pg_sys::Datum::from(0)) };
}
