//! omendb: learned indexes and columnar storage for PostgreSQL 15.
//!
//! This crate is the PostgreSQL-facing half of the project (pgrx). Algorithms
//! that do not need PostgreSQL live in `crates/` and are bound here.
//!
//! Loading rules (see `../shared/DESIGN.md`):
//! - `_PG_init` runs both when the library is preloaded
//!   (`shared_preload_libraries = 'omendb'`) and when a backend loads it on
//!   first use; features that need preloading check [`loading::require_preload`].
//! - Nothing here starts threads: `_PG_init` may run inside the postmaster.

use pgrx::prelude::*;

mod alloc;
mod cache;
mod columnar;
mod error;
mod guc;
mod hooks;
mod index;
mod info;
mod loading;
mod pg;
mod scan;

::pgrx::pg_module_magic!(name, version);

// Everything the extension creates lives in schema omendb, created first so
// hand-written SQL can name it; created by the script, it is dropped with the
// extension. Not IF NOT EXISTS: a schema someone else made beforehand would
// be adopted, and its owner could replace what the extension puts in it.
extension_sql!(
    r#"
CREATE SCHEMA omendb;
-- Every role may call omendb's functions; each checks the caller's rights on
-- the relation it is given (pg/privilege.rs). The catalog tables stay
-- closed to everyone but their owner.
GRANT USAGE ON SCHEMA omendb TO PUBLIC;
"#,
    name = "omendb_schema",
    bootstrap
);

/// Called by PostgreSQL once per process that loads the library.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    error::init();
    loading::init();
    index::init();
    columnar::init();
    cache::init();
    scan::init();
    hooks::init();
    // Last: reserving the prefix removes every omendb.* placeholder not
    // defined by then, which would drop the settings postgresql.conf gives.
    guc::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_names_the_crate_version() {
        let v = Spi::get_one::<String>("SELECT omendb.version()")
            .expect("SPI failed")
            .expect("omendb.version() returned NULL");
        assert!(
            v.starts_with(&format!("omendb {}", env!("CARGO_PKG_VERSION"))),
            "unexpected version string: {v}"
        );
    }

    #[pg_test]
    fn build_info_reports_the_server_major_version() {
        let major =
            Spi::get_one::<String>("SELECT value FROM omendb.build_info() WHERE key = 'pg_major'")
                .expect("SPI failed")
                .expect("no pg_major row");
        let server = Spi::get_one::<String>("SHOW server_version_num")
            .expect("SPI failed")
            .expect("no server_version_num");
        assert_eq!(
            major,
            (server.parse::<i32>().expect("numeric version") / 10000).to_string()
        );
    }

    #[pg_test(error = "invalid configuration parameter name \"omendb.no_such_setting\"")]
    fn omendb_guc_prefix_is_reserved() {
        // With the prefix reserved, PostgreSQL refuses to invent placeholder
        // variables under it: a typo in a setting name is an error, not a no-op.
        Spi::run("SET omendb.no_such_setting = 1").expect("SET should fail");
    }

    #[pg_test]
    fn preload_check_passes_when_preloaded() {
        // pg_test::postgresql_conf_options preloads the library.
        assert!(crate::loading::preloaded());
        crate::loading::require_preload("the test feature");
    }
}

/// Required by `cargo pgrx test`; must be at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // Background compaction off: tests see only their own compactions.
        vec![
            "shared_preload_libraries = 'omendb'",
            "omendb.autocompact = off",
        ]
    }
}
