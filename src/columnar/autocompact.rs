//! Background compaction, when omendb is preloaded: a launcher (one per
//! server, like autovacuum's) wakes every `omendb.autocompact_naptime`,
//! lists the databases, and starts one worker per database in turn; the
//! worker compacts each omen_columnar table that is due
//! ([`super::compact::compact`]), each in its own transaction, skipping tables
//! whose lock another compaction, VACUUM or DDL holds. The launcher never
//! touches a database itself, so at most two processes run at a time.

use super::autocompact_state::{self as state, Ask};
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
        state::request(unsafe { pg_sys::MyDatabaseId }, Ask::Now);
    }
}

thread_local! {
    /// Write-store segments this backend added since it last nudged.
    static APPENDED: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// A write-store segment was added to `rel`: after every
/// `omendb.autocompact_min_segments` of them in this backend, nudge the
/// launcher, so that a burst of single-row inserts after a quiet spell is
/// compacted in about a second rather than at the next round (with a
/// 10 s naptime, two clients left some 30,000 segments before it).
pub(super) fn after_write_store_append(rel: pg_sys::Relation) {
    if !ENABLED.get() || !state::SHARED.available() {
        return;
    }
    let n = APPENDED.get() + 1;
    if n < MIN_SEGMENTS.get() {
        APPENDED.set(n);
        return;
    }
    APPENDED.set(0);
    // SAFETY: rd_rel of an open relation; this backend's database.
    unsafe {
        if (*(*rel).rd_rel).relpersistence as u8 != pg_sys::RELPERSISTENCE_TEMP {
            state::request(pg_sys::MyDatabaseId, Ask::Nudge);
        }
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
    fn is_hot(&self, db: pg_sys::Oid, now: Instant) -> bool {
        self.0.iter().any(|(d, until, _)| *d == db && *until > now)
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
        for (db, ask) in asked {
            // A nudge of a database already visited every second waits
            // for its next visit.
            if ask == Ask::Now || !hot.is_hot(db, now) {
                hot.asked(db, now);
            }
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
    let scan = std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::new();
        // SAFETY: a catalog heap scan inside the transaction, as
        // autovacuum's get_database_list does; T is the catalog's row struct.
        unsafe {
            if first() {
                let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as i32);
                let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
                loop {
                    let tup =
                        pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                    if tup.is_null() {
                        break;
                    }
                    out.extend(f(&*(pg_sys::GETSTRUCT(tup) as *const T)));
                }
                pg_sys::table_endscan(scan);
                pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
            }
        }
        out
    });
    in_transaction(scan).unwrap_or_else(|message| {
        warning!("omendb: background compaction could not read a catalog: {message}");
        Vec::new()
    })
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
    let mut backlog = false;
    for table in columnar_tables() {
        pgrx::check_for_interrupts!();
        backlog |= compact_one(table);
    }
    // A table fed faster than the naptime: come back as soon as this round
    // ends, and every HOT_CADENCE for a while after (see `Hot`), so
    // segments stay bounded by what arrives in about a second.
    if backlog {
        state::request(db, Ask::Now);
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

/// Compact `oid` in its own transaction if it is due and its lock is free,
/// then ANALYZE it if it changed enough (see [`analyze_if_due`]).
/// An ERROR (a corrupt table, say) is logged and the worker goes on.
/// Returns whether it merged at least the due threshold of segments (a
/// backlog: the table is fed faster than the naptime).
fn compact_one(oid: pg_sys::Oid) -> bool {
    throttle();
    let outcome = in_transaction(|| {
        let lock = pg_sys::ShareUpdateExclusiveLock as i32;
        // SAFETY: inside the worker's transaction; locked before opened.
        if !unsafe { pg_sys::ConditionalLockRelationOid(oid, lock) } {
            return None;
        }
        let rel = crate::pg::Relation::try_open(oid, pg_sys::NoLock as i32)?;
        if !super::is_columnar(rel.raw()) {
            return None;
        }
        let when = super::compact::When::Due {
            min_segments: MIN_SEGMENTS.get() as usize,
            deleted_fraction: DELETED_FRACTION.get(),
        };
        super::compact::compact(rel.raw(), when).map(|r| (rel.name(), r))
    });
    match outcome {
        Ok(Some((name, r))) => {
            state::record(oid, true, &r);
            log!(
                "omendb: automatic compaction of table \"{name}\": {} segments replaced by {}, {} rows purged, {} blocks freed, {} free blocks at the end left for VACUUM to truncate",
                r.replaced,
                r.written,
                r.purged,
                r.blocks_freed,
                r.tail_released
            );
            analyze_if_due(oid);
            r.replaced >= MIN_SEGMENTS.get() as i64
        }
        Ok(None) => false,
        Err(message) => {
            warning!(
                "omendb: automatic compaction of the table with OID {} failed: {message}",
                oid.to_u32()
            );
            false
        }
    }
}

/// Throttle this worker as autovacuum is: buffer accesses add to
/// VacuumCostBalance, compaction's loops call vacuum_delay_point. Set
/// before every table, as ANALYZE turns the accounting off when it ends.
fn throttle() {
    // SAFETY: this process's own cost-accounting globals.
    unsafe {
        let delay = COST_DELAY.get();
        pg_sys::VacuumCostActive = delay > 0.0;
        pg_sys::VacuumCostDelay = delay;
        pg_sys::VacuumCostLimit = COST_LIMIT.get();
        pg_sys::VacuumCostBalance = 0;
    }
}

/// Run `f` in a transaction of this worker, with a snapshot. An ERROR
/// aborts the transaction and comes back as its message.
fn in_transaction<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> Result<R, String> {
    use pgrx::pg_sys::panic::CaughtError;
    // SAFETY: the worker is between transactions; each path ends the one
    // started here.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let outcome = PgTryBuilder::new(|| Ok(f()))
            .catch_others(|e| {
                Err(match e {
                    CaughtError::PostgresError(r)
                    | CaughtError::ErrorReport(r)
                    | CaughtError::RustPanic { ereport: r, .. } => r.message().to_string(),
                })
            })
            .execute();
        if outcome.is_ok() {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
        outcome
    }
}

// autovacuum's settings (postmaster/autovacuum.h; not in pgrx's bindings).
unsafe extern "C" {
    static autovacuum_start_daemon: bool;
    static autovacuum_anl_thresh: std::ffi::c_int;
    static autovacuum_anl_scale: f64;
}

/// ANALYZE `oid` after a compaction if it changed as much since its last
/// ANALYZE as makes autovacuum analyze a table. Autovacuum would, but it
/// skips a table whose lock a compaction holds, and a table fed without
/// pause is compacted every second: left to autovacuum, its statistics
/// went stale for minutes and key lookups were planned as scans.
fn analyze_if_due(oid: pg_sys::Oid) {
    let outcome = in_transaction(|| {
        // Never wait (for DDL, say): the launcher waits for this worker.
        // SAFETY: inside the worker's transaction; locked before opened.
        if !unsafe { pg_sys::ConditionalLockRelationOid(oid, pg_sys::AccessShareLock as i32) } {
            return None;
        }
        let rel = crate::pg::Relation::try_open(oid, pg_sys::NoLock as i32)?;
        // SAFETY: an open relation's catalog row and options.
        let name = unsafe {
            if !analyze_due(rel.raw()) {
                return None;
            }
            let class = &*(*rel.raw()).rd_rel;
            let schema = pg_sys::get_namespace_name(class.relnamespace);
            let quoted = pg_sys::quote_qualified_identifier(schema, class.relname.data.as_ptr());
            std::ffi::CStr::from_ptr(quoted)
                .to_string_lossy()
                .into_owned()
        };
        drop(rel);
        // SKIP_LOCKED: never wait for autovacuum or DDL.
        let command = format!("ANALYZE (SKIP_LOCKED) {name}");
        let text = std::ffi::CString::new(command.as_str()).ok()?;
        // SAFETY: shows the command in pg_stat_activity while it runs.
        unsafe {
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, text.as_ptr())
        };
        let done = Spi::run(&command);
        // SAFETY: as above.
        unsafe {
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null())
        };
        done.ok().map(|()| name)
    });
    match outcome {
        Ok(Some(name)) => debug1!("omendb: analyzed table {name} after its compaction"),
        Ok(None) => {}
        Err(message) => {
            // SAFETY: clears what pg_stat_activity shows for this worker.
            unsafe {
                pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null())
            };
            warning!(
                "omendb: automatic ANALYZE of the table with OID {} failed: {message}",
                oid.to_u32()
            )
        }
    }
}

