//! The extension's catalog tables for columnar storage, read and written with
//! heap access (not SPI): reads take the caller's snapshot, so segment and
//! deletion visibility is exactly heap MVCC; writes take an explicit command
//! id, so a segment flushed at the end of a statement is stamped with the
//! command that inserted its rows.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;
use std::ffi::CString;

extension_sql!(
    r#"
-- One row per segment of an omen_columnar table's storage. A segment covers
-- row numbers first_row..last_row (row_count of them present); its bytes are
-- block_count pages from first_block (Parquet, kind 'p') or rows in the
-- write-store page chain starting at first_block (kind 'w'). segment_id
-- names its contents for caches: never reused, unlike first_block (NULL for
-- reservations, kind 'r', which hold no data, and in rows written before
-- version 0.2.0 that old snapshots still see).
CREATE TABLE omendb.columnar_segment (
    storage_id bigint NOT NULL,
    first_row bigint NOT NULL,
    last_row bigint NOT NULL,
    row_count bigint NOT NULL,
    kind pg_catalog."char" NOT NULL,
    first_block bigint NOT NULL,
    block_count bigint NOT NULL,
    byte_length bigint NOT NULL,
    format_version integer NOT NULL,
    segment_id bigint
);
CREATE SEQUENCE omendb.columnar_segment_seq;
CREATE INDEX columnar_segment_rows ON omendb.columnar_segment (storage_id, first_row);
-- One row per deleted row; the primary key makes two transactions deleting
-- the same row conflict (the second waits for the first, like heap).
CREATE TABLE omendb.columnar_deleted (
    storage_id bigint NOT NULL,
    row_number bigint NOT NULL,
    by_update boolean NOT NULL,
    CONSTRAINT columnar_deleted_pkey PRIMARY KEY (storage_id, row_number)
);
-- Blocks of segments that omendb.columnar_compact replaced: reusable by
-- later segments once no catalog row of the replaced segments is left (so
-- no snapshot, on the primary or a standby, can still read them).
CREATE TABLE omendb.columnar_free (
    storage_id bigint NOT NULL,
    first_block bigint NOT NULL,
    block_count bigint NOT NULL
);
CREATE INDEX columnar_free_storage ON omendb.columnar_free (storage_id);
CREATE SEQUENCE omendb.columnar_storage_seq;
REVOKE ALL ON omendb.columnar_segment, omendb.columnar_deleted, omendb.columnar_free,
    omendb.columnar_storage_seq, omendb.columnar_segment_seq FROM PUBLIC;
"#,
    name = "columnar_catalog",
    requires = ["omendb_schema"]
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Parquet,
    WriteStore,
    /// Row numbers reserved by a transaction whose rows are not written yet
    /// (kind 'r'): only dirty reads care, to wait for that transaction.
    Reserved,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub first_row: u64,
    pub last_row: u64,
    pub row_count: u64,
    pub kind: Kind,
    pub first_block: u32,
    pub block_count: u32,
    pub byte_length: u64,
    pub format_version: u32,
    /// Names the segment's contents for caches: the catalog table's OID
    /// and the number `omendb.columnar_segment_seq` gave it, never reused
    /// (the OID tells a catalog made by a later CREATE EXTENSION, whose
    /// sequence starts again, from this one). None for a segment not yet in
    /// the catalog, and for catalog rows written before the extension's
    /// 0.2.0 (or while its catalog is still 0.1.0's).
    pub id: Option<SegmentId>,
}

/// (OID of omendb.columnar_segment, segment_id): see [`Segment::id`].
pub use crate::cache::local::SegmentId;

/// A deletion row as seen by a dirty read.
pub struct Deletion {
    pub xmin: pg_sys::TransactionId,
    pub cmin: pg_sys::CommandId,
    pub by_update: bool,
}

const SEGMENT_TABLE: &str = "columnar_segment";

/// Whether `rel` is a segment catalog (`omendb.columnar_segment`).
pub fn is_segment_catalog(rel: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups by OID on the main thread.
    unsafe {
        let name = pg_sys::get_rel_name(rel);
        if name.is_null() || std::ffi::CStr::from_ptr(name).to_bytes() != SEGMENT_TABLE.as_bytes() {
            return false;
        }
        let ns = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        !ns.is_null() && std::ffi::CStr::from_ptr(ns).to_bytes() == b"omendb"
    }
}
const SEGMENT_INDEX: &str = "columnar_segment_rows";
const DELETED_TABLE: &str = "columnar_deleted";
const DELETED_INDEX: &str = "columnar_deleted_pkey";
const FREE_TABLE: &str = "columnar_free";
const FREE_INDEX: &str = "columnar_free_storage";
const STORAGE_SEQ: &str = "columnar_storage_seq";
const SEGMENT_SEQ: &str = "columnar_segment_seq";
/// Columns of omendb.columnar_segment; 0.1.0's catalog lacks the last.
const SEGMENT_COLUMNS: usize = 10;

