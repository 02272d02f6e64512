//! Column projection and min/max skipping for sequential scans.
//!
//! PostgreSQL's table AM API gives a scan neither its columns nor its
//! quals. Two hooks supply them without a custom plan node:
//! - planning: for an omen_columnar base relation, mark the ctid column as
//!   needed, so the planner does not substitute a "physical" target list
//!   (all columns) for the columns the query uses;
//! - ExecutorStart: for each (non-parallel) SeqScan of an omen_columnar
//!   table, begin its scan ourselves, handing it the columns its target list
//!   and quals use, and the quals min/max statistics can decide; for each
//!   index and index-only scan, begin its index scan as its first call
//!   would, so that fetches by TID decode only the columns the node uses
//!   (none for an index-only scan, which reads the table for visibility).
//!
//! The executor still evaluates every qual on every row returned: skipping
//! only drops row groups whose statistics prove no row can match.

use omendb_columnar::prune::{Bound, Filter, Hints, Test};
use pgrx::pg_sys;
use std::cell::RefCell;

thread_local! {
    /// Hints for the scan being begun right now by `begin_scans`.
    static NEXT: RefCell<Option<Hints>> = const { RefCell::new(None) };
}

/// The hints for the scan being begun, if ExecutorStart is beginning it.
pub fn take() -> Option<Hints> {
    NEXT.with_borrow_mut(|n| n.take())
}

/// Runs its closure when dropped (also while unwinding from an ERROR).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

thread_local! {
    /// Columns for the index scan's fetch state being begun right now by
    /// `begin_index_scan` (Some(None): all of them).
    static NEXT_FETCH: RefCell<Option<Option<Vec<usize>>>> = const { RefCell::new(None) };
}

/// The columns an index scan being begun by ExecutorStart reads from the
/// table; None (all columns) for any other fetch by TID.
pub fn take_fetch_columns() -> Option<Vec<usize>> {
    NEXT_FETCH.with_borrow_mut(|n| n.take()).flatten()
}

/// Begin an index (or index-only) scan's IndexScanDesc now, as IndexNext /
/// IndexOnlyNext would on their first call, with the table columns its
/// fetches must decode. `desc` is the node's scan-descriptor field.
#[allow(clippy::too_many_arguments)]
unsafe fn begin_index_scan(
    ss: *mut pg_sys::ScanState,
    index: pg_sys::Relation,
    estate: *mut pg_sys::EState,
    keys: (*mut pg_sys::ScanKeyData, i32),
    order_by: (*mut pg_sys::ScanKeyData, i32),
    runtime_keys: i32,
    columns: Option<Vec<usize>>,
    index_only: bool,
) -> *mut pg_sys::IndexScanDescData {
    // SAFETY: an initialised scan node of this executor.
    unsafe {
        NEXT_FETCH.with_borrow_mut(|n| *n = Some(columns));
        // Cleared even if index_beginscan raises an ERROR.
        let _clear = OnDrop(|| NEXT_FETCH.with_borrow_mut(|n| *n = None));
        let desc = pg_sys::index_beginscan(
            (*ss).ss_currentRelation,
            index,
            (*estate).es_snapshot,
            keys.1,
            order_by.1,
        );
        if index_only {
            (*desc).xs_want_itup = true;
        }
        // Without run-time keys the node would pass its keys right away;
        // with them, its first ExecReScan does once they are computed.
        if runtime_keys == 0 {
            pg_sys::index_rescan(desc, keys.0, keys.1, order_by.0, order_by.1);
        }
        desc
    }
}

/// Integer-like types whose stored word orders like the type (signed).
fn int_type(t: pg_sys::Oid) -> bool {
    [
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::DATEOID,
        pg_sys::TIMEOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::TIMESTAMPTZOID,
    ]
    .contains(&t)
}

fn float_type(t: pg_sys::Oid) -> bool {
    t == pg_sys::FLOAT4OID || t == pg_sys::FLOAT8OID
}

