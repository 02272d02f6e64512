//! Page formats of an omen_columnar table's main fork, all standard
//! PostgreSQL pages (header, pd_lower/pd_upper, a 16-byte special area) so
//! checksums, full-page images and `wal_consistency_checking` apply:
//!
//! - block 0, the metapage: format version, storage id (the key of the
//!   table's catalog rows), the next unreserved row number, the write-store tail;
//! - segment pages: a Parquet segment's bytes, 8152 per page, in contiguous blocks;
//! - write-store pages: line-pointer items `row number (8 bytes) + row record`,
//!   chained through the special area's `next`.
//!
//! Every change is one GenericXLog record of at most four pages. The
//! metapage is created lazily by the first write, so a new or truncated
//! table is an empty fork.

use super::{corrupt, MAX_ROW_NUMBER};
use pgrx::pg_sys;
use pgrx::prelude::*;

const MAGIC: u32 = 0x4F4D_4331; // "OMC1"
pub const PAGE_FORMAT_VERSION: u16 = 1;
const SPECIAL_SIZE: usize = 16;
const BLCKSZ: usize = pg_sys::BLCKSZ as usize;
/// SizeOfPageHeaderData: the header up to its line pointer array.
const HEADER: usize = std::mem::offset_of!(pg_sys::PageHeaderData, pd_linp);
const SPECIAL_OFF: usize = BLCKSZ - SPECIAL_SIZE;
/// Segment bytes per page.
pub const SEGMENT_PAGE_BYTES: usize = SPECIAL_OFF - HEADER;
const META_BYTES: usize = 28;
/// GenericXLog's page limit per record.
const GROUP_LIMIT: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum PageKind {
    Meta = 1,
    Segment = 2,
    WriteStore = 3,
}

#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub storage_id: u64,
    pub next_row: u64,
    pub ws_tail: u32,
    /// Set on a storage that VACUUM FULL copied to a new file: dropping the
    /// old file must not forget catalog rows the copy still uses.
    pub moved: bool,
}

type Page = *mut u8;

fn rd(p: Page, off: usize, n: usize) -> &'static [u8] {
    // SAFETY: callers pass offsets within a pinned BLCKSZ page.
    unsafe { std::slice::from_raw_parts(p.add(off), n) }
}
fn wr(p: Page, off: usize, bytes: &[u8]) {
    // SAFETY: as above, on a page image we may modify.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(off), bytes.len()) }
}
fn u32_at(p: Page, off: usize) -> u32 {
    u32::from_le_bytes(rd(p, off, 4).try_into().expect("4 bytes"))
}
fn u64_at(p: Page, off: usize) -> u64 {
    u64::from_le_bytes(rd(p, off, 8).try_into().expect("8 bytes"))
}
fn header(p: Page) -> *mut pg_sys::PageHeaderData {
    p as *mut pg_sys::PageHeaderData
}

/// The special area at the end of every page.
#[repr(C)]
#[derive(Clone, Copy)]
struct Special {
    magic: u32,
    kind: u16,
    version: u16,
    /// Write-store pages: the next page of the chain.
    next: u32,
    reserved: u32,
}
const _: () = assert!(std::mem::size_of::<Special>() == SPECIAL_SIZE);

impl Special {
    /// The special area of `p` (which may hold anything).
    fn of(p: Page) -> Special {
        // SAFETY: the last SPECIAL_SIZE bytes of a pinned BLCKSZ page.
        unsafe { std::ptr::read_unaligned(p.add(SPECIAL_OFF) as *const Special) }
    }
    fn write(self, p: Page) {
        // SAFETY: as above, on a page image we may modify.
        unsafe { std::ptr::write_unaligned(p.add(SPECIAL_OFF) as *mut Special, self) }
    }
    /// Whether `p` is an omen_columnar page (any version) of `kind`; never
    /// an ERROR.
    fn is(p: Page, kind: PageKind) -> bool {
        // SAFETY: header of a pinned page.
        let special = unsafe { (*header(p)).pd_special } as usize;
        let s = Special::of(p);
        special == SPECIAL_OFF && s.magic == MAGIC && s.kind == kind as u16
    }
}

