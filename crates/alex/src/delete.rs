//! Deletes of (key, tid) entries. An emptied page stays in its chain with its range until
//! VACUUM merges it into its left neighbour (`merge.rs`).

use crate::error::{invariant, Error, Result};
use crate::insert::bump_meta;
use crate::key::{Item, Tid};
use crate::op::PageOp;
use crate::search::live_or_retry;
use crate::store::{atomic_with, Applied, ApplyLock, PageStore};
use crate::Alex;

/// `Error::Invalid` unless `items` ascend (strictly, if `distinct`).
fn ascending(items: &[Item], distinct: bool, what: &str) -> Result<()> {
    if items
        .windows(2)
        .any(|w| w[0] > w[1] || (distinct && w[0] == w[1]))
    {
        let which = if distinct { "distinct items" } else { "items" };
        return Err(Error::Invalid(format!(
            "{what} needs {which} in ascending order"
        )));
    }
    Ok(())
}

impl<S: PageStore> Alex<S> {
    /// Remove the entry (key, tid). Returns `false` if it was not present.
    pub fn delete(&mut self, key: u64, tid: Tid) -> Result<bool> {
        let item = Item::new(key, tid);
        for _ in 0..100_000 {
            let exact = self.meta()?.exact_count();
            // Presence is judged in the same read that checks the page covers the item.
            let (blk, (incomplete, present)) =
                self.find_leaf_with(item, |n, p| Ok((n.incomplete(), n.find(p, item).1)))?;
            if incomplete {
                self.finish_split(blk)?;
                continue;
            }
            if !present {
                return Ok(false);
            }
            let r = atomic_with(&mut self.store, |g| {
                let p = g.modify(blk)?;
                let mut n = live_or_retry(p, blk)?;
                if !n.covers(item) {
                    return Err(Error::Retry { blk });
                }
                if !n.remove(p, item) {
                    return Ok(false);
                }
                if exact {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_sub(1))?;
                }
                Ok(true)
            });
            match r {
                Err(Error::Retry { .. }) => continue,
                r => return r,
            }
        }
        invariant(0, "delete did not converge")
    }

    /// Remove many entries, given in ascending (key, tid) order, with one atomic group per
    /// data page rather than per entry (VACUUM). Returns how many were present and removed.
    pub fn delete_many(&mut self, items: &[Item]) -> Result<u64> {
        ascending(items, false, "delete_many")?;
        let mut removed = 0u64;
        let mut rest = items;
        let mut attempts = 0u64;
        while let Some(&first) = rest.first() {
            attempts += 1;
            if attempts > 100_000 + 4 * items.len() as u64 {
                return invariant(0, "delete_many did not converge");
            }
            let exact = self.meta()?.exact_count();
            let (blk, incomplete) = self.find_leaf_with(first, |n, _| Ok(n.incomplete()))?;
            if incomplete {
                self.finish_split(blk)?;
                continue;
            }
            let r = atomic_with(&mut self.store, |g| {
                let p = g.modify(blk)?;
                let mut n = live_or_retry(p, blk)?;
                if !n.covers(first) {
                    return Err(Error::Retry { blk });
                }
                // Every leading item this page covers is settled here, present or not.
                let mut settled = 0;
                let mut gone = 0u64;
                for &it in rest {
                    if !n.covers(it) {
                        break;
                    }
                    settled += 1;
                    if n.remove(p, it) {
                        gone += 1;
                    }
                }
                if exact && gone > 0 {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_sub(gone))?;
                }
                Ok((settled, gone))
            });
            match r {
                Err(Error::Retry { .. }) => continue,
                Err(e) => return Err(e),
                Ok((settled, gone)) => {
                    removed += gone;
                    rest = &rest[settled..];
                }
            }
        }
        Ok(removed)
    }
}

