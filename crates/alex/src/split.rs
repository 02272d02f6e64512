//! Splits of a full data page: the policy (sideways / down / chain), the first atomic group,
//! and finishing an incomplete split (the second group). Protocol: see [`crate::concurrency`].
//!
//! Everything is planned from share-locked reads and re-decided inside the groups: group 1
//! re-reads the page under its exclusive lock and proceeds only if it still holds exactly
//! the entries the plan was made from; group 2 re-reads the flagged page and its parent and
//! re-locates the run of parent slots that point at the page. A plan that went stale aborts
//! the group (`Error::Retry`) before anything is allocated, and the caller starts over.

use crate::data_node::{DataNode, DataSpec, F_INCOMPLETE, F_PENDING_DOWN};
use crate::error::{invariant, Error, Result};
use crate::insert::{bump_meta, recheck, Parent};
use crate::key::Item;
use crate::meta::Meta;
use crate::model::LinearModel;
use crate::model_node::{ModelNode, MAX_FANOUT};
use crate::page::META_BLOCK;
use crate::search::live_data;
use crate::store::{atomic_with, read_with, PageStore};
use crate::Alex;

/// Fanout of a model node created by a split-down inside the key space.
const SPLIT_DOWN_FANOUT: usize = 64;
/// Narrowest widened slot of a split-down node at a stream's edge, in page spans.
const WIDE_SLOT_PAGES: u64 = 64;
const MAX_FINISH_ATTEMPTS: usize = 10_000;

/// Where a page sits with respect to an insert stream at the edge of the key space.
#[derive(Clone, Copy, PartialEq)]
enum Edge {
    /// Ascending inserts into the rightmost page.
    Right,
    /// Descending inserts into the leftmost page.
    Left,
    Inner,
}

enum How {
    /// Cut at an item; the right page is reachable only by right-link.
    Chain,
    /// Re-point parent slots `[slot, run end)` to the right page.
    Sideways(usize),
    /// Replace the parent's run by a new model node over the two halves.
    Down(ModelNode),
    /// Grow a new root: slots before the split key go to the old root (given), the rest to
    /// the right half. The page stays where it is, under the old root, with a lower high key.
    Grow(ModelNode, u32),
}

