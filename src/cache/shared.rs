//! The shared level, in PostgreSQL's main shared memory segment, so what
//! one backend decoded is read by every other one without decompressing
//! it. Two kinds of entries: the decoded data pages index fetches read (the
//! per-backend level's unit, as Arrow IPC bytes), and the parts of whole
//! row groups scans read — each decoded column by itself, so scans of
//! different columns share them — written and read by both scans, the
//! table AM's (main thread) and DataFusion's (its threads: the core calls
//! nothing in PostgreSQL). Scans insert as bulk reads, evicted first.
//! Only when omendb is preloaded: the region (`omendb.cache_size` MB) is
//! requested in shmem_request_hook and laid out in shmem_startup_hook; the
//! core (partitions, pins, clock sweep) is `omendb_cache::shared`.
//!
//! A key names content that never changes: the database, the segment
//! catalog's OID and the segment's id (never reused), the row group, the
//! page (or the whole group) and the set of decoded columns. Consulted
//! only after MVCC chose the visible segments, so compaction, extent
//! reuse, TRUNCATE or DROP can leave unreachable entries, which the clock
//! sweep ages out, but never a wrong one. Nothing here raises an ERROR
//! while a cache lock or pin is held: the core copies bytes and returns.

use super::local::SegmentId;
use omendb_cache::shared::{Inserted, Key, SharedCache, SharedStats};
use omendb_columnar::{DecodedGroup, Part, PartCache, SegmentReader, SegmentSource};
use pgrx::pg_sys;
use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

const NAME: &std::ffi::CStr = c"omendb cache";
/// Bytes per block of the region: entries are chains of blocks.
const BLOCK: usize = 8192;
const PARTITIONS: usize = 16;

static REGION: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

fn data_bytes() -> usize {
    super::CACHE_SIZE.get().max(0) as usize * 1024 * 1024
}

/// Bytes to ask PostgreSQL for (0: the shared level is off).
fn region_bytes() -> usize {
    match data_bytes() {
        0 => 0,
        // 64 for aligning the start.
        n => SharedCache::region_bytes(n, BLOCK, PARTITIONS) + 64,
    }
}

/// In shmem_request_hook.
pub(crate) fn request() {
    let n = region_bytes();
    if n > 0 {
        // SAFETY: requests are allowed in shmem_request_hook.
        unsafe { pg_sys::RequestAddinShmemSpace(n) };
    }
}

/// In shmem_startup_hook: find the region, or lay it out (postmaster start,
/// crash restart).
pub(crate) fn attach() {
    let n = region_bytes();
    if n == 0 {
        return;
    }
    let (_, base) = crate::pg::shmem::init_struct(NAME, n, |p, found| {
        let base = p.wrapping_add((64 - (p as usize & 63)) & 63);
        // SAFETY: the region is n bytes, ours to lay out under the init
        // lock; no handle uses it yet.
        if !found && unsafe { SharedCache::init(base, n - 64, BLOCK, PARTITIONS) }.is_none() {
            pgrx::warning!(
                "omendb: the shared cache of {n} bytes could not be laid out; it is off"
            );
        }
        base
    });
    REGION.store(base, Ordering::Release);
}

/// The cache, if omendb was preloaded with a shared cache.
fn region() -> Option<SharedCache> {
    // SAFETY: REGION is null or the start of the region laid out at
    // startup, mapped in every backend for its lifetime.
    unsafe { SharedCache::attach(REGION.load(Ordering::Acquire)) }
}

/// The cache if it exists and `omendb.enable_cache` is on.
fn cache() -> Option<SharedCache> {
    if !super::ENABLE_CACHE.get() {
        return None;
    }
    region()
}

pub fn enabled(id: Option<SegmentId>) -> bool {
    id.is_some() && cache().is_some()
}

/// The decoded columns, ascending and once each, and as a bit set (a page
/// decoded in more than 128 columns is not shared).
fn canonical(columns: &[usize]) -> Option<(Vec<usize>, [u64; 2])> {
    let mut cols = columns.to_vec();
    cols.sort_unstable();
    cols.dedup();
    let bits = column_bits(&cols)?;
    Some((cols, bits))
}

/// `columns` as a bit set; None past the 128th column.
fn column_bits(columns: &[usize]) -> Option<[u64; 2]> {
    let mut bits = [0u64; 2];
    for &c in columns {
        *bits.get_mut(c / 64)? |= 1 << (c % 64);
    }
    Some(bits)
}

/// The one key layout: database and segment catalog, segment id, row group
/// and page, decoded columns.
fn key_in(db: u64, id: SegmentId, group: usize, page: u64, bits: [u64; 2]) -> Key {
    [
        db << 32 | id.0 as u64,
        id.1,
        (group as u64) << 32 | page,
        bits[0],
        bits[1],
    ]
}

