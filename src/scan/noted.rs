//! PostgreSQL's row estimates of a query's base tables, noted while it
//! plans the query (`set_rel_pathlist`), kept in the plan node, and looked
//! up for each level of the query DataFusion runs: for the join order
//! (`join_order`) and the scans' filtered rows (`estimates::ScanEstimates`).
//!
//! PostgreSQL plans the tables of the top level and those of the
//! subqueries it pulls up into it (`FROM (SELECT …)`, `EXISTS`, `IN`): a
//! pulled-up table gets a range-table index past the query's own. The
//! translation keeps those subqueries as levels of their own, so a table
//! below the top level is found by its relation and alias, when that pair
//! names one table in the whole query (TPC-H Q07, Q08 and Q09 join their
//! tables in a subquery in FROM).

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::pg_sys;

/// A base table PostgreSQL estimated: its range-table index in the planned
/// (top-level) query, relation, alias, and rows after its own filters.
#[derive(Clone, Debug, PartialEq)]
pub struct Noted {
    pub rti: u32,
    pub relid: u32,
    pub alias: String,
    pub rows: f64,
}

/// Estimates being collected while PostgreSQL plans `query`. A stack:
/// planning can nest (a function's SQL planned while the outer query's
/// constants are folded).
struct Capture {
    query: *mut pg_sys::Query,
    noted: Vec<Noted>,
}

/// Tables noted per planning at most (a FROM list is reordered only when
/// every table in it was noted).
const MAX_NOTED: usize = 1024;

thread_local! {
    static CAPTURES: RefCell<Vec<Capture>> = const { RefCell::new(Vec::new()) };
}

/// Start noting the base-table estimates of `parse`.
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
            noted: Vec::new(),
        });
    });
}

