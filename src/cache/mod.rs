//! Caches of decoded segment data, in two levels: per backend (`local`:
//! parsed segment footers and decoded data pages, as Rust values) and, when
//! omendb is preloaded, shared by every backend (`shared`: the same pages as
//! bytes in shared memory, and the decoded columns of whole row groups that
//! scans read). Index fetches use both levels, scans the shared one; keys
//! name segment ids, which are never reused
//! (`omendb.columnar_segment.segment_id`), so an entry can never be taken
//! for another segment's contents; a segment without an id (written before
//! 0.2.0) is read uncached. Consulted only after MVCC has chosen the
//! visible segments. Imports the pure crates only: the columnar engine and
//! the DataFusion scan call this, never the reverse.

pub(crate) mod local;
pub(crate) mod shared;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

/// MB per backend; 0 turns the cache off.
pub(crate) static LOCAL_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
/// MB of shared memory (preloaded only, set at server start); 0: none.
pub(crate) static CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(128);
/// Whether this session uses the caches (both levels).
pub(crate) static ENABLE_CACHE: GucSetting<bool> = GucSetting::<bool>::new(true);

pub(crate) fn init() {
    // A server-start setting can only be defined while preloading
    // (PostgreSQL refuses it later with a FATAL).
    if crate::loading::preloaded() {
        GucRegistry::define_int_guc(
            c"omendb.cache_size",
            c"Shared memory for decoded omen_columnar data, read by every backend.",
            c"Needs omendb in shared_preload_libraries; set at server start. 0 turns the shared cache off.",
            &CACHE_SIZE,
            0,
            1024 * 1024,
            GucContext::Postmaster,
            GucFlags::UNIT_MB,
        );
    }
    GucRegistry::define_bool_guc(
        c"omendb.enable_cache",
        c"Whether this session reads and keeps decoded omen_columnar data in the caches.",
        c"Off: every fetch decodes from the segment pages (to compare; results are the same).",
        &ENABLE_CACHE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"omendb.local_cache_size",
        c"Memory each backend may keep of decoded omen_columnar data (segment footers, row groups).",
        c"Per backend, like temp_buffers; 0 turns the cache off. Index fetches keep the decoded rows of each data page they read.",
        &LOCAL_CACHE_SIZE,
        0,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_MB,
    );
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.local_cache_stats()
RETURNS TABLE (hits bigint, misses bigint, inserts bigint, evictions bigint, too_large bigint,
               entries bigint, bytes_used bigint, capacity_bytes bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.local_cache_stats() IS
    'This backend''s cache of decoded omen_columnar data (omendb.local_cache_size): lookups, entries and bytes since the backend started or omendb.local_cache_reset()';
")]
fn local_cache_stats() -> TableIterator<
    'static,
    (
        name!(hits, i64),
        name!(misses, i64),
        name!(inserts, i64),
        name!(evictions, i64),
        name!(too_large, i64),
        name!(entries, i64),
        name!(bytes_used, i64),
        name!(capacity_bytes, i64),
    ),
> {
    let s = local::stats();
    TableIterator::once((
        s.stats.hits as i64,
        s.stats.misses as i64,
        s.stats.inserts as i64,
        s.stats.evictions as i64,
        s.stats.too_large as i64,
        s.entries as i64,
        s.used as i64,
        s.capacity as i64,
    ))
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.local_cache_reset() RETURNS void
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.local_cache_reset() IS
    'Empty this backend''s cache of decoded omen_columnar data and zero its counters';
")]
fn local_cache_reset() {
    local::reset();
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.cache_stats()
RETURNS TABLE (present boolean, hits bigint, misses bigint, inserts bigint, evictions bigint,
               uncached_all_pinned bigint, too_large bigint, entries bigint, bytes_used bigint,
               capacity_bytes bigint, pins bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.cache_stats() IS
    'The shared cache of decoded omen_columnar data (omendb.cache_size): lookups, entries, bytes and pins now; present is false when omendb is not preloaded or the cache size is 0';
CREATE VIEW omendb.cache_stats AS SELECT * FROM omendb.cache_stats();
COMMENT ON VIEW omendb.cache_stats IS 'The shared cache of decoded omen_columnar data (omendb.cache_stats())';
GRANT SELECT ON omendb.cache_stats TO PUBLIC;
", requires = [local_cache_stats])]
fn cache_stats() -> TableIterator<
    'static,
    (
        name!(present, bool),
        name!(hits, i64),
        name!(misses, i64),
        name!(inserts, i64),
        name!(evictions, i64),
        name!(uncached_all_pinned, i64),
        name!(too_large, i64),
        name!(entries, i64),
        name!(bytes_used, i64),
        name!(capacity_bytes, i64),
        name!(pins, i64),
    ),
> {
    let (present, s) = match shared::stats() {
        Some(s) => (true, s),
        None => (false, Default::default()),
    };
    let n = |v: u64| v as i64;
    TableIterator::once((
        present,
        n(s.hits),
        n(s.misses),
        n(s.inserts),
        n(s.evictions),
        n(s.all_pinned),
        n(s.too_large),
        n(s.entries),
        n(s.bytes_used),
        n(s.capacity),
        n(s.pins),
    ))
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.cache_reset() RETURNS boolean
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
REVOKE ALL ON FUNCTION omendb.cache_reset() FROM PUBLIC;
COMMENT ON FUNCTION omendb.cache_reset() IS
    'Superuser only: empty the shared cache of decoded omen_columnar data and zero its counters; false when there is no shared cache';
", requires = [cache_stats])]
fn cache_reset() -> bool {
    crate::pg::privilege::require_superuser("omendb.cache_reset()");
    shared::reset()
}
