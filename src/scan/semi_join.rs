//! A semi or anti join (a subquery test in WHERE: `IN`, `EXISTS`, `NOT
//! EXISTS`) above an inner join, whose keys and filter read one side of it
//! only, runs on that side first when the other side is a whole table (no
//! filter: a foreign-key join then drops no row of the first side, so the
//! subquery test is best applied before it). DataFusion keeps the test
//! where the WHERE clause put it, above every join of the FROM list: TPC-H
//! Q18 joined customer, orders and all 6M lineitem rows before keeping the
//! 57 orders its `IN` subquery lists. Where the other side is filtered, the
//! inner join may drop most rows first (Q21's lineitem joined to one
//! nation's suppliers), and the test stays above it.
//!
//! Answers do not change: an inner join and a semi or anti join on columns
//! of one of its sides commute.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, Result};
use datafusion::logical_expr::{Expr, Join, LogicalPlan, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct SemiJoinFirst;

impl OptimizerRule for SemiJoinFirst {
    fn name(&self) -> &str {
        "omendb_semi_join_first"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(semi) = plan else {
            return Ok(Transformed::no(plan));
        };
        match pushed(&semi)? {
            Some(p) => Ok(Transformed::yes(p)),
            None => Ok(Transformed::no(LogicalPlan::Join(semi))),
        }
    }
}

/// `semi` (a left semi or anti join) moved into the side of the inner join
/// beneath it that it reads, as far down as it goes; None if it stays.
fn pushed(semi: &Join) -> Result<Option<LogicalPlan>> {
    if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti) {
        return Ok(None);
    }
    let inner = match semi.left.as_ref() {
        LogicalPlan::Join(inner) => inner,
        // Through a projection of columns: the semi join keeps its left
        // side's columns, so it commutes with one.
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            let below = over(semi, p.input.clone())?;
            return match pushed(&below)? {
                Some(b) => Projection::try_new(p.expr.clone(), Arc::new(b))
                    .map(|p| Some(LogicalPlan::Projection(p))),
                None => Ok(None),
            };
        }
        _ => return Ok(None),
    };
    if inner.join_type != JoinType::Inner {
        return Ok(None);
    }
    // The columns of the semi join's left side it reads.
    let mut reads: Vec<Column> = semi
        .on
        .iter()
        .flat_map(|(l, _)| l.column_refs())
        .cloned()
        .collect();
    if let Some(f) = &semi.filter {
        reads.extend(
            f.column_refs()
                .into_iter()
                .filter(|c| !semi.right.schema().has_column(c))
                .cloned(),
        );
    }
    let holds = |p: &LogicalPlan| reads.iter().all(|c| p.schema().has_column(c));
    let into_left = if holds(&inner.left) && whole_table(&inner.right) {
        true
    } else if holds(&inner.right) && whole_table(&inner.left) {
        false
    } else {
        return Ok(None);
    };
    let side = if into_left { &inner.left } else { &inner.right };
    let moved = over(semi, side.clone())?;
    let moved = Arc::new(pushed(&moved)?.unwrap_or(LogicalPlan::Join(moved)));
    let (left, right) = if into_left {
        (moved, inner.right.clone())
    } else {
        (inner.left.clone(), moved)
    };
    Ok(Some(LogicalPlan::Join(Join::try_new(
        left,
        right,
        inner.on.clone(),
        inner.filter.clone(),
        JoinType::Inner,
        inner.join_constraint,
        inner.null_equality,
    )?)))
}

/// `semi` with `left` as its left side.
fn over(semi: &Join, left: Arc<LogicalPlan>) -> Result<Join> {
    Join::try_new(
        left,
        semi.right.clone(),
        semi.on.clone(),
        semi.filter.clone(),
        semi.join_type,
        semi.join_constraint,
        semi.null_equality,
    )
}

/// Whether `plan` reads a whole table (renamed or projected at most).
fn whole_table(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(s) => s.filters.is_empty() && s.fetch.is_none(),
        LogicalPlan::Projection(p) => whole_table(&p.input),
        LogicalPlan::SubqueryAlias(a) => whole_table(&a.input),
        _ => false,
    }
}
