//! Page layout shared by every page kind.
//!
//! ```text
//! 0      24                         pd_lower        pd_upper        8176    8192
//! | PG hdr | node header | body (grows up) | hole | body (grows down) | special |
//! ```
//! * Bytes 0..24 are PostgreSQL's `PageHeaderData`. We fill the fields PostgreSQL checks
//!   (`pd_lower` @12, `pd_upper` @14, `pd_special` @16, `pd_pagesize_version` @18, all u16 LE)
//!   so the binding can hand pages to the buffer manager and GenericXLog unchanged.
//! * Live data sits only in `[24, pd_lower)` and `[pd_upper, 8192)`: GenericXLog deltas and
//!   full-page images skip the hole, so nothing in it may matter. Decoders never read it
//!   except the 8-byte key load in `data_node`, which masks the extra bytes away.
//! * The 16-byte special area: kind u8, format version u8, 12 reserved bytes, magic u16.

use crate::error::{corrupt, Result};

pub const PAGE_SIZE: usize = 8192;
pub type Page = [u8; PAGE_SIZE];
pub const PG_HEADER: usize = 24;
pub const SPECIAL_SIZE: usize = 16;
pub const SPECIAL_OFF: usize = PAGE_SIZE - SPECIAL_SIZE;
/// Bumped on any incompatible change to any page kind.
pub const FORMAT_VERSION: u8 = 1;
pub const PAGE_MAGIC: u16 = 0xA1E7;
/// `PageSetPageSizeAndVersion(page, BLCKSZ, PG_PAGE_LAYOUT_VERSION=4)`.
const PAGESIZE_VERSION: u16 = (PAGE_SIZE as u16) | 4;
pub const INVALID_BLOCK: u32 = u32::MAX;
pub const META_BLOCK: u32 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Meta = 1,
    Model = 2,
    Data = 3,
}

#[inline]
pub fn get_u16(p: &Page, off: usize) -> u16 {
    u16::from_le_bytes([p[off], p[off + 1]])
}
#[inline]
pub fn get_u32(p: &Page, off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&p[off..off + 4]);
    u32::from_le_bytes(b)
}
#[inline]
pub fn get_u64(p: &Page, off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[off..off + 8]);
    u64::from_le_bytes(b)
}
#[inline]
pub fn get_f64(p: &Page, off: usize) -> f64 {
    f64::from_bits(get_u64(p, off))
}
#[inline]
pub fn put_u16(p: &mut Page, off: usize, v: u16) {
    p[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub fn put_u32(p: &mut Page, off: usize, v: u32) {
    p[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub fn put_u64(p: &mut Page, off: usize, v: u64) {
    p[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub fn put_f64(p: &mut Page, off: usize, v: f64) {
    put_u64(p, off, v.to_bits())
}

pub fn pd_lower(p: &Page) -> usize {
    get_u16(p, 12) as usize
}
pub fn pd_upper(p: &Page) -> usize {
    get_u16(p, 14) as usize
}

/// Zero the page and write the PG header and special area for `kind`.
pub fn init(p: &mut Page, kind: Kind, lower: usize, upper: usize) {
    p.fill(0);
    put_u16(p, 12, lower as u16);
    put_u16(p, 14, upper as u16);
    put_u16(p, 16, SPECIAL_OFF as u16);
    put_u16(p, 18, PAGESIZE_VERSION);
    p[SPECIAL_OFF] = kind as u8;
    p[SPECIAL_OFF + 1] = FORMAT_VERSION;
    put_u16(p, PAGE_SIZE - 2, PAGE_MAGIC);
}

/// Update pd_lower/pd_upper after a layout change (e.g. key width changed).
pub fn set_bounds(p: &mut Page, lower: usize, upper: usize) {
    put_u16(p, 12, lower as u16);
    put_u16(p, 14, upper as u16);
}

/// Check the PG header and special area; return the page kind.
pub fn check(p: &Page, blk: u32) -> Result<Kind> {
    if get_u16(p, PAGE_SIZE - 2) != PAGE_MAGIC {
        return corrupt(blk, "bad magic (not an alex page or zeroed)");
    }
    if p[SPECIAL_OFF + 1] != FORMAT_VERSION {
        return corrupt(
            blk,
            format!("unsupported format version {}", p[SPECIAL_OFF + 1]),
        );
    }
    if get_u16(p, 16) as usize != SPECIAL_OFF || get_u16(p, 18) != PAGESIZE_VERSION {
        return corrupt(blk, "bad pd_special or pd_pagesize_version");
    }
    let (lo, up) = (pd_lower(p), pd_upper(p));
    if lo < PG_HEADER || lo > up || up > SPECIAL_OFF {
        return corrupt(blk, format!("bad pd_lower {lo} / pd_upper {up}"));
    }
    match p[SPECIAL_OFF] {
        1 => Ok(Kind::Meta),
        2 => Ok(Kind::Model),
        3 => Ok(Kind::Data),
        k => corrupt(blk, format!("unknown page kind {k}")),
    }
}

/// The page kind from the special area alone (magic, format version, kind byte): the check
/// the read path makes. Decoders that need more validate what they index by themselves;
/// `check` (used by `verify`) also checks the PostgreSQL header fields.
#[inline]
pub fn kind_fast(p: &Page, blk: u32) -> Result<Kind> {
    if get_u16(p, PAGE_SIZE - 2) != PAGE_MAGIC || p[SPECIAL_OFF + 1] != FORMAT_VERSION {
        return check(p, blk); // slow path: builds the precise error
    }
    match p[SPECIAL_OFF] {
        1 => Ok(Kind::Meta),
        2 => Ok(Kind::Model),
        3 => Ok(Kind::Data),
        _ => check(p, blk),
    }
}

pub fn expect(p: &Page, blk: u32, want: Kind) -> Result<()> {
    let k = check(p, blk)?;
    if k != want {
        return corrupt(blk, format!("expected {want:?} page, found {k:?}"));
    }
    Ok(())
}
