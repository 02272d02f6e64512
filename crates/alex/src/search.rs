//! Descent and point lookups.
//!
//! Every decision about a data page is made inside the one read (share lock) that also
//! checks the page still covers the item: between two reads a concurrent writer may have
//! split the page, so a header decoded in one read is never applied to the bytes of another.

use std::sync::atomic::Ordering;

use crate::cache::Child;
use crate::data_node::DataNode;
use crate::error::{corrupt, invariant, Result};
use crate::key::{Item, Tid};
use crate::model_node::ModelNode;
use crate::page::{self, Kind, Page, INVALID_BLOCK};
use crate::store::{read_with, PageStore};
use crate::Alex;

/// Deepest tree we accept (a corrupt cycle must not loop forever).
pub(crate) const MAX_DEPTH: usize = 256;
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
    /// unknown. Pages never move, so a stale root still routes at or left of the right page.
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
    /// page inside the same read. Returns the page and `f`'s value.
    pub(crate) fn at_leaf<R>(
        &self,
        mut blk: u32,
        item: Item,
        mut f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R, usize)> {
        let limit = self.store.nblocks();
        for steps in 0..=limit as usize {
            let step = read_with(&self.store, blk, |p| {
                let n = DataNode::decode(p, blk)?;
                if n.high.is_some_and(|h| h <= item) {
                    if n.right == INVALID_BLOCK {
                        return corrupt(blk, "finite high key but no right-link");
                    }
                    return Ok(Step::Right(n.right));
                }
                if item < n.low {
                    return invariant(
                        blk,
                        format!(
                            "routed to a page whose low key {:?} is above {:?}",
                            n.low, item
                        ),
                    );
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
        f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R)> {
        let d = self.descend(item.key)?;
        let (blk, r, _) = self.at_leaf(d.leaf, item, f)?;
        Ok((blk, r))
    }

    /// Readers: like `find_leaf_with`, routed by the cached model levels (or cached root).
    pub(crate) fn read_leaf_with<R>(
        &self,
        item: Item,
        f: impl FnMut(&DataNode, &Page) -> Result<R>,
    ) -> Result<(u32, R)> {
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
        let (blk, r, steps) = self.at_leaf(start, item, f)?;
        if steps >= STALE_ROOT_STEPS {
            // Long walks also happen on current routes (chains); only drop what is outdated.
            let meta = self.meta()?;
            if self.readers.root.load(Ordering::Relaxed) != meta.root {
                self.readers.root.store(INVALID_BLOCK, Ordering::Relaxed);
            }
            if cached.is_some_and(|t| t.version != meta.version) {
                self.readers.slot.invalidate();
            }
        }
        Ok((blk, r))
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

    /// All payloads stored under `key`, in TID order.
    pub fn get(&self, key: u64) -> Result<Vec<Tid>> {
        let mut out = Vec::new();
        self.get_into(key, &mut out)?;
        Ok(out)
    }

    /// Append all payloads under `key` to `out`; returns how many.
    pub fn get_into(&self, key: u64, out: &mut Vec<Tid>) -> Result<usize> {
        let start = Item::key_start(key);
        let before = out.len();
        // Collect from the page covering (key, MIN); the duplicates continue on the right
        // sibling as it was in the same read (nbtree's forward-scan rule: entries a later
        // split moves right of what we read are neither lost nor returned twice).
        let (_, mut next) = self.read_leaf_with(start, |n, p| Ok(collect_key(n, p, key, out)))?;
        let limit = self.store.nblocks();
        for _ in 0..=limit {
            let Some(blk) = next else {
                return Ok(out.len() - before);
            };
            next = read_with(&self.store, blk, |p| {
                Ok(collect_key(&DataNode::decode(p, blk)?, p, key, out))
            })?;
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

/// Push the TIDs of `key` on this page; the next page to look at, if the run may continue.
fn collect_key(n: &DataNode, p: &Page, key: u64, out: &mut Vec<Tid>) -> Option<u32> {
    let (mut i, _) = n.find(p, Item::key_start(key));
    while let Some(j) = n.next_occ(p, i) {
        if n.key(p, j) != key {
            return None;
        }
        out.push(n.tid(p, j));
        i = j + 1;
    }
    match n.high {
        Some(h) if h.key == key && n.right != INVALID_BLOCK => Some(n.right),
        _ => None,
    }
}
