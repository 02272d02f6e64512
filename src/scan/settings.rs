//! The DataFusion scan's settings (all user-settable, under `omendb.`).

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Queries that translate run in DataFusion; others in PostgreSQL.
    #[name = c"on"]
    On,
    /// Every query runs in PostgreSQL's executor.
    #[name = c"off"]
    Off,
    /// A query over omen_columnar tables that does not translate is an ERROR
    /// naming the construct (for tests).
    #[name = c"force"]
    Force,
}

pub static MODE: GucSetting<Mode> = GucSetting::<Mode>::new(Mode::On);
/// MB; 0: 256 times work_mem (1 GB at PostgreSQL's default work_mem).
pub static MEMORY_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(0);
/// 0: one per CPU.
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MIN_COST: GucSetting<f64> = GucSetting::<f64>::new(1000.0);
pub static STATISTICS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static SCAN_FILTERS: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn init() {
    GucRegistry::define_enum_guc(
        c"omendb.datafusion",
        c"Whether analytic queries over omen_columnar tables run in DataFusion.",
        c"on: queries that translate exactly run in DataFusion, others in PostgreSQL; off: never; force: a query over omen_columnar tables that does not translate is an error.",
        &MODE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"omendb.datafusion_memory_limit",
        c"Memory DataFusion may use for one query (joins, aggregates, sorts).",
        c"0 means 256 times work_mem (1 GB at the default work_mem of 4 MB). Exceeding it is an ERROR: DataFusion does not spill to disk.",
        &MEMORY_LIMIT,
        0,
        i32::MAX / 2,
        GucContext::Userset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"omendb.datafusion_threads",
        c"Threads DataFusion uses for one query.",
        c"0 means one per CPU. Takes effect in a new session.",
        &THREADS,
        0,
        64,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"omendb.datafusion_min_cost",
        c"Plans PostgreSQL estimates cheaper than this stay in PostgreSQL.",
        c"Keeps index point lookups and other small queries in PostgreSQL's executor. 0 sends every query that translates to DataFusion.",
        &MIN_COST,
        0.0,
        f64::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"omendb.datafusion_statistics",
        c"Whether DataFusion plans joins with PostgreSQL's statistics.",
        c"Distinct and NULL counts from ANALYZE (pg_statistic) and PostgreSQL's estimates of the rows each table's filters pass let DataFusion estimate join sizes and pick each hash join's build side and mode, and a FROM list is joined in the order of PostgreSQL's estimates. off: table row counts only, FROM lists in their written order (to compare).",
        &STATISTICS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"omendb.datafusion_scan_filters",
        c"Whether omen_columnar scans evaluate the query's filters as they decode.",
        c"Each filter on a table runs on its own columns first, and the table's other columns are decoded only for the rows that pass. off: the filters run after the whole rows are decoded (to compare).",
        &SCAN_FILTERS,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn mode() -> Mode {
    MODE.get()
}

/// The memory cap in bytes: the setting, but never more than a third of
/// what this process can still get from the operating system (see
/// [`crate::alloc::headroom`]). DataFusion accounts memory as it grows and refuses
/// growth past the cap with an ERROR; an allocation the operating system
/// refuses would abort the backend instead (Rust cannot unwind from a
/// failed allocation), so the cap leaves room for a hash table to double
/// while its old copy is alive.
pub fn memory_limit() -> usize {
    let set = configured_memory_limit();
    crate::alloc::headroom().map_or(set, |h| set.min(h / 3))
}

/// `omendb.datafusion_memory_limit` in bytes.
pub fn configured_memory_limit() -> usize {
    let mb = MEMORY_LIMIT.get();
    if mb > 0 {
        mb as usize * 1024 * 1024
    } else {
        // SAFETY: reading a PostgreSQL GUC variable (kB) on the main thread.
        let work_mem_kb = unsafe { pgrx::pg_sys::work_mem } as usize;
        // No spilling yet: a cap near work_mem would fail ordinary analytic
        // joins, so the default is a multiple of it.
        work_mem_kb * 1024 * 256
    }
}

pub fn threads() -> usize {
    match THREADS.get() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    }
}

pub fn min_cost() -> f64 {
    MIN_COST.get()
}

pub fn statistics() -> bool {
    STATISTICS.get()
}

pub fn scan_filters() -> bool {
    SCAN_FILTERS.get()
}
