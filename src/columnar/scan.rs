//! Sequential, parallel and ANALYZE scans.
//!
//! A scan fixes, at its start, the segments and deletions its snapshot sees
//! (one catalog read each), then streams segments in row-number order.
//! Parallel scans share PostgreSQL's block allocator: a participant that
//! claims block b reads the segments that start at b, so every segment is
//! read by exactly one participant.

use super::catalog::{Kind, Segment};
use super::pushdown;
use super::rows::{Cursor, Step, Table};
use super::{pending, row_to_tid, snapshot};
use omendb_columnar::prune::Hints;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

#[repr(C)]
pub struct ScanDesc {
    base: pg_sys::TableScanDescData,
    state: *mut ScanState,
}

pub struct ScanState {
    table: Table,
    segments: Vec<Segment>,
    deleted: HashSet<u64>,
    /// Index into `segments` of the next segment to open (serial scans).
    next: usize,
    cursor: Option<Cursor>,
    columns: Vec<usize>,
    /// Projection and skipping handed over by the executor hook.
    hints: Option<Hints>,
    row_cx: RowMemory,
    worker: pg_sys::ParallelBlockTableScanWorkerData,
    /// Segments queued by the last claimed block (parallel scans).
    queued: Vec<usize>,
    parallel_started: bool,
    /// ANALYZE: (segment, first row index, end row index) still to sample
    /// for the current block, and the open cursor with its row index.
    analyze_queue: Vec<(usize, u64, u64)>,
    analyze: Option<(usize, Cursor, u64)>,
}

impl ScanState {
    pub fn new(
        rel: pg_sys::Relation,
        snapshot: pg_sys::Snapshot,
        hints: Option<Hints>,
    ) -> ScanState {
        let (segments, deleted) = snapshot::visible(rel, snapshot);
        let mut table = Table::new(rel);
        table.scan_cache = crate::cache::shared::scan_cache();
        let all: Vec<usize> = (0..table.schema.columns.len()).collect();
        let columns = hints
            .as_ref()
            .and_then(|h| h.columns.clone())
            .unwrap_or(all);
        ScanState {
            table,
            segments,
            deleted,
            next: 0,
            cursor: None,
            columns,
            hints,
            row_cx: RowMemory::new(),
            worker: Default::default(),
            queued: Vec::new(),
            parallel_started: false,
            analyze_queue: Vec::new(),
            analyze: None,
        }
    }

    /// Store the next visible row into `slot`; returns its row number.
    /// `next_segment` supplies segments in the order to read them.
    fn next_row(
        &mut self,
        slot: *mut pg_sys::TupleTableSlot,
        next_segment: &mut dyn FnMut(&mut Self) -> Option<usize>,
    ) -> Option<u64> {
        loop {
            if self.cursor.is_none() {
                crate::alloc::check();
                let i = next_segment(self)?;
                self.cursor = match &self.hints {
                    Some(h) => Cursor::open_filtered(&self.table, &self.segments[i], h),
                    None => Some(Cursor::open(&self.table, &self.segments[i])),
                };
                if self.cursor.is_none() {
                    continue; // the whole segment is skipped
                }
            }
            let deleted = &self.deleted;
            let mut step = |r: u64| {
                if deleted.contains(&r) {
                    Step::Skip
                } else {
                    Step::Take
                }
            };
            let cursor = self.cursor.as_mut().expect("open");
            let (table, columns) = (&self.table, &self.columns);
            let row = self
                .row_cx
                .run(|| cursor.next(table, slot, columns, &mut step));
            match row {
                Some(r) => return Some(r),
                None => {
                    if let Some(c) = self.cursor.take() {
                        c.finish(&self.table);
                    }
                }
            }
        }
    }
}

/// Memory for the values of rows read into slots: write-store rows palloc
/// theirs (Parquet rows point into their decoded group). Reset every
/// `RESET_EVERY` rows rather than per row: a reset costs more than a row.
struct RowMemory {
    cx: pgrx::PgMemoryContexts,
    /// `cx`'s context (looked up once: `value()` is a match per call).
    raw: pg_sys::MemoryContext,
    rows: u32,
}

const RESET_EVERY: u32 = 256;

impl RowMemory {
    fn new() -> RowMemory {
        let cx = pgrx::PgMemoryContexts::new("omen_columnar scan rows");
        RowMemory {
            raw: cx.value(),
            cx,
            rows: 0,
        }
    }

