//! Descent and point lookups.
//!
//! Every decision about a data page is made inside the one read (share lock) that also
//! checks the page still covers the item: between two reads a concurrent writer may have
//! split the page, so a header decoded in one read is never applied to the bytes of another.

use std::sync::atomic::Ordering;

use crate::cache::Child;
use crate::data_node::DataNode;
use crate::error::{corrupt, invariant, Error, Result};
use crate::key::{Item, Tid};
use crate::model_node::ModelNode;
use crate::page::{self, Kind, Page, INVALID_BLOCK};
use crate::store::{read_with, PageStore};
use crate::Alex;

/// Deepest tree we accept (a corrupt cycle must not loop forever).
pub(crate) const MAX_DEPTH: usize = 256;
/// Fresh descents a reader makes after landing on moved pages before calling it corruption
/// (each needs a concurrent merge or page reuse in the instant between two reads).
pub(crate) const MAX_RESTARTS: usize = 1000;

/// For writers: the live data page in `p`, or `Error::Retry` if the block was merged away
/// or reused since the writer planned on it (it starts over from the root).
pub(crate) fn live_or_retry(p: &Page, blk: u32) -> Result<DataNode> {
    live_data(p, blk)?.ok_or(Error::Retry { blk })
}

/// The live data page in `p`, or `None` if the block is no longer one (merged away, or
/// reused as a model page) — only possible for a block learned from an older route.
pub(crate) fn live_data(p: &Page, blk: u32) -> Result<Option<DataNode>> {
    if page::kind_fast(p, blk)? != Kind::Data {
        return Ok(None);
    }
    let n = DataNode::decode(p, blk)?;
    Ok((!n.deleted()).then_some(n))
}
/// The bound on a walk along right-links: longer than the relation means a cycle (a
/// corrupt link). The block count costs a system call in the binding, so it is looked up
/// only once a walk is long enough for the bound to matter.
#[derive(Default)]
pub(crate) struct WalkLimit(Option<usize>);

impl WalkLimit {
    const FREE_STEPS: usize = 64;

    pub(crate) fn exceeded<S: PageStore + ?Sized>(&mut self, store: &S, steps: usize) -> bool {
        if steps <= Self::FREE_STEPS {
            return false;
        }
        steps
            > *self
                .0
                .get_or_insert_with(|| store.nblocks() as usize + Self::FREE_STEPS)
    }
}

/// A lookup that had to follow this many right-links refreshes the cached root: a stale
/// root (the old data-page root after the first split-down) is correct but slow.
const STALE_ROOT_STEPS: usize = 2;

/// `h < x` where `None` is +infinity.
pub(crate) fn bound_lt(h: Option<Item>, x: Option<Item>) -> bool {
    match (h, x) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(a), Some(b)) => a < b,
    }
}

/// Where a descent ended: the head data page.
pub(crate) struct Descent {
    pub leaf: u32,
}

/// One step of a move-right walk.
enum Step<R> {
    Right(u32),
    Here(R),
}

impl<S: PageStore> Alex<S> {
    /// The root for readers: cached in the `Alex` value, read from the metapage when
    /// unknown. Model pages never move, so a stale root still routes at or left of the
    /// right page (or to a merged-away block, which sends the reader back here).
    pub(crate) fn reader_root(&self) -> Result<u32> {
        let r = self.readers.root.load(Ordering::Relaxed);
        if r != INVALID_BLOCK {
            return Ok(r);
        }
        let root = self.meta()?.root;
        self.readers.root.store(root, Ordering::Relaxed);
        Ok(root)
    }

    /// Follow the models from `root` to the head data page for `key`.
    pub(crate) fn descend_from(&self, root: u32, key: u64) -> Result<Descent> {
        let mut blk = root;
        for _ in 0..MAX_DEPTH {
            let next = read_with(&self.store, blk, |p| match page::kind_fast(p, blk)? {
                Kind::Model => Ok(Some(ModelNode::route(p, blk, key)?)),
                Kind::Data => Ok(None),
                Kind::Meta => corrupt(blk, "metapage linked as a tree node"),
            })?;
            match next {
                Some(c) => blk = c,
                None => return Ok(Descent { leaf: blk }),
            }
        }
        invariant(root, "model tree deeper than 256 levels (cycle?)")
    }

