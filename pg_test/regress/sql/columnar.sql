-- omen_columnar: every statement kind, type and error, each compared with
-- the same statements on a heap table where the answer is data.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS omendb;
RESET client_min_messages;

SELECT amname, amtype FROM pg_am WHERE amname = 'omen_columnar';

-- Every common type, NULLs anywhere, exact round trips.
CREATE TABLE types_heap (
    id int, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
    t text, vc varchar(10), c char(4), by bytea, d date, tm time, ts timestamp,
    tz timestamptz, iv interval, u uuid, j json, jb jsonb, a int[], ta text[], e "char", nm name
);
CREATE TABLE types_col (LIKE types_heap) USING omen_columnar;
INSERT INTO types_heap VALUES
  (1, true, 32767, -2147483648, 9223372036854775807, 'NaN', '-Infinity', 123456789.0123456789,
   'héllo wörld', 'abc', 'ab', '\x00ff10', '2024-02-29', '23:59:59.999999', '2000-01-01 00:00:00',
   '2024-01-01 12:00:00+05', '1 year 2 mons 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '{"a": [1, 2]}', '{"b": {"c": null}}', '{1,NULL,3}', '{"x",NULL,""}', 'z', 'nm'),
  (2, false, -32768, 0, -9223372036854775808, '-0', 'Infinity', 'NaN', '', NULL, NULL, '\x', 'infinity',
   '00:00', '-infinity', 'infinity', '-178000000 years', '00000000-0000-0000-0000-000000000000',
   '[]', '[]', '{}', '{}', NULL, ''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, true, 1, 2, 3, 1.5e-45, 4.9e-324, -0.0000000001, repeat('long ', 5000), 'x', 'abcd', decode(repeat('ab', 3000), 'hex'),
   '4713-01-01 BC', '12:00', '294276-12-31 23:59:59', '1970-01-01 00:00:00+00', '-1 day', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
   '"s"', '3.5', '{{1,2},{3,4}}', '{"a,b"}', 'a', repeat('n', 63));
INSERT INTO types_col SELECT * FROM types_heap;
SELECT count(*) AS rows_differ FROM (
  (SELECT x::text FROM types_heap x EXCEPT ALL SELECT x::text FROM types_col x)
  UNION ALL
  (SELECT x::text FROM types_col x EXCEPT ALL SELECT x::text FROM types_heap x)) d;
-- Bit-exact floats and text forms.
SELECT id, f4::text, f8::text, n::text, iv::text, length(t), octet_length(by) FROM types_col ORDER BY id;

-- Single-row inserts land in the write store, not one-row Parquet segments.
CREATE TABLE ws (id int, v text) USING omen_columnar;
INSERT INTO ws VALUES (1, 'a');
INSERT INTO ws VALUES (2, 'b');
INSERT INTO ws VALUES (3, 'c'), (4, 'd');
SELECT segments, parquet_segments, write_store_segments, row_count FROM omendb.columnar_stats('ws');
-- INSERT ... SELECT of many rows writes Parquet directly.
INSERT INTO ws SELECT g, 'v' || g FROM generate_series(5, 20000) g;
SELECT segments, parquet_segments, write_store_segments, row_count FROM omendb.columnar_stats('ws');
SELECT count(*), sum(id), min(v), max(v) FROM ws;

-- COPY.
CREATE TABLE cp (a int, b text, c float8) USING omen_columnar;
COPY cp FROM stdin;
1	one	1.5
2	\N	2.5
3	three	\N
\.
SELECT * FROM cp ORDER BY a;

-- UPDATE, DELETE, RETURNING.
UPDATE cp SET b = 'TWO' WHERE a = 2 RETURNING *;
DELETE FROM cp WHERE a = 3 RETURNING a, b;
SELECT * FROM cp ORDER BY a;
UPDATE ws SET v = 'big' WHERE id % 1000 = 0;
DELETE FROM ws WHERE id % 3 = 0;
SELECT count(*), count(*) FILTER (WHERE v = 'big'), sum(id) FROM ws;

-- Transactions: rollback, savepoints, visibility of own changes.
BEGIN;
INSERT INTO cp VALUES (10, 'ten', 10);
SAVEPOINT s1;
INSERT INTO cp VALUES (11, 'eleven', 11);
DELETE FROM cp WHERE a = 1;
SELECT a FROM cp ORDER BY a;
ROLLBACK TO s1;
SELECT a FROM cp ORDER BY a;
SAVEPOINT s2;
UPDATE cp SET c = -1 WHERE a = 10;
RELEASE s2;
SELECT a, c FROM cp ORDER BY a;
ROLLBACK;
SELECT a FROM cp ORDER BY a;
BEGIN;
INSERT INTO cp SELECT g, 'g', g FROM generate_series(100, 2000) g;
SELECT count(*) FROM cp;
ROLLBACK;
SELECT count(*) FROM cp;

-- Halloween protection: an INSERT ... SELECT does not see its own rows.
INSERT INTO cp SELECT a + 100, b, c FROM cp;
SELECT count(*) FROM cp;

-- Indexes: btree primary key and unique constraint, alex.
CREATE TABLE pk (id int PRIMARY KEY, k int8, v text) USING omen_columnar;
INSERT INTO pk SELECT g, g * 10, 'v' || g FROM generate_series(1, 5000) g;
INSERT INTO pk VALUES (5, 0, 'dup');
INSERT INTO pk VALUES (6000, 1, 'x'), (6000, 2, 'y');
COPY pk FROM stdin;
7000	1	a
7000	2	b
\.
INSERT INTO pk VALUES (5, 0, 'upsert') ON CONFLICT (id) DO UPDATE SET v = excluded.v;
INSERT INTO pk VALUES (6, 0, 'skip') ON CONFLICT DO NOTHING;
SELECT * FROM pk WHERE id IN (5, 6);
CREATE INDEX pk_k ON pk USING alex (k);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT v FROM pk WHERE id = 42;
SELECT v FROM pk WHERE id = 42;
EXPLAIN (COSTS OFF) SELECT id FROM pk WHERE k BETWEEN 100 AND 150;
SELECT id FROM pk WHERE k BETWEEN 100 AND 150 ORDER BY id;
UPDATE pk SET k = -k WHERE id <= 3;
SELECT id, k FROM pk WHERE k < 0 ORDER BY k;
RESET enable_seqscan;
SELECT * FROM omendb.alex_verify('pk_k');

-- Row locks.
SELECT id FROM pk WHERE id = 1 FOR UPDATE;
SELECT id FROM pk WHERE id = 2 FOR SHARE NOWAIT;
SELECT id FROM pk WHERE id BETWEEN 1 AND 3 ORDER BY id FOR UPDATE SKIP LOCKED;

-- CREATE TABLE AS, default_table_access_method, ALTER TABLE SET ACCESS METHOD.
CREATE TABLE ctas USING omen_columnar AS SELECT * FROM types_heap;
SELECT count(*) FROM (SELECT x::text FROM ctas x EXCEPT ALL SELECT x::text FROM types_heap x) d;
SET default_table_access_method = omen_columnar;
CREATE TABLE dflt (x int);
RESET default_table_access_method;
SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE relname = 'dflt';
CREATE TABLE conv AS SELECT g AS id, g * 2 AS dbl FROM generate_series(1, 1000) g;
ALTER TABLE conv SET ACCESS METHOD omen_columnar;
SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE relname = 'conv';
SELECT count(*), sum(dbl) FROM conv;
ALTER TABLE conv SET ACCESS METHOD heap;
SELECT count(*), sum(dbl) FROM conv;

-- Columns added and dropped after data was written.
ALTER TABLE cp ADD COLUMN d int DEFAULT 7;
ALTER TABLE cp DROP COLUMN c;
INSERT INTO cp VALUES (50, 'fifty', 8);
SELECT a, b, d FROM cp ORDER BY a;
-- Compaction rewrites segments of both shapes with the dropped column.
SELECT segments_written FROM omendb.columnar_compact('cp');
SELECT a, b, d FROM cp ORDER BY a;
SELECT rows_checked FROM omendb.columnar_verify('cp');

-- Dropped columns of every by-value type: Parquet segments written while
-- they existed stay readable (PostgreSQL forgets a dropped column's type).
CREATE TABLE dropcol (id int, f8 float8, f4 real, flag boolean, t text, n bigint) USING omen_columnar;
INSERT INTO dropcol SELECT g, g / 2.0, g / 4.0, g % 2 = 0, 'x' || g, g * 10 FROM generate_series(1, 3000) g;
SELECT parquet_segments > 0 AS has_parquet FROM omendb.columnar_stats('dropcol');
ALTER TABLE dropcol DROP COLUMN f8, DROP COLUMN f4, DROP COLUMN flag;
SELECT * FROM dropcol WHERE id <= 3 ORDER BY id;
SET omendb.datafusion = force;
SELECT count(*), sum(id), min(t), sum(n) FROM dropcol;
RESET omendb.datafusion;
SELECT rows_checked FROM omendb.columnar_verify('dropcol');
DELETE FROM dropcol WHERE id % 3 = 0;
SELECT segments_written FROM omendb.columnar_compact('dropcol');
SELECT count(*), sum(id), min(t), sum(n) FROM dropcol;
SELECT rows_checked FROM omendb.columnar_verify('dropcol');
DROP TABLE dropcol;

-- TRUNCATE, inside a transaction that rolls back, and for real.
BEGIN;
TRUNCATE cp;
SELECT count(*) FROM cp;
ROLLBACK;
SELECT count(*) FROM cp;
TRUNCATE cp;
SELECT count(*) FROM cp;
INSERT INTO cp VALUES (1, 'again', 1);
SELECT a, b, d FROM cp;

-- VACUUM, VACUUM FULL, ANALYZE.
VACUUM ws;
SELECT count(*), sum(id) FROM ws;
VACUUM FULL ws;
SELECT count(*), sum(id) FROM ws;
ANALYZE ws;
SELECT reltuples > 0 AS has_stats FROM pg_class WHERE relname = 'ws';
SELECT count(*) > 0 AS has_column_stats FROM pg_stats WHERE tablename = 'ws';

-- CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY.
CREATE INDEX CONCURRENTLY ws_v ON ws (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM ws WHERE v = 'big';
SELECT count(*) FROM ws WHERE v = 'big';
REINDEX INDEX CONCURRENTLY ws_v;
SELECT count(*) FROM ws WHERE v = 'big';
RESET enable_seqscan;
SELECT count(*) FROM ws WHERE v = 'big';
DROP INDEX ws_v;

-- Introspection.
SELECT segments > 0 AS has_segments, row_count, deleted_rows, compression_ratio > 1 AS compressed FROM omendb.columnar_stats('ws');
SELECT column_name, stored_bytes > 0 AS stored FROM omendb.columnar_column_bytes('ws');
SELECT segments > 0 AS ok, rows_checked FROM omendb.columnar_verify('ws');
SELECT rows_checked FROM omendb.columnar_verify('types_col');
SELECT rows_checked FROM omendb.columnar_verify('pk');

-- Domains, enums, composites; renamed columns; foreign keys both ways.
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE TABLE misc (d posint, m mood, p pair, ps pair[]) USING omen_columnar;
INSERT INTO misc VALUES (1, 'happy', ROW(1, 'x'), ARRAY[ROW(2, 'y')::pair]), (2, NULL, ROW(NULL, NULL), '{}');
ALTER TABLE misc RENAME COLUMN m TO feeling;
SELECT d, feeling, p, ps FROM misc ORDER BY d;
SELECT count(*) FROM misc WHERE feeling > 'ok';
CREATE TABLE child (id int, parent int REFERENCES pk (id)) USING omen_columnar;
INSERT INTO child VALUES (1, 42);
INSERT INTO child VALUES (2, 999999);
DELETE FROM pk WHERE id = 42;
CREATE TABLE parent_heap (id int PRIMARY KEY);
INSERT INTO parent_heap VALUES (1);
CREATE TABLE child2 (p int REFERENCES parent_heap (id)) USING omen_columnar;
INSERT INTO child2 VALUES (1);
INSERT INTO child2 VALUES (2);
DROP TABLE child, child2, parent_heap;

-- Parallel sequential scans return every row once.
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*), sum(id) FROM ws;
SELECT count(*), sum(id) FROM ws;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- ALTER TABLE SET TABLESPACE copies the pages (and keeps the catalog rows).
SET allow_in_place_tablespaces = true;
CREATE TABLESPACE omendb_regress_ts LOCATION '';
SELECT count(*), sum(id), sum(k) FROM pk;
ALTER TABLE pk SET TABLESPACE omendb_regress_ts;
SELECT count(*), sum(id), sum(k) FROM pk;
SELECT rows_checked FROM omendb.columnar_verify('pk');
ALTER TABLE pk SET TABLESPACE pg_default;
SELECT count(*), sum(id), sum(k) FROM pk;
DROP TABLESPACE omendb_regress_ts;
RESET allow_in_place_tablespaces;

-- Temporary tables.
CREATE TEMP TABLE tmp_col (id int, v text) USING omen_columnar;
INSERT INTO tmp_col SELECT g, 't' || g FROM generate_series(1, 3000) g;
INSERT INTO tmp_col VALUES (0, 'single');
DELETE FROM tmp_col WHERE id % 2 = 1;
SELECT count(*), sum(id), min(v) FROM tmp_col;

-- Compaction: merges adjacent segments (write-store batches too), purges
-- rows every transaction sees deleted, keeps row numbers (so index entries
-- stay valid), materialises added columns' defaults, drops dropped columns'.
CREATE TABLE cmp (id int PRIMARY KEY, v text, n numeric) USING omen_columnar;
INSERT INTO cmp VALUES (1, 'one', 1.5);
INSERT INTO cmp VALUES (2, 'two', 2.5);
INSERT INTO cmp SELECT g, 'v' || g, g / 7.0 FROM generate_series(3, 3000) g;
ALTER TABLE cmp ADD COLUMN d int DEFAULT 42;
INSERT INTO cmp VALUES (3001, 'late', 0, 7);
ALTER TABLE cmp DROP COLUMN n;
DELETE FROM cmp WHERE id % 4 = 0;
UPDATE cmp SET v = 'upd' WHERE id % 10 = 1;
CREATE TEMP TABLE cmp_before AS SELECT * FROM cmp;
SELECT segments, write_store_segments, row_count, deleted_rows FROM omendb.columnar_stats('cmp');
-- A rolled-back compaction changes nothing.
BEGIN;
SELECT segments_replaced > 0 AS replaced FROM omendb.columnar_compact('cmp');
ROLLBACK;
SELECT segments, write_store_segments, row_count, deleted_rows, free_pages FROM omendb.columnar_stats('cmp');
SELECT * FROM omendb.columnar_compact('cmp');
SELECT segments, write_store_segments, row_count, deleted_rows, free_pages > 0 AS has_free FROM omendb.columnar_stats('cmp');
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('cmp');
SELECT (SELECT count(*) FROM (TABLE cmp EXCEPT ALL TABLE cmp_before) a) AS only_after,
       (SELECT count(*) FROM (TABLE cmp_before EXCEPT ALL TABLE cmp) b) AS only_before;
SELECT * FROM cmp WHERE id IN (1, 2, 4, 11, 3000, 3001) ORDER BY id;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM cmp WHERE id IN (1, 2, 4, 11, 3000, 3001);
SELECT * FROM cmp WHERE id IN (1, 2, 4, 11, 3000, 3001) ORDER BY id;
RESET enable_seqscan;
-- Nothing left to do.
SELECT * FROM omendb.columnar_compact('cmp');
-- Freed pages are reused once the replaced segments' catalog rows are
-- pruned, so the file does not grow.
VACUUM omendb.columnar_segment;
SELECT pg_relation_size('cmp') AS cmp_size \gset
INSERT INTO cmp (id, v) SELECT g, 'new' FROM generate_series(10000, 11000) g;
SELECT pg_relation_size('cmp') = :cmp_size AS reused_pages;
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('cmp');
-- Rows this transaction inserted are left alone until it commits.
BEGIN;
INSERT INTO cmp (id, v) VALUES (20000, 'mine');
DELETE FROM cmp WHERE id BETWEEN 10000 AND 10500;
SELECT segments_replaced, segments_written, rows_purged FROM omendb.columnar_compact('cmp');
SELECT count(*), sum(id) FROM cmp;
COMMIT;
SELECT count(*), sum(id) FROM cmp;
CREATE TABLE empty_col (x int) USING omen_columnar;
SELECT * FROM omendb.columnar_compact('empty_col');
SELECT * FROM omendb.columnar_compact('types_heap');
CREATE ROLE cmp_stranger;
GRANT USAGE ON SCHEMA omendb TO cmp_stranger;
SET ROLE cmp_stranger;
SELECT * FROM omendb.columnar_compact('cmp');
RESET ROLE;
REVOKE USAGE ON SCHEMA omendb FROM cmp_stranger;
DROP ROLE cmp_stranger;

-- A parallel index build: each participant indexes only the segments it
-- claims (every TID exactly once).
CREATE TABLE par (id int, v text) USING omen_columnar;
INSERT INTO par SELECT g, 'p' FROM generate_series(1, 3000) g;
INSERT INTO par SELECT g, 'q' FROM generate_series(3001, 6000) g;
INSERT INTO par SELECT g, 'r' FROM generate_series(6001, 9000) g;
INSERT INTO par VALUES (9001, 's');
ALTER TABLE par SET (parallel_workers = 2);
SET max_parallel_maintenance_workers = 2;
SET log_temp_files = -1;  -- no LOG lines that vary from run to run
SET client_min_messages = debug1;  -- shows the parallel workers requested
CREATE INDEX par_id ON par (id);
RESET client_min_messages;
RESET log_temp_files;
RESET max_parallel_maintenance_workers;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*), count(DISTINCT id) FROM par WHERE id > 0;
SELECT count(*), count(DISTINCT id) FROM par WHERE id > 0;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- Errors.
CREATE UNLOGGED TABLE unl (x int) USING omen_columnar;
SELECT * FROM ws TABLESAMPLE SYSTEM (10);
CLUSTER pk USING pk_pkey;
BEGIN;
DECLARE cur SCROLL CURSOR FOR SELECT id FROM ws;
FETCH 2 FROM cur;
FETCH BACKWARD 1 FROM cur;
ROLLBACK;
SELECT * FROM omendb.columnar_stats('types_heap');
SELECT * FROM omendb.columnar_verify('pk_pkey');

-- Dropping a table forgets its catalog rows.
CREATE TABLE gone (x int) USING omen_columnar;
INSERT INTO gone SELECT generate_series(1, 10);
SELECT max(storage_id) AS gone_sid FROM omendb.columnar_segment \gset
SELECT count(*) AS segments_before FROM omendb.columnar_segment WHERE storage_id = :gone_sid;
DROP TABLE gone;
SELECT count(*) AS segments_after FROM omendb.columnar_segment WHERE storage_id = :gone_sid;
