//! Unique alex indexes: the insert-time check and the build-time check.
//!
//! nbtree checks uniqueness under the exclusive lock of the leaf page the key
//! belongs on. An alex key's entries can span a duplicate chain of pages and
//! the page can split under a concurrent writer, so inserters of one key are
//! serialized instead by a heavyweight lock on (index, key), held from the
//! check through the insert and released right after: the next inserter then
//! sees this entry, finds its heap tuple in progress through a dirty
//! snapshot, and waits for that transaction as nbtree's inserters do. The
//! lock never waits on anything while held (no heap or transaction waits),
//! so it cannot deadlock; an ERROR releases it with the (sub)transaction.
//!
//! The lock shows in `pg_locks` as an advisory lock whose `classid` is the
//! index's OID, `objid` a 32-bit hash of the key and `objsubid` 20301 (user
//! advisory locks use 1 and 2, so they never collide with it).

use super::keys::{heap_tid, is_null_entry, KeyType};
use super::storage::PgStore;
use crate::pg::report::ConstraintError;
use alex::{Alex, Direction, Tid};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use std::ops::Bound;

/// `objsubid` of omendb's key locks ("OM").
const KEY_LOCK_CLASS: u16 = 0x4F4D;

/// How PostgreSQL asked aminsert to check (`IndexUniqueCheck`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Raise on a live duplicate; wait for one in progress.
    Yes,
    /// Speculative insertion or a deferred constraint: insert, and report a
    /// possible duplicate instead of waiting or raising.
    Partial,
    /// Deferred recheck: the entry is already there; only check.
    Existing,
}

impl Check {
    pub(super) fn of(mode: pg_sys::IndexUniqueCheck::Type) -> Option<Check> {
        match mode {
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES => Some(Check::Yes),
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_PARTIAL => Some(Check::Partial),
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_EXISTING => Some(Check::Existing),
            _ => None,
        }
    }
}

/// Whether NULLs conflict with each other (`NULLS NOT DISTINCT`).
pub(super) fn nulls_not_distinct(index: pg_sys::Relation) -> bool {
    // SAFETY: an open index has its pg_index row.
    unsafe { (*(*index).rd_index).indnullsnotdistinct }
}

/// The heavyweight lock serializing inserters of one key of one index.
struct KeyLock(pg_sys::LOCKTAG);

impl KeyLock {
    fn acquire(index: pg_sys::Relation, key: u64) -> KeyLock {
        let tag = pg_sys::LOCKTAG {
            // SAFETY: set once at backend start.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            // SAFETY: an open relation.
            locktag_field2: unsafe { (*index).rd_id }.to_u32(),
            locktag_field3: (key ^ (key >> 32)) as u32,
            locktag_field4: KEY_LOCK_CLASS,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
        };
        // SAFETY: a transaction-level lock, released below or at abort.
        unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as i32, false, false) };
        KeyLock(tag)
    }

    fn release(self) {
        // SAFETY: acquired by `acquire` in this transaction.
        unsafe { pg_sys::LockRelease(&self.0, pg_sys::ExclusiveLock as i32, false) };
    }
}

fn snapshot(kind: pg_sys::SnapshotType::Type) -> pg_sys::SnapshotData {
    // SAFETY: SnapshotData is plain data; a zeroed one with only its type
    // set is how InitDirtySnapshot makes one.
    let mut s: pg_sys::SnapshotData = unsafe { std::mem::zeroed() };
    s.snapshot_type = kind;
    s
}

/// Whether some version in the HOT chain at `tid` satisfies `snap`; with
/// `all_dead`, also whether the whole chain is dead to every transaction.
fn fetch(
    heap: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    snap: &mut pg_sys::SnapshotData,
    all_dead: Option<&mut bool>,
) -> bool {
    let mut tid = tid;
    let all_dead = all_dead.map_or(std::ptr::null_mut(), |d| d as *mut bool);
    // SAFETY: an open table; the call follows the HOT chain from `tid`.
    unsafe { pg_sys::table_index_fetch_tuple_check(heap, &mut tid, snap, all_dead) }
}