/// A fetch page's key in this backend's database (main thread).
fn key(id: SegmentId, group: usize, page: usize, bits: [u64; 2]) -> Key {
    // SAFETY: reading a backend global.
    let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
    key_in(db, id, group, page as u64, bits)
}

thread_local! {
    /// Bytes copied out of the cache, reused across lookups.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Page `page` of row group `group` of segment `id` in `columns`, if some
/// backend kept it; `decode` turns the kept bytes back into rows (the
/// segment's reader knows how each column is stored). Bytes that do not
/// decode are treated as a miss.
pub fn page(
    id: Option<SegmentId>,
    group: usize,
    page: usize,
    columns: &[usize],
    decode: impl FnOnce(&[u8], &[usize]) -> Option<DecodedGroup>,
) -> Option<DecodedGroup> {
    let (c, id) = (cache()?, id?);
    let (cols, bits) = canonical(columns)?;
    let k = key(id, group, page, bits);
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        if !c.get(&k, &mut b) {
            return None;
        }
        decode(&b, &cols)
    })
}

/// Offer a decoded page to the other backends. `bulk`: read by a scan.
pub fn keep_page(
    id: Option<SegmentId>,
    group: usize,
    page: usize,
    columns: &[usize],
    rows: &DecodedGroup,
    bulk: bool,
) {
    let (Some(c), Some(id)) = (cache(), id) else {
        return;
    };
    let Some((cols, bits)) = canonical(columns) else {
        return;
    };
    if c.too_large(rows.memory_size()) {
        return;
    }
    if let Ok(bytes) = rows.to_bytes(&cols) {
        let _: Inserted = c.insert(&key(id, group, page, bits), &bytes, bulk);
    }
}

/// Row-group parts (a decoded column; a gapped group's row numbers) are
/// keyed with this in the page's place: pages of a fetch are numbered from 0.
const WHOLE_GROUP: u64 = u32::MAX as u64;

/// The shared cache as scans use it: row-group parts, one column each, so
/// scans of different columns share them. Taken on the main thread (it
/// reads the session's setting and database), then usable from DataFusion's
/// threads too: the core is plain Rust over the region and calls nothing in
/// PostgreSQL. Scans insert as bulk reads, which the clock sweep evicts
/// first, so a large scan does not flush what point lookups use. One value
/// per scan: it holds the scan's insert budget.
#[derive(Clone)]
pub struct ScanCache {
    cache: SharedCache,
    db: u64,
    /// Bytes the scan may still offer: half the cache. A scan of more than
    /// the cache holds would pay for inserting all it reads and evict its
    /// own entries before reading them again (PostgreSQL's bulk-read ring
    /// exists for the same reason); past its budget a scan still reads
    /// what the cache has but offers nothing.
    budget: Arc<AtomicUsize>,
}

/// DataFusion threads inside the cache now, and whether the backend is
/// exiting (see [`quiesce`]).
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called as the backend exits: a DataFusion thread still copying an entry
/// would leave it pinned for good once the process is gone, so wait for
/// every thread to leave the cache and let none enter again. Each stay is
/// one copy of at most a quarter of a partition.
pub(crate) fn quiesce() {
    CLOSING.store(true, Ordering::SeqCst);
    while IN_USE.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// Run `f` inside the cache unless the backend is exiting.
fn inside<R>(f: impl FnOnce() -> R) -> Option<R> {
    /// Leaves on unwinding too, so an exit never waits for a thread that
    /// panicked in the cache.
    struct Stay;
    impl Drop for Stay {
        fn drop(&mut self) {
            IN_USE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    IN_USE.fetch_add(1, Ordering::SeqCst);
    let _stay = Stay;
    (!CLOSING.load(Ordering::SeqCst)).then(f)
}

/// The cache for scans of this session, if there is one and
/// `omendb.enable_cache` is on. Main thread.
pub fn scan_cache() -> Option<ScanCache> {
    // SAFETY: reading a backend global.
    let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
    cache().map(|cache| ScanCache {
        cache,
        db,
        budget: Arc::new(AtomicUsize::new(cache.capacity() / 2)),
    })
}

impl ScanCache {
    /// The parts of row group `group` of segment `id`.
    fn group(&self, id: SegmentId, group: usize) -> GroupParts<'_> {
        GroupParts {
            cache: self,
            id,
            group,
            lookups: 0,
        }
    }
}

/// Parts of row groups read from the cache and not found there.
#[derive(Clone, Copy, Default)]
pub struct PartCounts {
    pub hits: usize,
    pub misses: usize,
}

/// Decode `columns` of row group `group` of a segment (id `id`: None, a
/// segment written before ids, is read uncached), through `cache` if given.
/// Both scans use it: the table AM's on the main thread, DataFusion's on
/// its threads (nothing here calls PostgreSQL).
pub fn read_group(
    cache: Option<&ScanCache>,
    id: Option<SegmentId>,
    reader: &SegmentReader,
    src: &dyn SegmentSource,
    group: usize,
    columns: &[usize],
    counts: &mut PartCounts,
) -> omendb_columnar::Result<DecodedGroup> {
    let (Some(cache), Some(id)) = (cache, id) else {
        return reader.read_group(src, group, columns);
    };
    let mut parts = cache.group(id, group);
    let (rows, hits) = reader.read_group_through(src, group, columns, &mut parts)?;
    counts.hits += hits;
    // Found but unreadable bytes count as misses too.
    counts.misses += parts.lookups.saturating_sub(hits);
    Ok(rows)
}

/// One row group's parts in the shared cache ([`omendb_columnar::PartCache`]).
pub struct GroupParts<'a> {
    cache: &'a ScanCache,
    id: SegmentId,
    group: usize,
    /// Parts asked for.
    lookups: usize,
}

impl GroupParts<'_> {
    fn key(&self, part: Part) -> Option<Key> {
        let bits = match part {
            Part::RowNumbers => [0, 0],
            Part::Column(c) => column_bits(&[c])?,
        };
        let db = self.cache.db;
        Some(key_in(db, self.id, self.group, WHOLE_GROUP, bits))
    }
}

