//! Reading rows out of segments into slots.

use super::catalog::{Kind, Segment};
use super::group::GroupDatums;
use super::{corrupt, datum, storage};
use crate::cache::{local, shared};
use omendb_columnar::prune::Hints;
use omendb_columnar::{decode_row, DecodedGroup, Schema, SegmentReader};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::rc::Rc;

/// The table being read and its current storage schema.
pub struct Table {
    pub rel: pg_sys::Relation,
    pub schema: Schema,
    /// Sequential scans read row groups through the shared cache (with
    /// the scan's insert budget); other readers (compaction, verify,
    /// rewrites) leave it None and read uncached.
    pub scan_cache: Option<shared::ScanCache>,
    /// The datum buffers of a finished cursor, for the next one to reuse
    /// ([`Cursor::finish`]): buffers the size of a row group, allocated
    /// afresh per segment, came from pages the kernel had to zero again.
    spare: RefCell<Option<GroupDatums>>,
}

impl Table {
    pub fn new(rel: pg_sys::Relation) -> Table {
        // SAFETY: open relation.
        Table {
            rel,
            schema: datum::schema_of(unsafe { (*rel).rd_att }),
            scan_cache: None,
            spare: RefCell::new(None),
        }
    }

    /// The leading `n` columns of the table schema: what a segment written
    /// with `n` columns must match (columns are only ever appended; a type
    /// change rewrites the table).
    fn prefix(&self, n: usize) -> Option<Schema> {
        (n <= self.schema.columns.len()).then(|| Schema {
            columns: self.schema.columns[..n].to_vec(),
        })
    }

    /// Open a Parquet segment and check its schema against the table's.
    pub fn open_parquet(&self, seg: &Segment) -> (SegmentReader, storage::SegmentPages) {
        let src = self.pages(seg);
        let reader = self.parse_footer(seg, &src);
        self.check_schema(seg, &reader);
        (reader, src)
    }

    /// [`Table::open_parquet`], the footer from this backend's cache.
    pub fn open_parquet_cached(&self, seg: &Segment) -> (Rc<SegmentReader>, storage::SegmentPages) {
        let src = self.pages(seg);
        let reader = local::footer(seg.id, || self.parse_footer(seg, &src));
        self.check_schema(seg, &reader);
        (reader, src)
    }

    fn pages(&self, seg: &Segment) -> storage::SegmentPages {
        storage::SegmentPages {
            rel: self.rel,
            first_block: seg.first_block,
            block_count: seg.block_count,
            len: seg.byte_length,
        }
    }

    fn parse_footer(&self, seg: &Segment, src: &storage::SegmentPages) -> SegmentReader {
        SegmentReader::open_stored(src).unwrap_or_else(|e| {
            corrupt(
                self.rel,
                format!("segment at block {}: {e}", seg.first_block),
            )
        })
    }

    /// The segment's columns must be a prefix of the table's, type for type.
    fn check_schema(&self, seg: &Segment, reader: &SegmentReader) {
        let stored = reader.schema();
        let compatible = self.prefix(stored.columns.len()).is_some_and(|want| {
            want.columns
                .iter()
                .zip(&stored.columns)
                // A dropped column (type 0: PostgreSQL forgets its type, so
                // its kind is a guess) is never read; it matches anything.
                .all(|(w, s)| w.type_oid == 0 || (w.kind == s.kind && w.type_oid == s.type_oid))
        });
        if !compatible {
            corrupt(
                self.rel,
                format!(
                    "segment at block {} was written for different column types",
                    seg.first_block
                ),
            );
        }
    }

    pub fn read_group(
        &self,
        reader: &SegmentReader,
        src: &storage::SegmentPages,
        group: usize,
        columns: &[usize],
    ) -> DecodedGroup {
        reader
            .read_group(src, group, columns)
            .unwrap_or_else(|e| self.corrupt_group(src, group, e))
    }

    fn corrupt_group(
        &self,
        src: &storage::SegmentPages,
        group: usize,
        e: impl std::fmt::Display,
    ) -> ! {
        corrupt(
            self.rel,
            format!(
                "segment at block {}, row group {group}: {e}",
                src.first_block
            ),
        )
    }

