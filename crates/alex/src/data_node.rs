//! Data (leaf) pages: a gapped array of (key, TID) slots placed by a linear model.
//!
//! ```text
//! PG hdr | node header (72 B) | occupancy bitmap | keys: cap × width B  (pd_lower)
//!        | hole | TIDs: cap × 6 B (pd_upper) | special
//! ```
//! Keys are stored as `key - base` in `width` bytes (1..=8): a node covering a narrow key
//! range (sequential ids, timestamps) spends 2–3 bytes per key instead of 8, and gets more
//! slots in its page. Gap slots hold a copy of the next occupied key to their right (or the
//! all-ones residual after the last one), so the whole key array is non-decreasing and
//! exponential search can run over it without consulting the bitmap; the bitmap only says
//! which slots are real. Entries are ordered by (key, tid), so one key's duplicates sit
//! together and a page can be cut in the middle of a run (see `Item` bounds).

use crate::error::{corrupt, Result};
use crate::key::{Item, Tid};
use crate::model::LinearModel;
use crate::page::{
    self, get_f64, get_u16, get_u32, get_u64, put_f64, put_u16, put_u32, put_u64, Kind, Page,
    INVALID_BLOCK, SPECIAL_OFF,
};

const OFF_BASE: usize = 24;
const OFF_SLOPE: usize = 32;
const OFF_INTERCEPT: usize = 40;
const OFF_LOW_KEY: usize = 48;
const OFF_HIGH_KEY: usize = 56;
const OFF_LOW_TID: usize = 64;
const OFF_HIGH_TID: usize = 70;
const OFF_RIGHT: usize = 76;
const OFF_CAP: usize = 80;
const OFF_COUNT: usize = 82;
const OFF_WIDTH: usize = 84;
const OFF_FLAGS: usize = 86;
const OFF_PENDING: usize = 88;
const OFF_BITMAP: usize = 96;
const TID_SIZE: usize = 6;

/// High key is +infinity (rightmost page).
pub const F_HIGH_INF: u16 = 1;
/// The page was split and its parent does not yet route to the new right sibling.
pub const F_INCOMPLETE: u16 = 2;
/// With `F_INCOMPLETE`: the split is a split-down and `pending` names the new model page
/// (already built, not yet linked); without it, `pending` is the parent slot where the
/// right sibling's run starts.
pub const F_PENDING_DOWN: u16 = 4;
/// The page was merged into its left neighbour by VACUUM (`merge.rs`): it holds nothing, no
/// live page links to it, and it may be reused. Readers that still reach it (a stale route
/// or right-link) start over from the root.
pub const F_DELETED: u16 = 8;
const KNOWN_FLAGS: u16 = F_HIGH_INF | F_INCOMPLETE | F_PENDING_DOWN | F_DELETED;

/// Whether `p` is all zeros (a block allocated by a group that aborted or a crash cut off).
pub fn is_zero_page(p: &Page) -> bool {
    p.iter().all(|&b| b == 0)
}

/// Whether block `p` holds no structure and may be handed out again: deleted by a merge,
/// or never written.
pub fn is_unused_page(p: &Page) -> bool {
    is_deleted_page(p) || is_zero_page(p)
}

/// Whether `p` is a deleted data page (free for reuse once its block is handed out again).
pub fn is_deleted_page(p: &Page) -> bool {
    page::kind_fast(p, INVALID_BLOCK).is_ok_and(|k| k == Kind::Data)
        && get_u16(p, OFF_FLAGS) & F_DELETED != 0
}

/// Bytes needed for a residual (at least 1).
pub fn width_for(span: u64) -> usize {
    ((64 - span.leading_zeros()) as usize).div_ceil(8).max(1)
}

fn mask_for(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}

/// (keys offset, pd_lower, pd_upper) for a page of `cap` slots of `width`-byte keys.
fn layout(cap: usize, width: usize) -> (usize, usize, usize) {
    let keys = OFF_BITMAP + cap.div_ceil(64) * 8;
    (keys, keys + cap * width, SPECIAL_OFF - cap * TID_SIZE)
}