/// What the entries already under a key say about inserting another.
enum Found {
    Nothing,
    /// Partial check: a live or in-progress row has the key.
    Possible,
    /// A row with the key is being inserted or deleted by `xid`.
    Wait {
        xid: pg_sys::TransactionId,
        token: u32,
    },
    Duplicate,
}

/// Check the rows already indexed under `key` (NULL entries when
/// `is_null`) against the row at `own` being inserted.
///
/// The entries are read with a scan's pin on the data page they come from,
/// kept while their heap rows are fetched (nbtree holds its leaf page the
/// same way): VACUUM cannot remove such an entry, and so cannot free its
/// heap slot for a row with another key, before it has been checked.
fn survey(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    key: u64,
    is_null: bool,
    own: pg_sys::ItemPointerData,
    check: Check,
) -> Found {
    let ix = super::open_with(index, PgStore::for_scan(index));
    let mut dead = Vec::new();
    let found = survey_entries(&ix, index, heap, key, is_null, own, check, &mut dead);
    // Before any wait: a pin held while waiting could stall VACUUM.
    ix.store().release_pin();
    // Versions of a row updated again and again under one key pile up until
    // VACUUM; remove those dead to all as they are met (cleanup.rs).
    if dead.len() >= DEAD_VERSIONS_TO_REMOVE {
        super::cleanup::remove_dead(index, heap, &dead);
    }
    found
}

/// Dead entries of one key a unique check removes when it meets this many.
const DEAD_VERSIONS_TO_REMOVE: usize = 1;

/// The survey proper; entries found dead to all go to `dead`.
#[allow(clippy::too_many_arguments)]
fn survey_entries(
    ix: &Alex<PgStore>,
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    key: u64,
    is_null: bool,
    own: pg_sys::ItemPointerData,
    check: Check,
    dead: &mut Vec<(u64, Tid)>,
) -> Found {
    let entries = ix.range(
        Bound::Included(key),
        Bound::Included(key),
        Direction::Forward,
    );
    for entry in entries {
        let (_, tid) = entry.unwrap_or_else(|e| super::raise(index, e));
        if is_null_entry(key, tid) != is_null || same_tid(heap_tid(tid), own) {
            continue;
        }
        let mut dirty = snapshot(pg_sys::SnapshotType::SNAPSHOT_DIRTY);
        let mut all_dead = false;
        if !fetch(heap, heap_tid(tid), &mut dirty, Some(&mut all_dead)) {
            if all_dead {
                dead.push((key, tid));
            }
            continue; // no conflict
        }
        if check == Check::Partial {
            return Found::Possible;
        }
        let xid = if dirty.xmin != pg_sys::InvalidTransactionId {
            dirty.xmin
        } else {
            dirty.xmax
        };
        if xid != pg_sys::InvalidTransactionId {
            return Found::Wait {
                xid,
                token: dirty.speculativeToken,
            };
        }
        // A definite conflict, unless the row being inserted is itself dead
        // by now (CREATE INDEX CONCURRENTLY's validation inserts rows that
        // may have been deleted since): nbtree's rule.
        let mut own_snap = snapshot(pg_sys::SnapshotType::SNAPSHOT_SELF);
        if !fetch(heap, own, &mut own_snap, None) {
            return Found::Nothing;
        }
        return Found::Duplicate;
    }
    Found::Nothing
}

fn same_tid(a: pg_sys::ItemPointerData, b: pg_sys::ItemPointerData) -> bool {
    a.ip_blkid.bi_hi == b.ip_blkid.bi_hi
        && a.ip_blkid.bi_lo == b.ip_blkid.bi_lo
        && a.ip_posid == b.ip_posid
}

