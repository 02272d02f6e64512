//! The order DataFusion joins a query's FROM list in, chosen from
//! PostgreSQL's estimates.
//!
//! DataFusion has no join reordering: its optimizer turns `FROM a, b, c
//! WHERE …` into a left-deep tree that starts at the first item and adds,
//! each time, the first later item joined to what it has so far. So the
//! FROM list's order is the join order, and TPC-H Q05 and Q07 list their
//! most selective tables (a region, two nations) last. Here the list is
//! reordered before translation, greedily: start with the joined pair whose
//! result is estimated smallest, then add, each time, the table joined to
//! those so far whose join is estimated smallest. Estimates: PostgreSQL's
//! rows of each table after its own filters (noted while it plans the query,
//! from `set_rel_pathlist`) and the distinct counts ANALYZE stored for the
//! join columns; a join of `l` and `r` rows on `a = b` gives
//! `l × r / max(distinct a, distinct b)`. Ordering by table size alone is
//! not enough: region → nation → supplier → customer joins supplier and
//! customer on their nation (12M rows at SF1).
//!
//! A FROM list is an inner join of its items (explicit JOINs are single
//! items, kept whole), and the translation refers to columns by range-table
//! index, so reordering it changes no answer.

use std::cell::RefCell;

use pgrx::pg_sys;

use super::estimates::ColumnEstimate;
use super::expr::list;
use super::translate::rt_fetch;

/// Estimates being collected while PostgreSQL plans `query`: (range-table
/// index, rows). A stack: planning can nest (a function's SQL planned while
/// the outer query's constants are folded).
struct Capture {
    query: *mut pg_sys::Query,
    rows: Vec<(u32, f64)>,
}

/// Tables noted per planning at most (a FROM list is reordered only when
/// every table in it was noted).
const MAX_NOTED: usize = 1024;

thread_local! {
    static CAPTURES: RefCell<Vec<Capture>> = const { RefCell::new(Vec::new()) };
}

/// Start noting the base-table estimates of `parse`'s top level.
pub fn begin(parse: *mut pg_sys::Query) {
    CAPTURES.with(|c| {
        let mut c = c.borrow_mut();
        // Entries of plannings that raised an ERROR are never ended.
        c.retain(|e| e.query != parse);
        if c.len() > 16 {
            c.clear();
        }
        c.push(Capture {
            query: parse,
            rows: Vec::new(),
        });
    });
}

/// Stop noting for `parse`; its base tables' estimated rows.
pub fn end(parse: *mut pg_sys::Query) -> Vec<(u32, f64)> {
    CAPTURES.with(|c| {
        let mut c = c.borrow_mut();
        match c.iter().rposition(|e| e.query == parse) {
            Some(i) => c.drain(i..).next().map(|e| e.rows).unwrap_or_default(),
            None => Vec::new(),
        }
    })
}

