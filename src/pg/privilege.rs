//! Who may call omendb's functions on a relation, checked before the
//! relation is locked (so a stranger cannot queue a lock behind another
//! role's table): its owner (or a member of the owning role, or a
//! superuser); for the functions that take only AccessShareLock, also the
//! members of `pg_stat_scan_tables`, as for pgstattuple. The relation's kind
//! is checked from the syscache first, for the same reason.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// What a function does with the relation it is given.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads statistics under AccessShareLock: owner or pg_stat_scan_tables.
    Read,
    /// Takes a lock that blocks writers, or changes the relation: owner.
    Owner,
}

/// The relation a function expects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    ColumnarTable,
    AlexIndex,
}

impl Expected {
    fn hint(self) -> String {
        match self {
            Expected::ColumnarTable => "Pass a table created with USING omen_columnar.",
            Expected::AlexIndex => "Pass an index created with USING alex.",
        }
        .into()
    }
}

/// Raise 42809 unless `oid` is a relation of `kind` (read from the
/// syscache, without a lock; callers check again once they hold one).
pub fn expect_kind(oid: pg_sys::Oid, kind: Expected) {
    // SAFETY: a syscache lookup by OID, released before anything can raise.
    let found = unsafe {
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(oid),
        );
        if tup.is_null() {
            None
        } else {
            let c = pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_class;
            let r = (
                (*c).relkind as u8,
                (*c).relam,
                pgrx::name_data_to_str(&(*c).relname).to_string(),
            );
            pg_sys::ReleaseSysCache(tup);
            Some(r)
        }
    };
    let Some((relkind, relam, name)) = found else {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("relation with OID {} does not exist", oid.to_u32()),
            kind.hint(),
        );
    };
    let problem = match kind {
        Expected::ColumnarTable if relkind != pg_sys::RELKIND_RELATION => {
            Some(format!("\"{name}\" is not a table"))
        }
        // SAFETY: an AM lookup by name.
        Expected::ColumnarTable
            if relam != unsafe { pg_sys::get_table_am_oid(c"omen_columnar".as_ptr(), true) } =>
        {
            Some(format!("table \"{name}\" is not an omen_columnar table"))
        }
        Expected::AlexIndex if relkind != pg_sys::RELKIND_INDEX => {
            Some(format!("\"{name}\" is not an index"))
        }
        // SAFETY: an AM lookup by name.
        Expected::AlexIndex
            if relam != unsafe { pg_sys::get_index_am_oid(c"alex".as_ptr(), true) } =>
        {
            Some(format!("\"{name}\" is not an alex index"))
        }
        _ => None,
    };
    if let Some(what) = problem {
        crate::error::error_with_hint(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, what, kind.hint());
    }
}

/// Raise 42501 unless the current user is a superuser.
pub fn require_superuser(function: &str) {
    // SAFETY: a catalog lookup on the main thread.
    if !unsafe { pg_sys::superuser() } {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be superuser to run {function}"),
            format!("{function} affects every session of the server; ask a superuser."),
        );
    }
}

/// Raise 42501 unless the current user may run `function` on `oid`.
pub fn require(oid: pg_sys::Oid, access: Access, function: &str) {
    // SAFETY: catalog lookups by OID on the main thread.
    unsafe {
        let user = pg_sys::GetUserId();
        if pg_sys::pg_class_ownercheck(oid, user) {
            return;
        }
        let role = pg_sys::Oid::from(pg_sys::ROLE_PG_STAT_SCAN_TABLES);
        if access == Access::Read && pg_sys::has_privs_of_role(user, role) {
            return;
        }
        let kind = if pg_sys::get_rel_relkind(oid) as u8 == pg_sys::RELKIND_INDEX {
            "index"
        } else {
            "table"
        };
        let name = pg_sys::get_rel_name(oid);
        let name = if name.is_null() {
            format!("OID {}", oid.to_u32())
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        };
        let also = match access {
            Access::Read => ", a member of pg_stat_scan_tables",
            Access::Owner => "",
        };
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be owner of {kind} \"{name}\" to run {function} on it"),
            format!("Run {function} as the {kind}'s owner{also} or a superuser."),
        );
    }
}

/// Runs code as a table's owner, in a security-restricted operation with
/// its own GUC nest level (what VACUUM and amcheck do before evaluating
/// index expressions and predicates, which are the owner's code). Restored
/// on drop; after an ERROR, transaction abort restores both instead.
pub struct AsOwner {
    saved_user: pg_sys::Oid,
    saved_context: i32,
    nest: i32,
}

impl AsOwner {
    pub fn switch(table: pg_sys::Relation) -> AsOwner {
        // SAFETY: `table` is open; these are PostgreSQL's own user switches.
        unsafe {
            let mut saved_user = pg_sys::InvalidOid;
            let mut saved_context = 0;
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
            pg_sys::SetUserIdAndSecContext(
                (*(*table).rd_rel).relowner,
                saved_context | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
            let nest = pg_sys::NewGUCNestLevel();
            AsOwner {
                saved_user,
                saved_context,
                nest,
            }
        }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Unwinding from an ERROR: AbortTransaction restores both.
            return;
        }
        // SAFETY: undoing switch() in reverse order.
        unsafe {
            pg_sys::AtEOXact_GUC(false, self.nest);
            pg_sys::SetUserIdAndSecContext(self.saved_user, self.saved_context);
        }
    }
}
