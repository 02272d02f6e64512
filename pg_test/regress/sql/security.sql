-- Ordinary roles and hostile databases: owners use omendb's functions on
-- their own tables and indexes, strangers are refused, members of
-- pg_stat_scan_tables may inspect; the extension's catalog is closed;
-- permissions, row-level security and security_barrier views hold through
-- the DataFusion scan; errors reach the client as PostgreSQL raised them
-- (this suite's server runs with RUST_BACKTRACE=1); and an install under a
-- search_path that puts a hostile schema before pg_catalog uses nothing of it.
SET client_min_messages = warning;
\set regress_db :DBNAME

CREATE ROLE omendb_owner;
CREATE ROLE omendb_stranger;
CREATE ROLE omendb_monitor IN ROLE pg_stat_scan_tables;
CREATE SCHEMA sec AUTHORIZATION omendb_owner;
GRANT USAGE ON SCHEMA sec TO omendb_stranger, omendb_monitor;

-- The owner: every function on its own objects.
SET ROLE omendb_owner;
SELECT omendb.version() IS NOT NULL AS version_callable;
SELECT count(*) > 0 AS build_info_callable FROM omendb.build_info();
CREATE TABLE sec.t (id bigint NOT NULL, grp int NOT NULL, v text) USING omen_columnar;
INSERT INTO sec.t SELECT g, g % 7, 'v' || g FROM generate_series(1, 5000) g;
CREATE INDEX t_id ON sec.t USING alex (id);
DELETE FROM sec.t WHERE id % 10 = 0;
SELECT row_count, deleted_rows FROM omendb.columnar_stats('sec.t');
SELECT count(*) AS columns FROM omendb.columnar_column_bytes('sec.t');
SELECT rows_checked FROM omendb.columnar_verify('sec.t');
SELECT keys FROM omendb.alex_stats('sec.t_id');
SELECT keys FROM omendb.alex_verify('sec.t_id');
SELECT rows_purged FROM omendb.columnar_compact('sec.t');
SELECT row_count, deleted_rows FROM omendb.columnar_stats('sec.t');
-- The extension's catalog is written only through omendb.
SELECT count(*) FROM omendb.columnar_segment;
DELETE FROM omendb.columnar_deleted;
INSERT INTO omendb.columnar_free VALUES (1, 1, 1);
SELECT nextval('omendb.columnar_storage_seq');
RESET ROLE;

-- A stranger: refused before any lock is taken, with what to do.
SET ROLE omendb_stranger;
SELECT * FROM omendb.columnar_stats('sec.t');
SELECT * FROM omendb.columnar_column_bytes('sec.t');
SELECT * FROM omendb.columnar_verify('sec.t');
SELECT * FROM omendb.columnar_compact('sec.t');
SELECT * FROM omendb.alex_stats('sec.t_id');
SELECT * FROM omendb.alex_verify('sec.t_id');
-- PostgreSQL's own permission error, unchanged, on both executors.
SELECT count(*) FROM sec.t;
SET omendb.datafusion = force;
SELECT count(*) FROM sec.t;
RESET omendb.datafusion;
RESET ROLE;

-- pg_stat_scan_tables may read statistics (AccessShareLock), not run what
-- blocks writers (verify, alex_stats: ShareLock) or compact.
SET ROLE omendb_monitor;
SELECT row_count FROM omendb.columnar_stats('sec.t');
SELECT count(*) AS columns FROM omendb.columnar_column_bytes('sec.t');
SELECT rows_checked FROM omendb.columnar_verify('sec.t');
SELECT keys FROM omendb.alex_stats('sec.t_id');
SELECT * FROM omendb.columnar_compact('sec.t');
-- The kind is checked before any lock: no ShareLock on a catalog.
SELECT * FROM omendb.columnar_stats('pg_class');
SELECT * FROM omendb.alex_stats('pg_class_oid_index');
RESET ROLE;

-- alex_verify evaluates the index's expressions as the table's owner, in a
-- security-restricted operation: the owner's function cannot act with the
-- caller's rights.
SET ROLE omendb_owner;
CREATE FUNCTION sec.whoami(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_user <> 'omendb_owner' THEN
        RAISE EXCEPTION 'index expression ran as %', current_user;
    END IF;
    RETURN $1;
END $$;
CREATE INDEX t_expr ON sec.t USING alex (sec.whoami(id));
RESET ROLE;
SELECT keys FROM omendb.alex_verify('sec.t_expr');
SELECT current_user = session_user AS user_restored;

-- Granted SELECT, the stranger reads through DataFusion.
SET ROLE omendb_owner;
GRANT SELECT ON sec.t TO omendb_stranger;
RESET ROLE;
SET ROLE omendb_stranger;
SET omendb.datafusion = force;
SELECT grp, count(*), sum(id) FROM sec.t GROUP BY grp ORDER BY grp;
RESET omendb.datafusion;
RESET ROLE;

-- Column privileges: only the granted columns.
SET ROLE omendb_owner;
REVOKE SELECT ON sec.t FROM omendb_stranger;
GRANT SELECT (id, grp) ON sec.t TO omendb_stranger;
RESET ROLE;
SET ROLE omendb_stranger;
SET omendb.datafusion = force;
SELECT count(*), sum(id) FROM sec.t;
SELECT count(v) FROM sec.t;
RESET omendb.datafusion;
RESET ROLE;

-- Row-level security: the policy's rows, in PostgreSQL's executor; force
-- names the reason.
SET ROLE omendb_owner;
GRANT SELECT ON sec.t TO omendb_stranger;
ALTER TABLE sec.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY small_ids ON sec.t FOR SELECT TO omendb_stranger USING (id <= 100);
-- The owner is not subject to the policy.
SELECT count(*) FROM sec.t;
RESET ROLE;
SET ROLE omendb_stranger;
SELECT count(*), sum(id) FROM sec.t;
SET omendb.datafusion = force;
SELECT count(*) FROM sec.t;
RESET omendb.datafusion;
RESET ROLE;

-- A security_barrier view stays in PostgreSQL, so no filter of the outer
-- query runs on rows the view hides (here the division fails on id 51).
SET ROLE omendb_owner;
ALTER TABLE sec.t DISABLE ROW LEVEL SECURITY;
CREATE VIEW sec.small WITH (security_barrier) AS
    SELECT id, v FROM sec.t WHERE id <= 9;
GRANT SELECT ON sec.small TO omendb_stranger;
REVOKE SELECT ON sec.t FROM omendb_stranger;
RESET ROLE;
SET ROLE omendb_stranger;
SELECT count(*) FROM sec.small WHERE 1000 / (id - 51) < 0;
SET omendb.datafusion = force;
SELECT count(*) FROM sec.small;
RESET omendb.datafusion;
RESET ROLE;

DROP SCHEMA sec CASCADE;
DROP ROLE omendb_owner;
DROP ROLE omendb_stranger;
DROP ROLE omendb_monitor;

-- A hostile search_path at install time: a schema that shadows the types,
-- operators and functions omendb's script names, searched before
-- pg_catalog. Every one of them raises if called.
CREATE DATABASE omendb_hostile;
\c omendb_hostile
SET client_min_messages = warning;
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE FUNCTION hostile.trap(bigint, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE OPERATOR hostile.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.trap);
CREATE OPERATOR hostile.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = hostile.trap);
CREATE OPERATOR hostile.= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = hostile.trap);
CREATE FUNCTION hostile.btint8cmp(bigint, bigint) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hostile function called'; END $$;
CREATE DOMAIN hostile.int8 AS integer;
CREATE DOMAIN hostile.int4 AS smallint;
CREATE DOMAIN hostile.text AS varchar(1);
CREATE DOMAIN hostile."char" AS integer;
CREATE DOMAIN hostile.internal AS integer;
-- A schema named omendb made beforehand by someone else is refused, not
-- adopted: its owner could replace what the extension puts there.
CREATE SCHEMA omendb;
CREATE EXTENSION omendb;
DROP SCHEMA omendb;
SET search_path = hostile, pg_catalog;
CREATE EXTENSION omendb;
-- Every operator and type of the alex operator families, every type of
-- omendb's functions and catalog columns, is PostgreSQL's own.
SELECT count(*) AS foreign_operators
FROM pg_catalog.pg_amop o
JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) o.amopopr
JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) o.amopmethod
WHERE a.amname OPERATOR(pg_catalog.=) 'alex'
  AND op.oprnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace;
