//! The DataFusion scan's part of the planner hook (registered in hooks.rs):
//! PostgreSQL plans first; a read-only SELECT over
//! omen_columnar tables whose whole query translates exactly is then
//! replaced by one `OmenDataFusion` custom scan node. The range table,
//! relation OIDs and invalidation items of PostgreSQL's plan stay in the
//! `PlannedStmt`, so permissions, locks and plan-cache invalidation work
//! as for any plan.

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::noted::Noted;
use super::settings::{self, Mode};

pub static mut SCAN_METHODS: pg_sys::CustomScanMethods = pg_sys::CustomScanMethods {
    CustomName: c"OmenDataFusion".as_ptr(),
    CreateCustomScanState: Some(super::exec::create_state),
};

/// A cheap test before copying the query: every table in its range tables
/// (subqueries and CTEs included) is an omen_columnar table, or a
/// partitioned table with omen_columnar partitions, and there is one. A query with any other table falls back anyway.
unsafe fn only_columnar_tables(q: *mut pg_sys::Query) -> bool {
    // SAFETY: a parsed and rewritten Query; its relations are locked.
    unsafe {
        let mut seen = false;
        let mut stack = vec![q];
        while let Some(q) = stack.pop() {
            for cte in super::expr::list::<pg_sys::CommonTableExpr>((*q).cteList) {
                let sub = (*cte).ctequery as *mut pg_sys::Node;
                if !sub.is_null() && (*sub).type_ == pg_sys::NodeTag::T_Query {
                    stack.push(sub as *mut pg_sys::Query);
                }
            }
            for rte in super::expr::list::<pg_sys::RangeTblEntry>((*q).rtable) {
                match (*rte).rtekind {
                    pg_sys::RTEKind::RTE_RELATION => {
                        let rel = pg_sys::RelationIdGetRelation((*rte).relid);
                        if rel.is_null() {
                            return false;
                        }
                        let ok = if (*(*rel).rd_rel).relkind as u8
                            == pg_sys::RELKIND_PARTITIONED_TABLE
                        {
                            super::partitioned::has_columnar_leaf((*rte).relid)
                        } else {
                            crate::columnar::is_columnar(rel)
                        };
                        pg_sys::RelationClose(rel);
                        if !ok {
                            return false;
                        }
                        seen = true;
                    }
                    pg_sys::RTEKind::RTE_SUBQUERY if !(*rte).subquery.is_null() => {
                        stack.push((*rte).subquery)
                    }
                    _ => {}
                }
            }
        }
        seen
    }
}

/// Whether any relation the plan depends on is an omen_columnar table.
unsafe fn uses_columnar(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: the planned statement's OID list.
    unsafe {
        let oids = pgrx::PgList::<pg_sys::Oid>::from_pg((*stmt).relationOids);
        (0..oids.len()).any(|i| {
            let oid = oids.get_oid(i).unwrap_or(pg_sys::InvalidOid);
            let rel = pg_sys::RelationIdGetRelation(oid);
            if rel.is_null() {
                return false;
            }
            let yes = (*(*rel).rd_rel).relkind as u8 == pg_sys::RELKIND_RELATION
                && crate::columnar::is_columnar(rel);
            pg_sys::RelationClose(rel);
            yes
        })
    }
}

/// What `before_planning` decided: the query is a candidate for DataFusion,
/// with a copy of it taken before PostgreSQL's planner changed it.
pub(crate) struct Candidate {
    mode: Mode,
    /// The Query PostgreSQL plans (its base tables' estimates are noted).
    parse: *mut pg_sys::Query,
    copy: *mut pg_sys::Query,
}

/// Before PostgreSQL plans `parse`: whether it may run in DataFusion.
///
/// # Safety
/// From the planner hook, with the query PostgreSQL is about to plan.
pub(crate) unsafe fn before_planning(parse: *mut pg_sys::Query) -> Option<Candidate> {
    // SAFETY: the caller's query tree.
    unsafe {
        let mode = settings::mode();
        let candidate = mode != Mode::Off
            && (*parse).commandType == pg_sys::CmdType::CMD_SELECT
            && (*parse).utilityStmt.is_null()
            && (mode == Mode::Force || only_columnar_tables(parse));
        candidate.then(|| {
            super::noted::begin(parse);
            Candidate {
                mode,
                parse,
                copy: pg_sys::copyObjectImpl(parse as *const _) as *mut pg_sys::Query,
            }
        })
    }
}

