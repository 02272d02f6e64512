//! Range iteration in both directions from any bound.

use std::ops::Bound;

use crate::data_node::DataNode;
use crate::error::{invariant, Result};
use crate::key::{Item, Tid};
use crate::page::Page;
use crate::page::INVALID_BLOCK;
use crate::search::{bound_lt, live_data, WalkLimit, MAX_RESTARTS};
use crate::store::{read_with, PageStore};
use crate::Alex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// Iterator over `(key, tid)` in (key, tid) order (or reverse). Copies one page's matching
/// entries at a time, so it holds no page between `next` calls.
pub struct RangeIter<'a, S: PageStore> {
    ix: &'a Alex<S>,
    dir: Direction,
    /// Forward: first item wanted. Backward: exclusive upper item (None = +inf).
    lo: Item,
    hi: Option<Item>,
    buf: Vec<Item>,
    pos: usize,
    /// Forward: next page and the high key it must start at or after.
    next: u32,
    prev_high: Option<Item>,
    started: bool,
    done: bool,
}

impl<S: PageStore> Alex<S> {
    /// Entries with `lo <= key <= hi` per the bounds, in the given direction.
    pub fn range(&self, lo: Bound<u64>, hi: Bound<u64>, dir: Direction) -> RangeIter<'_, S> {
        let mut done = false;
        let lo_item = match lo {
            Bound::Included(k) => Item::key_start(k),
            Bound::Excluded(k) if k == u64::MAX => {
                done = true;
                Item::MIN
            }
            Bound::Excluded(k) => Item::key_start(k + 1),
            Bound::Unbounded => Item::MIN,
        };
        let hi_item = match hi {
            Bound::Included(k) if k == u64::MAX => None,
            Bound::Included(k) => Some(Item::key_start(k + 1)),
            Bound::Excluded(k) => Some(Item::key_start(k)),
            Bound::Unbounded => None,
        };
        if hi_item.is_some_and(|h| h <= lo_item) {
            done = true;
        }
        RangeIter {
            ix: self,
            dir,
            lo: lo_item,
            hi: hi_item,
            buf: Vec::new(),
            pos: 0,
            next: INVALID_BLOCK,
            prev_high: None,
            started: false,
            done,
        }
    }
}

impl<S: PageStore> RangeIter<'_, S> {
    fn fill_forward(&mut self) -> Result<()> {
        // The first item still wanted: the lower bound, then the last page's high key.
        let from = match self.prev_high {
            Some(h) if self.started => h.max(self.lo),
            _ => self.lo,
        };
        let mut next = self.started.then_some(self.next);
        self.started = true;
        let hi = self.hi;
        let buf = &mut self.buf;
        self.pos = 0;
        // Copy the entries in [from, hi) of a page that covers `from`; the page's right-link
        // and high key, and whether `hi` was reached.
        let mut collect = |n: &DataNode, p: &Page| {
            buf.clear();
            let (mut i, _) = n.find(p, from);
            let mut stop = false;
            while let Some(j) = n.next_occ(p, i) {
                let it = n.item(p, j);
                if hi.is_some_and(|h| it >= h) {
                    stop = true;
                    break;
                }
                buf.push(it);
                i = j + 1;
            }
            (n.right, n.high, stop)
        };
        let mut found = None;
        for _ in 0..MAX_RESTARTS {
            found = match next {
                // The right-link we saw may name a page merged into the one we came from,
                // or reused since: then go by the root.
                Some(b) => read_with(&self.ix.store, b, |p| {
                    Ok(match live_data(p, b)? {
                        Some(n) if n.covers(from) => Some(collect(&n, p)),
                        _ => None,
                    })
                })?,
                // Route and copy in one read (a point lookup reads one page).
                None => Some(self.ix.read_leaf_with(from, |n, p| Ok(collect(n, p)))?.1),
            };
            if found.is_some() {
                break;
            }
            next = None;
        }
        let Some((right, high, stop)) = found else {
            return invariant(self.next, "forward scan kept landing on moved pages");
        };
        // Stop when the page's high key already reaches past the upper bound.
        let beyond = match (high, hi) {
            (None, _) => true,
            (Some(h), Some(x)) => h >= x,
            (Some(_), None) => false,
        };
        if stop || beyond || right == INVALID_BLOCK {
            self.done = true;
        }
        self.next = right;
        self.prev_high = high;
        Ok(())
    }

    fn fill_backward(&mut self) -> Result<()> {
        // Find the page holding the greatest entry < self.hi.
        let key = match self.hi {
            None => u64::MAX,
            Some(x) if x.tid == Tid::MIN => {
                if x.key == 0 {
                    self.done = true;
                    self.buf.clear();
                    self.pos = 0;
                    return Ok(());
                }
                x.key - 1
            }
            Some(x) => x.key,
        };
        let mut blk = self.ix.reader_head(key)?;
        let (lo, hi) = (self.lo, self.hi);
        let buf = &mut self.buf;
        self.pos = 0;
        let mut limit = WalkLimit::default();
        let mut steps = 0usize;
        // Move right and collect in the same read: a split between two reads could move
        // entries below `hi` to a right sibling we would never visit.
        let (low, stop) = loop {
            buf.clear();
            let r = read_with(&self.ix.store, blk, |p| {
                // A stale route can name a page merged away or reused: go by the root.
                let Some(n) = live_data(p, blk)? else {
                    return Ok(Err(None));
                };
                if hi.is_some_and(|h| h <= n.low) {
                    return Ok(Err(None));
                }
                if bound_lt(n.high, hi) {
                    if n.right == INVALID_BLOCK {
                        return invariant(blk, "backward scan ran off the right-link chain");
                    }
                    return Ok(Err(Some(n.right)));
                }
                let end = match hi {
                    Some(h) => n.find(p, h).0,
                    None => n.cap,
                };
                let mut stop = false;
                let mut i = end;
                while let Some(j) = n.prev_occ(p, i) {
                    let it = n.item(p, j);
                    if it < lo {
                        stop = true;
                        break;
                    }
                    buf.push(it);
                    i = j;
                }
                Ok(Ok((n.low, stop)))
            })?;
            steps += 1;
            if limit.exceeded(&self.ix.store, steps.saturating_sub(MAX_RESTARTS)) {
                return invariant(blk, "backward scan ran off the right-link chain");
            }
            match r {
                Ok(x) => break x,
                Err(Some(right)) => blk = right,
                Err(None) => {
                    self.ix.readers.invalidate();
                    blk = self.ix.descend(key)?.leaf;
                }
            }
        };
        if stop || low <= lo || low == Item::MIN {
            self.done = true;
        }
        if !bound_lt(Some(low), self.hi) {
            return invariant(blk, "backward scan did not make progress");
        }
        self.hi = Some(low);
        Ok(())
    }
}

impl<S: PageStore> Iterator for RangeIter<'_, S> {
    type Item = Result<(u64, Tid)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(it) = self.buf.get(self.pos) {
                self.pos += 1;
                return Some(Ok((it.key, it.tid)));
            }
            if self.done {
                return None;
            }
            let r = match self.dir {
                Direction::Forward => self.fill_forward(),
                Direction::Backward => self.fill_backward(),
            };
            if let Err(e) = r {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
