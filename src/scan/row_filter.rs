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
}

impl RowFilter {
    /// `expr`, over the scan's schema `scan`, as a filter on its columns
    /// (None if it cannot be rewritten so).
    pub fn new(expr: &Arc<dyn PhysicalExpr>, scan: &SchemaRef, dropped: Count) -> Option<Self> {
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
        })
    }

    /// The scan columns it reads.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Whether it is still evaluated: one that kept half the rows of its
    /// trial or more is left off, as it costs about what the join's probe
    /// or the FilterExec above does.
    pub fn active(&self) -> bool {
        self.seen < TRIAL_ROWS || self.kept * 2 < self.seen
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
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts).ok()?;
        // It may compute on rows the query's own evaluation skips (a cast
        // a WHERE clause guards): its errors are not the query's.
        let mask = match self.expr.evaluate(&batch).ok()? {
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => return None,
            v => v.into_array(n).ok()?,
        };
        let mask = mask.as_any().downcast_ref::<BooleanArray>()?.clone();
        let kept = mask.true_count();
        self.seen += n;
        self.kept += kept;
        if kept * 10 >= n * 9 {
            return None;
        }
        self.dropped.add(n - kept);
        Some(mask)
    }
}

/// The filters of one scan partition, in the order they are tried.
pub struct RowFilters(pub Vec<RowFilter>);

impl RowFilters {
    /// The filters still evaluated.
    pub fn active(&self) -> Vec<usize> {
        (0..self.0.len()).filter(|&i| self.0[i].active()).collect()
    }

    /// Drop the rows of a whole decoded batch that the filters reject.
    pub fn apply(&mut self, b: RecordBatch) -> Result<RecordBatch> {
        let mut b = b;
        for f in self.0.iter_mut().filter(|f| f.active()) {
            let arrays = f.columns.iter().map(|&k| b.column(k).clone()).collect();
            if let Some(mask) = f.mask(arrays, b.num_rows()) {
                b = datafusion::arrow::compute::filter_record_batch(&b, &mask)?;
            }
        }
        Ok(b)
    }
}
