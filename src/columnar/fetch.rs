//! Fetching single rows by TID: index scans, EvalPlanQual, triggers, unique
//! checks. A row is visible iff it is in this backend's pending batch and
//! the snapshot sees the running command's rows, or its segment's catalog
//! row is visible and no deletion row of it is.

use super::catalog::{self, Segment};
use super::rows::{Cursor, Table};
use super::{pending, storage, tid_to_row};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Whether `snapshot` sees rows the running command inserted and has not
/// yet written (only the current transaction has such rows).
fn sees_pending(snapshot: pg_sys::Snapshot, cid: pg_sys::CommandId) -> bool {
    // SAFETY: a valid snapshot.
    let s = unsafe { &*snapshot };
    match s.snapshot_type {
        pg_sys::SnapshotType::SNAPSHOT_MVCC | pg_sys::SnapshotType::SNAPSHOT_HISTORIC_MVCC => {
            cid < s.curcid
        }
        _ => true,
    }
}

/// The segment holding `row` if `snapshot` sees the row (catalog only; the
/// caller checks pending batches first). Dirty snapshots get heap's
/// contract: xmin names an in-progress inserter, xmax an in-progress
/// deleter, for the caller to wait on.
fn visible_segment(storage: u64, row: u64, snapshot: pg_sys::Snapshot) -> Option<Segment> {
    // SAFETY: a valid snapshot.
    let dirty = unsafe { (*snapshot).snapshot_type } == pg_sys::SnapshotType::SNAPSHOT_DIRTY;
    if !dirty {
        let seg = catalog::segment_containing(storage, row, snapshot)?;
        if seg.kind != catalog::Kind::Reserved && catalog::is_deleted(storage, row, snapshot) {
            return None;
        }
        return Some(seg);
    }
    // SAFETY: a dirty snapshot's xmin/xmax are ours to set (InitDirtySnapshot
    // only sets its type).
    unsafe {
        (*snapshot).xmin = pg_sys::InvalidTransactionId;
        (*snapshot).xmax = pg_sys::InvalidTransactionId;
    }
    let seg = catalog::segment_containing(storage, row, snapshot)?;
    if seg.kind == catalog::Kind::Reserved {
        return Some(seg);
    }
    // SAFETY: as above.
    unsafe {
        let inserter = (*snapshot).xmin;
        // A segment's catalog row being deleted (compaction rewriting it)
        // deletes none of its rows: only deletion rows make a caller wait.
        (*snapshot).xmax = pg_sys::InvalidTransactionId;
        match catalog::deletion_of(storage, row) {
            Some(d)
                if pg_sys::TransactionIdIsCurrentTransactionId(d.xmin)
                    || pg_sys::TransactionIdDidCommit(d.xmin) =>
            {
                return None;
            }
            Some(d) => (*snapshot).xmax = d.xmin,
            None => {}
        }
        (*snapshot).xmin = inserter;
    }
    Some(seg)
}

fn reset_dirty(snapshot: pg_sys::Snapshot) {
    // SAFETY: as above.
    unsafe {
        if (*snapshot).snapshot_type == pg_sys::SnapshotType::SNAPSHOT_DIRTY {
            (*snapshot).xmin = pg_sys::InvalidTransactionId;
            (*snapshot).xmax = pg_sys::InvalidTransactionId;
        }
    }
}

/// Per-fetch-state cache: the last segment read and its open cursor.
pub struct Fetcher {
    table: Table,
    /// Recently read segments with their open cursors, most recent last.
    cached: Vec<(Segment, Cursor)>,
    row_cx: pgrx::PgMemoryContexts,
    storage_id: Option<u64>,
    /// After a few lookups under one MVCC snapshot, what it sees is read
    /// once (segments, deleted rows) instead of probing the catalog per row.
    view: Option<View>,
    lookups: u32,
    /// Table columns to decode (sorted); None: all.
    columns: Option<Vec<usize>>,
}

/// Segments a fetch state keeps open (parsed footer, last decoded group).
const CACHED_SEGMENTS: usize = 4;

/// Lookups under one snapshot before its whole view is loaded.
const VIEW_AFTER: u32 = 32;

struct View {
    key: (
        usize,
        pg_sys::CommandId,
        pg_sys::TransactionId,
        pg_sys::TransactionId,
    ),
    segments: Vec<Segment>,
    deleted: std::collections::HashSet<u64>,
}

