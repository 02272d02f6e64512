//! The `OmenDataFusion` custom scan node at execution: translate the stored
//! query with the statement's parameters, load the tables on the main
//! thread, run the DataFusion plan on its threads and turn its batches into
//! tuples.

use std::ffi::CString;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{displayable, ExecutionPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::noted::{Estimates, Noted};
use super::source::{OmenScanExec, OmenTable, Wanted};
use super::translate::{Translator, Unsupported};
use super::values::OutColumn;
use super::{dynamic, functions, load, runtime, settings};

/// A translated, optimized and physically planned query.
pub struct Planned {
    pub physical: Arc<dyn ExecutionPlan>,
    /// The types the output columns compute (char(n) padding, numeric scale).
    pub outputs: Vec<super::types::Pg>,
    pub ctx: SessionContext,
    /// The memory cap given to DataFusion, in bytes (for the error that
    /// names it: the headroom it was taken from moves).
    pub memory_cap: usize,
}

/// A DataFusion session with the backend's settings. `dynamic_filters`:
/// hash joins and top-k sorts pass filters down to the scans (see
/// `source::Dynamic`); aggregates never do (DataFusion 52 derives theirs
/// from only some of a query's aggregates, unsound row by row).
fn session(dynamic_filters: bool, memory_cap: usize) -> SessionContext {
    let (_, threads) = runtime::get();
    let mut config = SessionConfig::new()
        .with_target_partitions(*threads)
        .with_batch_size(8192)
        .with_information_schema(false);
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.enable_dynamic_filter_pushdown = dynamic_filters;
    optimizer.enable_join_dynamic_filter_pushdown = dynamic_filters;
    optimizer.enable_topk_dynamic_filter_pushdown = dynamic_filters;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    // A join's filter lists up to 4,096 build-side keys (1 MB) as an IN
    // list, a hash set of native values, instead of probing the join's
    // hash table (DataFusion's default: 150): TPC-H Q19's 485 part keys
    // and Q21's supplier keys filter lineitem in half the time.
    optimizer.hash_join_inlist_pushdown_max_distinct_values = 4096;
    optimizer.hash_join_inlist_pushdown_max_size = 1 << 20;
    // A join collects its build side once (instead of partitioning both
    // sides) up to 16K estimated rows, not DataFusion's 128K: with
    // PostgreSQL's estimates, TPC-H Q04 and Q10 collected 57K orders rows
    // and ran 1.25-1.3x slower than partitioned. (Also with
    // omendb.datafusion_statistics off, so that it compares estimates only.)
    optimizer.hash_join_single_partition_threshold_rows = 16384;
    let rt = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_cap, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .expect("runtime env without disk manager");
    let ctx = SessionContext::new_with_config_rt(config, rt);
    ctx.add_optimizer_rule(Arc::new(super::outer_join::StrictOuterJoin));
    ctx.add_optimizer_rule(Arc::new(super::semi_join::SemiJoinFirst));
    // PostgreSQL's estimates of the scans' filtered rows, in place before
    // DataFusion picks each join's build side and mode.
    let state = ctx.state();
    let mut rules = state.physical_optimizers().to_vec();
    let at = rules
        .iter()
        .position(|r| r.name() == "join_selection")
        .unwrap_or(0);
    rules.insert(at, Arc::new(super::filter_estimates::ScanEstimates));
    SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_physical_optimizer_rules(rules)
            .build(),
    )
}

