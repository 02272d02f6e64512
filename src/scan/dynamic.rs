//! DataFusion's dynamic filters in omendb's scans: a hash join whose build
//! side is read passes a filter on its keys down to the scans of its probe
//! side. The scans keep them (`source::OmenScanExec`) and apply them as
//! they decode (`row_filter`); after physical planning, `exec` drops them
//! where they do not pay, with the helpers here.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::physical_plan::ExecutionPlan;

/// Whether every node of `plan` names its output columns differently.
pub fn unique_names(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let schema = plan.schema();
    let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    names.sort_unstable();
    names.windows(2).all(|w| w[0] != w[1]) && plan.children().into_iter().all(unique_names)
}

/// Hash joins that partition both sides drop their dynamic filter: every
/// probe partition would wait for all build partitions (a barrier), and
/// the filter is a hash-table probe per row, about the join's own cost
/// (measured: TPC-H Q05, Q10, Q18 up to 2x slower). A join whose build side
/// is collected once (small) keeps it: min/max bounds and, for up to 4,096
/// keys, an IN list (Q07, Q19, Q21 up to 1.8x faster), and so does one
/// whose probe side is a grouping aggregate (see below; kept as DataFusion
/// planned it). The scans' copy of a dropped filter stays `true` and is
/// tried last (`row_filter`). The partitioned joins rebuilt here also build
/// on their smaller side (see below): done in this pass because it already
/// rebuilds exactly those joins, after DataFusion's rules.
pub fn collect_left_filters_only(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::common::JoinType;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
    plan.transform_up(|node| {
        let Some(j) = node.as_any().downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        if *j.partition_mode() == PartitionMode::CollectLeft {
            return Ok(Transformed::no(node));
        }
        // A join whose probe side is an aggregate keeps its filter: the
        // rows it drops are never grouped (TPC-H Q17 groups 6K lineitem
        // rows instead of 6M, 0.6 of its time).
        if *j.join_type() == JoinType::Inner && feeds_aggregate(j.right()) {
            return Ok(Transformed::no(node));
        }
        let plain = HashJoinExec::try_new(
            j.left().clone(),
            j.right().clone(),
            j.on().to_vec(),
            j.filter().cloned(),
            j.join_type(),
            j.projection.clone(),
            *j.partition_mode(),
            j.null_equality(),
        )?;
        // Build on the side estimated smaller. DataFusion's join selection
        // should have, but its choice does not always survive its later
        // rules (TPC-H Q05 built on 1.2M lineitem rows against 227K orders).
        let rows = |p: &Arc<dyn ExecutionPlan>| {
            p.partition_statistics(None)
                .ok()
                .and_then(|s| s.num_rows.get_value().copied())
        };
        if *j.join_type() == JoinType::Inner {
            if let (Some(l), Some(r)) = (rows(j.left()), rows(j.right())) {
                if l > r {
                    return Ok(Transformed::yes(
                        plain.swap_inputs(PartitionMode::Partitioned)?,
                    ));
                }
            }
        }
        Ok(Transformed::yes(Arc::new(plain) as Arc<dyn ExecutionPlan>))
    })
    .map(|t| t.data)
}

/// Nodes that pass their input's rows through unchanged in number (a
/// filter offered above them reaches their input).
pub const PASS_THROUGH: [&str; 5] = [
    "CooperativeExec",
    "RepartitionExec",
    "CoalesceBatchesExec",
    "CoalescePartitionsExec",
    "ProjectionExec",
];

/// Whether `plan` is an aggregate with a GROUP BY: DataFusion passes a
/// filter through it only when the filter reads grouping keys alone (its
/// check lets every filter through an aggregate without one).
pub fn is_grouping(plan: &dyn ExecutionPlan) -> bool {
    use datafusion::physical_plan::aggregates::AggregateExec;
    plan.as_any()
        .downcast_ref::<AggregateExec>()
        .is_some_and(|a| !a.group_expr().expr().is_empty())
}

/// Whether `plan` is a grouping aggregate, under nodes that pass rows
/// through.
fn feeds_aggregate(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if is_grouping(plan.as_ref()) {
        return true;
    }
    PASS_THROUGH.contains(&plan.name())
        && plan.children().first().is_some_and(|c| feeds_aggregate(c))
}