/// Identity of an MVCC snapshot's contents, or None for other kinds.
fn view_key(
    s: pg_sys::Snapshot,
) -> Option<(
    usize,
    pg_sys::CommandId,
    pg_sys::TransactionId,
    pg_sys::TransactionId,
)> {
    // SAFETY: a valid snapshot.
    let d = unsafe { &*s };
    (d.snapshot_type == pg_sys::SnapshotType::SNAPSHOT_MVCC)
        .then_some((s as usize, d.curcid, d.xmin, d.xmax))
}

impl Fetcher {
    pub fn new(rel: pg_sys::Relation) -> Fetcher {
        Fetcher {
            table: Table::new(rel),
            cached: Vec::new(),
            row_cx: pgrx::PgMemoryContexts::new("omen_columnar fetch row"),
            storage_id: None,
            view: None,
            lookups: 0,
            columns: None,
        }
    }

    /// A fetcher that decodes only `columns` (others read as NULL).
    pub fn with_columns(rel: pg_sys::Relation, columns: Option<Vec<usize>>) -> Fetcher {
        Fetcher {
            columns,
            ..Fetcher::new(rel)
        }
    }

    /// The visible segment holding `row`, through the loaded view when the
    /// snapshot has one.
    fn segment_for(
        &mut self,
        storage: u64,
        row: u64,
        snapshot: pg_sys::Snapshot,
    ) -> Option<Segment> {
        let Some(key) = view_key(snapshot) else {
            return visible_segment(storage, row, snapshot);
        };
        if self.view.as_ref().is_none_or(|v| v.key != key) {
            self.view = None;
            self.lookups += 1;
            if self.lookups < VIEW_AFTER {
                return visible_segment(storage, row, snapshot);
            }
            let (segments, deleted) = super::snapshot::visible(self.table.rel, snapshot);
            self.view = Some(View {
                key,
                segments,
                deleted,
            });
        }
        let v = self.view.as_ref().expect("loaded");
        let i = v.segments.partition_point(|s| s.first_row <= row);
        let seg = v.segments[..i]
            .last()
            .filter(|s| s.last_row >= row && !v.deleted.contains(&row))?;
        Some(seg.clone())
    }

    /// Store row `row` into `slot` if `snapshot` sees it.
    pub fn fetch(
        &mut self,
        row: u64,
        snapshot: pg_sys::Snapshot,
        slot: *mut pg_sys::TupleTableSlot,
    ) -> bool {
        let rel = self.table.rel;
        reset_dirty(snapshot);
        // SAFETY: nothing borrows the previous row's values any more.
        unsafe { self.row_cx.reset() };
        let table = &self.table;
        // SAFETY: row values live in row_cx until the next fetch.
        let from_batch = unsafe {
            self.row_cx.switch_to(|_| {
                pending::with_row(rel, row, |schema, record, cid| {
                    if sees_pending(snapshot, cid) {
                        table.fill_from_record(slot, schema, record);
                        true
                    } else {
                        false
                    }
                })
            })
        };
        if let Some(found) = from_batch {
            return found;
        }
        if self.storage_id.is_none() {
            self.storage_id = storage::meta(rel).map(|m| m.storage_id);
        }
        let Some(storage_id) = self.storage_id else {
            return false;
        };
        let Some(seg) = self.segment_for(storage_id, row, snapshot) else {
            return false;
        };
        if seg.kind == catalog::Kind::Reserved {
            // A dirty read of a row another transaction has not written yet:
            // "visible", with that transaction in the snapshot to wait for.
            // SAFETY: valid slot.
            unsafe { pg_sys::ExecStoreAllNullTuple(slot) };
            return true;
        }
        let hit = self.cached.iter().position(|(s, _)| {
            (s.first_row, s.first_block, s.byte_length)
                == (seg.first_row, seg.first_block, seg.byte_length)
        });
        let entry = match hit {
            Some(i) => self.cached.remove(i),
            None => {
                if self.cached.len() >= CACHED_SEGMENTS {
                    self.cached.remove(0);
                }
                (seg.clone(), Cursor::open(&self.table, &seg))
            }
        };
        self.cached.push(entry);
        let (_, cursor) = self.cached.last_mut().expect("just pushed");
        let (table, columns) = (&self.table, self.columns.as_deref());
        // SAFETY: as above.
        let found = unsafe {
            self.row_cx
                .switch_to(|_| cursor.seek(table, slot, row, columns))
        };
        if found {
            // SAFETY: valid slot.
            unsafe { (*slot).tts_tableOid = (*rel).rd_id };
        }
        found
    }
}