/// From the set_rel_pathlist hook: `rel` (range-table index `rti`) of
/// `root` has its size estimate.
///
/// # Safety
/// PostgreSQL's planner structures, on the main thread.
pub unsafe fn note(root: *mut pg_sys::PlannerInfo, rel: *mut pg_sys::RelOptInfo, rti: u32) {
    // SAFETY: the caller's planner structures.
    unsafe {
        if (*root).query_level != 1 || (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL {
            return;
        }
        let (parse, rows) = ((*root).parse, (*rel).rows);
        CAPTURES.with(|c| {
            if let Some(e) = c.borrow_mut().iter_mut().rev().find(|e| e.query == parse) {
                // Bounded: an entry left by a planning that raised may match
                // later queries allocated at the same address.
                if e.rows.len() < MAX_NOTED {
                    e.rows.push((rti, rows));
                }
            }
        });
    }
}

/// An equality of two tables' columns in the WHERE clause: (range-table
/// index, attribute number) each side.
type Edge = ((u32, i16), (u32, i16));

/// Reorder the top-level FROM list of `q` (the copy the translation reads)
/// when it lists three or more tables and nothing else, all estimated.
///
/// # Safety
/// `q` is a valid Query in the current memory context.
pub unsafe fn reorder(q: *mut pg_sys::Query, rows: &[(u32, f64)]) {
    // SAFETY: reading the Query and permuting the cells of its own list.
    unsafe {
        let from = (*q).jointree;
        if from.is_null() || (*from).fromlist.is_null() {
            return;
        }
        let fromlist = (*from).fromlist;
        let n = (*fromlist).length as usize;
        if n < 3 {
            return;
        }
        let nrte = list::<pg_sys::Node>((*q).rtable).len();
        let cells = std::slice::from_raw_parts_mut((*fromlist).elements, n);
        // (rti, relation oid, estimated rows)
        let mut tables = Vec::with_capacity(n);
        for cell in cells.iter() {
            let node = cell.ptr_value as *mut pg_sys::Node;
            if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_RangeTblRef {
                return;
            }
            let rti = (*(node as *mut pg_sys::RangeTblRef)).rtindex as u32;
            if rti == 0 || rti as usize > nrte {
                return;
            }
            let rte = rt_fetch(q, rti);
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                return;
            }
            let Some(&(_, r)) = rows.iter().find(|&&(i, _)| i == rti) else {
                return;
            };
            tables.push((rti, (*rte).relid, r.max(1.0)));
        }
        let mut edges = Vec::new();
        equalities((*from).quals, &mut edges);
        // Distinct values of each joined column in its table (before its
        // filters), looked up once; at most the rows at hand, and unknown
        // taken as every row distinct.
        let mut known: Vec<((u32, i16), Option<f64>)> = Vec::new();
        for &(a, b) in &edges {
            for (rti, att) in [a, b] {
                if known.iter().all(|k| k.0 != (rti, att)) {
                    let d = tables
                        .iter()
                        .find(|t| t.0 == rti)
                        .and_then(|&(_, oid, _)| table_distinct(oid, att));
                    known.push(((rti, att), d));
                }
            }
        }
        let distinct = |rti: u32, att: i16, rows: f64| -> f64 {
            known
                .iter()
                .find(|k| k.0 == (rti, att))
                .and_then(|k| k.1)
                .unwrap_or(rows)
                .clamp(1.0, rows.max(1.0))
        };
        let order = greedy(&tables, &edges, distinct);
        let ptrs: Vec<*mut std::ffi::c_void> = order.iter().map(|&i| cells[i].ptr_value).collect();
        for (cell, p) in cells.iter_mut().zip(ptrs) {
            cell.ptr_value = p;
        }
    }
}

/// Distinct non-NULL values ANALYZE found in column `att` of relation
/// `oid` (a partitioned table: over its partitions), if it did.
fn table_distinct(oid: pg_sys::Oid, att: i16) -> Option<f64> {
    // The query holds its lock on the table.
    let rel = crate::pg::Relation::open(oid, pg_sys::NoLock as i32);
    // SAFETY: an open relation.
    let (relkind, reltuples) = unsafe {
        let r = (*rel.raw()).rd_rel;
        ((*r).relkind as u8, (*r).reltuples)
    };
    let partitioned = relkind == pg_sys::RELKIND_PARTITIONED_TABLE;
    ColumnEstimate::lookup(oid, att, partitioned)?.distinct_of(reltuples.max(0.0) as f64)
}

/// The greedy order: indexes into `tables` (rti, oid, rows).
fn greedy(
    tables: &[(u32, pg_sys::Oid, f64)],
    edges: &[Edge],
    distinct: impl Fn(u32, i16, f64) -> f64,
) -> Vec<usize> {
    let n = tables.len();
    // Estimated rows of joining `r` to a set of `rows` rows holding
    // `members`; None if no equality connects them.
    let join = |members: &[usize], rows: f64, r: usize| -> Option<f64> {
        let (rr, _, rrows) = tables[r];
        let mut best: Option<f64> = None;
        for &((a, aa), (b, ba)) in edges {
            let (side, col, other) = if a == rr {
                (b, ba, aa)
            } else if b == rr {
                (a, aa, ba)
            } else {
                continue;
            };
            if !members.iter().any(|&m| tables[m].0 == side) {
                continue;
            }
            let d = distinct(side, col, rows).max(distinct(rr, other, rrows));
            let est = rows * rrows / d.max(1.0);
            best = Some(best.map_or(est, |b: f64| b.min(est)));
        }
        best
    };
    // The starting pair: the smallest join.
    let mut start: Option<(f64, usize, usize)> = None;
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            if let Some(est) = join(&[i], tables[i].2, j) {
                // The smaller table first (the left, build side).
                let (a, b) = if tables[i].2 <= tables[j].2 {
                    (i, j)
                } else {
                    (j, i)
                };
                if start.is_none_or(|(e, _, _)| est < e) {
                    start = Some((est, a, b));
                }
            }
        }
    }
    let Some((mut rows, a, b)) = start else {
        return (0..n).collect();
    };
    let mut order = vec![a, b];
    while order.len() < n {
        let mut next: Option<(f64, usize)> = None;
        for r in (0..n).filter(|r| !order.contains(r)) {
            if let Some(est) = join(&order, rows, r) {
                if next.is_none_or(|(e, _)| est < e) {
                    next = Some((est, r));
                }
            }
        }
        match next {
            Some((est, r)) => {
                rows = est.max(1.0);
                order.push(r);
            }
            // Nothing joins what we have: the rest in the query's order.
            None => {
                let rest: Vec<usize> = (0..n).filter(|r| !order.contains(r)).collect();
                order.extend(rest);
                break;
            }
        }
    }
    order
}

