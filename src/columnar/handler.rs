//! The table access method routine and its SQL objects.

use super::{ddl, fetch, modify, pending, scan, tid_to_row, vacuum};
use crate::pg::pgstat;
use pgrx::pg_sys;
use pgrx::prelude::*;

extension_sql!(
    r#"
CREATE FUNCTION omendb.omen_columnar_handler(pg_catalog.internal) RETURNS pg_catalog.table_am_handler
    LANGUAGE c AS 'MODULE_PATHNAME', 'omen_columnar_handler';
CREATE ACCESS METHOD omen_columnar TYPE TABLE HANDLER omendb.omen_columnar_handler;
COMMENT ON ACCESS METHOD omen_columnar IS 'omendb columnar storage: Parquet segments in PostgreSQL pages';
"#,
    name = "omen_columnar_am",
    requires = ["columnar_catalog"]
);

#[pg_guard]
unsafe extern "C-unwind" fn slot_callbacks(
    _rel: pg_sys::Relation,
) -> *const pg_sys::TupleTableSlotOps {
    &raw const pg_sys::TTSOpsVirtual
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    pending::insert(rel, &[slot], cid);
    pgstat::count_inserts(rel, 1);
}

#[pg_guard]
unsafe extern "C-unwind" fn multi_insert(
    rel: pg_sys::Relation,
    slots: *mut *mut pg_sys::TupleTableSlot,
    nslots: i32,
    cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: the executor passes nslots valid slots.
    let slots = unsafe { std::slice::from_raw_parts(slots, nslots as usize) };
    pending::insert(rel, slots, cid);
    pgstat::count_inserts(rel, slots.len());
}

/// INSERT ... ON CONFLICT: a speculative row is an ordinary pending row;
/// others wait for our transaction (not just the insertion) on conflicts.
#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    _options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
    _spec_token: u32,
) {
    pending::insert(rel, &[slot], cid);
    pgstat::count_inserts(rel, 1);
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_complete_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    _spec_token: u32,
    succeeded: bool,
) {
    if succeeded {
        return;
    }
    // SAFETY: valid slot with the TID we assigned.
    if let Some(row) = tid_to_row(unsafe { &(*slot).tts_tid }) {
        pending::kill_row(rel, row);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn finish_bulk_insert(rel: pg_sys::Relation, _options: i32) {
    pending::flush_current(rel);
}

pub(super) static ROUTINE: pg_sys::TableAmRoutine = pg_sys::TableAmRoutine {
    type_: pg_sys::NodeTag::T_TableAmRoutine,
    slot_callbacks: Some(slot_callbacks),
    scan_begin: Some(scan::scan_begin),
    scan_end: Some(scan::scan_end),
    scan_rescan: Some(scan::scan_rescan),
    scan_getnextslot: Some(scan::scan_getnextslot),
    // No TID range scans or bitmap scans: the planner checks these are
    // NULL and does not offer those paths.
    scan_set_tidrange: None,
    scan_getnextslot_tidrange: None,
    parallelscan_estimate: Some(scan::parallelscan_estimate),
    parallelscan_initialize: Some(scan::parallelscan_initialize),
    parallelscan_reinitialize: Some(scan::parallelscan_reinitialize),
    index_fetch_begin: Some(fetch::index_fetch_begin),
    index_fetch_reset: Some(fetch::index_fetch_reset),
    index_fetch_end: Some(fetch::index_fetch_end),
    index_fetch_tuple: Some(fetch::index_fetch_tuple),
    tuple_fetch_row_version: Some(fetch::tuple_fetch_row_version),
    tuple_tid_valid: Some(fetch::tuple_tid_valid),
    tuple_get_latest_tid: Some(fetch::tuple_get_latest_tid),
    tuple_satisfies_snapshot: Some(fetch::tuple_satisfies_snapshot),
    index_delete_tuples: Some(fetch::index_delete_tuples),
    tuple_insert: Some(tuple_insert),
    tuple_insert_speculative: Some(tuple_insert_speculative),
    tuple_complete_speculative: Some(tuple_complete_speculative),
    multi_insert: Some(multi_insert),
    tuple_delete: Some(modify::tuple_delete),
    tuple_update: Some(modify::tuple_update),
    tuple_lock: Some(modify::tuple_lock),
    finish_bulk_insert: Some(finish_bulk_insert),
    relation_set_new_filenode: Some(ddl::relation_set_new_filenode),
    relation_nontransactional_truncate: Some(ddl::relation_nontransactional_truncate),
    relation_copy_data: Some(ddl::relation_copy_data),
    relation_copy_for_cluster: Some(ddl::relation_copy_for_cluster),
    relation_vacuum: Some(vacuum::relation_vacuum),
    scan_analyze_next_block: Some(scan::scan_analyze_next_block),
    scan_analyze_next_tuple: Some(scan::scan_analyze_next_tuple),
    index_build_range_scan: Some(ddl::index_build_range_scan),
    index_validate_scan: Some(ddl::index_validate_scan),
    relation_size: Some(ddl::relation_size),
    relation_needs_toast_table: Some(ddl::relation_needs_toast_table),
    relation_toast_am: Some(ddl::relation_toast_am),
    relation_fetch_toast_slice: Some(ddl::relation_fetch_toast_slice),
    relation_estimate_size: Some(ddl::relation_estimate_size),
    scan_bitmap_next_block: None,
    scan_bitmap_next_tuple: None,
    scan_sample_next_block: Some(scan::scan_sample_next_block),
    scan_sample_next_tuple: Some(scan::scan_sample_next_tuple),
};

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_omen_columnar_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The handler PostgreSQL calls to get the routine (fmgr version-1 ABI).
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn omen_columnar_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(&ROUTINE as *const pg_sys::TableAmRoutine)
}
