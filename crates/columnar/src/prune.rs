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
            let nulls = stats.nulls.get(f.column).copied().unwrap_or(0);
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
