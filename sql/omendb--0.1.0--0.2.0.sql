-- omendb 0.1.0 -> 0.2.0: segments get ids that are never reused (for caches
-- of decoded segment data; first_block can repeat once pages are reused).
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