/// Translate `query` (a copy is made) and plan it. With `snapshot`, load
/// every table's data first (execution); without, plan only (planning and
/// EXPLAIN). `stmt` is PostgreSQL's plan of the query: partitioned tables
/// read the leaf partitions it kept. `estimates`: PostgreSQL's estimated
/// rows of the base tables after their filters.
pub unsafe fn plan(
    query: *mut pg_sys::Query,
    stmt: *mut pg_sys::PlannedStmt,
    params: pg_sys::ParamListInfo,
    snapshot: Option<pg_sys::Snapshot>,
    estimates: &[Noted],
) -> Result<Planned, Unsupported> {
    let (_, threads) = runtime::get();
    // SAFETY: a Query node; translation folds it in place, so a copy.
    let q = unsafe { pg_sys::copyObjectImpl(query as *const _) as *mut pg_sys::Query };
    // SAFETY: a finished plan.
    let leaves = unsafe { super::partitioned::leaves_in_plan(stmt) };
    let mut t = Translator::new(params, snapshot.is_none(), *threads, leaves);
    if settings::statistics() {
        // SAFETY: the copy of the query, translated below.
        t.estimates = unsafe { Estimates::new(estimates.to_vec(), q) };
    }
    let (logical, outputs) = unsafe { t.query(q, &[], false)? };
    let memory_cap = settings::memory_limit();
    let mut ctx = session(true, memory_cap);
    let state = ctx.state();
    let optimized = state.optimize(&logical)?;
    debug2!(
        "omendb: DataFusion logical plan:\n{}",
        optimized.display_indent()
    );
    if let Some(snap) = snapshot {
        for (table, wanted) in wanted_by_table(&optimized, &t.tables) {
            let loaded = load::load(&table, snap, &wanted);
            *table.loaded.lock().expect("not poisoned") = Some(Arc::new(loaded));
        }
    }
    let mut physical = runtime::wait(state.create_physical_plan(&optimized))?;
    if dynamic::unique_names(&physical) {
        physical = dynamic::collect_left_filters_only(physical)?;
        physical = keep_useful_dynamic_filters(physical, false)?;
    } else {
        // DataFusion routes pushed-down filters by column name: with two
        // columns of one name in a node, a filter could reach the wrong one.
        ctx = session(false, memory_cap);
        physical = runtime::wait(ctx.state().create_physical_plan(&optimized))?;
    }
    Ok(Planned {
        physical,
        outputs,
        ctx,
        memory_cap,
    })
}

/// Scans keep their dynamic filters only where a dropped row saves more
/// than the filter costs: where a FilterExec or an aggregate takes their
/// rows, or where they feed a hash join's build side (a smaller build side makes that
/// join's own dynamic filter sharper: TPC-H Q21's nation -> supplier ->
/// lineitem chain), through repartitioning, projection and batching.
/// Where rows go straight into a join's probe, the filter would repeat the
/// join's own probe (measured: TPC-H Q08, Q09 15-25% slower).
fn keep_useful_dynamic_filters(
    plan: Arc<dyn ExecutionPlan>,
    keep: bool,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_plan::joins::HashJoinExec;
    if let Some(scan) = plan.as_any().downcast_ref::<OmenScanExec>() {
        return Ok(match scan.without_dynamic() {
            Some(plain) if !keep => plain,
            _ => plan,
        });
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let is_join = plan.as_any().downcast_ref::<HashJoinExec>().is_some();
    let keep_child = |i: usize| match plan.name() {
        "FilterExec" => true,
        _ if dynamic::is_grouping(plan.as_ref()) => true,
        n if dynamic::PASS_THROUGH.contains(&n) => keep,
        _ => is_join && i == 0,
    };
    let mut changed = false;
    let mut next = Vec::with_capacity(children.len());
    for (i, c) in children.into_iter().enumerate() {
        let n = keep_useful_dynamic_filters(c.clone(), keep_child(i))?;
        changed |= !Arc::ptr_eq(&n, &c);
        next.push(n);
    }
    if changed {
        plan.with_new_children(next)
    } else {
        Ok(plan)
    }
}

/// For each table: the union of the columns its scans read, and the prune
/// filters (only when it is scanned once).
fn wanted_by_table(plan: &LogicalPlan, tables: &[Arc<OmenTable>]) -> Vec<(Arc<OmenTable>, Wanted)> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found: Vec<(Arc<OmenTable>, Wanted, usize)> = Vec::new();
    let mut visit = |p: &LogicalPlan| -> datafusion::common::Result<TreeNodeRecursion> {
        if let LogicalPlan::TableScan(s) = p {
            let src = datafusion::datasource::source_as_provider(&s.source)?;
            if let Some(t) = src.as_any().downcast_ref::<OmenTable>() {
                let table = tables.iter().find(|x| std::ptr::eq(x.as_ref(), t)).cloned();
                if let Some(table) = table {
                    let cols: Vec<usize> = match &s.projection {
                        Some(p) => p.iter().map(|&i| table.columns[i].index).collect(),
                        None => table.columns.iter().map(|c| c.index).collect(),
                    };
                    let filters: Vec<_> = s
                        .filters
                        .iter()
                        .filter_map(|f| table.prune_filter(f))
                        .collect();
                    match found.iter_mut().find(|(x, _, _)| Arc::ptr_eq(x, &table)) {
                        Some((_, w, n)) => {
                            w.columns.extend(cols);
                            w.filters.clear();
                            *n += 1;
                        }
                        None => found.push((
                            table,
                            Wanted {
                                columns: cols,
                                filters,
                            },
                            1,
                        )),
                    }
                }
            }
        }
        // apply_with_subqueries visits subquery plans inside expressions too.
        Ok(TreeNodeRecursion::Continue)
    };
    let _ = plan.apply_with_subqueries(&mut visit);
    found
        .into_iter()
        .map(|(t, mut w, _)| {
            w.columns.sort_unstable();
            w.columns.dedup();
            (t, w)
        })
        .collect()
}

