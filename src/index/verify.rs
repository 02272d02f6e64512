//! `omendb.alex_verify(regclass)` and `omendb.alex_stats(regclass)`.

use super::keys::{entry_tid, KeyType, NULL_KEY};
use super::storage::PgStore;
use crate::pg::privilege::{self, Access, Expected};
use alex::{Alex, PageStore};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// An open alex index and its table, closed on drop. Both are ShareLocked,
/// table first (PostgreSQL's order), so no writer changes them meanwhile.
struct OpenIndex {
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
}

const LOCK: i32 = pg_sys::ShareLock as i32;

impl OpenIndex {
    /// Check the kind and the caller's right to run `function`, then lock
    /// and open the table and the index, and check the kind again.
    unsafe fn open(oid: pg_sys::Oid, function: &str) -> OpenIndex {
        privilege::expect_kind(oid, Expected::AlexIndex);
        // ShareLock blocks writers: owners only.
        privilege::require(oid, Access::Owner, function);
        // SAFETY: opens by OID; both raise an ERROR for a dropped relation.
        unsafe {
            let heap = pg_sys::table_open(pg_sys::IndexGetRelation(oid, false), LOCK);
            let index = pg_sys::index_open(oid, LOCK);
            let guard = OpenIndex { heap, index };
            privilege::expect_kind(oid, Expected::AlexIndex);
            guard
        }
    }
}

impl Drop for OpenIndex {
    fn drop(&mut self) {
        // SAFETY: opened with this lock mode in `open`; closed in reverse order.
        unsafe {
            pg_sys::index_close(self.index, LOCK);
            pg_sys::table_close(self.heap, LOCK);
        }
    }
}

struct HeapCheck<'a> {
    ix: &'a Alex<PgStore>,
    kind: KeyType,
    checked: i64,
    missing: i64,
    first_missing: Option<(u32, u16)>,
    index: pg_sys::Relation,
}

#[pg_guard]
unsafe extern "C-unwind" fn heap_check_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    let st = &mut *(state as *mut HeapCheck);
    let null = *isnull;
    let key = if null {
        NULL_KEY
    } else {
        st.kind.encode(*values)
    };
    let t = entry_tid(&*tid, null);
    st.checked += 1;
    if !st
        .ix
        .contains(key, t)
        .unwrap_or_else(|e| super::raise(st.index, e))
    {
        st.missing += 1;
        st.first_missing.get_or_insert((t.block, (*tid).ip_posid));
    }
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.alex_verify(index pg_catalog.regclass)
RETURNS TABLE (keys bigint, data_pages integer, model_pages integer, levels integer, heap_tuples_checked bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.alex_verify(pg_catalog.regclass) IS
    'Check every structural invariant of an alex index, and that every visible heap tuple is found through it; ERROR on the first failure';
")]
fn alex_verify(
    index: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(keys, i64),
        name!(data_pages, i32),
        name!(model_pages, i32),
        name!(levels, i32),
        name!(heap_tuples_checked, i64),
    ),
> {
    // SAFETY: index_open/table scan on the main thread inside a transaction.
    unsafe {
        let open = OpenIndex::open(index, "omendb.alex_verify");
        // The table scan evaluates the index's expressions and predicate:
        // the owner's code, run with the owner's rights.
        let _owner = privilege::AsOwner::switch(open.heap);
        let rel = open.index;
        let ix = super::open(rel);
        let report = ix.verify().unwrap_or_else(|e| super::raise(rel, e));

        let info = pg_sys::BuildIndexInfo(rel);
        // An MVCC snapshot: every tuple it sees must have its entry.
        (*info).ii_Concurrent = true;
        let mut st = HeapCheck {
            ix: &ix,
            kind: KeyType::of_index(rel),
            checked: 0,
            missing: 0,
            first_missing: None,
            index: rel,
        };
        super::build::scan_table(
            open.heap,
            rel,
            info,
            false,
            Some(heap_check_callback),
            &mut st as *mut HeapCheck as *mut std::ffi::c_void,
        );
        if let Some((blk, off)) = st.first_missing {
            crate::error::error_with_hint(
                PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
                format!(
                    "alex index \"{}\" lacks {} of {} heap tuples, e.g. the one at ({blk},{off})",
                    super::relation_name(rel),
                    st.missing,
                    st.checked
                ),
                format!(
                    "REINDEX INDEX \"{}\" rebuilds it.",
                    super::relation_name(rel)
                ),
            );
        }
        let row = (
            report.keys as i64,
            report.data_pages as i32,
            report.model_pages as i32,
            report.levels as i32,
            st.checked,
        );
        TableIterator::once(row)
    }
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.alex_stats(index pg_catalog.regclass)
RETURNS TABLE (levels integer, pages integer, data_pages integer, model_pages integer, chain_pages integer,
               free_pages integer, incomplete_splits integer, keys bigint, fill double precision,
               avg_model_error double precision, max_model_error bigint, data_bytes_per_key double precision,
               model_bytes_per_key double precision, format_version integer)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.alex_stats(pg_catalog.regclass) IS 'Shape and size of an alex index: levels, pages, keys, fill of the data pages, and how far entries sit from the slot their page model predicts';
")]
#[allow(clippy::type_complexity)]
fn alex_stats(
    index: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(levels, i32),
        name!(pages, i32),
        name!(data_pages, i32),
        name!(model_pages, i32),
        name!(chain_pages, i32),
        name!(free_pages, i32),
        name!(incomplete_splits, i32),
        name!(keys, i64),
        name!(fill, f64),
        name!(avg_model_error, f64),
        name!(max_model_error, i64),
        name!(data_bytes_per_key, f64),
        name!(model_bytes_per_key, f64),
        name!(format_version, i32),
    ),
> {
    // SAFETY: as in alex_verify.
    unsafe {
        let open = OpenIndex::open(index, "omendb.alex_stats");
        let ix = super::open(open.index);
        let r = ix.verify().unwrap_or_else(|e| super::raise(open.index, e));
        let pages = ix.store().nblocks() as i32;
        TableIterator::once((
            r.levels as i32,
            pages,
            r.data_pages as i32,
            r.model_pages as i32,
            r.chain_pages as i32,
            r.free_pages as i32,
            r.incomplete_splits as i32,
            r.keys as i64,
            r.fill(),
            r.avg_model_error(),
            r.model_error_max as i64,
            r.data_bytes_per_key(),
            r.model_bytes_per_key(),
            alex::page::FORMAT_VERSION as i32,
        ))
    }
}
