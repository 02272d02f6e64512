//! Inserts and retraining; the three split policies live in `split.rs`.
//!
//! * In place: the entry goes into the gap run where it belongs (at the model's predicted
//!   slot when the run allows), or the nearest gap is shifted over.
//! * Retrain: if that gap is far, or the key does not fit the page's residual width, the page
//!   is rewritten with a refitted model (and wider keys if needed).
//! * Split, when the page would pass `max_density`: sideways if the parent routes ≥2 slots to
//!   this page and a slot boundary divides its entries usefully; otherwise down (a new model
//!   node over the page's range; at the right edge of the key space the new node's model
//!   extrapolates, so ascending inserts fill its slots one page at a time); otherwise, when
//!   all keys are equal, a duplicate chain split at a (key, tid) item.

use crate::data_node::{DataNode, DataSpec, InsertOutcome, Placement};
use crate::error::{invariant, Error, Result};
use crate::key::{Item, Tid};
use crate::meta::Meta;
use crate::model_node::ModelNode;
use crate::op::PageOp;
use crate::page::{self, Kind, META_BLOCK};
use crate::search::{live_data, live_or_retry};
use crate::store::{atomic_with, read_with, Applied, ApplyLock, PageStore, WriteGroup};
use crate::Alex;
use std::sync::atomic::Ordering;

const MAX_ATTEMPTS: usize = 100_000;

pub(crate) enum Parent {
    /// The page is the root; the metapage points at it.
    Meta,
    /// `blk` routes slots `[a, b)` to the page.
    Model {
        blk: u32,
        node: ModelNode,
        a: usize,
        b: usize,
        depth: usize,
    },
    /// The page is reachable only by right-link (inside a chain).
    None,
}

/// Re-read `blk` inside a group (exclusive lock): it must still be exactly the page the
/// write was planned on (same range, right-link, no pending split and, if given, the same
/// entries); otherwise a concurrent writer got there first and we start over.
pub(crate) fn recheck<'g>(
    g: &'g mut dyn WriteGroup,
    blk: u32,
    plan: &DataNode,
    entries: Option<&[Item]>,
) -> Result<(&'g mut page::Page, DataNode)> {
    let p = g.modify(blk)?;
    let n = live_or_retry(p, blk)?;
    let same = !n.incomplete()
        && n.low == plan.low
        && n.high == plan.high
        && n.right == plan.right
        && n.count == plan.count;
    if !same || entries.is_some_and(|e| n.entries(p) != e) {
        return Err(Error::Retry { blk });
    }
    Ok((p, n))
}

/// Re-read `blk` inside a group for an in-place change of the entry `item`.
fn reread(g: &mut dyn WriteGroup, blk: u32, item: Item) -> Result<(&mut page::Page, DataNode)> {
    let p = g.modify(blk)?;
    let n = live_or_retry(p, blk)?;
    if n.incomplete() || !n.covers(item) {
        return Err(Error::Retry { blk });
    }
    Ok((p, n))
}

pub(crate) fn bump_meta(g: &mut dyn WriteGroup, f: impl FnOnce(&mut Meta)) -> Result<()> {
    let p = g.modify(META_BLOCK)?;
    let mut m = Meta::decode(p)?;
    f(&mut m);
    m.encode(p);
    Ok(())
}

fn density_limit(meta: &Meta, cap: usize) -> usize {
    ((meta.max_density as f64 * cap as f64) as usize).max(1)
}

impl<S: PageStore> Alex<S> {
    /// Insert (key, tid). Returns `false` if that exact pair is already present.
    pub fn insert(&mut self, key: u64, tid: Tid) -> Result<bool> {
        let item = Item::new(key, tid);
        for _ in 0..MAX_ATTEMPTS {
            match self.try_insert(item) {
                Err(Error::Retry { .. }) => continue,
                Ok(Some(done)) => return Ok(done),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
        invariant(0, "insert did not converge")
    }

    /// One attempt: `Ok(None)` means the structure changed (split) and we go again.
    /// Plans from share-locked reads; every group re-decides from its exclusively locked pages.
    fn try_insert(&mut self, item: Item) -> Result<Option<bool>> {
        // Only the build options are used here (flags, density), and they never change.
        let meta = match self.readers.options.get() {
            Some(m) => *m,
            None => {
                let m = self.meta()?;
                let _ = self.readers.options.set(m);
                m
            }
        };
        let (blk, (node, exists)) = self.insert_target(item)?;
        if node.incomplete() {
            self.finish_split(blk)?;
            return Ok(None);
        }
        if exists {
            return Ok(Some(false));
        }
        let exact = meta.exact_count();
        let res = meta.residual_keys();
        if node.fits_key(item.key) && node.count < density_limit(&meta, node.cap) {
            // Without an exact count the insert changes this page alone: one logged op.
            if !exact {
                if let Some(done) = self.insert_in_place(blk, item, &meta)? {
                    return Ok(Some(done));
                }
            }
            return atomic_with(&mut self.store, |g| {
                let (p, mut n) = reread(g, blk, item)?;
                if !n.fits_key(item.key) || n.count >= density_limit(&meta, n.cap) {
                    return Err(Error::Retry { blk });
                }
                match n.insert(p, item) {
                    InsertOutcome::Exists => return Ok(Some(false)),
                    InsertOutcome::Inserted => {}
                    InsertOutcome::Retrain => {
                        let mut e = n.entries(p);
                        let pos = e.partition_point(|x| *x < item);
                        e.insert(pos, item);
                        let spec = DataSpec {
                            entries: &e,
                            low: n.low,
                            high: n.high,
                            right: n.right,
                            flags: n.flags,
                            pending: n.pending,
                            residual: res,
                        };
                        if !spec.write(p) {
                            return invariant(blk, "retrain did not fit");
                        }
                    }
                }
                if exact {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_add(1))?;
                }
                Ok(Some(true))
            });
        }
        // Rebuild with a wider key encoding if the entries still fit, else split.
        let with_item = |n: &DataNode, p: &page::Page| {
            let mut e = n.entries(p);
            let pos = e.partition_point(|x| *x < item);
            e.insert(pos, item);
            let spec = DataSpec {
                entries: &e,
                low: n.low,
                high: n.high,
                right: n.right,
                flags: n.flags,
                pending: n.pending,
                residual: res,
            };
            let fits = e.len() <= density_limit(&meta, spec.capacity());
            (e, fits)
        };
        let fits = read_with(&self.store, blk, |p| {
            Ok(with_item(&live_or_retry(p, blk)?, p).1)
        })?;
        if fits {
            return atomic_with(&mut self.store, |g| {
                let (p, n) = reread(g, blk, item)?;
                let (e, fits) = with_item(&n, p);
                if !fits {
                    return Err(Error::Retry { blk });
                }
                let spec = DataSpec {
                    entries: &e,
                    low: n.low,
                    high: n.high,
                    right: n.right,
                    flags: n.flags,
                    pending: n.pending,
                    residual: res,
                };
                if !spec.write(p) {
                    return invariant(blk, "rebuild did not fit");
                }
                if exact {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_add(1))?;
                }
                Ok(Some(true))
            });
        }
        self.split(blk, item)?;
        Ok(None)
    }