/// The constant as a bound comparable with column type `col`, or None.
unsafe fn bound_of(c: *mut pg_sys::Const, col: pg_sys::Oid) -> Option<Bound> {
    // SAFETY: a Const node from the plan.
    unsafe {
        if (*c).constisnull {
            return None;
        }
        let t = (*c).consttype;
        let v = (*c).constvalue.value() as u64;
        let ints = [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID];
        if ints.contains(&col) && ints.contains(&t) {
            return Some(Bound::Int(match t {
                pg_sys::INT2OID => v as u16 as i16 as i64,
                pg_sys::INT4OID => v as u32 as i32 as i64,
                _ => v as i64,
            }));
        }
        if int_type(col) && t == col {
            return Some(Bound::Int(if col == pg_sys::DATEOID {
                v as u32 as i32 as i64
            } else {
                v as i64
            }));
        }
        if float_type(col) && float_type(t) {
            let f = if t == pg_sys::FLOAT4OID {
                f32::from_bits(v as u32) as f64
            } else {
                f64::from_bits(v)
            };
            return (!f.is_nan()).then_some(Bound::Float(f));
        }
        None
    }
}

/// A filter from one qual of a scan of range-table entry `scanrelid`.
unsafe fn filter_of(
    node: *mut pg_sys::Node,
    scanrelid: u32,
    desc: pg_sys::TupleDesc,
) -> Option<Filter> {
    // SAFETY: plan expression nodes.
    unsafe {
        let column_of = |n: *mut pg_sys::Node| -> Option<(usize, pg_sys::Oid)> {
            if (*n).type_ != pg_sys::NodeTag::T_Var {
                return None;
            }
            let v = n as *mut pg_sys::Var;
            if (*v).varno as u32 != scanrelid || (*v).varattno < 1 || (*v).varlevelsup != 0 {
                return None;
            }
            let i = (*v).varattno as usize - 1;
            let att = (*desc).attrs.as_slice((*desc).natts as usize).get(i)?;
            (att.atttypid == (*v).vartype).then_some((i, (*v).vartype))
        };
        match (*node).type_ {
            pg_sys::NodeTag::T_NullTest => {
                let t = node as *mut pg_sys::NullTest;
                let (column, _) = column_of((*t).arg as *mut pg_sys::Node)?;
                let test = if (*t).nulltesttype == pg_sys::NullTestType::IS_NULL {
                    Test::IsNull
                } else {
                    Test::IsNotNull
                };
                Some(Filter { column, test })
            }
            pg_sys::NodeTag::T_OpExpr => {
                let op = node as *mut pg_sys::OpExpr;
                let args = (*op).args;
                if args.is_null() || (*args).length != 2 {
                    return None;
                }
                let a = (*(*args).elements.add(0)).ptr_value as *mut pg_sys::Node;
                let b = (*(*args).elements.add(1)).ptr_value as *mut pg_sys::Node;
                let (var_left, (column, typ), c) = if let Some(col) = column_of(a) {
                    (true, col, b)
                } else {
                    (false, column_of(b)?, a)
                };
                if (*c).type_ != pg_sys::NodeTag::T_Const || !(int_type(typ) || float_type(typ)) {
                    return None;
                }
                let bound = bound_of(c as *mut pg_sys::Const, typ)?;
                let opclass = pg_sys::GetDefaultOpClass(typ, pg_sys::BTREE_AM_OID);
                if opclass == pg_sys::InvalidOid {
                    return None;
                }
                let family = pg_sys::get_opclass_family(opclass);
                let s = pg_sys::get_op_opfamily_strategy((*op).opno, family) as u16;
                if !(1..=5).contains(&s) {
                    return None;
                }
                let s = if var_left { s } else { 6 - s }; // c < x  is  x > c
                Some(Filter {
                    column,
                    test: Test::Cmp(s, bound),
                })
            }
            _ => None,
        }
    }
}

