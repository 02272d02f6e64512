//! The order DataFusion joins a query's FROM list in, chosen from
//! PostgreSQL's estimates.
//!
//! DataFusion has no join reordering: its optimizer turns `FROM a, b, c
//! WHERE …` into a left-deep tree that starts at the first item and adds,
//! each time, the first later item joined to what it has so far. So the
//! FROM list's order is the join order, and TPC-H Q05 and Q07 list their
//! most selective tables (a region, two nations) last. Here the list is
//! reordered before translation, and so are those of subqueries in FROM
//! (TPC-H Q07, Q08 and Q09 join their tables in one): up to 10 tables, the
//! left-deep order whose joins are estimated to produce the fewest rows in
//! all, found over sets of tables (each set keeps its cheapest order, and
//! the rows estimated along it); beyond, greedily: the smallest joined
//! pair, then each time the table whose join adds the fewest rows. Estimates:
//! PostgreSQL's rows of each table after its own filters (noted while it
//! plans the query, see `noted`) and the distinct counts ANALYZE stored for
//! the join columns; a join of `l` and `r` rows on `a = b` gives
//! `l × r / max(distinct a, distinct b)`. Ordering by table size alone is
//! not enough: region → nation → supplier → customer joins supplier and
//! customer on their nation (12M rows at SF1).
//!
//! A FROM list is an inner join of its items (explicit JOINs are single
//! items, kept whole), and the translation refers to columns by range-table
//! index, so reordering it changes no answer.

use pgrx::pg_sys;

use super::estimates::ColumnEstimate;
use super::expr::{list, rt_fetch};
use super::noted::Estimates;

/// Reorder the FROM lists of `top` (the copy the translation reads) and of
/// the subqueries in its range table, at every depth, by `estimates`.
///
/// # Safety
/// `top` is a valid Query in the current memory context, the one
/// `estimates` was made for.
pub unsafe fn reorder_levels(top: *mut pg_sys::Query, estimates: &Estimates) {
    // SAFETY: the caller's query tree.
    unsafe {
        reorder(top, &estimates.of_level(top, true));
        let mut pending: Vec<*mut pg_sys::Query> = vec![top];
        while let Some(q) = pending.pop() {
            for rte in list::<pg_sys::RangeTblEntry>((*q).rtable) {
                if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY && !(*rte).subquery.is_null() {
                    let sub = (*rte).subquery;
                    reorder(sub, &estimates.of_level(sub, false));
                    pending.push(sub);
                }
            }
        }
    }
}

/// An equality of two tables' columns in the WHERE clause: (range-table
/// index, attribute number) each side.
type Edge = ((u32, i16), (u32, i16));

