-- Unique alex indexes, with btree as the oracle: every statement runs on a
-- table with a unique alex index and on one with a unique btree index, and
-- must end the same way (row count, or SQLSTATE, message and detail).
CREATE EXTENSION IF NOT EXISTS omendb;
SET jit = off;

CREATE TABLE u_alex (k int8, v text);
CREATE UNIQUE INDEX u_alex_k ON u_alex USING alex (k);
CREATE TABLE u_btree (k int8, v text);
CREATE UNIQUE INDEX u_btree_k ON u_btree USING btree (k);

-- How one statement ended, with the table's name taken out.
CREATE FUNCTION pg_temp.outcome(sql text, tab text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE n bigint; st text; msg text; det text; con text;
BEGIN
  EXECUTE format(sql, tab);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN 'ok, ' || n || ' rows';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
    det = PG_EXCEPTION_DETAIL, con = CONSTRAINT_NAME;
  RETURN replace(format('%s %s (%s) [%s]', st, msg, det, con), tab, 'u');
END $f$;
-- The same statement (%1$I is the table) on both; the outcome, or both.
CREATE FUNCTION pg_temp.both(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE a text := pg_temp.outcome(sql, 'u_alex'); b text := pg_temp.outcome(sql, 'u_btree');
BEGIN
  RETURN CASE WHEN a = b THEN a ELSE format('DIFFERENT: alex %s, btree %s', a, b) END;
END $f$;
CREATE FUNCTION pg_temp.same_rows() RETURNS text LANGUAGE sql AS $f$
  SELECT CASE WHEN NOT EXISTS (SELECT * FROM u_alex EXCEPT ALL SELECT * FROM u_btree)
               AND NOT EXISTS (SELECT * FROM u_btree EXCEPT ALL SELECT * FROM u_alex)
    THEN 'same rows: ' || (SELECT count(*) FROM u_alex)
    ELSE 'DIFFERENT ROWS' END
$f$;

SELECT pg_temp.both($$INSERT INTO %1$I VALUES (1, 'a'), (2, 'b'), (3, 'c')$$);
-- A duplicate, from another statement and within one statement.
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (1, 'dup')$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (4, 'd'), (4, 'e')$$);
SELECT pg_temp.both($$COPY %1$I FROM PROGRAM 'printf "5\tx\n5\ty\n"'$$);
-- NULLs are distinct by default.
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (NULL, 'n1'), (NULL, 'n2')$$);
-- Deleted keys block nothing; changing a key checks it; rewriting a row
-- with its key unchanged is no duplicate.
SELECT pg_temp.both($$DELETE FROM %1$I WHERE k = 1$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (1, 'again')$$);
SELECT pg_temp.both($$UPDATE %1$I SET k = 2 WHERE k = 1$$);
SELECT pg_temp.both($$UPDATE %1$I SET v = repeat('w', 2000) WHERE k <= 3$$);
SELECT pg_temp.both($$UPDATE %1$I SET k = k + 100 WHERE k >= 2$$);
SELECT pg_temp.both($$UPDATE %1$I SET k = k - 100 WHERE k >= 100$$);
-- Upserts.
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (2, 'ignored') ON CONFLICT (k) DO NOTHING$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (2, 'upd') ON CONFLICT (k) DO UPDATE SET v = excluded.v$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (20, 'new') ON CONFLICT (k) DO UPDATE SET v = 'not me'$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (20, 'x'), (21, 'y') ON CONFLICT DO NOTHING$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (22, 'x'), (22, 'y') ON CONFLICT (k) DO UPDATE SET v = excluded.v$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (3, 'w') ON CONFLICT (k) DO UPDATE SET v = 'kept' WHERE %1$I.v = 'never'$$);
SELECT pg_temp.both($$WITH ins AS (INSERT INTO %1$I VALUES (2, 'cte') ON CONFLICT (k) DO UPDATE SET v = %1$I.v || '+cte' RETURNING k) SELECT * FROM ins$$);
SELECT pg_temp.same_rows();

