-- The per-backend cache of decoded omen_columnar data (omendb.local_cache_size):
-- point lookups by index keep the decoded rows of each data page (4,096
-- rows) they read, later lookups hit them, and every answer equals a heap
-- twin's — after deletes, compaction (new segments, new ids) and with the
-- cache too small or off. Oracle: heap.
SET omendb.datafusion = off;
CREATE TABLE ca_c (id bigint NOT NULL, v text, x float8) USING omen_columnar;
CREATE TABLE ca_h (id bigint NOT NULL, v text, x float8);
INSERT INTO ca_c SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 200000) g;
INSERT INTO ca_h SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 200000) g;
CREATE INDEX ON ca_c (id);
CREATE INDEX ON ca_h (id);
ANALYZE ca_c, ca_h;
-- Probes one statement at a time (as a client's point queries are), by
-- index; returns how many answers differ from heap's.
CREATE FUNCTION ca_probe(n int, step int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE bad bigint := 0; k bigint; c text; h text;
BEGIN
  SET LOCAL enable_seqscan = off;
  SET LOCAL enable_bitmapscan = off;
  FOR i IN 1..n LOOP
    k := (i::bigint * step) % 200003;
    SELECT ca_c::text INTO c FROM ca_c WHERE id = k;
    SELECT ca_h::text INTO h FROM ca_h WHERE id = k;
    IF c IS DISTINCT FROM h THEN bad := bad + 1; END IF;
  END LOOP;
  RETURN bad;
END $$;
SELECT omendb.local_cache_reset();
SELECT ca_probe(400, 7919) AS differ;
SELECT hits > 300 AS hits, inserts BETWEEN 2 AND 60 AS pages_and_footers_kept,
       entries > 0 AS entries, bytes_used <= capacity_bytes AS within_capacity,
       capacity_bytes = 64 * 1024 * 1024 AS default_capacity
  FROM omendb.local_cache_stats();
-- The plan is an index scan (what the probes measure).
EXPLAIN (COSTS OFF) SELECT * FROM ca_c WHERE id = 5;
-- Deletes and a compaction: segments are replaced by new ones with new ids;
-- what the cache kept of the old ones is never consulted.
DELETE FROM ca_c WHERE id % 10 = 3;
DELETE FROM ca_h WHERE id % 10 = 3;
SELECT ca_probe(400, 7919) AS differ_after_delete;
SELECT segments_replaced > 0 AS compacted FROM omendb.columnar_compact('ca_c');
SELECT ca_probe(400, 7919) AS differ_after_compaction;
SELECT ca_probe(400, 104729) AS differ_other_keys;
-- A sequential scan adds no pages (it keeps footers only, kept already).
SELECT inserts AS before_scan FROM omendb.local_cache_stats() \gset
SELECT (SELECT sum(x) FROM ca_c) = (SELECT sum(x) FROM ca_h) AS scan_equal;
SELECT inserts = :before_scan AS scan_added_none FROM omendb.local_cache_stats();
-- Smaller than what the probes read: entries are evicted, answers unchanged.
SET omendb.local_cache_size = 1;
SELECT omendb.local_cache_reset();
SELECT ca_probe(200, 7919) AS differ_small_cache;
SELECT evictions > 0 AS evicted, bytes_used <= capacity_bytes AS within_capacity
  FROM omendb.local_cache_stats();
-- Off.
SET omendb.local_cache_size = 0;
SELECT omendb.local_cache_reset();
SELECT ca_probe(200, 7919) AS differ_cache_off;
SELECT hits = 0 AND inserts = 0 AND entries = 0 AND capacity_bytes = 0 AS unused
  FROM omendb.local_cache_stats();
RESET omendb.local_cache_size;
-- A range read by index, after the compaction purged rows: a few entries
-- (footer, the group's row numbers, as purged rows left gaps, and the page
-- that holds the range), not one per row.
SELECT omendb.local_cache_reset();
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS rows_in_range FROM ca_c WHERE id BETWEEN 1000 AND 3000;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT inserts BETWEEN 2 AND 6 AS few_entries FROM omendb.local_cache_stats();
DROP FUNCTION ca_probe(int, int);
DROP TABLE ca_c, ca_h;
-- DROP EXTENSION and CREATE EXTENSION in one session: the new catalog
-- numbers its segments from 1 again, and what this backend kept of the old
-- table's segment 1 must not answer for the new table's.
CREATE DATABASE omendb_cache_reinstall;
\c omendb_cache_reinstall
CREATE EXTENSION omendb;
SET omendb.datafusion = off;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CREATE TABLE r1 (id bigint NOT NULL, v text) USING omen_columnar;
INSERT INTO r1 SELECT g, 'first ' || g FROM generate_series(1, 10000) g;
CREATE INDEX ON r1 (id);
SELECT array_agg(segment_id) AS first_catalog_ids FROM omendb.columnar_segment;
SELECT v FROM r1 WHERE id = 42;
SELECT v FROM r1 WHERE id = 43;
SELECT inserts > 0 AS kept FROM omendb.local_cache_stats();
SET client_min_messages = warning;
DROP EXTENSION omendb CASCADE;
RESET client_min_messages;
CREATE EXTENSION omendb;
CREATE TABLE r2 (id bigint NOT NULL, v text) USING omen_columnar;
INSERT INTO r2 SELECT g, 'second ' || g FROM generate_series(1, 10000) g;
CREATE INDEX ON r2 (id);
SELECT array_agg(segment_id) AS second_catalog_ids FROM omendb.columnar_segment;
SELECT v FROM r2 WHERE id = 42;
SELECT v FROM r2 WHERE id = 43;
\c regression
DROP DATABASE omendb_cache_reinstall;
