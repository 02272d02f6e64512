//! Descent and point lookups.

use crate::data_node::DataNode;
use crate::error::{corrupt, invariant, Result};
use crate::key::{Item, Tid};
use crate::model_node::ModelNode;
use crate::page::{self, Kind, INVALID_BLOCK};
use crate::store::{read_with, PageStore};
use crate::Alex;

/// Deepest tree we accept (a corrupt cycle must not loop forever).
pub(crate) const MAX_DEPTH: usize = 256;

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

impl<S: PageStore> Alex<S> {
    /// Follow the models from the root to the head data page for `key`.
    pub(crate) fn descend(&self, key: u64) -> Result<Descent> {
        let root = self.meta()?.root;
        let mut blk = root;
        for _ in 0..MAX_DEPTH {
            let next = read_with(&self.store, blk, |p| match page::check(p, blk)? {
                Kind::Model => {
                    let m = ModelNode::decode(p, blk)?;
                    Ok(Some(m.child(p, m.slot(key))))
                }
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

    /// Read a data page's header.
    pub(crate) fn data_header(&self, blk: u32) -> Result<DataNode> {
        read_with(&self.store, blk, |p| DataNode::decode(p, blk))
    }

    /// Move right from `blk` while the page's high key is `<= item`.
    pub(crate) fn move_right(&self, mut blk: u32, item: Item) -> Result<(u32, DataNode)> {
        let limit = self.store.nblocks();
        for _ in 0..=limit {
            let n = self.data_header(blk)?;
            if n.high.is_some_and(|h| h <= item) {
                if n.right == INVALID_BLOCK {
                    return corrupt(blk, "finite high key but no right-link");
                }
                blk = n.right;
                continue;
            }
            if item < n.low {
                return invariant(blk, format!("routed to a page whose low key {:?} is above {:?}", n.low, item));
            }
            return Ok((blk, n));
        }
        invariant(blk, "right-link chain longer than the relation (cycle?)")
    }

    /// The data page whose range holds `item`.
    pub(crate) fn find_leaf(&self, item: Item) -> Result<(u32, DataNode)> {
        let d = self.descend(item.key)?;
        self.move_right(d.leaf, item)
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
        let (mut blk, _) = self.find_leaf(start)?;
        let limit = self.store.nblocks();
        for _ in 0..=limit {
            let next = read_with(&self.store, blk, |p| {
                let n = DataNode::decode(p, blk)?;
                let (mut i, _) = n.find(p, start);
                while let Some(j) = n.next_occ(p, i) {
                    if n.key(p, j) != key {
                        return Ok(None);
                    }
                    out.push(n.tid(p, j));
                    i = j + 1;
                }
                match n.high {
                    Some(h) if h.key == key && n.right != INVALID_BLOCK => Ok(Some(n.right)),
                    _ => Ok(None),
                }
            })?;
            match next {
                Some(r) => blk = r,
                None => return Ok(out.len() - before),
            }
        }
        invariant(blk, "duplicate chain longer than the relation (cycle?)")
    }

    /// Whether the exact entry (key, tid) is present.
    pub fn contains(&self, key: u64, tid: Tid) -> Result<bool> {
        let item = Item::new(key, tid);
        let (blk, _) = self.find_leaf(item)?;
        read_with(&self.store, blk, |p| Ok(DataNode::decode(p, blk)?.find(p, item).1))
    }
}
