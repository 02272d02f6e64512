-- A failed allocation in omendb's Rust code is an ERROR (out of memory,
-- 53200), not an abort that restarts the server: the request is served
-- from a reserve, and the statement stops at its next check. Failures are
-- injected (omendb.inject_allocation_failure, superuser-only); after each,
-- the table still equals its heap twin and the server never restarted.
CREATE TABLE mem_c (id int8, g int8, v text) USING omen_columnar;
CREATE TABLE mem_h (id int8, g int8, v text);
-- Thirty statements, thirty segments for a compaction to merge.
DO $$
BEGIN
  FOR k IN 0..29 LOOP
    INSERT INTO mem_c SELECT i, i % 1000, md5(i::text) FROM generate_series(k * 10000 + 1, k * 10000 + 10000) i;
  END LOOP;
END $$;
INSERT INTO mem_h SELECT * FROM mem_c;
CREATE TEMP TABLE started AS SELECT pg_postmaster_start_time() AS t;
CREATE FUNCTION mem_same() RETURNS boolean LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM mem_c) = (SELECT count(*) FROM mem_h)
     AND NOT EXISTS (SELECT * FROM mem_c EXCEPT ALL SELECT * FROM mem_h)
     AND (SELECT t FROM started) = pg_postmaster_start_time() $$;
CREATE FUNCTION mem_try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM omendb.inject_allocation_failure(262144);
  EXECUTE q;
  PERFORM omendb.inject_allocation_failure(0);
  RETURN 'no error';
EXCEPTION WHEN out_of_memory THEN
  PERFORM omendb.inject_allocation_failure(0);
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- A DataFusion query.
SET omendb.datafusion = force;
SELECT mem_try('SELECT g, count(*), max(v) FROM mem_c GROUP BY g');
RESET omendb.datafusion;
SELECT mem_same();
-- A scan in PostgreSQL's executor.
SET omendb.datafusion = off;
SELECT mem_try('SELECT max(v) FROM mem_c');
RESET omendb.datafusion;
SELECT mem_same();
-- An INSERT: rolled back whole.
SELECT mem_try('INSERT INTO mem_c SELECT i, i % 1000, md5(i::text) FROM generate_series(300001, 340000) i');
SELECT mem_same();
-- A compaction: rolled back, the segments stay as they were.
SELECT segments FROM omendb.columnar_stats('mem_c');
SELECT mem_try('SELECT omendb.columnar_compact(''mem_c'')');
SELECT segments FROM omendb.columnar_stats('mem_c');
SELECT mem_same();
-- And once memory is there again, the same statements succeed.
SELECT count(*) FROM (SELECT g, count(*), max(v) FROM mem_c GROUP BY g) s;
SELECT segments_replaced > 0 AS compacted FROM omendb.columnar_compact('mem_c');
SELECT mem_same();
-- Only superusers inject failures.
CREATE ROLE mem_user;
SET ROLE mem_user;
SELECT omendb.inject_allocation_failure(1);
RESET ROLE;
DROP ROLE mem_user;
DROP FUNCTION mem_try(text), mem_same();
DROP TABLE mem_c, mem_h;
