//! Model (inner) nodes: a linear model and `fanout` child block numbers.
//!
//! A key is routed by `children[model.slot(key, fanout)]` — arithmetic, no key comparisons.
//! Consecutive slots may name the same child (ALEX's pointer duplication), which is what lets
//! a data page split sideways by re-pointing slots in one parent page. Each node records the
//! key domain `[low, high)` its parent routes to it; slot `s` covers
//! `[slot_low(s), slot_low(s+1))`, computed exactly by binary search over the monotone model.
//!
//! Layout: PG header | base u64 | slope f64 | intercept f64 | low u64 | high u64 | flags u16 |
//! level u16 | fanout u32 | children u32 × fanout (pd_lower) | hole | special.

use crate::error::{corrupt, Result};
use crate::model::LinearModel;
use crate::page::{
    self, get_f64, get_u16, get_u32, get_u64, put_f64, put_u16, put_u32, put_u64, Kind, Page,
    SPECIAL_OFF,
};

const OFF_BASE: usize = 24;
const OFF_SLOPE: usize = 32;
const OFF_INTERCEPT: usize = 40;
const OFF_LOW: usize = 48;
const OFF_HIGH: usize = 56;
const OFF_FLAGS: usize = 64;
const OFF_LEVEL: usize = 66;
const OFF_FANOUT: usize = 68;
const OFF_CHILDREN: usize = 72;
/// Largest fanout (a power of two) whose child array fits one page.
pub const MAX_FANOUT: usize = 1024;
const F_HIGH_INF: u16 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct ModelNode {
    pub model: LinearModel,
    pub low: u64,
    /// Exclusive upper bound of the domain; `None` = +infinity.
    pub high: Option<u64>,
    /// Height above the data pages (1 = children are data pages, when built by bulk load;
    /// informational only).
    pub level: u16,
    pub fanout: usize,
}

impl ModelNode {
    pub fn decode(p: &Page, blk: u32) -> Result<ModelNode> {
        page::expect(p, blk, Kind::Model)?;
        let fanout = get_u32(p, OFF_FANOUT) as usize;
        if fanout == 0 || fanout > MAX_FANOUT {
            return corrupt(blk, format!("bad fanout {fanout}"));
        }
        if page::pd_lower(p) != OFF_CHILDREN + 4 * fanout || page::pd_upper(p) != SPECIAL_OFF {
            return corrupt(blk, "model page bounds do not match fanout");
        }
        let flags = get_u16(p, OFF_FLAGS);
        if flags & !F_HIGH_INF != 0 {
            return corrupt(blk, format!("unknown model flags {flags:#x}"));
        }
        let low = get_u64(p, OFF_LOW);
        let high = if flags & F_HIGH_INF != 0 {
            None
        } else {
            Some(get_u64(p, OFF_HIGH))
        };
        if high.is_some_and(|h| h <= low) {
            return corrupt(blk, "model node domain is empty");
        }
        let model = LinearModel {
            base: get_u64(p, OFF_BASE),
            slope: get_f64(p, OFF_SLOPE),
            intercept: get_f64(p, OFF_INTERCEPT),
        };
        if !(model.slope >= 0.0 && model.slope.is_finite() && model.intercept.is_finite()) {
            return corrupt(blk, "model node has a non-monotone or non-finite model");
        }
        Ok(ModelNode {
            model,
            low,
            high,
            level: get_u16(p, OFF_LEVEL),
            fanout,
        })
    }

    /// Route `key` on model page `p` (the read path; the caller checked the kind with
    /// `page::kind_fast`). Only what indexing depends on is validated: the fanout bound keeps
    /// the child read inside the page, and a corrupt model can only pick a wrong slot (the
    /// float-to-int cast saturates), which move-right and `verify` catch.
    #[inline]
    pub fn route(p: &Page, blk: u32, key: u64) -> Result<u32> {
        let fanout = get_u32(p, OFF_FANOUT) as usize;
        if fanout == 0 || fanout > MAX_FANOUT {
            return corrupt(blk, format!("bad fanout {fanout}"));
        }
        let model = LinearModel {
            base: get_u64(p, OFF_BASE),
            slope: get_f64(p, OFF_SLOPE),
            intercept: get_f64(p, OFF_INTERCEPT),
        };
        Ok(get_u32(p, OFF_CHILDREN + 4 * model.slot(key, fanout)))
    }

    /// Slot a key routes to.
    #[inline]
    pub fn slot(&self, key: u64) -> usize {
        self.model.slot(key, self.fanout)
    }

    /// Child block at `slot` (caller guarantees `slot < fanout`, checked by `decode`).
    #[inline]
    pub fn child(&self, p: &Page, slot: usize) -> u32 {
        get_u32(p, OFF_CHILDREN + 4 * slot.min(self.fanout - 1))
    }

    pub fn children(&self, p: &Page) -> Vec<u32> {
        (0..self.fanout).map(|s| self.child(p, s)).collect()
    }

    /// Lowest key routed to slot `s` (`s == fanout` gives `high`, i.e. the domain end).
    /// `None` means +infinity.
    pub fn slot_low(&self, s: usize) -> Option<u64> {
        if s == 0 {
            return Some(self.low);
        }
        if s >= self.fanout {
            return self.high;
        }
        let hi = match self.high {
            Some(h) => h - 1,
            None => u64::MAX,
        };
        match self.model.slot_lower_bound(s, self.fanout, self.low, hi) {
            Some(k) => Some(k),
            None => self.high,
        }
    }

    pub fn encode(&self, p: &mut Page, children: &[u32]) {
        debug_assert_eq!(children.len(), self.fanout);
        page::init(p, Kind::Model, OFF_CHILDREN + 4 * self.fanout, SPECIAL_OFF);
        put_u64(p, OFF_BASE, self.model.base);
        put_f64(p, OFF_SLOPE, self.model.slope);
        put_f64(p, OFF_INTERCEPT, self.model.intercept);
        put_u64(p, OFF_LOW, self.low);
        put_u64(p, OFF_HIGH, self.high.unwrap_or(u64::MAX));
        put_u16(
            p,
            OFF_FLAGS,
            if self.high.is_none() { F_HIGH_INF } else { 0 },
        );
        put_u16(p, OFF_LEVEL, self.level);
        put_u32(p, OFF_FANOUT, self.fanout as u32);
        for (s, c) in children.iter().enumerate() {
            put_u32(p, OFF_CHILDREN + 4 * s, *c);
        }
    }

    pub fn set_child(&self, p: &mut Page, slot: usize, child: u32) {
        if slot < self.fanout {
            put_u32(p, OFF_CHILDREN + 4 * slot, child);
        }
    }

    /// The run of slots `[a, b)` containing `slot` that all point to the same child.
    pub fn run_of(&self, p: &Page, slot: usize) -> (usize, usize) {
        let c = self.child(p, slot);
        let mut a = slot;
        while a > 0 && self.child(p, a - 1) == c {
            a -= 1;
        }
        let mut b = slot + 1;
        while b < self.fanout && self.child(p, b) == c {
            b += 1;
        }
        (a, b)
    }
}
