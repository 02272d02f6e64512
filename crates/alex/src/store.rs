//! Page storage: the only interface between the index and where its pages live.
//!
//! The trait is object safe and deliberately small so the binding can implement it over
//! PostgreSQL shared buffers:
//! * `read`: `ReadBuffer` + `LockBuffer(SHARE)`, call `f` on `BufferGetPage`, unlock/release.
//!   Readers hold one page at a time (Lehman–Yao), so `f` must not call back into the store.
//! * `atomic`: `GenericXLogStart`; each `WriteGroup::modify` is `ReadBuffer` +
//!   `LockBuffer(EXCLUSIVE)` + `GenericXLogRegisterBuffer`, `allocate` takes a free block
//!   (a page deleted by a merge, or never used) or extends the relation, and registers it
//!   with `GENERIC_XLOG_FULL_IMAGE`; `Ok` → `GenericXLogFinish`, `Err` →
//!   `GenericXLogAbort`. At most [`GROUP_LIMIT`] pages (`MAX_GENERIC_XLOG_PAGES`).
//! * `nblocks`: `RelationGetNumberOfBlocks`, used to bound walks over possibly corrupt links.

use crate::error::{Error, Result};
use crate::op::PageOp;
use crate::page::{Page, PAGE_SIZE};

/// GenericXLog's `MAX_GENERIC_XLOG_PAGES`.
pub const GROUP_LIMIT: usize = 4;

pub trait PageStore {
    /// Number of blocks (block 0 is the metapage).
    fn nblocks(&self) -> u32;
    /// Call `f` with a shared view of page `blk`.
    fn read(&self, blk: u32, f: &mut dyn FnMut(&Page)) -> Result<()>;
    /// Run `f`; all pages it modified or allocated become visible atomically if it returns
    /// `Ok`, and none of its changes survive if it returns `Err`.
    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()>;
    /// Change data page `blk` by one [`PageOp`], atomically: `decide` looks at the
    /// locked page and names the op (`None`: leave the page; an error: nothing changes).
    /// A store with a log of its own may log the op instead of the page (the binding's
    /// compact WAL record, replayed by [`PageOp::apply`]); the default is a one-page
    /// atomic group. With [`ApplyLock::CleanupIfFree`] (ops that remove entries) the
    /// binding takes a cleanup lock, and only if no scan holds a pin on the page:
    /// otherwise it returns [`Applied::Busy`] without calling `decide`.
    fn apply(
        &mut self,
        blk: u32,
        lock: ApplyLock,
        decide: &mut dyn FnMut(&Page) -> Result<Option<PageOp>>,
    ) -> Result<Applied> {
        let _ = lock; // no scans hold pages between calls here
        apply_in_group(self, blk, decide)
    }
}

/// How [`PageStore::apply`] locks its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyLock {
    Exclusive,
    /// A cleanup lock if nobody else holds the page (entry removals: scans keep a pin on
    /// the page whose entries they are returning, see the binding's storage).
    CleanupIfFree,
}

/// What [`PageStore::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// `decide` named an op, which was applied.
    Yes,
    /// `decide` named none.
    Unchanged,
    /// The page was not free to lock; `decide` was not called.
    Busy,
}

/// [`PageStore::apply`] as an ordinary one-page atomic group.
pub fn apply_in_group<S: PageStore + ?Sized>(
    s: &mut S,
    blk: u32,
    decide: &mut dyn FnMut(&Page) -> Result<Option<PageOp>>,
) -> Result<Applied> {
    atomic_with(s, |g| {
        let p = g.modify(blk)?;
        match decide(p)? {
            Some(op) => {
                op.apply(p, blk)?;
                Ok(Applied::Yes)
            }
            None => Ok(Applied::Unchanged),
        }
    })
}

/// The pages of one atomic group.
pub trait WriteGroup {
    /// Register `blk` (once; later calls return the same image) and return it for writing.
    fn modify(&mut self, blk: u32) -> Result<&mut Page>;
    /// A zeroed page registered in this group; returns its number. Either a new block at
    /// the end, or a free one: a page deleted by a merge or never used, which no live page
    /// links to (readers that still reach it recognise it, see `concurrency`), taken only
    /// if nobody holds it (never waiting: the group holds other pages).
    fn allocate(&mut self) -> Result<u32>;
}

/// Read page `blk` through `f`, returning what `f` returns.
pub fn read_with<S: PageStore + ?Sized, R>(
    s: &S,
    blk: u32,
    f: impl FnOnce(&Page) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    s.read(blk, &mut |p| {
        if let Some(f) = f.take() {
            out = Some(f(p));
        }
    })?;
    out.unwrap_or_else(|| {
        Err(Error::Storage(format!(
            "read of block {blk} did not call back"
        )))
    })
}

