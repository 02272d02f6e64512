//! Bulk load from sorted input, and the cost model that shapes the tree.
//!
//! ## Cost model
//! For a key range with more entries than one data page holds (at `fill`), a model node is
//! built. Its fanout `F` (a power of two, 2..=1024) minimises
//!
//! ```text
//! cost(F) = E[pages read per lookup] + (data + model pages) · 8192 / n / 64 + 4·F / n / 64
//! ```
//! estimated on (a sample of) the keys: the model maps ranks to `F` slots; adjacent slots
//! are merged greedily into one data page while their keys fit at `fill` (pointer
//! duplication), using the page capacity the slots' key span allows (residual width); a
//! single slot that alone overflows a page costs a child model page and one more level per
//! factor of 1024 for its keys. One page read is weighed like 64 bytes per key of space.
//! Candidates are the powers of two and the fanouts giving ~1, 1/2, 1/3, 1/4 page per slot
//! (exact packing for near-linear keys). Ties go to the smaller fanout. The chosen
//! model's slot boundaries then fix the data page boundaries exactly (each page covers a
//! run of slots), so routing needs no key comparisons. A slot whose keys are all equal
//! becomes a duplicate chain of pages cut at (key, tid) items.

use crate::data_node::{choose_layout, max_capacity, DataSpec};
use crate::error::{invariant, Error, Result};
use crate::key::{Item, Tid};
use crate::meta::{Meta, META_EXACT_COUNT, META_RESIDUAL_KEYS};
use crate::model::LinearModel;
use crate::model_node::{ModelNode, MAX_FANOUT};
use crate::page::INVALID_BLOCK;
use crate::store::PageStore;
use crate::{Alex, Options};

const MAX_BUILD_DEPTH: usize = 24;
const SAMPLE: usize = 100_000;

enum PNode {
    Data {
        lo: usize,
        hi: usize,
        low: Item,
        high: Option<Item>,
    },
    Model {
        node: ModelNode,
        children: Vec<usize>,
    },
    Placeholder,
}

struct Planner<'a> {
    e: &'a [Item],
    fill: f64,
    max_density: f64,
    residual: bool,
    nodes: Vec<PNode>,
    leaves: Vec<usize>,
    depth: usize,
}