/// Most slots that fit one page at this key width (1..=8; 0 for anything else).
#[inline]
pub fn max_capacity(width: usize) -> usize {
    const CAPS: [usize; 9] = {
        let mut t = [0usize; 9];
        let mut w = 1;
        while w <= 8 {
            let mut c = (SPECIAL_OFF - OFF_BITMAP) / (w + TID_SIZE);
            while c > 0 && OFF_BITMAP + c.div_ceil(64) * 8 + c * w > SPECIAL_OFF - c * TID_SIZE {
                c -= 1;
            }
            t[w] = c;
            w += 1;
        }
        t
    };
    CAPS.get(width).copied().unwrap_or(0)
}

/// Residual base and width for a page holding `entries` with bounds `[low, high)`.
/// Prefers `base = low` (inserts at the low end then never widen) when that costs no width.
pub fn choose_layout(
    entries: &[Item],
    low: Item,
    high: Option<Item>,
    residual: bool,
) -> (u64, usize) {
    if !residual {
        return (0, 8);
    }
    let min = entries.first().map_or(low.key, |e| e.key);
    let max = entries.last().map_or(low.key, |e| e.key);
    let upper = match high {
        Some(h) if h.tid == Tid::MIN => h.key.saturating_sub(1),
        Some(h) => h.key,
        None => max,
    }
    .max(max);
    // Cover the range up to `high` only as far as the entries' own width reaches: a far
    // high key (an empty slot opened for a stream, a root grown above) must not widen every
    // key; a later key beyond the reach rebuilds the page wider (or splits it).
    let reach = mask_for(width_for(max - min));
    let upper = upper.min(min.saturating_add(reach));
    let w_low = width_for(upper - low.key.min(min));
    let w_min = width_for(upper - min);
    if w_low == w_min {
        (low.key.min(min), w_low)
    } else if high.is_some() && (low.key == 0 || descending_stream(min, max, low, high)) {
        // Leftmost page, or the low end of a descending stream inside the key space: put
        // the spare residual range below `min`, so descending inserts do not force a
        // rebuild each (the rightmost page keeps its spare range above).
        (
            upper.saturating_sub(mask_for(w_min)).max(low.key).min(min),
            w_min,
        )
    } else {
        (min, w_min)
    }
}

/// A page shaped like a descending stream's: more of its range lies below its entries than
/// they span, and no more above them than they span (random keys leave little either side).
fn descending_stream(min: u64, max: u64, low: Item, high: Option<Item>) -> bool {
    let span = max - min;
    let above = high.map_or(u64::MAX, |h| h.key.saturating_sub(max));
    min.saturating_sub(low.key) > span && above <= span
}

/// Decoded header of a data page plus derived offsets. Cheap to build (no scans).
#[derive(Clone, Debug)]
pub struct DataNode {
    pub model: LinearModel,
    pub low: Item,
    pub high: Option<Item>,
    pub right: u32,
    pub cap: usize,
    pub count: usize,
    pub width: usize,
    pub flags: u16,
    pub pending: u32,
    keys_off: usize,
    pay_off: usize,
    mask: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    Exists,
    /// The nearest gap is too far: retrain (rebuild the page) instead of shifting.
    Retrain,
}

/// Where an in-place insert goes (see [`DataNode::place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Exists,
    Retrain,
    At(InPlace),
}

/// Where an in-place insert puts its entry: what a logged insert records, so that replay
/// applies the placement the writer chose rather than computing it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Into the free run `[a, ..)` before the entry's position, at slot `q`; slots
    /// `a..q` take the entry's key as their gap key.
    InRun { a: u16, q: u16 },
    /// Shift `[i, gap)` one slot right; the entry takes slot `i`.
    ShiftRight { i: u16, gap: u16 },
    /// Shift `(gap, i)` one slot left; the entry takes slot `i - 1`.
    ShiftLeft { i: u16, gap: u16 },
}