impl<S: PageStore> Alex<S> {
    /// Split full page `blk`; `incoming` is the entry that did not fit (steers the split).
    /// Returns `Ok` when the caller should start its operation over.
    pub(crate) fn split(&mut self, blk: u32, incoming: Item) -> Result<()> {
        let read = read_with(&self.store, blk, |p| {
            Ok(live_data(p, blk)?.map(|n| {
                let e = n.entries(p);
                (n, e)
            }))
        })?;
        let Some((node, e)) = read else {
            return Ok(()); // merged away or reused since the caller looked: start over
        };
        if node.incomplete() {
            return self.finish_split(blk);
        }
        let n = e.len();
        if !node.covers(incoming) || n < 2 {
            return Ok(()); // changed since the caller looked: start over
        }
        // Read after the page: a root change before our page read is visible here, and one
        // after it changes the page, which group 1 notices.
        let meta = self.meta()?;
        let fill_n = (meta.fill as f64 * node.cap as f64) as usize;
        // Inserts landing in the last (first) tenth of the page are treated as ascending
        // (descending) streams: keep the old side `fill` full instead of halving it. At the
        // edges of the key space late keys (timestamps with jitter) still belong to the
        // stream, so the window is wider there.
        let ipos = e.partition_point(|x| *x < incoming);
        let rwin = if node.high.is_none() { n / 4 } else { n / 10 };
        let lwin = if node.low == Item::MIN { n / 4 } else { n / 10 };
        let append = ipos >= n - rwin;
        let prepend = !append && ipos <= lwin;
        let want = if append {
            fill_n
        } else if prepend {
            n.saturating_sub(fill_n)
        } else {
            n / 2
        }
        .clamp(1, n - 1);
        let distinct = e[0].key != e[n - 1].key;
        // Ascending or descending streams, at the edges of the key space or inside it (ids
        // amid random keys; a root grown above an ascending stream leaves it in bounded
        // slots): the page's range has more room beyond its entries, in the stream's
        // direction, than its entries span. Random inserts near a page end do not qualify.
        // Or the insert lands in a gap wider than everything below it on the page spans
        // (a stream that other keys on the page have not caught up with).
        let span = e[n - 1].key - e[0].key;
        let above = if ipos < n {
            e[ipos].key
        } else {
            node.high.map_or(u64::MAX, |h| h.key)
        };
        let local = ipos >= n / 2 && above - incoming.key > incoming.key - e[0].key;
        let rstream = (append && node.high.is_none_or(|h| h.key - e[n - 1].key > span)) || local;
        let lstream = prepend && e[0].key - node.low.key > span;
        let stream = rstream || lstream;
        let parent = self.find_parent(&meta, blk, &node)?;
        let res = meta.residual_keys();
        // 1. Sideways: a parent slot boundary near the wanted split key.
        if let Parent::Model { node: pm, a, b, .. } = &parent {
            let (a, b) = (*a, *b);
            if b - a >= 2 {
                let mut best: Option<(usize, usize, u64)> = None;
                if distinct {
                    let s0 = pm.slot(e[want].key).clamp(a + 1, b - 1);
                    for s in [s0, (s0 + 1).min(b - 1)] {
                        let Some(bk) = pm.slot_low(s) else { continue };
                        let cl = e.partition_point(|x| x.key < bk);
                        if cl == 0 || cl == n {
                            continue;
                        }
                        if best.is_none_or(|(_, bc, _)| cl.abs_diff(want) < bc.abs_diff(want)) {
                            best = Some((s, cl, bk));
                        }
                    }
                    // Streams take any split that avoids a level: the slots ahead of the
                    // stream are empty, so lopsided pages do not last.
                    let min_side = if stream { 1 } else { n / 8 };
                    best = best.filter(|&(_, cl, _)| cl.min(n - cl) >= min_side);
                }
                // A stream whose page sits in one slot of the parent: open the next slot
                // with an empty page. If the stream has not reached it yet, the retry splits
                // this page down over its now bounded run, so a burst denser than the parent
                // expected deepens only the slots it passed, not the edge the stream grows at.
                if best.is_none() && rstream {
                    let s1 = pm.slot(e[n - 1].key) + 1;
                    if let Some(bk) = (s1 > a && s1 < b).then(|| pm.slot_low(s1)).flatten() {
                        // (Slots may be empty: the new page's range must not be.)
                        let room = pm.slot_low(b).is_none_or(|h| bk < h)
                            && node.high.is_none_or(|h| Item::key_start(bk) < h);
                        if bk > e[n - 1].key && room {
                            best = Some((s1, n, bk));
                        }
                    }
                }
                if best.is_none() && lstream {
                    let s1 = pm.slot(e[0].key);
                    if let Some(bk) = (s1 > a && s1 < b).then(|| pm.slot_low(s1)).flatten() {
                        // (Slots may be empty: the boundary must lie inside the page's range.)
                        if bk <= e[0].key && Item::key_start(bk) > node.low {
                            best = Some((s1, 0, bk));
                        }
                    }
                }
                if let Some((s, cl, bk)) = best {
                    return self.split_write(
                        blk,
                        &node,
                        &e,
                        cl,
                        Item::key_start(bk),
                        How::Sideways(s),
                        res,
                    );
                }
            }
        }
        // 2. Grow: the rightmost page of an ascending stream sits in the last, open-ended
        // slot of its parent, so a split-down would add a level that fills up again after
        // 1024 pages. A new root whose slots each span the whole key range so far instead
        // adds one level per factor of ~1000 in size (the old spine keeps its open-ended
        // domains, cut off by the new root: `verify` accepts that).
        if let Parent::Model { node: pm, a, b, .. } = &parent {
            if distinct
                && append
                && node.high.is_none()
                && b - a == 1
                && *b == pm.fanout
                && pm.high.is_none()
            {
                if let Some((m, cl, bk)) = self.plan_grow(&e, want)? {
                    return self.split_write(
                        blk,
                        &node,
                        &e,
                        cl,
                        Item::key_start(bk),
                        How::Grow(m, meta.root),
                        res,
                    );
                }
            }
        }
        // 3. Down: a new model node over this page's parent range.
        if distinct && !matches!(parent, Parent::None) {
            let (low, high) = match &parent {
                Parent::Model { node: pm, a, b, .. } => {
                    (pm.slot_low(*a).unwrap_or(node.low.key), pm.slot_low(*b))
                }
                _ => (0, None),
            };
            // Streams inside the key space (ids amid random keys, a run that passed its
            // slot) extrapolate too: a rank fit over a page would put the stream's next keys
            // all in its last slot and deepen the tree again one page later.
            let de = if rstream {
                Edge::Right
            } else if lstream {
                Edge::Left
            } else {
                Edge::Inner
            };
            if let Some((m, f, cl, bk)) = plan_down(&e, want, low, high, de) {
                let m = ModelNode {
                    model: m,
                    low,
                    high,
                    level: 0,
                    fanout: f,
                };
                return self.split_write(
                    blk,
                    &node,
                    &e,
                    cl,
                    Item::key_start(bk),
                    How::Down(m),
                    res,
                );
            }
        }
        // 4. Chain: cut at an item (handles runs of one key, and pages inside chains).
        let cut = e[want];
        let bound = if e[want - 1].key < cut.key {
            Item::key_start(cut.key)
        } else {
            cut
        };
        self.split_write(blk, &node, &e, want, bound, How::Chain, res)
    }