unsafe extern "C-unwind" {
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

fn lookup(name: &str) -> pg_sys::Oid {
    let schema = CString::new("omendb").expect("no NUL");
    let cname = CString::new(name).expect("no NUL");
    // SAFETY: syscache lookups with valid C strings.
    unsafe {
        let ns = pg_sys::get_namespace_oid(schema.as_ptr(), true);
        if ns == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(cname.as_ptr(), ns)
        }
    }
}

/// Whether the catalog tables exist (not during DROP EXTENSION ... CASCADE).
pub fn available() -> bool {
    lookup(SEGMENT_TABLE) != pg_sys::InvalidOid && lookup(DELETED_TABLE) != pg_sys::InvalidOid
}

fn catalog_oid(name: &str) -> pg_sys::Oid {
    let oid = lookup(name);
    if oid == pg_sys::InvalidOid {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("omendb catalog table omendb.{name} does not exist"),
            "omen_columnar tables need the omendb extension: CREATE EXTENSION omendb.".into(),
        );
    }
    oid
}

/// An open catalog relation, closed (lock kept to end of transaction) on drop.
struct Open(pg_sys::Relation);

impl Open {
    fn table(name: &str, lock: u32) -> Open {
        // SAFETY: opening an existing relation by OID.
        Open(unsafe { pg_sys::table_open(catalog_oid(name), lock as i32) })
    }
    fn index(name: &str, lock: u32) -> Open {
        // SAFETY: as above.
        Open(unsafe { pg_sys::index_open(catalog_oid(name), lock as i32) })
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        // SAFETY: opened in Open::table/index; relation_close fits both.
        unsafe { pg_sys::relation_close(self.0, pg_sys::NoLock as i32) };
    }
}

/// A new storage id for a table's metapage: ids are never reused, so catalog
/// rows of a dropped or truncated storage can never attach to another.
pub fn new_storage_id() -> u64 {
    next_value(STORAGE_SEQ)
}

/// The next value of catalog sequence `name`.
fn next_value(name: &str) -> u64 {
    // SAFETY: the sequence exists (catalog_oid checks); no permission check,
    // the value is internal.
    let seq = catalog_oid(name);
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| nextval_internal(seq, false) as u64) }
}

/// Whether omendb.columnar_segment has the segment_id column (0.2.0 on;
/// before `ALTER EXTENSION omendb UPDATE`, a 0.1.0 catalog does not).
pub fn has_segment_ids() -> bool {
    let heap = Open::table(SEGMENT_TABLE, pg_sys::AccessShareLock);
    // SAFETY: an open relation's descriptor.
    unsafe { (*(*heap.0).rd_att).natts as usize >= SEGMENT_COLUMNS }
}

fn int8_key(key: &mut pg_sys::ScanKeyData, attno: i16, strategy: u16, proc_: u32, value: u64) {
    // SAFETY: initialising a caller-owned scan key.
    unsafe {
        pg_sys::ScanKeyInit(
            key,
            attno,
            strategy,
            pg_sys::Oid::from(proc_),
            pg_sys::Datum::from(value as i64),
        )
    };
}

/// A second key on a catalog's row-number column (attribute 2).
#[derive(Clone, Copy)]
enum RowKey {
    Equal(u64),
    AtMost(u64),
}

/// Scan keys `storage_id = storage [and column 2 <op> row]`; returns the count.
fn storage_keys(keys: &mut [pg_sys::ScanKeyData; 2], storage: u64, row: Option<RowKey>) -> i32 {
    let (eq, le) = (
        pg_sys::BTEqualStrategyNumber as u16,
        pg_sys::BTLessEqualStrategyNumber as u16,
    );
    int8_key(&mut keys[0], 1, eq, pg_sys::F_INT8EQ, storage);
    match row {
        None => 1,
        Some(RowKey::Equal(r)) => {
            int8_key(&mut keys[1], 2, eq, pg_sys::F_INT8EQ, r);
            2
        }
        Some(RowKey::AtMost(r)) => {
            int8_key(&mut keys[1], 2, le, pg_sys::F_INT8LE, r);
            2
        }
    }
}