    /// Read one row with `read` in this memory.
    fn run<R>(&mut self, read: impl FnOnce() -> R) -> R {
        self.rows += 1;
        if self.rows == RESET_EVERY {
            self.rows = 0;
            // SAFETY: the slot holds only the latest row's values, which
            // the row about to be read replaces; older rows' are unused.
            unsafe { self.cx.reset() };
        }
        // Switched by hand: pgrx's `switch_to` costs more than a Parquet row.
        struct Restore(pg_sys::MemoryContext);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: the context that was current before `run`.
                unsafe { pg_sys::CurrentMemoryContext = self.0 };
            }
        }
        // SAFETY: values palloc'd here live until a later reset, after the
        // slot has moved on to other rows; the caller's context is restored
        // on return and on unwind.
        let _restore = unsafe {
            let prev = pg_sys::CurrentMemoryContext;
            pg_sys::CurrentMemoryContext = self.raw;
            Restore(prev)
        };
        read()
    }
}

fn state<'a>(scan: pg_sys::TableScanDesc) -> &'a mut ScanState {
    // SAFETY: every TableScanDesc of this AM is a ScanDesc made by scan_begin.
    unsafe { &mut *(*(scan as *mut ScanDesc)).state }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_begin(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> pg_sys::TableScanDesc {
    let st = Box::new(ScanState::new(rel, snapshot, pushdown::take()));
    if flags & pg_sys::ScanOptions::SO_TYPE_SEQSCAN as u32 != 0 {
        crate::pg::pgstat::count_scan(rel);
    }
    // SAFETY: palloc0 of our descriptor; freed in scan_end.
    unsafe {
        let d = pg_sys::palloc0(std::mem::size_of::<ScanDesc>()) as *mut ScanDesc;
        (*d).base.rs_rd = rel;
        (*d).base.rs_snapshot = snapshot;
        (*d).base.rs_nkeys = nkeys;
        (*d).base.rs_key = key;
        (*d).base.rs_flags = flags;
        (*d).base.rs_parallel = pscan;
        (*d).state = Box::into_raw(st);
        d as pg_sys::TableScanDesc
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_end(scan: pg_sys::TableScanDesc) {
    // SAFETY: made by scan_begin; snapshot registered by the caller if
    // SO_TEMP_SNAPSHOT, which we must unregister like heap does.
    unsafe {
        let d = scan as *mut ScanDesc;
        drop(Box::from_raw((*d).state));
        if (*d).base.rs_flags & pg_sys::ScanOptions::SO_TEMP_SNAPSHOT as u32 != 0 {
            pg_sys::UnregisterSnapshot((*d).base.rs_snapshot);
        }
        pg_sys::pfree(d as *mut std::ffi::c_void);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_rescan(
    scan: pg_sys::TableScanDesc,
    _key: *mut pg_sys::ScanKeyData,
    _set_params: bool,
    _allow_strat: bool,
    _allow_sync: bool,
    _allow_pagemode: bool,
) {
    // SAFETY: our descriptor; the snapshot is unchanged by a rescan.
    let (rel, snapshot) = unsafe { ((*scan).rs_rd, (*scan).rs_snapshot) };
    let st = state(scan);
    let hints = st.hints.take();
    *st = ScanState::new(rel, snapshot, hints);
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_getnextslot(
    scan: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    if direction == pg_sys::ScanDirection::BackwardScanDirection {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "omen_columnar tables do not support backward scans (FETCH BACKWARD on a SCROLL cursor)".into(),
        );
    }
    // SAFETY: our descriptor.
    let (rel, pscan) = unsafe { ((*scan).rs_rd, (*scan).rs_parallel) };
    let st = state(scan);
    let row = if pscan.is_null() {
        st.next_row(slot, &mut |s| {
            let i = s.next;
            s.next += 1;
            (i < s.segments.len()).then_some(i)
        })
    } else {
        st.next_row(slot, &mut |s| {
            next_parallel_segment(s, rel, pscan as pg_sys::ParallelBlockTableScanDesc)
        })
    };
    match row {
        Some(r) => {
            // SAFETY: valid slot.
            unsafe {
                (*slot).tts_tid = row_to_tid(r);
                (*slot).tts_tableOid = (*rel).rd_id;
            }
            crate::pg::pgstat::count_returned(rel, 1);
            true
        }
        None => {
            // SAFETY: valid slot.
            unsafe { pg_sys::ExecClearTuple(slot) };
            false
        }
    }
}

/// The next block this participant of a parallel scan claims; segments
/// are dealt out by their first block.
fn claim_block(
    s: &mut ScanState,
    rel: pg_sys::Relation,
    pb: pg_sys::ParallelBlockTableScanDesc,
) -> Option<pg_sys::BlockNumber> {
    // SAFETY: the shared descriptor lives in the parallel DSM segment.
    let blk = unsafe {
        if !s.parallel_started {
            s.parallel_started = true;
            pg_sys::table_block_parallelscan_startblock_init(rel, &mut s.worker, pb);
        }
        pg_sys::table_block_parallelscan_nextpage(rel, &mut s.worker, pb)
    };
    (blk != pg_sys::InvalidBlockNumber).then_some(blk)
}

/// For a parallel index build over our parallel scan `scan`: the next
/// block whose segments this participant indexes, None when all are taken.
pub fn claim_build_block(scan: pg_sys::TableScanDesc) -> Option<pg_sys::BlockNumber> {
    // SAFETY: our descriptor, with a parallel scan.
    let (rel, pscan) = unsafe { ((*scan).rs_rd, (*scan).rs_parallel) };
    claim_block(
        state(scan),
        rel,
        pscan as pg_sys::ParallelBlockTableScanDesc,
    )
}

fn next_parallel_segment(
    s: &mut ScanState,
    rel: pg_sys::Relation,
    pb: pg_sys::ParallelBlockTableScanDesc,
) -> Option<usize> {
    loop {
        if let Some(i) = s.queued.pop() {
            return Some(i);
        }
        let blk = claim_block(s, rel, pb)?;
        s.queued = (0..s.segments.len())
            .filter(|&i| s.segments[i].first_block == blk)
            .collect();
        s.queued.reverse();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_estimate(rel: pg_sys::Relation) -> pg_sys::Size {
    // SAFETY: delegating to PostgreSQL's block-parallel helpers.
    unsafe { pg_sys::table_block_parallelscan_estimate(rel) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_initialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) -> pg_sys::Size {
    pending::flush_relation(rel);
    // SAFETY: as above.
    unsafe { pg_sys::table_block_parallelscan_initialize(rel, pscan) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn parallelscan_reinitialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) {
    // SAFETY: as above.
    unsafe { pg_sys::table_block_parallelscan_reinitialize(rel, pscan) }
}

/// ANALYZE samples blocks. A Parquet segment's rows are spread evenly over
/// its pages (row k belongs to page k * pages / rows); a write-store batch
/// belongs to its first page. So sampled blocks yield a uniform row sample.
#[pg_guard]
pub unsafe extern "C-unwind" fn scan_analyze_next_block(
    scan: pg_sys::TableScanDesc,
    blockno: pg_sys::BlockNumber,
    _bstrategy: pg_sys::BufferAccessStrategy,
) -> bool {
    let st = state(scan);
    st.analyze_queue.clear();
    for (i, s) in st.segments.iter().enumerate().rev() {
        match s.kind {
            Kind::Parquet if (s.first_block..s.first_block + s.block_count).contains(&blockno) => {
                let b = (blockno - s.first_block) as u64;
                let lo = (b * s.row_count).div_ceil(s.block_count as u64);
                let hi = ((b + 1) * s.row_count).div_ceil(s.block_count as u64);
                st.analyze_queue.push((i, lo, hi));
            }
            Kind::WriteStore if s.first_block == blockno => {
                st.analyze_queue.push((i, 0, s.row_count))
            }
            _ => {}
        }
    }
    true
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_analyze_next_tuple(
    scan: pg_sys::TableScanDesc,
    _oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    deadrows: *mut f64,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    let st = state(scan);
    while let Some(&(i, lo, hi)) = st.analyze_queue.last() {
        // Reuse the open cursor while it has not passed `lo`.
        if st
            .analyze
            .as_ref()
            .is_none_or(|(j, _, at)| *j != i || *at > lo)
        {
            st.analyze = Some((i, Cursor::open(&st.table, &st.segments[i]), 0));
        }
        let (_, cursor, at) = st.analyze.as_mut().expect("set");
        let deleted = &st.deleted;
        let mut dead = 0.0;
        let mut step = |r: u64| {
            let k = *at;
            if k >= hi {
                return Step::Stop;
            }
            *at += 1;
            if k < lo {
                Step::Skip
            } else if deleted.contains(&r) {
                dead += 1.0;
                Step::Skip
            } else {
                Step::Take
            }
        };
        let (table, columns) = (&st.table, &st.columns);
        let row = st
            .row_cx
            .run(|| cursor.next(table, slot, columns, &mut step));
        // SAFETY: counters owned by ANALYZE.
        unsafe { *deadrows += dead };
        let at = *at;
        match row {
            Some(r) => {
                // Rows before `at` are done: the next call continues there.
                if let Some(entry) = st.analyze_queue.last_mut() {
                    entry.1 = at;
                }
                // SAFETY: valid slot and counter.
                unsafe {
                    (*slot).tts_tid = row_to_tid(r);
                    *liverows += 1.0;
                }
                return true;
            }
            None => {
                st.analyze_queue.pop();
            }
        }
    }
    false
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_sample_next_block(
    _scan: pg_sys::TableScanDesc,
    _s: *mut pg_sys::SampleScanState,
) -> bool {
    crate::error::error(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "TABLESAMPLE is not supported on omen_columnar tables".into(),
    )
}

#[pg_guard]
pub unsafe extern "C-unwind" fn scan_sample_next_tuple(
    _scan: pg_sys::TableScanDesc,
    _s: *mut pg_sys::SampleScanState,
    _slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    crate::error::error(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "TABLESAMPLE is not supported on omen_columnar tables".into(),
    )
}