    /// Decode row group `group` (`columns` of it, None: all stored ones)
    /// of segment `id`, through the scan's cache if any, and load it into
    /// `datums`.
    #[allow(clippy::too_many_arguments)]
    fn load_group(
        &self,
        reader: &SegmentReader,
        src: &storage::SegmentPages,
        id: Option<local::SegmentId>,
        group: usize,
        stored: usize,
        columns: Option<&[usize]>,
        datums: &mut GroupDatums,
    ) -> Rc<DecodedGroup> {
        let cols: Vec<usize> = match columns {
            Some(cols) => cols.iter().copied().filter(|c| *c < stored).collect(),
            None => (0..stored).collect(),
        };
        let mut counts = shared::PartCounts::default();
        let cache = self.scan_cache.as_ref();
        let data = shared::read_group(cache, id, reader, src, group, &cols, &mut counts)
            .unwrap_or_else(|e| self.corrupt_group(src, group, e));
        // SAFETY: open relation; rd_att is the descriptor of its slots.
        let desc = unsafe { (*self.rel).rd_att };
        datums.load(desc, &self.schema, stored, &data, columns);
        Rc::new(data)
    }

    /// Rows of group `g` around `row` for a fetch by TID, reading only the
    /// Parquet pages that hold them: with this backend's cache, all rows of
    /// the data page that holds `row`, kept for later fetches (decompressing
    /// the page is most of the cost either way); without it, a window of
    /// `SEEK_WINDOW` rows. The second miss in one group in one scan reads the
    /// whole group instead (fetches in row order, as from a correlated index,
    /// would otherwise decode the same pages window after window). In a group
    /// with gaps in its row numbers (purged rows) a row's position is not its
    /// offset from the first: the cache keeps the first row number of each
    /// page to find it; without the cache the whole group is read.
    #[allow(clippy::too_many_arguments)]
    fn read_around(
        &self,
        reader: &SegmentReader,
        src: &storage::SegmentPages,
        id: Option<local::SegmentId>,
        g: usize,
        stored: usize,
        row: u64,
        columns: Option<&[usize]>,
        windows: &mut u32,
    ) -> Rc<DecodedGroup> {
        let all: Vec<usize> = match columns {
            Some(cols) => cols.iter().copied().filter(|c| *c < stored).collect(),
            None => (0..stored).collect(),
        };
        let (lo, hi) = reader.group_row_range(g);
        let rows = reader.group_rows(g);
        let gaps = hi - lo + 1 != rows;
        let read = |start: u64, count: u64| {
            reader
                .read_rows(src, g, &all, start, count)
                .unwrap_or_else(|e| {
                    corrupt(
                        self.rel,
                        format!("segment at block {}, row group {g}: {e}", src.first_block),
                    )
                })
        };
        if !local::enabled(id) && !shared::enabled(id) {
            *windows += 1;
            if *windows > 1 || gaps {
                return Rc::new(self.read_group(reader, src, g, &all));
            }
            let pos = row - lo;
            let start = pos - pos % SEEK_WINDOW;
            return Rc::new(read(start, SEEK_WINDOW.min(rows - start)));
        }
        let page_rows = omendb_columnar::DATA_PAGE_ROWS as u64;
        let page = if gaps {
            // Purged rows leave gaps: a row's position is not its offset
            // from the first. The first row number of each page, read once
            // from the group's row numbers and kept, tells which page holds
            // it (or would: an absent row reads that page and is not found).
            let starts = local::page_starts(id, g).unwrap_or_else(|| {
                let numbers = self.read_group(reader, src, g, &[]);
                let values = numbers.row_numbers().values();
                let starts = values.iter().step_by(page_rows as usize).map(|&r| r as u64);
                local::keep_page_starts(id, g, starts.collect())
            });
            starts
                .partition_point(|&first| first <= row)
                .saturating_sub(1)
        } else {
            ((row - lo) / page_rows) as usize
        };
        if let Some(kept) = local::page(id, g, page, &all) {
            return kept;
        }
        let decode = |bytes: &[u8], cols: &[usize]| reader.group_from_bytes(bytes, cols).ok();
        if let Some(rows_of_page) = shared::page(id, g, page, &all, decode) {
            return local::keep_page(id, g, page, &all, rows_of_page);
        }
        *windows += 1;
        if *windows > 1 {
            return Rc::new(self.read_group(reader, src, g, &all));
        }
        let start = page as u64 * page_rows;
        let rows_of_page = read(start, page_rows.min(rows - start));
        shared::keep_page(id, g, page, &all, &rows_of_page, false);
        local::keep_page(id, g, page, &all, rows_of_page)
    }