fn tid_at(p: &Page, off: usize) -> Tid {
    let mut b = [0u8; 6];
    b.copy_from_slice(&p[off..off + 6]);
    Tid::from_bytes(b)
}

impl DataNode {
    /// Validate the header and layout. Never panics; everything later indexes within bounds
    /// established here.
    pub fn decode(p: &Page, blk: u32) -> Result<DataNode> {
        if page::kind_fast(p, blk)? != Kind::Data {
            return page::expect(p, blk, Kind::Data).and_then(|_| corrupt(blk, "not a data page"));
        }
        let width = p[OFF_WIDTH] as usize;
        if !(1..=8).contains(&width) {
            return corrupt(blk, format!("bad key width {width}"));
        }
        let cap = get_u16(p, OFF_CAP) as usize;
        if cap == 0 || cap > max_capacity(width) {
            return corrupt(blk, format!("bad capacity {cap} for width {width}"));
        }
        let count = get_u16(p, OFF_COUNT) as usize;
        if count > cap {
            return corrupt(blk, format!("count {count} > capacity {cap}"));
        }
        let (keys_off, lower, upper) = layout(cap, width);
        if page::pd_lower(p) != lower || page::pd_upper(p) != upper {
            return corrupt(blk, "data page pd_lower/pd_upper do not match its layout");
        }
        let flags = get_u16(p, OFF_FLAGS);
        if flags & !KNOWN_FLAGS != 0 {
            return corrupt(blk, format!("unknown data page flags {flags:#x}"));
        }
        let low = Item::new(get_u64(p, OFF_LOW_KEY), tid_at(p, OFF_LOW_TID));
        let high = if flags & F_HIGH_INF != 0 {
            None
        } else {
            Some(Item::new(get_u64(p, OFF_HIGH_KEY), tid_at(p, OFF_HIGH_TID)))
        };
        if high.is_some_and(|h| h <= low) {
            return corrupt(blk, "data page high key <= low key");
        }
        let model = LinearModel {
            base: get_u64(p, OFF_BASE),
            slope: get_f64(p, OFF_SLOPE),
            intercept: get_f64(p, OFF_INTERCEPT),
        };
        let mask = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * width)) - 1
        };
        Ok(DataNode {
            model,
            low,
            high,
            right: get_u32(p, OFF_RIGHT),
            cap,
            count,
            width,
            flags,
            pending: get_u32(p, OFF_PENDING),
            keys_off,
            pay_off: upper,
            mask,
        })
    }

    pub fn base(&self) -> u64 {
        self.model.base
    }
    pub fn incomplete(&self) -> bool {
        self.flags & F_INCOMPLETE != 0
    }
    pub fn deleted(&self) -> bool {
        self.flags & F_DELETED != 0
    }
    /// `item` belongs to this page's key range (a deleted page covers nothing).
    pub fn covers(&self, item: Item) -> bool {
        !self.deleted() && self.low <= item && self.high.is_none_or(|h| item < h)
    }
    /// `key` is representable in this page's residual encoding.
    pub fn fits_key(&self, key: u64) -> bool {
        key >= self.base() && key - self.base() <= self.mask
    }

    #[inline]
    pub fn occupied(&self, p: &Page, i: usize) -> bool {
        p[OFF_BITMAP + i / 8] >> (i % 8) & 1 != 0
    }
    #[inline]
    fn set_occ(&self, p: &mut Page, i: usize, on: bool) {
        let b = &mut p[OFF_BITMAP + i / 8];
        if on {
            *b |= 1 << (i % 8)
        } else {
            *b &= !(1 << (i % 8))
        }
    }
    /// Residual at slot `i` (i < cap). The 8-byte load stays inside the page because the
    /// key array ends at or before pd_upper <= 8176; bytes past the key are masked off.
    #[inline]
    pub fn rkey(&self, p: &Page, i: usize) -> u64 {
        get_u64(p, self.keys_off + i * self.width) & self.mask
    }
    #[inline]
    pub fn key(&self, p: &Page, i: usize) -> u64 {
        self.base().wrapping_add(self.rkey(p, i))
    }
    #[inline]
    fn set_rkey(&self, p: &mut Page, i: usize, r: u64) {
        let off = self.keys_off + i * self.width;
        p[off..off + self.width].copy_from_slice(&r.to_le_bytes()[..self.width]);
    }
    #[inline]
    pub fn tid(&self, p: &Page, i: usize) -> Tid {
        tid_at(p, self.pay_off + i * TID_SIZE)
    }
    #[inline]
    fn set_tid(&self, p: &mut Page, i: usize, t: Tid) {
        let off = self.pay_off + i * TID_SIZE;
        p[off..off + TID_SIZE].copy_from_slice(&t.to_bytes());
    }
    #[inline]
    pub fn item(&self, p: &Page, i: usize) -> Item {
        Item::new(self.key(p, i), self.tid(p, i))
    }

    /// First occupied slot >= i.
    pub fn next_occ(&self, p: &Page, mut i: usize) -> Option<usize> {
        while i < self.cap {
            let byte = p[OFF_BITMAP + i / 8] >> (i % 8);
            if byte == 0 {
                i = (i / 8 + 1) * 8;
                continue;
            }
            let j = i + byte.trailing_zeros() as usize;
            return (j < self.cap).then_some(j);
        }
        None
    }
    /// Last occupied slot < i.
    pub fn prev_occ(&self, p: &Page, i: usize) -> Option<usize> {
        (0..i.min(self.cap)).rev().find(|&j| self.occupied(p, j))
    }

    /// First slot whose stored key is >= `key` (gaps included; `cap` if none). Exponential
    /// search outward from the model's prediction.
    pub fn lower_bound(&self, p: &Page, key: u64) -> usize {
        if key < self.base() {
            return 0;
        }
        let r = key - self.base();
        if r > self.mask {
            return self.cap;
        }
        let n = self.cap;
        let pos = self.model.slot(key, n);
        let (mut lo, mut hi);
        if self.rkey(p, pos) >= r {
            hi = pos;
            lo = 0;
            let mut step = 1;
            while step <= hi {
                let j = hi - step;
                if self.rkey(p, j) < r {
                    lo = j + 1;
                    break;
                }
                hi = j;
                step *= 2;
            }
        } else {
            lo = pos + 1;
            hi = n;
            let mut step = 1;
            loop {
                let j = pos + step;
                if j >= n {
                    break;
                }
                if self.rkey(p, j) >= r {
                    hi = j;
                    break;
                }
                lo = j + 1;
                step *= 2;
            }
        }
        // first index in [lo, hi) with rkey >= r, else hi
        while lo < hi {
            let m = lo + (hi - lo) / 2;
            if self.rkey(p, m) >= r {
                hi = m;
            } else {
                lo = m + 1;
            }
        }
        lo
    }

    /// First occupied slot whose entry is >= `item` (`cap` if none), and whether it equals.
    pub fn find(&self, p: &Page, item: Item) -> (usize, bool) {
        let mut i = self.lower_bound(p, item.key);
        while let Some(j) = self.next_occ(p, i) {
            let e = self.item(p, j);
            if e >= item {
                return (j, e == item);
            }
            i = j + 1;
        }
        (self.cap, false)
    }

    /// All entries in order.
    pub fn entries(&self, p: &Page) -> Vec<Item> {
        let mut v = Vec::with_capacity(self.count);
        let mut i = 0;
        while let Some(j) = self.next_occ(p, i) {
            v.push(self.item(p, j));
            i = j + 1;
        }
        v
    }

    pub fn write_header(&self, p: &mut Page) {
        put_u64(p, OFF_BASE, self.model.base);
        put_f64(p, OFF_SLOPE, self.model.slope);
        put_f64(p, OFF_INTERCEPT, self.model.intercept);
        put_u64(p, OFF_LOW_KEY, self.low.key);
        p[OFF_LOW_TID..OFF_LOW_TID + 6].copy_from_slice(&self.low.tid.to_bytes());
        let h = self.high.unwrap_or(Item::new(u64::MAX, Tid::MAX));
        put_u64(p, OFF_HIGH_KEY, h.key);
        p[OFF_HIGH_TID..OFF_HIGH_TID + 6].copy_from_slice(&h.tid.to_bytes());
        put_u32(p, OFF_RIGHT, self.right);
        put_u16(p, OFF_CAP, self.cap as u16);
        put_u16(p, OFF_COUNT, self.count as u16);
        p[OFF_WIDTH] = self.width as u8;
        let flags = (self.flags & !F_HIGH_INF) | if self.high.is_none() { F_HIGH_INF } else { 0 };
        put_u16(p, OFF_FLAGS, flags);
        put_u32(p, OFF_PENDING, self.pending);
    }

    pub fn set_flags(&mut self, p: &mut Page, flags: u16, pending: u32) {
        self.flags = flags;
        self.pending = pending;
        self.write_header(p);
    }

    /// Where an in-place insert of `item` would go, without changing the page.
    pub fn place(&self, p: &Page, item: Item) -> Placement {
        let (i, exists) = self.find(p, item);
        if exists {
            return Placement::Exists;
        }
        let mut a = i;
        while a > 0 && !self.occupied(p, a - 1) {
            a -= 1;
        }
        // (Slot numbers fit u16: a page has at most PAGE_SIZE * 8 slots.)
        if a < i {
            // A gap run [a, i) sits right where the entry goes: model-based placement in it,
            // except past either end of the page's entries, where the entry goes next to its
            // neighbour so a stream continuing in that direction keeps the rest of the run.
            let q = if a == 0 && i < self.cap {
                i - 1
            } else if i == self.cap && a > 0 {
                a
            } else {
                self.model.slot(item.key, self.cap).clamp(a, i - 1)
            };
            return Placement::At(InPlace::InRun {
                a: a as u16,
                q: q as u16,
            });
        }
        let right = (i..self.cap).find(|&j| !self.occupied(p, j));
        let left = (0..i).rev().find(|&j| !self.occupied(p, j));
        let dr = right.map(|g| g - i);
        let dl = left.map(|g| i - g);
        let use_right = match (dr, dl) {
            (Some(r), Some(l)) => r <= l,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Placement::Retrain,
        };
        let dist = if use_right { dr } else { dl }.unwrap_or(usize::MAX);
        if dist > (self.cap / 8).max(32) {
            return Placement::Retrain;
        }
        Placement::At(if use_right {
            InPlace::ShiftRight {
                i: i as u16,
                gap: right.unwrap_or(i) as u16,
            }
        } else {
            InPlace::ShiftLeft {
                i: i as u16,
                gap: left.unwrap_or(0) as u16,
            }
        })
    }

    /// What [`insert`](Self::insert) would do, without doing it.
    pub fn insert_outcome(&self, p: &Page, item: Item) -> InsertOutcome {
        match self.place(p, item) {
            Placement::Exists => InsertOutcome::Exists,
            Placement::Retrain => InsertOutcome::Retrain,
            Placement::At(_) => InsertOutcome::Inserted,
        }
    }

    /// Insert in place. Caller checked: `covers(item)`, `fits_key(item.key)`, `count < cap`.
    pub fn insert(&mut self, p: &mut Page, item: Item) -> InsertOutcome {
        match self.place(p, item) {
            Placement::Exists => InsertOutcome::Exists,
            Placement::Retrain => InsertOutcome::Retrain,
            Placement::At(at) => {
                let done = self.insert_at(p, item, at);
                debug_assert!(done, "a placement from `place` applies");
                InsertOutcome::Inserted
            }
        }
    }

    /// Insert `item` at the placement `at` (from [`place`](Self::place) on this page, or
    /// from a logged insert being replayed). Returns `false`, changing nothing, if the
    /// placement does not fit this page (out of range, onto an occupied slot) or the entry
    /// does not belong here.
    pub fn insert_at(&mut self, p: &mut Page, item: Item, at: InPlace) -> bool {
        let cap = self.cap;
        if !self.covers(item) || !self.fits_key(item.key) || self.count >= cap {
            return false;
        }
        let free = |j: usize| j < cap && !self.occupied(p, j);
        let ok = match at {
            InPlace::InRun { a, q } => {
                let (a, q) = (a as usize, q as usize);
                a <= q && (a..=q).all(free)
            }
            InPlace::ShiftRight { i, gap } => (i as usize) <= (gap as usize) && free(gap as usize),
            InPlace::ShiftLeft { i, gap } => {
                (gap as usize) < (i as usize) && (i as usize) <= cap && free(gap as usize)
            }
        };
        if !ok {
            return false;
        }
        let r = item.key - self.base();
        let (w, ko, po) = (self.width, self.keys_off, self.pay_off);
        let q = match at {
            InPlace::InRun { a, q } => {
                for j in a as usize..q as usize {
                    self.set_rkey(p, j, r);
                }
                q as usize
            }
            InPlace::ShiftRight { i, gap } => {
                let (i, g) = (i as usize, gap as usize);
                p.copy_within(ko + i * w..ko + g * w, ko + (i + 1) * w);
                p.copy_within(
                    po + i * TID_SIZE..po + g * TID_SIZE,
                    po + (i + 1) * TID_SIZE,
                );
                self.set_occ(p, g, true);
                i
            }
            InPlace::ShiftLeft { i, gap } => {
                let (i, g) = (i as usize, gap as usize);
                p.copy_within(ko + (g + 1) * w..ko + i * w, ko + g * w);
                p.copy_within(
                    po + (g + 1) * TID_SIZE..po + i * TID_SIZE,
                    po + g * TID_SIZE,
                );
                self.set_occ(p, g, true);
                i - 1
            }
        };
        self.set_rkey(p, q, r);
        self.set_tid(p, q, item.tid);
        self.set_occ(p, q, true);
        self.count += 1;
        put_u16(p, OFF_COUNT, self.count as u16);
        true
    }

    /// Remove `item` if present.
    pub fn remove(&mut self, p: &mut Page, item: Item) -> bool {
        let (j, exists) = self.find(p, item);
        if !exists {
            return false;
        }
        self.set_occ(p, j, false);
        self.set_tid(p, j, Tid::MIN);
        let v = if j + 1 < self.cap {
            self.rkey(p, j + 1)
        } else {
            self.mask
        };
        self.set_rkey(p, j, v);
        let mut a = j;
        while a > 0 && !self.occupied(p, a - 1) {
            a -= 1;
            self.set_rkey(p, a, v);
        }
        self.count -= 1;
        put_u16(p, OFF_COUNT, self.count as u16);
        true
    }
}

