//! An updatable learned index in the style of ALEX (Ding et al., SIGMOD 2020), stored in
//! fixed 8 KiB pages behind a [`PageStore`], with no PostgreSQL dependency.
//!
//! * Model nodes ([`model_node`]) route a key to a child by `children[floor(a·x + b)]`.
//! * Data pages ([`data_node`]) hold a gapped, model-placed array of (key, TID) entries with an
//!   occupancy bitmap, a high key and a right-link.
//! * Bulk load ([`bulk`]) picks fanouts and page boundaries with a small cost model.
//! * Inserts fill gaps in place; a full page is retrained, or split sideways (re-pointing
//!   duplicated parent slots), downwards (a new model node), along a duplicate chain, or —
//!   for an ascending stream at the top of the key space — under a new root grown above the
//!   old one. Every split is a sequence of ≤4-page atomic groups, planned from shared reads
//!   and re-decided under the groups' exclusive locks; see [`concurrency`].
//! * VACUUM merges a data page with its right sibling when both fit one page ([`merge`]); the
//!   freed block is reused by a later allocation, and readers that reach it start over.
//! * Readers cache the root and (after enough lookups) a copy of the model levels in the
//!   `Alex` value; stale copies stay correct because model pages never move and readers
//!   recognise data pages merged away or reused (`cache.rs`, [`concurrency`]).
//! * Keys are `u64`s in SQL order; [`Key`] maps i16/i32/i64/f64 (PostgreSQL's order) there.
//!
//! ```
//! use alex::{Alex, MemStore, Options, Tid, Key};
//! let mut ix = Alex::bulk_load(MemStore::new(), Options::default(),
//!     (0..1000i64).map(|k| (k.to_ordered_u64(), Tid::new(k as u32, 1)))).unwrap();
//! ix.insert(5i64.to_ordered_u64(), Tid::new(9, 9)).unwrap();
//! assert_eq!(ix.get(5i64.to_ordered_u64()).unwrap().len(), 2);
//! ix.verify().unwrap();
//! ```

pub mod bulk;
mod cache;
pub mod concurrency;
pub mod data_node;
mod delete;
pub mod error;
#[doc(hidden)]
pub mod gen;
mod insert;
pub mod iter;
pub mod key;
mod merge;
pub mod meta;
pub mod model;
pub mod model_node;
pub mod op;
pub mod page;
mod search;
mod split;
pub mod store;
pub mod verify;

pub use error::{Error, Result};
pub use iter::{Direction, RangeIter};
pub use key::{Item, Key, Tid};
pub use meta::Meta;
pub use op::PageOp;
pub use store::{Applied, ApplyLock, MemStore, PageStore, WriteGroup, GROUP_LIMIT};
pub use verify::VerifyReport;

