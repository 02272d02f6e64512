//! Who may call omendb's functions on a relation: its owner (or a member of
//! the owning role, or a superuser), and for the read-only inspection
//! functions also members of `pg_stat_scan_tables`, as for pgstattuple.
//! Checked before the relation is locked, so a stranger cannot queue a lock
//! behind another role's table.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// What a function does with the relation it is given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads statistics or checks the relation: owner or pg_stat_scan_tables.
    Inspect,
    /// Changes the relation's storage: owner only.
    Maintain,
}

/// Raise 42501 unless the current user may run `function` on `oid`.
pub fn require(oid: pg_sys::Oid, access: Access, function: &str) {
    // SAFETY: catalog lookups by OID on the main thread.
    unsafe {
        if pg_sys::get_rel_relkind(oid) == 0 {
            // No such relation: the caller's open says so.
            return;
        }
        let user = pg_sys::GetUserId();
        if pg_sys::pg_class_ownercheck(oid, user) {
            return;
        }
        let role = pg_sys::Oid::from(pg_sys::ROLE_PG_STAT_SCAN_TABLES);
        if access == Access::Inspect && pg_sys::has_privs_of_role(user, role) {
            return;
        }
        let (kind, name) = describe(oid);
        let also = match access {
            Access::Inspect => ", a member of pg_stat_scan_tables",
            Access::Maintain => "",
        };
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of {kind} \"{name}\" to run {function} on it"),
            format!("Run {function} as the {kind}'s owner{also} or a superuser."),
        );
    }
}

/// ("table" or "index", its name) for a message.
unsafe fn describe(oid: pg_sys::Oid) -> (&'static str, String) {
    // SAFETY: syscache lookups; the relation exists (ownercheck passed it).
    unsafe {
        let kind = match pg_sys::get_rel_relkind(oid) as u8 {
            pg_sys::RELKIND_INDEX | pg_sys::RELKIND_PARTITIONED_INDEX => "index",
            _ => "table",
        };
        let name = pg_sys::get_rel_name(oid);
        let name = if name.is_null() {
            format!("OID {}", oid.to_u32())
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        };
        (kind, name)
    }
}
