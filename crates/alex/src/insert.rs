//! Inserts, retraining and the three split policies.
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

use crate::data_node::{DataNode, DataSpec, InsertOutcome, F_INCOMPLETE, F_PENDING_DOWN};
use crate::error::{invariant, Error, Result};
use crate::key::{Item, Tid};
use crate::meta::Meta;
use crate::model::LinearModel;
use crate::model_node::{ModelNode, MAX_FANOUT};
use crate::page::{self, Kind, META_BLOCK};
use crate::store::{atomic_with, read_with, PageStore, WriteGroup};
use crate::Alex;

/// Fanout of a model node created by a split-down inside the key space.
const SPLIT_DOWN_FANOUT: usize = 64;
const MAX_ATTEMPTS: usize = 100_000;

pub(crate) enum Parent {
    /// The page is the root; the metapage points at it.
    Meta,
    /// `blk` routes slots `[a, b)` to the page.
    Model { blk: u32, node: ModelNode, a: usize, b: usize, depth: usize },
    /// The page is reachable only by right-link (inside a chain).
    None,
}

/// Re-read `blk` inside a group and check it still is what we planned on.
fn reread<'g>(g: &'g mut dyn WriteGroup, blk: u32, item: Option<Item>) -> Result<(&'g mut page::Page, DataNode)> {
    let p = g.modify(blk)?;
    let n = DataNode::decode(p, blk)?;
    if n.incomplete() || item.is_some_and(|it| !n.covers(it)) {
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
    fn try_insert(&mut self, item: Item) -> Result<Option<bool>> {
        let meta = self.meta()?;
        let (blk, node) = self.find_leaf(item)?;
        if node.incomplete() {
            self.finish_split(blk)?;
            return Ok(None);
        }
        let exists = read_with(&self.store, blk, |p| Ok(node.find(p, item).1))?;
        if exists {
            return Ok(Some(false));
        }
        let exact = meta.exact_count();
        let limit = |cap: usize| ((meta.max_density as f64 * cap as f64) as usize).max(1);
        if node.fits_key(item.key) && node.count < limit(node.cap) {
            return atomic_with(&mut self.store, |g| {
                let (p, mut n) = reread(g, blk, Some(item))?;
                if !n.fits_key(item.key) || n.count >= n.cap {
                    return invariant(blk, "page changed shape between read and write");
                }
                match n.insert(p, item) {
                    InsertOutcome::Exists => return Ok(Some(false)),
                    InsertOutcome::Inserted => {}
                    InsertOutcome::Retrain => {
                        let mut e = n.entries(p);
                        let pos = e.partition_point(|x| *x < item);
                        e.insert(pos, item);
                        let spec = DataSpec { entries: &e, low: n.low, high: n.high, right: n.right, flags: n.flags, pending: n.pending, residual: meta.residual_keys() };
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
        let mut e = read_with(&self.store, blk, |p| Ok(node.entries(p)))?;
        let pos = e.partition_point(|x| *x < item);
        e.insert(pos, item);
        let spec = DataSpec { entries: &e, low: node.low, high: node.high, right: node.right, flags: node.flags, pending: node.pending, residual: meta.residual_keys() };
        if e.len() <= limit(spec.capacity()) {
            return atomic_with(&mut self.store, |g| {
                let (p, n) = reread(g, blk, Some(item))?;
                if n.count + 1 != e.len() {
                    return Err(Error::Retry { blk });
                }
                if !spec.write(p) {
                    return invariant(blk, "rebuild did not fit");
                }
                if exact {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_add(1))?;
                }
                Ok(Some(true))
            });
        }
        self.split(blk, item, &meta)?;
        Ok(None)
    }

    /// Which model node routes to head page `blk` (with bounds `node`).
    pub(crate) fn find_parent(&self, blk: u32, node: &DataNode) -> Result<Parent> {
        let meta = self.meta()?;
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
                Some((m, c, a, b)) if c == blk => return Ok(Parent::Model { blk: cur, node: m, a, b, depth }),
                Some((_, c, _, _)) => cur = c,
                None => return Ok(Parent::None),
            }
        }
        invariant(blk, "no parent found within 256 levels")
    }

    /// Split full page `blk`; `incoming` is the entry that did not fit (steers the split point).
    fn split(&mut self, blk: u32, incoming: Item, meta: &Meta) -> Result<()> {
        let node = self.data_header(blk)?;
        let e = read_with(&self.store, blk, |p| Ok(node.entries(p)))?;
        let n = e.len();
        if n < 2 {
            return invariant(blk, "asked to split a page with fewer than 2 entries");
        }
        let fill_n = (meta.fill as f64 * node.cap as f64) as usize;
        // Inserts landing in the last (first) tenth of the page are treated as ascending
        // (descending) streams: keep the old side `fill` full instead of halving it.
        let ipos = e.partition_point(|x| *x < incoming);
        // On the rightmost page a late-arriving key (timestamps with jitter) still belongs
        // to an ascending stream, so the window is wider there.
        let window = if node.high.is_none() { n / 4 } else { n / 10 };
        let append = ipos >= n - window;
        let prepend = ipos <= n / 10;
        let want = if append {
            fill_n
        } else if prepend {
            n.saturating_sub(fill_n)
        } else {
            n / 2
        }
        .clamp(1, n - 1);
        let distinct = e[0].key != e[n - 1].key;
        let parent = self.find_parent(blk, &node)?;
        // 1. Sideways: a parent slot boundary near the wanted split key.
        if let Parent::Model { node: pm, a, b, .. } = &parent {
            if b - a >= 2 && distinct {
                let s0 = pm.slot(e[want].key).clamp(a + 1, b - 1);
                let mut best: Option<(usize, usize, u64)> = None;
                for s in [s0, (s0 + 1).min(b - 1)] {
                    let Some(bk) = pm.slot_low(s) else { continue };
                    let cl = e.partition_point(|x| x.key < bk);
                    if cl == 0 || cl == n {
                        continue;
                    }
                    let d = cl.abs_diff(want);
                    if best.is_none_or(|(_, bc, _)| d < bc.abs_diff(want)) {
                        best = Some((s, cl, bk));
                    }
                }
                if let Some((s, cl, bk)) = best {
                    if cl.min(n - cl) >= n / 8 {
                        return self.split_sideways(blk, &node, &e, cl, bk, s);
                    }
                }
            }
        }
        // 2. Down: a new model node over this page's parent range.
        if distinct && !matches!(parent, Parent::None) {
            let (low, high) = match &parent {
                Parent::Model { node: pm, a, b, .. } => (pm.slot_low(*a).unwrap_or(node.low.key), pm.slot_low(*b)),
                _ => (0, None),
            };
            if let Some((m, f, cl, bk)) = plan_down(&e, want, low, high, append && node.high.is_none()) {
                return self.split_down(blk, &node, &e, cl, bk, ModelNode { model: m, low, high, level: 0, fanout: f });
            }
        }
        // 3. Chain: cut at an item (handles runs of one key, and pages inside chains).
        let cut = e[want];
        let bound = if e[want - 1].key < cut.key { Item::key_start(cut.key) } else { cut };
        self.split_chain(blk, &node, &e, want, bound)
    }

    fn split_chain(&mut self, blk: u32, node: &DataNode, e: &[Item], cl: usize, bound: Item) -> Result<()> {
        let res = self.meta()?.residual_keys();
        let n0 = node.count;
        atomic_with(&mut self.store, |g| {
            let (_, n) = reread(g, blk, None)?;
            if n.count != n0 {
                return Err(Error::Retry { blk });
            }
            let nb = g.allocate()?;
            let right = DataSpec { entries: &e[cl..], low: bound, high: node.high, right: node.right, flags: 0, pending: 0, residual: res };
            if !right.write(g.modify(nb)?) {
                return invariant(nb, "right half does not fit");
            }
            let left = DataSpec { entries: &e[..cl], low: node.low, high: Some(bound), right: nb, flags: 0, pending: 0, residual: res };
            if !left.write(g.modify(blk)?) {
                return invariant(blk, "left half does not fit");
            }
            bump_meta(g, |m| {
                m.n_data = m.n_data.saturating_add(1);
                m.version = m.version.wrapping_add(1);
            })
        })
    }

    fn split_sideways(&mut self, blk: u32, node: &DataNode, e: &[Item], cl: usize, bk: u64, slot: usize) -> Result<()> {
        let res = self.meta()?.residual_keys();
        let n0 = node.count;
        let bound = Item::key_start(bk);
        atomic_with(&mut self.store, |g| {
            let (_, n) = reread(g, blk, None)?;
            if n.count != n0 {
                return Err(Error::Retry { blk });
            }
            let nb = g.allocate()?;
            let right = DataSpec { entries: &e[cl..], low: bound, high: node.high, right: node.right, flags: 0, pending: 0, residual: res };
            if !right.write(g.modify(nb)?) {
                return invariant(nb, "right half does not fit");
            }
            let left = DataSpec { entries: &e[..cl], low: node.low, high: Some(bound), right: nb, flags: F_INCOMPLETE, pending: slot as u32, residual: res };
            if !left.write(g.modify(blk)?) {
                return invariant(blk, "left half does not fit");
            }
            bump_meta(g, |m| {
                m.n_data = m.n_data.saturating_add(1);
                m.version = m.version.wrapping_add(1);
            })
        })?;
        if self.crash_after_split_group1 {
            return Ok(());
        }
        self.finish_split(blk)
    }

    fn split_down(&mut self, blk: u32, node: &DataNode, e: &[Item], cl: usize, bk: u64, mut m: ModelNode) -> Result<()> {
        let res = self.meta()?.residual_keys();
        let n0 = node.count;
        let bound = Item::key_start(bk);
        let mslot = m.slot(bk);
        atomic_with(&mut self.store, |g| {
            let (_, n) = reread(g, blk, None)?;
            if n.count != n0 {
                return Err(Error::Retry { blk });
            }
            let nb = g.allocate()?;
            let mb = g.allocate()?;
            let right = DataSpec { entries: &e[cl..], low: bound, high: node.high, right: node.right, flags: 0, pending: 0, residual: res };
            if !right.write(g.modify(nb)?) {
                return invariant(nb, "right half does not fit");
            }
            let left = DataSpec { entries: &e[..cl], low: node.low, high: Some(bound), right: nb, flags: F_INCOMPLETE | F_PENDING_DOWN, pending: mb, residual: res };
            if !left.write(g.modify(blk)?) {
                return invariant(blk, "left half does not fit");
            }
            let children: Vec<u32> = (0..m.fanout).map(|s| if s < mslot { blk } else { nb }).collect();
            m.level = 0;
            m.encode(g.modify(mb)?, &children);
            bump_meta(g, |mm| {
                mm.n_data = mm.n_data.saturating_add(1);
                mm.n_model = mm.n_model.saturating_add(1);
                mm.version = mm.version.wrapping_add(1);
            })
        })?;
        if self.crash_after_split_group1 {
            return Ok(());
        }
        self.finish_split(blk)
    }

    /// Second group of a split: link the new page (or model node) into the parent.
    pub(crate) fn finish_split(&mut self, blk: u32) -> Result<()> {
        let node = self.data_header(blk)?;
        if !node.incomplete() {
            return Ok(());
        }
        let parent = self.find_parent(blk, &node)?;
        let down = node.flags & F_PENDING_DOWN != 0;
        let clear = |g: &mut dyn WriteGroup| -> Result<()> {
            let p = g.modify(blk)?;
            let mut n = DataNode::decode(p, blk)?;
            n.set_flags(p, n.flags & !(F_INCOMPLETE | F_PENDING_DOWN), 0);
            Ok(())
        };
        match parent {
            Parent::Meta if down => atomic_with(&mut self.store, |g| {
                clear(g)?;
                bump_meta(g, |m| {
                    m.root = node.pending;
                    m.levels = m.levels.saturating_add(1);
                    m.version = m.version.wrapping_add(1);
                })
            }),
            Parent::Model { blk: pb, node: pm, a, b, depth } => {
                let (target, from) = if down {
                    (node.pending, a)
                } else {
                    let s = node.pending as usize;
                    if s <= a || s >= b {
                        return invariant(blk, format!("incomplete split records slot {s} outside run {a}..{b}"));
                    }
                    (node.right, s)
                };
                atomic_with(&mut self.store, |g| {
                    let p = g.modify(pb)?;
                    ModelNode::decode(p, pb)?;
                    for s in from..b {
                        pm.set_child(p, s, target);
                    }
                    clear(g)?;
                    if down {
                        bump_meta(g, |m| {
                            m.levels = m.levels.max(depth as u32 + 3);
                            m.version = m.version.wrapping_add(1);
                        })?;
                    }
                    Ok(())
                })
            }
            _ => invariant(blk, "incomplete split on a page with no parent to finish it in"),
        }
    }
}

/// Model for a split-down of entries `e` over domain `[low, high)`: returns the model,
/// fanout, left count and the boundary key, or `None` if no slot boundary separates them.
fn plan_down(e: &[Item], want: usize, low: u64, high: Option<u64>, right_edge: bool) -> Option<(LinearModel, usize, usize, u64)> {
    let n = e.len();
    // Models are based at the first key, not the domain start, to keep f64 precision.
    let base = e[0].key;
    let (model, f) = if right_edge {
        // Rightmost page of the index: slot width = the key span of the part that stays
        // left, so later (roughly) ascending keys fill the following slots at the same
        // density, one sideways split at a time, instead of deepening the tree each time.
        let span = e[want].key.saturating_sub(base).max(1) as f64;
        // Slot 1 starts at the wanted split key; each later slot spans as many keys (at
        // today's density) as the part that stays left.
        (LinearModel { base, slope: 1.0 / span, intercept: 0.0 }, MAX_FANOUT)
    } else {
        let f = SPLIT_DOWN_FANOUT;
        (LinearModel::fit_ranks(e.iter().map(|x| x.key), base, f as f64 / n as f64), f)
    };
    let node = ModelNode { model, low, high, level: 0, fanout: f };
    let s0 = node.slot(e[want].key).max(1);
    let mut best: Option<(usize, u64)> = None;
    for s in [s0, s0 + 1, s0.saturating_sub(1).max(1)] {
        if s >= f {
            continue;
        }
        let Some(bk) = node.slot_low(s) else { continue };
        if bk <= low || high.is_some_and(|h| bk >= h) {
            continue;
        }
        let cl = e.partition_point(|x| x.key < bk);
        if cl == 0 || cl == n {
            continue;
        }
        if best.is_none_or(|(bc, _)| cl.abs_diff(want) < bc.abs_diff(want)) {
            best = Some((cl, bk));
        }
    }
    best.map(|(cl, bk)| (model, f, cl, bk))
}
