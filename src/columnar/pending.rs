//! Rows inserted by the running statement, held in backend memory until the
//! statement ends, then written as one segment: a Parquet segment when there
//! are many (COPY, INSERT ... SELECT), a write-store batch when there are few
//! (single-row INSERTs), so small inserts never make one-row Parquet files.
//!
//! Row numbers (and so TIDs) are reserved at insert time, because the
//! executor indexes a row right after inserting it. Until the flush, fetches
//! by TID (unique checks, triggers) find the row here.
//!
//! A batch belongs to one (relation, subtransaction, command). It is flushed
//! at the end of its statement (ExecutorEnd, finish_bulk_insert), before any
//! scan of the relation, at subtransaction pre-commit and at pre-commit, and
//! always inside its own subtransaction, so the segment's catalog row has the
//! inserting subtransaction's xid and the inserting command's id. Abort drops
//! the batches of the aborted (sub)transaction.

use super::catalog::{self, Kind, Segment};
use super::storage;
use super::{datum, row_to_tid};
use omendb_columnar::storage::Storage;
use omendb_columnar::{decode_row, encode_row, Schema, SegmentWriter, Value};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;

/// Rows per Parquet row group.
pub const ROWS_PER_GROUP: usize = 65_536;
/// A batch is written as a segment once it holds this many rows or bytes.
pub const SEGMENT_MAX_ROWS: usize = 1 << 20;
pub const SEGMENT_MAX_BYTES: usize = 128 << 20;
/// Batches up to this size go to the write store instead of Parquet.
const WRITE_STORE_MAX_ROWS: usize = 512;
const WRITE_STORE_MAX_BYTES: usize = 64 << 10;
/// Largest row-number reservation (reservations grow 8x per batch).
const MAX_RESERVATION: u64 = 1 << 16;

/// Encoded row records with their row numbers, in row-number order.
#[derive(Default)]
pub struct RowBuf {
    pub rows: Vec<u64>,
    ends: Vec<usize>,
    data: Vec<u8>,
}

impl RowBuf {
    /// Append row `row`, whose record `encode` writes.
    pub fn push(&mut self, row: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.data);
        self.ends.push(self.data.len());
        self.rows.push(row);
    }
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
    /// Keep only the rows `keep` accepts.
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let mut out = RowBuf::default();
        for i in 0..self.rows.len() {
            if keep(self.rows[i]) {
                out.push(self.rows[i], |d| d.extend_from_slice(self.record(i)));
            }
        }
        *self = out;
    }
}

struct Batch {
    relid: pg_sys::Oid,
    relfilenode: pg_sys::Oid,
    subxact: pg_sys::SubTransactionId,
    cid: pg_sys::CommandId,
    schema: Schema,
    buf: RowBuf,
    next: u64,
    end: u64,
    chunk: u64,
    /// Catalog rows announcing this batch's reserved row numbers to other
    /// backends (see [`reserve`]); deleted when the batch is written.
    reservations: Vec<pg_sys::ItemPointerData>,
    /// Rows removed before the flush (a failed speculative insertion).
    killed: Vec<u64>,
    /// The reserved row-number ranges, contiguous ones merged. Segments
    /// never span two of them: other backends' rows may lie in between,
    /// and visible segments must not overlap.
    ranges: Vec<(u64, u64)>,
}

thread_local! {
    static BATCHES: RefCell<Vec<Batch>> = const { RefCell::new(Vec::new()) };
}

fn relfilenode(rel: pg_sys::Relation) -> pg_sys::Oid {
    // SAFETY: open relation.
    unsafe { (*rel).rd_node.relNode }
}

fn relid(rel: pg_sys::Relation) -> pg_sys::Oid {
    // SAFETY: open relation.
    unsafe { (*rel).rd_id }
}

