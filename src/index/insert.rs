//! INSERT, UPDATE and COPY: one (key, TID) into the learned index. The core
//! takes page locks only (no index-wide lock); concurrent splits are handled
//! by its move-right and retry protocol. Unique indexes check first
//! (`unique.rs`).

use super::keys::{entry_tid, KeyType, NULL_KEY};
use super::unique::{self, Check};
use crate::pg::report::ConstraintError;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Not guarded itself: a unique violation is raised from here by
/// PostgreSQL's own ereport (pg/report.rs), after the guarded part has
/// returned and dropped everything it held.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    heap: pg_sys::Relation,
    check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    let mut violation = None;
    // SAFETY: PostgreSQL's arguments, passed on.
    let unique = unsafe {
        insert_entry(
            index,
            values,
            isnull,
            heap_tid,
            heap,
            check_unique,
            &mut violation,
        )
    };
    if let Some(v) = violation {
        // SAFETY: main thread, outside the guard, nothing left to drop.
        unsafe { v.raise() }
    }
    unique
}

#[pg_guard]
unsafe extern "C-unwind" fn insert_entry(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    heap: pg_sys::Relation,
    check_unique: pg_sys::IndexUniqueCheck::Type,
    violation: *mut Option<ConstraintError>,
) -> bool {
    let is_null = *isnull;
    let key = if is_null {
        NULL_KEY
    } else {
        KeyType::of_index(index).encode(*values)
    };
    let entry = entry_tid(&*heap_tid, is_null);
    let mut ix = super::open(index);
    match Check::of(check_unique) {
        Some(check) if !is_null || unique::nulls_not_distinct(index) => {
            match unique::insert(
                &mut ix, index, heap, key, entry, is_null, check, values, isnull,
            ) {
                Ok(known_unique) => known_unique,
                Err(v) => {
                    *violation = Some(v);
                    false
                }
            }
        }
        check => {
            if check != Some(Check::Existing) {
                ix.insert(key, entry)
                    .unwrap_or_else(|e| super::raise(index, e));
            }
            // Only partial checks read the result: a NULL never conflicts.
            true
        }
    }
}