/// Collect `Var = Var` conjuncts of `quals` between two tables of this
/// level (an `=` operator; casts that only relabel are looked through).
unsafe fn equalities(quals: *mut pg_sys::Node, out: &mut Vec<Edge>) {
    // SAFETY: walking a valid expression tree.
    unsafe {
        if quals.is_null() {
            return;
        }
        match (*quals).type_ {
            pg_sys::NodeTag::T_List => {
                for item in list::<pg_sys::Node>(quals as *mut pg_sys::List) {
                    equalities(item, out);
                }
            }
            pg_sys::NodeTag::T_BoolExpr => {
                let b = quals as *mut pg_sys::BoolExpr;
                if (*b).boolop == pg_sys::BoolExprType::AND_EXPR {
                    for item in list::<pg_sys::Node>((*b).args) {
                        equalities(item, out);
                    }
                }
            }
            pg_sys::NodeTag::T_OpExpr => {
                let op = quals as *mut pg_sys::OpExpr;
                let args = list::<pg_sys::Node>((*op).args);
                if args.len() != 2 || !is_equality((*op).opno) {
                    return;
                }
                if let (Some(l), Some(r)) = (column(args[0]), column(args[1])) {
                    if l.0 != r.0 {
                        out.push((l, r));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A plain column of this query level, through relabeling casts.
unsafe fn column(mut node: *mut pg_sys::Node) -> Option<(u32, i16)> {
    // SAFETY: a valid expression node.
    unsafe {
        while !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let v = node as *mut pg_sys::Var;
        ((*v).varlevelsup == 0 && (*v).varattno > 0).then(|| ((*v).varno as u32, (*v).varattno))
    }
}

/// Whether operator `opno` is named `=` (an equality for estimating; the
/// answer does not depend on it).
fn is_equality(opno: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup; the name is copied before release.
    unsafe {
        let name = pg_sys::get_opname(opno);
        !name.is_null() && std::ffi::CStr::from_ptr(name).to_bytes() == b"="
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TPC-H Q05's shape: customer, orders, lineitem, supplier, nation,
    /// region (rti 1..6), with SF1's sizes after filters.
    #[test]
    fn q05_starts_at_the_region_and_reaches_customer_last() {
        let o = pg_sys::Oid::from(0u32);
        let tables = [
            (1, o, 150_000.0),
            (2, o, 227_000.0),
            (3, o, 6_000_000.0),
            (4, o, 10_000.0),
            (5, o, 25.0),
            (6, o, 1.0),
        ];
        let edges = [
            ((1, 1), (2, 2)), // c_custkey = o_custkey
            ((3, 1), (2, 1)), // l_orderkey = o_orderkey
            ((3, 3), (4, 1)), // l_suppkey = s_suppkey
            ((1, 4), (4, 4)), // c_nationkey = s_nationkey
            ((4, 4), (5, 1)), // s_nationkey = n_nationkey
            ((5, 3), (6, 1)), // n_regionkey = r_regionkey
        ];
        let distinct = |rti: u32, att: i16, rows: f64| -> f64 {
            let d: f64 = match (rti, att) {
                (1, 1) => 150_000.0,
                (1, 4) | (4, 4) | (5, 1) => 25.0,
                (2, 1) => 1_500_000.0,
                (2, 2) => 100_000.0,
                (3, 1) => 1_500_000.0,
                (3, 3) | (4, 1) => 10_000.0,
                (5, 3) | (6, 1) => 5.0,
                _ => rows,
            };
            d.min(rows)
        };
        let order: Vec<u32> = greedy(&tables, &edges, distinct)
            .into_iter()
            .map(|i| tables[i].0)
            .collect();
        assert_eq!(order, vec![6, 5, 4, 3, 2, 1]);
    }
}