/// The table columns (0-based, sorted) that expressions `exprs` use of
/// range-table entry `scanrelid`; None if one uses the whole row.
unsafe fn columns_used(exprs: &[*mut pg_sys::List], scanrelid: u32) -> Option<Vec<usize>> {
    // SAFETY: expression trees of a plan node.
    unsafe {
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        for &e in exprs {
            pg_sys::pull_varattnos(e as *mut pg_sys::Node, scanrelid, &mut attrs);
        }
        let offset = pg_sys::FirstLowInvalidHeapAttributeNumber as i32;
        let mut columns = Vec::new();
        let mut x = -1;
        loop {
            x = pg_sys::bms_next_member(attrs, x);
            if x < 0 {
                break;
            }
            let attno = x + offset;
            if attno == 0 {
                return None;
            } else if attno > 0 {
                columns.push(attno as usize - 1);
            }
        }
        columns.sort_unstable();
        Some(columns)
    }
}

/// Hints for a SeqScan plan node over `rel`.
unsafe fn hints_for(plan: *mut pg_sys::Plan, scanrelid: u32, rel: pg_sys::Relation) -> Hints {
    // SAFETY: plan nodes and an open relation.
    unsafe {
        let desc = (*rel).rd_att;
        let columns = columns_used(&[(*plan).targetlist, (*plan).qual], scanrelid);
        let mut filters = Vec::new();
        let quals = (*plan).qual;
        if !quals.is_null() {
            for k in 0..(*quals).length as usize {
                let q = (*(*quals).elements.add(k)).ptr_value as *mut pg_sys::Node;
                if let Some(f) = filter_of(q, scanrelid, desc) {
                    filters.push(f);
                }
            }
        }
        Hints { columns, filters }
    }
}