-- Rolled-back keys block nothing.
BEGIN;
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (30, 'rolled back')$$);
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (31, 'rolled back')$$);
ROLLBACK TO s;
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (30, 'kept'), (31, 'kept')$$);
COMMIT;
-- A row inserted earlier in the same transaction is a duplicate.
BEGIN;
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (32, 'first')$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (32, 'second')$$);
ROLLBACK;
SELECT pg_temp.same_rows();
SELECT k, left(v, 12) AS v FROM u_alex ORDER BY k, v;

-- Many versions of one key (updates that change the row, not the key),
-- before and after VACUUM, across page splits.
SELECT pg_temp.both($$INSERT INTO %1$I SELECT g, 'bulk' FROM generate_series(1000, 20000) g$$);
SELECT pg_temp.both($$UPDATE %1$I SET v = v || '!' WHERE k BETWEEN 1000 AND 1100$$);
SELECT pg_temp.both($$UPDATE %1$I SET v = v || '?' WHERE k BETWEEN 1000 AND 1100$$);
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (1050, 'dup')$$);
VACUUM u_alex;
VACUUM u_btree;
SELECT pg_temp.both($$INSERT INTO %1$I VALUES (1050, 'dup')$$);
SELECT pg_temp.both($$INSERT INTO %1$I SELECT g, 'more' FROM generate_series(20001, 30000) g$$);
SELECT pg_temp.same_rows();
SELECT keys, heap_tuples_checked FROM omendb.alex_verify('u_alex_k');

-- A row updated again and again under its key leaves a dead version per
-- update; unique checks and index scans remove those dead to all, so the
-- key keeps a few entries (not one per version) long before VACUUM.
CREATE TABLE u_hot (k int8 NOT NULL, n int8, pad text) WITH (autovacuum_enabled = off);
INSERT INTO u_hot SELECT g, 0, repeat('p', 1000) FROM generate_series(1, 16) g;
CREATE UNIQUE INDEX u_hot_k ON u_hot USING alex (k);
DO $$ BEGIN FOR i IN 1..300 LOOP UPDATE u_hot SET n = n + 1 WHERE k = 5; END LOOP; END $$;
SET enable_seqscan = off;
SELECT n FROM u_hot WHERE k = 5;
RESET enable_seqscan;
SELECT keys < 16 + 10 AS dead_versions_removed, heap_tuples_checked FROM omendb.alex_verify('u_hot_k');
DROP TABLE u_hot;

-- Building a unique index: duplicates among live rows fail the build; dead
-- ones do not.
CREATE TABLE u_build (k int4);
INSERT INTO u_build VALUES (1), (1), (2);
CREATE UNIQUE INDEX u_build_k ON u_build USING alex (k);
DELETE FROM u_build WHERE ctid = (SELECT min(ctid) FROM u_build);
CREATE UNIQUE INDEX u_build_k ON u_build USING alex (k);
INSERT INTO u_build VALUES (2);
CREATE UNIQUE INDEX CONCURRENTLY u_build_k2 ON u_build USING alex (k);
INSERT INTO u_build VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY u_build_k3 ON u_build USING alex (k);
SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indrelid = 'u_build'::regclass ORDER BY 1;
DROP TABLE u_build;
CREATE TABLE u_cic (k int8);
INSERT INTO u_cic VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY u_cic_k ON u_cic USING alex (k);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'u_cic_k'::regclass;
DROP TABLE u_cic;

-- NULL entries share their key with int8's maximum and timestamp
-- 'infinity', and sort among them by heap position: a NULL row between two
-- equal values must not hide the duplicate (one row per heap page here).
CREATE TABLE u_inf (k timestamp, pad text) WITH (fillfactor = 10);
INSERT INTO u_inf VALUES ('infinity', repeat('x', 900)), (NULL, repeat('x', 900)),
  ('infinity', repeat('x', 900)), (NULL, repeat('x', 900));
SELECT count(DISTINCT (ctid::text::point)[0]) AS heap_pages FROM u_inf;
CREATE UNIQUE INDEX u_inf_k ON u_inf USING alex (k);
CREATE UNIQUE INDEX u_inf_k ON u_inf USING btree (k);
-- Now NULL, 'infinity', NULL: the NULLs collide only when not distinct.
DELETE FROM u_inf WHERE k IS NOT NULL AND ctid = (SELECT min(ctid) FROM u_inf WHERE k IS NOT NULL);
VACUUM u_inf;
CREATE UNIQUE INDEX u_inf_k ON u_inf USING alex (k) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX u_inf_k ON u_inf USING btree (k) NULLS NOT DISTINCT;
CREATE UNIQUE INDEX u_inf_k ON u_inf USING alex (k);
INSERT INTO u_inf VALUES ('infinity', 'dup');
DROP TABLE u_inf;

