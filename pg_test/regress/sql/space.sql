-- Space given back: pages that aborted writers left behind belong to no
-- one; compaction records them as free (one extent for adjacent ones) and
-- later segments reuse them; free pages at the end of the file are given
-- back by VACUUM, as heap's VACUUM truncates empty pages.
SET client_min_messages = warning;
CREATE TABLE sp (id bigint NOT NULL, v text) USING omen_columnar;
CREATE INDEX sp_id ON sp (id);
INSERT INTO sp SELECT g, md5(g::text) FROM generate_series(1, 70000) g;
SELECT pg_relation_size('sp') / 8192 AS blocks_a \gset
-- An aborted INSERT … SELECT, and an aborted COPY (which writes nothing:
-- its rows wait in memory for the commit).
BEGIN;
INSERT INTO sp SELECT g, md5(g::text) FROM generate_series(70001, 140000) g;
ROLLBACK;
BEGIN;
COPY sp (id) FROM PROGRAM 'seq 140001 200000';
ROLLBACK;
-- Aborted single-row inserts: write-store pages, chained to committed ones.
INSERT INTO sp VALUES (0, 'before');
BEGIN;
DO $$ BEGIN FOR i IN 1..400 LOOP
    INSERT INTO sp VALUES (-i, repeat('w', 100));
END LOOP; END $$;
ROLLBACK;
INSERT INTO sp VALUES (-1000, 'after');
SELECT pg_relation_size('sp') / 8192 AS blocks_ab \gset
INSERT INTO sp SELECT g, md5(g::text) FROM generate_series(300001, 370000) g;
SELECT pg_relation_size('sp') / 8192 AS blocks_c \gset
SELECT :blocks_ab > :blocks_a + 10 AS aborted_writes_took_pages;
SELECT count(*) AS free_rows_before FROM omendb.columnar_free \gset
SELECT free_pages FROM omendb.columnar_stats('sp');
-- Compaction finds them (nothing to merge or purge here): every page the
-- aborted writers took but the write-store tail.
SELECT segments_replaced, segments_written, rows_purged,
       blocks_freed BETWEEN :blocks_ab - :blocks_a - 3 AND :blocks_ab - :blocks_a - 1 AS reclaimed
FROM omendb.columnar_compact('sp');
SELECT free_pages > 10 AS has_free FROM omendb.columnar_stats('sp');
-- Found once: a second compaction has nothing to add.
SELECT blocks_freed FROM omendb.columnar_compact('sp');
-- The first compaction merged the two one-row write-store segments into
-- a one-page segment, written into a page it had just found unowned (it
-- lists free pages before it writes); once the replaced rows are pruned,
-- the write-store pages it freed join their free neighbours: two extents,
-- one on either side of that page.
VACUUM omendb.columnar_segment;
SELECT blocks_freed FROM omendb.columnar_compact('sp');
SELECT count(*) - :free_rows_before AS new_free_rows FROM omendb.columnar_free;
SELECT pg_relation_size('sp') / 8192 AS blocks_compacted \gset
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('sp');
SELECT count(*), sum(id), min(id), max(id) FROM sp;
SELECT * FROM sp WHERE id IN (0, -1000, -5) ORDER BY id;
-- A new segment of the aborted one's size fits into them: the file does
-- not grow; the write-store chain past the reused pages still reads.
INSERT INTO sp SELECT g, md5(g::text) FROM generate_series(70001, 140000) g;
SELECT pg_relation_size('sp') / 8192 = :blocks_compacted AS reused;
INSERT INTO sp VALUES (-2000, 'later');
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('sp');
SELECT count(*), sum(id) FROM sp;
SELECT * FROM sp WHERE id IN (0, -1000, -2000) ORDER BY id;

-- Truncation: the last segment's rows all deleted, compaction purges it;
-- once its catalog row is pruned its pages are reusable, the next
-- compaction leaves them unlisted, and VACUUM truncates them.
DELETE FROM sp WHERE id > 300000;
SELECT rows_purged FROM omendb.columnar_compact('sp');
VACUUM omendb.columnar_segment;
SELECT rows_purged FROM omendb.columnar_compact('sp');
SELECT pg_relation_size('sp') / 8192 AS blocks_before_vacuum \gset
VACUUM (TRUNCATE false) sp;
SELECT pg_relation_size('sp') / 8192 = :blocks_before_vacuum AS kept_without_truncate;
VACUUM sp;
SELECT pg_relation_size('sp') / 8192 AS blocks_after_vacuum \gset
SELECT :blocks_after_vacuum < :blocks_before_vacuum - 100 AS truncated,
       :blocks_after_vacuum >= :blocks_a AS kept_live_pages;
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('sp');
SELECT count(*), sum(id), max(id) FROM sp;
SET enable_seqscan = off;
SELECT id, v FROM sp WHERE id IN (5, 70001, 139999, -2000) ORDER BY id;
RESET enable_seqscan;
-- A second VACUUM has nothing to give back; new rows extend the file again.
VACUUM sp;
SELECT pg_relation_size('sp') / 8192 = :blocks_after_vacuum AS unchanged;
INSERT INTO sp SELECT g, 'again' FROM generate_series(400001, 420000) g;
SELECT segments, rows_checked, deleted_rows FROM omendb.columnar_verify('sp');
SELECT count(*), sum(id), max(id) FROM sp;
DROP TABLE sp;