impl Planner<'_> {
    fn fits(&self, lo: usize, hi: usize, low: Item, high: Option<Item>) -> bool {
        let (_, w) = choose_layout(&self.e[lo..hi], low, high, self.residual);
        (hi - lo) as f64 <= (self.fill * max_capacity(w) as f64).max(1.0)
    }

    /// (fill target, hard limit) entry counts for a page over these entries and bounds.
    fn targets(&self, lo: usize, hi: usize, low: Item, high: Option<Item>) -> (f64, f64) {
        let (_, w) = choose_layout(&self.e[lo..hi], low, high, self.residual);
        let cap = max_capacity(w) as f64;
        (self.fill * cap, (self.fill + self.max_density) / 2.0 * cap)
    }

    fn fits_hard(&self, lo: usize, hi: usize, low: Item, high: Option<Item>) -> bool {
        (hi - lo) as f64 <= self.targets(lo, hi, low, high).1.max(1.0)
    }

    fn push_leaf(&mut self, lo: usize, hi: usize, low: Item, high: Option<Item>) -> usize {
        self.nodes.push(PNode::Data { lo, hi, low, high });
        let id = self.nodes.len() - 1;
        self.leaves.push(id);
        id
    }

    /// Pages for `e[lo..hi]` in `[low, high)` linked only by right-links; returns the head.
    fn chain(&mut self, lo: usize, hi: usize, low: Item, high: Option<Item>) -> usize {
        let mut start = lo;
        let mut cur = low;
        let mut head = None;
        loop {
            if self.targets(start, hi, cur, high).1 >= (hi - start) as f64 || hi - start <= 1 {
                let id = self.push_leaf(start, hi, cur, high);
                return head.unwrap_or(id);
            }
            let mut take = ((self.fill * max_capacity(1) as f64) as usize).clamp(1, hi - start - 1);
            let bound = |take: usize| {
                let b = self.e[start + take];
                if self.e[start + take - 1].key < b.key {
                    Item::key_start(b.key)
                } else {
                    b
                }
            };
            while take > 1 && !self.fits(start, start + take, cur, Some(bound(take))) {
                take = take * 7 / 8;
            }
            let b = bound(take);
            let id = self.push_leaf(start, start + take, cur, Some(b));
            head.get_or_insert(id);
            cur = b;
            start += take;
        }
    }

    /// Plan the subtree for `e[lo..hi]` whose domain is `[low, high)`; returns its node id.
    fn plan(&mut self, lo: usize, hi: usize, low: u64, high: Option<u64>, depth: usize) -> usize {
        let (lowi, highi) = (Item::key_start(low), high.map(Item::key_start));
        if self.fits_hard(lo, hi, lowi, highi) {
            return self.push_leaf(lo, hi, lowi, highi);
        }
        if depth >= MAX_BUILD_DEPTH || self.e[lo].key == self.e[hi - 1].key {
            return self.chain(lo, hi, lowi, highi);
        }
        let n = hi - lo;
        let f = self.choose_fanout(lo, hi);
        let keys = self.e[lo..hi].iter().map(|x| x.key);
        // Base at the first key, not the domain start: keeps f64 precision near 2^63.
        let mut model = LinearModel::fit_ranks(keys, self.e[lo].key, f as f64 / n as f64);
        if model.slot(self.e[lo].key, f) == model.slot(self.e[hi - 1].key, f) {
            // Rank fit collapsed (extreme skew): fall back to interpolating first..last key.
            let span = (self.e[hi - 1].key - self.e[lo].key) as f64;
            let slope = f as f64 / (span * (1.0 + 1e-9) + 1.0);
            model = LinearModel {
                base: self.e[lo].key,
                slope,
                intercept: 0.0,
            };
            if model.slot(self.e[lo].key, f) == model.slot(self.e[hi - 1].key, f) {
                return self.chain(lo, hi, lowi, highi);
            }
        }
        let node = ModelNode {
            model,
            low,
            high,
            level: depth as u16,
            fanout: f,
        };
        let id = self.nodes.len();
        self.nodes.push(PNode::Placeholder);
        self.depth = self.depth.max(depth + 2);
        // Exact slot boundaries and the entry index where each starts.
        let bounds: Vec<Option<u64>> = (0..=f).map(|s| node.slot_low(s)).collect();
        let idx: Vec<usize> = bounds
            .iter()
            .map(|b| match b {
                Some(k) => lo + self.e[lo..hi].partition_point(|x| x.key < *k),
                None => hi,
            })
            .collect();
        let bi = |s: usize| bounds[s].map(Item::key_start);
        let mut children = vec![usize::MAX; f];
        let mut s = 0;
        let mut last: Option<usize> = None;
        while s < f {
            if bounds[s] == bounds[s + 1] {
                if let Some(c) = last {
                    children[s] = c; // empty slot: joins the previous run
                    s += 1;
                    continue;
                }
            }
            let gs = s;
            let mut ge = s + 1;
            // A run must cover a non-empty key range: absorb leading empty slots.
            while ge < f && bounds[ge] == bounds[gs] {
                ge += 1;
            }
            let lowk = bounds[gs].unwrap_or(u64::MAX);
            let child = if !self.fits_hard(idx[gs], idx[ge], Item::key_start(lowk), bi(ge)) {
                self.plan(idx[gs], idx[ge], lowk, bounds[ge], depth + 1)
            } else {
                while ge < f && self.fits(idx[gs], idx[ge + 1], Item::key_start(lowk), bi(ge + 1)) {
                    ge += 1;
                }
                // Slots are coarse: take one more if that lands closer to the fill target
                // (never past the split density), so pages average `fill`, not less.
                if ge < f {
                    let (cur, next) = (idx[ge] - idx[gs], idx[ge + 1] - idx[gs]);
                    let (target, hard) =
                        self.targets(idx[gs], idx[ge + 1], Item::key_start(lowk), bi(ge + 1));
                    if (next as f64) <= hard && next as f64 - target < target - cur as f64 {
                        ge += 1;
                    }
                }
                self.chain(idx[gs], idx[ge], Item::key_start(lowk), bi(ge))
            };
            for c in &mut children[gs..ge] {
                *c = child;
            }
            last = Some(child);
            s = ge;
        }
        self.nodes[id] = PNode::Model { node, children };
        id
    }

    fn choose_fanout(&self, lo: usize, hi: usize) -> usize {
        let n = hi - lo;
        let stride = n.div_ceil(SAMPLE).max(1);
        let sample: Vec<u64> = self.e[lo..hi]
            .iter()
            .step_by(stride)
            .map(|x| x.key)
            .collect();
        let ns = sample.len();
        let w = stride as f64;
        let mut best = (f64::INFINITY, 2);
        // Powers of two, plus fanouts that give about one page (or 1/2, 1/3, 1/4 page) per
        // slot at the fill target: for near-linear keys these pack pages exactly.
        let capf = self.fill
            * max_capacity(if self.residual {
                crate::data_node::width_for(sample[ns - 1] - sample[0])
            } else {
                8
            }) as f64;
        let per_page = (n as f64 / capf).ceil() as usize;
        let mut cands: Vec<usize> = (1..=10).map(|i| 1usize << i).collect();
        cands.extend(
            (1..=4)
                .map(|m| per_page * m)
                .filter(|&f| (2..=MAX_FANOUT).contains(&f)),
        );
        cands.sort_unstable();
        cands.dedup();
        for f in cands {
            let m = LinearModel::fit_ranks(sample.iter().copied(), sample[0], f as f64 / ns as f64);
            // per-slot count and key span
            let mut cnt = vec![0usize; f];
            let mut mn = vec![u64::MAX; f];
            let mut mx = vec![0u64; f];
            for &k in &sample {
                let s = m.slot(k, f);
                cnt[s] += 1;
                mn[s] = mn[s].min(k);
                mx[s] = mx[s].max(k);
            }
            let (mut pages, mut deep, mut gcount, mut gmin, mut gmax) =
                (0f64, 0f64, 0f64, u64::MAX, 0u64);
            let mut model_pages = 1.0;
            let hard = (self.fill + self.max_density) / 2.0 / self.fill;
            let cap = |span: u64| {
                self.fill
                    * max_capacity(if self.residual {
                        crate::data_node::width_for(span)
                    } else {
                        8
                    }) as f64
            };
            for s in 0..f {
                if cnt[s] == 0 {
                    continue;
                }
                let c = cnt[s] as f64 * w;
                let (nmin, nmax) = (gmin.min(mn[s]), gmax.max(mx[s]));
                if gcount + c <= cap(nmax - nmin) {
                    gcount += c;
                    gmin = nmin;
                    gmax = nmax;
                    continue;
                }
                if gcount > 0.0 {
                    pages += 1.0;
                }
                let c_cap = cap(mx[s] - mn[s]);
                if c > c_cap * hard {
                    // A child model node (one more page, one more level per factor of
                    // MAX_FANOUT) over well-packed pages.
                    let extra = ((c / c_cap).ln() / (MAX_FANOUT as f64).ln())
                        .ceil()
                        .max(1.0);
                    deep += c * extra;
                    model_pages += (c / c_cap / MAX_FANOUT as f64).ceil();
                    pages += (c / c_cap).ceil();
                    gcount = 0.0;
                    gmin = u64::MAX;
                    gmax = 0;
                } else {
                    gcount = c;
                    gmin = mn[s];
                    gmax = mx[s];
                }
            }
            if gcount > 0.0 {
                pages += 1.0;
            }
            let nf = n as f64;
            let levels = 1.0 + deep / nf;
            let cost =
                levels + (pages + model_pages) * 8192.0 / nf / 64.0 + 4.0 * f as f64 / nf / 64.0;
            if cost < best.0 - 1e-9 {
                best = (cost, f);
            }
        }
        best.1
    }
}

