//! `omendb.version()` and `omendb.build_info()`: what is installed, and how it
//! was built, for bug reports and for tests that must know the build.

use pgrx::prelude::*;

const GIT_COMMIT: &str = match option_env!("OMENDB_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};
const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

fn pg_major() -> u32 {
    pgrx::pg_sys::PG_VERSION_NUM / 10000
}

#[pg_schema]
mod omendb {
    use super::{pg_major, GIT_COMMIT, PROFILE};
    use pgrx::prelude::*;

    /// One line: version, build profile, commit, PostgreSQL major version.
    // Hand-written SQL: every type is schema-qualified (pgrx writes `TEXT`).
    #[pg_extern(sql = "
CREATE FUNCTION omendb.version() RETURNS pg_catalog.text
STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.version() IS 'omendb version, build profile, commit and PostgreSQL major version';
")]
    fn version() -> String {
        format!(
            "omendb {} ({} build, commit {}, for PostgreSQL {})",
            env!("CARGO_PKG_VERSION"),
            PROFILE,
            GIT_COMMIT,
            pg_major()
        )
    }

    /// Key/value facts about this build and how this backend loaded it.
    #[pg_extern(sql = "
CREATE FUNCTION omendb.build_info() RETURNS TABLE (key pg_catalog.text, value pg_catalog.text)
STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.build_info() IS 'Facts about this omendb build and how this backend loaded it';
")]
    fn build_info() -> TableIterator<'static, (name!(key, String), name!(value, String))> {
        let rows = vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("git_commit", GIT_COMMIT.to_string()),
            ("profile", PROFILE.to_string()),
            ("pg_major", pg_major().to_string()),
            ("rustc", env!("OMENDB_RUSTC_VERSION").to_string()),
            ("preloaded", crate::loading::preloaded().to_string()),
        ];
        TableIterator::new(rows.into_iter().map(|(k, v)| (k.to_string(), v)))
    }
}