    /// Group 1 of a split (then group 2 unless it is a chain split).
    #[allow(clippy::too_many_arguments)]
    fn split_write(
        &mut self,
        blk: u32,
        node: &DataNode,
        e: &[Item],
        cl: usize,
        bound: Item,
        how: How,
        res: bool,
    ) -> Result<()> {
        atomic_with(&mut self.store, |g| {
            // Lock order: the page, then new pages (nobody else can reach them), metapage last.
            recheck(g, blk, node, Some(e))?;
            let nb = g.allocate()?;
            let (flags, pending, mb) = match &how {
                How::Chain => (0, 0, None),
                How::Sideways(s) => (F_INCOMPLETE, *s as u32, None),
                How::Down(_) | How::Grow(..) => {
                    let mb = g.allocate()?;
                    (F_INCOMPLETE | F_PENDING_DOWN, mb, Some(mb))
                }
            };
            let right = DataSpec {
                entries: &e[cl..],
                low: bound,
                high: node.high,
                right: node.right,
                flags: 0,
                pending: 0,
                residual: res,
            };
            if !right.write(g.modify(nb)?) {
                return invariant(nb, "right half does not fit");
            }
            let left = DataSpec {
                entries: &e[..cl],
                low: node.low,
                high: Some(bound),
                right: nb,
                flags,
                pending,
                residual: res,
            };
            if !left.write(g.modify(blk)?) {
                return invariant(blk, "left half does not fit");
            }
            let (m, left) = match &how {
                How::Down(m) => (Some(m), blk),
                How::Grow(m, old_root) => (Some(m), *old_root),
                _ => (None, blk),
            };
            if let (Some(m), Some(mb)) = (m, mb) {
                let mslot = m.slot(bound.key);
                let children: Vec<u32> = (0..m.fanout)
                    .map(|s| if s < mslot { left } else { nb })
                    .collect();
                m.encode(g.modify(mb)?, &children);
            }
            let down = mb.is_some();
            bump_meta(g, |m| {
                m.n_data = m.n_data.saturating_add(1);
                m.n_model = m.n_model.saturating_add(down as u32);
                m.version = m.version.wrapping_add(1);
            })
        })?;
        if matches!(how, How::Chain) || self.crash_after_split_group1 {
            return Ok(());
        }
        self.finish_split(blk)
    }

