//! The shared level: decoded data pages (the per-backend level's unit) as
//! Arrow IPC bytes in PostgreSQL's main shared memory segment, so a page
//! one backend decoded is read by every other one without decompressing
//! it. Only when omendb is preloaded: the region (`omendb.cache_size` MB)
//! is requested in shmem_request_hook and laid out in shmem_startup_hook;
//! the core (partitions, pins, clock sweep) is `omendb_cache::shared`.
//!
//! A key names content that never changes: the database, the segment
//! catalog's OID and the segment's id (never reused), the row group, the
//! page and the set of decoded columns. Consulted only after MVCC chose
//! the visible segments, so compaction, extent reuse, TRUNCATE or DROP can
//! leave unreachable entries, which the clock sweep ages out, but never a
//! wrong one. Nothing here raises an ERROR while a cache lock or pin is
//! held: the core copies bytes and returns.

use super::local::SegmentId;
use omendb_cache::shared::{Inserted, Key, SharedCache, SharedStats};
use omendb_columnar::DecodedGroup;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, Ordering};

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
    let mut bits = [0u64; 2];
    for &c in &cols {
        *bits.get_mut(c / 64)? |= 1 << (c % 64);
    }
    Some((cols, bits))
}

fn key(id: SegmentId, group: usize, page: usize, bits: [u64; 2]) -> Key {
    // SAFETY: reading a backend global.
    let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
    [
        db << 32 | id.0 as u64,
        id.1,
        (group as u64) << 32 | page as u64,
        bits[0],
        bits[1],
    ]
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

/// See [`database_dropped`]: `catalog` is this database's segment catalog.
pub(crate) fn catalog_dropped(catalog: pg_sys::Oid) {
    if let Some(c) = region() {
        // SAFETY: reading a backend global.
        let db = u32::from(unsafe { pg_sys::MyDatabaseId }) as u64;
        let key0 = db << 32 | u32::from(catalog) as u64;
        c.remove_where(|k| k[0] == key0);
    }
}
