//! DataFusion's dynamic filters in omendb's scans: a hash join whose build
//! side is read passes a filter on its keys down to the scans of its probe
//! side. The scans keep them (`source::OmenScanExec`) and apply them per
//! batch here; after physical planning, `exec` drops them where they do
//! not pay, with the helpers here.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
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
/// is collected once (small) keeps it: min/max bounds and, for up to 150
/// keys, an IN list (Q07, Q19, Q21 up to 1.8x faster). The scans' copy of a
/// dropped filter stays `true` and is skipped. The partitioned joins rebuilt
/// here also build on their smaller side (see below): done in this pass
/// because it already rebuilds exactly those joins, after DataFusion's rules.
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

/// The dynamic filters of one scan partition, each with what it has done.
pub struct Dynamic {
    pub filters: Vec<DynamicFilter>,
    pub dropped: datafusion::physical_plan::metrics::Count,
}

pub struct DynamicFilter {
    pub expr: Arc<dyn PhysicalExpr>,
    /// Rows it was evaluated on, and rows it kept.
    pub seen: usize,
    pub kept: usize,
}

/// Rows a filter is tried on before its worth is judged.
const DYNAMIC_TRIAL_ROWS: usize = 2 * 65_536;

impl Dynamic {
    /// Drop the rows of `b` that the filters reject (NULL rejects: they come
    /// from inner-join keys). A filter not yet known reads as true; one
    /// that keeps half the rows or more is left off after its trial, since
    /// evaluating it costs about what the join's own probe does.
    pub fn apply(&mut self, b: RecordBatch) -> Result<RecordBatch> {
        let mut b = b;
        for f in &mut self.filters {
            let n = b.num_rows();
            if n == 0 {
                break;
            }
            if f.seen >= DYNAMIC_TRIAL_ROWS && f.kept * 2 >= f.seen {
                continue;
            }
            // The filter may compute on rows the FilterExec above would
            // drop (a cast a WHERE clause guards): its errors are not the
            // query's.
            let mask = match f.expr.evaluate(&b).and_then(|v| match v {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => Ok(None),
                v => v.into_array(n).map(Some),
            }) {
                Ok(Some(mask)) => mask,
                Ok(None) | Err(_) => continue,
            };
            let Some(mask) = mask
                .as_any()
                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
            else {
                continue;
            };
            let kept = mask.true_count();
            f.seen += n;
            f.kept += kept;
            // Copying out nine rows in ten costs more than the join's probe
            // of the tenth: such batches pass as they are.
            if kept * 10 >= n * 9 {
                continue;
            }
            b = datafusion::arrow::compute::filter_record_batch(&b, mask)?;
            self.dropped.add(n - kept);
        }
        Ok(b)
    }
}