/// Visit the catalog rows of `storage` in `table` (through `index`) that
/// `snapshot` returns, with their deformed values.
fn scan_storage(
    table: &str,
    index: &str,
    lock: u32,
    storage: u64,
    row: Option<RowKey>,
    snapshot: pg_sys::Snapshot,
    mut each: impl FnMut(&Open, pg_sys::HeapTuple, &[pg_sys::Datum]),
) {
    let heap = Open::table(table, lock);
    let mut keys = [
        pg_sys::ScanKeyData::default(),
        pg_sys::ScanKeyData::default(),
    ];
    let nkeys = storage_keys(&mut keys, storage, row);
    // SAFETY: a system-table scan over an open catalog with a valid snapshot.
    unsafe {
        let scan = pg_sys::systable_beginscan(
            heap.0,
            catalog_oid(index),
            true,
            snapshot,
            nkeys,
            keys.as_mut_ptr(),
        );
        loop {
            let tup = pg_sys::systable_getnext(scan);
            if tup.is_null() {
                break;
            }
            let values = deform(&heap, tup);
            each(&heap, tup, &values);
        }
        pg_sys::systable_endscan(scan);
    }
}

/// A dirty snapshot: committed and in-progress insertions, without rows
/// whose deletion committed. What "rows anyone may still read" means for
/// catalog rows once pages of deleted segments can be reused.
fn dirty_snapshot() -> pg_sys::SnapshotData {
    pg_sys::SnapshotData {
        snapshot_type: pg_sys::SnapshotType::SNAPSHOT_DIRTY,
        ..Default::default()
    }
}

/// Where a catalog row stands for maintenance (compaction, page reuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Inserted by a committed transaction and not deleted by one.
    Live,
    /// Inserted or deleted by a transaction still running (this one too).
    Busy,
    /// Inserted by an aborted transaction, or deleted by a committed one.
    Dead,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Xact {
    Running,
    Committed,
    Aborted,
}

fn xact_status(xid: pg_sys::TransactionId) -> Xact {
    // SAFETY: transaction-status lookups; in-progress is asked first, as
    // heapam_visibility.c does, because a committing transaction is marked
    // committed in clog before it leaves the proc array.
    unsafe {
        if xid == pg_sys::FrozenTransactionId {
            Xact::Committed
        } else if pg_sys::TransactionIdIsCurrentTransactionId(xid)
            || pg_sys::TransactionIdIsInProgress(xid)
        {
            Xact::Running
        } else if pg_sys::TransactionIdDidCommit(xid) {
            Xact::Committed
        } else {
            Xact::Aborted
        }
    }
}

/// The deleting transaction of a catalog tuple, if any (locks don't count).
fn xmax_of(tup: pg_sys::HeapTuple) -> Option<pg_sys::TransactionId> {
    // SAFETY: a tuple returned by a scan; its header is valid.
    unsafe {
        let h = (*tup).t_data;
        let mask = (*h).t_infomask as u32;
        if mask & (pg_sys::HEAP_XMAX_INVALID | pg_sys::HEAP_XMAX_LOCK_ONLY) != 0 {
            return None;
        }
        let xmax = (*h).t_choice.t_heap.t_xmax;
        (xmax != pg_sys::InvalidTransactionId).then_some(xmax)
    }
}

fn state_of(tup: pg_sys::HeapTuple) -> State {
    match xact_status(xmin_of(tup)) {
        Xact::Running => return State::Busy,
        Xact::Aborted => return State::Dead,
        Xact::Committed => {}
    }
    // SAFETY: header of a scanned tuple.
    let multi = unsafe { (*(*tup).t_data).t_infomask as u32 & pg_sys::HEAP_XMAX_IS_MULTI != 0 };
    match xmax_of(tup) {
        None => State::Live,
        Some(_) if multi => State::Busy,
        Some(xmax) => match xact_status(xmax) {
            Xact::Running => State::Busy,
            Xact::Committed => State::Dead,
            Xact::Aborted => State::Live,
        },
    }
}