/// Raise the ERROR PostgreSQL would for a failed DataFusion execution
/// (`memory_cap`: what [`plan`] gave it).
pub fn raise(e: DataFusionError, memory_cap: usize) -> ! {
    if let Some(pg) = functions::find_pg_error(&e) {
        let code = match pg.sqlstate {
            functions::OUT_OF_RANGE => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            functions::DIVISION_BY_ZERO => PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO,
            functions::DATETIME_OUT_OF_RANGE => PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            "XX001" => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            "0A000" => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            _ => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        };
        crate::error::error(code, pg.message.clone());
    }
    let root = e.find_root();
    if matches!(root, DataFusionError::ResourcesExhausted(_)) {
        debug1!("omendb: DataFusion: {root}");
        let (cap, set) = (memory_cap, settings::configured_memory_limit());
        let mb = |b: usize| b / (1024 * 1024);
        let (message, hint) = if cap < set {
            (
                format!(
                    "omendb's DataFusion scan needs more memory than the {} MB this backend can spare (a third of what the operating system can still give it; omendb.datafusion_memory_limit would allow {} MB)",
                    mb(cap),
                    mb(set)
                ),
                "The server is short of memory: run the query when less is in use, or set omendb.datafusion = off for it.",
            )
        } else {
            (
                format!(
                    "omendb's DataFusion scan needs more memory than omendb.datafusion_memory_limit ({} MB) allows",
                    mb(cap)
                ),
                "Raise omendb.datafusion_memory_limit, or set omendb.datafusion = off for this query.",
            )
        };
        crate::error::error_with_hint(PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY, message, hint.into());
    }
    crate::error::error(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("omendb's DataFusion scan failed: {e}"),
    )
}

/// Per-node executor state (Rust side).
pub struct ExecState {
    query: *mut pg_sys::Query,
    /// PostgreSQL's estimates kept in the plan (`planner::stored_estimates`).
    estimates: Vec<Noted>,
    planned: Option<Planned>,
    stream: Option<SendableRecordBatchStream>,
    batch: Option<(RecordBatch, Vec<OutColumn>)>,
    row: usize,
    /// Output column types (oid, typmod) from the plan's target list.
    types: Vec<(pg_sys::Oid, i32)>,
    /// Memory for by-reference result values; a child of the query's
    /// context, so deleted with it (never by us).
    row_cx: pg_sys::MemoryContext,
    rows_since_reset: u32,
    done: bool,
}

#[repr(C)]
pub struct NodeState {
    css: pg_sys::CustomScanState,
    state: *mut ExecState,
}

pub static mut EXEC_METHODS: pg_sys::CustomExecMethods = pg_sys::CustomExecMethods {
    CustomName: c"OmenDataFusion".as_ptr(),
    BeginCustomScan: Some(begin),
    ExecCustomScan: Some(exec),
    EndCustomScan: Some(end),
    ReScanCustomScan: Some(rescan),
    MarkPosCustomScan: None,
    RestrPosCustomScan: None,
    EstimateDSMCustomScan: None,
    InitializeDSMCustomScan: None,
    ReInitializeDSMCustomScan: None,
    InitializeWorkerCustomScan: None,
    ShutdownCustomScan: None,
    ExplainCustomScan: Some(explain),
};