/// Begin the scans of the non-parallel SeqScans over omen_columnar tables
/// in `ps`'s tree, with their hints.
unsafe fn begin_scans(ps: *mut pg_sys::PlanState, estate: *mut pg_sys::EState) {
    if ps.is_null() {
        return;
    }
    // SAFETY: an initialised plan-state tree.
    unsafe {
        let tag = (*ps).type_;
        if tag == pg_sys::NodeTag::T_SeqScanState {
            let ss = ps as *mut pg_sys::ScanState;
            let rel = (*ss).ss_currentRelation;
            let plan = (*ps).plan;
            if !rel.is_null()
                && super::is_columnar(rel)
                && !(*plan).parallel_aware
                && (*ss).ss_currentScanDesc.is_null()
            {
                let scanrelid = (*(plan as *mut pg_sys::Scan)).scanrelid;
                let hints = hints_for(plan, scanrelid, rel);
                NEXT.with_borrow_mut(|n| *n = Some(hints));
                // Cleared even if scan_begin raises an ERROR.
                let _clear = OnDrop(|| NEXT.with_borrow_mut(|n| *n = None));
                let flags = pg_sys::ScanOptions::SO_TYPE_SEQSCAN
                    | pg_sys::ScanOptions::SO_ALLOW_STRAT
                    | pg_sys::ScanOptions::SO_ALLOW_SYNC
                    | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE;
                (*ss).ss_currentScanDesc = super::scan::scan_begin(
                    rel,
                    (*estate).es_snapshot,
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    flags as u32,
                );
            }
        }
        let plan = (*ps).plan;
        let columnar_scan = || {
            let rel = (*(ps as *mut pg_sys::ScanState)).ss_currentRelation;
            !rel.is_null() && super::is_columnar(rel) && !(*plan).parallel_aware
        };
        if tag == pg_sys::NodeTag::T_IndexScanState && columnar_scan() {
            let node = ps as *mut pg_sys::IndexScanState;
            let ip = plan as *mut pg_sys::IndexScan;
            if (*node).iss_ScanDesc.is_null() && !(*node).iss_RelationDesc.is_null() {
                let columns = columns_used(
                    &[
                        (*plan).targetlist,
                        (*plan).qual,
                        (*ip).indexqualorig,
                        (*ip).indexorderbyorig,
                    ],
                    (*ip).scan.scanrelid,
                );
                (*node).iss_ScanDesc = begin_index_scan(
                    &mut (*node).ss,
                    (*node).iss_RelationDesc,
                    estate,
                    ((*node).iss_ScanKeys, (*node).iss_NumScanKeys),
                    ((*node).iss_OrderByKeys, (*node).iss_NumOrderByKeys),
                    (*node).iss_NumRuntimeKeys,
                    columns,
                    false,
                );
            }
        }
        if tag == pg_sys::NodeTag::T_IndexOnlyScanState && columnar_scan() {
            // Values come from the index; the table is read only to check
            // visibility, so no column is decoded.
            let node = ps as *mut pg_sys::IndexOnlyScanState;
            if (*node).ioss_ScanDesc.is_null() && !(*node).ioss_RelationDesc.is_null() {
                (*node).ioss_ScanDesc = begin_index_scan(
                    &mut (*node).ss,
                    (*node).ioss_RelationDesc,
                    estate,
                    ((*node).ioss_ScanKeys, (*node).ioss_NumScanKeys),
                    ((*node).ioss_OrderByKeys, (*node).ioss_NumOrderByKeys),
                    (*node).ioss_NumRuntimeKeys,
                    Some(Vec::new()),
                    true,
                );
                (*node).ioss_VMBuffer = pg_sys::InvalidBuffer as i32;
            }
        }
        begin_scans((*ps).lefttree, estate);
        begin_scans((*ps).righttree, estate);
        for list in [(*ps).initPlan, (*ps).subPlan] {
            if !list.is_null() {
                for k in 0..(*list).length as usize {
                    let sp = (*(*list).elements.add(k)).ptr_value as *mut pg_sys::SubPlanState;
                    begin_scans((*sp).planstate, estate);
                }
            }
        }
        match tag {
            pg_sys::NodeTag::T_AppendState => {
                let a = ps as *mut pg_sys::AppendState;
                for k in 0..(*a).as_nplans as usize {
                    begin_scans(*(*a).appendplans.add(k), estate);
                }
            }
            pg_sys::NodeTag::T_MergeAppendState => {
                let a = ps as *mut pg_sys::MergeAppendState;
                for k in 0..(*a).ms_nplans as usize {
                    begin_scans(*(*a).mergeplans.add(k), estate);
                }
            }
            pg_sys::NodeTag::T_SubqueryScanState => {
                begin_scans((*(ps as *mut pg_sys::SubqueryScanState)).subplan, estate);
            }
            _ => {}
        }
    }
}

/// After ExecutorStart (hooks.rs): hand columnar scans their pushed-down hints.
///
/// # Safety
/// From the ExecutorStart hook, after PostgreSQL initialised `query`.
pub(crate) unsafe fn after_executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: walking the initialised plan-state tree.
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0 {
            begin_scans((*query).planstate, (*query).estate);
        }
    }
}

/// set_rel_pathlist (hooks.rs): a scan of a columnar table needs ctid.
///
/// # Safety
/// From the set_rel_pathlist hook, with the planner's structures.
pub(crate) unsafe fn set_rel_pathlist(
    rel: *mut pg_sys::RelOptInfo,
    rte: *mut pg_sys::RangeTblEntry,
) {
    // SAFETY: planner structures; the relation is already locked.
    unsafe {
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || (*rte).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
        {
            return;
        }
        let r = pg_sys::table_open((*rte).relid, pg_sys::NoLock as i32);
        let columnar = super::is_columnar(r);
        pg_sys::table_close(r, pg_sys::NoLock as i32);
        if columnar {
            // use_physical_tlist refuses when a system column is needed.
            let ctid = pg_sys::SelfItemPointerAttributeNumber as i32 - (*rel).min_attr as i32;
            let slot = (*rel).attr_needed.add(ctid as usize);
            *slot = pg_sys::bms_add_member(*slot, 0);
        }
    }
}
