//! Page operations small enough to log by description.
//!
//! A store that has a write-ahead log of its own (the PostgreSQL binding's resource manager)
//! can log an in-place insert as "insert this entry at this placement in this page" — 21
//! bytes — or the removal of entries whose rows are dead to everyone, instead of a
//! before/after image of the page, and replay it by running the same code on the same
//! page. That is exact because [`PageOp::apply`] is a deterministic function of the page's
//! bytes and the op: redo starts from the page as it was before the op (PostgreSQL's WAL
//! order and full-page images guarantee that), so it produces the same bytes. The insert
//! records where the entry goes (the writer's choice), so replay does not depend on the
//! placement heuristics of the build that replays it; every encoding starts with
//! [`PageOp::FORMAT`] and a decoder refuses another.

use crate::data_node::{DataNode, InPlace};
use crate::error::{corrupt, invariant, Result};
use crate::key::{Item, Tid};
use crate::page::{self, Kind, Page};

/// A change to one data page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageOp {
    /// Insert the entry in place, at the placement the writer chose
    /// ([`DataNode::place`]).
    Insert { item: Item, at: InPlace },
    /// Remove these entries (ascending, all on the page), whose rows the caller knows are
    /// dead to every transaction. `conflict` is opaque to the index: a value the store logs
    /// with the op (PostgreSQL: the newest removed row's xid, which a hot standby's queries
    /// must not still need).
    Remove { items: Vec<Item>, conflict: u32 },
}

const TAG_INSERT: u8 = 1;
const TAG_REMOVE: u8 = 2;
const ITEM_BYTES: usize = 14;
const AT_RUN: u8 = 1;
const AT_RIGHT: u8 = 2;
const AT_LEFT: u8 = 3;

fn put_item(b: &mut Vec<u8>, item: &Item) {
    b.extend_from_slice(&item.key.to_le_bytes());
    b.extend_from_slice(&item.tid.block.to_le_bytes());
    b.extend_from_slice(&item.tid.offset.to_le_bytes());
}

fn get_item(b: &[u8]) -> Item {
    let key = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
    let block = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    let offset = u16::from_le_bytes(b[12..14].try_into().expect("2 bytes"));
    Item::new(key, Tid::new(block, offset))
}

