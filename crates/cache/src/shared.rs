//! The shared level: a cache of byte strings in one fixed region of memory
//! that several processes map (PostgreSQL's main shared memory segment), so
//! every backend reads what any backend decoded.
//!
//! The region holds a header, then `partitions` partitions, each with its
//! own spinlock, entry table, hash index and blocks. A key hashes to one
//! partition and lives there only, so backends working on different keys
//! rarely meet on a lock. An entry's bytes are a chain of fixed-size blocks
//! (no fragmentation); eviction is a clock sweep over the partition's
//! entries (usage counts as in PostgreSQL's buffer pool), and entries that
//! bulk readers insert start with no usage, so a large scan replaces its
//! own entries before the point-lookup working set (the bulk-read ring's
//! aim).
//!
//! Locks are held for table work only, never while bytes are copied: a
//! reader pins the entry (a count under the lock), copies without the lock,
//! and unpins. A pinned entry is never evicted; when a partition has no
//! unpinned entry to evict, the insert is refused and the caller reads
//! uncached. Pins never outlive one call of [`SharedCache::get`] or
//! [`SharedCache::insert`], and nothing in between can fail. (A process
//! killed in between makes PostgreSQL reinitialize shared memory.)
//!
//! Everything here is plain memory and atomics: tests run it with threads
//! over a heap buffer.

use std::hint::spin_loop;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Words of a key: what names cached content exactly (the caller's layout).
pub const KEY_WORDS: usize = 5;
pub type Key = [u64; KEY_WORDS];

const MAGIC: u64 = 0x6f6d_656e_6361_6331; // "omencac1"
const FORMAT: u32 = 1;
const NONE: u32 = u32::MAX;
/// Usage count ceiling (PostgreSQL's BM_MAX_USAGE_COUNT).
const MAX_USAGE: u8 = 5;

const EMPTY: u8 = 0;
/// Blocks allocated, bytes being copied in by the inserter (which pins it).
const FILLING: u8 = 1;
const READY: u8 = 2;

#[repr(C)]
struct Header {
    magic: u64,
    format: u32,
    partitions: u32,
    block_size: u32,
    blocks: u32,
    /// Entries per partition (= blocks per partition: an entry has a block
    /// at least) and hash index slots per partition (twice that).
    entries: u32,
    index_slots: u32,
    stats: [AtomicU64; N_STATS],
}

const HITS: usize = 0;
const MISSES: usize = 1;
const INSERTS: usize = 2;
const EVICTIONS: usize = 3;
const ALL_PINNED: usize = 4;
const TOO_LARGE: usize = 5;
const N_STATS: usize = 6;

/// A partition's head: its lock, and the state only its holder touches
/// (kept apart so no `&mut` ever covers the lock word other processes
/// spin on).
#[repr(C)]
struct Partition {
    lock: AtomicU32,
    _pad: u32,
    state: PartState,
}

#[repr(C)]
struct PartState {
    hand: u32,
    free_blocks: u32,
    /// Head of the free block list (linked through `next`).
    free_head: u32,
    /// Head of the free entry list (linked through `Entry::first`).
    free_entry: u32,
    used_entries: u32,
    /// Pins held now (readers copying, inserters filling).
    pins: u32,
}

#[repr(C)]
struct Entry {
    key: Key,
    len: u64,
    first: u32,
    pins: u32,
    state: u8,
    usage: u8,
    _pad: [u8; 6],
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);
const _: () = assert!(std::mem::size_of::<Partition>() == 32);

/// Counters since the cache was made or reset, and its state now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    /// Inserts refused because every entry that could make room was pinned.
    pub all_pinned: u64,
    /// Inserts refused because the value exceeds a partition's share.
    pub too_large: u64,
    pub entries: u64,
    pub bytes_used: u64,
    pub capacity: u64,
    pub pins: u64,
}

/// What [`SharedCache::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// The key was there already (or is being filled by another process).
    Exists,
    TooLarge,
    /// No room could be made: the entries to evict are all pinned.
    AllPinned,
}