#[pg_guard]
pub unsafe extern "C-unwind" fn create_state(cscan: *mut pg_sys::CustomScan) -> *mut pg_sys::Node {
    // SAFETY: palloc0 of our node; the executor fills in the rest.
    unsafe {
        let n = pg_sys::palloc0(std::mem::size_of::<NodeState>()) as *mut NodeState;
        (*n).css.ss.ps.type_ = pg_sys::NodeTag::T_CustomScanState;
        (*n).css.methods = &raw const EXEC_METHODS;
        let _ = cscan;
        n as *mut pg_sys::Node
    }
}

fn state<'a>(node: *mut pg_sys::CustomScanState) -> &'a mut ExecState {
    // SAFETY: our node, begun by `begin`.
    unsafe { &mut *(*(node as *mut NodeState)).state }
}

/// Drops the Rust state when the query's memory goes (also after an ERROR,
/// when EndCustomScan is not called).
#[pg_guard]
unsafe extern "C-unwind" fn free_state(arg: *mut std::ffi::c_void) {
    let n = arg as *mut NodeState;
    // SAFETY: the state pointer is set once in `begin` and cleared here.
    unsafe {
        if !(*n).state.is_null() {
            drop(Box::from_raw((*n).state));
            (*n).state = std::ptr::null_mut();
            // After the end of the scan or an ERROR alike.
            crate::alloc::release_free_memory();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn begin(
    node: *mut pg_sys::CustomScanState,
    estate: *mut pg_sys::EState,
    eflags: i32,
) {
    // SAFETY: an initialised CustomScanState of our plan.
    unsafe {
        let cscan = (*node).ss.ps.plan as *mut pg_sys::CustomScan;
        let private = super::expr::list::<pg_sys::Node>((*cscan).custom_private);
        let query = private[0] as *mut pg_sys::Query;
        let estimates = super::planner::stored_estimates((*cscan).custom_private);
        let mut types = Vec::new();
        for tle in super::expr::list::<pg_sys::TargetEntry>((*cscan).scan.plan.targetlist) {
            let e = (*tle).expr as *mut pg_sys::Node;
            types.push((pg_sys::exprType(e), pg_sys::exprTypmod(e)));
        }
        let st = Box::new(ExecState {
            query,
            estimates: estimates.clone(),
            planned: None,
            stream: None,
            batch: None,
            row: 0,
            types,
            row_cx: pg_sys::AllocSetContextCreateExtended(
                (*estate).es_query_cxt,
                c"OmenDataFusion rows".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            ),
            rows_since_reset: 0,
            done: false,
        });
        let n = node as *mut NodeState;
        (*n).state = Box::into_raw(st);
        let cb = pg_sys::MemoryContextAlloc(
            (*estate).es_query_cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(free_state);
        (*cb).arg = n as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback((*estate).es_query_cxt, cb);
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
            let planned = plan(
                query,
                (*estate).es_plannedstmt,
                (*estate).es_param_list_info,
                None,
                &estimates,
            )
            .unwrap_or_else(|u| {
                crate::error::error(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("omendb DataFusion scan: {}", u.0),
                )
            });
            state(node).planned = Some(planned);
        }
    }
}

unsafe fn start(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node during execution.
    unsafe {
        let estate = (*node).ss.ps.state;
        let st = state(node);
        let planned = plan(
            st.query,
            (*estate).es_plannedstmt,
            (*estate).es_param_list_info,
            Some((*estate).es_snapshot),
            &st.estimates,
        )
        .unwrap_or_else(|u| {
            crate::error::error(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "omendb DataFusion scan could not plan at execution: {}",
                    u.0
                ),
            )
        });
        let (rt, _) = runtime::get();
        let _enter = rt.enter();
        let task = planned.ctx.task_ctx();
        let stream = datafusion::physical_plan::execute_stream(planned.physical.clone(), task)
            .unwrap_or_else(|e| raise(e, planned.memory_cap));
        st.planned = Some(planned);
        st.stream = Some(stream);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn exec(
    node: *mut pg_sys::CustomScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: our node; the scan slot's descriptor matches the target list.
    unsafe {
        let slot = (*node).ss.ss_ScanTupleSlot;
        if state(node).done {
            return pg_sys::ExecClearTuple(slot);
        }
        if state(node).stream.is_none() {
            start(node);
        }
        let st = state(node);
        loop {
            if let Some((batch, cols)) = &st.batch {
                if st.row < batch.num_rows() {
                    let i = st.row;
                    st.row += 1;
                    st.rows_since_reset += 1;
                    if st.rows_since_reset >= 256 {
                        st.rows_since_reset = 0;
                        pg_sys::MemoryContextReset(st.row_cx);
                    }
                    pg_sys::ExecClearTuple(slot);
                    let values = (*slot).tts_values;
                    let nulls = (*slot).tts_isnull;
                    let old = pg_sys::MemoryContextSwitchTo(st.row_cx);
                    {
                        for (k, c) in cols.iter().enumerate() {
                            match c.datum(i) {
                                Some(d) => {
                                    *values.add(k) = d;
                                    *nulls.add(k) = false;
                                }
                                None => {
                                    *values.add(k) = pg_sys::Datum::from(0usize);
                                    *nulls.add(k) = true;
                                }
                            }
                        }
                    }
                    pg_sys::MemoryContextSwitchTo(old);
                    return pg_sys::ExecStoreVirtualTuple(slot);
                }
            }
            let stream = st.stream.as_mut().expect("started");
            match runtime::wait(stream.next()) {
                None => {
                    st.batch = None;
                    st.done = true;
                    return pg_sys::ExecClearTuple(slot);
                }
                Some(Err(e)) => raise(e, st.planned.as_ref().expect("planned").memory_cap),
                Some(Ok(b)) => {
                    let mut cols = Vec::with_capacity(b.num_columns());
                    let outputs = &st.planned.as_ref().expect("planned").outputs;
                    for (k, a) in b.columns().iter().enumerate() {
                        let (oid, _) = st.types[k];
                        cols.push(OutColumn::new(a, oid, outputs[k]).unwrap_or_else(|m| {
                            crate::error::error(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, m)
                        }));
                    }
                    st.batch = Some((b, cols));
                    st.row = 0;
                }
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end(node: *mut pg_sys::CustomScanState) {
    // SAFETY: our node; the state is dropped once (here or by the callback).
    unsafe { free_state(node as *mut std::ffi::c_void) }
}

#[pg_guard]
unsafe extern "C-unwind" fn rescan(node: *mut pg_sys::CustomScanState) {
    let st = state(node);
    st.stream = None;
    st.batch = None;
    st.planned = None;
    st.done = false;
}

#[pg_guard]
unsafe extern "C-unwind" fn explain(
    node: *mut pg_sys::CustomScanState,
    _ancestors: *mut pg_sys::List,
    es: *mut pg_sys::ExplainState,
) {
    let st = state(node);
    // SAFETY: the ExplainState of this EXPLAIN.
    unsafe {
        let Some(p) = &st.planned else { return };
        // EXPLAIN ANALYZE: with DataFusion's metrics of this execution.
        let text = if (*es).analyze {
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                p.physical.as_ref(),
            )
            .indent(false)
            .to_string()
        } else {
            displayable(p.physical.as_ref()).indent(false).to_string()
        };
        let text = text.trim_end().replace('\0', "");
        if (*es).format == pg_sys::ExplainFormat::EXPLAIN_FORMAT_TEXT {
            // One line per DataFusion operator, indented under this node.
            for line in std::iter::once("DataFusion Plan:").chain(text.lines()) {
                pg_sys::appendStringInfoSpaces((*es).str_, (*es).indent * 2 + 2);
                let l = CString::new(line).expect("no NUL");
                pg_sys::appendStringInfoString((*es).str_, l.as_ptr());
                pg_sys::appendStringInfoChar((*es).str_, b'\n' as std::ffi::c_char);
            }
        } else {
            let label = CString::new("DataFusion Plan").expect("no NUL");
            let value = CString::new(text).expect("no NUL");
            pg_sys::ExplainPropertyText(label.as_ptr(), value.as_ptr(), es);
        }
    }
}
