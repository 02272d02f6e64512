//! PostgreSQL plumbing shared by every part of omendb.

use pgrx::pg_sys;

pub mod hooks;
pub mod pgstat;
pub mod privilege;
pub mod report;
pub mod shmem;

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

/// Run `f` in an internal subtransaction (what PL/pgSQL's exception blocks
/// use), so that what it writes carries a transaction id of its own. An
/// ERROR in `f` rolls the subtransaction back and passes on.
pub fn in_subtransaction<R>(f: impl FnOnce() -> R) -> R {
    use pgrx::PgTryBuilder;
    // SAFETY: the begin/release pairing of PostgreSQL's internal
    // subtransactions, restoring the caller's memory context and resource
    // owner afterwards as pl_exec.c does.
    unsafe {
        let cx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cx);
        let restore = || {
            pg_sys::MemoryContextSwitchTo(cx);
            pg_sys::CurrentResourceOwner = owner;
        };
        let r = PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
            .catch_others(|e| {
                restore();
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                restore();
                e.rethrow()
            })
            .execute();
        pg_sys::ReleaseCurrentSubTransaction();
        restore();
        r
    }
}
