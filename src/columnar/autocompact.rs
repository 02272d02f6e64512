//! Background compaction, when omendb is preloaded: a launcher (one per
//! server, like autovacuum's) wakes every `omendb.autocompact_naptime`,
//! lists the databases, and starts one worker per database in turn; the
//! worker compacts each omen_columnar table that is due
//! ([`super::compact::compact`]), each in its own transaction, skipping tables
//! whose lock another compaction, VACUUM or DDL holds. The launcher never
//! touches a database itself, so at most two processes run at a time.

use super::autocompact_state as state;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Seconds between rounds.
static NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(10);
static MIN_SEGMENTS: GucSetting<i32> = GucSetting::<i32>::new(64);
static DELETED_FRACTION: GucSetting<f64> = GucSetting::<f64>::new(0.1);
/// Milliseconds slept each time the cost limit is reached (0: no throttling).
static COST_DELAY: GucSetting<f64> = GucSetting::<f64>::new(2.0);
static COST_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(200);

const LAUNCHER_TYPE: &str = "omendb autocompact launcher";
const WORKER_TYPE: &str = "omendb autocompact worker";

pub(super) fn init() {
    GucRegistry::define_bool_guc(
        c"omendb.autocompact",
        c"Whether a background worker compacts omen_columnar tables (needs omendb preloaded).",
        c"Off: only omendb.columnar_compact compacts.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"omendb.autocompact_naptime",
        c"Time between rounds of background compaction.",
        c"Each round visits every database, one at a time.",
        &NAPTIME,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"omendb.autocompact_min_segments",
        c"Compact a table when at least this many of its small segments can be merged.",
        c"Small segments: write-store batches and segments under one row group.",
        &MIN_SEGMENTS,
        2,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"omendb.autocompact_deleted_fraction",
        c"Compact a table when rows deleted for every transaction reach this fraction of its rows.",
        c"The purged rows' pages are reused by later segments.",
        &DELETED_FRACTION,
        0.0,
        1.0,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"omendb.autocompact_cost_delay",
        c"Sleep of background compaction each time it has spent omendb.autocompact_cost_limit, in milliseconds.",
        c"Pages are costed as VACUUM costs them (vacuum_cost_page_hit, _miss, _dirty); 0 turns throttling off.",
        &COST_DELAY,
        0.0,
        100.0,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"omendb.autocompact_cost_limit",
        c"Cost of page accesses after which background compaction sleeps.",
        c"See omendb.autocompact_cost_delay.",
        &COST_LIMIT,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    if crate::loading::preloaded() {
        BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
            .set_type(LAUNCHER_TYPE)
            .set_library("omendb")
            .set_function("omendb_autocompact_launcher")
            .enable_shmem_access(None)
            .enable_spi_access()
            // Not on a standby: compaction writes.
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(10)))
            .load();
    }
}

/// After VACUUM of `rel`: if the table is due, ask the launcher to visit
/// this database now rather than at its next round (VACUUM's own
/// transaction may not write the catalog rows a compaction needs).
pub(super) fn after_vacuum(rel: pg_sys::Relation) {
    // SAFETY: rd_rel of an open relation.
    let temp = unsafe { (*(*rel).rd_rel).relpersistence } as u8 == pg_sys::RELPERSISTENCE_TEMP;
    if temp || !ENABLED.get() || !state::SHARED.available() {
        return;
    }
    let (min, fraction) = (MIN_SEGMENTS.get() as usize, DELETED_FRACTION.get());
    if super::compact::is_due(rel, min, fraction) {
        // SAFETY: this backend's database.
        state::request(unsafe { pg_sys::MyDatabaseId });
    }
}

