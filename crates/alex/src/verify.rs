//! Full structural check of an index.

use std::collections::{HashMap, HashSet};

use crate::data_node::{check_contents, is_unused_page, DataNode, F_INCOMPLETE, F_PENDING_DOWN};
use crate::error::{invariant, Result};
use crate::key::Item;
use crate::model_node::ModelNode;
use crate::page::{self, Kind, INVALID_BLOCK, PAGE_SIZE};
use crate::search::MAX_DEPTH;
use crate::store::{read_with, PageStore};
use crate::Alex;

/// What `verify` found (all counts are of live structure).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyReport {
    pub keys: u64,
    pub data_pages: u32,
    pub model_pages: u32,
    /// Longest root-to-data path in pages.
    pub levels: u32,
    /// Data pages reachable only by right-link (duplicate chains, unfinished splits).
    pub chain_pages: u32,
    pub incomplete_splits: u32,
    /// Unused blocks: all zeros (allocated by aborted or crash-cut groups) or data pages
    /// deleted by a merge; both are handed out again by the binding's allocator.
    pub free_pages: u32,
    /// Slots of all data pages (gaps included): `keys / slots` is the fill.
    pub slots: u64,
    /// Sum and maximum over entries of |slot the page model predicts − slot it is in|.
    pub model_error_sum: f64,
    pub model_error_max: u64,
}

impl<S: PageStore> Alex<S> {
    /// Blocks holding no structure: all zeros, or data pages deleted by a merge.
    fn count_free_pages(&self, nblocks: u32) -> Result<u32> {
        let mut n = 0;
        for blk in 1..nblocks {
            if read_with(&self.store, blk, |p| Ok(is_unused_page(p)))? {
                n += 1;
            }
        }
        Ok(n)
    }
}

impl VerifyReport {
    /// Fraction of data-page slots holding an entry.
    pub fn fill(&self) -> f64 {
        self.keys as f64 / self.slots.max(1) as f64
    }
    /// Mean distance in slots between where a page's model predicts an entry and where it is.
    pub fn avg_model_error(&self) -> f64 {
        self.model_error_sum / self.keys.max(1) as f64
    }

    pub fn data_bytes_per_key(&self) -> f64 {
        self.data_pages as f64 * PAGE_SIZE as f64 / self.keys.max(1) as f64
    }
    pub fn model_bytes_per_key(&self) -> f64 {
        self.model_pages as f64 * PAGE_SIZE as f64 / self.keys.max(1) as f64
    }
}

