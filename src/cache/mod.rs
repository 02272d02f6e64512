//! Caches of decoded segment data. Today the per-backend level (`local`):
//! parsed segment footers and decoded data pages for index fetches, keyed by segment
//! ids, which are never reused (`omendb.columnar_segment.segment_id`), so an
//! entry can never be taken for another segment's contents; a segment
//! without an id (written before 0.2.0) is read uncached. Consulted only
//! after MVCC has chosen the visible segments. Imports the pure crates
//! only: the columnar engine calls this, never the reverse.

pub(crate) mod local;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

/// MB per backend; 0 turns the cache off.
pub(crate) static LOCAL_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);

pub(crate) fn init() {
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