fn reload_config_if_asked() {
    if BackgroundWorker::sighup_received() {
        // SAFETY: the standard SIGHUP handling of a background worker.
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

/// How often a busy database is visited (see [`Hot`]), and for how long
/// after its last request (at most a naptime).
const HOT_CADENCE: Duration = Duration::from_secs(1);
const HOT_FOR: Duration = Duration::from_secs(10);

/// Databases that asked for a visit (VACUUM found a table due, or a worker
/// found a backlog): each is visited every [`HOT_CADENCE`] for [`HOT_FOR`]
/// after its last request, so a table fed faster than the naptime is not
/// left alone for a whole naptime after one quiet round.
#[derive(Default)]
struct Hot(Vec<(pg_sys::Oid, Instant, Instant)>);

impl Hot {
    /// `db` asked at `now`: visited now, and hot for a while.
    fn asked(&mut self, db: pg_sys::Oid, now: Instant) {
        self.0.retain(|(d, _, _)| *d != db);
        self.0.push((db, now + HOT_FOR.min(naptime()), now));
    }
    /// The hot databases due for a visit at `now` (and when each is next).
    fn due(&mut self, now: Instant) -> Vec<pg_sys::Oid> {
        self.0.retain(|(_, until, _)| *until > now);
        let mut out = Vec::new();
        for (db, _, next) in self.0.iter_mut().filter(|(_, _, next)| *next <= now) {
            *next = now + HOT_CADENCE;
            out.push(*db);
        }
        out
    }
    fn next_visit(&self) -> Option<Instant> {
        self.0.iter().map(|(_, _, next)| *next).min()
    }
}

/// The launcher's main loop: a round over every database each naptime, and
/// in between, visits to the databases that asked (see [`Hot`]).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn omendb_autocompact_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: pg_database is a shared catalog.
    BackgroundWorker::connect_worker_to_spi(None, None);
    // SAFETY: this process's pid.
    state::set_launcher(unsafe { pg_sys::MyProcPid });
    let mut next_round = Instant::now() + naptime();
    let mut hot = Hot::default();
    loop {
        let wait = if state::requested() {
            Duration::from_millis(1)
        } else {
            let next = hot.next_visit().map_or(next_round, |h| h.min(next_round));
            next.saturating_duration_since(Instant::now())
        };
        if !BackgroundWorker::wait_latch(Some(wait.max(Duration::from_millis(1)))) {
            break;
        }
        reload_config_if_asked();
        let asked = state::take_requests();
        if !ENABLED.get() {
            next_round = Instant::now() + naptime();
            hot = Hot::default();
            continue;
        }
        let now = Instant::now();
        for db in asked {
            hot.asked(db, now);
        }
        let due = hot.due(now);
        let visit = if now >= next_round {
            next_round = now + naptime();
            databases()
        } else {
            due
        };
        if !visit.into_iter().all(run_worker) {
            break;
        }
    }
    state::set_launcher(0);
}

fn naptime() -> Duration {
    Duration::from_secs(NAPTIME.get().max(1) as u64)
}

/// Run `f` on every row of catalog `relid` (a struct of type `T`), in a
/// transaction of its own, after `first` returns true.
fn catalog_rows<T, R>(
    relid: pg_sys::Oid,
    first: impl FnOnce() -> bool,
    mut f: impl FnMut(&T) -> Option<R>,
) -> Vec<R> {
    let mut out = Vec::new();
    // SAFETY: a catalog heap scan inside its own transaction, as
    // autovacuum's get_database_list does; T is the catalog's row struct.
    unsafe {
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        if first() {
            let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as i32);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            loop {
                let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tup.is_null() {
                    break;
                }
                out.extend(f(&*(pg_sys::GETSTRUCT(tup) as *const T)));
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
        }
        pg_sys::PopActiveSnapshot();
        pg_sys::CommitTransactionCommand();
    }
    out
}

/// The databases that accept connections (what autovacuum visits).
fn databases() -> Vec<pg_sys::Oid> {
    catalog_rows(
        pg_sys::DatabaseRelationId,
        || true,
        |db: &pg_sys::FormData_pg_database| {
            (db.datallowconn && !db.datistemplate).then_some(db.oid)
        },
    )
}

/// Start the worker for `db` and wait for it; false when the launcher must
/// stop (SIGTERM or postmaster death).
fn run_worker(db: pg_sys::Oid) -> bool {
    // SAFETY: reading this process's pid.
    let me = unsafe { pg_sys::MyProcPid };
    let worker = BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_library("omendb")
        .set_function("omendb_autocompact_worker")
        .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
        .enable_shmem_access(None)
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_notify_pid(me)
        .load_dynamic();
    match worker {
        // All worker slots busy: try again next round.
        Err(_) => !BackgroundWorker::sigterm_received(),
        Ok(w) => {
            // Returns when the worker exits (or never started).
            let _ = w.wait_for_shutdown();
            reload_config_if_asked();
            !BackgroundWorker::sigterm_received()
        }
    }
}

// PostgreSQL's own signal handlers, as raw symbols (pgrx's bindings of
// them are guarded wrappers, not fit to be signal handlers).
unsafe extern "C-unwind" {
    fn die(signal: std::ffi::c_int);
    fn SignalHandlerForConfigReload(signal: std::ffi::c_int);
}

/// One database's round: compact every omen_columnar table that is due.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn omendb_autocompact_worker(arg: pg_sys::Datum) {
    // SAFETY: what worker_spi does. SIGTERM (shutdown, pg_terminate_backend)
    // ends the worker at its next CHECK_FOR_INTERRUPTS, mid-compaction
    // included, which aborts the compaction's transaction.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die));
        pg_sys::pqsignal(pg_sys::SIGHUP as i32, Some(SignalHandlerForConfigReload));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // Throttled as autovacuum is: buffer accesses add to VacuumCostBalance,
    // compaction's loops call vacuum_delay_point.
    // SAFETY: this process's own cost-accounting globals.
    unsafe {
        let delay = COST_DELAY.get();
        pg_sys::VacuumCostActive = delay > 0.0;
        pg_sys::VacuumCostDelay = delay;
        pg_sys::VacuumCostLimit = COST_LIMIT.get();
        pg_sys::VacuumCostBalance = 0;
    }
    let mut backlog = false;
    for table in columnar_tables() {
        pgrx::check_for_interrupts!();
        backlog |= compact_one(table);
    }
    // A table fed faster than the naptime: come back as soon as this round
    // ends, and every HOT_CADENCE for a while after (see `Hot`), so
    // segments stay bounded by what arrives in about a second.
    if backlog {
        state::request(db);
    }
}