    /// Model of a new root for `How::Grow`: slot 0 (and every key below the smallest key in
    /// the index) is the old root; each further slot spans the key range from the smallest
    /// key to the split key. Returns the model, the left count and the split key, or `None`
    /// if the key space above is too small for that (then the page splits down instead).
    fn plan_grow(&self, e: &[Item], want: usize) -> Result<Option<(ModelNode, usize, u64)>> {
        let kmin = match self
            .range(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                crate::Direction::Forward,
            )
            .next()
        {
            Some(r) => r?.0.min(e[0].key),
            None => e[0].key,
        };
        let cut = e[want].key;
        if cut <= kmin {
            return Ok(None);
        }
        let model = LinearModel {
            base: kmin,
            slope: 1.0 / (cut - kmin) as f64,
            intercept: 0.0,
        };
        let m = ModelNode {
            model,
            low: 0,
            high: None,
            level: 0,
            fanout: MAX_FANOUT,
        };
        let (Some(bk), Some(_)) = (m.slot_low(1), m.slot_low(2)) else {
            return Ok(None);
        };
        let cl = e.partition_point(|x| x.key < bk);
        if cl == 0 || bk <= e[0].key {
            return Ok(None);
        }
        Ok(Some((m, cl, bk)))
    }

    /// Second group of a split: link the new page (or model node) into the parent and clear
    /// the flag. Safe to run concurrently with another writer finishing the same split: the
    /// loser finds the flag clear under the page's exclusive lock and does nothing.
    pub(crate) fn finish_split(&mut self, blk: u32) -> Result<()> {
        for _ in 0..MAX_FINISH_ATTEMPTS {
            match self.try_finish_split(blk) {
                Err(Error::Retry { .. }) => continue,
                r => return r,
            }
        }
        invariant(blk, "could not finish an incomplete split")
    }

