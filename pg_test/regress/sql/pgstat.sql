-- The cumulative statistics of an omen_columnar table count what heap's
-- would (pg_stat_user_tables): autovacuum decides from them when to
-- ANALYZE and VACUUM, so a table that counted nothing would never get
-- planner statistics. Oracle: the same statements on a heap twin.
SET omendb.datafusion = off;
-- Sequential scans only, so both tables run the same plans.
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE TABLE st_c (id int, v text) USING omen_columnar;
CREATE TABLE st_h (id int, v text);
CREATE INDEX ON st_c (id);
CREATE INDEX ON st_h (id);
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['st_c', 'st_h'] LOOP
    EXECUTE format('INSERT INTO %I SELECT g, g::text FROM generate_series(1, 1000) g', t);
    EXECUTE format('INSERT INTO %I VALUES (1001, ''one''), (1002, ''two'')', t);
    EXECUTE format('UPDATE %I SET v = v || ''!'' WHERE id <= 30', t);
    EXECUTE format('DELETE FROM %I WHERE id > 990', t);
  END LOOP;
END $$;
-- Rolled-back inserts are dead rows, as for heap.
BEGIN;
INSERT INTO st_c SELECT g, 'gone' FROM generate_series(1, 7) g;
INSERT INTO st_h SELECT g, 'gone' FROM generate_series(1, 7) g;
ROLLBACK;
-- Sequential scans: these two, and the UPDATE's and the DELETE's.
SELECT count(*) FROM st_c WHERE v LIKE '%!';
SELECT count(*) FROM st_h WHERE v LIKE '%!';
SELECT count(*) FROM st_c;
SELECT count(*) FROM st_h;
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup,
       n_mod_since_analyze, n_ins_since_vacuum, seq_scan, seq_tup_read
FROM pg_stat_user_tables WHERE relname IN ('st_c', 'st_h') ORDER BY relname;
-- VACUUM reports the live rows; ANALYZE resets the changes it counted.
VACUUM ANALYZE st_c;
VACUUM ANALYZE st_h;
SELECT pg_stat_force_next_flush();
SELECT relname, n_live_tup, n_mod_since_analyze, n_ins_since_vacuum,
       last_vacuum IS NOT NULL AS vacuumed, last_analyze IS NOT NULL AS analyzed,
       vacuum_count, analyze_count
FROM pg_stat_user_tables WHERE relname IN ('st_c', 'st_h') ORDER BY relname;
-- With statistics the planner probes the index for a key.
EXPLAIN (COSTS OFF) SELECT * FROM st_c WHERE id = 500;
-- A query DataFusion runs counts a sequential scan of the table and the
-- live rows it read, as PostgreSQL's executor does (heap's twin counts the
-- same query run by PostgreSQL).
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE st_before AS
SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname IN ('st_c', 'st_h');
SET omendb.datafusion = force;
SELECT count(*), sum(id) FROM st_c WHERE v <> 'x';
RESET omendb.datafusion;
SELECT count(*), sum(id) FROM st_h WHERE v <> 'x';
SELECT pg_stat_force_next_flush();
SELECT s.relname, s.seq_scan - b.seq_scan AS scans, s.seq_tup_read - b.seq_tup_read AS rows_read
FROM pg_stat_user_tables s JOIN st_before b USING (relname) ORDER BY relname;
DROP TABLE st_c, st_h;
