//! The `alex` index access method: binds `crates/alex` to PostgreSQL.
//!
//! One file per concern, as in contrib/bloom: `handler` (the routine table and
//! SQL objects), `keys` (Datum <-> ordered u64), `storage` (the page store over
//! shared buffers and GenericXLog), `build`, `insert`, `scan`, `vacuum`,
//! `cost`, `unique` (unique checks), `cleanup` (entries dead to all removed
//! before VACUUM), and `verify` (the SQL introspection functions).

mod build;
mod cleanup;
mod cost;
mod handler;
mod insert;
mod keys;
mod readers;
mod scan;
pub(crate) mod speculative;
mod storage;
mod unique;
mod vacuum;
mod verify;
mod wal;

use pgrx::pg_sys;
use pgrx::prelude::*;
use storage::PgStore;

/// Options for indexes built inside PostgreSQL: no exact key count, because
/// it would put the metapage in every write group — an index-wide hot spot.
fn alex_options(kind: keys::KeyType) -> alex::Options {
    alex::Options {
        exact_count: false,
        key_kind: kind.kind_tag(),
        ..alex::Options::default()
    }
}

fn relation_name(rel: pg_sys::Relation) -> String {
    crate::pg::relation_name(rel)
}

/// Raise an alex core error as a PostgreSQL ERROR naming the index.
fn raise(rel: pg_sys::Relation, e: alex::Error) -> ! {
    let code = match e {
        alex::Error::Corrupt { .. } | alex::Error::Invariant { .. } => {
            PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED
        }
        alex::Error::NoSuchBlock { .. } => PgSqlErrorCode::ERRCODE_INDEX_CORRUPTED,
        _ => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    };
    let name = relation_name(rel);
    crate::error::error_with_hint(
        code,
        format!("alex index \"{name}\": {e}"),
        "REINDEX the index to rebuild it from the table; omendb.alex_verify reports what is wrong."
            .to_string(),
    )
}

/// Open the index stored in `rel` through `store`, with this backend's reader
/// caches for it.
fn open_with(rel: pg_sys::Relation, store: PgStore) -> alex::Alex<PgStore> {
    alex::Alex::open_with_cache(store, readers::for_index(rel)).unwrap_or_else(|e| raise(rel, e))
}

/// Open the index stored in `rel`.
fn open(rel: pg_sys::Relation) -> alex::Alex<PgStore> {
    open_with(rel, PgStore::new(rel))
}

/// Called from _PG_init.
pub(crate) fn init() {
    readers::init();
    wal::init();
}
