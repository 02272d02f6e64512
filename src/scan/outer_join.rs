//! An outer join whose nullable side a filter above it rejects is an inner
//! join. DataFusion's own rule (`eliminate_outer_join`) knows its operators
//! but not omendb's functions, and a correlated scalar subquery compared
//! with a per-value-scale numeric (TPC-H Q17's `l_quantity < (select 0.2 *
//! avg(l_quantity) ...)`, Q20's) is decorrelated into a LEFT JOIN filtered
//! by `pg_numeric_lt`: kept outer, the join passes no filter down to the
//! aggregate beneath it (DataFusion pushes join filters through inner joins
//! only), so all of lineitem is grouped to keep a few hundred groups.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Filter, Join, LogicalPlan, Operator};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::functions;

#[derive(Debug, Default)]
pub struct StrictOuterJoin;

impl OptimizerRule for StrictOuterJoin {
    fn name(&self) -> &str {
        "omendb_strict_outer_join"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let mut rejected = Vec::new();
        for conjunct in split_conjunction(&filter.predicate) {
            if strict(conjunct) {
                rejected.extend(conjunct.column_refs().into_iter().cloned());
            }
        }
        match inner_below(&filter.input, &rejected)? {
            Some(input) => Filter::try_new(filter.predicate.clone(), Arc::new(input))
                .map(|f| Transformed::yes(LogicalPlan::Filter(f))),
            None => Ok(Transformed::no(LogicalPlan::Filter(filter))),
        }
    }
}

/// `plan` with the outer join at its top (under projections that pass the
/// `rejected` columns through) made inner where those columns come from
/// its nullable side; None if nothing changes.
fn inner_below(plan: &LogicalPlan, rejected: &[Column]) -> Result<Option<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(p) => {
            let kept: Vec<Column> = rejected
                .iter()
                .filter(|c| {
                    p.expr
                        .iter()
                        .any(|e| matches!(e, Expr::Column(x) if x == *c))
                })
                .cloned()
                .collect();
            match inner_below(&p.input, &kept)? {
                Some(input) => plan
                    .with_new_exprs(plan.expressions(), vec![input])
                    .map(Some),
                None => Ok(None),
            }
        }
        LogicalPlan::Join(join) => {
            let on = |side: &LogicalPlan| rejected.iter().any(|c| side.schema().has_column(c));
            let (left, right) = (on(&join.left), on(&join.right));
            let to = match join.join_type {
                JoinType::Left if right => JoinType::Inner,
                JoinType::Right if left => JoinType::Inner,
                JoinType::Full if left && right => JoinType::Inner,
                JoinType::Full if left => JoinType::Left,
                JoinType::Full if right => JoinType::Right,
                _ => return Ok(None),
            };
            Ok(Some(LogicalPlan::Join(Join {
                join_type: to,
                ..join.clone()
            })))
        }
        _ => Ok(None),
    }
}

/// Whether `e` is NULL whenever one of its columns is NULL (so a filter on
/// it drops that row).
fn strict(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::Cast(c) => strict(&c.expr),
        Expr::Negative(x) => strict(x),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::Plus
                    | Operator::Minus
                    | Operator::Multiply
                    | Operator::Divide
                    | Operator::Modulo
            ) && strict(left)
                && strict(right)
        }
        Expr::ScalarFunction(f) => functions::is_strict(&f.func) && f.args.iter().all(strict),
        _ => false,
    }
}