/// Everything needed to write a data page from scratch.
pub struct DataSpec<'a> {
    pub entries: &'a [Item],
    pub low: Item,
    pub high: Option<Item>,
    pub right: u32,
    pub flags: u16,
    pub pending: u32,
    pub residual: bool,
}

impl DataSpec<'_> {
    /// Capacity the page would get.
    pub fn capacity(&self) -> usize {
        let (_, w) = choose_layout(self.entries, self.low, self.high, self.residual);
        max_capacity(w)
    }

    /// Write the page: fit the model to the entries' ranks spread over the whole capacity,
    /// place each entry at its prediction (pushed right past the previous one, pulled left
    /// to leave room for the rest), fill gaps. Returns `false` if the entries do not fit.
    pub fn write(&self, p: &mut Page) -> bool {
        let (base, width) = choose_layout(self.entries, self.low, self.high, self.residual);
        let cap = max_capacity(width);
        let n = self.entries.len();
        if n > cap {
            return false;
        }
        let (keys_off, lower, upper) = layout(cap, width);
        page::init(p, Kind::Data, lower, upper);
        // A page with more room above its entries than they span (the rightmost page, or
        // the head of an ascending stream inside the key space) mostly grows at its end:
        // spread its entries over the first 3/4 of the slots so appends find free slots
        // instead of shifting and retraining. Other pages spread over all slots.
        let (min, max) = (
            self.entries.first().map_or(0, |e| e.key),
            self.entries.last().map_or(0, |e| e.key),
        );
        let open_above = self.high.is_none_or(|h| h.key - max > max - min);
        let used = if open_above && n > 0 {
            (cap * 3 / 4).max(n)
        } else {
            cap
        };
        let scale = if n > 0 { used as f64 / n as f64 } else { 1.0 };
        let model = LinearModel::fit_ranks(self.entries.iter().map(|e| e.key), base, scale);
        let node = DataNode {
            model,
            low: self.low,
            high: self.high,
            right: self.right,
            cap,
            count: n,
            width,
            flags: self.flags,
            pending: self.pending,
            keys_off,
            pay_off: upper,
            mask: if width == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * width)) - 1
            },
        };
        node.write_header(p);
        let mut next_free = 0usize;
        for (i, e) in self.entries.iter().enumerate() {
            let q = node
                .model
                .slot(e.key, cap)
                .max(next_free)
                .min(cap - (n - i));
            node.set_rkey(p, q, e.key - base);
            node.set_tid(p, q, e.tid);
            node.set_occ(p, q, true);
            next_free = q + 1;
        }
        let mut fill = node.mask;
        for i in (0..cap).rev() {
            if node.occupied(p, i) {
                fill = node.rkey(p, i);
            } else {
                node.set_rkey(p, i, fill);
            }
        }
        true
    }
}

