//! Page merging (VACUUM): a data page absorbs its right sibling when the entries of both fit
//! one page at the bulk-load fill, so pages emptied or thinned by deletes are given back.
//!
//! One atomic group per merge, locking the right page, the left page, the parent (when it
//! routes to the right page) and the metapage: the left page is rewritten with both pages'
//! entries and the right page's high key and right-link; the parent's slots for the right
//! page are re-pointed to the left page; the right page is marked deleted (`F_DELETED`) and
//! its block returned to the caller for reuse.
//!
//! Entries move *left*, which readers never expect: a reader holding the deleted page's
//! block (a right-link it saw, a cached route) finds it deleted — or reused for another key
//! range, a data page not covering its item, or a model page — and starts over from the
//! root (`Error::Moved`, `search::live_data`). Live data pages still partition the key
//! space, so a page that covers an item is the right page however it was reached.
//!
//! A merge only joins pages with the same parent (or a right page reachable only by
//! right-link), so every data page keeps exactly one run of parent slots. The right page is
//! locked first: the binding takes VACUUM's cleanup lock there (a scan still returning
//! entries it copied from that page must finish first, or a later VACUUM could remove those
//! entries from their new page under it); only VACUUM merges, so no other group locks two
//! existing data pages and the order cannot deadlock.

use crate::data_node::{DataNode, DataSpec, F_DELETED};
use crate::error::{invariant, Error, Result};
use crate::insert::{recheck, Parent};
use crate::key::Item;
use crate::meta::Meta;
use crate::model_node::ModelNode;
use crate::page::{INVALID_BLOCK, META_BLOCK};
use crate::store::{atomic_with, read_with, PageStore};
use crate::Alex;

enum Step {
    /// The page absorbed its right sibling (whose block is freed): try the next one too.
    Merged(u32),
    /// Go on with this page.
    Next(u32),
    End,
}

/// A page's header and entries, from one read.
fn read_page<S: PageStore>(s: &S, blk: u32) -> Result<(DataNode, Vec<Item>)> {
    read_with(s, blk, |p| {
        let n = DataNode::decode(p, blk)?;
        let e = n.entries(p);
        Ok((n, e))
    })
}

impl<S: PageStore> Alex<S> {
    /// Merge adjacent data pages left to right while two neighbours' entries fit one page
    /// at the bulk-load fill. Returns the freed blocks (deleted pages) for the caller to
    /// hand out again from `WriteGroup::allocate`. `between` runs between merges (the
    /// binding checks for interrupts there).
    pub fn merge_pages(&mut self, mut between: impl FnMut()) -> Result<Vec<u32>> {
        let mut freed = Vec::new();
        let mut blk = self.meta()?.leftmost;
        // Every step merges a page away or moves right; concurrent growth could keep the
        // walk going, so it stops after about two passes' worth of steps.
        for _ in 0..2 * self.store.nblocks() as usize + 2 {
            between();
            match self.try_merge(blk)? {
                Step::Merged(r) => freed.push(r),
                Step::Next(r) => blk = r,
                Step::End => break,
            }
        }
        Ok(freed)
    }

    fn try_merge(&mut self, blk: u32) -> Result<Step> {
        let meta = self.meta()?;
        let (pn, pe) = read_page(&self.store, blk)?;
        if pn.deleted() {
            return invariant(blk, "merge walk reached a deleted page");
        }
        let r = pn.right;
        if r == INVALID_BLOCK {
            return Ok(Step::End);
        }
        if pn.incomplete() {
            return Ok(Step::Next(r));
        }
        let (rn, re) = read_page(&self.store, r)?;
        if rn.incomplete() || rn.deleted() || rn.low != pn.high.unwrap_or(rn.low) {
            return Ok(Step::Next(r));
        }
        let mut all = Vec::with_capacity(pe.len() + re.len());
        all.extend_from_slice(&pe);
        all.extend_from_slice(&re);
        let merged = DataSpec {
            entries: &all,
            low: pn.low,
            high: rn.high,
            right: rn.right,
            flags: 0,
            pending: 0,
            residual: meta.residual_keys(),
        };
        if all.len() as f64 > meta.fill as f64 * merged.capacity() as f64 {
            return Ok(Step::Next(r));
        }
        // The right page's parent slots go to the left page: only if that leaves the left
        // page one run of slots in one parent.
        let relink = match (
            self.find_parent(&meta, blk, &pn)?,
            self.find_parent(&meta, r, &rn)?,
        ) {
            (_, Parent::None) => None,
            (
                Parent::Model { blk: pm, b: pb, .. },
                Parent::Model {
                    blk: m, node, a, b, ..
                },
            ) if pm == m && pb == a => Some((m, node, a, b)),
            _ => return Ok(Step::Next(r)),
        };
        let res = atomic_with(&mut self.store, |g| {
            let (rp, _) = recheck(g, r, &rn, Some(&re))?;
            let gone = DataSpec {
                entries: &[],
                low: rn.low,
                high: rn.high,
                right: rn.right,
                flags: F_DELETED,
                pending: 0,
                residual: merged.residual,
            };
            if !gone.write(rp) {
                return invariant(r, "empty page did not fit");
            }
            let (pp, _) = recheck(g, blk, &pn, Some(&pe))?;
            if !merged.write(pp) {
                return invariant(blk, "merged entries did not fit");
            }
            if let Some((m, node, a, b)) = &relink {
                let mp = g.modify(*m)?;
                let cur = ModelNode::decode(mp, *m)?;
                let routes = cur == *node
                    && *a > 0
                    && cur.child(mp, *a) == r
                    && cur.run_of(mp, *a) == (*a, *b)
                    && cur.child(mp, a - 1) == blk;
                if !routes {
                    return Err(Error::Retry { blk: *m });
                }
                for s in *a..*b {
                    cur.set_child(mp, s, blk);
                }
            }
            // The parents were found from `meta.root`: a new root since (a split-down of
            // the root page, a grow) could have made a head page look parentless.
            let mp = g.modify(META_BLOCK)?;
            let mut m = Meta::decode(mp)?;
            if m.root != meta.root {
                return Err(Error::Retry { blk: META_BLOCK });
            }
            m.n_data = m.n_data.saturating_sub(1);
            m.version += 1;
            m.encode(mp);
            Ok(())
        });
        match res {
            Ok(()) => Ok(Step::Merged(r)),
            // A writer changed one of the pages since we read them: leave this pair.
            Err(Error::Retry { .. }) => Ok(Step::Next(r)),
            Err(e) => Err(e),
        }
    }
}