/// Insert `values` into catalog table `table` as command `cid`, and into its
/// indexes (unique ones checked: a concurrent duplicate waits, then errors).
/// Returns the new catalog tuple's TID.
fn insert(
    table: &str,
    values: &mut [pg_sys::Datum],
    nulls: &mut [bool],
    cid: pg_sys::CommandId,
) -> pg_sys::ItemPointerData {
    let heap = Open::table(table, pg_sys::RowExclusiveLock);
    // SAFETY: values match the catalog's descriptor (the callers build them
    // in column order); the tuple is ours until freed. Indexed columns are
    // never NULL.
    unsafe {
        let desc = (*heap.0).rd_att;
        let tup = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::heap_insert(heap.0, tup, cid, 0, std::ptr::null_mut());
        let list = pg_sys::RelationGetIndexList(heap.0);
        let n = if list.is_null() {
            0
        } else {
            (*list).length as usize
        };
        {
            for k in 0..n {
                let oid = (*(*list).elements.add(k)).oid_value;
                let index = Open(pg_sys::index_open(oid, pg_sys::RowExclusiveLock as i32));
                let info = pg_sys::BuildIndexInfo(index.0);
                let n = (*info).ii_NumIndexKeyAttrs as usize;
                let mut ivalues = Vec::with_capacity(n);
                let mut inulls = vec![false; n];
                for i in 0..n {
                    let attno = (*info).ii_IndexAttrNumbers[i] as usize;
                    ivalues.push(values[attno - 1]);
                }
                let check = if (*info).ii_Unique {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
                } else {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
                };
                pg_sys::index_insert(
                    index.0,
                    ivalues.as_mut_ptr(),
                    inulls.as_mut_ptr(),
                    &mut (*tup).t_self,
                    heap.0,
                    check,
                    false,
                    info,
                );
            }
        }
        let tid = (*tup).t_self;
        pg_sys::heap_freetuple(tup);
        tid
    }
}

/// Add `seg`'s catalog row, with a new segment id unless it is a
/// reservation (which holds no data) or the catalog is still 0.1.0's.
pub fn insert_segment(
    storage: u64,
    seg: &Segment,
    cid: pg_sys::CommandId,
) -> pg_sys::ItemPointerData {
    let kind = match seg.kind {
        Kind::Parquet => b'p',
        Kind::WriteStore => b'w',
        Kind::Reserved => b'r',
    };
    let mut values = vec![
        pg_sys::Datum::from(storage as i64),
        pg_sys::Datum::from(seg.first_row as i64),
        pg_sys::Datum::from(seg.last_row as i64),
        pg_sys::Datum::from(seg.row_count as i64),
        pg_sys::Datum::from(kind as i8),
        pg_sys::Datum::from(seg.first_block as i64),
        pg_sys::Datum::from(seg.block_count as i64),
        pg_sys::Datum::from(seg.byte_length as i64),
        pg_sys::Datum::from(seg.format_version as i32),
    ];
    let mut nulls = vec![false; values.len()];
    if has_segment_ids() {
        let id = (seg.kind != Kind::Reserved).then(|| next_value(SEGMENT_SEQ));
        values.push(pg_sys::Datum::from(id.unwrap_or(0) as i64));
        nulls.push(id.is_none());
    }
    insert(SEGMENT_TABLE, &mut values, &mut nulls, cid)
}

/// Delete this transaction's reservation rows (their batch is written or
/// gone), as a command after `cid`, the one that inserted them: a command
/// cannot delete what it inserted itself.
pub fn forget_reservations(tids: &[pg_sys::ItemPointerData], cid: pg_sys::CommandId) {
    if tids.is_empty() {
        return;
    }
    let heap = Open::table(SEGMENT_TABLE, pg_sys::RowExclusiveLock);
    for tid in tids {
        let mut t = *tid;
        let mut tmfd = pg_sys::TM_FailureData::default();
        // SAFETY: a tuple this transaction inserted and nobody else deletes.
        let r = unsafe {
            pg_sys::heap_delete(
                heap.0,
                &mut t,
                cid + 1,
                std::ptr::null_mut(),
                true,
                &mut tmfd,
                false,
            )
        };
        if r != pg_sys::TM_Result::TM_Ok {
            crate::error::error(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not delete an omen_columnar row reservation (result {r})"),
            );
        }
    }
}

pub fn insert_deletion(storage: u64, row: u64, by_update: bool, cid: pg_sys::CommandId) {
    let mut values = [
        pg_sys::Datum::from(storage as i64),
        pg_sys::Datum::from(row as i64),
        pg_sys::Datum::from(by_update),
    ];
    insert(DELETED_TABLE, &mut values, &mut [false; 3], cid);
}