    fn try_finish_split(&mut self, blk: u32) -> Result<()> {
        let Some(node) = read_with(&self.store, blk, |p| live_data(p, blk))? else {
            return Ok(()); // merged away or reused: no split of ours to finish
        };
        if !node.incomplete() {
            return Ok(());
        }
        let meta = self.meta()?;
        let parent = self.find_parent(&meta, blk, &node)?;
        let down = node.flags & F_PENDING_DOWN != 0;
        // The pending model page is unreachable until linked, and its domain never changes.
        let (mdom, mchild0) = if down {
            let mb = node.pending;
            let (m, c0) = read_with(&self.store, mb, |p| {
                let m = ModelNode::decode(p, mb)?;
                let c0 = m.child(p, 0);
                Ok((m, c0))
            })?;
            (Some((m.low, m.high)), c0)
        } else {
            (None, blk)
        };
        // A new root above the old one (`How::Grow`): its first slot holds the old root.
        if down && mchild0 != blk && mdom == Some((0, None)) {
            return atomic_with(&mut self.store, |g| {
                let p = g.modify(blk)?;
                let Some(mut n) = live_data(p, blk)?.filter(|n| n.incomplete()) else {
                    return Ok(());
                };
                if n.flags != node.flags || n.pending != node.pending {
                    return Err(Error::Retry { blk });
                }
                n.set_flags(p, n.flags & !(F_INCOMPLETE | F_PENDING_DOWN), 0);
                let mp = g.modify(META_BLOCK)?;
                let mut m = Meta::decode(mp)?;
                if m.root != mchild0 {
                    return invariant(
                        blk,
                        format!(
                            "new root's first child {mchild0} is not the root {}",
                            m.root
                        ),
                    );
                }
                m.root = node.pending;
                m.levels = m.levels.saturating_add(1);
                m.version = m.version.wrapping_add(1);
                m.encode(mp);
                Ok(())
            });
        }
        let pb = match parent {
            Parent::Meta => None,
            Parent::Model { blk: pb, depth, .. } => Some((pb, depth)),
            // Our reads raced a change of the tree above; look again.
            Parent::None => return Err(Error::Retry { blk }),
        };
        atomic_with(&mut self.store, |g| {
            // Lock order: child, parent, metapage.
            let p = g.modify(blk)?;
            let Some(mut n) = live_data(p, blk)?.filter(|n| n.incomplete()) else {
                return Ok(()); // another writer finished it
            };
            if n.flags != node.flags
                || n.pending != node.pending
                || n.right != node.right
                || n.high != node.high
            {
                return Err(Error::Retry { blk });
            }
            n.set_flags(p, n.flags & !(F_INCOMPLETE | F_PENDING_DOWN), 0);
            let Some(h) = n.high else {
                return invariant(blk, "incomplete split without a high key");
            };
            let Some((pb, depth)) = pb else {
                if !down {
                    return invariant(blk, "incomplete sideways split of the root page");
                }
                let mp = g.modify(META_BLOCK)?;
                let mut m = Meta::decode(mp)?;
                if m.root != blk {
                    return Err(Error::Retry { blk });
                }
                if mdom != Some((0, None)) {
                    return invariant(blk, "pending root model does not cover the whole key space");
                }
                m.root = node.pending;
                m.levels = m.levels.saturating_add(1);
                m.version = m.version.wrapping_add(1);
                m.encode(mp);
                return Ok(());
            };
            let pp = g.modify(pb)?;
            let pm = ModelNode::decode(pp, pb)?;
            let s0 = pm.slot(n.low.key);
            if pm.child(pp, s0) != blk {
                return Err(Error::Retry { blk }); // not (or no longer) our parent
            }
            let (a, b) = pm.run_of(pp, s0);
            let (target, from) = if let Some(dom) = mdom {
                if dom != (pm.slot_low(a).unwrap_or(u64::MAX), pm.slot_low(b)) {
                    return invariant(
                        blk,
                        format!("pending model domain {dom:?} does not match parent run {a}..{b}"),
                    );
                }
                (node.pending, a)
            } else {
                let s = node.pending as usize;
                if s <= a || s >= b {
                    return invariant(
                        blk,
                        format!("incomplete split records slot {s} outside run {a}..{b}"),
                    );
                }
                if pm.slot_low(s) != Some(h.key) {
                    return invariant(
                        blk,
                        format!("split key {} is not the low key of parent slot {s}", h.key),
                    );
                }
                (node.right, s)
            };
            for s in from..b {
                pm.set_child(pp, s, target);
            }
            if down {
                let mp = g.modify(META_BLOCK)?;
                let mut m = Meta::decode(mp)?;
                // `depth` counts from the root we read: a root grown since puts the page a
                // level deeper than that, so find the parent again from the new root.
                if m.root != meta.root {
                    return Err(Error::Retry { blk });
                }
                m.levels = m.levels.max(depth as u32 + 3);
                m.version = m.version.wrapping_add(1);
                m.encode(mp);
            }
            Ok(())
        })
    }
}

/// Slot width for a stream that has `room` keys of its node's domain ahead of the split key,
/// when `MAX_FANOUT - 1` slots of `span` (the keys of a page filled to `fill`) would not
/// reach the domain's end: at least `WIDE_SLOT_PAGES` pages' span, so each slot is later
/// split down once into a node worth its page, and at most `MAX_FANOUT` pages' span. Up to
/// a quarter wider than `span`, the slots are just widened: each still fits a page (a node
/// split down in a wide slot would otherwise get wide slots again, and a level more).
/// `None` if `span` reaches the end.
fn wide_slot(room: u64, span: u64) -> Option<u64> {
    let w = room.div_ceil(MAX_FANOUT as u64 - 1);
    if w <= span {
        None
    } else if w <= span.saturating_add(span / 4) {
        Some(w)
    } else {
        Some(w.clamp(
            span.saturating_mul(WIDE_SLOT_PAGES),
            span.saturating_mul(MAX_FANOUT as u64),
        ))
    }
}

