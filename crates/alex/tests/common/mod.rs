//! A thread-safe in-memory `PageStore` with PostgreSQL's buffer + GenericXLog semantics:
//! `read` holds one page's read lock for the callback only; a write group takes page write
//! locks in registration order, keeps them to the end, edits copies registered at first
//! touch, and installs all of them (or none, on `Err`) before releasing any lock. Pages
//! allocated by an aborted group stay as zero pages, as a relation extension would.
//! Lock waits time out with a panic, so a lock-order deadlock fails the test instead of
//! hanging it.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alex::page::{Page, PAGE_SIZE};
use alex::{Error, PageStore, Result, WriteGroup, GROUP_LIMIT};
use parking_lot::lock_api::ArcRwLockWriteGuard;
use parking_lot::{RawRwLock, RwLock};

const DEADLOCK: Duration = Duration::from_secs(20);

thread_local! {
    static TICK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Yield the CPU every few store calls: on a 2-core machine threads otherwise run whole
/// operations back to back, and the windows between a plan and its group never overlap.
fn maybe_yield() {
    let t = TICK.with(|c| {
        let v = c
            .get()
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        c.set(v);
        v >> 60
    });
    if t < 3 {
        std::thread::yield_now();
    }
}

type PageLock = Arc<RwLock<Box<Page>>>;

#[derive(Default)]
struct Inner {
    pages: RwLock<Vec<PageLock>>,
    groups: AtomicU64,
    aborts: AtomicU64,
    /// Freed blocks offered to `allocate` (PostgreSQL's free space map).
    free: parking_lot::Mutex<Vec<u32>>,
    /// Called at the start of every write group, before it takes any lock, until it
    /// returns `true`: another writer's whole operation slips in between what this one read
    /// and its group. Groups the hook itself runs do not call it.
    before_group: parking_lot::Mutex<Option<Box<dyn FnMut() -> bool + Send>>>,
}

/// Cheap to clone: every clone is a handle on the same pages (one per "backend").
#[derive(Clone, Default)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

impl SharedStore {
    pub fn new() -> SharedStore {
        SharedStore::default()
    }
    pub fn groups(&self) -> u64 {
        self.inner.groups.load(Ordering::Relaxed)
    }
    pub fn aborts(&self) -> u64 {
        self.inner.aborts.load(Ordering::Relaxed)
    }
    /// Call `f` at the start of each write group (of any handle on this store) until it
    /// returns `true`.
    pub fn before_groups(&self, f: impl FnMut() -> bool + Send + 'static) {
        *self.inner.before_group.lock() = Some(Box::new(f));
    }
    /// Offer blocks freed by `merge_pages` to later allocations.
    pub fn recycle(&self, blks: &[u32]) {
        self.inner.free.lock().extend_from_slice(blks);
    }
    fn page(&self, blk: u32) -> Result<PageLock> {
        let pages = self.inner.pages.read();
        pages.get(blk as usize).cloned().ok_or(Error::NoSuchBlock {
            blk,
            nblocks: pages.len() as u32,
        })
    }
}

/// A registered page: block, its write lock (held to the end), the image being edited.
type Reg = (u32, ArcRwLockWriteGuard<RawRwLock, Box<Page>>, Box<Page>);

struct Group<'a> {
    store: &'a SharedStore,
    regs: Vec<Reg>,
}

impl Group<'_> {
    fn room(&self, blk: u32) -> Result<()> {
        if self.regs.len() >= GROUP_LIMIT {
            return Err(Error::GroupTooLarge {
                blk,
                wanted: self.regs.len() + 1,
                limit: GROUP_LIMIT,
            });
        }
        Ok(())
    }
}

impl WriteGroup for Group<'_> {
    fn modify(&mut self, blk: u32) -> Result<&mut Page> {
        if let Some(i) = self.regs.iter().position(|r| r.0 == blk) {
            return Ok(&mut self.regs[i].2);
        }
        self.room(blk)?;
        maybe_yield();
        let lock = self.store.page(blk)?;
        let guard = lock.try_write_arc_for(DEADLOCK).unwrap_or_else(|| {
            panic!("write lock on block {blk} not granted in {DEADLOCK:?}: deadlock")
        });
        let image = Box::new(**guard);
        self.regs.push((blk, guard, image));
        Ok(&mut self.regs.last_mut().unwrap().2)
    }

    fn allocate(&mut self) -> Result<u32> {
        self.room(u32::MAX)?;
        // A freed block first, as the binding does: taken only if its lock is free at once
        // and it is still a deleted page (the free list is a hint).
        loop {
            let Some(blk) = self.store.inner.free.lock().pop() else {
                break;
            };
            if self.regs.iter().any(|r| r.0 == blk) {
                continue;
            }
            let lock = self.store.page(blk)?;
            if let Some(guard) = lock.try_write_arc() {
                if alex::data_node::is_deleted_page(&guard) {
                    self.regs.push((blk, guard, Box::new([0u8; PAGE_SIZE])));
                    return Ok(blk);
                }
            }
        }
        let mut pages = self.store.inner.pages.write();
        let blk = pages.len() as u32;
        let lock: PageLock = Arc::new(RwLock::new(Box::new([0u8; PAGE_SIZE])));
        let guard = lock.try_write_arc().expect("fresh page is unlocked");
        pages.push(lock);
        drop(pages);
        self.regs.push((blk, guard, Box::new([0u8; PAGE_SIZE])));
        Ok(blk)
    }
}

impl PageStore for SharedStore {
    fn nblocks(&self) -> u32 {
        self.inner.pages.read().len() as u32
    }

    fn read(&self, blk: u32, f: &mut dyn FnMut(&Page)) -> Result<()> {
        maybe_yield();
        let lock = self.page(blk)?;
        let guard = lock
            .try_read_for(DEADLOCK)
            .unwrap_or_else(|| panic!("read lock on block {blk} not granted in {DEADLOCK:?}"));
        f(&guard);
        Ok(())
    }

    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()> {
        let hook = self.inner.before_group.lock().take();
        if let Some(mut hook) = hook {
            if !hook() {
                *self.inner.before_group.lock() = Some(hook);
            }
        }
        let mut g = Group {
            store: self,
            regs: Vec::with_capacity(GROUP_LIMIT),
        };
        let r = f(&mut g);
        if r.is_ok() {
            for (_, guard, image) in g.regs.iter_mut() {
                guard.copy_from_slice(&image[..]);
            }
            self.inner.groups.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.aborts.fetch_add(1, Ordering::Relaxed);
        }
        // All images are installed before the first lock is released (guards drop here).
        drop(g);
        r
    }
}
