//! Deletes of one (key, tid) entry. Pages are never merged or freed (so block numbers that
//! concurrent readers hold stay valid); an emptied page stays in its chain with its range.

use crate::data_node::DataNode;
use crate::error::{invariant, Error, Result};
use crate::insert::bump_meta;
use crate::key::{Item, Tid};
use crate::store::{atomic_with, PageStore};
use crate::Alex;

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
                let mut n = DataNode::decode(p, blk)?;
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
        if items.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Invalid(
                "delete_many needs items in ascending order".into(),
            ));
        }
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
                let mut n = DataNode::decode(p, blk)?;
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