/// Model for a split-down of entries `e` over domain `[low, high)`: returns the model,
/// fanout, left count and the boundary key, or `None` if no slot boundary separates them.
fn plan_down(
    e: &[Item],
    want: usize,
    low: u64,
    high: Option<u64>,
    edge: Edge,
) -> Option<(LinearModel, usize, usize, u64)> {
    let n = e.len();
    let (model, f) = match edge {
        // Rightmost page of an ascending stream: slot width = the key span of the part
        // that stays left, so later (roughly) ascending keys fill the following slots at the
        // same density, one sideways split at a time, instead of deepening the tree.
        // Models are based at the first key, not the domain start, to keep f64 precision.
        Edge::Right => {
            // Twice the smaller half's span: one gap in the stream (a pause between bursts
            // of timestamps) must not make every later slot too wide to split sideways.
            // Anchored so that slot 1 starts at the split key: keys below it (however far,
            // e.g. older keys that are not part of the stream) all go to slot 0.
            let h = want / 2;
            let span = (e[h]
                .key
                .saturating_sub(e[0].key)
                .min(e[want].key.saturating_sub(e[h].key)))
            .saturating_mul(2)
            .max(1);
            // In a bounded range wider than the node's slots reach, slots 1.. should reach
            // its end: were the last slot left to hold the rest, the stream would split
            // down again there, a level per `MAX_FANOUT` pages. Wider slots — at least
            // `WIDE_SLOT_PAGES` pages' span, so each is split down once into a node worth
            // its page, at most `MAX_FANOUT` — make that a level per factor of ~1000 in
            // size instead. (Slot 1 still starts at the split key.)
            let wide = high.and_then(|hi| wide_slot(hi.saturating_sub(e[want].key), span));
            let (span, base) = match wide {
                Some(w) => (w, e[want].key.saturating_sub(w)),
                None => (span, e[want].key.saturating_sub(span).max(e[0].key)),
            };
            (
                LinearModel {
                    base,
                    slope: 1.0 / span as f64,
                    intercept: 0.0,
                },
                MAX_FANOUT,
            )
        }
        // Leftmost page of a descending stream: the mirror image. The part that stays right
        // lands in the last slot; earlier slots extend leftwards at its density, and keys
        // below the model's base all go to slot 0. The domain is always bounded below, so
        // when it reaches further than the slots would, they are widened as for an
        // ascending stream in a bounded range: without that, the stream would split slot 0
        // down again every `MAX_FANOUT` pages, a level each time (16 levels at 10M keys).
        Edge::Left => {
            let h = want + (n - want) / 2;
            let span = (e[h]
                .key
                .saturating_sub(e[want].key)
                .min(e[n - 1].key.saturating_sub(e[h].key)))
            .saturating_mul(2)
            .max(1);
            // Anchored so that the last slot starts at the split key. When the slots reach
            // `low`, they divide `[low, split key)` evenly, at most `span` wide: slot 0 then
            // holds no more than the others (a remainder added to it would overflow its page
            // and split it down a level).
            let room = e[want].key.saturating_sub(low);
            let (span, slots) = match wide_slot(room, span) {
                Some(w) => (w, MAX_FANOUT as u64 - 1),
                None => {
                    let j = room.div_ceil(span).max(1);
                    (room.div_ceil(j).max(1), j)
                }
            };
            let base = e[want].key.saturating_sub(span.saturating_mul(slots));
            (
                LinearModel {
                    base,
                    slope: 1.0 / span as f64,
                    intercept: 0.0,
                },
                MAX_FANOUT,
            )
        }
        Edge::Inner => {
            let f = SPLIT_DOWN_FANOUT;
            (
                LinearModel::fit_ranks(e.iter().map(|x| x.key), e[0].key, f as f64 / n as f64),
                f,
            )
        }
    };
    let node = ModelNode {
        model,
        low,
        high,
        level: 0,
        fanout: f,
    };
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