/// Insert rows from `slots`, setting each slot's TID.
pub fn insert(
    rel: pg_sys::Relation,
    slots: &[*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
) {
    // SAFETY: plain xact-state lookup.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let key = (relid(rel), relfilenode(rel), subxact, cid);
    // A batch of an earlier command of this subtransaction is complete.
    flush_where(|b| {
        (b.relid, b.relfilenode) == (key.0, key.1) && b.subxact == subxact && b.cid != cid
    });
    let mut full = false;
    BATCHES.with_borrow_mut(|batches| {
        let i = match batches
            .iter()
            .position(|b| (b.relid, b.relfilenode, b.subxact, b.cid) == key)
        {
            Some(i) => i,
            None => {
                // SAFETY: open relation; rd_att is its descriptor.
                let schema = datum::schema_of(unsafe { (*rel).rd_att });
                batches.push(Batch {
                    relid: key.0,
                    relfilenode: key.1,
                    subxact,
                    cid,
                    schema,
                    buf: RowBuf::default(),
                    next: 0,
                    end: 0,
                    chunk: 1,
                    reservations: Vec::new(),
                    killed: Vec::new(),
                    ranges: Vec::new(),
                });
                batches.len() - 1
            }
        };
        let b = &mut batches[i];
        let mut values: Vec<Value> = Vec::new();
        for (k, &slot) in slots.iter().enumerate() {
            if b.next == b.end {
                let want = ((slots.len() - k) as u64).max(b.chunk);
                b.next = reserve(rel, want, cid, &mut b.reservations);
                b.end = b.next + want;
                match b.ranges.last_mut() {
                    Some(last) if last.1 == b.next => last.1 = b.end,
                    _ => b.ranges.push((b.next, b.end)),
                }
                b.chunk = (b.chunk * 8).min(MAX_RESERVATION);
            }
            let row = b.next;
            b.next += 1;
            datum::values_of(slot, &b.schema, &mut values);
            b.buf.push(row, |d| encode_row(&b.schema, &values, d));
            // SAFETY: valid slot; the executor reads tts_tid to index the row.
            unsafe {
                (*slot).tts_tid = row_to_tid(row);
                (*slot).tts_tableOid = key.0;
            }
        }
        full = b.buf.rows.len() >= SEGMENT_MAX_ROWS || b.buf.bytes() >= SEGMENT_MAX_BYTES;
    });
    if full {
        flush_where(|b| (b.relid, b.relfilenode, b.subxact, b.cid) == key);
    }
}

/// Reserve `n` row numbers and announce them in the catalog as a
/// reservation row of this (sub)transaction. Until the batch is written,
/// other backends find its rows only in the indexes; a dirty read (a unique
/// check) that finds the reservation waits for this transaction, as it would
/// for an in-progress heap insertion.
fn reserve(
    rel: pg_sys::Relation,
    n: u64,
    cid: pg_sys::CommandId,
    out: &mut Vec<pg_sys::ItemPointerData>,
) -> u64 {
    // Compaction must find the reservation in the catalog if it can find
    // the row numbers taken from the metapage.
    let _sync = storage::ChangeLock::shared(rel);
    let first = storage::reserve_rows(rel, n);
    let meta = storage::ensure_meta(rel);
    let seg = Segment {
        first_row: first,
        last_row: first + n - 1,
        row_count: 0,
        kind: Kind::Reserved,
        first_block: 0,
        block_count: 0,
        byte_length: 0,
        format_version: omendb_columnar::FORMAT_VERSION,
        id: None,
    };
    out.push(catalog::insert_segment(meta.storage_id, &seg, cid));
    first
}

/// Write every batch of the current subtransaction that matches `pick`.
fn flush_where(pick: impl Fn(&Batch) -> bool) {
    // SAFETY: plain xact-state lookup.
    let current = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let taken: Vec<Batch> = BATCHES.with_borrow_mut(|batches| {
        let (take, keep): (Vec<Batch>, Vec<Batch>) = batches
            .drain(..)
            .partition(|b| b.subxact == current && pick(b));
        *batches = keep;
        take
    });
    for b in taken {
        write(b);
    }
}

/// Flush the batches of relation `rel` left by earlier commands, before a
/// scan whose snapshot may see them. The running command's own batch stays:
/// its snapshot cannot see those rows, and flushing on every rescan would
/// cut them into tiny segments.
pub fn flush_relation(rel: pg_sys::Relation) {
    let id = relid(rel);
    // SAFETY: plain xact-state lookup.
    let now = unsafe { pg_sys::GetCurrentCommandId(false) };
    flush_where(|b| b.relid == id && b.cid < now);
    let stranded =
        BATCHES.with_borrow(|batches| batches.iter().any(|b| b.relid == id && b.cid < now));
    if stranded {
        // Rows of an enclosing subtransaction cannot be written from inside
        // a nested one without taking its xid; refuse rather than misattribute.
        crate::error::error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "omen_columnar table \"{}\" is read inside a subtransaction started while rows inserted outside it were still being written",
                super::relation_name(rel)
            ),
        );
    }
}