    /// Insert `item` into page `blk` in place as one [`PageOp`]: `Some(inserted)`, or `None`
    /// when the page needs a retrain (the caller rewrites it in a group).
    fn insert_in_place(&mut self, blk: u32, item: Item, meta: &Meta) -> Result<Option<bool>> {
        let mut exists = false;
        let applied = self.store.apply(blk, ApplyLock::Exclusive, &mut |p| {
            let Some(n) = live_data(p, blk)? else {
                return Err(Error::Retry { blk });
            };
            if n.incomplete()
                || !n.covers(item)
                || !n.fits_key(item.key)
                || n.count >= density_limit(meta, n.cap)
            {
                return Err(Error::Retry { blk });
            }
            match n.place(p, item) {
                Placement::At(at) => Ok(Some(PageOp::Insert { item, at })),
                Placement::Exists => {
                    exists = true;
                    Ok(None)
                }
                Placement::Retrain => Ok(None),
            }
        })?;
        Ok(match applied {
            Applied::Yes => Some(true),
            Applied::Unchanged if exists => Some(false),
            // A retrain (or a page we could not lock, which Exclusive never reports).
            Applied::Unchanged | Applied::Busy => None,
        })
    }

    /// The data page covering `item`, with its header and whether it holds `item`.
    ///
    /// Routed like a reader (cached model levels, move-right): a stale route lands at or
    /// left of the right page, and every write re-checks the page under its lock. When the
    /// last two inserts went to the same page (ascending keys, or a run of one key such as
    /// NULLs, whose duplicate chain would otherwise be walked from its head every time),
    /// that page is tried first, as nbtree's rightmost-page fast path does.
    fn insert_target(&self, item: Item) -> Result<(u32, (DataNode, bool))> {
        let last = self.readers.last_insert.load(Ordering::Relaxed);
        if self.readers.insert_streak.load(Ordering::Relaxed) {
            let hit = read_with(&self.store, last, |p| {
                Ok(match live_data(p, last)? {
                    Some(n) if n.covers(item) => Some((n.clone(), n.find(p, item).1)),
                    _ => None,
                })
            });
            // (A block past the end: the index was rebuilt smaller since; go by the root.)
            let hit = match hit {
                Err(Error::NoSuchBlock { .. }) => None,
                r => r?,
            };
            if let Some(hit) = hit {
                return Ok((last, hit));
            }
        }
        let (blk, hit) = self.read_leaf_with(item, |n, p| Ok((n.clone(), n.find(p, item).1)))?;
        self.readers
            .insert_streak
            .store(blk == last, Ordering::Relaxed);
        self.readers.last_insert.store(blk, Ordering::Relaxed);
        Ok((blk, hit))
    }

    /// Which model node routes to head page `blk` (with bounds `node`), as of `meta`.
    pub(crate) fn find_parent(&self, meta: &Meta, blk: u32, node: &DataNode) -> Result<Parent> {
        if meta.root == blk {
            return Ok(Parent::Meta);
        }
        if node.low.tid != Tid::MIN {
            return Ok(Parent::None);
        }
        let key = node.low.key;
        let mut cur = meta.root;
        for depth in 0..crate::search::MAX_DEPTH {
            let step = read_with(&self.store, cur, |p| match page::check(p, cur)? {
                Kind::Model => {
                    let m = ModelNode::decode(p, cur)?;
                    let s = m.slot(key);
                    let c = m.child(p, s);
                    let (a, b) = m.run_of(p, s);
                    Ok(Some((m, c, a, b)))
                }
                _ => Ok(None),
            })?;
            match step {
                Some((m, c, a, b)) if c == blk => {
                    return Ok(Parent::Model {
                        blk: cur,
                        node: m,
                        a,
                        b,
                        depth,
                    })
                }
                Some((_, c, _, _)) => cur = c,
                None => return Ok(Parent::None),
            }
        }
        invariant(blk, "no parent found within 256 levels")
    }
}
