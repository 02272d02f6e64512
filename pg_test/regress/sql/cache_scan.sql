-- Scans through the shared cache (omendb.cache_size; this server preloads
-- omendb): sequential scans in PostgreSQL's executor and the DataFusion
-- scan read each row group's decoded columns from the cache and keep what
-- they decode, one entry per column, shared by both. Answers equal a heap
-- twin's with the cache off, cold and warm, across deletes, rollbacks,
-- purging compaction (gaps in row numbers) and TRUNCATE. Oracle: heap.
-- TRUNCATE and DROP release a table's entries.
SET omendb.datafusion_min_cost = 0;
CREATE TABLE sc_h (id bigint NOT NULL, g int, n numeric(12,2), t text, c char(4), b bool, d date, f float8);
INSERT INTO sc_h SELECT i, i % 7, CASE WHEN i % 11 = 0 THEN NULL ELSE i * 1.25 END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'v' || (i % 13) END, 'x' || (i % 3), i % 2 = 0,
       date '2024-01-01' + i % 30, i / 4.0
  FROM generate_series(1, 150000) i;
CREATE TABLE sc_c (LIKE sc_h) USING omen_columnar;
INSERT INTO sc_c SELECT * FROM sc_h;
SELECT segments_replaced >= 0 AS compacted FROM omendb.columnar_compact('sc_c');
SELECT parquet_segments, write_store_segments FROM omendb.columnar_stats('sc_c');
ANALYZE sc_h, sc_c;