/// Deform a catalog tuple into its datums, one per column of the table's
/// descriptor (heap_deform_tuple writes that many; NULLs read as 0).
unsafe fn deform(heap: &Open, tup: pg_sys::HeapTuple) -> Vec<pg_sys::Datum> {
    let desc = (*heap.0).rd_att;
    let n = (*desc).natts as usize;
    let mut values = vec![pg_sys::Datum::from(0); n];
    let mut nulls = vec![false; n];
    pg_sys::heap_deform_tuple(tup, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
    values
}

fn segment_from(heap: &Open, values: &[pg_sys::Datum]) -> Segment {
    // SAFETY: an open relation.
    let catalog = unsafe { (*heap.0).rd_id }.to_u32();
    let i = |k: usize| values[k].value() as i64;
    Segment {
        first_row: i(1) as u64,
        last_row: i(2) as u64,
        row_count: i(3) as u64,
        kind: match values[4].value() as u8 {
            b'w' => Kind::WriteStore,
            b'r' => Kind::Reserved,
            _ => Kind::Parquet,
        },
        first_block: i(5) as u32,
        block_count: i(6) as u32,
        byte_length: i(7) as u64,
        format_version: values[8].value() as u32,
        // NULL deforms as 0, which the sequence never gives.
        id: values
            .get(9)
            .map(|d| d.value() as u64)
            .filter(|&v| v != 0)
            .map(|v| (catalog, v)),
    }
}

/// Every segment of `storage` visible to `snapshot`, ordered by first row.
pub fn segments(storage: u64, snapshot: pg_sys::Snapshot) -> Vec<Segment> {
    let mut out = Vec::new();
    scan_storage(
        SEGMENT_TABLE,
        SEGMENT_INDEX,
        pg_sys::AccessShareLock,
        storage,
        None,
        snapshot,
        |heap, _, values| {
            let seg = segment_from(heap, values);
            if seg.kind != Kind::Reserved {
                out.push(seg);
            }
        },
    );
    out.sort_by_key(|s| s.first_row);
    out
}

/// Every segment of `storage` that some transaction may still read:
/// committed or in progress, deletion not committed (a dirty read).
pub fn segments_in_use(storage: u64) -> Vec<Segment> {
    let mut dirty = dirty_snapshot();
    segments(storage, &mut dirty)
}

/// A catalog row of a segment (reservations included), as maintenance sees it.
pub struct Entry {
    pub segment: Segment,
    pub tid: pg_sys::ItemPointerData,
    pub state: State,
    /// The transaction that deleted it, if any.
    pub xmax: Option<pg_sys::TransactionId>,
    /// False when the inserting transaction aborted: nothing ever read the
    /// segment, so its pages belong to no one.
    pub inserted: bool,
}

/// Every catalog row of `storage`'s segments still in the table, whatever
/// its visibility, ordered by first row.
pub fn segment_entries(storage: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    scan_storage(
        SEGMENT_TABLE,
        SEGMENT_INDEX,
        pg_sys::AccessShareLock,
        storage,
        None,
        &raw mut pg_sys::SnapshotAnyData,
        |heap, tup, values| {
            out.push(Entry {
                segment: segment_from(heap, values),
                // SAFETY: a scanned tuple.
                tid: unsafe { (*tup).t_self },
                state: state_of(tup),
                xmax: xmax_of(tup),
                inserted: xact_status(xmin_of(tup)) != Xact::Aborted,
            });
        },
    );
    out.sort_by_key(|e| e.segment.first_row);
    out
}

/// The segment visible to `snapshot` whose row range holds `row`. Visible
/// segments never overlap, so the visible segment with the greatest first
/// row at or below `row` is the only candidate. Under a dirty snapshot, a
/// reservation by a transaction in progress is returned (kind Reserved, with
/// that transaction in the snapshot's xmin) when no segment holds the row.
pub fn segment_containing(storage: u64, row: u64, snapshot: pg_sys::Snapshot) -> Option<Segment> {
    // SnapshotAny would also return segments that compaction replaced, whose
    // pages may hold other data now; a dirty read returns those in use.
    let mut any_as_dirty = dirty_snapshot();
    // SAFETY: a valid snapshot.
    let any = unsafe { (*snapshot).snapshot_type } == pg_sys::SnapshotType::SNAPSHOT_ANY;
    let (snapshot, report) = if any {
        (&raw mut any_as_dirty, false)
    } else {
        (snapshot, true)
    };
    let heap = Open::table(SEGMENT_TABLE, pg_sys::AccessShareLock);
    let index = Open::index(SEGMENT_INDEX, pg_sys::AccessShareLock);
    let mut keys = [
        pg_sys::ScanKeyData::default(),
        pg_sys::ScanKeyData::default(),
    ];
    let nkeys = storage_keys(&mut keys, storage, Some(RowKey::AtMost(row)));
    // SAFETY: snapshot valid for the scan.
    let dirty =
        report && unsafe { (*snapshot).snapshot_type } == pg_sys::SnapshotType::SNAPSHOT_DIRTY;
    let mut reserved: Option<(Segment, pg_sys::TransactionId)> = None;
    // SAFETY: ordered system-table scan over an open catalog and its index.
    let found = unsafe {
        let scan =
            pg_sys::systable_beginscan_ordered(heap.0, index.0, snapshot, nkeys, keys.as_mut_ptr());
        let mut found = None;
        loop {
            let tup = pg_sys::systable_getnext_ordered(
                scan,
                pg_sys::ScanDirection::BackwardScanDirection,
            );
            if tup.is_null() {
                break;
            }
            let seg = segment_from(&heap, &deform(&heap, tup));
            if seg.kind == Kind::Reserved {
                let xmin = xmin_of(tup);
                if dirty
                    && seg.last_row >= row
                    && reserved.is_none()
                    && !pg_sys::TransactionIdIsCurrentTransactionId(xmin)
                    && pg_sys::TransactionIdIsInProgress(xmin)
                {
                    reserved = Some((seg, xmin));
                }
                continue;
            }
            found = Some(seg).filter(|s| s.last_row >= row);
            break;
        }
        pg_sys::systable_endscan_ordered(scan);
        found
    };
    if found.is_some() {
        return found;
    }
    let (seg, xid) = reserved?;
    // SAFETY: a dirty snapshot's xmin tells the caller whom to wait for.
    unsafe {
        (*snapshot).xmin = xid;
        (*snapshot).xmax = pg_sys::InvalidTransactionId;
    }
    Some(seg)
}

fn xmin_of(tup: pg_sys::HeapTuple) -> pg_sys::TransactionId {
    // SAFETY: a tuple returned by a scan; its header is valid.
    unsafe {
        let h = (*tup).t_data;
        let frozen = pg_sys::HEAP_XMIN_FROZEN as u16;
        if (*h).t_infomask & frozen == frozen {
            pg_sys::FrozenTransactionId
        } else {
            (*h).t_choice.t_heap.t_xmin
        }
    }
}

/// Whether a deletion row returned by a scan under `snapshot` hides its row.
/// Under a dirty snapshot a deletion by a transaction still in progress does
/// not (heap shows such a tuple, and the scan has left the deleter's xid in
/// the snapshot for the caller to wait on); SnapshotAny sees every row.
fn deletion_applies(tup: pg_sys::HeapTuple, snapshot: pg_sys::Snapshot) -> bool {
    // SAFETY: snapshot is valid for the scan.
    let kind = unsafe { (*snapshot).snapshot_type };
    match kind {
        pg_sys::SnapshotType::SNAPSHOT_ANY | pg_sys::SnapshotType::SNAPSHOT_NON_VACUUMABLE => false,
        pg_sys::SnapshotType::SNAPSHOT_DIRTY => {
            let xmin = xmin_of(tup);
            // SAFETY: plain transaction-status lookups.
            unsafe {
                pg_sys::TransactionIdIsCurrentTransactionId(xmin)
                    || pg_sys::TransactionIdDidCommit(xmin)
            }
        }
        _ => true,
    }
}

fn deletion_scan(
    storage: u64,
    row: Option<u64>,
    snapshot: pg_sys::Snapshot,
    mut each: impl FnMut(pg_sys::HeapTuple, &[pg_sys::Datum]),
) {
    scan_storage(
        DELETED_TABLE,
        DELETED_INDEX,
        pg_sys::AccessShareLock,
        storage,
        row.map(RowKey::Equal),
        snapshot,
        |_, tup, values| each(tup, values),
    );
}

/// Row numbers of `storage` that are deleted as `snapshot` sees it.
pub fn deleted_rows(storage: u64, snapshot: pg_sys::Snapshot) -> HashSet<u64> {
    let mut out = HashSet::new();
    deletion_scan(storage, None, snapshot, |tup, values| {
        if deletion_applies(tup, snapshot) {
            out.insert(values[1].value() as u64);
        }
    });
    out
}

/// Rows of `storage` whose deletion committed before `horizon` (every
/// running and future transaction sees them deleted), with the TIDs of
/// their deletion rows.
pub fn deleted_before(
    storage: u64,
    horizon: pg_sys::TransactionId,
) -> Vec<(u64, pg_sys::ItemPointerData)> {
    let mut out = Vec::new();
    deletion_scan(
        storage,
        None,
        &raw mut pg_sys::SnapshotAnyData,
        |tup, values| {
            let xmin = xmin_of(tup);
            // SAFETY: transaction-id comparison.
            let old = xmin == pg_sys::FrozenTransactionId
                || unsafe { pg_sys::TransactionIdPrecedes(xmin, horizon) };
            // Live: committed, and not already removed by a compaction.
            if old && state_of(tup) == State::Live {
                // SAFETY: a scanned tuple.
                out.push((values[1].value() as u64, unsafe { (*tup).t_self }));
            }
        },
    );
    out
}

/// Whether `row` is deleted as `snapshot` sees it.
pub fn is_deleted(storage: u64, row: u64, snapshot: pg_sys::Snapshot) -> bool {
    let mut deleted = false;
    deletion_scan(storage, Some(row), snapshot, |tup, _| {
        deleted |= deletion_applies(tup, snapshot);
    });
    deleted
}

/// The live (committed, or in progress) deletion of `row`, if any.
pub fn deletion_of(storage: u64, row: u64) -> Option<Deletion> {
    let mut dirty = pg_sys::SnapshotData {
        snapshot_type: pg_sys::SnapshotType::SNAPSHOT_DIRTY,
        ..Default::default()
    };
    let mut found = None;
    deletion_scan(storage, Some(row), &mut dirty, |tup, values| {
        // SAFETY: tuple from the scan.
        let cmin = unsafe { pg_sys::HeapTupleHeaderGetCmin((*tup).t_data) };
        found = Some(Deletion {
            xmin: xmin_of(tup),
            cmin,
            by_update: values[2].value() != 0,
        });
    });
    found
}

/// Delete every catalog row of `storage` (TRUNCATE, DROP): transactional,
/// so a rolled-back TRUNCATE keeps them. The shared cache's entries of its
/// segments are released at once (see `cache::shared::segments_dropped`).
pub fn forget_storage(storage: u64) {
    let mut ids = Vec::new();
    for (table, index) in [
        (SEGMENT_TABLE, SEGMENT_INDEX),
        (DELETED_TABLE, DELETED_INDEX),
        (FREE_TABLE, FREE_INDEX),
    ] {
        if lookup(table) == pg_sys::InvalidOid {
            continue; // an install from before the table existed
        }
        // SnapshotSelf sees our own rows and committed ones, never a tuple
        // we already deleted.
        scan_storage(
            table,
            index,
            pg_sys::RowExclusiveLock,
            storage,
            None,
            &raw mut pg_sys::SnapshotSelfData,
            |heap, tup, values| {
                if table == SEGMENT_TABLE {
                    ids.extend(segment_from(heap, values).id);
                }
                // SAFETY: a tuple of the open catalog, visible to us.
                unsafe { pg_sys::simple_heap_delete(heap.0, &mut (*tup).t_self) }
            },
        );
    }
    crate::cache::shared::segments_dropped(&ids);
}

/// Delete catalog rows this transaction found live (compaction: replaced
/// segments, deletion rows of purged rows).
fn delete_tids(table: &str, tids: &[pg_sys::ItemPointerData]) {
    let heap = Open::table(table, pg_sys::RowExclusiveLock);
    for tid in tids {
        let mut t = *tid;
        // SAFETY: a tuple of the open catalog; errors if someone else
        // deleted it (compaction holds a lock that excludes that).
        unsafe { pg_sys::simple_heap_delete(heap.0, &mut t) };
    }
}

/// Prune the dead row versions on the catalog pages holding segment rows
/// `tids`, as a read does opportunistically on a full page: compaction
/// asks for it so that pages of replaced segments become reusable as soon
/// as no snapshot can read them, not only after autovacuum. The prune
/// record makes a standby cancel (or wait for) snapshots that could still
/// see the rows before it replays. A page whose cleanup lock is not free
/// at once is left for later.
pub fn prune_segment_rows(tids: &[pg_sys::ItemPointerData]) {
    let heap = Open::table(SEGMENT_TABLE, pg_sys::RowExclusiveLock);
    let mut blocks: Vec<u32> = tids
        .iter()
        .map(|t| ((t.ip_blkid.bi_hi as u32) << 16) | t.ip_blkid.bi_lo as u32)
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    // SAFETY: heap_page_prune_opt's protocol on an open catalog: a pinned
    // buffer, pruned only under its cleanup lock, unlocked and released.
    unsafe {
        let vistest = pg_sys::GlobalVisTestFor(heap.0);
        for blk in blocks {
            let buf = pg_sys::ReadBuffer(heap.0, blk);
            if pg_sys::ConditionalLockBufferForCleanup(buf) {
                let mut dead = 0;
                pg_sys::heap_page_prune(
                    heap.0,
                    buf,
                    pg_sys::InvalidTransactionId,
                    vistest,
                    pg_sys::InvalidTransactionId,
                    0,
                    &mut dead,
                    std::ptr::null_mut(),
                );
                pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_UNLOCK as i32);
            }
            pg_sys::ReleaseBuffer(buf);
        }
    }
}

