//! Reader-side cache of the model levels (what the binding would keep in `rd_amcache`).
//!
//! After enough lookups through one `Alex` value to pay for it, the model pages reachable
//! from the root are copied into memory once; lookups then route by arithmetic over these
//! copies and read only the data page. The copy is never updated in place, and it does not
//! have to be: model pages never move, so a stale route still ends at or left of the page
//! holding the key, and the move-right walk on the data pages fixes it — or at a data page
//! merged away or reused since, which the reader recognises and answers by dropping the
//! copy and descending from the metapage root (see `concurrency`). A lookup that
//! needed two or more right-links (a chain, or a stale route) checks the metapage version
//! and drops a copy older than it; a new one is built after the next batch of lookups.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::Result;
use crate::meta::Meta;
use crate::model::LinearModel;
use crate::model_node::ModelNode;
use crate::page::{self, Kind};
use crate::store::{read_with, PageStore};

/// Largest copy kept (model pages); deeper levels are then routed through the pages.
const MAX_NODES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Child {
    /// A data page (when copied; a merge may since have freed and reused it).
    Data(u32),
    /// A model page that is not in the copy.
    Page(u32),
    /// Index into `RouteCache::nodes`.
    Node(u32),
}

struct CNode {
    model: LinearModel,
    children: Box<[Child]>,
}

pub(crate) struct RouteCache {
    /// Metapage version when built (every split bumps it).
    pub(crate) version: u64,
    root: Child,
    nodes: Vec<CNode>,
}

impl RouteCache {
    fn build<S: PageStore + ?Sized>(s: &S, meta: &Meta) -> Result<RouteCache> {
        let mut rc = RouteCache {
            version: meta.version,
            root: Child::Data(meta.root),
            nodes: Vec::new(),
        };
        rc.root = rc.add(s, meta.root)?;
        Ok(rc)
    }

    /// Copy the subtree at `blk` (depth first, bounded by `MAX_NODES`).
    fn add<S: PageStore + ?Sized>(&mut self, s: &S, blk: u32) -> Result<Child> {
        let node = read_with(s, blk, |p| match page::kind_fast(p, blk)? {
            Kind::Model => {
                let m = ModelNode::decode(p, blk)?;
                Ok(Some((m.model, m.children(p))))
            }
            _ => Ok(None),
        })?;
        let Some((model, blocks)) = node else {
            return Ok(Child::Data(blk));
        };
        if self.nodes.len() >= MAX_NODES {
            return Ok(Child::Page(blk));
        }
        let idx = self.nodes.len();
        self.nodes.push(CNode {
            model,
            children: Box::new([]),
        });
        let mut children = Vec::with_capacity(blocks.len());
        let mut s0 = 0;
        while s0 < blocks.len() {
            let mut s1 = s0 + 1;
            while s1 < blocks.len() && blocks[s1] == blocks[s0] {
                s1 += 1;
            }
            let c = self.add(s, blocks[s0])?;
            children.extend(std::iter::repeat_n(c, s1 - s0));
            s0 = s1;
        }
        self.nodes[idx].children = children.into_boxed_slice();
        Ok(Child::Node(idx as u32))
    }

    /// The first page (data page, or a model page not in the copy) on `key`'s route.
    #[inline]
    pub(crate) fn route(&self, key: u64) -> Child {
        let mut c = self.root;
        // Bounded: the copy is a tree built depth first, node indexes only grow downwards.
        for _ in 0..=self.nodes.len() {
            let Child::Node(i) = c else { return c };
            let n = &self.nodes[i as usize];
            c = n.children[n.model.slot(key, n.children.len())];
        }
        c
    }
}

/// The cache slot in an `Alex` value.
#[derive(Default)]
pub(crate) struct CacheSlot {
    tree: RwLock<Option<Arc<RouteCache>>>,
    /// Lookups since the copy was last dropped.
    lookups: AtomicU64,
}

impl CacheSlot {
    /// The current copy, building one if enough lookups went by to amortise reading every
    /// model page and the kind of each child (about one page read per lookup).
    pub(crate) fn get<S: PageStore + ?Sized>(
        &self,
        s: &S,
        meta: impl FnOnce() -> Result<Meta>,
    ) -> Result<Option<Arc<RouteCache>>> {
        if let Some(t) = self.tree.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(Some(t.clone()));
        }
        let n = self.lookups.fetch_add(1, Ordering::Relaxed);
        if n < 64 || n & 63 != 0 {
            return Ok(None);
        }
        let m = meta()?;
        if n < 256 + m.n_data as u64 + m.n_model as u64 {
            return Ok(None);
        }
        let t = Arc::new(RouteCache::build(s, &m)?);
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
        Ok(Some(t))
    }

    /// The metapage version of the copy held, if any.
    pub(crate) fn version(&self) -> Option<u64> {
        self.tree
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|t| t.version)
    }

    /// Whether a copy is held (lookups then read only data pages, unless the copy was
    /// capped at `MAX_NODES`).
    pub(crate) fn is_built(&self) -> bool {
        self.tree
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub(crate) fn invalidate(&self) {
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.lookups.store(0, Ordering::Relaxed);
    }
}
