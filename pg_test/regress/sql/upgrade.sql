-- ALTER EXTENSION omendb UPDATE from 0.1.0 (its script is kept in sql/ and
-- installed beside the current one): omen_columnar tables and alex indexes
-- made under 0.1.0 read, verify and take writes after the upgrade, segments
-- get ids that are never reused, a snapshot older than the upgrade still
-- reads what it saw, and the upgraded extension has the same objects as a
-- fresh install. Oracle: heap twins.
--
-- The objects and catalog columns of a fresh install first.
CREATE DATABASE omendb_fresh;
\c omendb_fresh
CREATE EXTENSION omendb;
CREATE VIEW objs AS
  SELECT pg_describe_object(classid, objid, objsubid) AS d
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'omendb') AND deptype = 'e'
  UNION ALL
  SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
    FROM pg_attribute WHERE attrelid IN ('omendb.columnar_segment'::regclass,
         'omendb.columnar_deleted'::regclass, 'omendb.columnar_free'::regclass)
     AND attnum > 0 AND NOT attisdropped;
SELECT string_agg(d, E'\n' ORDER BY d) AS fresh_objects FROM objs \gset
\c regression
DROP DATABASE omendb_fresh;
CREATE DATABASE omendb_upgrade;
\c omendb_upgrade
CREATE EXTENSION omendb VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'omendb';
SET omendb.datafusion = off;
CREATE TABLE u_c (id bigint NOT NULL, v text, x numeric(10, 2)) USING omen_columnar;
CREATE TABLE u_h (id bigint NOT NULL, v text, x numeric(10, 2));
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['u_c', 'u_h'] LOOP
    -- A Parquet segment, then single-row inserts (write store).
    EXECUTE format('INSERT INTO %I SELECT g, ''v'' || g, g / 7.0 FROM generate_series(1, 20000) g', t);
    FOR i IN 20001..20040 LOOP
      EXECUTE format('INSERT INTO %I VALUES ($1, $2, $3)', t) USING i, 'w' || i, i / 3.0;
    END LOOP;
    EXECUTE format('DELETE FROM %I WHERE id %% 97 = 0', t);
    EXECUTE format('UPDATE %I SET v = v || ''!'' WHERE id %% 1000 = 1', t);
  END LOOP;
END $$;
CREATE INDEX u_c_alex ON u_c USING alex (id);
CREATE INDEX u_h_btree ON u_h (id);
CREATE FUNCTION same() RETURNS boolean LANGUAGE sql AS $$
  SELECT (SELECT coalesce(array_agg(c ORDER BY c.id), '{}') FROM u_c c)::text
       = (SELECT coalesce(array_agg(h ORDER BY h.id), '{}') FROM u_h h)::text $$;
SELECT same();
-- 0.1.0's catalog has no segment ids.
SELECT count(*) AS segment_id_columns FROM pg_attribute
 WHERE attrelid = 'omendb.columnar_segment'::regclass AND attname = 'segment_id';
-- A snapshot taken before the upgrade, which another session runs (this one
-- has not touched omendb's catalog in this transaction, or the upgrade's
-- ALTER TABLE would wait for it).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS heap_rows FROM u_h;
\! PGOPTIONS='-c lock_timeout=20s' psql -X -q -v ON_ERROR_STOP=1 -d omendb_upgrade -c "ALTER EXTENSION omendb UPDATE" 2>&1
-- The old snapshot reads every row it saw (its catalog rows have no ids).
SELECT extversion AS old_snapshot_version FROM pg_extension WHERE extname = 'omendb';
SELECT count(*) AS old_snapshot_columnar_rows FROM u_c;
SELECT same() AS old_snapshot_same;
-- And by index (segments without ids are read uncached).
SET enable_seqscan = off;
SELECT id, v FROM u_c WHERE id IN (1, 97, 1001, 20040) ORDER BY id;
RESET enable_seqscan;
COMMIT;
SELECT extversion FROM pg_extension WHERE extname = 'omendb';
-- Every data segment has an id, all distinct.
SELECT count(*) FILTER (WHERE segment_id IS NULL AND kind <> 'r') AS without_id,
       count(segment_id) = count(DISTINCT segment_id) AS distinct_ids
  FROM omendb.columnar_segment;
SELECT segments > 0 AS verified FROM omendb.columnar_verify('u_c');
SELECT keys >= (SELECT count(*) FROM u_h) AS alex_keys_cover_rows FROM omendb.alex_verify('u_c_alex');
SELECT same();
-- Index lookups through the alex index built under 0.1.0.
SET enable_seqscan = off;
SELECT id, v FROM u_c WHERE id IN (1, 97, 1001, 20040) ORDER BY id;
RESET enable_seqscan;
-- Writes and compaction after the upgrade: new segments, new ids.
SELECT max(segment_id) AS before_max FROM omendb.columnar_segment \gset
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['u_c', 'u_h'] LOOP
    EXECUTE format('INSERT INTO %I SELECT g, ''n'' || g, g / 11.0 FROM generate_series(20041, 25000) g', t);
    FOR i IN 25001..25010 LOOP
      EXECUTE format('INSERT INTO %I VALUES ($1, $2, $3)', t) USING i, 'w' || i, i / 3.0;
    END LOOP;
    EXECUTE format('DELETE FROM %I WHERE id %% 89 = 0', t);
  END LOOP;
END $$;
SELECT segments_replaced > 0 AS compacted FROM omendb.columnar_compact('u_c');
SELECT count(*) FILTER (WHERE segment_id IS NULL AND kind <> 'r') AS without_id,
       count(*) FILTER (WHERE segment_id > :before_max) > 0 AS new_ids,
       count(segment_id) = count(DISTINCT segment_id) AS distinct_ids
  FROM omendb.columnar_segment;
SELECT segments > 0 AS verified FROM omendb.columnar_verify('u_c');
SELECT keys >= (SELECT count(*) FROM u_h) AS alex_keys_cover_rows FROM omendb.alex_verify('u_c_alex');
SELECT same();
-- The same objects and catalog columns as a fresh install.
CREATE VIEW objs AS
  SELECT pg_describe_object(classid, objid, objsubid) AS d
    FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'omendb') AND deptype = 'e'
  UNION ALL
  SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
    FROM pg_attribute WHERE attrelid IN ('omendb.columnar_segment'::regclass,
         'omendb.columnar_deleted'::regclass, 'omendb.columnar_free'::regclass)
     AND attnum > 0 AND NOT attisdropped;
CREATE TEMP TABLE fresh AS SELECT regexp_split_to_table(:'fresh_objects', E'\n') AS d;
SELECT d AS only_after_upgrade FROM objs EXCEPT SELECT d FROM fresh ORDER BY 1;
SELECT d AS only_in_fresh_install FROM fresh EXCEPT SELECT d FROM objs ORDER BY 1;
SELECT count(*) > 40 AS objects_compared FROM fresh;
\c regression
DROP DATABASE omendb_upgrade;