pub fn delete_segments(tids: &[pg_sys::ItemPointerData]) {
    delete_tids(SEGMENT_TABLE, tids);
}

pub fn delete_deletions(tids: &[pg_sys::ItemPointerData]) {
    delete_tids(DELETED_TABLE, tids);
}

/// A run of free blocks recorded in `omendb.columnar_free`.
pub struct FreeExtent {
    pub first_block: u32,
    pub block_count: u32,
    pub tid: pg_sys::ItemPointerData,
    pub state: State,
    /// The transaction that freed the blocks (the row's inserter).
    pub freed_by: pg_sys::TransactionId,
}

/// Record blocks `first..first+count` of `storage` as free.
pub fn insert_free(storage: u64, first_block: u32, block_count: u32) {
    let mut values = [
        pg_sys::Datum::from(storage as i64),
        pg_sys::Datum::from(first_block as i64),
        pg_sys::Datum::from(block_count as i64),
    ];
    // SAFETY: plain xact-state lookup.
    let cid = unsafe { pg_sys::GetCurrentCommandId(true) };
    insert(FREE_TABLE, &mut values, &mut [false; 3], cid);
}

/// The free-extent rows of `storage` that `snapshot` returns (SnapshotAny:
/// every one still in the table; `state` tells which are usable).
pub fn free_extents(storage: u64, snapshot: pg_sys::Snapshot) -> Vec<FreeExtent> {
    let mut out = Vec::new();
    scan_storage(
        FREE_TABLE,
        FREE_INDEX,
        pg_sys::AccessShareLock,
        storage,
        None,
        snapshot,
        |_, tup, values| {
            out.push(FreeExtent {
                first_block: values[1].value() as u32,
                block_count: values[2].value() as u32,
                // SAFETY: a scanned tuple.
                tid: unsafe { (*tup).t_self },
                state: free_state(tup),
                freed_by: xmin_of(tup),
            });
        },
    );
    out
}

