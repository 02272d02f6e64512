//! PostgreSQL's column statistics (what ANALYZE stored in `pg_statistic`)
//! handed to DataFusion's physical planner, which has no other source.
//!
//! DataFusion chooses each hash join's build side, and whether to collect
//! it once or partition both sides, from its inputs' estimated rows, and
//! estimates a join's rows as `left * right / max(distinct keys)`. Without
//! distinct counts it takes every key as unique, so a foreign-key join
//! (lineitem ⋈ supplier) comes out as small as its smaller side and the
//! million-row result ends up as the next join's build side (TPC-H Q07).
//!
//! Nor can DataFusion estimate a filter on a scan: it takes 20% of the
//! rows for text equalities and omendb's functions, and all of them for
//! comparisons of columns without min/max. A scan of a table PostgreSQL
//! planned reports the rows PostgreSQL estimates its filters pass, and
//! `ScanEstimates` has the FilterExec above take that as it is: TPC-H Q17's
//! 204 `part` rows were 40,000, so its join to lineitem came out at 1.2M
//! rows and partitioned both sides.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ColumnStatistics, Result};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;
use pgrx::pg_sys;

use super::source::OmenScanExec;

/// One column's `pg_statistic` summary.
#[derive(Clone, Copy, Debug)]
pub struct ColumnEstimate {
    /// Fraction of rows that are NULL.
    null_frac: f64,
    /// `stadistinct`: distinct non-NULL values if positive, minus their
    /// fraction of the rows if negative, unknown if 0.
    distinct: f64,
}

impl ColumnEstimate {
    /// What ANALYZE stored for attribute `attno` of `relid` (`inh`: the
    /// statistics over a partitioned table's partitions), if anything.
    pub fn lookup(relid: pg_sys::Oid, attno: i16, inh: bool) -> Option<ColumnEstimate> {
        // SAFETY: a syscache lookup, released before returning; the
        // fixed-width fields of pg_statistic come first in its tuple.
        unsafe {
            let tup = pg_sys::SearchSysCache3(
                pg_sys::SysCacheIdentifier::STATRELATTINH as i32,
                pg_sys::Datum::from(relid),
                pg_sys::Datum::from(attno),
                pg_sys::Datum::from(inh),
            );
            if tup.is_null() {
                return None;
            }
            let s = &*(pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_statistic);
            let e = ColumnEstimate {
                null_frac: (s.stanullfrac as f64).clamp(0.0, 1.0),
                distinct: s.stadistinct as f64,
            };
            pg_sys::ReleaseSysCache(tup);
            Some(e)
        }
    }

    /// DataFusion's statistics of the column in a scan of `rows` rows out
    /// of the table's `table_rows`.
    pub fn statistics(&self, table_rows: usize, rows: usize) -> ColumnStatistics {
        let mut c = ColumnStatistics::new_unknown();
        c.null_count = Precision::Inexact((self.null_frac * rows as f64) as usize);
        if let Some(d) = self.distinct_of(table_rows as f64) {
            c.distinct_count = Precision::Inexact((d as usize).min(rows.max(1)));
        }
        c
    }

    /// Distinct non-NULL values in the table of `table_rows` rows, if known.
    pub fn distinct_of(&self, table_rows: f64) -> Option<f64> {
        let d = if self.distinct > 0.0 {
            self.distinct
        } else {
            -self.distinct * table_rows * (1.0 - self.null_frac)
        };
        (d >= 1.0).then_some(d)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_counts_follow_stadistinct() {
        let unique = ColumnEstimate {
            null_frac: 0.0,
            distinct: -1.0,
        };
        assert_eq!(
            unique.statistics(1000, 500).distinct_count,
            Precision::Inexact(500)
        );
        assert_eq!(
            unique.statistics(1000, 1000).distinct_count,
            Precision::Inexact(1000)
        );
        let nations = ColumnEstimate {
            null_frac: 0.5,
            distinct: 25.0,
        };
        let s = nations.statistics(1000, 1000);
        assert_eq!(s.distinct_count, Precision::Inexact(25));
        assert_eq!(s.null_count, Precision::Inexact(500));
        let unknown = ColumnEstimate {
            null_frac: 0.0,
            distinct: 0.0,
        };
        assert_eq!(
            unknown.statistics(1000, 1000).distinct_count,
            Precision::Absent
        );
    }
}
