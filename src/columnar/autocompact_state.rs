//! What background compaction shares between processes (omendb preloaded):
//! the launcher's pid, databases asking for a visit (a VACUUM found a table
//! due, a worker left a backlog, or inserts added write-store segments;
//! the launcher visits them at once instead of at its next round), and, per
//! table, what compactions did since the server started — the statistics
//! behind `omendb.columnar_compactions`.

use crate::pg::shmem::Shared;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Tables whose statistics are kept; past that, the one compacted longest
/// ago makes room.
const TABLES: usize = 512;
/// Databases waiting for a visit; a full list means the launcher is
/// behind, and the next round visits every database anyway.
const REQUESTS: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
struct TableStats {
    database: pg_sys::Oid,
    table: pg_sys::Oid,
    last: pg_sys::TimestampTz,
    manual: i64,
    automatic: i64,
    replaced: i64,
    written: i64,
    purged: i64,
    freed: i64,
    released: i64,
}

/// Why a database asks for a visit (ordered: the lesser outranks).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Ask {
    /// Visit now (a VACUUM found a table due, a worker left a backlog).
    Now,
    /// Inserts added write-store segments: visit now unless the database
    /// is already visited every second.
    Nudge,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    database: pg_sys::Oid,
    ask: Ask,
}

const NO_REQUEST: Request = Request {
    database: pg_sys::InvalidOid,
    ask: Ask::Nudge,
};

#[repr(C)]
pub(crate) struct State {
    launcher_pid: i32,
    requests: [Request; REQUESTS],
    tables: [TableStats; TABLES],
}

pub(crate) static SHARED: Shared<State> = Shared::new(c"omendb autocompact");

/// The launcher announces itself (0 when it exits).
pub(super) fn set_launcher(pid: i32) {
    SHARED.write(|s| s.launcher_pid = pid);
}

/// Ask the launcher to visit `db` (a `Now` outranks a `Nudge`).
pub(super) fn request(db: pg_sys::Oid, ask: Ask) {
    let pid = SHARED
        .write(|s| {
            let free = s
                .requests
                .iter()
                .position(|r| r.database == pg_sys::InvalidOid);
            // Full: the launcher is behind, its next round visits all.
            if let Some(i) = s.requests.iter().position(|r| r.database == db).or(free) {
                let earlier = s.requests[i];
                let ask = if earlier.database == db {
                    ask.min(earlier.ask)
                } else {
                    ask
                };
                s.requests[i] = Request { database: db, ask };
            }
            s.launcher_pid
        })
        .unwrap_or(0);
    if pid != 0 {
        // SAFETY: looks the launcher up in the proc array; its latch lives
        // in shared memory.
        unsafe {
            let proc = pg_sys::BackendPidGetProc(pid);
            if !proc.is_null() {
                pg_sys::SetLatch(&raw mut (*proc).procLatch);
            }
        }
    }
}

/// Whether a database is waiting for a visit (the launcher's latch may
/// have been reset since it was set: waiting for a worker resets it).
pub(super) fn requested() -> bool {
    SHARED
        .read(|s| s.requests.iter().any(|r| r.database != pg_sys::InvalidOid))
        .unwrap_or(false)
}

/// The databases asked for since the last call, in order.
pub(super) fn take_requests() -> Vec<(pg_sys::Oid, Ask)> {
    SHARED
        .write(|s| {
            let out = s
                .requests
                .iter()
                .filter(|r| r.database != pg_sys::InvalidOid)
                .map(|r| (r.database, r.ask))
                .collect();
            s.requests = [NO_REQUEST; REQUESTS];
            out
        })
        .unwrap_or_default()
}

/// Count a compaction of `table` in this database.
pub(super) fn record(table: pg_sys::Oid, automatic: bool, r: &super::compact::Report) {
    // SAFETY: plain reads of this backend's globals.
    let (db, now) = unsafe { (pg_sys::MyDatabaseId, pg_sys::GetCurrentTimestamp()) };
    SHARED.write(|s| {
        let i = match s
            .tables
            .iter()
            .position(|t| t.database == db && t.table == table)
        {
            Some(i) => i,
            None => {
                let (i, _) = s
                    .tables
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, t)| {
                        if t.table == pg_sys::InvalidOid {
                            i64::MIN
                        } else {
                            t.last
                        }
                    })
                    .expect("TABLES > 0");
                s.tables[i] = TableStats {
                    database: db,
                    table,
                    last: 0,
                    manual: 0,
                    automatic: 0,
                    replaced: 0,
                    written: 0,
                    purged: 0,
                    freed: 0,
                    released: 0,
                };
                i
            }
        };
        let t = &mut s.tables[i];
        t.last = now;
        if automatic {
            t.automatic += 1;
        } else {
            t.manual += 1;
        }
        t.replaced += r.replaced;
        t.written += r.written;
        t.purged += r.purged;
        t.freed += r.blocks_freed;
        t.released += r.tail_released;
    });
}

/// Forget a dropped table's statistics.
pub(crate) fn forget(table: pg_sys::Oid) {
    // SAFETY: plain read of this backend's database.
    let db = unsafe { pg_sys::MyDatabaseId };
    SHARED.write(|s| {
        for t in s
            .tables
            .iter_mut()
            .filter(|t| t.database == db && t.table == table)
        {
            t.table = pg_sys::InvalidOid;
            t.database = pg_sys::InvalidOid;
        }
    });
}

#[pg_extern(sql = "
CREATE FUNCTION omendb.columnar_compaction_stats()
RETURNS TABLE (relid pg_catalog.oid, last_compaction pg_catalog.timestamptz, manual_compactions bigint,
               automatic_compactions bigint, segments_replaced bigint, segments_written bigint,
               rows_purged bigint, pages_freed bigint, pages_released bigint)
STRICT VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION omendb.columnar_compaction_stats() IS
    'Compactions of this database''s omen_columnar tables since the server started (omendb preloaded; no rows otherwise)';
CREATE VIEW omendb.columnar_compactions AS
    SELECT s.relid, n.nspname AS schemaname, c.relname, s.last_compaction, s.manual_compactions,
           s.automatic_compactions, s.segments_replaced, s.segments_written, s.rows_purged,
           s.pages_freed, s.pages_released
    FROM omendb.columnar_compaction_stats() s
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) s.relid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace;
COMMENT ON VIEW omendb.columnar_compactions IS
    'Compactions of omen_columnar tables since the server started, manual and background, per table';
")]
#[allow(clippy::type_complexity)]
fn columnar_compaction_stats() -> TableIterator<
    'static,
    (
        name!(relid, pg_sys::Oid),
        name!(last_compaction, Option<TimestampWithTimeZone>),
        name!(manual_compactions, i64),
        name!(automatic_compactions, i64),
        name!(segments_replaced, i64),
        name!(segments_written, i64),
        name!(rows_purged, i64),
        name!(pages_freed, i64),
        name!(pages_released, i64),
    ),
> {
    // SAFETY: plain read of this backend's database.
    let db = unsafe { pg_sys::MyDatabaseId };
    let rows: Vec<TableStats> = SHARED
        .read(|s| {
            s.tables
                .iter()
                .filter(|t| t.database == db && t.table != pg_sys::InvalidOid)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    TableIterator::new(rows.into_iter().map(|t| {
        (
            t.table,
            TimestampWithTimeZone::try_from(t.last).ok(),
            t.manual,
            t.automatic,
            t.replaced,
            t.written,
            t.purged,
            t.freed,
            t.released,
        )
    }))
}