-- The same answer from heap (PostgreSQL's executor) and from sc_c under
-- omendb.datafusion = df ('off': PostgreSQL's executor; 'force').
CREATE FUNCTION sc_same(q text, df text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a text := ''; b text := ''; r record;
BEGIN
  SET LOCAL omendb.datafusion = off;
  FOR r IN EXECUTE replace(q, '{T}', 'sc_h') LOOP a := a || r::text || E'\n'; END LOOP;
  PERFORM set_config('omendb.datafusion', df, true);
  FOR r IN EXECUTE replace(q, '{T}', 'sc_c') LOOP b := b || r::text || E'\n'; END LOOP;
  RETURN CASE WHEN a = b THEN 'same' ELSE format('DIFFERENT: %s / %s', a, b) END;
END $$;
-- Every column, aggregated per group, and a sample of whole rows.
CREATE FUNCTION sc_check(df text) RETURNS text LANGUAGE sql AS $$
  SELECT sc_same('SELECT g, count(*), count(n), sum(n), min(t), max(t), count(t), min(c), max(c),
                         sum(CASE WHEN b THEN 1 ELSE 0 END), min(d), max(d), sum(f), sum(id)
                    FROM {T} GROUP BY g ORDER BY g', df)
      || ' ' || sc_same('SELECT id, n, t, c, b, d, f FROM {T} WHERE id % 997 = 3 ORDER BY id', df)
$$;
-- The DataFusion scan's cache counters in EXPLAIN ANALYZE of a query.
CREATE FUNCTION sc_counters(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; out text := '';
BEGIN
  SET LOCAL omendb.datafusion = force;
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ' || q LOOP
    out := out || coalesce(substring(line from 'cache_hits=[0-9]+, cache_misses=[0-9]+'), '');
  END LOOP;
  RETURN out;
END $$;
CREATE FUNCTION sc_stats(OUT hits bigint, OUT misses bigint, OUT inserts bigint, OUT pins bigint)
  LANGUAGE sql AS 'SELECT hits, misses, inserts, pins FROM omendb.cache_stats';

-- Cold, PostgreSQL's executor: every column of every group is decoded and kept.
SELECT omendb.cache_reset();
SELECT sc_check('off') AS cold_executor;
SELECT inserts > 0 AS kept, pins FROM sc_stats();
SELECT inserts AS inserts_before, hits AS hits_before FROM sc_stats() \gset
-- Warm: read from the cache, nothing new kept.
SELECT sc_check('off') AS warm_executor;
SELECT hits > :hits_before AS hits, inserts = :inserts_before AS nothing_new FROM sc_stats();
-- DataFusion reads the same entries: 3 row groups x 2 columns, all hits.
SELECT sc_counters('SELECT sum(n), max(t) FROM sc_c') AS datafusion_after_executor;
SELECT sc_check('force') AS warm_datafusion;
-- Cold, DataFusion: misses, then hits; another projection shares parts.
SELECT omendb.cache_reset();
SELECT sc_counters('SELECT sum(n), max(t) FROM sc_c') AS cold;
SELECT sc_counters('SELECT sum(n), max(t) FROM sc_c') AS warm;
SELECT sc_counters('SELECT sum(f), max(t) FROM sc_c') AS half_shared;
SELECT sc_check('force') AS datafusion;
SELECT pins FROM sc_stats();
-- Deleted rows (not purged) stay invisible with the cache warm.
DELETE FROM sc_c WHERE id % 10 = 3;
DELETE FROM sc_h WHERE id % 10 = 3;
SELECT sc_check('off') AS after_delete_executor, sc_check('force') AS after_delete_datafusion;
-- Rolled back and uncommitted changes: each transaction sees its own.
BEGIN;
DELETE FROM sc_c WHERE g = 2;
DELETE FROM sc_h WHERE g = 2;
INSERT INTO sc_c SELECT i, 9, 1.5, 'in tx', 'tx', true, '2025-01-01', 0 FROM generate_series(200001, 200100) i;
INSERT INTO sc_h SELECT i, 9, 1.5, 'in tx', 'tx', true, '2025-01-01', 0 FROM generate_series(200001, 200100) i;
SELECT sc_check('off') AS in_tx_executor, sc_check('force') AS in_tx_datafusion;
ROLLBACK;
SELECT sc_check('off') AS rolled_back_executor, sc_check('force') AS rolled_back_datafusion;
-- A purging compaction writes new segments (new ids) with gaps in their
-- row numbers, which are kept as a part of their own.
SELECT segments_replaced > 0 AS compacted FROM omendb.columnar_compact('sc_c');
SELECT sc_counters('SELECT sum(n), max(t) FROM sc_c') AS cold_with_gaps;
SELECT sc_counters('SELECT sum(n), max(t) FROM sc_c') AS warm_with_gaps;
SELECT sc_check('off') AS compacted_executor, sc_check('force') AS compacted_datafusion;
-- TRUNCATE and DROP release the table's entries at once, another table's
-- stay; a rolled-back TRUNCATE keeps the rows, decoded again.
CREATE TABLE sc_other (id int, v text) USING omen_columnar;
INSERT INTO sc_other SELECT i, 'o' || i FROM generate_series(1, 1000) i;
SELECT omendb.cache_reset();
SELECT sc_counters('SELECT count(*), max(v) FROM sc_other') AS other_cold;
SELECT entries AS other_entries FROM omendb.cache_stats \gset
SELECT sc_check('off') AS refilled;
SELECT entries > :other_entries AS sc_c_kept FROM omendb.cache_stats;
BEGIN;
TRUNCATE sc_c;
SELECT entries = :other_entries AS truncate_released_sc_c FROM omendb.cache_stats;
ROLLBACK;
SELECT sc_check('off') AS truncate_rolled_back_executor, sc_check('force') AS truncate_rolled_back_datafusion;
SELECT sc_counters('SELECT count(*), max(v) FROM sc_other') AS other_still_cached;
-- TRUNCATE and new rows: old entries are never consulted.
TRUNCATE sc_c, sc_h;
INSERT INTO sc_h SELECT i, i % 5, i * 0.5, 'new ' || (i % 17), 'n', i % 3 = 0, date '2020-02-02' + i % 9, i
  FROM generate_series(1, 70000) i;
INSERT INTO sc_c SELECT * FROM sc_h;
SELECT sc_check('off') AS truncated_executor, sc_check('force') AS truncated_datafusion;
SELECT sc_check('off') AS truncated_warm_executor, sc_check('force') AS truncated_warm_datafusion;
-- Off for the session: not consulted, same answers.
SET omendb.enable_cache = off;
SELECT hits + misses AS lookups_before FROM sc_stats() \gset
SELECT sc_check('off') AS off_executor, sc_check('force') AS off_datafusion;
SELECT sc_counters('SELECT sum(n) FROM sc_c') AS off_counters;
SELECT hits + misses = :lookups_before AS not_consulted FROM sc_stats();
RESET omendb.enable_cache;
-- An ERROR in the middle of a scan leaves no pin behind.
-- (A DataFusion thread may be finishing a copy as the ERROR is raised: its
-- pin goes with that one batch.)
SET omendb.datafusion = force;
SELECT sum(1 / (id - 35000)) FROM sc_c;
RESET omendb.datafusion;
DO $$ BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN (SELECT pins FROM omendb.cache_stats) = 0;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT pins FROM sc_stats();
SELECT entries > :other_entries AS sc_c_kept_again FROM omendb.cache_stats;
DROP TABLE sc_c;
SELECT entries = :other_entries AS drop_released_sc_c FROM omendb.cache_stats;
DROP TABLE sc_other;
SELECT entries FROM omendb.cache_stats;
DROP FUNCTION sc_same(text, text), sc_check(text), sc_counters(text), sc_stats();
DROP TABLE sc_h;