/// Whether `snapshot` sees row `row` of `rel` (no slot filled).
pub fn row_visible(rel: pg_sys::Relation, row: u64, snapshot: pg_sys::Snapshot) -> bool {
    reset_dirty(snapshot);
    if let Some(v) = pending::with_row(rel, row, |_, _, cid| sees_pending(snapshot, cid)) {
        return v;
    }
    let Some(meta) = storage::meta(rel) else {
        return false;
    };
    visible_segment(meta.storage_id, row, snapshot).is_some()
}

#[repr(C)]
struct FetchDesc {
    base: pg_sys::IndexFetchTableData,
    fetcher: *mut Fetcher,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_begin(
    rel: pg_sys::Relation,
) -> *mut pg_sys::IndexFetchTableData {
    pending::flush_relation(rel);
    // SAFETY: palloc0 of our descriptor; freed in index_fetch_end.
    unsafe {
        let d = pg_sys::palloc0(std::mem::size_of::<FetchDesc>()) as *mut FetchDesc;
        (*d).base.rel = rel;
        let columns = super::pushdown::take_fetch_columns();
        (*d).fetcher = Box::into_raw(Box::new(Fetcher::with_columns(rel, columns)));
        d as *mut pg_sys::IndexFetchTableData
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_reset(_data: *mut pg_sys::IndexFetchTableData) {}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_end(data: *mut pg_sys::IndexFetchTableData) {
    // SAFETY: made by index_fetch_begin.
    unsafe {
        let d = data as *mut FetchDesc;
        drop(Box::from_raw((*d).fetcher));
        pg_sys::pfree(d as *mut std::ffi::c_void);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn index_fetch_tuple(
    scan: *mut pg_sys::IndexFetchTableData,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    call_again: *mut bool,
    all_dead: *mut bool,
) -> bool {
    // SAFETY: valid out-parameters and descriptor.
    unsafe {
        *call_again = false;
        if !all_dead.is_null() {
            *all_dead = false;
        }
        let Some(row) = tid_to_row(&*tid) else {
            return false;
        };
        let f = &mut *(*(scan as *mut FetchDesc)).fetcher;
        if f.fetch(row, snapshot, slot) {
            (*slot).tts_tid = *tid;
            true
        } else {
            false
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_fetch_row_version(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: valid TID pointer and slot.
    let Some(row) = tid_to_row(unsafe { &*tid }) else {
        return false;
    };
    let mut f = Fetcher::new(rel);
    let found = f.fetch(row, snapshot, slot);
    if found {
        // SAFETY: valid slot. The values live in f's context, which would be
        // freed with it: materialize them into the slot first.
        unsafe {
            (*slot).tts_tid = *tid;
            pg_sys::ExecMaterializeSlot(slot);
        }
    }
    found
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_tid_valid(
    scan: pg_sys::TableScanDesc,
    tid: pg_sys::ItemPointer,
) -> bool {
    // SAFETY: valid descriptor and TID.
    let (rel, row) = unsafe { ((*scan).rs_rd, tid_to_row(&*tid)) };
    match (row, storage::meta(rel)) {
        (Some(r), Some(m)) => r < m.next_row,
        _ => false,
    }
}

/// Rows are never updated in place, so a TID is always its own latest version.
#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_get_latest_tid(
    _scan: pg_sys::TableScanDesc,
    _tid: pg_sys::ItemPointer,
) {
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_satisfies_snapshot(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    snapshot: pg_sys::Snapshot,
) -> bool {
    // SAFETY: valid slot.
    match tid_to_row(unsafe { &(*slot).tts_tid }) {
        Some(row) => row_visible(rel, row, snapshot),
        None => false,
    }
}

/// Index-entry deletion asks which TIDs are dead to everyone; we report
/// none (VACUUM removes index entries of deleted rows instead).
#[pg_guard]
pub unsafe extern "C-unwind" fn index_delete_tuples(
    _rel: pg_sys::Relation,
    delstate: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    // SAFETY: valid delete-op state.
    unsafe { (*delstate).ndeltids = 0 };
    pg_sys::InvalidTransactionId
}