/// Build-time and tuning options (persisted in the metapage).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Fraction of a data page's slots filled by bulk load (ALEX's initial density).
    pub fill: f32,
    /// A page whose next insert would exceed this density is split.
    pub max_density: f32,
    /// Keep an exact key count in the metapage (adds the metapage to every write group).
    pub exact_count: bool,
    /// Store keys as residuals from a per-page base in 1..=8 bytes (see README for the
    /// measurement); `false` always uses 8 bytes.
    pub residual_keys: bool,
    /// Opaque key type tag recorded in the metapage (see [`Key::KIND`]).
    pub key_kind: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fill: 0.7,
            max_density: 0.9,
            exact_count: true,
            residual_keys: true,
            key_kind: 0,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        if !(self.fill > 0.05
            && self.fill <= 1.0
            && self.max_density >= self.fill
            && self.max_density <= 1.0)
        {
            return Err(Error::Invalid(format!(
                "need 0.05 < fill <= max_density <= 1, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// The index: an [`PageStore`] plus the algorithms. Readers take `&self`, writers `&mut self`;
/// all shared state lives in the pages, so several `Alex` values over one shared store (one
/// per backend) follow the protocol in [`concurrency`].
pub struct Alex<S: PageStore> {
    store: S,
    /// Reader-side caches, shareable between `Alex` values over the same index.
    readers: std::sync::Arc<ReaderCache>,
    /// Test hook: stop a split after its first atomic group, as a crash would.
    #[doc(hidden)]
    pub crash_after_split_group1: bool,
}

/// What readers cache about an index: the root block and a copy of the model levels. Stale
/// contents are safe (see `cache`), so several `Alex` values over one index
/// — e.g. the scans and inserts of one PostgreSQL backend, across statements — can share one
/// and pay for building it once. A cache must only be used with the index it was built for.
pub struct ReaderCache {
    /// Root block for readers (`INVALID_BLOCK` = read the metapage). A stale value is safe
    /// (see `search::reader_root`); writers always read the metapage.
    pub(crate) root: std::sync::atomic::AtomicU32,
    /// Copy of the model levels for readers (see `cache`).
    pub(crate) slot: cache::CacheSlot,
    /// The data page the last insert went to, and whether the one before went there too
    /// (see `insert::Alex::try_insert`).
    pub(crate) last_insert: std::sync::atomic::AtomicU32,
    pub(crate) insert_streak: std::sync::atomic::AtomicBool,
    /// A lookup walked far along the data pages: the next one checks the caches against
    /// the metapage first (see `search::read_leaf_with`).
    pub(crate) long_walk: std::sync::atomic::AtomicBool,
    /// The metapage's build options (never change after the build), read once.
    pub(crate) options: std::sync::OnceLock<Meta>,
}

impl Default for ReaderCache {
    fn default() -> Self {
        ReaderCache {
            root: std::sync::atomic::AtomicU32::new(page::INVALID_BLOCK),
            slot: Default::default(),
            last_insert: std::sync::atomic::AtomicU32::new(page::INVALID_BLOCK),
            insert_streak: Default::default(),
            long_walk: Default::default(),
            options: Default::default(),
        }
    }
}

impl ReaderCache {
    pub(crate) fn invalidate(&self) {
        self.root
            .store(page::INVALID_BLOCK, std::sync::atomic::Ordering::Relaxed);
        self.slot.invalidate();
        self.insert_streak
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<S: PageStore> Alex<S> {
    /// Create an empty index in an empty store.
    pub fn create(store: S, opts: Options) -> Result<Self> {
        Self::bulk_load(store, opts, std::iter::empty())
    }

    /// Open an existing index (checks the metapage).
    pub fn open(store: S) -> Result<Self> {
        let ix = Alex::wrap(store);
        ix.meta()?;
        Ok(ix)
    }

    /// Open an existing index, sharing reader caches with other `Alex` values over it.
    ///
    /// Unlike `open`, this does not read the metapage: bindings open an index per call, and
    /// every operation reads (and checks) the metapage when it needs it, so a bad one still
    /// surfaces as an error on first use.
    pub fn open_with_cache(store: S, readers: std::sync::Arc<ReaderCache>) -> Result<Self> {
        Ok(Alex {
            readers,
            ..Alex::wrap(store)
        })
    }

    /// This value's reader caches, to share with later `Alex` values over the same index.
    pub fn reader_cache(&self) -> std::sync::Arc<ReaderCache> {
        self.readers.clone()
    }

    fn wrap(store: S) -> Self {
        Alex {
            store,
            readers: Default::default(),
            crash_after_split_group1: false,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn store_mut(&mut self) -> &mut S {
        self.readers.invalidate();
        &mut self.store
    }
    pub fn into_store(self) -> S {
        self.store
    }

    /// The decoded metapage.
    pub fn meta(&self) -> Result<Meta> {
        store::read_with(&self.store, page::META_BLOCK, Meta::decode)
    }

    /// Set and clear metapage flags (bits from 16 up are free for a binding's own use).
    pub fn set_meta_flags(&mut self, set: u32, clear: u32) -> Result<()> {
        store::atomic_with(&mut self.store, |g| {
            insert::bump_meta(g, |m| m.flags = (m.flags | set) & !clear)
        })
    }
}

/// Convenience: i64 keys.
pub fn i64_key(k: i64) -> u64 {
    k.to_ordered_u64()
}
