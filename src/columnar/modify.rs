//! DELETE, UPDATE (delete + insert) and row locks (SELECT FOR UPDATE/SHARE).
//!
//! A deletion is a row in `omendb.columnar_deleted`; its primary key on
//! (storage, row) makes a second deleter conflict. Row locks are heavyweight
//! tuple locks held to the end of the transaction; a deleter takes the
//! strongest tuple lock just while it checks and records its deletion, so it
//! waits for FOR UPDATE/SHARE holders, and lockers wait for a deleter that is
//! still in progress.
//!
//! Differences from heap (documented in the README): a row updated by a
//! transaction that committed after ours started raises a serialization
//! failure at every isolation level (heap under READ COMMITTED would follow
//! the update chain; segments have no chains); each locked row takes one
//! lock-table entry until commit.

use super::catalog::{self, Deletion};
use super::fetch::Fetcher;
use super::{pending, relation_name, storage, tid_to_row};
use pgrx::pg_sys;
use pgrx::prelude::*;

fn serialization_failure(rel: pg_sys::Relation) -> ! {
    crate::error::error_with_hint(
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!(
            "could not serialize access due to concurrent update of a row of omen_columnar table \"{}\"",
            relation_name(rel)
        ),
        "Retry the transaction. omen_columnar rows have no update chains to follow.".into(),
    )
}

fn row_of(rel: pg_sys::Relation, tid: pg_sys::ItemPointer) -> (u64, u64) {
    // SAFETY: valid TID pointer.
    let row = tid_to_row(unsafe { &*tid });
    match (row, storage::meta(rel)) {
        (Some(r), Some(m)) => (m.storage_id, r),
        _ => crate::error::error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "omen_columnar table \"{}\" has no row at this TID",
                relation_name(rel)
            ),
        ),
    }
}

/// How to wait for a conflicting transaction or lock holder.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Block,
    Skip,
    Error,
}

fn cannot_lock(rel: pg_sys::Relation) -> ! {
    crate::error::error(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!(
            "could not obtain lock on row in relation \"{}\"",
            relation_name(rel)
        ),
    )
}

/// Take tuple lock `mode` on `tid`; false if it is busy and we may not wait.
fn lock_tuple(rel: pg_sys::Relation, tid: pg_sys::ItemPointer, mode: u32, wait: Wait) -> bool {
    // SAFETY: lmgr tuple locks on an open relation.
    unsafe {
        match wait {
            Wait::Block => {
                pg_sys::LockTuple(rel, tid, mode as i32);
                true
            }
            Wait::Skip => pg_sys::ConditionalLockTuple(rel, tid, mode as i32),
            Wait::Error => pg_sys::ConditionalLockTuple(rel, tid, mode as i32) || cannot_lock(rel),
        }
    }
}

fn unlock_tuple(rel: pg_sys::Relation, tid: pg_sys::ItemPointer, mode: u32) {
    // SAFETY: releasing a tuple lock we hold.
    unsafe { pg_sys::UnlockTuple(rel, tid, mode as i32) };
}

enum Check {
    Free,
    Done(pg_sys::TM_Result::Type),
}

/// With the tuple lock `mode` held, wait out an in-progress deleter of the
/// row and report an existing deletion. Returns with the lock held iff Free.
fn check_deletion(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    storage: u64,
    row: u64,
    mode: u32,
    wait: Wait,
    tmfd: *mut pg_sys::TM_FailureData,
) -> Check {
    loop {
        let Some(Deletion {
            xmin,
            cmin,
            by_update,
        }) = catalog::deletion_of(storage, row)
        else {
            return Check::Free;
        };
        // SAFETY: transaction-status lookups; tmfd is the caller's.
        unsafe {
            if pg_sys::TransactionIdIsCurrentTransactionId(xmin) {
                unlock_tuple(rel, tid, mode);
                (*tmfd).ctid = *tid;
                (*tmfd).xmax = xmin;
                (*tmfd).cmax = cmin;
                return Check::Done(pg_sys::TM_Result::TM_SelfModified);
            }
            if pg_sys::TransactionIdIsInProgress(xmin) {
                unlock_tuple(rel, tid, mode);
                match wait {
                    Wait::Block => {
                        pg_sys::XactLockTableWait(xmin, rel, tid, pg_sys::XLTW_Oper::XLTW_Delete)
                    }
                    Wait::Skip => return Check::Done(pg_sys::TM_Result::TM_WouldBlock),
                    Wait::Error => cannot_lock(rel),
                }
                lock_tuple(rel, tid, mode, Wait::Block);
                continue;
            }
            unlock_tuple(rel, tid, mode);
            if by_update {
                serialization_failure(rel);
            }
            (*tmfd).ctid = *tid;
            (*tmfd).xmax = xmin;
            (*tmfd).cmax = pg_sys::InvalidCommandId;
            return Check::Done(pg_sys::TM_Result::TM_Deleted);
        }
    }
}