/// Autovacuum's rule: rows changed since the last ANALYZE above
/// `analyze_threshold + analyze_scale_factor * reltuples`, the table's
/// reloptions before the server's settings; never with autovacuum off.
///
/// SAFETY: `rel` is open, in a transaction.
unsafe fn analyze_due(rel: pg_sys::Relation) -> bool {
    // Table AMs get heap's reloptions (StdRdOptions) in PostgreSQL 15.
    let options = (*rel).rd_options as *const pg_sys::StdRdOptions;
    let table = (!options.is_null()).then(|| (*options).autovacuum);
    if !autovacuum_start_daemon || table.is_some_and(|t| !t.enabled) {
        return false;
    }
    let threshold = table
        .map(|t| t.analyze_threshold)
        .filter(|t| *t >= 0)
        .unwrap_or(autovacuum_anl_thresh) as f64;
    let scale = table
        .map(|t| t.analyze_scale_factor)
        .filter(|s| *s >= 0.0)
        .unwrap_or(autovacuum_anl_scale);
    // Never analyzed nor vacuumed: -1, counted as empty (as autovacuum does).
    let tuples = ((*(*rel).rd_rel).reltuples as f64).max(0.0);
    let stats = pg_sys::pgstat_fetch_stat_tabentry((*rel).rd_id);
    !stats.is_null() && (*stats).changes_since_analyze as f64 > threshold + scale * tuples
}