-- NULLS NOT DISTINCT; floats (-0 equals 0, NaN equals NaN); the detail
-- shows the key.
CREATE TABLE u_nulls (k float8);
INSERT INTO u_nulls VALUES (0), (NULL), (NULL), ('NaN');
CREATE UNIQUE INDEX u_nulls_k ON u_nulls USING alex (k) NULLS NOT DISTINCT;
DELETE FROM u_nulls WHERE k IS NULL AND ctid = (SELECT max(ctid) FROM u_nulls WHERE k IS NULL);
CREATE UNIQUE INDEX u_nulls_k ON u_nulls USING alex (k) NULLS NOT DISTINCT;
INSERT INTO u_nulls VALUES (NULL);
INSERT INTO u_nulls VALUES ('-0');
INSERT INTO u_nulls VALUES ('NaN');
INSERT INTO u_nulls VALUES (NULL) ON CONFLICT (k) DO NOTHING;
SELECT k FROM u_nulls ORDER BY k;
DROP TABLE u_nulls;

-- The detail hides a value the caller may not read, as btree's does.
CREATE ROLE u_writer;
CREATE TABLE u_secret (k int8, v text);
CREATE UNIQUE INDEX u_secret_k ON u_secret USING alex (k);
INSERT INTO u_secret VALUES (7, 'x');
GRANT INSERT ON u_secret TO u_writer;
SET ROLE u_writer;
INSERT INTO u_secret VALUES (7, 'y');
RESET ROLE;
DROP TABLE u_secret;
DROP ROLE u_writer;

-- An exclusion constraint with alex's = works like a unique index.
CREATE TABLE u_excl (k int8, EXCLUDE USING alex (k WITH =));
INSERT INTO u_excl VALUES (1), (2);
INSERT INTO u_excl VALUES (1);
DROP TABLE u_excl;

-- On an omen_columnar table.
CREATE TABLE u_col (k int8 NOT NULL, v text) USING omen_columnar;
CREATE UNIQUE INDEX u_col_k ON u_col USING alex (k);
INSERT INTO u_col SELECT g, 'c' FROM generate_series(1, 1000) g;
INSERT INTO u_col VALUES (500, 'dup');
INSERT INTO u_col VALUES (500, 'upd') ON CONFLICT (k) DO UPDATE SET v = excluded.v;
DELETE FROM u_col WHERE k = 7;
INSERT INTO u_col VALUES (7, 'back');
SELECT k, v FROM u_col WHERE k IN (7, 500) ORDER BY k;
SELECT keys FROM omendb.alex_verify('u_col_k');
DROP TABLE u_col;

-- Where PostgreSQL insists on btree.
ALTER TABLE u_alex ADD CONSTRAINT u_alex_pk PRIMARY KEY USING INDEX u_alex_k;
CREATE TABLE u_parted (k int8 NOT NULL) PARTITION BY RANGE (k);
CREATE UNIQUE INDEX u_parted_k ON u_parted USING alex (k);
-- A partition may have one, but PostgreSQL 15's tuple routing takes only
-- btree arbiters: ON CONFLICT through the partitioned table is refused
-- before any row goes in (0A000, speculative.rs); into the partition itself
-- it works.
CREATE TABLE u_part1 PARTITION OF u_parted FOR VALUES FROM (0) TO (100);
CREATE UNIQUE INDEX u_part1_k ON u_part1 USING alex (k);
INSERT INTO u_parted VALUES (1) ON CONFLICT DO NOTHING;
INSERT INTO u_part1 VALUES (1), (1) ON CONFLICT DO NOTHING;
INSERT INTO u_parted VALUES (1);
DROP TABLE u_parted;
-- A foreign key cannot reference a unique alex index: PostgreSQL 15 takes
-- any unique index at first, then refuses every access method but btree.
CREATE TABLE u_child (k int8 REFERENCES u_alex (k));
DROP TABLE u_alex, u_btree;