SELECT count(*) AS foreign_support_functions
FROM pg_catalog.pg_amproc p
JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) p.amproc
JOIN pg_catalog.pg_opfamily fam ON fam.oid OPERATOR(pg_catalog.=) p.amprocfamily
JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) fam.opfmethod
WHERE a.amname OPERATOR(pg_catalog.=) 'alex'
  AND f.pronamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace;
SELECT count(*) AS foreign_types
FROM (
    SELECT pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]
           OPERATOR(pg_catalog.||) coalesce(p.proallargtypes, '{}'::pg_catalog.oid[])
           OPERATOR(pg_catalog.||) p.prorettype) AS t
    FROM pg_catalog.pg_proc p
    WHERE p.pronamespace OPERATOR(pg_catalog.=) 'omendb'::pg_catalog.regnamespace
    UNION ALL
    SELECT a.atttypid FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
    WHERE c.relnamespace OPERATOR(pg_catalog.=) 'omendb'::pg_catalog.regnamespace
      AND a.attnum OPERATOR(pg_catalog.>) 0
    UNION ALL
    SELECT o.opcintype FROM pg_catalog.pg_opclass o
    WHERE o.opcnamespace OPERATOR(pg_catalog.=) 'omendb'::pg_catalog.regnamespace
) types
JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) types.t
WHERE ty.typnamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace;
-- And everything works under that search_path without calling it.
CREATE TABLE public.h (id pg_catalog.int8 NOT NULL, v pg_catalog.text) USING omen_columnar;
INSERT INTO public.h SELECT g, 'x' FROM pg_catalog.generate_series(1, 3000) g;
CREATE INDEX h_id ON public.h USING alex (id);
DELETE FROM public.h WHERE id OPERATOR(pg_catalog.>) 2900;
SELECT rows_purged FROM omendb.columnar_compact('public.h');
SELECT row_count FROM omendb.columnar_stats('public.h');
SELECT rows_checked FROM omendb.columnar_verify('public.h');
SELECT keys FROM omendb.alex_verify('public.h_id');
SET omendb.datafusion = force;
SELECT pg_catalog.count(*), pg_catalog.sum(id) FROM public.h;
RESET omendb.datafusion;
SET enable_seqscan = off;
SELECT v FROM public.h WHERE id OPERATOR(pg_catalog.=) 42::pg_catalog.int8;
RESET enable_seqscan;
DROP EXTENSION omendb CASCADE;
\c :regress_db
DROP DATABASE omendb_hostile;