impl<S: PageStore> Alex<S> {
    /// Build an index from entries into an empty store. Input is sorted (and exact duplicate
    /// pairs dropped) here if it is not already.
    pub fn bulk_load(
        mut store: S,
        opts: Options,
        entries: impl IntoIterator<Item = (u64, Tid)>,
    ) -> Result<Self> {
        opts.validate()?;
        if store.nblocks() != 0 {
            return Err(Error::Invalid("bulk_load needs an empty store".into()));
        }
        let mut e: Vec<Item> = entries.into_iter().map(|(k, t)| Item::new(k, t)).collect();
        if !e.windows(2).all(|w| w[0] < w[1]) {
            e.sort_unstable();
            e.dedup();
        }
        let mut pl = Planner {
            e: &e,
            fill: opts.fill as f64,
            max_density: opts.max_density as f64,
            residual: opts.residual_keys,
            nodes: Vec::new(),
            leaves: Vec::new(),
            depth: 1,
        };
        let root = if e.is_empty() {
            pl.push_leaf(0, 0, Item::MIN, None)
        } else {
            pl.plan(0, e.len(), 0, None, 0)
        };
        let Planner {
            nodes,
            leaves,
            depth,
            ..
        } = pl;
        // Block of plan node i is i + 1 (block 0 is the metapage).
        let blk = |i: usize| i as u32 + 1;
        let mut right = vec![INVALID_BLOCK; nodes.len()];
        for w in leaves.windows(2) {
            right[w[0]] = blk(w[1]);
        }
        let mut meta = Meta {
            root: blk(root),
            leftmost: blk(leaves[0]),
            levels: depth as u32,
            flags: if opts.exact_count {
                META_EXACT_COUNT
            } else {
                0
            } | if opts.residual_keys {
                META_RESIDUAL_KEYS
            } else {
                0
            },
            n_data: leaves.len() as u32,
            n_model: (nodes.len() - leaves.len()) as u32,
            key_kind: opts.key_kind,
            n_keys: e.len() as u64,
            fill: opts.fill,
            max_density: opts.max_density,
            version: 1,
        };
        crate::store::atomic_with(&mut store, |g| {
            let b = g.allocate()?;
            if b != 0 {
                return invariant(b, "metapage must be block 0");
            }
            Ok(())
        })?;
        for chunk in (0..nodes.len())
            .collect::<Vec<_>>()
            .chunks(crate::GROUP_LIMIT)
        {
            crate::store::atomic_with(&mut store, |g| {
                for &i in chunk {
                    let b = g.allocate()?;
                    if b != blk(i) {
                        return invariant(b, "store allocated an unexpected block number");
                    }
                    let p = g.modify(b)?;
                    match &nodes[i] {
                        PNode::Data { lo, hi, low, high } => {
                            let spec = DataSpec {
                                entries: &e[*lo..*hi],
                                low: *low,
                                high: *high,
                                right: right[i],
                                flags: 0,
                                pending: 0,
                                residual: opts.residual_keys,
                            };
                            if !spec.write(p) {
                                return invariant(
                                    b,
                                    "bulk load planned more entries than a page holds",
                                );
                            }
                        }
                        PNode::Model { node, children } => {
                            let c: Vec<u32> = children.iter().map(|&c| blk(c)).collect();
                            node.encode(p, &c);
                        }
                        PNode::Placeholder => return invariant(b, "unfinished plan node"),
                    }
                }
                Ok(())
            })?;
        }
        if meta.levels == 0 {
            meta.levels = 1;
        }
        crate::store::atomic_with(&mut store, |g| {
            meta.encode(g.modify(0)?);
            Ok(())
        })?;
        Ok(Alex::wrap(store))
    }
}