/// After PostgreSQL planned a candidate: replace the plan with one
/// OmenDataFusion scan if the whole query translates (and is worth it).
///
/// # Safety
/// From the planner hook, with PostgreSQL's plan of the candidate's query.
pub(crate) unsafe fn after_planning(
    candidate: Candidate,
    stmt: *mut pg_sys::PlannedStmt,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    let Candidate { mode, parse, copy } = candidate;
    let estimates = super::noted::end(parse);
    // SAFETY: the caller's plan, and our copy of its query.
    unsafe {
        if !uses_columnar(stmt) {
            return stmt;
        }
        let cost = (*(*stmt).planTree).total_cost;
        if mode != Mode::Force && cost < settings::min_cost() {
            debug1!("omendb: query stays in PostgreSQL: its estimated cost {cost:.0} is below omendb.datafusion_min_cost");
            return stmt;
        }
        if settings::statistics() {
            let levels = super::noted::Estimates::new(estimates.clone(), copy);
            super::join_order::reorder_levels(copy, &levels);
        }
        match super::exec::plan(copy, stmt, bound_params, None, &estimates) {
            Ok(_) => replace_plan(stmt, copy, &estimates, cursor_options),
            Err(why) => {
                if mode == Mode::Force {
                    crate::error::error_with_hint(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        format!(
                            "omendb.datafusion = force: this query cannot run in DataFusion: {}",
                            why.0
                        ),
                        "Set omendb.datafusion = on to run it in PostgreSQL's executor.".into(),
                    );
                }
                debug1!("omendb: query stays in PostgreSQL: {}", why.0);
            }
        }
        stmt
    }
}

/// Replace `stmt`'s plan with an OmenDataFusion scan running `query`.
unsafe fn replace_plan(
    stmt: *mut pg_sys::PlannedStmt,
    query: *mut pg_sys::Query,
    estimates: &[Noted],
    cursor_options: i32,
) {
    // SAFETY: building plan nodes in the planner's memory context.
    unsafe {
        let old = (*stmt).planTree;
        let cs =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::CustomScan>()) as *mut pg_sys::CustomScan;
        (*cs).scan.plan.type_ = pg_sys::NodeTag::T_CustomScan;
        let mut tlist = pgrx::PgList::<pg_sys::TargetEntry>::new();
        let mut scan_tlist = pgrx::PgList::<pg_sys::TargetEntry>::new();
        let mut names = pgrx::PgList::<pg_sys::Node>::new();
        // The node's output columns, for EXPLAIN VERBOSE to name: columns
        // of a range-table entry of its own, as PostgreSQL's deparser
        // resolves the scan tuple's columns through `custom_scan_tlist`
        // (a tlist of INDEX_VAR Vars there would refer to itself forever).
        let output_rti = pg_sys::list_length((*stmt).rtable) + 1;
        let mut resno = 1i16;
        for tle in super::expr::list::<pg_sys::TargetEntry>((*query).targetList) {
            if (*tle).resjunk {
                continue;
            }
            let e = (*tle).expr as *mut pg_sys::Node;
            let var = pg_sys::makeVar(
                pg_sys::INDEX_VAR as i32,
                resno,
                pg_sys::exprType(e),
                pg_sys::exprTypmod(e),
                pg_sys::exprCollation(e),
                0,
            );
            tlist.push(pg_sys::makeTargetEntry(
                var as *mut pg_sys::Expr,
                resno,
                (*tle).resname,
                false,
            ));
            let out = pg_sys::copyObjectImpl(var as *const std::ffi::c_void) as *mut pg_sys::Var;
            (*out).varno = output_rti;
            scan_tlist.push(pg_sys::makeTargetEntry(
                out as *mut pg_sys::Expr,
                resno,
                (*tle).resname,
                false,
            ));
            let name = if (*tle).resname.is_null() {
                c"?column?".as_ptr()
            } else {
                (*tle).resname as *const std::ffi::c_char
            };
            names.push(pg_sys::makeString(pg_sys::pstrdup(name)) as *mut pg_sys::Node);
            resno += 1;
        }
        (*cs).scan.plan.targetlist = tlist.into_pg();
        (*cs).custom_scan_tlist = scan_tlist.into_pg();
        (*stmt).rtable = pg_sys::lappend((*stmt).rtable, output_rte(names.into_pg()) as _);
        (*cs).custom_relids = pg_sys::bms_make_singleton(output_rti);
        (*cs).scan.scanrelid = 0;
        (*cs).scan.plan.startup_cost = (*old).startup_cost;
        (*cs).scan.plan.total_cost = (*old).total_cost;
        (*cs).scan.plan.plan_rows = (*old).plan_rows;
        (*cs).scan.plan.plan_width = (*old).plan_width;
        (*cs).scan.plan.parallel_safe = false;
        let private = pg_sys::lappend(std::ptr::null_mut(), query as *mut std::ffi::c_void);
        let (ints, aliases) = estimates_lists(estimates);
        let private = pg_sys::lappend(private, ints as *mut std::ffi::c_void);
        (*cs).custom_private = pg_sys::lappend(private, aliases as *mut std::ffi::c_void);
        (*cs).methods = &raw const SCAN_METHODS;
        let mut top = cs as *mut pg_sys::Plan;
        if cursor_options & pg_sys::CURSOR_OPT_SCROLL as i32 != 0 {
            top = pg_sys::materialize_finished_plan(top);
            // PostgreSQL adds this node before set_plan_references, which
            // would point its columns at its child: done here.
            (*top).targetlist = outer_refs((*cs).scan.plan.targetlist);
        }
        (*stmt).planTree = top;
        (*stmt).subplans = std::ptr::null_mut();
        (*stmt).parallelModeNeeded = false;
    }
}

