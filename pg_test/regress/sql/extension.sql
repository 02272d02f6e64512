-- The extension itself: install, version, build info, reserved settings,
-- schema placement, and a clean drop/recreate.
CREATE EXTENSION omendb;

SELECT omendb.version() ~ '^omendb [0-9]+\.[0-9]+\.[0-9]+ \((debug|release) build, commit ([0-9a-f]+|unknown), for PostgreSQL 15\)$' AS version_well_formed;

SELECT key FROM omendb.build_info() ORDER BY key;

-- This suite runs with shared_preload_libraries = 'omendb' and every WAL
-- record's redo checked against full-page images.
SHOW wal_consistency_checking;
SELECT value AS preloaded FROM omendb.build_info() WHERE key = 'preloaded';

-- The omendb. prefix is reserved: a misspelt setting is an error, not a no-op.
SET omendb.no_such_setting = 1;

-- Everything the extension defines lives in its own schema.
SELECT n.nspname, p.proname
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'omendb'
ORDER BY 1, 2;

-- Schema-qualified calls work with an empty search_path.
SET search_path = '';
SELECT omendb.version() IS NOT NULL AS callable_without_search_path;
RESET search_path;

-- DROP removes everything, the schema included.
DROP EXTENSION omendb;
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname = 'omendb';

-- Only a superuser may install it.
CREATE ROLE omendb_regress_user;
SET ROLE omendb_regress_user;
CREATE EXTENSION omendb;
RESET ROLE;
DROP ROLE omendb_regress_user;

CREATE EXTENSION omendb;
SELECT omendb.version() IS NOT NULL AS reinstalled;
