-- The shared cache (omendb.cache_size; this server preloads omendb): pages
-- one backend decoded for index fetches are read by the next backend
-- without decoding; answers equal a heap twin's with the cache on and off;
-- keys tell databases apart even when a template copy gave them the same
-- catalog OID and segment ids. Oracle: heap.
SELECT present, capacity_bytes >= 100 * 1024 * 1024 AS sized, pins
  FROM omendb.cache_stats;
SELECT omendb.cache_reset();
SELECT hits, misses, inserts, entries FROM omendb.cache_stats;
CREATE TABLE cs_c (id bigint NOT NULL, v text, x numeric(12,3)) USING omen_columnar;
CREATE TABLE cs_h (id bigint NOT NULL, v text, x numeric(12,3));
INSERT INTO cs_c SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 100000) g;
INSERT INTO cs_h SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 100000) g;
CREATE INDEX ON cs_c (id);
CREATE INDEX ON cs_h (id);
ANALYZE cs_c, cs_h;
CREATE FUNCTION cs_probe(n int, step int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE bad bigint := 0; k bigint; c text; h text;
BEGIN
  SET LOCAL enable_seqscan = off;
  SET LOCAL enable_bitmapscan = off;
  SET LOCAL omendb.datafusion = off;
  FOR i IN 1..n LOOP
    k := (i::bigint * step) % 100003;
    SELECT cs_c::text INTO c FROM cs_c WHERE id = k;
    SELECT cs_h::text INTO h FROM cs_h WHERE id = k;
    IF c IS DISTINCT FROM h THEN bad := bad + 1; END IF;
  END LOOP;
  RETURN bad;
END $$;
SELECT cs_probe(300, 7919) AS differ;
SELECT inserts > 0 AS pages_shared, entries = inserts AS all_kept, pins
  FROM omendb.cache_stats;
-- A new backend: its own cache is empty, the shared one answers.
\c regression
SELECT hits AS hits_before, misses AS misses_before, inserts AS inserts_before
  FROM omendb.cache_stats \gset
SELECT cs_probe(300, 7919) AS differ_new_backend;
SELECT hits > :hits_before AS shared_hits, inserts = :inserts_before AS nothing_new,
       pins FROM omendb.cache_stats;
-- Off for this session: neither level is used, answers unchanged.
\c regression
SET omendb.enable_cache = off;
SELECT hits + misses AS lookups_before FROM omendb.cache_stats \gset
SELECT cs_probe(300, 104729) AS differ_cache_off;
SELECT hits + misses = :lookups_before AS not_consulted FROM omendb.cache_stats;
SELECT hits = 0 AND inserts = 0 AS local_unused FROM omendb.local_cache_stats();
RESET omendb.enable_cache;
-- Deletes and a compaction (new segments, new ids) between backends.
DELETE FROM cs_c WHERE id % 10 = 3;
DELETE FROM cs_h WHERE id % 10 = 3;
SELECT segments_replaced > 0 AS compacted FROM omendb.columnar_compact('cs_c');
\c regression
SELECT cs_probe(300, 7919) AS differ_after_compaction;
-- TRUNCATE and new rows: the old segments' entries are never consulted.
TRUNCATE cs_c, cs_h;
INSERT INTO cs_c SELECT g, 'new ' || g, g / 9.0 FROM generate_series(1, 100000) g;
INSERT INTO cs_h SELECT g, 'new ' || g, g / 9.0 FROM generate_series(1, 100000) g;
\c regression
SELECT cs_probe(300, 7919) AS differ_after_truncate;
-- Anyone may read the statistics; only superusers may reset.
CREATE ROLE cs_user;
SET ROLE cs_user;
SELECT present FROM omendb.cache_stats;
SELECT omendb.cache_reset();
RESET ROLE;
DROP ROLE cs_user;
DROP FUNCTION cs_probe(int, int);
DROP TABLE cs_c, cs_h;
-- Two databases from one template have the same catalog OID and go on
-- numbering segments alike: the shared key names the database too.
CREATE DATABASE omendb_cache_a;
\c omendb_cache_a
CREATE EXTENSION omendb;
CREATE TABLE t (id bigint NOT NULL, v text) USING omen_columnar;
INSERT INTO t SELECT g, 'template ' || g FROM generate_series(1, 10000) g;
CREATE INDEX ON t (id);
\c regression
CREATE DATABASE omendb_cache_b TEMPLATE omendb_cache_a;
\c omendb_cache_a
INSERT INTO t SELECT g, 'in a ' || g FROM generate_series(10001, 20000) g;
SELECT max(segment_id) AS a_segment FROM omendb.columnar_segment \gset
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET omendb.datafusion = off;
SELECT v FROM t WHERE id = 15000;
\c omendb_cache_b
INSERT INTO t SELECT g, 'in b ' || g FROM generate_series(10001, 20000) g;
SELECT max(segment_id) = :a_segment AS same_segment_id FROM omendb.columnar_segment;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET omendb.datafusion = off;
SELECT v FROM t WHERE id = 15000;
\c regression
-- DROP DATABASE releases its entries (a later database could get its OID).
SELECT entries AS entries_before_drop FROM omendb.cache_stats \gset
DROP DATABASE omendb_cache_a;
DROP DATABASE omendb_cache_b;
SELECT entries < :entries_before_drop AS released FROM omendb.cache_stats;
