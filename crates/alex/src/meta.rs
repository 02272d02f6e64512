//! The metapage (block 0).

use crate::error::{corrupt, Result};
use crate::page::{self, get_u32, get_u64, put_u32, put_u64, Kind, Page, SPECIAL_OFF};

const MAGIC: u32 = 0x414C_4558; // "ALEX"
const OFF_MAGIC: usize = 24;
const OFF_ROOT: usize = 28;
const OFF_LEFTMOST: usize = 32;
const OFF_LEVELS: usize = 36;
const OFF_FLAGS: usize = 40;
const OFF_NDATA: usize = 44;
const OFF_NMODEL: usize = 48;
const OFF_KEYKIND: usize = 52;
const OFF_NKEYS: usize = 56;
const OFF_FILL: usize = 64;
const OFF_MAXD: usize = 68;
const OFF_VERSION: usize = 72; // bumped by every structural change (binding cache invalidation)
const META_END: usize = 80;

/// Metapage flag: `n_keys` is maintained exactly on every insert/delete (adds the metapage to
/// every write group, i.e. an index-wide hot spot; the binding may turn it off).
pub const META_EXACT_COUNT: u32 = 1;
/// Metapage flag: data pages store keys as residuals from a per-node base.
pub const META_RESIDUAL_KEYS: u32 = 2;
/// Flags from this bit up belong to the binding (`Alex::set_meta_flags`).
pub const META_BINDING_FLAGS: u32 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Meta {
    pub root: u32,
    pub leftmost: u32,
    /// Longest root-to-data-page path, counting the data page (1 = root is a data page).
    pub levels: u32,
    pub flags: u32,
    pub n_data: u32,
    pub n_model: u32,
    pub key_kind: u32,
    pub n_keys: u64,
    pub fill: f32,
    pub max_density: f32,
    /// Incremented on every structural change (split, root change).
    pub version: u64,
}

impl Meta {
    pub fn exact_count(&self) -> bool {
        self.flags & META_EXACT_COUNT != 0
    }
    pub fn residual_keys(&self) -> bool {
        self.flags & META_RESIDUAL_KEYS != 0
    }

    pub fn decode(p: &Page) -> Result<Meta> {
        let blk = page::META_BLOCK;
        page::expect(p, blk, Kind::Meta)?;
        if get_u32(p, OFF_MAGIC) != MAGIC {
            return corrupt(blk, "bad metapage magic");
        }
        if page::pd_lower(p) != META_END || page::pd_upper(p) != SPECIAL_OFF {
            return corrupt(blk, "bad metapage bounds");
        }
        let m = Meta {
            root: get_u32(p, OFF_ROOT),
            leftmost: get_u32(p, OFF_LEFTMOST),
            levels: get_u32(p, OFF_LEVELS),
            flags: get_u32(p, OFF_FLAGS),
            n_data: get_u32(p, OFF_NDATA),
            n_model: get_u32(p, OFF_NMODEL),
            key_kind: get_u32(p, OFF_KEYKIND),
            n_keys: get_u64(p, OFF_NKEYS),
            fill: f32::from_bits(get_u32(p, OFF_FILL)),
            max_density: f32::from_bits(get_u32(p, OFF_MAXD)),
            version: get_u64(p, OFF_VERSION),
        };
        if m.root == 0 || m.leftmost == 0 || m.levels == 0 || m.levels > 256 {
            return corrupt(blk, "bad root/leftmost/levels in metapage");
        }
        if !(m.fill > 0.05 && m.fill <= 1.0 && m.max_density >= m.fill && m.max_density <= 1.0) {
            return corrupt(blk, "bad fill/max_density in metapage");
        }
        Ok(m)
    }

    pub fn encode(&self, p: &mut Page) {
        page::init(p, Kind::Meta, META_END, SPECIAL_OFF);
        put_u32(p, OFF_MAGIC, MAGIC);
        put_u32(p, OFF_ROOT, self.root);
        put_u32(p, OFF_LEFTMOST, self.leftmost);
        put_u32(p, OFF_LEVELS, self.levels);
        put_u32(p, OFF_FLAGS, self.flags);
        put_u32(p, OFF_NDATA, self.n_data);
        put_u32(p, OFF_NMODEL, self.n_model);
        put_u32(p, OFF_KEYKIND, self.key_kind);
        put_u64(p, OFF_NKEYS, self.n_keys);
        put_u32(p, OFF_FILL, self.fill.to_bits());
        put_u32(p, OFF_MAXD, self.max_density.to_bits());
        put_u64(p, OFF_VERSION, self.version);
    }
}
