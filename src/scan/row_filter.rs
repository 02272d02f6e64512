//! Filters a scan evaluates while it decodes: DataFusion's dynamic
//! filters (a hash join's keys, see `dynamic`) and the query's own
//! filters on the table. Each is evaluated on just the columns it reads,
//! so `decode` converts the other columns only for the rows that pass
//! (TPC-H Q19 kept 14K of 6M lineitem rows, after converting the text of
//! all 6M). Both kinds are shortcuts: the join and the FilterExec above
//! still decide every row, so a filter that fails on a batch, or keeps
//! almost every row, is simply not applied.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::utils::{collect_columns, reassign_expr_columns};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::Count;

/// Rows a filter is tried on before its worth is judged.
const TRIAL_ROWS: usize = 2 * 65_536;

/// One filter, over the columns it reads.
pub struct RowFilter {
    /// Over `schema`: the scan's columns at `columns`, in that order.
    expr: Arc<dyn PhysicalExpr>,
    /// Positions in the scan's schema, ascending.
    columns: Vec<usize>,
    schema: SchemaRef,
    /// Rows it was evaluated on, and rows it kept.
    seen: usize,
    kept: usize,
    /// Rows it removed (EXPLAIN ANALYZE).
    dropped: Count,
    /// One of the query's own filters, not a join's.
    query: bool,
}

impl RowFilter {
    /// `expr`, over the scan's schema `scan`, as a filter on its columns
    /// (None if it cannot be rewritten so).
    pub fn new(
        expr: &Arc<dyn PhysicalExpr>,
        scan: &SchemaRef,
        dropped: Count,
        query: bool,
    ) -> Option<Self> {
        let mut columns: Vec<usize> = collect_columns(expr).iter().map(|c| c.index()).collect();
        columns.sort_unstable();
        columns.dedup();
        let schema = Arc::new(scan.project(&columns).ok()?);
        let expr = reassign_expr_columns(expr.clone(), &schema).ok()?;
        Some(RowFilter {
            expr,
            columns,
            schema,
            seen: 0,
            kept: 0,
            dropped,
            query,
        })
    }

    /// The scan columns it reads.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Whether it is still evaluated: a join's filter that kept half the
    /// rows of its trial or more is left off, as it costs about what the
    /// join's probe does; one of the query's that kept nine in ten too
    /// (the query's filters are also judged together, see [`RowFilters`]).
    pub fn active(&self) -> bool {
        let dropping = if self.query {
            self.kept * 10 < self.seen * 9
        } else {
            self.kept * 2 < self.seen
        };
        self.seen < TRIAL_ROWS || dropping
    }

    /// Stop evaluating it.
    fn retire(&mut self) {
        self.seen = self.seen.max(TRIAL_ROWS);
        self.kept = self.seen;
    }

    /// Which of `n` rows pass, given its columns' arrays (in
    /// [`RowFilter::columns`] order); None: apply nothing (all pass, the
    /// filter failed, or it keeps nine rows in ten, which cost more to
    /// copy out than to leave to the node above). NULL does not pass.
    pub fn mask(&mut self, arrays: Vec<ArrayRef>, n: usize) -> Option<BooleanArray> {
        if n == 0 {
            return None;
        }
        let opts = RecordBatchOptions::new().with_row_count(Some(n));
        // It may compute on rows the query's own evaluation skips (a cast
        // a WHERE clause guards): its errors are not the query's, and one
        // that failed is not tried again. A dynamic filter whose join has
        // not read its build side yet is a literal true.
        let value = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts)
            .map_err(Into::into)
            .and_then(|batch| self.expr.evaluate(&batch));
        let mask = match value {
            Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))) => return None,
            Ok(v) => v
                .into_array(n)
                .ok()
                .and_then(|m| m.as_any().downcast_ref::<BooleanArray>().cloned()),
            Err(_) => None,
        };
        let Some(mask) = mask else {
            self.retire();
            return None;
        };
        let kept = mask.true_count();
        self.seen += n;
        self.kept += kept;
        if kept * 10 >= n * 9 {
            return None;
        }
        Some(mask)
    }

    /// Count `rows` rows it removed.
    pub fn dropped(&self, rows: usize) {
        self.dropped.add(rows);
    }
}

/// The filters of one scan partition, in the order they are tried: the
/// joins' first, then the query's.
pub struct RowFilters {
    pub filters: Vec<RowFilter>,
    /// Rows the query's filters were tried on together, and kept.
    query_seen: usize,
    query_kept: usize,
}

impl RowFilters {
    pub fn new(filters: Vec<RowFilter>) -> Self {
        RowFilters {
            filters,
            query_seen: 0,
            query_kept: 0,
        }
    }

    /// Note that the query's filters kept `kept` of `seen` rows. Together
    /// they must keep fewer than a quarter to stay: narrowing a batch
    /// copies its columns, which pays when the FilterExec above then sees
    /// few rows, not when it sees most (TPC-H Q20's one-year `l_shipdate`
    /// range, 42% of lineitem, made its scan 2x slower; Q06's four
    /// filters, 2% together, make it 1.5x faster).
    pub fn note_query(&mut self, seen: usize, kept: usize) {
        self.query_seen += seen;
        self.query_kept += kept;
    }

    /// Whether filter `i` is one of the query's own.
    pub fn is_query(&self, i: usize) -> bool {
        self.filters[i].query
    }

    /// The filters still evaluated.
    pub fn active(&self) -> Vec<usize> {
        let query_off = self.query_seen >= TRIAL_ROWS && self.query_kept * 4 >= self.query_seen;
        (0..self.filters.len())
            .filter(|&i| self.filters[i].active() && !(self.filters[i].query && query_off))
            .collect()
    }

    /// Drop the rows of a whole decoded batch that the filters reject.
    pub fn apply(&mut self, b: RecordBatch) -> Result<RecordBatch> {
        let mut b = b;
        let mut query_seen = None;
        for i in self.active() {
            let f = &mut self.filters[i];
            if f.query {
                query_seen.get_or_insert(b.num_rows());
            }
            let arrays = f.columns.iter().map(|&k| b.column(k).clone()).collect();
            if let Some(mask) = f.mask(arrays, b.num_rows()) {
                let before = b.num_rows();
                b = datafusion::arrow::compute::filter_record_batch(&b, &mask)?;
                f.dropped(before - b.num_rows());
            }
        }
        if let Some(seen) = query_seen {
            self.note_query(seen, b.num_rows());
        }
        Ok(b)
    }
}
