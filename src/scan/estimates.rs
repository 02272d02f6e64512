//! PostgreSQL's column statistics (what ANALYZE stored in `pg_statistic`)
//! handed to DataFusion's physical planner, which has no other source.
//!
//! DataFusion chooses each hash join's build side, and whether to collect
//! it once or partition both sides, from its inputs' estimated rows, and
//! estimates a join's rows as `left * right / max(distinct keys)`. Without
//! distinct counts it takes every key as unique, so a foreign-key join
//! (lineitem ⋈ supplier) comes out as small as its smaller side and the
//! million-row result ends up as the next join's build side (TPC-H Q07).
//! For the rows a scan's filters pass, see `filter_estimates`.

use datafusion::common::stats::Precision;
use datafusion::common::ColumnStatistics;
use pgrx::pg_sys;

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