    /// Descent from the current metapage root (writers, verify).
    pub(crate) fn descend(&self, key: u64) -> Result<Descent> {
        let root = self.meta()?.root;
        self.descend_from(root, key)
    }

    /// Read a data page's header.
    pub(crate) fn data_header(&self, blk: u32) -> Result<DataNode> {
        read_with(&self.store, blk, |p| DataNode::decode(p, blk))
    }

    /// From head page `blk`, move right until the page covers `item`, then call `f` on that
    /// page inside the same read. Returns the page and `f`'s value. `Error::Moved` if the
    /// walk reaches a page that cannot lead to `item` (merged away, or reused elsewhere
    /// since the route was learned): the caller starts over from the root.
    pub(crate) fn at_leaf<R>(
        &self,
        mut blk: u32,
        item: Item,
        mut f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R, usize)> {
        let mut limit = WalkLimit::default();
        for steps in 0usize.. {
            if limit.exceeded(&self.store, steps) {
                break;
            }
            let step = read_with(&self.store, blk, |p| {
                let Some(n) = live_data(p, blk)? else {
                    return Err(Error::Moved { blk });
                };
                if n.high.is_some_and(|h| h <= item) {
                    if n.right == INVALID_BLOCK {
                        return corrupt(blk, "finite high key but no right-link");
                    }
                    return Ok(Step::Right(n.right));
                }
                if item < n.low {
                    return Err(Error::Moved { blk });
                }
                Ok(Step::Here(f(&n, p)?))
            })?;
            match step {
                Step::Right(r) => blk = r,
                Step::Here(r) => return Ok((blk, r, steps)),
            }
        }
        invariant(blk, "right-link chain longer than the relation (cycle?)")
    }

    /// Writers: the data page covering `item` (fresh root), with `f` applied in the same read.
    pub(crate) fn find_leaf_with<R>(
        &self,
        item: Item,
        mut f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R)> {
        for _ in 0..MAX_RESTARTS {
            let d = self.descend(item.key)?;
            match self.at_leaf(d.leaf, item, &mut f) {
                Err(Error::Moved { .. }) => continue,
                r => return r.map(|(blk, r, _)| (blk, r)),
            }
        }
        invariant(0, "lookup kept landing on moved pages")
    }

    /// Readers: like `find_leaf_with`, routed by the cached model levels (or cached root).
    pub(crate) fn read_leaf_with<R>(
        &self,
        item: Item,
        mut f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R)> {
        if self.readers.long_walk.swap(false, Ordering::Relaxed) {
            self.drop_outdated_caches()?;
        }
        let cached = self.readers.slot.get(&self.store, || self.meta())?;
        let start = match &cached {
            Some(t) => match t.route(item.key) {
                Child::Data(b) => b,
                Child::Page(b) | Child::Node(b) => self.descend_from(b, item.key)?.leaf,
            },
            None => {
                let root = self.reader_root()?;
                self.descend_from(root, item.key)?.leaf
            }
        };
        let (blk, r, steps) = match self.at_leaf(start, item, &mut f) {
            Err(Error::Moved { .. }) => {
                // The cached route is older than a merge: drop the caches, go by the root.
                self.readers.invalidate();
                return self.find_leaf_with(item, f);
            }
            r => r?,
        };
        if steps >= STALE_ROOT_STEPS {
            // Checked at the next lookup, not now: the read of `f` must stay this lookup's
            // last (a scan keeps its pin on that page until it has returned what it copied).
            self.readers.long_walk.store(true, Ordering::Relaxed);
        }
        Ok((blk, r))
    }