fn delete_row(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    cid: pg_sys::CommandId,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    by_update: bool,
) -> pg_sys::TM_Result::Type {
    let (storage, row) = row_of(rel, tid);
    let mode = pg_sys::AccessExclusiveLock;
    let wait = if wait { Wait::Block } else { Wait::Skip };
    if !lock_tuple(rel, tid, mode, wait) {
        return pg_sys::TM_Result::TM_WouldBlock;
    }
    if let Check::Done(r) = check_deletion(rel, tid, storage, row, mode, wait, tmfd) {
        return r;
    }
    catalog::insert_deletion(storage, row, by_update, cid);
    unlock_tuple(rel, tid, mode);
    pg_sys::TM_Result::TM_Ok
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_delete(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    _changing_part: bool,
) -> pg_sys::TM_Result::Type {
    let r = delete_row(rel, tid, cid, wait, tmfd, false);
    if r == pg_sys::TM_Result::TM_Ok {
        crate::pg::pgstat::count_delete(rel);
    }
    r
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_update(
    rel: pg_sys::Relation,
    otid: pg_sys::ItemPointer,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    lockmode: *mut pg_sys::LockTupleMode::Type,
    update_indexes: *mut bool,
) -> pg_sys::TM_Result::Type {
    let r = delete_row(rel, otid, cid, wait, tmfd, true);
    if r != pg_sys::TM_Result::TM_Ok {
        return r;
    }
    pending::insert(rel, &[slot], cid);
    crate::pg::pgstat::count_update(rel);
    // SAFETY: out-parameters of the executor.
    unsafe {
        *lockmode = pg_sys::LockTupleMode::LockTupleExclusive;
        *update_indexes = true;
    }
    pg_sys::TM_Result::TM_Ok
}

#[pg_guard]
pub unsafe extern "C-unwind" fn tuple_lock(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    _snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    mode: pg_sys::LockTupleMode::Type,
    wait_policy: pg_sys::LockWaitPolicy::Type,
    _flags: u8,
    tmfd: *mut pg_sys::TM_FailureData,
) -> pg_sys::TM_Result::Type {
    let (storage, row) = row_of(rel, tid);
    // Heap's tuple-lock conflict table, expressed in lmgr modes.
    let lmode = match mode {
        pg_sys::LockTupleMode::LockTupleKeyShare => pg_sys::AccessShareLock,
        pg_sys::LockTupleMode::LockTupleShare => pg_sys::RowShareLock,
        pg_sys::LockTupleMode::LockTupleNoKeyExclusive => pg_sys::ExclusiveLock,
        _ => pg_sys::AccessExclusiveLock,
    };
    let wait = match wait_policy {
        pg_sys::LockWaitPolicy::LockWaitSkip => Wait::Skip,
        pg_sys::LockWaitPolicy::LockWaitError => Wait::Error,
        _ => Wait::Block,
    };
    if !lock_tuple(rel, tid, lmode, wait) {
        return pg_sys::TM_Result::TM_WouldBlock;
    }
    if let Check::Done(r) = check_deletion(rel, tid, storage, row, lmode, wait, tmfd) {
        return r;
    }
    // The lock stays until the transaction ends. Return the row's values.
    let mut f = Fetcher::new(rel);
    // SAFETY: SnapshotAny: the row exists and is not deleted (checked above).
    let found = f.fetch(row, &raw mut pg_sys::SnapshotAnyData, slot);
    if !found {
        unlock_tuple(rel, tid, lmode);
        // SAFETY: the executor's failure data.
        unsafe {
            (*tmfd).ctid = *tid;
            (*tmfd).xmax = pg_sys::InvalidTransactionId;
            (*tmfd).cmax = pg_sys::InvalidCommandId;
        }
        return pg_sys::TM_Result::TM_Deleted;
    }
    // SAFETY: materialize before the fetcher's memory goes away.
    unsafe {
        (*slot).tts_tid = *tid;
        pg_sys::ExecMaterializeSlot(slot);
    }
    pg_sys::TM_Result::TM_Ok
}