/// Discard the batches of `rel` (its storage is being replaced).
pub fn discard_relation(rel: pg_sys::Relation) {
    let id = relid(rel);
    BATCHES.with_borrow_mut(|batches| batches.retain(|b| b.relid != id));
}

fn write(mut b: Batch) {
    if !b.killed.is_empty() {
        let killed = std::mem::take(&mut b.killed);
        b.buf.retain(|row| !killed.contains(&row));
    }
    catalog::forget_reservations(&b.reservations, b.cid);
    if b.buf.rows.is_empty() {
        return;
    }
    // SAFETY: the inserting statement holds RowExclusiveLock until commit.
    let rel = unsafe { pg_sys::table_open(b.relid, pg_sys::RowExclusiveLock as i32) };
    // SAFETY: open relation.
    if unsafe { (*rel).rd_node.relNode } != b.relfilenode {
        // Storage replaced (TRUNCATE) after these rows were inserted.
        unsafe { pg_sys::table_close(rel, pg_sys::NoLock as i32) };
        return;
    }
    let meta = storage::ensure_meta(rel);
    let rows = &b.buf.rows;
    let mut i = 0;
    for &(_, end) in &b.ranges {
        let j = i + rows[i..].partition_point(|&r| r < end);
        if j > i {
            write_rows(rel, &b.schema, &b.buf, i..j, meta.storage_id, b.cid, true);
        }
        i = j;
    }
    // SAFETY: opened above.
    unsafe { pg_sys::table_close(rel, pg_sys::NoLock as i32) };
    // An INSERT or COPY stops here if an allocation failed (crate::alloc).
    crate::alloc::check();
}

/// Whether rows `run` of `buf` (`bytes` of records) go to the write store
/// rather than Parquet.
fn fits_write_store(buf: &RowBuf, run: std::ops::Range<usize>, bytes: usize) -> bool {
    run.len() <= WRITE_STORE_MAX_ROWS
        && bytes <= WRITE_STORE_MAX_BYTES
        && run
            .clone()
            .all(|i| buf.record(i).len() + 10 <= storage::WS_MAX_ITEM)
}

/// Write rows `run` of `buf` (encoded with `schema`, their row numbers all
/// inside one reserved range or one replaced segment run) as one segment
/// stamped with command `cid`. Small runs go to the write store if
/// `write_store` allows: not for rewritten rows, whose old copies may still
/// sit on the write-store page they would be appended to (a write-store
/// segment is every row in its row range on its pages).
pub fn write_rows(
    rel: pg_sys::Relation,
    schema: &Schema,
    buf: &RowBuf,
    run: std::ops::Range<usize>,
    storage_id: u64,
    cid: pg_sys::CommandId,
    write_store: bool,
) {
    let bytes: usize = run.clone().map(|i| buf.record(i).len()).sum();
    let mut seg = Segment {
        first_row: buf.rows[run.start],
        last_row: buf.rows[run.end - 1],
        row_count: run.len() as u64,
        kind: Kind::WriteStore,
        first_block: 0,
        block_count: 0,
        byte_length: bytes as u64,
        format_version: omendb_columnar::FORMAT_VERSION,
        id: None,
    };
    if write_store && fits_write_store(buf, run.clone(), bytes) {
        // Each write-store record carries its column count: columns added
        // later read as missing, as in Parquet segments.
        let ncols = (schema.columns.len() as u16).to_le_bytes();
        let items: Vec<Vec<u8>> = run
            .clone()
            .map(|i| [&ncols[..], buf.record(i)].concat())
            .collect();
        let rows: Vec<(u64, &[u8])> = run
            .clone()
            .zip(&items)
            .map(|(i, item)| (buf.rows[i], item.as_slice()))
            .collect();
        // Compaction frees write-store pages no catalog row uses: ours must
        // be in the catalog before it looks.
        let _sync = storage::ChangeLock::shared(rel);
        (seg.first_block, seg.block_count) = storage::append_write_store(rel, &rows);
        catalog::insert_segment(storage_id, &seg, cid);
        super::autocompact::after_write_store_append(rel);
    } else {
        let (encoded, version) = encode_segment(rel, schema, buf, run);
        seg.format_version = version;
        // Compaction counts pages no catalog row names as unowned: ours
        // must be in the catalog before it looks.
        let _sync = storage::ChangeLock::shared(rel);
        let reuse = super::space::take_free(storage_id, storage::pages_for(encoded.len()));
        (seg.first_block, seg.block_count) = storage::write_segment(rel, &encoded, reuse);
        seg.kind = Kind::Parquet;
        seg.byte_length = encoded.len() as u64;
        catalog::insert_segment(storage_id, &seg, cid);
    }
}