/// A handle on a cache region. Copyable: it is a pointer and the layout,
/// the same in every process that maps the region.
#[derive(Clone, Copy)]
pub struct SharedCache {
    base: *mut u8,
    partitions: usize,
    block_size: usize,
    /// Per partition.
    entries: usize,
    index_slots: usize,
    part_bytes: usize,
}

// SAFETY: all shared state is reached through atomics or under a
// partition's spinlock.
unsafe impl Send for SharedCache {}
unsafe impl Sync for SharedCache {}

fn align(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// Layout of one partition: (offset of entries, of index, of next links,
/// of data, total bytes), relative to the partition's start.
fn part_layout(entries: usize, index_slots: usize, block_size: usize) -> [usize; 5] {
    let e = align(std::mem::size_of::<Partition>());
    let i = e + align(entries * std::mem::size_of::<Entry>());
    let n = i + align(index_slots * 4);
    let d = n + align(entries * 4);
    [e, i, n, d, d + entries * block_size]
}

impl SharedCache {
    /// The partition count and blocks per partition for a region of
    /// `bytes`: up to `max_partitions`, each with 16 blocks at least.
    fn shape(bytes: usize, block_size: usize, max_partitions: usize) -> (usize, usize) {
        let header = align(std::mem::size_of::<Header>());
        let per_block = block_size + std::mem::size_of::<Entry>() + 12;
        let blocks = bytes.saturating_sub(header) / per_block;
        let partitions = (blocks / 16).clamp(1, max_partitions.max(1));
        let mut per = blocks / partitions;
        while per > 0
            && header + partitions * align(part_layout(per, 2 * per, block_size)[4]) > bytes
        {
            per -= 1;
        }
        (partitions, per)
    }

    /// Lay a new, empty cache out over `bytes` bytes at `base` (64-byte
    /// aligned, zeroed or not). Returns `None` if the region is too small
    /// for one partition of 2 blocks.
    ///
    /// # Safety
    /// `base` must be valid for `bytes` bytes, and no other handle may use
    /// the region while it is laid out.
    pub unsafe fn init(
        base: *mut u8,
        bytes: usize,
        block_size: usize,
        max_partitions: usize,
    ) -> Option<SharedCache> {
        let (partitions, per) = Self::shape(bytes, block_size, max_partitions);
        if per < 2 || base.is_null() {
            return None;
        }
        let h = base as *mut Header;
        std::ptr::write_bytes(base, 0, align(std::mem::size_of::<Header>()));
        (*h).format = FORMAT;
        (*h).partitions = partitions as u32;
        (*h).block_size = block_size as u32;
        (*h).blocks = (partitions * per) as u32;
        (*h).entries = per as u32;
        (*h).index_slots = (2 * per) as u32;
        let c = Self::from_header(base)?;
        for p in 0..partitions {
            let part = c.part(p);
            part.write(Partition {
                lock: AtomicU32::new(0),
                _pad: 0,
                state: PartState {
                    hand: 0,
                    free_blocks: per as u32,
                    free_head: 0,
                    free_entry: 0,
                    used_entries: 0,
                    pins: 0,
                },
            });
            for i in 0..per {
                let e = c.entry(p, i as u32);
                e.write(Entry {
                    key: [0; KEY_WORDS],
                    len: 0,
                    first: if i + 1 < per { i as u32 + 1 } else { NONE },
                    pins: 0,
                    state: EMPTY,
                    usage: 0,
                    _pad: [0; 6],
                });
                *c.next(p, i as u32) = if i + 1 < per { i as u32 + 1 } else { NONE };
            }
            for s in 0..c.index_slots {
                *c.index(p, s) = NONE;
            }
        }
        // Published last: a handle attached before this point would refuse.
        std::ptr::write_volatile(addr_of_mut!((*h).magic), MAGIC);
        Some(c)
    }

    /// A handle on a region laid out by [`SharedCache::init`] (in this
    /// process or another). `None` if it is not one.
    ///
    /// # Safety
    /// `base` must be the start of a region laid out by `init` that stays
    /// mapped while the handle is used.
    pub unsafe fn attach(base: *mut u8) -> Option<SharedCache> {
        if base.is_null() {
            return None;
        }
        let h = base as *const Header;
        if std::ptr::read_volatile(&(*h).magic) != MAGIC || (*h).format != FORMAT {
            return None;
        }
        Self::from_header(base)
    }

    unsafe fn from_header(base: *mut u8) -> Option<SharedCache> {
        let h = &*(base as *const Header);
        let (entries, index_slots, block_size) = (
            h.entries as usize,
            h.index_slots as usize,
            h.block_size as usize,
        );
        let [.., total] = part_layout(entries, index_slots, block_size);
        Some(SharedCache {
            base,
            partitions: h.partitions as usize,
            block_size,
            entries,
            index_slots,
            part_bytes: align(total),
        })
    }

    /// Bytes a region needs for `data_bytes` of cached data in blocks of
    /// `block_size` (what to request from PostgreSQL).
    pub fn region_bytes(data_bytes: usize, block_size: usize, max_partitions: usize) -> usize {
        let blocks = data_bytes.div_ceil(block_size).max(2);
        let partitions = (blocks / 16).clamp(1, max_partitions.max(1));
        let per = blocks.div_ceil(partitions);
        let [.., total] = part_layout(per, 2 * per, block_size);
        align(std::mem::size_of::<Header>()) + partitions * align(total)
    }

    fn header(&self) -> &Header {
        // SAFETY: base points at a laid-out header (init/attach).
        unsafe { &*(self.base as *const Header) }
    }

    fn part_base(&self, p: usize) -> *mut u8 {
        // SAFETY: p < partitions; the region holds them all.
        unsafe {
            self.base
                .add(align(std::mem::size_of::<Header>()) + p * self.part_bytes)
        }
    }

    fn layout(&self) -> [usize; 5] {
        part_layout(self.entries, self.index_slots, self.block_size)
    }

    fn part(&self, p: usize) -> *mut Partition {
        self.part_base(p) as *mut Partition
    }

    fn entry(&self, p: usize, i: u32) -> *mut Entry {
        // SAFETY: i < entries.
        unsafe { (self.part_base(p).add(self.layout()[0]) as *mut Entry).add(i as usize) }
    }

    fn index(&self, p: usize, s: usize) -> *mut u32 {
        // SAFETY: s < index_slots.
        unsafe { (self.part_base(p).add(self.layout()[1]) as *mut u32).add(s) }
    }

    fn next(&self, p: usize, b: u32) -> *mut u32 {
        // SAFETY: b < entries (blocks per partition).
        unsafe { (self.part_base(p).add(self.layout()[2]) as *mut u32).add(b as usize) }
    }

    fn block(&self, p: usize, b: u32) -> *mut u8 {
        // SAFETY: b < blocks per partition.
        unsafe {
            self.part_base(p)
                .add(self.layout()[3] + b as usize * self.block_size)
        }
    }

    fn stat(&self, i: usize) {
        self.header().stats[i].fetch_add(1, Ordering::Relaxed);
    }

    fn hash(key: &Key) -> u64 {
        // FNV-1a over the words, then a final mix.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for w in key {
            h ^= *w;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 29;
        h.wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }

    fn locked<R>(&self, p: usize, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        // SAFETY: the partition header is in the region.
        let lock = unsafe { &(*self.part(p)).lock };
        let mut spins = 0u32;
        while lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                spin_loop();
            }
        }
        let r = f(&mut Locked { c: self, p });
        lock.store(0, Ordering::Release);
        r
    }

    /// Bytes the cache holds when full.
    pub fn capacity(&self) -> usize {
        self.partitions * self.entries * self.block_size
    }

    /// Bytes a partition can hold; larger values are refused.
    pub fn max_value(&self) -> usize {
        // An entry may take a quarter of its partition, so one large value
        // never empties a partition of everything else.
        (self.entries / 4).max(1) * self.block_size
    }

    /// Pin the entry of `key` if it is ready: (partition, entry, first
    /// block, length). Counted as a hit or a miss.
    fn pin(&self, key: &Key) -> Option<(usize, u32, u32, usize)> {
        let h = Self::hash(key);
        let p = (h % self.partitions as u64) as usize;
        let found = self.locked(p, |l| {
            let i = l.find(key, h)?;
            let e = l.entry(i);
            if e.state != READY {
                return None;
            }
            e.pins += 1;
            e.usage = (e.usage + 1).min(MAX_USAGE);
            let got = (p, i, e.first, e.len as usize);
            l.part().pins += 1;
            Some(got)
        });
        self.stat(if found.is_some() { HITS } else { MISSES });
        found
    }

    fn unpin(&self, p: usize, i: u32) {
        self.locked(p, |l| {
            l.entry(i).pins -= 1;
            l.part().pins -= 1;
        });
    }

    /// Whether a value of `len` bytes is too large to keep (counted as
    /// such), so a caller can skip encoding it.
    pub fn too_large(&self, len: usize) -> bool {
        let too = len > self.max_value();
        if too {
            self.stat(TOO_LARGE);
        }
        too
    }

    /// Copy the value of `key` into `out` (replacing its contents).
    /// Returns false on a miss.
    pub fn get(&self, key: &Key, out: &mut Vec<u8>) -> bool {
        let Some((p, i, first, len)) = self.pin(key) else {
            return false;
        };
        out.clear();
        out.reserve(len);
        // The pin keeps the chain from being freed or reused: read it
        // without the lock.
        let mut b = first;
        while out.len() < len {
            let n = (len - out.len()).min(self.block_size);
            // SAFETY: b is a block of this pinned entry.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(self.block(p, b), n) });
            b = unsafe { *self.next(p, b) };
        }
        self.unpin(p, i);
        true
    }

    /// Keep `value` under `key`. `bulk`: inserted by a reader of many
    /// values (a scan), evicted before entries that were used.
    pub fn insert(&self, key: &Key, value: &[u8], bulk: bool) -> Inserted {
        self.insert_parts(key, &[value], bulk)
    }

    /// [`SharedCache::insert`] of the concatenation of `parts`, copied
    /// straight from each (a value need not be assembled first).
    pub fn insert_parts(&self, key: &Key, parts: &[&[u8]], bulk: bool) -> Inserted {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.too_large(len) {
            return Inserted::TooLarge;
        }
        let need = len.div_ceil(self.block_size).max(1) as u32;
        let h = Self::hash(key);
        let p = (h % self.partitions as u64) as usize;
        let got = self.locked(p, |l| {
            if l.find(key, h).is_some() {
                return Err(Inserted::Exists);
            }
            if !l.make_room(need) {
                return Err(Inserted::AllPinned);
            }
            Ok(l.add(key, h, len as u64, need, !bulk))
        });
        let (i, first) = match got {
            Ok(x) => x,
            Err(why) => {
                if why == Inserted::AllPinned {
                    self.stat(ALL_PINNED);
                }
                return why;
            }
        };
        // Fill the chain block by block, each part where the last ended.
        let (mut b, mut at) = (first, 0);
        for part in parts {
            let mut rest = *part;
            while !rest.is_empty() {
                if at == self.block_size {
                    // SAFETY: b is a block of the entry we are filling
                    // (pinned); the chain has room for `len` bytes.
                    b = unsafe { *self.next(p, b) };
                    at = 0;
                }
                let n = rest.len().min(self.block_size - at);
                // SAFETY: as above; `at + n` is within the block.
                unsafe {
                    std::ptr::copy_nonoverlapping(rest.as_ptr(), self.block(p, b).add(at), n);
                }
                at += n;
                rest = &rest[n..];
            }
        }
        self.locked(p, |l| {
            let e = l.entry(i);
            e.state = READY;
            e.pins -= 1;
            l.part().pins -= 1;
        });
        self.stat(INSERTS);
        Inserted::Yes
    }

    /// Drop every unpinned entry whose key `drop` selects (all of them for
    /// a reset); returns how many were dropped.
    pub fn remove_where(&self, mut drop: impl FnMut(&Key) -> bool) -> u64 {
        let mut n = 0;
        for p in 0..self.partitions {
            self.locked(p, |l| {
                for i in 0..l.c.entries as u32 {
                    let e = l.entry(i);
                    if e.state == READY && e.pins == 0 && drop(&e.key) {
                        let key = e.key;
                        l.remove(i, &key);
                        n += 1;
                    }
                }
            });
        }
        n
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        for s in &self.header().stats {
            s.store(0, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> SharedStats {
        let h = self.header();
        let get = |i: usize| h.stats[i].load(Ordering::Relaxed);
        let mut s = SharedStats {
            hits: get(HITS),
            misses: get(MISSES),
            inserts: get(INSERTS),
            evictions: get(EVICTIONS),
            all_pinned: get(ALL_PINNED),
            too_large: get(TOO_LARGE),
            capacity: self.capacity() as u64,
            ..Default::default()
        };
        for p in 0..self.partitions {
            // Counters only: the lock is held for a few loads.
            self.locked(p, |l| {
                let part = l.part();
                s.entries += part.used_entries as u64;
                s.bytes_used +=
                    (self.entries as u64 - part.free_blocks as u64) * self.block_size as u64;
                s.pins += part.pins as u64;
            });
        }
        s
    }
}

/// A partition under its lock.
struct Locked<'a> {
    c: &'a SharedCache,
    p: usize,
}

impl Locked<'_> {
    fn part(&mut self) -> &mut PartState {
        // SAFETY: we hold the partition's lock, which guards `state` (and
        // the reference does not cover the lock word).
        unsafe { &mut *addr_of_mut!((*self.c.part(self.p)).state) }
    }

    fn entry(&mut self, i: u32) -> &mut Entry {
        // SAFETY: as above; i < entries.
        unsafe { &mut *self.c.entry(self.p, i) }
    }

    fn slot(&self, s: usize) -> u32 {
        // SAFETY: as above.
        unsafe { *self.c.index(self.p, s) }
    }

    fn set_slot(&mut self, s: usize, v: u32) {
        // SAFETY: as above.
        unsafe { *self.c.index(self.p, s) = v }
    }

    fn home(&self, h: u64) -> usize {
        ((h / self.c.partitions as u64) % self.c.index_slots as u64) as usize
    }

    /// The entry of `key` (any state), by linear probing.
    fn find(&mut self, key: &Key, h: u64) -> Option<u32> {
        let mut s = self.home(h);
        loop {
            let i = self.slot(s);
            if i == NONE {
                return None;
            }
            if self.entry(i).key == *key {
                return Some(i);
            }
            s = (s + 1) % self.c.index_slots;
        }
    }

    /// Evict unpinned entries by clock sweep until `need` blocks are free.
    /// False if a sweep found nothing evictable.
    fn make_room(&mut self, need: u32) -> bool {
        let n = self.c.entries as u32;
        let mut idle = 0u32;
        while self.part().free_blocks < need || self.part().free_entry == NONE {
            // Two passes without an eviction or a decrement: all pinned.
            if idle > 2 * n {
                return false;
            }
            let hand = self.part().hand;
            self.part().hand = (hand + 1) % n;
            let e = self.entry(hand);
            if e.state != READY || e.pins > 0 {
                idle += 1;
                continue;
            }
            if e.usage > 0 {
                e.usage -= 1;
                idle = 0;
                continue;
            }
            let key = e.key;
            self.remove(hand, &key);
            self.c.stat(EVICTIONS);
            idle = 0;
        }
        true
    }

    /// Add an entry (pinned, filling) with a chain of `need` free blocks.
    fn add(&mut self, key: &Key, h: u64, len: u64, need: u32, used: bool) -> (u32, u32) {
        let i = self.part().free_entry;
        let next_free = self.entry(i).first;
        self.part().free_entry = next_free;
        let first = self.part().free_head;
        let mut last = first;
        for _ in 1..need {
            // SAFETY: under the lock; the free list holds `free_blocks` blocks.
            last = unsafe { *self.c.next(self.p, last) };
        }
        // SAFETY: as above.
        unsafe {
            self.part().free_head = *self.c.next(self.p, last);
            *self.c.next(self.p, last) = NONE;
        }
        self.part().free_blocks -= need;
        self.part().used_entries += 1;
        self.part().pins += 1;
        *self.entry(i) = Entry {
            key: *key,
            len,
            first,
            pins: 1,
            state: FILLING,
            usage: used as u8,
            _pad: [0; 6],
        };
        let mut s = self.home(h);
        while self.slot(s) != NONE {
            s = (s + 1) % self.c.index_slots;
        }
        self.set_slot(s, i);
        (i, first)
    }

    /// Free entry `i` (unpinned) and its blocks; unlink it from the index.
    fn remove(&mut self, i: u32, key: &Key) {
        let h = SharedCache::hash(key);
        let mut s = self.home(h);
        while self.slot(s) != i {
            s = (s + 1) % self.c.index_slots;
        }
        // Backward-shift deletion keeps probe chains without tombstones.
        let m = self.c.index_slots;
        let mut hole = s;
        let mut j = (s + 1) % m;
        loop {
            let k = self.slot(j);
            if k == NONE {
                break;
            }
            let kh = SharedCache::hash(&self.entry(k).key);
            let home = self.home(kh);
            // Move k into the hole if its home is not in (hole, j].
            let between = if hole <= j {
                home > hole && home <= j
            } else {
                home > hole || home <= j
            };
            if !between {
                self.set_slot(hole, k);
                hole = j;
            }
            j = (j + 1) % m;
        }
        self.set_slot(hole, NONE);
        let (first, len) = {
            let e = self.entry(i);
            (e.first, e.len)
        };
        let blocks = (len as usize).div_ceil(self.c.block_size).max(1) as u32;
        let mut last = first;
        for _ in 1..blocks {
            // SAFETY: under the lock; the chain has `blocks` blocks.
            last = unsafe { *self.c.next(self.p, last) };
        }
        // SAFETY: as above.
        unsafe { *self.c.next(self.p, last) = self.part().free_head };
        self.part().free_head = first;
        self.part().free_blocks += blocks;
        self.part().used_entries -= 1;
        let free = self.part().free_entry;
        let e = self.entry(i);
        e.state = EMPTY;
        e.key = [0; KEY_WORDS];
        e.first = free;
        self.part().free_entry = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A heap region standing in for shared memory (64-byte aligned).
    struct Region(Vec<[u64; 8]>);

    impl Region {
        fn new(bytes: usize) -> Region {
            Region(vec![[0u64; 8]; bytes.div_ceil(64)])
        }
        fn cache(&mut self, block: usize, partitions: usize) -> SharedCache {
            let bytes = self.0.len() * 64;
            // SAFETY: the region is ours and outlives the handle in each test.
            unsafe { SharedCache::init(self.0.as_mut_ptr() as *mut u8, bytes, block, partitions) }
                .expect("region large enough")
        }
    }

    fn key(n: u64) -> Key {
        [n, n ^ 0x55, 0, 0, 7]
    }

    /// A value whose bytes say which key and version wrote them.
    fn value(n: u64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
    }

    /// Blocks free + blocks of entries = blocks, per partition; entries in
    /// the index = entries in use; no pins.
    fn check_accounting(c: &SharedCache) {
        for p in 0..c.partitions {
            c.locked(p, |l| {
                let mut blocks = l.part().free_blocks as usize;
                let mut used = 0;
                for i in 0..l.c.entries as u32 {
                    let bs = l.c.block_size;
                    let e = l.entry(i);
                    if e.state != EMPTY {
                        assert_eq!(e.pins, 0, "pin left behind");
                        blocks += (e.len as usize).div_ceil(bs).max(1);
                        used += 1;
                        let k = e.key;
                        assert_eq!(l.find(&k, SharedCache::hash(&k)), Some(i));
                    }
                }
                let indexed = (0..l.c.index_slots).filter(|&s| l.slot(s) != NONE).count();
                assert_eq!(blocks, l.c.entries, "partition {p}: blocks lost or doubled");
                assert_eq!(used, l.part().used_entries as usize);
                assert_eq!(l.part().pins, 0, "pin count left behind");
                assert_eq!(indexed, used);
            });
        }
    }

    #[test]
    fn values_round_trip_across_blocks() {
        let mut r = Region::new(1 << 20);
        let c = r.cache(4096, 4);
        let mut out = Vec::new();
        for (n, len) in [(1, 0), (2, 1), (3, 4096), (4, 4097), (5, 20_000)] {
            assert!(!c.get(&key(n), &mut out));
            assert_eq!(c.insert(&key(n), &value(n, len), false), Inserted::Yes);
            assert_eq!(c.insert(&key(n), &value(9, len), false), Inserted::Exists);
        }
        for (n, len) in [(1, 0), (2, 1), (3, 4096), (4, 4097), (5, 20_000)] {
            assert!(c.get(&key(n), &mut out));
            assert_eq!(out, value(n, len), "key {n}");
        }
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.entries), (5, 5, 5, 5));
        assert_eq!(s.bytes_used, (1 + 1 + 1 + 2 + 5) * 4096);
        assert!(c.insert(&key(6), &vec![0; c.max_value() + 1], false) == Inserted::TooLarge);
        // Another handle on the region (another process) sees the same.
        let d = unsafe { SharedCache::attach(r.0.as_mut_ptr() as *mut u8) }.unwrap();
        assert!(d.get(&key(5), &mut out) && out == value(5, 20_000));
        check_accounting(&c);
        assert_eq!(c.remove_where(|k| k[0] % 2 == 1), 3);
        assert!(!c.get(&key(3), &mut out) && c.get(&key(4), &mut out));
        check_accounting(&c);
    }

    /// A value inserted in parts reads back as their concatenation,
    /// whatever the parts' sizes against the blocks'.
    #[test]
    fn parts_are_gathered_across_blocks() {
        let mut r = Region::new(1 << 20);
        let c = r.cache(4096, 4);
        let whole = value(7, 30_000);
        let mut out = Vec::new();
        for (n, cuts) in [
            (1, vec![]),
            (2, vec![0, 0]),
            (3, vec![1, 4095, 4096, 8192]),
            (4, vec![5000, 5001, 29_999]),
        ] {
            let mut parts: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for &cut in &cuts {
                parts.push(&whole[from..cut]);
                from = cut;
            }
            parts.push(&whole[from..]);
            assert_eq!(c.insert_parts(&key(n), &parts, true), Inserted::Yes);
            assert!(c.get(&key(n), &mut out));
            assert_eq!(out, whole, "cuts {cuts:?}");
        }
        assert_eq!(c.insert_parts(&key(9), &[], true), Inserted::Yes);
        assert!(c.get(&key(9), &mut out) && out.is_empty());
        check_accounting(&c);
    }

    #[test]
    fn attach_refuses_what_is_not_a_cache() {
        let mut r = Region::new(4096);
        assert!(unsafe { SharedCache::attach(r.0.as_mut_ptr() as *mut u8) }.is_none());
        // Too small for two blocks.
        let mut t = Region::new(1024);
        let p = t.0.as_mut_ptr() as *mut u8;
        assert!(unsafe { SharedCache::init(p, 1024, 4096, 1) }.is_none());
    }

    /// Clock sweep: entries used since they were inserted outlive unused
    /// ones, and bulk inserts (a scan's) go first.
    #[test]
    fn eviction_prefers_unused_and_bulk_entries() {
        let mut r = Region::new(SharedCache::region_bytes(64 * 1024, 1024, 1));
        let c = r.cache(1024, 1);
        let n = c.entries as u64;
        let mut out = Vec::new();
        // Half looked up (the working set), half inserted by a scan.
        for k in 0..n {
            assert_eq!(
                c.insert(&key(k), &value(k, 1000), k % 2 == 1),
                Inserted::Yes
            );
        }
        for k in (0..n).step_by(2) {
            assert!(c.get(&key(k), &mut out));
        }
        // A scan's worth of new entries replaces the scan's old ones first.
        for k in n..n + n / 2 {
            assert_eq!(c.insert(&key(k), &value(k, 1000), true), Inserted::Yes);
        }
        for k in (0..n).step_by(2) {
            assert!(c.get(&key(k), &mut out), "working-set key {k} evicted");
            assert_eq!(out, value(k, 1000));
        }
        assert_eq!(c.stats().evictions, n / 2);
        check_accounting(&c);
    }

    #[test]
    fn pinned_entries_are_never_evicted_and_full_of_pins_refuses() {
        let mut r = Region::new(SharedCache::region_bytes(32 * 1024, 1024, 1));
        let c = r.cache(1024, 1);
        let n = c.entries as u64;
        for k in 0..n {
            assert_eq!(c.insert(&key(k), &value(k, 1000), false), Inserted::Yes);
        }
        // Pin all but one: inserts evict that one, then refuse.
        let pins: Vec<_> = (1..n).map(|k| c.pin(&key(k)).expect("present")).collect();
        assert_eq!(c.insert(&key(n), &value(n, 1000), false), Inserted::Yes);
        let mut out = Vec::new();
        assert!(!c.get(&key(0), &mut out), "the unpinned entry was evicted");
        let p = c.pin(&key(n)).unwrap();
        assert_eq!(
            c.insert(&key(n + 1), &value(n, 10), false),
            Inserted::AllPinned
        );
        let s = c.stats();
        assert_eq!((s.all_pinned, s.pins), (1, n));
        for &(p, i, ..) in &pins {
            c.unpin(p, i);
        }
        c.unpin(p.0, p.1);
        for k in 1..=n {
            assert!(
                c.get(&key(k), &mut out) && out == value(k, 1000),
                "pinned key {k} lost"
            );
        }
        assert_eq!(c.insert(&key(n + 1), &value(n, 10), false), Inserted::Yes);
        check_accounting(&c);
    }

    /// Threads insert, read and remove keys of several sizes over a cache
    /// much smaller than the data: every hit returns the bytes its key was
    /// written with, and the block and entry accounting stays exact.
    #[test]
    fn concurrent_readers_and_writers_keep_exact_accounting() {
        let mut r = Region::new(SharedCache::region_bytes(256 * 1024, 1024, 4));
        let c = r.cache(1024, 4);
        let hits = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let hits = hits.clone();
                std::thread::spawn(move || {
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let mut out = Vec::new();
                    for _ in 0..20_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = x % 600;
                        let len = (k as usize * 37) % 5000;
                        if c.get(&key(k), &mut out) {
                            assert_eq!(out, value(k, len), "key {k}: wrong bytes");
                            hits.fetch_add(1, Ordering::Relaxed);
                        } else {
                            c.insert(&key(k), &value(k, len), x % 3 == 0);
                        }
                        if x % 997 == 0 {
                            c.remove_where(|key| key[0] == k);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = c.stats();
        assert!(hits.load(Ordering::Relaxed) > 0 && s.evictions > 0, "{s:?}");
        assert_eq!(s.hits, hits.load(Ordering::Relaxed));
        assert_eq!(s.pins, 0);
        check_accounting(&c);
    }
}