/// A free extent row's state as this transaction must see it, which for
/// its own changes differs from other transactions' view:
/// - one it took is Dead: the pages are where it put them (a segment, a
///   merged extent, the rest of a split one);
/// - one an earlier command of it inserted and it has not taken is Live:
///   compaction's tidy lists pages no snapshot can read, and the rewrite
///   after it may write into them. (Extents a compaction frees itself are
///   gated by its replaced segments' rows instead, see
///   `space::is_reusable`; rows of the current command stay Busy, as
///   heap_delete cannot take them.)
fn free_state(tup: pg_sys::HeapTuple) -> State {
    // SAFETY: header of a scanned tuple; transaction-status lookups.
    let (multi, ours) = unsafe {
        (
            (*(*tup).t_data).t_infomask as u32 & pg_sys::HEAP_XMAX_IS_MULTI != 0,
            |x: pg_sys::TransactionId| pg_sys::TransactionIdIsCurrentTransactionId(x),
        )
    };
    let xmax = xmax_of(tup).filter(|_| !multi);
    if xmax.is_some_and(ours) {
        return State::Dead;
    }
    let state = state_of(tup);
    let untaken = xmax.is_none_or(|x| matches!(xact_status(x), Xact::Aborted));
    // SAFETY: the tuple was inserted by this transaction (checked first).
    let earlier = || unsafe {
        pg_sys::HeapTupleHeaderGetCmin((*tup).t_data) < pg_sys::GetCurrentCommandId(false)
    };
    if state == State::Busy && ours(xmin_of(tup)) && untaken && earlier() {
        State::Live
    } else {
        state
    }
}

/// Take a free extent for this transaction: deletes its row unless another
/// transaction is taking it (then false, without waiting).
pub fn claim_free(tid: pg_sys::ItemPointerData) -> bool {
    let heap = Open::table(FREE_TABLE, pg_sys::RowExclusiveLock);
    let mut t = tid;
    let mut tmfd = pg_sys::TM_FailureData::default();
    // SAFETY: a tuple of the open catalog; no wait on a concurrent claimer.
    let r = unsafe {
        pg_sys::heap_delete(
            heap.0,
            &mut t,
            pg_sys::GetCurrentCommandId(true),
            std::ptr::null_mut(),
            false,
            &mut tmfd,
            false,
        )
    };
    r == pg_sys::TM_Result::TM_Ok
}
