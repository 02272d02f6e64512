//! PostgreSQL plumbing shared by every part of omendb.

use pgrx::pg_sys;

pub mod hooks;
pub mod privilege;
pub mod report;

/// The name of an open relation, for messages.
pub fn relation_name(rel: pg_sys::Relation) -> String {
    // SAFETY: `rel` is an open relation; rd_rel and its name are valid.
    unsafe { pgrx::name_data_to_str(&(*(*rel).rd_rel).relname).to_string() }
}

/// An open relation, closed (keeping its lock) when dropped, also while
/// unwinding from an ERROR.
pub struct Relation {
    rel: pg_sys::Relation,
}

impl Relation {
    /// `table_open` / `relation_open` with `lock` (NoLock when the caller's
    /// statement already holds one).
    pub fn open(oid: pg_sys::Oid, lock: i32) -> Relation {
        // SAFETY: relation_open raises an ERROR for a missing relation.
        Relation {
            rel: unsafe { pg_sys::relation_open(oid, lock) },
        }
    }

    /// `try_relation_open`: None when the relation no longer exists.
    pub fn try_open(oid: pg_sys::Oid, lock: i32) -> Option<Relation> {
        // SAFETY: try_relation_open returns NULL for a missing relation.
        let rel = unsafe { pg_sys::try_relation_open(oid, lock) };
        (!rel.is_null()).then_some(Relation { rel })
    }

    pub fn raw(&self) -> pg_sys::Relation {
        self.rel
    }

    pub fn name(&self) -> String {
        relation_name(self.rel)
    }
}

impl Drop for Relation {
    fn drop(&mut self) {
        // SAFETY: opened by `open`; the lock stays until transaction end.
        unsafe { pg_sys::relation_close(self.rel, pg_sys::NoLock as i32) }
    }
}
