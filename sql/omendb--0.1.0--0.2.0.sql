-- omendb 0.1.0 -> 0.2.0: segments get ids that are never reused (keys of the
-- cache of decoded segment data; first_block can repeat once pages are
-- reused), and the cache's functions.
\echo Use "ALTER EXTENSION omendb UPDATE TO '0.2.0'" to load this file. \quit

CREATE SEQUENCE omendb.columnar_segment_seq;
REVOKE ALL ON omendb.columnar_segment_seq FROM PUBLIC;

-- ALTER TABLE waits for every transaction that wrote the catalog, and keeps
-- new ones out until this transaction ends.
ALTER TABLE omendb.columnar_segment ADD COLUMN segment_id bigint;

-- An UPDATE, not a volatile DEFAULT: a table rewrite is not MVCC-safe (a
-- snapshot taken before it would see no segments at all), while updated rows
-- keep their old versions, without an id, for snapshots that predate this
-- transaction. Reservation rows hold no data and get none, as in 0.2.0.
UPDATE omendb.columnar_segment
   SET segment_id = pg_catalog.nextval('omendb.columnar_segment_seq'::pg_catalog.regclass)
 WHERE kind OPERATOR(pg_catalog.<>) 'r';

-- This backend's cache of decoded omen_columnar data.
CREATE FUNCTION omendb.local_cache_stats()
RETURNS TABLE (hits bigint, misses bigint, inserts bigint, evictions bigint, too_large bigint,
               entries bigint, bytes_used bigint, capacity_bytes bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'local_cache_stats_wrapper';
COMMENT ON FUNCTION omendb.local_cache_stats() IS
    'This backend''s cache of decoded omen_columnar data (omendb.local_cache_size): lookups, entries and bytes since the backend started or omendb.local_cache_reset()';
CREATE FUNCTION omendb.local_cache_reset() RETURNS void
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'local_cache_reset_wrapper';
COMMENT ON FUNCTION omendb.local_cache_reset() IS
    'Empty this backend''s cache of decoded omen_columnar data and zero its counters';

-- The cache shared by every backend (omendb.cache_size, preloaded only).
CREATE FUNCTION omendb.cache_stats()
RETURNS TABLE (present boolean, hits bigint, misses bigint, inserts bigint, evictions bigint,
               uncached_all_pinned bigint, too_large bigint, entries bigint, bytes_used bigint,
               capacity_bytes bigint, pins bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'cache_stats_wrapper';
COMMENT ON FUNCTION omendb.cache_stats() IS
    'The shared cache of decoded omen_columnar data (omendb.cache_size): lookups, entries, bytes and pins now; present is false when omendb is not preloaded or the cache size is 0';
CREATE VIEW omendb.cache_stats AS SELECT * FROM omendb.cache_stats();
COMMENT ON VIEW omendb.cache_stats IS 'The shared cache of decoded omen_columnar data (omendb.cache_stats())';
GRANT SELECT ON omendb.cache_stats TO PUBLIC;
CREATE FUNCTION omendb.cache_reset() RETURNS boolean
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'cache_reset_wrapper';
REVOKE ALL ON FUNCTION omendb.cache_reset() FROM PUBLIC;
COMMENT ON FUNCTION omendb.cache_reset() IS
    'Superuser only: empty the shared cache of decoded omen_columnar data and zero its counters; false when there is no shared cache';