/// Initialise `p` as an empty page of `kind`.
fn init_page(p: Page, kind: PageKind) {
    // SAFETY: p is a page image we own.
    unsafe {
        std::ptr::write_bytes(p, 0, BLCKSZ);
        pg_sys::PageInit(p as pg_sys::Page, BLCKSZ, SPECIAL_SIZE);
    }
    Special {
        magic: MAGIC,
        kind: kind as u16,
        version: PAGE_FORMAT_VERSION,
        next: pg_sys::InvalidBlockNumber,
        reserved: 0,
    }
    .write(p);
}

fn next_of(p: Page) -> u32 {
    Special::of(p).next
}
fn set_next(p: Page, blk: u32) {
    Special {
        next: blk,
        ..Special::of(p)
    }
    .write(p);
}

/// Check that block `blk`'s page is ours and of `kind`.
fn check_page(rel: pg_sys::Relation, blk: u32, p: Page, kind: PageKind) {
    let Special {
        magic,
        kind: k,
        version: v,
        ..
    } = Special::of(p);
    // SAFETY: header of a pinned page.
    let special = unsafe { (*header(p)).pd_special } as usize;
    if magic != MAGIC || special != SPECIAL_OFF {
        corrupt(rel, format!("block {blk} is not an omen_columnar page"));
    }
    if v != PAGE_FORMAT_VERSION {
        corrupt(
            rel,
            format!(
                "block {blk} has page format version {v}, this build reads {PAGE_FORMAT_VERSION}"
            ),
        );
    }
    if k != kind as u16 {
        corrupt(
            rel,
            format!("block {blk} is page kind {k}, expected {:?}", kind),
        );
    }
}

