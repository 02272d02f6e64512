//! The per-backend cache: parsed Parquet footers by segment id, and the
//! rows of one Parquet data page (4,096 rows of a row group, decoded in the
//! columns a fetch wanted) by (segment id, group, page, columns), in one
//! byte budget (`omendb.local_cache_size`). Main thread only.
//!
//! Index fetches use it: a fetch decompresses the data page holding its row
//! anyway, so it decodes and keeps all of that page's rows, and later
//! fetches of any of them decode nothing. The unit is a page, not a whole
//! row group, so a miss costs what a fetch cost before the cache, however
//! large the table (caching whole groups would make random lookups over a
//! table larger than the cache decode 16 pages per lookup). Sequential
//! scans use and keep footers only, so a large scan never flushes the
//! pages lookups use.

use omendb_cache::{ByteLru, Stats};
use omendb_columnar::{DecodedGroup, SegmentReader};
use std::cell::RefCell;
use std::rc::Rc;

/// A segment: (OID of omendb.columnar_segment, segment_id). The OID tells
/// catalogs of successive CREATE EXTENSIONs apart, whose sequences each
/// start at 1.
pub type SegmentId = (u32, u64);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Footer(SegmentId),
    /// Segment, row group, page (4,096 rows) of the group, decoded columns.
    Page(SegmentId, usize, usize, Vec<usize>),
    /// The first row number of each page of a row group.
    PageStarts(SegmentId, usize),
}

enum Value {
    Footer(Rc<SegmentReader>),
    Page(Rc<DecodedGroup>),
    PageStarts(Rc<Vec<u64>>),
}

thread_local! {
    static LOCAL: RefCell<ByteLru<Key, Value>> = RefCell::new(ByteLru::new(0));
}

fn capacity() -> usize {
    super::LOCAL_CACHE_SIZE.get().max(0) as usize * 1024 * 1024
}

/// Run `f` on the cache, resized to the setting first.
fn with<R>(f: impl FnOnce(&mut ByteLru<Key, Value>) -> R) -> R {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let cap = capacity();
        if l.capacity() != cap {
            l.set_capacity(cap);
        }
        f(&mut l)
    })
}

/// Whether the cache is on (a segment without an id is never cached).
pub fn enabled(id: Option<SegmentId>) -> bool {
    id.is_some() && capacity() > 0 && super::ENABLE_CACHE.get()
}

/// Bytes a footer is charged: its row-group and column metadata.
fn footer_bytes(r: &SegmentReader) -> usize {
    4096 + r.row_groups() * (r.schema().columns.len() + 1) * 512
}

/// The footer of segment `id`, parsed by `open` on a miss (outside the
/// cache's borrow: `open` reads pages and may raise an ERROR).
pub fn footer(id: Option<SegmentId>, open: impl FnOnce() -> SegmentReader) -> Rc<SegmentReader> {
    let Some(id) = id.filter(|_| enabled(id)) else {
        return Rc::new(open());
    };
    if let Some(Value::Footer(r)) = with(|l| l.get(&Key::Footer(id))).as_deref() {
        return r.clone();
    }
    let reader = Rc::new(open());
    let bytes = footer_bytes(&reader);
    with(|l| l.insert(Key::Footer(id), Value::Footer(reader.clone()), bytes));
    reader
}

/// Page `page` of row group `group` of segment `id`, decoded in
/// `columns`, if kept.
pub fn page(
    id: Option<SegmentId>,
    group: usize,
    page: usize,
    columns: &[usize],
) -> Option<Rc<DecodedGroup>> {
    let id = id.filter(|_| enabled(id))?;
    match with(|l| l.get(&Key::Page(id, group, page, columns.to_vec()))).as_deref() {
        Some(Value::Page(p)) => Some(p.clone()),
        _ => None,
    }
}

/// Keep a decoded page; returns it shared.
pub fn keep_page(
    id: Option<SegmentId>,
    group: usize,
    page: usize,
    columns: &[usize],
    rows: DecodedGroup,
) -> Rc<DecodedGroup> {
    let Some(id) = id.filter(|_| enabled(id)) else {
        return Rc::new(rows);
    };
    let bytes = rows.memory_size();
    let rows = Rc::new(rows);
    let key = Key::Page(id, group, page, columns.to_vec());
    with(|l| l.insert(key, Value::Page(rows.clone()), bytes));
    rows
}

/// The first row number of each page of row group `group` of segment
/// `id`, if kept.
pub fn page_starts(id: Option<SegmentId>, group: usize) -> Option<Rc<Vec<u64>>> {
    let id = id.filter(|_| enabled(id))?;
    match with(|l| l.get(&Key::PageStarts(id, group))).as_deref() {
        Some(Value::PageStarts(p)) => Some(p.clone()),
        _ => None,
    }
}

/// Keep the first row number of each page of a row group.
pub fn keep_page_starts(id: Option<SegmentId>, group: usize, starts: Vec<u64>) -> Rc<Vec<u64>> {
    let starts = Rc::new(starts);
    if let Some(id) = id.filter(|_| enabled(id)) {
        let bytes = 64 + starts.len() * 8;
        with(|l| {
            l.insert(
                Key::PageStarts(id, group),
                Value::PageStarts(starts.clone()),
                bytes,
            )
        });
    }
    starts
}

pub struct LocalStats {
    pub stats: Stats,
    pub entries: usize,
    pub used: usize,
    pub capacity: usize,
}

pub fn stats() -> LocalStats {
    with(|l| LocalStats {
        stats: l.stats(),
        entries: l.len(),
        used: l.used(),
        capacity: l.capacity(),
    })
}

/// Drop every entry (the counters stay).
pub fn clear() {
    with(|l| l.clear())
}

pub fn reset() {
    with(|l| {
        l.clear();
        l.reset_stats();
    })
}