impl<S: PageStore> Alex<S> {
    /// Remove entries that may belong to rows dead to every transaction (ascending
    /// (key, tid) order; absent ones are skipped), one [`PageOp::Remove`] per data page.
    /// For each page, `judge(blk, present)` is called with the candidates found on it
    /// while it is locked (so no concurrent VACUUM can remove them and let their row
    /// slots be reused in between) and returns those to remove and the value to log with
    /// them (see the op). A page some scan holds is skipped, as is an index with an exact
    /// key count (the op changes one page). Returns how many entries were removed.
    pub fn remove_entries(
        &mut self,
        items: &[Item],
        judge: &mut dyn FnMut(u32, &[Item]) -> (Vec<Item>, u32),
    ) -> Result<u64> {
        ascending(items, true, "remove_entries")?;
        if self.meta()?.exact_count() {
            return Ok(0);
        }
        let mut removed = 0u64;
        let mut rest = items;
        let mut attempts = 0u64;
        while let Some(&first) = rest.first() {
            attempts += 1;
            if attempts > 100_000 + 4 * items.len() as u64 {
                return invariant(0, "remove_entries did not converge");
            }
            let (blk, _) = self.find_leaf_with(first, |_, _| Ok(()))?;
            // Every leading item the page covers is settled by this page, present or not.
            let mut settled = 0;
            let mut gone = 0u64;
            let r = self.store.apply(blk, ApplyLock::CleanupIfFree, &mut |p| {
                let n = live_or_retry(p, blk)?;
                if !n.covers(first) {
                    return Err(Error::Retry { blk });
                }
                settled = rest.iter().take_while(|&&it| n.covers(it)).count();
                let present: Vec<Item> = rest[..settled]
                    .iter()
                    .copied()
                    .filter(|&it| n.find(p, it).1)
                    .collect();
                if present.is_empty() {
                    return Ok(None);
                }
                let (mut dead, conflict) = judge(blk, &present);
                dead.sort_unstable();
                dead.dedup();
                dead.retain(|it| present.binary_search(it).is_ok());
                gone = dead.len() as u64;
                Ok((!dead.is_empty()).then_some(PageOp::Remove {
                    items: dead,
                    conflict,
                }))
            });
            match r {
                Err(Error::Retry { .. }) => continue,
                Err(e) => return Err(e),
                Ok(Applied::Busy) => {
                    // Skip the page's candidates: the next pass over them may find it free.
                    let blk_items = self.find_leaf_with(first, |n, _| {
                        Ok(rest.iter().take_while(|&&it| n.covers(it)).count())
                    })?;
                    rest = &rest[blk_items.1.max(1)..];
                }
                Ok(Applied::Yes) => {
                    removed += gone;
                    rest = &rest[settled..];
                }
                Ok(Applied::Unchanged) => rest = &rest[settled..],
            }
        }
        Ok(removed)
    }

    /// VACUUM's pass: visit every data page left to right, each in its own atomic group (the
    /// binding takes a cleanup lock on it, waiting for scans still returning entries they
    /// copied from it), and remove the entries `is_dead` picks. A group that removes nothing
    /// is abandoned, so it writes no WAL. Visiting *every* page in key order is nbtree's
    /// interlock: an entry a split moved right after a scan copied it is only removed once
    /// the scan has left the page it copied from. Returns (entries kept, entries removed).
    pub fn vacuum_pages(
        &mut self,
        mut is_dead: impl FnMut(u64, Tid) -> bool,
        mut between: impl FnMut(),
    ) -> Result<(u64, u64)> {
        let (mut kept, mut removed) = (0u64, 0u64);
        let mut from = Item::MIN;
        let mut next = Some(self.meta()?.leftmost);
        let mut restarts = 0;
        let exact = self.meta()?.exact_count(); // a build option: never changes
        loop {
            between();
            let blk = match next {
                Some(b) => b,
                None => self.find_leaf_with(from, |_, _| Ok(()))?.0,
            };
            // (right-link, high key, kept, removed) of the page, also when nothing changed.
            let mut seen = None;
            let r = atomic_with(&mut self.store, |g| {
                let p = g.modify(blk)?;
                let mut n = match live_or_retry(p, blk) {
                    Ok(n) if n.covers(from) => n,
                    _ => return Err(Error::Moved { blk }),
                };
                // (Entries below `from` cannot be here while only VACUUM merges pages.)
                let mut mine = n.entries(p);
                mine.retain(|it| *it >= from);
                let dead: Vec<Item> = mine
                    .iter()
                    .copied()
                    .filter(|it| is_dead(it.key, it.tid))
                    .collect();
                let live = mine.len() - dead.len();
                for &it in &dead {
                    n.remove(p, it);
                }
                seen = Some((n.right, n.high, live as u64, dead.len() as u64));
                if dead.is_empty() {
                    return Err(Error::Retry { blk }); // nothing to log
                }
                if exact {
                    bump_meta(g, |m| m.n_keys = m.n_keys.saturating_sub(dead.len() as u64))?;
                }
                Ok(())
            });
            match (r, seen) {
                // Retry: the page had nothing to remove (the group was abandoned).
                (Ok(()), Some(s)) | (Err(Error::Retry { .. }), Some(s)) => {
                    let (right, high, k, d) = s;
                    kept += k;
                    removed += d;
                    match high {
                        None => return Ok((kept, removed)),
                        Some(h) => from = h,
                    }
                    next = Some(right);
                }
                (Err(Error::Moved { .. }), _) => {
                    restarts += 1;
                    if restarts > 1000 + self.store.nblocks() as usize {
                        return invariant(blk, "vacuum walk kept landing on moved pages");
                    }
                    next = None;
                }
                (Err(e), _) => return Err(e),
                (Ok(()), None) => return invariant(blk, "vacuum group did not report its page"),
            }
        }
    }
}
