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
            let (blk, (incomplete, present)) = self.find_leaf_with(item, |n, p| Ok((n.incomplete(), n.find(p, item).1)))?;
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
}
