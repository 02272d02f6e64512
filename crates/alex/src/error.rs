//! Error type. Every error about page contents names the block.

/// Errors returned by the index. Corruption never panics: it is reported here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A page failed validation while decoding.
    #[error("alex: corrupt page at block {blk}: {reason}")]
    Corrupt { blk: u32, reason: String },
    /// A structural invariant spanning pages is broken (found by `verify` or a walk).
    #[error("alex: invariant violated at block {blk}: {reason}")]
    Invariant { blk: u32, reason: String },
    /// A block number past the end of the store was requested.
    #[error("alex: block {blk} does not exist (store has {nblocks} blocks)")]
    NoSuchBlock { blk: u32, nblocks: u32 },
    /// An atomic group tried to register more pages than GenericXLog allows.
    #[error("alex: atomic group would touch {wanted} pages, limit is {limit} (block {blk})")]
    GroupTooLarge {
        blk: u32,
        wanted: usize,
        limit: usize,
    },
    /// The page changed between the read that planned a write and the write itself
    /// (a concurrent writer got there first). Callers retry; never surfaces from the API.
    #[error("alex: block {blk} changed under us")]
    Retry { blk: u32 },
    /// A reader reached a page that no longer holds what its route promised (a page merged
    /// away by VACUUM, or reused since): it starts over from the root. Never surfaces.
    #[error("alex: block {blk} was merged away or reused")]
    Moved { blk: u32 },
    /// Bad arguments (e.g. options out of range).
    #[error("alex: {0}")]
    Invalid(String),
    /// An error from the storage layer (e.g. the buffer manager in the binding).
    #[error("alex: storage: {0}")]
    Storage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn corrupt<T>(blk: u32, reason: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt {
        blk,
        reason: reason.into(),
    })
}

pub(crate) fn invariant<T>(blk: u32, reason: impl Into<String>) -> Result<T> {
    Err(Error::Invariant {
        blk,
        reason: reason.into(),
    })
}