impl PartCache for GroupParts<'_> {
    fn get(&mut self, part: Part, out: &mut Vec<u8>) -> bool {
        let c = self.cache.cache;
        self.lookups += 1;
        self.key(part)
            .and_then(|k| inside(|| c.get(&k, out)))
            .unwrap_or(false)
    }

    fn accepts(&self, bytes: usize) -> bool {
        let c = self.cache.cache;
        self.cache.budget.load(Ordering::Relaxed) >= bytes
            && inside(|| !c.too_large(bytes)).unwrap_or(false)
    }

    fn put(&mut self, part: Part, bytes: &[&[u8]]) {
        let c = self.cache.cache;
        let len: usize = bytes.iter().map(|b| <[u8]>::len(b)).sum();
        let spent = self
            .cache
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(len));
        if let (Ok(_), Some(k)) = (spent, self.key(part)) {
            inside(|| c.insert_parts(&k, bytes, true));
        }
    }
}

/// Counters and state; None without a shared cache (not preloaded, or
/// `omendb.cache_size = 0`).
pub fn stats() -> Option<SharedStats> {
    region().map(|c| c.stats())
}

/// Drop every unpinned entry and zero the counters.
pub fn reset() -> bool {
    let Some(c) = region() else {
        return false;
    };
    c.remove_where(|_| true);
    c.reset_stats();
    true
}

/// DROP DATABASE, or DROP of the segment catalog (DROP EXTENSION), from
/// the object_access hook: release their entries. Not needed for
/// correctness while OIDs are not reused, but a later database or catalog
/// given the same OID (CREATE DATABASE … OID, OID wraparound) would
/// otherwise meet them. Nothing is pinned there: DROP DATABASE waits for
/// the database's backends to leave, and a catalog goes with its tables.
pub(crate) fn database_dropped(db: pg_sys::Oid) {
    if let Some(c) = region() {
        let db = u32::from(db) as u64;
        c.remove_where(|k| k[0] >> 32 == db);
    }
}

/// DROP TABLE or TRUNCATE of an omen_columnar table: release the entries
/// of its segments `ids` (of this database). Done when the catalog rows are
/// deleted, before commit: releasing is always safe (a rolled-back DROP
/// decodes its segments again), and a dropped table's entries would
/// otherwise hold the cache until evicted. Pinned entries (a scan of the
/// table in another transaction, finishing under its snapshot) stay.
pub(crate) fn segments_dropped(ids: &[SegmentId]) {
    let Some(c) = region() else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    // SAFETY: reading a backend global.
    let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
    let mut keys: Vec<(u64, u64)> = ids
        .iter()
        .map(|id| (db << 32 | id.0 as u64, id.1))
        .collect();
    keys.sort_unstable();
    // Under the partition locks: a lookup, nothing that can raise an ERROR.
    c.remove_where(|k| keys.binary_search(&(k[0], k[1])).is_ok());
}

/// See [`database_dropped`]: `catalog` is this database's segment catalog.
pub(crate) fn catalog_dropped(catalog: pg_sys::Oid) {
    if let Some(c) = region() {
        // SAFETY: reading a backend global.
        let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
        let key0 = db << 32 | u32::from(catalog) as u64;
        c.remove_where(|k| k[0] == key0);
    }
}
