-- The OmenDataFusion custom scan: when a query runs in DataFusion, what
-- EXPLAIN shows, fallback and force, settings, errors with PostgreSQL's
-- SQLSTATEs, transactions, prepared statements, cursors, cancellation and
-- the memory cap. Every answer is compared with the same query on heap.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS omendb;
DROP DATABASE IF EXISTS omendb_df;
CREATE DATABASE omendb_df ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c omendb_df
SET client_min_messages = warning;
CREATE EXTENSION omendb;
RESET client_min_messages;

SHOW omendb.datafusion;
SHOW omendb.datafusion_min_cost;
SET omendb.datafusion = sometimes;

CREATE TABLE h (id int NOT NULL, g int, n numeric(10,2), t text, c char(3), d date, f float8);
INSERT INTO h SELECT i, i % 7, i * 1.25, 'v' || (i % 13), 'x', date '2024-01-01' + i % 30, i / 4.0
  FROM generate_series(1, 5000) i;
INSERT INTO h VALUES (0, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE c (LIKE h) USING omen_columnar;
INSERT INTO c SELECT * FROM h;
INSERT INTO c VALUES (5001, 3, 9.99, 'single', 'yz', '2024-03-01', 0.5);  -- write store
INSERT INTO h VALUES (5001, 3, 9.99, 'single', 'yz', '2024-03-01', 0.5);
DELETE FROM c WHERE id % 100 = 7;
DELETE FROM h WHERE id % 100 = 7;
ANALYZE h, c;

-- Small queries stay in PostgreSQL (estimated cost below omendb.datafusion_min_cost).
EXPLAIN (COSTS OFF) SELECT count(*) FROM c WHERE id = 5;
SET omendb.datafusion_min_cost = 0;
EXPLAIN (COSTS OFF) SELECT g, count(*), sum(n), avg(n), min(t), max(c) FROM c WHERE d >= '2024-01-10' GROUP BY g ORDER BY g;
-- VERBOSE names the node's output columns (it looped forever once).
EXPLAIN (VERBOSE, COSTS OFF) SELECT g AS grp, count(*), sum(n) + 1 FROM c GROUP BY g ORDER BY g;

-- The same answers as heap.
CREATE FUNCTION same(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a text := ''; b text := ''; r record;
BEGIN
  SET LOCAL omendb.datafusion = off;
  FOR r IN EXECUTE replace(q, '{T}', 'h') LOOP a := a || r::text || E'\n'; END LOOP;
  SET LOCAL omendb.datafusion = force;
  FOR r IN EXECUTE replace(q, '{T}', 'c') LOOP b := b || r::text || E'\n'; END LOOP;
  RETURN CASE WHEN a = b THEN 'same' ELSE format('DIFFERENT: %s / %s', a, b) END;
END $$;
SELECT same('SELECT g, count(*), sum(n), avg(n), min(t), max(c), sum(id) FROM {T} GROUP BY g ORDER BY g');
SELECT same('SELECT id, n / 3, c, d - 1 FROM {T} WHERE t LIKE ''v1%'' ORDER BY id DESC LIMIT 5 OFFSET 2');
SELECT same('SELECT count(*) FROM {T} a JOIN {T} b ON a.id = b.id + 1 WHERE a.g IN (1, 2) AND b.f > 10');
SELECT same('SELECT g FROM {T} x WHERE EXISTS (SELECT 1 FROM {T} y WHERE y.g = x.g AND y.id > 4990) GROUP BY g ORDER BY g');

-- Fallback: decided at planning; force names the construct.
SET omendb.datafusion = force;
SELECT count(*) FROM c JOIN h USING (id);
SELECT id, row_number() OVER () FROM c LIMIT 1;
SELECT * FROM c WHERE id = 1 FOR UPDATE;
SELECT count(*) FROM c WHERE t ~ '^v1';
SELECT count(*) FROM c WHERE NOT (g IN (SELECT g FROM c WHERE id < 5) OR id > 100);
SELECT id, (SELECT g FROM c c2 WHERE c2.id = c.id) FROM c WHERE id < 3;
SELECT count(*) FROM c WHERE EXISTS (SELECT count(*) FROM c c2 WHERE c2.g = c.g);
SELECT count(*) FROM c WHERE c LIKE 'x%';
CREATE TABLE added USING omen_columnar AS SELECT i FROM generate_series(1, 10) i;
ALTER TABLE added ADD COLUMN seven int DEFAULT 7;
SELECT sum(seven) FROM added;
SET omendb.datafusion = on;
SELECT sum(seven) FROM added;
DROP TABLE added;
EXPLAIN (COSTS OFF) SELECT count(*) FROM c JOIN h USING (id);
SET omendb.datafusion = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM c;
SET omendb.datafusion = on;

-- PostgreSQL's errors and SQLSTATEs.
\set VERBOSITY sqlstate
SELECT sum(2147483647 + g) FROM c;
SELECT sum(id / (g - g)) FROM c;
SELECT sum(f / 0) FROM c;
SELECT max(d - date 'infinity') FROM c;
\set VERBOSITY default

-- Transactions: own inserts, savepoints, rollback.
BEGIN;
INSERT INTO c VALUES (9001, 1, 1, 'tx', 'tx', '2024-01-01', 1);
SELECT count(*), sum(id) FROM c;
SAVEPOINT s;
DELETE FROM c WHERE g = 1;
SELECT count(*), sum(id) FROM c;
ROLLBACK TO s;
SELECT count(*), sum(id) FROM c;
ROLLBACK;
SELECT count(*), sum(id) FROM c;

-- Prepared statements with generic plans, and DDL invalidating them.
SET plan_cache_mode = force_generic_plan;
PREPARE p(int) AS SELECT count(*), sum(n) FROM c WHERE g = $1;
EXPLAIN (COSTS OFF) EXECUTE p(3);
EXECUTE p(3);
EXECUTE p(4);
ALTER TABLE c ADD COLUMN extra int;
EXECUTE p(3);
RESET plan_cache_mode;

-- Cursors, also scrolling backwards.
BEGIN;
EXPLAIN (VERBOSE, COSTS OFF) DECLARE cur SCROLL CURSOR FOR SELECT id FROM c WHERE g = 2 ORDER BY id;
DECLARE cur SCROLL CURSOR FOR SELECT id FROM c WHERE g = 2 ORDER BY id;
FETCH 3 FROM cur;
FETCH BACKWARD 1 FROM cur;
CLOSE cur;
COMMIT;

-- statement_timeout stops a long DataFusion query.
SET statement_timeout = '200ms';
SELECT count(*) FROM c a, c b, c d WHERE a.g + b.g + d.g > 100;
RESET statement_timeout;

-- numeric(p <= 18, s) is stored as scaled integers (segment format 2): every
-- read path gives back PostgreSQL's exact values, NaN included; wider
-- numerics stay PostgreSQL images.
CREATE TABLE nh (id int, a numeric(15,2), b numeric(18,0), f numeric(6,6), w numeric(30,4));
INSERT INTO nh SELECT i, (i * 7919 % 2000001 - 1000000) / 100.0, (i::numeric ^ 3) * (1 - 2 * (i % 2)),
    (i % 999999) / 1000000.0, i * 12345678901.2345
  FROM generate_series(1, 3000) i;
INSERT INTO nh VALUES (3001, 9999999999999.99, 999999999999999999, 0.999999, 99999999999999999999999999.9999),
  (3002, -9999999999999.99, -999999999999999999, -0.999999, -99999999999999999999999999.9999),
  (3003, 0, 0, 0, 0), (3004, NULL, NULL, NULL, NULL), (3005, 0.01, 1, 0.000001, 0.0001);
CREATE TABLE nc (LIKE nh) USING omen_columnar;
INSERT INTO nc SELECT * FROM nh;
CREATE INDEX ON nc (id);
SELECT format_version FROM omendb.columnar_stats('nc');
SELECT same('SELECT id, a, b, f, w FROM n{T} ORDER BY id');
SELECT same('SELECT sum(a), avg(b), min(f), max(w), count(a) FROM n{T}');
SELECT same('SELECT id % 5 AS k, sum(a * 2), sum(f) FROM n{T} WHERE a > 0 GROUP BY 1 ORDER BY 1');

-- Filters run in the scan, each on its own columns before the others are
-- decoded: several row groups, deleted rows, a column added after the
-- segments were written, blank-padded text, NULLs, a filter that fails
-- on rows the query's own evaluation skips, a join's.
CREATE TABLE fh (id int NOT NULL, k int, s char(6), v numeric(12,2), t text);
INSERT INTO fh SELECT i, i % 97, CASE WHEN i % 5 = 0 THEN NULL ELSE 's' || (i % 11) END,
    i * 0.5, 't' || (i % 7)
  FROM generate_series(1, 150000) i;
CREATE TABLE fc (LIKE fh) USING omen_columnar;
INSERT INTO fc SELECT * FROM fh;
DELETE FROM fh WHERE id % 1000 < 3;
DELETE FROM fc WHERE id % 1000 < 3;
ALTER TABLE fh ADD COLUMN extra int;
ALTER TABLE fc ADD COLUMN extra int;
INSERT INTO fh SELECT i, i % 97, 's1', i, 'w', i FROM generate_series(150001, 150100) i;
INSERT INTO fc SELECT * FROM fh WHERE id > 150000;
SELECT same('SELECT count(*), sum(v) FROM f{T} WHERE s = ''s3'' AND k < 10');
SELECT same('SELECT id, s, t, extra FROM f{T} WHERE k = 5 AND t = ''t2'' ORDER BY id DESC LIMIT 20');
SELECT same('SELECT count(*), min(id) FROM f{T} WHERE extra > 150050 OR extra IS NULL AND k = 1 AND s IS NULL');
SELECT same('SELECT count(*) FROM f{T} WHERE k = 3 AND 1000 / (k - 2) > 100');
-- A boolean CASE guards its results as in PostgreSQL (DataFusion would
-- rewrite it into ANDs and ORs that divide by zero).
SELECT same('SELECT count(*) FROM f{T} WHERE CASE WHEN k <> 0 THEN 1000 / k > 100 ELSE false END');
SELECT same('SELECT count(*) FROM f{T} WHERE CASE WHEN k = 0 THEN false WHEN 1000 / k > 100 THEN true END');
SELECT same('SELECT id, CASE WHEN s IS NULL THEN NULL WHEN k > 50 THEN t = ''t1'' ELSE k < 3 END, CASE k WHEN 0 THEN true END FROM f{T} WHERE id < 40 ORDER BY id');
SELECT same('SELECT count(*), sum(a.v) FROM f{T} a JOIN f{T} b ON a.id = b.id WHERE b.k = 3 AND b.s = ''s4''');
EXPLAIN (COSTS OFF) SELECT count(*) FROM fc WHERE s = 's7' AND k < 10;
SET omendb.datafusion = off;
SET enable_seqscan = off;
SELECT a, b, f, w FROM nc WHERE id IN (3001, 3002, 3004, 3005) ORDER BY id;
RESET enable_seqscan;
SELECT (SELECT string_agg(t::text, ',' ORDER BY id) FROM nh t) = (SELECT string_agg(t::text, ',' ORDER BY id) FROM nc t) AS executor_same;
-- NaN is read back as NaN; DataFusion, which has no decimal NaN, says so.
INSERT INTO nc SELECT 3006, 'NaN', 'NaN', 'NaN', 'NaN' FROM generate_series(1, 1);
SELECT count(*) FROM omendb.columnar_compact('nc');
SELECT id, a, b, f, w FROM nc WHERE id >= 3005 ORDER BY id;
SELECT * FROM omendb.columnar_verify('nc');
SET omendb.datafusion = force;
SELECT sum(a) FROM nc;
RESET omendb.datafusion;

-- The memory cap is an ERROR with a hint, not an out-of-memory kill.
CREATE TABLE wide USING omen_columnar AS SELECT i AS id, md5(i::text) AS k FROM generate_series(1, 100000) i;
SET omendb.datafusion_memory_limit = 1;
SELECT count(*) FROM (SELECT k, count(*) FROM wide GROUP BY k) s;
RESET omendb.datafusion_memory_limit;
SELECT count(*) FROM (SELECT k, count(*) FROM wide GROUP BY k) s;

-- A column added after rows were written is NULL in them: min/max skipping
-- must keep those rows for IS NULL, in both executors.
CREATE TABLE addc (id int) USING omen_columnar;
INSERT INTO addc SELECT generate_series(1, 1000);
ALTER TABLE addc ADD COLUMN late int;
INSERT INTO addc VALUES (1001, 5);
SET omendb.datafusion = off;
SELECT count(*) FROM addc WHERE late IS NULL;
SELECT count(*), sum(late) FROM addc WHERE late IS NOT NULL;
SELECT count(*) FROM addc WHERE late < 10;
SET omendb.datafusion = force;
SELECT count(*) FROM addc WHERE late IS NULL;
SELECT count(*), sum(late) FROM addc WHERE late IS NOT NULL;
SELECT count(*) FROM addc WHERE late < 10;
RESET omendb.datafusion;
DROP TABLE addc;

-- Partitioned tables whose partitions are all omen_columnar run in
-- DataFusion: PostgreSQL prunes partitions at planning; with $n parameters
-- the scan skips the partitions whose bounds exclude them at execution.
-- Partitions may order their columns differently.
CREATE TABLE ph (id int NOT NULL, g int, t text, d date);
INSERT INTO ph SELECT i, i % 5, 'p' || (i % 11), date '2024-01-01' + i % 90 FROM generate_series(1, 3000) i;
CREATE TABLE pc (id int NOT NULL, g int, t text, d date) PARTITION BY RANGE (d);
CREATE TABLE pc_jan PARTITION OF pc FOR VALUES FROM (MINVALUE) TO ('2024-02-01') USING omen_columnar;
CREATE TABLE pc_feb (gone int, d date, t text, g int, id int NOT NULL) USING omen_columnar;
ALTER TABLE pc_feb DROP COLUMN gone;
ALTER TABLE pc ATTACH PARTITION pc_feb FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE pc_rest PARTITION OF pc DEFAULT USING omen_columnar;
INSERT INTO pc SELECT * FROM ph;
INSERT INTO pc VALUES (3001, 1, 'one', '2024-02-10');  -- write store
INSERT INTO ph VALUES (3001, 1, 'one', '2024-02-10');
DELETE FROM pc WHERE id % 10 = 3;
DELETE FROM ph WHERE id % 10 = 3;
ANALYZE ph, pc;
EXPLAIN (COSTS OFF) SELECT g, count(*) FROM pc GROUP BY g ORDER BY g;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pc WHERE d >= '2024-02-05' AND d < '2024-02-20';
SELECT same('SELECT g, count(*), min(t), max(d), sum(id) FROM p{T} GROUP BY g ORDER BY g');
SELECT same('SELECT count(*), sum(id) FROM p{T} WHERE d >= ''2024-02-05'' AND d < ''2024-02-20''');
SELECT same('SELECT a.g, count(*) FROM p{T} a JOIN p{T} b ON a.id = b.id + 31 WHERE a.d < ''2024-02-03'' GROUP BY 1 ORDER BY 1');
CREATE FUNCTION scan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    IF l ~ 'OmenColumnarScan' THEN
      RETURN NEXT regexp_replace(regexp_replace(trim(l), ', metrics=.*$', ''), ', bytes=\d+', '');
    END IF;
  END LOOP;
END $$;
SET plan_cache_mode = force_generic_plan;
PREPARE pp(date) AS SELECT count(*), sum(id) FROM pc WHERE d >= $1;
SELECT scan_of('EXECUTE pp(''2024-02-15'')');
EXECUTE pp('2024-02-15');
SELECT count(*), sum(id) FROM ph WHERE d >= '2024-02-15';
SELECT scan_of('EXECUTE pp(''2024-03-15'')');
EXECUTE pp('2024-03-15');
SELECT count(*), sum(id) FROM ph WHERE d >= '2024-03-15';
RESET plan_cache_mode;
-- LIST partitions, the NULL partition included.
CREATE TABLE pl (k int, v text) PARTITION BY LIST (k);
CREATE TABLE pl_odd PARTITION OF pl FOR VALUES IN (1, 3) USING omen_columnar;
CREATE TABLE pl_null PARTITION OF pl FOR VALUES IN (2, NULL) USING omen_columnar;
INSERT INTO pl SELECT (ARRAY[1, 2, 3, NULL])[1 + i % 4], 'v' || i FROM generate_series(1, 400) i;
SET plan_cache_mode = force_generic_plan;
PREPARE pk(int) AS SELECT count(*), min(v) FROM pl WHERE k = $1;
SELECT scan_of('EXECUTE pk(3)');
EXECUTE pk(3);
SELECT scan_of('SELECT count(*), min(v) FROM pl WHERE k IS NULL');
SELECT count(*), min(v) FROM pl WHERE k IS NULL;
RESET plan_cache_mode;
-- A heap partition the plan reads, or ONLY, keeps the query in PostgreSQL;
-- pruned away, it does not.
CREATE TABLE pl_heap PARTITION OF pl FOR VALUES IN (4);
INSERT INTO pl VALUES (4, 'heap');
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pl WHERE k = 1;
SELECT count(*) FROM pl WHERE k = 1;
SET omendb.datafusion = force;
SELECT count(*) FROM pl;
SELECT count(*) FROM ONLY pc;
RESET omendb.datafusion;
SELECT count(*) FROM pl;
DROP TABLE pl, pc, ph;

-- Joins are planned with PostgreSQL's column statistics (distinct counts from
-- ANALYZE). A foreign-key join is as large as its fact side, so the next
-- join's build side (the left input) is the 1,000-row table, not the
-- 20,000-row join result; without them DataFusion takes every key as unique,
-- estimates the join at 100 rows and builds on it.
CREATE TABLE js (id int, name text) USING omen_columnar;
CREATE TABLE jf (s int, c int, v int) USING omen_columnar;
CREATE TABLE jc (id int, w int) USING omen_columnar;
INSERT INTO js SELECT i, 's' || i FROM generate_series(1, 100) i;
INSERT INTO jf SELECT 1 + i % 100, 1 + i % 1000, i FROM generate_series(1, 20000) i;
INSERT INTO jc SELECT i, i % 10 FROM generate_series(1, 1000) i;
ANALYZE js, jf, jc;
CREATE FUNCTION joins_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    IF l ~ 'HashJoinExec' THEN
      RETURN NEXT regexp_replace(trim(l), ', projection=.*$', '');
    END IF;
  END LOOP;
END $$;
SHOW omendb.datafusion_statistics;
SELECT joins_of('SELECT count(*), sum(v), sum(w) FROM js, jf, jc WHERE jf.s = js.id AND jf.c = jc.id AND js.name <> ''s7''');
SELECT count(*), sum(v), sum(w) FROM js, jf, jc WHERE jf.s = js.id AND jf.c = jc.id AND js.name <> 's7';
SET omendb.datafusion_statistics = off;
SELECT joins_of('SELECT count(*), sum(v), sum(w) FROM js, jf, jc WHERE jf.s = js.id AND jf.c = jc.id AND js.name <> ''s7''');
SELECT count(*), sum(v), sum(w) FROM js, jf, jc WHERE jf.s = js.id AND jf.c = jc.id AND js.name <> 's7';
RESET omendb.datafusion_statistics;
SET omendb.datafusion = off;
SELECT count(*), sum(v), sum(w) FROM js, jf, jc WHERE jf.s = js.id AND jf.c = jc.id AND js.name <> 's7';
RESET omendb.datafusion;
-- DataFusion joins a FROM list in its order; omendb lists the items by
-- PostgreSQL's estimates first (the smallest join first, then the join that
-- adds the fewest rows), so the one-row js is joined first (the first join's
-- left input), not last.
SELECT joins_of('SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = ''s7''');
SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = 's7';
SET omendb.datafusion_statistics = off;
SELECT joins_of('SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = ''s7''');
SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = 's7';
RESET omendb.datafusion_statistics;
SET omendb.datafusion = off;
SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = 's7';
RESET omendb.datafusion;
-- The same inside a subquery in FROM (PostgreSQL pulls it up and estimates
-- its tables; DataFusion gets it as a level of its own): js first again.
SELECT joins_of('SELECT count(*), sum(v), sum(w) FROM (SELECT v, w FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = ''s7'') s');
SELECT count(*), sum(v), sum(w) FROM (SELECT v, w FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = 's7') s;
-- A generic plan keeps the estimates it was planned with (they are stored
-- in the plan): the same joins, run twice.
PREPARE jq(text) AS SELECT count(*), sum(v), sum(w) FROM jf, jc, js WHERE jf.s = js.id AND jf.c = jc.id AND js.name = $1;
SET plan_cache_mode = force_generic_plan;
SELECT joins_of('EXECUTE jq(''s7'')');
EXECUTE jq('s7');
EXECUTE jq('s9');
RESET plan_cache_mode;
DEALLOCATE jq;
-- A subquery test on one table's columns runs on that table before its join
-- to a whole table (the semi join is the inner join's input), but stays
-- above a join to a filtered table, which may drop most rows first.
SELECT joins_of('SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jf.s IN (SELECT id FROM js WHERE name IN (''s7'', ''s9''))');
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jf.s IN (SELECT id FROM js WHERE name IN ('s7', 's9'));
SELECT joins_of('SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jc.w = 7 AND jf.s IN (SELECT id FROM js WHERE name IN (''s7'', ''s9''))');
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jc.w = 7 AND jf.s IN (SELECT id FROM js WHERE name IN ('s7', 's9'));
SELECT joins_of('SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND NOT EXISTS (SELECT 1 FROM js WHERE js.id = jf.s AND js.name <> ''s7'')');
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND NOT EXISTS (SELECT 1 FROM js WHERE js.id = jf.s AND js.name <> 's7');
SET omendb.datafusion = off;
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jf.s IN (SELECT id FROM js WHERE name IN ('s7', 's9'));
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND jc.w = 7 AND jf.s IN (SELECT id FROM js WHERE name IN ('s7', 's9'));
SELECT count(*), sum(w) FROM jf, jc WHERE jf.c = jc.id AND NOT EXISTS (SELECT 1 FROM js WHERE js.id = jf.s AND js.name <> 's7');
RESET omendb.datafusion;
-- A scan reports the rows PostgreSQL estimates its filters pass (about 100
-- of jd's 100,000 here), so the join collects that small side once; without
-- the statistics DataFusion guesses 20% of the table (20,000 rows: text
-- keys, so it counts rows, not bytes) and partitions both sides.
CREATE TABLE jd (k text, tag text) USING omen_columnar;
CREATE TABLE jt (k text, v int) USING omen_columnar;
INSERT INTO jd SELECT 'k' || i, 't' || i % 1000 FROM generate_series(1, 100000) i;
INSERT INTO jt SELECT 'k' || i * 5, i FROM generate_series(1, 20000) i;
ANALYZE jd, jt;
SELECT joins_of('SELECT count(*), sum(v) FROM jt, jd WHERE jt.k = jd.k AND jd.tag = ''t5''');
SELECT count(*), sum(v) FROM jt, jd WHERE jt.k = jd.k AND jd.tag = 't5';
SET omendb.datafusion_statistics = off;
SELECT joins_of('SELECT count(*), sum(v) FROM jt, jd WHERE jt.k = jd.k AND jd.tag = ''t5''');
SELECT count(*), sum(v) FROM jt, jd WHERE jt.k = jd.k AND jd.tag = 't5';
RESET omendb.datafusion_statistics;
SET omendb.datafusion = off;
SELECT count(*), sum(v) FROM jt, jd WHERE jt.k = jd.k AND jd.tag = 't5';
RESET omendb.datafusion;
DROP TABLE jd, jt;
-- A correlated scalar subquery becomes an outer join to an aggregate; a
-- strict comparison of its result (here omendb's numeric comparison, for
-- avg's per-value scale) rejects the join's NULL rows, so the join is inner,
-- and its keys filter the aggregated scan (TPC-H Q17). COALESCE is not
-- strict: that join stays outer.
SELECT joins_of('SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN (''s7'', ''s9'') AND jf.v < (SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id)');
SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN ('s7', 's9') AND jf.v < (SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id);
-- The aggregated scan of jf keeps the 400 rows of s7 and s9 (its other
-- scan feeds the join's probe, which drops the rest itself).
DO $$
DECLARE l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN (''s7'', ''s9'') AND jf.v < (SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id)' LOOP
    IF l ~ 'OmenColumnarScan: table=jf' THEN
      RAISE NOTICE 'jf scan: %', substring(l from 'output_rows=[^,]*');
    END IF;
  END LOOP;
END $$;
SELECT joins_of('SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN (''s7'', ''s9'') AND jf.v < coalesce((SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id AND f2.v > 19990), 20000)');
SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN ('s7', 's9') AND jf.v < coalesce((SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id AND f2.v > 19990), 20000);
SET omendb.datafusion = off;
SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN ('s7', 's9') AND jf.v < (SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id);
SELECT count(*), sum(v) FROM jf, js WHERE jf.s = js.id AND js.name IN ('s7', 's9') AND jf.v < coalesce((SELECT 0.9 * avg(v) FROM jf f2 WHERE f2.s = js.id AND f2.v > 19990), 20000);
RESET omendb.datafusion;
DROP TABLE js, jf, jc;
DROP FUNCTION joins_of(text);

\c regression
DROP DATABASE omendb_df;