/// PostgreSQL's estimates kept in the plan, so that execution plans the
/// joins as planning did: after the query, the node's private list holds an
/// integer list of range-table index, rows (an f64's bits, high and low
/// halves) and relation per table, and a list of their aliases.
unsafe fn estimates_lists(estimates: &[Noted]) -> (*mut pg_sys::List, *mut pg_sys::List) {
    let (mut ints, mut aliases) = (std::ptr::null_mut(), std::ptr::null_mut());
    for n in estimates {
        let alias = std::ffi::CString::new(n.alias.as_str()).unwrap_or_default();
        // SAFETY: list building in the planner's memory context.
        unsafe {
            ints = pg_sys::lappend_int(ints, n.rti.min(i32::MAX as u32) as i32);
            let bits = n.rows.to_bits();
            ints = pg_sys::lappend_int(ints, (bits >> 32) as u32 as i32);
            ints = pg_sys::lappend_int(ints, bits as u32 as i32);
            ints = pg_sys::lappend_int(ints, n.relid as i32);
            let s = pg_sys::makeString(pg_sys::pstrdup(alias.as_ptr()));
            aliases = pg_sys::lappend(aliases, s as *mut std::ffi::c_void);
        }
    }
    (ints, aliases)
}

/// The estimates `estimates_lists` kept in the node's private list.
///
/// # Safety
/// `private` is the `custom_private` of an OmenDataFusion node.
pub(super) unsafe fn stored_estimates(private: *mut pg_sys::List) -> Vec<Noted> {
    // SAFETY: our own private list: the query, an integer list, a list of
    // String nodes.
    unsafe {
        if private.is_null() || (*private).length < 3 {
            return Vec::new();
        }
        let ints = (*(*private).elements.add(1)).ptr_value as *mut pg_sys::List;
        let aliases = super::expr::list::<pg_sys::String>(
            (*(*private).elements.add(2)).ptr_value as *mut pg_sys::List,
        );
        if ints.is_null() || (*ints).type_ != pg_sys::NodeTag::T_IntList {
            return Vec::new();
        }
        let ints = std::slice::from_raw_parts((*ints).elements, (*ints).length as usize);
        ints.chunks_exact(4)
            .zip(aliases)
            .filter(|(_, a)| (*(*a as *mut pg_sys::Node)).type_ == pg_sys::NodeTag::T_String)
            .map(|(t, a)| Noted {
                rti: t[0].int_value as u32,
                rows: f64::from_bits(
                    ((t[1].int_value as u32 as u64) << 32) | t[2].int_value as u32 as u64,
                ),
                relid: t[3].int_value as u32,
                alias: std::ffi::CStr::from_ptr((*a).sval)
                    .to_string_lossy()
                    .into_owned(),
            })
            .collect()
    }
}

/// Vars reading each entry of `tlist` from a node's child (OUTER_VAR).
unsafe fn outer_refs(tlist: *mut pg_sys::List) -> *mut pg_sys::List {
    // SAFETY: `tlist` is a target list of Vars (the scan's).
    unsafe {
        let copy = pg_sys::copyObjectImpl(tlist as *const std::ffi::c_void) as *mut pg_sys::List;
        for tle in super::expr::list::<pg_sys::TargetEntry>(copy) {
            let v = (*tle).expr as *mut pg_sys::Var;
            (*v).varno = pg_sys::OUTER_VAR;
            (*v).varattno = (*tle).resno;
        }
        copy
    }
}

/// A range-table entry that only names the scan's output columns
/// (`datafusion.<column>` in EXPLAIN VERBOSE). It is a VALUES entry with
/// no rows, which the executor's permission checks and locks skip.
unsafe fn output_rte(colnames: *mut pg_sys::List) -> *mut pg_sys::RangeTblEntry {
    // SAFETY: a fresh node in the planner's memory context.
    unsafe {
        let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
            as *mut pg_sys::RangeTblEntry;
        (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
        (*rte).rtekind = pg_sys::RTEKind::RTE_VALUES;
        (*rte).eref = pg_sys::makeAlias(c"datafusion".as_ptr(), colnames);
        rte
    }
}

pub fn init() {
    // SAFETY: hook registration in _PG_init.
    unsafe {
        pg_sys::RegisterCustomScanMethods(&raw const SCAN_METHODS);
    }
}