/// Run `f` in an atomic group and return its value.
pub fn atomic_with<S: PageStore + ?Sized, R>(
    s: &mut S,
    f: impl FnOnce(&mut dyn WriteGroup) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let mut out = None;
    s.atomic(&mut |g| {
        let f = f
            .take()
            .ok_or_else(|| Error::Storage("atomic group ran twice".into()))?;
        out = Some(f(g)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::Storage("atomic group did not run".into()))
}

/// In-memory store for tests and benchmarks. Single-threaded; atomicity by undo images.
#[derive(Default, Clone)]
pub struct MemStore {
    pages: Vec<Box<Page>>,
    spare: Vec<Box<Page>>,
    /// Number of groups committed (for tests and space/WAL accounting).
    pub groups: u64,
    /// Pages registered over all committed groups.
    pub pages_written: u64,
    /// Freed blocks (see `recycle`) that `allocate` hands out before extending.
    free: Vec<u32>,
    /// Page reads served (for tests that bound the pages an operation touches).
    pub reads: std::cell::Cell<u64>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
    /// Raw access for corruption tests.
    pub fn page_mut(&mut self, blk: u32) -> Option<&mut Page> {
        self.pages.get_mut(blk as usize).map(|b| &mut **b)
    }
    pub fn page(&self, blk: u32) -> Option<&Page> {
        self.pages.get(blk as usize).map(|b| &**b)
    }
    /// Offer freed blocks (from `Alex::merge_pages`) to later allocations, as the binding
    /// does through PostgreSQL's free space map. Blocks that are no longer deleted pages
    /// when their turn comes are skipped.
    pub fn recycle(&mut self, blks: &[u32]) {
        self.free.extend_from_slice(blks);
    }
}

struct MemGroup<'a> {
    store: &'a mut MemStore,
    undo: Vec<(u32, Box<Page>)>,
    allocated_from: u32,
    touched: usize,
    /// Free blocks this group took (back to the free list if it aborts).
    reused: Vec<u32>,
}

impl MemGroup<'_> {
    fn register(&mut self, blk: u32) -> Result<()> {
        if blk >= self.allocated_from || self.undo.iter().any(|(b, _)| *b == blk) {
            return Ok(());
        }
        if self.touched >= GROUP_LIMIT {
            return Err(Error::GroupTooLarge {
                blk,
                wanted: self.touched + 1,
                limit: GROUP_LIMIT,
            });
        }
        let src = self
            .store
            .pages
            .get(blk as usize)
            .ok_or(Error::NoSuchBlock {
                blk,
                nblocks: self.store.pages.len() as u32,
            })?;
        let mut copy = self
            .store
            .spare
            .pop()
            .unwrap_or_else(|| Box::new([0u8; PAGE_SIZE]));
        copy.copy_from_slice(&src[..]);
        self.undo.push((blk, copy));
        self.touched += 1;
        Ok(())
    }
}

impl WriteGroup for MemGroup<'_> {
    fn modify(&mut self, blk: u32) -> Result<&mut Page> {
        self.register(blk)?;
        let n = self.store.pages.len() as u32;
        self.store
            .pages
            .get_mut(blk as usize)
            .map(|b| &mut **b)
            .ok_or(Error::NoSuchBlock { blk, nblocks: n })
    }
    fn allocate(&mut self) -> Result<u32> {
        while let Some(blk) = self.store.free.pop() {
            let deleted = self
                .store
                .page(blk)
                .is_some_and(crate::data_node::is_deleted_page);
            if deleted && !self.undo.iter().any(|(b, _)| *b == blk) {
                if let Err(e) = self.register(blk) {
                    self.store.free.push(blk);
                    return Err(e);
                }
                self.reused.push(blk);
                self.modify(blk)?.fill(0);
                return Ok(blk);
            }
        }
        let blk = self.store.pages.len() as u32;
        if self.touched >= GROUP_LIMIT {
            return Err(Error::GroupTooLarge {
                blk,
                wanted: self.touched + 1,
                limit: GROUP_LIMIT,
            });
        }
        if blk == u32::MAX {
            return Err(Error::Storage("store is full".into()));
        }
        let mut p = self
            .store
            .spare
            .pop()
            .unwrap_or_else(|| Box::new([0u8; PAGE_SIZE]));
        p.fill(0);
        self.store.pages.push(p);
        self.touched += 1;
        Ok(blk)
    }
}

impl PageStore for MemStore {
    fn nblocks(&self) -> u32 {
        self.pages.len() as u32
    }
    fn read(&self, blk: u32, f: &mut dyn FnMut(&Page)) -> Result<()> {
        match self.pages.get(blk as usize) {
            Some(p) => {
                self.reads.set(self.reads.get() + 1);
                f(p);
                Ok(())
            }
            None => Err(Error::NoSuchBlock {
                blk,
                nblocks: self.pages.len() as u32,
            }),
        }
    }
    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()> {
        let allocated_from = self.pages.len() as u32;
        let mut g = MemGroup {
            store: self,
            undo: Vec::with_capacity(GROUP_LIMIT),
            allocated_from,
            touched: 0,
            reused: Vec::new(),
        };
        let r = f(&mut g);
        let MemGroup {
            store,
            undo,
            touched,
            reused,
            ..
        } = g;
        match r {
            Ok(()) => {
                store.groups += 1;
                store.pages_written += touched as u64;
                store.spare.extend(undo.into_iter().map(|(_, p)| p));
                Ok(())
            }
            Err(e) => {
                store.free.extend(reused);
                for (blk, p) in undo {
                    if let Some(dst) = store.pages.get_mut(blk as usize) {
                        *dst = p;
                    }
                }
                while store.pages.len() as u32 > allocated_from {
                    if let Some(p) = store.pages.pop() {
                        store.spare.push(p);
                    }
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn group_limit_and_abort() {
        let mut s = MemStore::new();
        atomic_with(&mut s, |g| {
            for _ in 0..4 {
                g.allocate()?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(s.nblocks(), 4);
        let r = atomic_with(&mut s, |g| {
            for b in 0..4 {
                g.modify(b)?[0] = 7;
            }
            g.allocate()?;
            Ok(())
        });
        assert!(matches!(r, Err(Error::GroupTooLarge { .. })));
        assert_eq!(s.nblocks(), 4);
        assert!(
            (0..4).all(|b| s.page(b).unwrap()[0] == 0),
            "aborted group must leave no trace"
        );
    }
}