impl<S: PageStore> Alex<S> {
    /// Check every invariant: page formats, sorted entries and gap fill, page ranges and
    /// right-links, model slot runs and domains, that every entry is reachable from the
    /// page its key routes to, and the metapage counters.
    pub fn verify(&self) -> Result<VerifyReport> {
        let meta = self.meta()?;
        let nblocks = self.store.nblocks();
        let mut rep = VerifyReport::default();
        // 1. Model tree: heads and their expected low keys.
        let mut heads: HashMap<u32, u64> = HashMap::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut stack = vec![(meta.root, 0u64, None::<u64>, 1u32)];
        while let Some((blk, low, high, depth)) = stack.pop() {
            if depth as usize > MAX_DEPTH {
                return invariant(blk, "model tree too deep");
            }
            if !seen.insert(blk) {
                return invariant(blk, "page referenced by two parents (or a cycle)");
            }
            rep.levels = rep.levels.max(depth);
            let kind = read_with(&self.store, blk, |p| page::check(p, blk))?;
            match kind {
                Kind::Data => {
                    heads.insert(blk, low);
                }
                Kind::Meta => return invariant(blk, "metapage in the tree"),
                Kind::Model => {
                    rep.model_pages += 1;
                    let (m, ch) = read_with(&self.store, blk, |p| {
                        let m = ModelNode::decode(p, blk)?;
                        let ch = m.children(p);
                        Ok((m, ch))
                    })?;
                    // A model's domain may be open-ended where its parent's range is not:
                    // the old right spine under a root grown by an ascending stream.
                    if m.low != low || (m.high != high && m.high.is_some()) {
                        return invariant(
                            blk,
                            format!(
                                "model domain [{}, {:?}) != parent's slot range [{low}, {high:?})",
                                m.low, m.high
                            ),
                        );
                    }
                    let mut in_node = HashSet::new();
                    let mut s = 0;
                    while s < m.fanout {
                        let c = ch[s];
                        let mut e = s + 1;
                        while e < m.fanout && ch[e] == c {
                            e += 1;
                        }
                        if !in_node.insert(c) {
                            return invariant(
                                blk,
                                format!("child {c} appears in two separate slot runs"),
                            );
                        }
                        if c == 0 || c >= nblocks {
                            return invariant(blk, format!("child block {c} out of range"));
                        }
                        let (a, b) = (m.slot_low(s), m.slot_low(e));
                        let a = a.unwrap_or(u64::MAX);
                        if b.is_some_and(|b| b <= a) && !(s == 0 && e == m.fanout) {
                            return invariant(
                                blk,
                                format!("slot run {s}..{e} has an empty key range"),
                            );
                        }
                        stack.push((c, a, b, depth + 1));
                        s = e;
                    }
                }
            }
        }
        // 2. The data page chain, in key order.
        let mut pos: HashMap<u32, usize> = HashMap::new();
        let mut order = Vec::new();
        let mut blk = meta.leftmost;
        let mut prev_high = Some(Item::MIN);
        let mut pending_models = 0;
        while blk != INVALID_BLOCK {
            if pos.contains_key(&blk) || order.len() > nblocks as usize {
                return invariant(blk, "right-link cycle");
            }
            let n = self.data_header(blk)?;
            if n.deleted() {
                return invariant(blk, "deleted page linked in the data chain");
            }
            if Some(n.low) != prev_high {
                return invariant(
                    blk,
                    format!(
                        "low key {:?} != left page's high key {:?}",
                        n.low, prev_high
                    ),
                );
            }
            if let Some(&hl) = heads.get(&blk) {
                if n.low != Item::key_start(hl) {
                    return invariant(
                        blk,
                        format!("head page low {:?} != its slot range start {hl}", n.low),
                    );
                }
            } else {
                rep.chain_pages += 1;
            }
            if n.flags & F_INCOMPLETE != 0 {
                rep.incomplete_splits += 1;
                if n.right == INVALID_BLOCK || n.high.is_none() {
                    return invariant(blk, "incomplete split without a right sibling");
                }
                if n.flags & F_PENDING_DOWN != 0 {
                    let mb = n.pending;
                    if seen.contains(&mb) {
                        return invariant(blk, "pending split-down model is already linked");
                    }
                    read_with(&self.store, mb, |p| ModelNode::decode(p, mb))?;
                    pending_models += 1;
                }
            }
            pos.insert(blk, order.len());
            order.push(blk);
            prev_high = n.high;
            if n.high.is_none() && n.right != INVALID_BLOCK {
                return invariant(blk, "rightmost page has a right-link");
            }
            if n.high.is_some() && n.right == INVALID_BLOCK {
                return invariant(blk, "finite high key without right-link");
            }
            blk = n.right;
        }
        if prev_high.is_some() {
            return invariant(INVALID_BLOCK, "data chain does not end at +infinity");
        }
        for h in heads.keys() {
            if !pos.contains_key(h) {
                return invariant(*h, "head page not in the data chain");
            }
        }
        // 3. Contents, and every key routed to a page at or before the one holding it.
        for (i, &blk) in order.iter().enumerate() {
            let (entries, cap, err_sum, err_max) = read_with(&self.store, blk, |p| {
                page::check(p, blk)?; // the PG header fields the read path skips
                let n = DataNode::decode(p, blk)?;
                let entries = check_contents(&n, p, blk)?;
                let (mut sum, mut max, mut i) = (0f64, 0u64, 0);
                while let Some(j) = n.next_occ(p, i) {
                    let err = n.model.slot(n.item(p, j).key, n.cap).abs_diff(j) as u64;
                    sum += err as f64;
                    max = max.max(err);
                    i = j + 1;
                }
                Ok((entries, n.cap, sum, max))
            })?;
            rep.slots += cap as u64;
            rep.model_error_sum += err_sum;
            rep.model_error_max = rep.model_error_max.max(err_max);
            rep.keys += entries.len() as u64;
            let mut last = None;
            for it in &entries {
                if last == Some(it.key) {
                    continue;
                }
                last = Some(it.key);
                let head = self.descend(it.key)?.leaf;
                match pos.get(&head) {
                    Some(&j) if j <= i => {}
                    _ => {
                        return invariant(
                            blk,
                            format!(
                                "key {} routes to block {head}, which is not at or left of it",
                                it.key
                            ),
                        )
                    }
                }
            }
        }
        rep.data_pages = order.len() as u32;
        // 4. Metapage.
        if meta.n_data != rep.data_pages || meta.n_model != rep.model_pages + pending_models {
            return invariant(
                0,
                format!(
                    "metapage counts {}/{} pages, found {}/{}+{}",
                    meta.n_data, meta.n_model, rep.data_pages, rep.model_pages, pending_models
                ),
            );
        }
        let accounted = 1 + meta.n_data as u64 + meta.n_model as u64;
        if accounted != nblocks as u64 {
            // Blocks past the accounted ones may be all zeros (allocated by a group that
            // aborted, or by one a crash cut off before its WAL record: relation extension
            // is not undone) or deleted by a merge. They are unused; anything else is a
            // lost page.
            rep.free_pages = self.count_free_pages(nblocks)?;
            if accounted + rep.free_pages as u64 != nblocks as u64 {
                return invariant(
                    0,
                    format!(
                        "{nblocks} blocks but metapage accounts for {accounted} and {} are unused",
                        rep.free_pages
                    ),
                );
            }
        }
        if meta.levels < rep.levels {
            return invariant(
                0,
                format!("metapage levels {} < actual {}", meta.levels, rep.levels),
            );
        }
        if meta.exact_count() && meta.n_keys != rep.keys {
            return invariant(
                0,
                format!("metapage counts {} keys, found {}", meta.n_keys, rep.keys),
            );
        }
        Ok(rep)
    }
}
