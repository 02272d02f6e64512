//! Min/max skipping: which row groups (or whole segments) a scan may pass
//! over because their statistics prove no row satisfies its filters.
//! Shared by the table AM's sequential scans and the DataFusion scan.

use crate::stats::{ColumnStats, GroupStats};

/// A comparison the statistics can decide.
#[derive(Clone, Debug)]
pub enum Test {
    /// btree strategy (1 <, 2 <=, 3 =, 4 >=, 5 >) against a constant.
    Cmp(u16, Bound),
    IsNull,
    IsNotNull,
}

#[derive(Clone, Copy, Debug)]
pub enum Bound {
    Int(i64),
    Float(f64),
}

#[derive(Clone, Debug)]
pub struct Filter {
    pub column: usize,
    pub test: Test,
}

/// What one scan needs: the stored columns to decode (None: all) and the
/// filters for skipping.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    pub columns: Option<Vec<usize>>,
    pub filters: Vec<Filter>,
}

impl Hints {
    /// Whether rows summarised by `stats` may satisfy every filter.
    pub fn may_match(&self, stats: &GroupStats) -> bool {
        self.filters.iter().all(|f| {
            let rows = stats.rows;
            // A column added after these rows were written has no
            // statistics here: the rows hold NULL in it.
            let nulls = stats.nulls.get(f.column).copied().unwrap_or(rows);
            let col = stats.columns.get(f.column).unwrap_or(&ColumnStats::None);
            match &f.test {
                Test::IsNull => nulls > 0,
                Test::IsNotNull => nulls < rows,
                // A strict comparison never matches NULL.
                Test::Cmp(..) if nulls == rows => false,
                Test::Cmp(s, b) => cmp_may_match(*s, *b, col),
            }
        })
    }
}

impl Hints {
    /// Whether rows of which all that is known is that column `column` lies
    /// in `[min, max]` or, if `nulls`, is NULL (a partition's bounds) may
    /// satisfy every filter on that column. Filters on other columns are
    /// not decided here. `min > max` means no non-NULL value.
    pub fn may_match_column(&self, column: usize, min: i64, max: i64, nulls: bool) -> bool {
        let values = min <= max;
        let stats = ColumnStats::Int { min, max };
        self.filters
            .iter()
            .filter(|f| f.column == column)
            .all(|f| match &f.test {
                Test::IsNull => nulls,
                Test::IsNotNull => values,
                Test::Cmp(s, b) => values && cmp_may_match(*s, *b, &stats),
            })
    }
}

fn cmp_may_match(strategy: u16, bound: Bound, col: &ColumnStats) -> bool {
    match (bound, col) {
        (Bound::Int(c), ColumnStats::Int { min, max }) => match strategy {
            1 => *min < c,
            2 => *min <= c,
            3 => *min <= c && c <= *max,
            4 => *max >= c,
            5 => *max > c,
            _ => true,
        },
        (Bound::Float(c), ColumnStats::Float { min, max, has_nan }) => {
            // PostgreSQL sorts NaN above every number. With no non-NaN
            // values min > max, and the range tests below are all false.
            match strategy {
                1 => *min < c,
                2 => *min <= c,
                3 => *min <= c && c <= *max,
                4 => *max >= c || *has_nan,
                5 => *max > c || *has_nan,
                _ => true,
            }
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(filters: &[(usize, Test)]) -> Hints {
        Hints {
            columns: None,
            filters: filters
                .iter()
                .map(|(column, test)| Filter {
                    column: *column,
                    test: test.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_partition_range_is_tested_only_against_its_column() {
        let h = hints(&[(2, Test::Cmp(1, Bound::Int(1000))), (0, Test::IsNull)]);
        // [1000, 2999]: nothing below 1000; the IsNull on column 0 is not ours.
        assert!(!h.may_match_column(2, 1000, 2999, false));
        assert!(h.may_match_column(2, 999, 2999, false));
        assert!(h.may_match_column(2, i64::MIN, -1, false));
        let eq = hints(&[(1, Test::Cmp(3, Bound::Int(5)))]);
        assert!(eq.may_match_column(1, 5, 5, false));
        assert!(!eq.may_match_column(1, 6, 9, true));
        assert!(!eq.may_match_column(1, 0, 4, false));
        let ge = hints(&[
            (1, Test::Cmp(4, Bound::Int(10))),
            (1, Test::Cmp(5, Bound::Int(0))),
        ]);
        assert!(ge.may_match_column(1, 10, i64::MAX, false));
        assert!(!ge.may_match_column(1, 1, 9, false));
    }

    #[test]
    fn a_column_added_after_the_rows_reads_as_null() {
        // Statistics of rows written when the table had one column.
        let stats = GroupStats {
            rows: 10,
            nulls: vec![0],
            columns: vec![ColumnStats::Int { min: 1, max: 10 }],
        };
        assert!(hints(&[(1, Test::IsNull)]).may_match(&stats));
        assert!(!hints(&[(1, Test::IsNotNull)]).may_match(&stats));
        assert!(!hints(&[(1, Test::Cmp(3, Bound::Int(5)))]).may_match(&stats));
        assert!(hints(&[(0, Test::Cmp(3, Bound::Int(5)))]).may_match(&stats));
    }

    #[test]
    fn nulls_and_empty_ranges() {
        let is_null = hints(&[(0, Test::IsNull)]);
        assert!(!is_null.may_match_column(0, 1, 10, false));
        assert!(is_null.may_match_column(0, 1, 10, true));
        let not_null = hints(&[(0, Test::IsNotNull)]);
        // A partition for NULL keys only.
        assert!(!not_null.may_match_column(0, i64::MAX, i64::MIN, true));
        assert!(not_null.may_match_column(0, 3, 3, true));
        let lt = hints(&[(0, Test::Cmp(1, Bound::Int(100)))]);
        assert!(!lt.may_match_column(0, i64::MAX, i64::MIN, true));
        // A float bound against an integer range is not decided: kept.
        let f = hints(&[(0, Test::Cmp(1, Bound::Float(-5.0)))]);
        assert!(f.may_match_column(0, 0, 10, false));
    }
}