    /// Fill `slot` from a write-store item (column count + row record).
    pub fn fill_from_item(&self, slot: *mut pg_sys::TupleTableSlot, item: &[u8]) {
        let bad = |what: String| -> ! { corrupt(self.rel, format!("write-store record: {what}")) };
        if item.len() < 2 {
            bad("shorter than its header".into());
        }
        let ncols = u16::from_le_bytes([item[0], item[1]]) as usize;
        let schema = self
            .prefix(ncols)
            .unwrap_or_else(|| bad(format!("{ncols} columns, the table has fewer")));
        self.fill_from_record(slot, &schema, &item[2..]);
    }

    /// Fill `slot` from a row record written with `schema`.
    pub fn fill_from_record(
        &self,
        slot: *mut pg_sys::TupleTableSlot,
        schema: &Schema,
        record: &[u8],
    ) {
        let mut values = Vec::new();
        decode_row(schema, record, &mut values)
            .unwrap_or_else(|e| corrupt(self.rel, format!("row record: {e}")));
        datum::fill_slot(slot, &self.schema, schema.columns.len(), |c| values[c]);
    }

    /// The rows of write-store segment `seg`, copied out of its pages.
    pub fn write_store_rows(&self, seg: &Segment) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::with_capacity(seg.row_count as usize);
        storage::read_write_store(self.rel, seg.first_block, seg.block_count, |row, item| {
            if (seg.first_row..=seg.last_row).contains(&row) {
                out.push((row, item.to_vec()));
            }
        });
        out.sort_by_key(|(r, _)| *r);
        if out.len() as u64 != seg.row_count {
            corrupt(self.rel, format!(
                "write-store segment of rows {}..{} has {} rows in its pages, its catalog row says {}",
                seg.first_row, seg.last_row, out.len(), seg.row_count
            ));
        }
        out
    }
}

/// Rows a fetch by TID decodes around the row it wants (without the cache).
const SEEK_WINDOW: u64 = 256;

/// What a cursor does with the row it reached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Take,
    Skip,
    /// Leave the row unread and return None.
    Stop,
}

/// A cursor over one segment's rows, in row-number order.
pub enum Cursor {
    Parquet {
        reader: Rc<SegmentReader>,
        src: storage::SegmentPages,
        /// The segment's id, for the backend's cache (None: uncached).
        id: Option<local::SegmentId>,
        stored: usize,
        group: usize,
        data: Option<Rc<DecodedGroup>>,
        /// `data` as datums (buffers reused from group to group).
        datums: GroupDatums,
        /// Row windows `seek` read from group `group` (see [`Cursor::seek`]).
        windows: u32,
        pos: usize,
        /// Row groups whose statistics fail these filters are not read.
        filter: Option<Hints>,
    },
    Rows {
        rows: Vec<(u64, Vec<u8>)>,
        pos: usize,
    },
}

impl Cursor {
    pub fn open(t: &Table, seg: &Segment) -> Cursor {
        match seg.kind {
            Kind::Parquet => {
                let (reader, src) = t.open_parquet_cached(seg);
                let stored = reader.schema().columns.len();
                Cursor::Parquet {
                    reader,
                    src,
                    id: seg.id,
                    stored,
                    group: 0,
                    data: None,
                    datums: t.spare.take().unwrap_or_default(),
                    windows: 0,
                    pos: 0,
                    filter: None,
                }
            }
            Kind::WriteStore => Cursor::Rows {
                rows: t.write_store_rows(seg),
                pos: 0,
            },
            Kind::Reserved => Cursor::Rows {
                rows: Vec::new(),
                pos: 0,
            },
        }
    }

    /// Done with this cursor: its buffers go to the next one `t` opens.
    pub fn finish(self, t: &Table) {
        if let Cursor::Parquet { datums, .. } = self {
            t.spare.replace(Some(datums));
        }
    }

    /// Open a cursor that skips row groups (and, returning None, whole
    /// segments) whose statistics prove no row passes `hints`' filters.
    pub fn open_filtered(t: &Table, seg: &Segment, hints: &Hints) -> Option<Cursor> {
        let mut c = Cursor::open(t, seg);
        if let Cursor::Parquet { reader, filter, .. } = &mut c {
            if !hints.may_match(&reader.segment_stats()) {
                return None;
            }
            *filter = Some(hints.clone());
        }
        Some(c)
    }