/// Stop noting for `parse`; its base tables' estimates.
pub fn end(parse: *mut pg_sys::Query) -> Vec<Noted> {
    CAPTURES.with(|c| {
        let mut c = c.borrow_mut();
        match c.iter().rposition(|e| e.query == parse) {
            Some(i) => c.drain(i..).next().map(|e| e.noted).unwrap_or_default(),
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
        let rte = *(*root).simple_rte_array.add(rti as usize);
        if rte.is_null() || (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return;
        }
        let parse = (*root).parse;
        CAPTURES.with(|c| {
            if let Some(e) = c.borrow_mut().iter_mut().rev().find(|e| e.query == parse) {
                // Bounded: an entry left by a planning that raised may match
                // later queries allocated at the same address.
                if e.noted.len() < MAX_NOTED {
                    e.noted.push(Noted {
                        rti,
                        relid: (*rte).relid.to_u32(),
                        alias: alias(rte),
                        rows: (*rel).rows,
                    });
                }
            }
        });
    }
}

/// The entries of a query's range table (from 1).
unsafe fn rtable(q: *mut pg_sys::Query) -> Vec<*mut pg_sys::RangeTblEntry> {
    // SAFETY: a Query's range table, a pointer list.
    unsafe {
        pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable)
            .iter_ptr()
            .collect()
    }
}

/// The alias a range-table entry is referred to by.
unsafe fn alias(rte: *mut pg_sys::RangeTblEntry) -> String {
    // SAFETY: an RTE; eref is always set by the parser.
    unsafe {
        if (*rte).eref.is_null() || (*(*rte).eref).aliasname.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr((*(*rte).eref).aliasname)
            .to_string_lossy()
            .into_owned()
    }
}

/// A query's noted estimates, for looking up the tables of each level.
#[derive(Default)]
pub struct Estimates {
    noted: Vec<Noted>,
    top: usize,
    /// How many tables of the whole query tree each (relation, alias)
    /// names: every level, subqueries in expressions and CTEs included.
    names: HashMap<(u32, String), usize>,
}

impl Estimates {
    /// `noted` for the tables of `top`, the query as PostgreSQL received it
    /// (not as it planned it: pulled-up subqueries are still subqueries).
    ///
    /// # Safety
    /// `top` is a valid Query.
    pub unsafe fn new(noted: Vec<Noted>, top: *mut pg_sys::Query) -> Estimates {
        let mut names = HashMap::new();
        // SAFETY: the caller's query.
        unsafe { count_tables(top, &mut names) };
        Estimates {
            noted,
            // SAFETY: as above.
            top: unsafe { rtable(top).len() },
            names,
        }
    }

    /// PostgreSQL's estimated rows of range-table entry `rti` of `q`, a
    /// level of the query (`top`: the top level), if it noted them.
    ///
    /// # Safety
    /// `q` is a valid Query of the query tree given to [`Estimates::new`].
    pub unsafe fn rows(&self, q: *mut pg_sys::Query, top: bool, rti: u32) -> Option<f64> {
        // SAFETY: the caller's query.
        let &rte = unsafe { rtable(q) }.get((rti as usize).wrapping_sub(1))?;
        // SAFETY: an RTE of it.
        let (kind, relid, alias) = unsafe { ((*rte).rtekind, (*rte).relid.to_u32(), alias(rte)) };
        if kind != pg_sys::RTEKind::RTE_RELATION {
            return None;
        }
        if top {
            // The query's own entries keep their indexes when PostgreSQL
            // appends those of the subqueries it pulls up.
            return self
                .noted
                .iter()
                .find(|n| n.rti == rti && n.relid == relid && rti as usize <= self.top)
                .map(|n| n.rows);
        }
        let key = (relid, alias);
        if self.names.get(&key) != Some(&1) {
            return None;
        }
        let mut found = self
            .noted
            .iter()
            .filter(|n| n.relid == key.0 && n.alias == key.1);
        match (found.next(), found.next()) {
            (Some(n), None) => Some(n.rows),
            _ => None,
        }
    }

    /// (range-table index, rows) of every table of `q` estimated.
    ///
    /// # Safety
    /// As for [`Estimates::rows`].
    pub unsafe fn of_level(&self, q: *mut pg_sys::Query, top: bool) -> Vec<(u32, f64)> {
        // SAFETY: the caller's query.
        let n = unsafe { rtable(q).len() } as u32;
        // SAFETY: as above.
        (1..=n)
            .filter_map(|rti| unsafe { self.rows(q, top, rti) }.map(|r| (rti, r)))
            .collect()
    }
}

/// Count the tables (relation, alias) of every Query in `q`'s tree.
unsafe fn count_tables(q: *mut pg_sys::Query, out: &mut HashMap<(u32, String), usize>) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, cx: *mut std::ffi::c_void) -> bool {
        // SAFETY: called by PostgreSQL's tree walkers with our map.
        unsafe {
            if node.is_null() {
                return false;
            }
            if (*node).type_ == pg_sys::NodeTag::T_Query {
                let q = node as *mut pg_sys::Query;
                let out = &mut *(cx as *mut HashMap<(u32, String), usize>);
                for rte in rtable(q) {
                    if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                        *out.entry(((*rte).relid.to_u32(), alias(rte))).or_default() += 1;
                    }
                }
                // A CTE is translated at each reference (PostgreSQL may pull
                // up one of them): its tables count once per reference
                // (the walk below counts one).
                let ctes = pgrx::PgList::<pg_sys::CommonTableExpr>::from_pg((*q).cteList);
                for cte in ctes.iter_ptr() {
                    for _ in 1..(*cte).cterefcount {
                        walker((*cte).ctequery, cx);
                    }
                }
                // Flags 0: range-table subqueries and CTEs are walked too.
                return pg_sys::query_tree_walker(q, Some(walker), cx, 0);
            }
            pg_sys::expression_tree_walker(node, Some(walker), cx)
        }
    }
    // SAFETY: a Query tree.
    unsafe {
        walker(
            q as *mut pg_sys::Node,
            out as *mut HashMap<_, _> as *mut std::ffi::c_void,
        );
    }
}