/// The database's omen_columnar tables (none without the extension).
fn columnar_tables() -> Vec<pg_sys::Oid> {
    let am = std::cell::Cell::new(pg_sys::InvalidOid);
    catalog_rows(
        pg_sys::RelationRelationId,
        || {
            // SAFETY: catalog lookups by name, inside the scan's transaction.
            unsafe {
                am.set(pg_sys::get_table_am_oid(c"omen_columnar".as_ptr(), true));
                am.get() != pg_sys::InvalidOid
                    && pg_sys::get_extension_oid(c"omendb".as_ptr(), true) != pg_sys::InvalidOid
            }
        },
        // Other sessions' temporary tables are theirs to compact.
        |c: &pg_sys::FormData_pg_class| {
            (c.relam == am.get()
                && c.relkind as u8 == pg_sys::RELKIND_RELATION
                && c.relpersistence as u8 != pg_sys::RELPERSISTENCE_TEMP)
                .then_some(c.oid)
        },
    )
}

/// Compact `oid` in its own transaction if it is due and its lock is free.
/// An ERROR (a corrupt table, say) is logged and the worker goes on.
/// Returns whether it merged at least the due threshold of segments (a
/// backlog: the table is fed faster than the naptime).
fn compact_one(oid: pg_sys::Oid) -> bool {
    use pgrx::pg_sys::panic::CaughtError;
    // SAFETY: a transaction of this worker; the relation is locked before
    // it is opened, and opened only if it still exists.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let outcome = PgTryBuilder::new(|| {
            let lock = pg_sys::ShareUpdateExclusiveLock as i32;
            if !pg_sys::ConditionalLockRelationOid(oid, lock) {
                return Ok(None);
            }
            let Some(rel) = crate::pg::Relation::try_open(oid, pg_sys::NoLock as i32) else {
                return Ok(None);
            };
            if !super::is_columnar(rel.raw()) {
                return Ok(None);
            }
            let when = super::compact::When::Due {
                min_segments: MIN_SEGMENTS.get() as usize,
                deleted_fraction: DELETED_FRACTION.get(),
            };
            Ok(super::compact::compact(rel.raw(), when).map(|r| (rel.name(), r)))
        })
        .catch_others(|e| {
            Err(match e {
                CaughtError::PostgresError(r)
                | CaughtError::ErrorReport(r)
                | CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
            })
        })
        .execute();
        match outcome {
            Ok(done) => {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
                let backlog = done
                    .as_ref()
                    .is_some_and(|(_, r)| r.replaced >= MIN_SEGMENTS.get() as i64);
                if let Some((name, r)) = done {
                    state::record(oid, true, &r);
                    log!(
                        "omendb: automatic compaction of table \"{name}\": {} segments replaced by {}, {} rows purged, {} blocks freed, {} free blocks at the end left for VACUUM to truncate",
                        r.replaced,
                        r.written,
                        r.purged,
                        r.blocks_freed,
                        r.tail_released
                    );
                }
                backlog
            }
            Err(message) => {
                pg_sys::AbortCurrentTransaction();
                warning!(
                    "omendb: automatic compaction of the table with OID {} failed: {message}",
                    oid.to_u32()
                );
                false
            }
        }
    }
}
