//! INSERT, UPDATE and COPY: one (key, TID) into the learned index. The core
//! takes page locks only (no index-wide lock); concurrent splits are handled
//! by its move-right and retry protocol.

use super::keys::{entry_tid, KeyType, NULL_KEY};
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    let is_null = *isnull;
    let key = if is_null {
        NULL_KEY
    } else {
        KeyType::of_index(index).encode(*values)
    };
    let mut ix = super::open(index);
    ix.insert(key, entry_tid(&*heap_tid, is_null))
        .unwrap_or_else(|e| super::raise(index, e));
    // The return value only matters for deferred unique checks.
    false
}
