//! DataFusion cannot estimate a filter on a scan: it takes 20% of the rows
//! for text equalities and omendb's functions, and all of them for
//! comparisons of columns without min/max. A scan of a table PostgreSQL
//! planned reports the rows PostgreSQL estimates its filters pass (see
//! `noted`), and `ScanEstimates` has the FilterExec above take that as it
//! is: TPC-H Q17's 204 `part` rows were 40,000, so its join to lineitem
//! came out at 1.2M rows and partitioned both sides.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;

use super::source::OmenScanExec;

/// A physical optimizer rule, run before DataFusion chooses its joins: a
/// FilterExec straight above a scan that reports PostgreSQL's estimate of
/// its filtered rows keeps that estimate (selectivity 100%) instead of
/// applying DataFusion's default 20% again. Its column min/max are not
/// reported, so DataFusion's own interval analysis keeps it too.
#[derive(Debug)]
pub struct ScanEstimates;

impl PhysicalOptimizerRule for ScanEstimates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(f) = node.as_any().downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let estimated = f
                .input()
                .as_any()
                .downcast_ref::<OmenScanExec>()
                .is_some_and(OmenScanExec::has_filtered_estimate);
            if !estimated || f.default_selectivity() == 100 || node.fetch().is_some() {
                return Ok(Transformed::no(node));
            }
            let kept = FilterExec::try_new(f.predicate().clone(), f.input().clone())?
                .with_default_selectivity(100)?
                .with_projection(f.projection().cloned())?
                .with_batch_size(config.execution.batch_size)?;
            Ok(Transformed::yes(Arc::new(kept) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "omendb_scan_estimates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