/// Reorder the FROM list of `q`, one level of the query, when it lists
/// three or more tables and nothing else, all estimated (`rows`, by
/// range-table index of `q`).
///
/// # Safety
/// `q` is a valid Query in the current memory context.
unsafe fn reorder(q: *mut pg_sys::Query, rows: &[(u32, f64)]) {
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
        let order = best_order(&tables, &edges, distinct);
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

/// Tables ordered by least total rows at most; more are ordered greedily.
const EXHAUSTIVE_TABLES: usize = 10;

/// The join order: indexes into `tables` (rti, oid, rows). Up to
/// `EXHAUSTIVE_TABLES` tables, the left-deep order whose joins produce the
/// fewest rows in all (per set of tables, its cheapest order: the estimate
/// of a join depends a little on the order, so this is close to, not
/// exactly, the best of every order): starting from the smallest join can leave a
/// big table to be joined whole (TPC-H Q09: nation ⋈ supplier, then all 6M
/// lineitem rows, where part ⋈ lineitem gives 320K first).
fn best_order(
    tables: &[(u32, pg_sys::Oid, f64)],
    edges: &[Edge],
    distinct: impl Fn(u32, i16, f64) -> f64,
) -> Vec<usize> {
    let n = tables.len();
    let join = |members: &[usize], rows: f64, r: usize| {
        join_rows(tables, edges, &distinct, members, rows, r)
    };
    if n > EXHAUSTIVE_TABLES {
        return greedy(n, tables, join);
    }
    // By set of tables joined (a bit each): the least total of the joins'
    // rows, the rows of the last join, and the order.
    let mut best: Vec<Option<(f64, f64, Vec<usize>)>> = vec![None; 1 << n];
    for (i, t) in tables.iter().enumerate() {
        best[1 << i] = Some((0.0, t.2, vec![i]));
    }
    for set in 1usize..(1 << n) {
        let Some((cost, rows, order)) = best[set].clone() else {
            continue;
        };
        for r in (0..n).filter(|r| set & (1 << r) == 0) {
            let Some(est) = join(&order, rows, r) else {
                continue;
            };
            // Bounded: a chain of huge estimates must not reach inf or NaN.
            let est = if est.is_nan() {
                1e30
            } else {
                est.clamp(1.0, 1e30)
            };
            let next = set | (1 << r);
            if best[next].as_ref().is_none_or(|b| cost + est < b.0) {
                let mut o = order.clone();
                o.push(r);
                best[next] = Some((cost + est, est, o));
            }
        }
    }
    match best[(1 << n) - 1].take() {
        Some((_, _, mut order)) => {
            // The smaller of the first two first (the left, build side).
            if n >= 2 && tables[order[0]].2 > tables[order[1]].2 {
                order.swap(0, 1);
            }
            order
        }
        // Not all connected by equalities: greedily, the rest as written.
        None => greedy(n, tables, join),
    }
}

/// Estimated rows of joining table `r` to a set of `rows` rows holding
/// `members`; None if no equality connects them.
fn join_rows(
    tables: &[(u32, pg_sys::Oid, f64)],
    edges: &[Edge],
    distinct: &impl Fn(u32, i16, f64) -> f64,
    members: &[usize],
    rows: f64,
    r: usize,
) -> Option<f64> {
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
}

/// The greedy order: the smallest join first, then each time the table
/// whose join adds the fewest rows.
fn greedy(
    n: usize,
    tables: &[(u32, pg_sys::Oid, f64)],
    join: impl Fn(&[usize], f64, usize) -> Option<f64>,
) -> Vec<usize> {
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
        let order: Vec<u32> = best_order(&tables, &edges, distinct)
            .into_iter()
            .map(|i| tables[i].0)
            .collect();
        assert_eq!(order, vec![6, 5, 4, 3, 2, 1]);
    }

    /// TPC-H Q09's shape: part (filtered), supplier, lineitem, partsupp,
    /// orders, nation (rti 1..6). The smallest pair, nation ⋈ supplier,
    /// would have all 6M lineitem rows join next; part ⋈ lineitem first
    /// keeps every join near 320K rows.
    #[test]
    fn q09_joins_part_to_lineitem_first() {
        let o = pg_sys::Oid::from(0u32);
        let tables = [
            (1, o, 10_600.0),
            (2, o, 10_000.0),
            (3, o, 6_000_000.0),
            (4, o, 800_000.0),
            (5, o, 1_500_000.0),
            (6, o, 25.0),
        ];
        let edges = [
            ((2, 1), (3, 3)), // s_suppkey = l_suppkey
            ((4, 2), (3, 3)), // ps_suppkey = l_suppkey
            ((4, 1), (3, 2)), // ps_partkey = l_partkey
            ((1, 1), (3, 2)), // p_partkey = l_partkey
            ((5, 1), (3, 1)), // o_orderkey = l_orderkey
            ((2, 4), (6, 1)), // s_nationkey = n_nationkey
        ];
        let distinct = |rti: u32, att: i16, rows: f64| -> f64 {
            let d: f64 = match (rti, att) {
                (1, 1) | (3, 2) | (4, 1) => 200_000.0,
                (2, 1) | (3, 3) | (4, 2) => 10_000.0,
                (3, 1) | (5, 1) => 1_500_000.0,
                (2, 4) | (6, 1) => 25.0,
                _ => rows,
            };
            d.min(rows)
        };
        let order: Vec<u32> = best_order(&tables, &edges, distinct)
            .into_iter()
            .map(|i| tables[i].0)
            .collect();
        assert_eq!(&order[..2], &[1, 3]);
        let greedy_first: Vec<u32> = greedy(6, &tables, |m: &[usize], r: f64, x: usize| {
            join_rows(&tables, &edges, &distinct, m, r, x)
        })
        .into_iter()
        .map(|i| tables[i].0)
        .collect();
        assert_eq!(&greedy_first[..2], &[6, 2]);
    }
}
