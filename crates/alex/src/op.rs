//! Page operations small enough to log by description.
//!
//! A store that has a write-ahead log of its own (the PostgreSQL binding's resource manager)
//! can log an in-place insert as "insert this entry into this page" — 15 bytes — instead of
//! a before/after image of the page, and replay it by running the same code on the same
//! page. That is exact because [`PageOp::apply`] is a deterministic function of the page's
//! bytes and the op: redo starts from the page as it was before the op (PostgreSQL's WAL
//! order and full-page images guarantee that), so it produces the same bytes.

use crate::data_node::{DataNode, InsertOutcome};
use crate::error::{corrupt, invariant, Result};
use crate::key::{Item, Tid};
use crate::page::{self, Kind, Page};

/// A change to one data page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageOp {
    /// Insert the entry in place (its placement needs no retrain; see
    /// [`DataNode::insert_outcome`]).
    Insert(Item),
}

const TAG_INSERT: u8 = 1;

impl PageOp {
    /// Bytes of the longest encoding.
    pub const MAX_ENCODED: usize = 15;

    pub fn encode(&self) -> ([u8; Self::MAX_ENCODED], usize) {
        let mut b = [0u8; Self::MAX_ENCODED];
        match self {
            PageOp::Insert(item) => {
                b[0] = TAG_INSERT;
                b[1..9].copy_from_slice(&item.key.to_le_bytes());
                b[9..13].copy_from_slice(&item.tid.block.to_le_bytes());
                b[13..15].copy_from_slice(&item.tid.offset.to_le_bytes());
                (b, 15)
            }
        }
    }

    /// Decode an op logged for block `blk`.
    pub fn decode(b: &[u8], blk: u32) -> Result<PageOp> {
        match b {
            [TAG_INSERT, rest @ ..] if rest.len() == 14 => {
                let key = u64::from_le_bytes(rest[0..8].try_into().expect("8 bytes"));
                let block = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
                let offset = u16::from_le_bytes(rest[12..14].try_into().expect("2 bytes"));
                Ok(PageOp::Insert(Item::new(key, Tid::new(block, offset))))
            }
            _ => corrupt(blk, "undecodable logged page operation"),
        }
    }

    /// Whether `op` may be applied to the page `p` as it is: what the writer checks under
    /// its exclusive lock before it applies and logs the op.
    pub fn applies(&self, p: &Page, blk: u32) -> Result<bool> {
        let n = live_data_page(p, blk)?;
        Ok(match self {
            PageOp::Insert(item) => {
                insert_fits(&n, *item) && n.insert_outcome(p, *item) == InsertOutcome::Inserted
            }
        })
    }

    /// Apply the op to `p` (block `blk`). Deterministic in the page's bytes: the writer and
    /// WAL replay run exactly this. An op that does not apply is an error and leaves the
    /// page unchanged.
    pub fn apply(&self, p: &mut Page, blk: u32) -> Result<()> {
        let mut n = live_data_page(p, blk)?;
        match self {
            PageOp::Insert(item) => {
                if !insert_fits(&n, *item) {
                    return invariant(blk, "logged insert does not fit the page");
                }
                match n.insert(p, *item) {
                    InsertOutcome::Inserted => Ok(()),
                    _ => invariant(blk, "logged insert does not go in place"),
                }
            }
        }
    }
}

/// The page's header allows an in-place insert of `item` (`DataNode::insert`'s contract).
fn insert_fits(n: &DataNode, item: Item) -> bool {
    !n.incomplete() && n.covers(item) && n.fits_key(item.key) && n.count < n.cap
}

fn live_data_page(p: &Page, blk: u32) -> Result<DataNode> {
    if page::kind_fast(p, blk)? != Kind::Data {
        return corrupt(
            blk,
            "logged page operation on a page that is not a data page",
        );
    }
    let n = DataNode::decode(p, blk)?;
    if n.deleted() {
        return corrupt(blk, "logged page operation on a deleted data page");
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let op = PageOp::Insert(Item::new(u64::MAX - 3, Tid::new(77_000, 0x8001)));
        let (b, n) = op.encode();
        assert_eq!(PageOp::decode(&b[..n], 5).unwrap(), op);
        assert!(PageOp::decode(&b[..n - 1], 5).is_err());
        assert!(PageOp::decode(&[9; 15], 5).is_err());
        assert!(PageOp::decode(&[], 5).is_err());
    }
}