pub fn nblocks(rel: pg_sys::Relation) -> u32 {
    // SAFETY: rel is open.
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// A pinned and locked buffer, unlocked and released on drop.
pub struct Locked(pg_sys::Buffer);

impl Locked {
    fn read(rel: pg_sys::Relation, blk: u32, mode: u32) -> Locked {
        let n = nblocks(rel);
        if blk >= n {
            corrupt(
                rel,
                format!("block {blk} is past the end of the table ({n} blocks)"),
            );
        }
        // SAFETY: blk exists; the guard releases pin and lock.
        unsafe {
            let b = pg_sys::ReadBuffer(rel, blk);
            pg_sys::LockBuffer(b, mode as i32);
            Locked(b)
        }
    }
    /// Extend the relation by one page (caller holds the extension lock).
    fn extend(rel: pg_sys::Relation) -> (u32, Locked) {
        // SAFETY: P_NEW under the extension lock, as nbtree does.
        unsafe {
            let b = pg_sys::ReadBufferExtended(
                rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                pg_sys::InvalidBlockNumber,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                std::ptr::null_mut(),
            );
            pg_sys::LockBuffer(b, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            (pg_sys::BufferGetBlockNumber(b), Locked(b))
        }
    }
    fn page(&self) -> Page {
        // SAFETY: pinned buffer.
        unsafe { pg_sys::BufferGetPage(self.0) as Page }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: we hold pin and lock.
        unsafe { pg_sys::UnlockReleaseBuffer(self.0) };
    }
}

/// One GenericXLog record; aborted if dropped unfinished (an ERROR unwinding).
struct Record(*mut pg_sys::GenericXLogState, usize);

impl Record {
    fn start(rel: pg_sys::Relation) -> Record {
        // SAFETY: rel is open.
        Record(unsafe { pg_sys::GenericXLogStart(rel) }, 0)
    }
    fn register(&mut self, buf: &Locked, full: bool) -> Page {
        assert!(
            self.1 < GROUP_LIMIT,
            "GenericXLog record over {GROUP_LIMIT} pages"
        );
        self.1 += 1;
        let flags = if full {
            pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
        } else {
            0
        };
        // SAFETY: buffer pinned and exclusively locked by the caller.
        unsafe { pg_sys::GenericXLogRegisterBuffer(self.0, buf.0, flags) as Page }
    }
    fn finish(mut self) {
        // SAFETY: all registered buffers are still locked.
        unsafe { pg_sys::GenericXLogFinish(self.0) };
        self.0 = std::ptr::null_mut();
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: unfinished record.
            unsafe { pg_sys::GenericXLogAbort(self.0) };
        }
    }
}

fn decode_meta(rel: pg_sys::Relation, p: Page) -> Meta {
    check_page(rel, 0, p, PageKind::Meta);
    let version = u32_at(p, HEADER);
    if version != PAGE_FORMAT_VERSION as u32 {
        corrupt(
            rel,
            format!("metapage format version {version} is not {PAGE_FORMAT_VERSION}"),
        );
    }
    Meta {
        storage_id: u64_at(p, HEADER + 4),
        next_row: u64_at(p, HEADER + 12),
        ws_tail: u32_at(p, HEADER + 20),
        moved: u32_at(p, HEADER + 24) & 1 != 0,
    }
}

fn encode_meta(p: Page, m: &Meta) {
    wr(p, HEADER, &(PAGE_FORMAT_VERSION as u32).to_le_bytes());
    wr(p, HEADER + 4, &m.storage_id.to_le_bytes());
    wr(p, HEADER + 12, &m.next_row.to_le_bytes());
    wr(p, HEADER + 20, &m.ws_tail.to_le_bytes());
    wr(p, HEADER + 24, &(m.moved as u32).to_le_bytes());
    // SAFETY: page image we own; keep the metadata below pd_lower so
    // full-page images carry it.
    unsafe { (*header(p)).pd_lower = (HEADER + META_BYTES) as u16 };
}

/// The metapage, or None for an empty (never written) table.
pub fn meta(rel: pg_sys::Relation) -> Option<Meta> {
    if nblocks(rel) == 0 {
        return None;
    }
    let b = Locked::read(rel, 0, pg_sys::BUFFER_LOCK_SHARE);
    Some(decode_meta(rel, b.page()))
}

/// The metapage if block 0 is a valid one, else None (no error: DROP TABLE
/// of a damaged table uses this).
pub fn meta_if_valid(rel: pg_sys::Relation) -> Option<Meta> {
    if nblocks(rel) == 0 {
        return None;
    }
    let b = Locked::read(rel, 0, pg_sys::BUFFER_LOCK_SHARE);
    let p = b.page();
    let ok = Special::is(p, PageKind::Meta) && u32_at(p, HEADER) == PAGE_FORMAT_VERSION as u32;
    ok.then(|| decode_meta(rel, p))
}

/// The metapage, created (with a fresh storage id) if the table is empty.
pub fn ensure_meta(rel: pg_sys::Relation) -> Meta {
    if let Some(m) = meta(rel) {
        return m;
    }
    // SAFETY: extension lock serialises creators; re-check under it.
    unsafe { pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
    if nblocks(rel) == 0 {
        let m = Meta {
            storage_id: super::catalog::new_storage_id(),
            next_row: 0,
            ws_tail: pg_sys::InvalidBlockNumber,
            moved: false,
        };
        let (blk, buf) = Locked::extend(rel);
        debug_assert_eq!(blk, 0);
        let mut rec = Record::start(rel);
        let p = rec.register(&buf, true);
        init_page(p, PageKind::Meta);
        encode_meta(p, &m);
        rec.finish();
    }
    // SAFETY: taken above.
    unsafe { pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
    meta(rel).expect("metapage just created")
}

/// Reserve `n` consecutive row numbers; returns the first.
pub fn reserve_rows(rel: pg_sys::Relation, n: u64) -> u64 {
    ensure_meta(rel);
    let buf = Locked::read(rel, 0, pg_sys::BUFFER_LOCK_EXCLUSIVE);
    let mut m = decode_meta(rel, buf.page());
    let first = m.next_row;
    if first.checked_add(n).is_none_or(|end| end > MAX_ROW_NUMBER) {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "omen_columnar table \"{}\" has used all row numbers",
                super::relation_name(rel)
            ),
        );
    }
    m.next_row = first + n;
    let mut rec = Record::start(rel);
    let p = rec.register(&buf, false);
    encode_meta(p, &m);
    rec.finish();
    first
}

/// Pages a segment of `len` bytes takes.
pub fn pages_for(len: usize) -> u32 {
    len.div_ceil(SEGMENT_PAGE_BYTES) as u32
}

/// Write a segment's bytes into contiguous pages: at `reuse` (free blocks
/// this transaction took, see `compact::take_free`) or new ones at the end
/// of the file. Returns (first block, count).
pub fn write_segment(rel: pg_sys::Relation, bytes: &[u8], reuse: Option<u32>) -> (u32, u32) {
    ensure_meta(rel);
    let chunks: Vec<&[u8]> = bytes.chunks(SEGMENT_PAGE_BYTES).collect();
    let count = chunks.len() as u32;
    if let Some(first) = reuse {
        let end = first.checked_add(count).unwrap_or(u32::MAX);
        if first == 0 || end > nblocks(rel) {
            corrupt(
                rel,
                format!("free blocks {first}..{end} are not pages of the table"),
            );
        }
    } else {
        // Contiguity: extenders wait for this lock, so our pages are adjacent.
        // SAFETY: released below; an ERROR releases it at abort.
        unsafe { pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
    }
    let mut first = reuse;
    let mut next = reuse.unwrap_or(0);
    for group in chunks.chunks(GROUP_LIMIT) {
        let bufs: Vec<(u32, Locked)> = group
            .iter()
            .map(|_| match reuse {
                Some(_) => {
                    next += 1;
                    (
                        next - 1,
                        Locked::read(rel, next - 1, pg_sys::BUFFER_LOCK_EXCLUSIVE),
                    )
                }
                None => Locked::extend(rel),
            })
            .collect();
        let mut rec = Record::start(rel);
        for ((blk, buf), chunk) in bufs.iter().zip(group) {
            first.get_or_insert(*blk);
            let p = rec.register(buf, true);
            init_page(p, PageKind::Segment);
            wr(p, HEADER, chunk);
            // SAFETY: page image we own; data stays below pd_lower.
            unsafe { (*header(p)).pd_lower = (HEADER + chunk.len()) as u16 };
        }
        rec.finish();
    }
    if reuse.is_none() {
        // SAFETY: taken above.
        unsafe { pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
    }
    (first.unwrap_or(0), count)
}

/// Writers hold this lock shared from a change that the catalog must record
/// (a row-number reservation, a write-store append) until its catalog row
/// is inserted; compaction holds it exclusively while it reads the catalog.
/// So every row number below the metapage counter that compaction does not
/// find in the catalog is dead, and no write-store page it frees holds rows
/// of a writer it could not see. (An object lock on the table's pg_class
/// entry with a sub-id of our own: a heavyweight lock the deadlock detector
/// sees. A page lock would not do: holders of one may take no other
/// heavyweight lock, and writers open catalog tables while holding this.)
/// Sub-id of [`ChangeLock`]'s lock tag ("OC"): PostgreSQL locks relations
/// with relation tags, never with object tags on pg_class.
const CHANGE_LOCK_SUBID: u16 = 0x4F43;

pub struct ChangeLock {
    rel: pg_sys::Relation,
    mode: u32,
}

impl ChangeLock {
    pub fn shared(rel: pg_sys::Relation) -> ChangeLock {
        ChangeLock::take(rel, pg_sys::ShareLock)
    }
    pub fn exclusive(rel: pg_sys::Relation) -> ChangeLock {
        ChangeLock::take(rel, pg_sys::ExclusiveLock)
    }
    /// Exclusive if no one holds the lock now; None instead of waiting.
    pub fn try_exclusive(rel: pg_sys::Relation) -> Option<ChangeLock> {
        let mode = pg_sys::ExclusiveLock;
        // SAFETY: the tag LockDatabaseObject builds (SET_LOCKTAG_OBJECT);
        // an open relation; released on drop or at abort.
        let got = unsafe {
            let tag = pg_sys::LOCKTAG {
                locktag_field1: pg_sys::MyDatabaseId.to_u32(),
                locktag_field2: pg_sys::RelationRelationId.to_u32(),
                locktag_field3: (*rel).rd_id.to_u32(),
                locktag_field4: CHANGE_LOCK_SUBID,
                locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
                locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
            };
            pg_sys::LockAcquire(&tag, mode as i32, false, true)
        };
        (got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL)
            .then_some(ChangeLock { rel, mode })
    }
    fn take(rel: pg_sys::Relation, mode: u32) -> ChangeLock {
        // SAFETY: an open relation; released on drop or at abort.
        unsafe {
            pg_sys::LockDatabaseObject(
                pg_sys::RelationRelationId,
                (*rel).rd_id,
                CHANGE_LOCK_SUBID,
                mode as i32,
            )
        };
        ChangeLock { rel, mode }
    }
}

impl Drop for ChangeLock {
    fn drop(&mut self) {
        // On an ERROR the abort releases it; unlocking while unwinding
        // could raise a second error.
        if !std::thread::panicking() {
            // SAFETY: taken in `take`.
            unsafe {
                pg_sys::UnlockDatabaseObject(
                    pg_sys::RelationRelationId,
                    (*self.rel).rd_id,
                    CHANGE_LOCK_SUBID,
                    self.mode as i32,
                )
            };
        }
    }
}

/// A Parquet segment read back through shared buffers, a page at a time.
pub struct SegmentPages {
    pub rel: pg_sys::Relation,
    pub first_block: u32,
    pub block_count: u32,
    pub len: u64,
}

impl omendb_columnar::SegmentSource for SegmentPages {
    fn len(&self) -> u64 {
        self.len
    }
    fn read(&self, offset: u64, len: usize) -> omendb_columnar::Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| {
                omendb_columnar::Error(format!(
                    "read of {len} bytes at {offset} is past the segment's {} bytes",
                    self.len
                ))
            })?;
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while pos < end {
            let i = (pos / SEGMENT_PAGE_BYTES as u64) as u32;
            let within = (pos % SEGMENT_PAGE_BYTES as u64) as usize;
            let take = ((end - pos) as usize).min(SEGMENT_PAGE_BYTES - within);
            if i >= self.block_count {
                return Err(omendb_columnar::Error(format!(
                    "segment offset {pos} is past its {} pages",
                    self.block_count
                )));
            }
            let blk = self.first_block + i;
            let b = Locked::read(self.rel, blk, pg_sys::BUFFER_LOCK_SHARE);
            check_page(self.rel, blk, b.page(), PageKind::Segment);
            // SAFETY: header of a locked page.
            let lower = unsafe { (*header(b.page())).pd_lower } as usize;
            if HEADER + within + take > lower {
                return Err(omendb_columnar::Error(format!(
                    "segment page {blk} holds {} bytes, read needs {}",
                    lower.saturating_sub(HEADER),
                    within + take
                )));
            }
            out.extend_from_slice(rd(b.page(), HEADER + within, take));
            pos += take as u64;
        }
        Ok(out)
    }
}

/// Largest write-store item (8-byte row number + record) that fits a page.
pub const WS_MAX_ITEM: usize = SPECIAL_OFF - HEADER - 8 - 8;

/// Append rows to the write store; returns (first block, pages spanned).
/// The metapage lock is held throughout, so one call's rows are contiguous
/// in the chain.
pub fn append_write_store(rel: pg_sys::Relation, rows: &[(u64, &[u8])]) -> (u32, u32) {
    ensure_meta(rel);
    let meta_buf = Locked::read(rel, 0, pg_sys::BUFFER_LOCK_EXCLUSIVE);
    let mut m = decode_meta(rel, meta_buf.page());
    let mut tail: Option<(u32, Locked)> = if m.ws_tail == pg_sys::InvalidBlockNumber {
        None
    } else {
        let b = Locked::read(rel, m.ws_tail, pg_sys::BUFFER_LOCK_EXCLUSIVE);
        check_page(rel, m.ws_tail, b.page(), PageKind::WriteStore);
        Some((m.ws_tail, b))
    };
    let mut first_block = None;
    let mut pages = 0u32;
    let mut i = 0;
    let mut item = Vec::new();
    while i < rows.len() {
        let mut rec = Record::start(rel);
        let mp = rec.register(&meta_buf, false);
        let mut tail_img = tail.as_ref().map(|(_, b)| rec.register(b, false));
        // Old tails stay locked until the record that links them is written.
        let mut retired: Vec<(u32, Locked)> = Vec::new();
        while i < rows.len() {
            let (row, record) = rows[i];
            item.clear();
            item.extend_from_slice(&row.to_le_bytes());
            item.extend_from_slice(record);
            let added = tail_img.is_some_and(|p| {
                // SAFETY: registered page image; item bytes live across the call.
                unsafe {
                    pg_sys::PageAddItemExtended(
                        p as pg_sys::Page,
                        item.as_ptr() as pg_sys::Item,
                        item.len(),
                        pg_sys::InvalidOffsetNumber,
                        0,
                    ) != pg_sys::InvalidOffsetNumber
                }
            });
            if added {
                if first_block.is_none() {
                    first_block = tail.as_ref().map(|(b, _)| *b);
                    pages = 1;
                }
                i += 1;
                continue;
            }
            if item.len() > WS_MAX_ITEM {
                corrupt(
                    rel,
                    format!("write-store record of {} bytes exceeds a page", item.len()),
                );
            }
            if rec.1 >= GROUP_LIMIT {
                break; // finish this record; the next one continues on the tail
            }
            // SAFETY: extension lock while extending.
            unsafe { pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
            let (blk, buf) = Locked::extend(rel);
            // SAFETY: taken above.
            unsafe { pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
            let p = rec.register(&buf, true);
            init_page(p, PageKind::WriteStore);
            if let Some(t) = tail_img {
                set_next(t, blk);
            }
            m.ws_tail = blk;
            if first_block.is_some() {
                pages += 1;
            } else {
                first_block = Some(blk);
                pages = 1;
            }
            tail_img = Some(p);
            if let Some(old) = tail.replace((blk, buf)) {
                retired.push(old);
            }
        }
        encode_meta(mp, &m);
        rec.finish();
        drop(retired);
    }
    (first_block.unwrap_or(m.ws_tail), pages)
}

/// Visit the `pages` chained write-store pages from `first_block`, locked
/// in share mode.
fn walk_write_store(
    rel: pg_sys::Relation,
    first_block: u32,
    pages: u32,
    mut each: impl FnMut(u32, Page),
) {
    let mut blk = first_block;
    for _ in 0..pages {
        if blk == pg_sys::InvalidBlockNumber {
            corrupt(
                rel,
                format!("write-store chain from block {first_block} ends before {pages} pages"),
            );
        }
        let b = Locked::read(rel, blk, pg_sys::BUFFER_LOCK_SHARE);
        let p = b.page();
        check_page(rel, blk, p, PageKind::WriteStore);
        each(blk, p);
        blk = next_of(p);
    }
}

/// The blocks of a write-store segment's `pages` pages from `first_block`.
pub fn write_store_blocks(rel: pg_sys::Relation, first_block: u32, pages: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(pages as usize);
    walk_write_store(rel, first_block, pages, |blk, _| out.push(blk));
    out
}

/// The blocks of a write-store segment that compaction replaced, as far as
/// its chain still runs through write-store pages: the segment's catalog
/// row is there for old snapshots, which may still read those pages.
/// Never an ERROR: a chain that leaves the file or meets another kind of
/// page ends there.
pub fn replaced_write_store_blocks(
    rel: pg_sys::Relation,
    first_block: u32,
    pages: u32,
) -> Vec<u32> {
    let n = nblocks(rel);
    let mut out = Vec::new();
    let mut blk = first_block;
    while (out.len() as u32) < pages && blk != 0 && blk < n {
        let b = Locked::read(rel, blk, pg_sys::BUFFER_LOCK_SHARE);
        let p = b.page();
        if !Special::is(p, PageKind::WriteStore) {
            break;
        }
        out.push(blk);
        blk = next_of(p);
    }
    out
}

/// Visit the write-store rows on `pages` chained pages from `first_block`.
pub fn read_write_store(
    rel: pg_sys::Relation,
    first_block: u32,
    pages: u32,
    mut each: impl FnMut(u64, &[u8]),
) {
    walk_write_store(rel, first_block, pages, |blk, p| {
        // SAFETY: header of a locked page.
        let lower = unsafe { (*header(p)).pd_lower } as usize;
        let nitems = (lower.saturating_sub(HEADER)) / std::mem::size_of::<pg_sys::ItemIdData>();
        for off in 1..=nitems {
            // ItemIdData: lp_off:15, lp_flags:2, lp_len:15.
            let id = u32_at(p, HEADER + (off - 1) * 4);
            let (start, len) = ((id & 0x7fff) as usize, (id >> 17) as usize);
            if len < 8 || start + len > SPECIAL_OFF {
                corrupt(
                    rel,
                    format!("write-store block {blk} item {off} is out of bounds"),
                );
            }
            let item = rd(p, start, len);
            let row = u64::from_le_bytes(item[..8].try_into().expect("8"));
            each(row, &item[8..]);
        }
    });
}

/// Mark the metapage's storage as moved (see [`Meta::moved`]).
pub fn mark_moved(rel: pg_sys::Relation) {
    if nblocks(rel) == 0 {
        return;
    }
    let buf = Locked::read(rel, 0, pg_sys::BUFFER_LOCK_EXCLUSIVE);
    let mut m = decode_meta(rel, buf.page());
    m.moved = true;
    let mut rec = Record::start(rel);
    let p = rec.register(&buf, false);
    encode_meta(p, &m);
    rec.finish();
}

/// Copy every page of `from` to the empty relation `to`, WAL-logged as
/// full pages (VACUUM FULL keeps the storage, and so its catalog rows).
pub fn copy_pages(from: pg_sys::Relation, to: pg_sys::Relation) {
    let n = nblocks(from);
    for blk in 0..n {
        let src = Locked::read(from, blk, pg_sys::BUFFER_LOCK_SHARE);
        let (_, dst) = Locked::extend(to);
        // SAFETY: both pages pinned and locked; same size.
        unsafe {
            std::ptr::copy_nonoverlapping(src.page(), dst.page(), BLCKSZ);
            pg_sys::MarkBufferDirty(dst.0);
        }
    }
    // SAFETY: blocks 0..n of `to` exist; page_std: standard layout.
    if n > 0
        && unsafe { (*(*to).rd_rel).relpersistence }
            == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char
    {
        unsafe { pg_sys::log_newpage_range(to, pg_sys::ForkNumber::MAIN_FORKNUM, 0, n, true) };
    }
}