    /// Store the next row that `step` takes into `slot`; returns its row
    /// number, or None at the end of the segment or at a `Stop`. `columns`
    /// (sorted) are the stored columns to decode; others read as NULL.
    pub fn next(
        &mut self,
        t: &Table,
        slot: *mut pg_sys::TupleTableSlot,
        columns: &[usize],
        step: &mut dyn FnMut(u64) -> Step,
    ) -> Option<u64> {
        match self {
            Cursor::Parquet {
                reader,
                src,
                id,
                stored,
                group,
                data,
                datums,
                pos,
                filter,
                ..
            } => loop {
                pgrx::check_for_interrupts!();
                if data.is_none() {
                    if *group >= reader.row_groups() {
                        return None;
                    }
                    if filter
                        .as_ref()
                        .is_some_and(|h| !h.may_match(reader.group_stats(*group)))
                    {
                        *group += 1;
                        continue;
                    }
                    *data = Some(t.load_group(
                        reader,
                        src,
                        *id,
                        *group,
                        *stored,
                        Some(columns),
                        datums,
                    ));
                    *pos = 0;
                }
                let d = data.as_ref().expect("loaded");
                if *pos >= d.len() {
                    *data = None;
                    *group += 1;
                    continue;
                }
                let i = *pos;
                let row = d.row_number(i);
                match step(row) {
                    Step::Stop => return None,
                    Step::Skip => {
                        *pos += 1;
                        continue;
                    }
                    Step::Take => *pos += 1,
                }
                datums.fill(slot, i);
                return Some(row);
            },
            Cursor::Rows { rows, pos } => {
                while *pos < rows.len() {
                    pgrx::check_for_interrupts!();
                    let (row, item) = &rows[*pos];
                    match step(*row) {
                        Step::Stop => return None,
                        Step::Skip => {
                            *pos += 1;
                            continue;
                        }
                        Step::Take => *pos += 1,
                    }
                    t.fill_from_item(slot, item);
                    return Some(*row);
                }
                None
            }
        }
    }

    /// Store row `row` into `slot` if this segment has it.
    /// `columns` (sorted table columns; None: all) are decoded, others read
    /// as NULL; a cursor is always sought with the same columns.
    pub fn seek(
        &mut self,
        t: &Table,
        slot: *mut pg_sys::TupleTableSlot,
        row: u64,
        columns: Option<&[usize]>,
    ) -> bool {
        match self {
            Cursor::Parquet {
                reader,
                src,
                id,
                stored,
                group,
                data,
                windows,
                ..
            } => {
                let want = (0..reader.row_groups()).find(|&g| {
                    let (lo, hi) = reader.group_row_range(g);
                    (lo..=hi).contains(&row)
                });
                let Some(g) = want else { return false };
                // No column wanted (an index-only scan's visibility check)
                // and no gaps in the group's row numbers: the row is there.
                let (lo, hi) = reader.group_row_range(g);
                if columns.is_some_and(|c| c.is_empty()) && hi - lo + 1 == reader.group_rows(g) {
                    datum::fill_slot(slot, &t.schema, *stored, |_| omendb_columnar::Value::Null);
                    return true;
                }
                // Loaded rows cover `row` if it lies within their row-number
                // range (a row absent from it is not in the segment: a
                // rolled-back or purged row whose number the range spans).
                let covers = |d: &DecodedGroup| {
                    !d.is_empty() && d.row_number(0) <= row && row <= d.row_number(d.len() - 1)
                };
                let loaded = *group == g && data.as_deref().is_some_and(covers);
                if !loaded {
                    if *group != g {
                        *windows = 0;
                    }
                    *group = g;
                    *data =
                        Some(t.read_around(reader, src, *id, g, *stored, row, columns, windows));
                }
                let d = data.as_ref().expect("loaded");
                match d.position_of(row) {
                    Some(i) => {
                        // One row: converted alone (palloc'd in the caller's
                        // per-fetch memory), not the whole group.
                        let wanted =
                            |c: usize| columns.is_none_or(|cols| cols.binary_search(&c).is_ok());
                        datum::fill_slot(slot, &t.schema, *stored, |c| {
                            if wanted(c) {
                                d.value(c, i)
                            } else {
                                omendb_columnar::Value::Null
                            }
                        });
                        true
                    }
                    None => false,
                }
            }
            Cursor::Rows { rows, .. } => match rows.binary_search_by_key(&row, |(r, _)| *r) {
                Ok(i) => {
                    t.fill_from_item(slot, &rows[i].1);
                    true
                }
                Err(_) => false,
            },
        }
    }
}