/// A blank valid page (used when allocating before content is known).
pub fn empty_spec(low: Item) -> DataSpec<'static> {
    DataSpec {
        entries: &[],
        low,
        high: None,
        right: INVALID_BLOCK,
        flags: 0,
        pending: 0,
        residual: true,
    }
}

/// Full content check for `verify`: bitmap count, non-decreasing keys, gap fill, entry order,
/// bounds, no residual overflow. Returns the entries.
pub fn check_contents(n: &DataNode, p: &Page, blk: u32) -> Result<Vec<Item>> {
    let bits: usize = (0..n.cap).filter(|&i| n.occupied(p, i)).count();
    if bits != n.count {
        return corrupt(
            blk,
            format!("bitmap has {bits} entries, header says {}", n.count),
        );
    }
    // Bits past cap in the last bitmap byte must be clear.
    for i in n.cap..n.cap.div_ceil(8) * 8 {
        if n.occupied(p, i) {
            return corrupt(blk, "bitmap bit set past capacity");
        }
    }
    let mut next = n.mask;
    for i in (0..n.cap).rev() {
        let r = n.rkey(p, i);
        if n.occupied(p, i) {
            if r > next {
                return corrupt(blk, format!("keys not sorted at slot {i}"));
            }
            if n.base().checked_add(r).is_none() {
                return corrupt(blk, format!("key overflow at slot {i}"));
            }
            next = r;
        } else if r != next {
            return corrupt(blk, format!("gap slot {i} does not hold the next key"));
        }
    }
    let entries = n.entries(p);
    for w in entries.windows(2) {
        if w[0] >= w[1] {
            return corrupt(blk, "entries not strictly increasing by (key, tid)");
        }
    }
    if let (Some(f), Some(l)) = (entries.first(), entries.last()) {
        if !n.covers(*f) || !n.covers(*l) {
            return corrupt(blk, "entry outside the page's [low, high) range");
        }
    }
    Ok(entries)
}