/// Insert (key, entry) into a unique index after checking the rows already
/// under the key. Returns whether the key is known unique (false: a
/// possible duplicate under a partial check), or the unique violation to
/// raise.
#[allow(clippy::too_many_arguments)]
pub(super) fn insert(
    ix: &mut Alex<PgStore>,
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    key: u64,
    entry: Tid,
    is_null: bool,
    check: Check,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
) -> Result<bool, ConstraintError> {
    let own = heap_tid(entry);
    loop {
        let lock = KeyLock::acquire(index, key);
        match survey(index, heap, key, is_null, own, check) {
            Found::Wait { xid, token } => {
                lock.release();
                let mut ctid = own;
                // SAFETY: waits for the other transaction (or its
                // speculative insertion) to end; may ERROR on cancel.
                unsafe {
                    if token != 0 {
                        pg_sys::SpeculativeInsertionWait(xid, token);
                    } else {
                        pg_sys::XactLockTableWait(
                            xid,
                            index,
                            &mut ctid,
                            pg_sys::XLTW_Oper::XLTW_InsertIndex,
                        );
                    }
                }
            }
            Found::Duplicate => {
                // The lock is released when the ERROR aborts the transaction.
                return Err(violation(
                    c"alex_insert",
                    index,
                    heap,
                    "duplicate key value violates unique constraint",
                    describe(index, values, isnull).map(|k| format!("Key {k} already exists.")),
                ));
            }
            found => {
                if check != Check::Existing {
                    ix.insert(key, entry)
                        .unwrap_or_else(|e| super::raise(index, e));
                }
                lock.release();
                return Ok(matches!(found, Found::Nothing));
            }
        }
    }
}

/// `Key (col)=(value)` as PostgreSQL writes it, or None when the caller may
/// not see the value (BuildIndexValueDescription's permission rule).
fn describe(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
) -> Option<String> {
    // SAFETY: one key column; the result is palloc'd or NULL.
    let s = unsafe { pg_sys::BuildIndexValueDescription(index, values, isnull) };
    // SAFETY: a NUL-terminated string when not NULL.
    (!s.is_null()).then(|| {
        unsafe { std::ffi::CStr::from_ptr(s) }
            .to_string_lossy()
            .into_owned()
    })
}

#[track_caller]
fn violation(
    function: &'static std::ffi::CStr,
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    what: &str,
    detail: Option<String>,
) -> ConstraintError {
    let name = super::relation_name(index);
    ConstraintError::new(
        function,
        PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        &format!("{what} \"{name}\""),
        detail.as_deref(),
        heap,
        &name,
    )
}

/// CREATE UNIQUE INDEX: the sorted build entries must not hold one key
/// twice among live rows (`dead` lists, sorted, the TIDs of rows the build
/// scan reported dead to everyone but old snapshots). NULLs count only
/// under NULLS NOT DISTINCT.
pub(super) fn check_build(
    index: pg_sys::Relation,
    heap: pg_sys::Relation,
    kind: KeyType,
    entries: &[(u64, Tid)],
    dead: &[Tid],
) -> Result<(), ConstraintError> {
    let nulls_conflict = nulls_not_distinct(index);
    // NULL entries share their key with the type's greatest value (int8's
    // maximum, timestamp 'infinity') and interleave with its entries by TID,
    // so the two kinds are tracked apart.
    let mut last_key: Option<u64> = None;
    let mut null_seen = false;
    for &(key, tid) in entries {
        if dead.binary_search(&tid).is_ok() {
            continue;
        }
        let is_null = is_null_entry(key, tid);
        let duplicate = if is_null {
            std::mem::replace(&mut null_seen, true) && nulls_conflict
        } else {
            std::mem::replace(&mut last_key, Some(key)) == Some(key)
        };
        if duplicate {
            let mut value = if is_null {
                pg_sys::Datum::from(0)
            } else {
                kind.describable(key)
            };
            let mut null = is_null;
            let detail = describe(index, &mut value, &mut null).map_or_else(
                || "Duplicate keys exist.".to_string(),
                |k| format!("Key {k} is duplicated."),
            );
            return Err(violation(
                c"alex_build",
                index,
                heap,
                "could not create unique index",
                Some(detail),
            ));
        }
    }
    Ok(())
}