    /// After a long right-link walk: drop the cached root or model copy if the metapage
    /// says they are outdated (long walks also happen on current routes, along chains).
    fn drop_outdated_caches(&self) -> Result<()> {
        let meta = self.meta()?;
        if self.readers.root.load(Ordering::Relaxed) != meta.root {
            self.readers.root.store(INVALID_BLOCK, Ordering::Relaxed);
        }
        if self
            .readers
            .slot
            .version()
            .is_some_and(|v| v != meta.version)
        {
            self.readers.slot.invalidate();
        }
        Ok(())
    }

    /// Readers: the head data page for `key` (routing as `read_leaf_with`, no move-right).
    pub(crate) fn reader_head(&self, key: u64) -> Result<u32> {
        match self.readers.slot.get(&self.store, || self.meta())? {
            Some(t) => match t.route(key) {
                Child::Data(b) => Ok(b),
                Child::Page(b) | Child::Node(b) => Ok(self.descend_from(b, key)?.leaf),
            },
            None => {
                let root = self.reader_root()?;
                Ok(self.descend_from(root, key)?.leaf)
            }
        }
    }

    /// Model pages a lookup through this `Alex` value reads before its data page: none once
    /// the reader cache holds a copy of the model levels, else the tree's model levels.
    pub fn model_reads_per_lookup(&self) -> Result<u32> {
        if self.readers.slot.is_built() {
            return Ok(0);
        }
        Ok(self.meta()?.levels.saturating_sub(1))
    }

    /// All payloads stored under `key`, in TID order.
    pub fn get(&self, key: u64) -> Result<Vec<Tid>> {
        let mut out = Vec::new();
        self.get_into(key, &mut out)?;
        Ok(out)
    }

    /// Append all payloads under `key` to `out`; returns how many.
    pub fn get_into(&self, key: u64, out: &mut Vec<Tid>) -> Result<usize> {
        let before = out.len();
        // Collect from the page covering (key, MIN); the duplicates continue on the right
        // sibling as it was in the same read (nbtree's forward-scan rule: entries a later
        // split moves right of what we read are neither lost nor returned twice), from that
        // page's high key on.
        let start = Item::key_start(key);
        let (_, mut next) =
            self.read_leaf_with(start, |n, p| Ok(collect_key(n, p, key, start, out)))?;
        let mut limit = WalkLimit::default();
        for steps in 0usize.. {
            if limit.exceeded(&self.store, steps.saturating_sub(MAX_RESTARTS)) {
                break;
            }
            let Some((blk, from)) = next else {
                return Ok(out.len() - before);
            };
            next = match read_with(&self.store, blk, |p| match live_data(p, blk)? {
                Some(n) if n.covers(from) => Ok(Some(collect_key(&n, p, key, from, out))),
                _ => Ok(None),
            })? {
                Some(next) => next,
                // Merged into the page we came from (or reused): go by the root.
                None => {
                    self.find_leaf_with(from, |n, p| Ok(collect_key(n, p, key, from, out)))?
                        .1
                }
            };
        }
        invariant(
            INVALID_BLOCK,
            "duplicate chain longer than the relation (cycle?)",
        )
    }

    /// Whether the exact entry (key, tid) is present.
    pub fn contains(&self, key: u64, tid: Tid) -> Result<bool> {
        let item = Item::new(key, tid);
        Ok(self.read_leaf_with(item, |n, p| Ok(n.find(p, item).1))?.1)
    }
}

/// Push the TIDs of `key` from item `from` on this page; if the run may continue, the next
/// page and the item to go on from (this page's high key).
fn collect_key(
    n: &DataNode,
    p: &Page,
    key: u64,
    from: Item,
    out: &mut Vec<Tid>,
) -> Option<(u32, Item)> {
    let (mut i, _) = n.find(p, from);
    while let Some(j) = n.next_occ(p, i) {
        if n.key(p, j) != key {
            return None;
        }
        out.push(n.tid(p, j));
        i = j + 1;
    }
    match n.high {
        Some(h) if h.key == key && n.right != INVALID_BLOCK => Some((n.right, h)),
        _ => None,
    }
}