fn encode_segment(
    rel: pg_sys::Relation,
    schema: &Schema,
    buf: &RowBuf,
    run: std::ops::Range<usize>,
) -> (Vec<u8>, u32) {
    let fail = |e: omendb_columnar::Error| -> ! {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "omen_columnar table \"{}\": could not encode a segment: {e}",
                super::relation_name(rel)
            ),
        )
    };
    // Numerics are stored scaled where their typmod allows; a value that
    // would not read back exactly that way (not something PostgreSQL
    // writes, but an image is an image) makes its column plain instead.
    let mut storage: Vec<Storage> = schema.columns.iter().map(Storage::for_column).collect();
    'encode: loop {
        let mut w = SegmentWriter::with_storage(schema, ROWS_PER_GROUP, storage.clone())
            .unwrap_or_else(|e| fail(e));
        let mut values = Vec::new();
        for i in run.clone() {
            decode_row(schema, buf.record(i), &mut values).unwrap_or_else(|e| fail(e));
            if let Err(e) = w.push(buf.rows[i], &values) {
                match w.refused_column() {
                    Some(c) => {
                        storage[c] = Storage::Plain;
                        continue 'encode;
                    }
                    None => fail(e),
                }
            }
            if i % 4096 == 0 {
                pgrx::check_for_interrupts!();
            }
        }
        let version = w.format_version();
        return (w.finish().unwrap_or_else(|e| fail(e)), version);
    }
}

/// Write the batches of `rel` inserted by the current command (end of COPY).
pub fn flush_current(rel: pg_sys::Relation) {
    let id = relid(rel);
    flush_where(|b| b.relid == id);
}

/// Remove a row that a speculative insertion gave up on.
pub fn kill_row(rel: pg_sys::Relation, row: u64) {
    let id = relid(rel);
    let in_batch = BATCHES.with_borrow_mut(|batches| {
        for b in batches.iter_mut().filter(|b| b.relid == id) {
            if b.buf.rows.binary_search(&row).is_ok() {
                b.killed.push(row);
                return true;
            }
        }
        false
    });
    if !in_batch {
        // Already written with its batch: delete it like any row.
        let meta = storage::ensure_meta(rel);
        // SAFETY: plain xact-state lookup.
        catalog::insert_deletion(meta.storage_id, row, false, unsafe {
            pg_sys::GetCurrentCommandId(true)
        });
    }
}

/// A row of `rel` still in a batch: calls `f(schema, record, cid)`.
pub fn with_row<R>(
    rel: pg_sys::Relation,
    row: u64,
    f: impl FnOnce(&Schema, &[u8], pg_sys::CommandId) -> R,
) -> Option<R> {
    let id = relid(rel);
    let node = relfilenode(rel);
    BATCHES.with_borrow(|batches| {
        for b in batches
            .iter()
            .filter(|b| b.relid == id && b.relfilenode == node)
        {
            if b.killed.contains(&row) {
                continue;
            }
            if let Ok(i) = b.buf.rows.binary_search(&row) {
                return Some(f(&b.schema, b.buf.record(i), b.cid));
            }
        }
        None
    })
}

/// Before ExecutorEnd (hooks.rs): write the rows the statement buffered.
pub(crate) fn before_executor_end() {
    flush_where(|_| true);
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            flush_where(|_| true);
            if BATCHES.with_borrow(|b| !b.is_empty()) {
                crate::error::error(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "omen_columnar rows of a finished subtransaction were not written".into(),
                );
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        | pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => BATCHES.with_borrow_mut(|b| b.clear()),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_PRE_COMMIT_SUB => {
            flush_where(|b| b.subxact == my_subid)
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            BATCHES.with_borrow_mut(|batches| batches.retain(|b| b.subxact != my_subid))
        }
        _ => {}
    }
}

pub fn init() {
    // SAFETY: callback registration in _PG_init, single-threaded.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}