impl PageOp {
    /// Version of the encoding (the first byte).
    pub const FORMAT: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![Self::FORMAT];
        match self {
            PageOp::Insert { item, at } => {
                b.push(TAG_INSERT);
                put_item(&mut b, item);
                let (kind, x, y) = match *at {
                    InPlace::InRun { a, q } => (AT_RUN, a, q),
                    InPlace::ShiftRight { i, gap } => (AT_RIGHT, i, gap),
                    InPlace::ShiftLeft { i, gap } => (AT_LEFT, i, gap),
                };
                b.push(kind);
                b.extend_from_slice(&x.to_le_bytes());
                b.extend_from_slice(&y.to_le_bytes());
            }
            PageOp::Remove { items, conflict } => {
                b.push(TAG_REMOVE);
                b.extend_from_slice(&conflict.to_le_bytes());
                for it in items {
                    put_item(&mut b, it);
                }
            }
        }
        b
    }

    /// Decode an op logged for block `blk`.
    pub fn decode(b: &[u8], blk: u32) -> Result<PageOp> {
        let [format, tag, rest @ ..] = b else {
            return corrupt(blk, "truncated logged page operation");
        };
        if *format != Self::FORMAT {
            return corrupt(
                blk,
                format!(
                    "logged page operation of format {format}; this build reads format {}",
                    Self::FORMAT
                ),
            );
        }
        match (*tag, rest) {
            (TAG_INSERT, rest) if rest.len() == ITEM_BYTES + 5 => {
                let item = get_item(rest);
                let x = u16::from_le_bytes([rest[15], rest[16]]);
                let y = u16::from_le_bytes([rest[17], rest[18]]);
                let at = match rest[14] {
                    AT_RUN => InPlace::InRun { a: x, q: y },
                    AT_RIGHT => InPlace::ShiftRight { i: x, gap: y },
                    AT_LEFT => InPlace::ShiftLeft { i: x, gap: y },
                    _ => return corrupt(blk, "logged insert with an unknown placement"),
                };
                Ok(PageOp::Insert { item, at })
            }
            (TAG_REMOVE, rest) if rest.len() > 4 && (rest.len() - 4) % ITEM_BYTES == 0 => {
                let conflict = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
                let items: Vec<Item> = rest[4..].chunks_exact(ITEM_BYTES).map(get_item).collect();
                if items.windows(2).any(|w| w[0] >= w[1]) {
                    return corrupt(blk, "logged removal lists entries out of order");
                }
                Ok(PageOp::Remove { items, conflict })
            }
            _ => corrupt(blk, "undecodable logged page operation"),
        }
    }

    /// The store's opaque value logged with a removal.
    pub fn conflict(&self) -> Option<u32> {
        match self {
            PageOp::Remove { conflict, .. } => Some(*conflict),
            PageOp::Insert { .. } => None,
        }
    }

    /// Whether the op removes entries (stores take a cleanup lock for those, see
    /// [`PageStore::apply`](crate::PageStore::apply)).
    pub fn removes(&self) -> bool {
        matches!(self, PageOp::Remove { .. })
    }

    /// Apply the op to `p` (block `blk`). Deterministic in the page's bytes: the writer and
    /// WAL replay run exactly this. An op that does not apply (an insert whose placement
    /// does not fit the page, a removal of entries not there) is an error and leaves the
    /// page unchanged.
    pub fn apply(&self, p: &mut Page, blk: u32) -> Result<()> {
        let mut n = live_data_page(p, blk)?;
        match self {
            PageOp::Insert { item, at } => {
                if n.incomplete() || !n.insert_at(p, *item, *at) {
                    return invariant(blk, "logged insert does not fit the page");
                }
                Ok(())
            }
            PageOp::Remove { items, .. } => {
                if items.is_empty() || !items.iter().all(|&it| n.covers(it) && n.find(p, it).1) {
                    return invariant(blk, "logged removal names entries not on the page");
                }
                for &it in items {
                    n.remove(p, it);
                }
                Ok(())
            }
        }
    }
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
        let op = PageOp::Insert {
            item: Item::new(u64::MAX - 3, Tid::new(77_000, 0x8001)),
            at: InPlace::ShiftLeft { i: 700, gap: 650 },
        };
        let b = op.encode();
        assert_eq!(b.len(), 21);
        assert_eq!(PageOp::decode(&b, 5).unwrap(), op);
        assert!(PageOp::decode(&b[..b.len() - 1], 5).is_err());
        assert!(PageOp::decode(&[9; 21], 5).is_err());
        assert!(PageOp::decode(&[], 5).is_err());
        // Another format version is refused, not misread.
        let mut newer = b.clone();
        newer[0] = PageOp::FORMAT + 1;
        assert!(PageOp::decode(&newer, 5).is_err());
        let rm = PageOp::Remove {
            items: vec![Item::new(3, Tid::new(1, 2)), Item::new(3, Tid::new(1, 3))],
            conflict: 0xDEAD_BEEF,
        };
        let b = rm.encode();
        assert_eq!(PageOp::decode(&b, 5).unwrap(), rm);
        assert_eq!(rm.conflict(), Some(0xDEAD_BEEF));
        assert!(rm.removes() && !op.removes());
        assert!(PageOp::decode(&b[..b.len() - 1], 5).is_err());
        // Out of order, or no entries: refused.
        let bad = PageOp::Remove {
            items: vec![Item::new(4, Tid::new(1, 2)), Item::new(3, Tid::new(1, 3))],
            conflict: 1,
        };
        assert!(PageOp::decode(&bad.encode(), 5).is_err());
        assert!(PageOp::decode(&[PageOp::FORMAT, TAG_REMOVE, 1, 0, 0, 0], 5).is_err());
    }
}
