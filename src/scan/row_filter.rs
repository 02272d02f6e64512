//! Filters a scan evaluates while it decodes: DataFusion's dynamic
//! filters (a hash join's keys, see `dynamic`) and the query's own
//! filters on the table. Each is evaluated on just the columns it reads,
//! so `decode` converts the other columns only for the rows that pass
//! (TPC-H Q19 kept 14K of 6M lineitem rows, after converting the text of
//! all 6M). Both kinds are shortcuts: the join and the FilterExec above
//! still decide every row, so a filter that fails on a batch, or keeps
//! almost every row, is simply not applied. (Beneath an aggregate a join's
//! filter removes rows before they are grouped: it drops only rows whose
//! grouping key the join's build side lacks, groups the join drops anyway.)

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::utils::{collect_columns, reassign_expr_columns};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::Count;

/// Rows a filter is tried on before its worth is judged.
const TRIAL_ROWS: usize = 2 * 65_536;
/// Rows a filter's cost is measured on, at least (a row group has 65,536).
const MEASURE_ROWS: usize = 4096;

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
    /// Measured when it ran first on a row group (see
    /// [`RowFilters::order`]): rows, rows kept, and nanoseconds, reading
    /// the group and decoding its columns included.
    first: Option<(usize, usize, u64)>,
    /// Its last evaluation was a literal true: a join's filter before its
    /// build side is read, or one whose join dropped it (see `dynamic`).
    pending: bool,
    /// One of the query's own filters, not a join's.
    query: bool,
    /// It reads a text column.
    text: bool,
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
        let text = schema.fields().iter().any(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        });
        let expr = reassign_expr_columns(expr.clone(), &schema).ok()?;
        Some(RowFilter {
            expr,
            columns,
            schema,
            seen: 0,
            kept: 0,
            dropped,
            first: None,
            pending: false,
            query,
            text,
        })
    }

    /// Rows it has been evaluated on (to tell whether a call evaluated it).
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// It ran first on a row group: `seen` rows before, `kept` after, in
    /// `nanos`. The first such measurement on enough rows is kept.
    pub fn ran_first(&mut self, seen: usize, kept: usize, nanos: u64) {
        if seen >= MEASURE_ROWS && self.first.is_none() {
            self.first = Some((seen, kept, nanos));
        }
    }

    /// Time per dropped row when it runs first (smaller runs earlier).
    fn rank(&self) -> f64 {
        let Some((seen, kept, nanos)) = self.first else {
            return 0.0;
        };
        let drop = 1.0 - kept as f64 / seen as f64;
        nanos as f64 / seen as f64 / drop.max(0.01)
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
            Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))) => {
                self.pending = true;
                return None;
            }
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
        self.pending = false;
        let kept = mask.true_count();
        self.seen += n;
        self.kept += kept;
        if kept * 10 >= n * 9 {
            return None;
        }
        Some(mask)
    }

    /// Count `rows` rows it removed.
    fn dropped(&self, rows: usize) {
        self.dropped.add(rows);
    }
}

/// The filters of one scan partition. Each is run first on one batch, to
/// measure what it costs (its columns' decoding included) and drops on its
/// own; then they run cheapest per dropped row first: a join's filter that
/// keeps 14K of 6M lineitem rows before anything else (TPC-H Q19), a
/// one-year date range before a two-key join filter that costs a hash
/// lookup a row (Q20). The query's filters on text always run last: each
/// value is checked and converted before it is compared.
pub struct RowFilters {
    pub filters: Vec<RowFilter>,
    /// Rows the query's filters were tried on together, and those they
    /// did not drop (a join's filter may run between them).
    query_seen: usize,
    query_kept: usize,
    /// In the batch at hand: the rows the first of the query's filters saw,
    /// and the rows they dropped.
    batch_seen: Option<usize>,
    batch_dropped: usize,
}

impl RowFilters {
    pub fn new(filters: Vec<RowFilter>) -> Self {
        let mut f = RowFilters {
            filters,
            query_seen: 0,
            query_kept: 0,
            batch_seen: None,
            batch_dropped: 0,
        };
        f.order();
        f
    }

    /// Start a batch: order the filters (below) and begin its tally.
    pub fn begin(&mut self) {
        self.order();
        self.batch_seen = None;
        self.batch_dropped = 0;
    }

    /// Filter `i` ran on `before` rows of the batch and dropped `dropped`.
    pub fn ran(&mut self, i: usize, before: usize, dropped: usize) {
        let f = &mut self.filters[i];
        f.dropped(dropped);
        if f.query {
            self.batch_seen.get_or_insert(before);
            self.batch_dropped += dropped;
        }
    }

    /// End a batch: what the query's filters kept counts towards judging
    /// them together (see [`Self::query_off`]).
    pub fn end(&mut self) {
        if let Some(seen) = self.batch_seen.take() {
            self.query_seen += seen;
            self.query_kept += seen - self.batch_dropped;
        }
    }

    /// Put the filters in the order they are to be tried next: one of the
    /// evaluated ones not yet measured first, then by rank, the query's
    /// filters on text last, and last of all those not evaluated now
    /// (retired, or pending: they are measured once they evaluate).
    pub fn order(&mut self) {
        let query_off = self.query_off();
        let live = |f: &RowFilter| f.active() && !(f.query && query_off) && !f.pending;
        let late = |f: &RowFilter| f.query && f.text;
        self.filters.sort_by(|a, b| {
            (!live(a))
                .cmp(&!live(b))
                .then(late(a).cmp(&late(b)))
                .then(a.rank().total_cmp(&b.rank()))
        });
        let live_count = self.filters.iter().take_while(|f| live(f)).count();
        let unmeasured = self.filters[..live_count]
            .iter()
            .position(|f| f.first.is_none() && !late(f));
        if let Some(i) = unmeasured {
            // Stable sorts keep the rest in rank order.
            let f = self.filters.remove(i);
            self.filters.insert(0, f);
        }
        // A filter on columns already decoded for earlier ones costs only
        // its evaluation: it runs right after them (Q06's two bounds of
        // one date range, which drop 85% together and half each alone).
        for i in 0..live_count {
            let decoded: Vec<usize> = self.filters[..=i]
                .iter()
                .flat_map(|f| f.columns.iter().copied())
                .collect();
            let follows = (i + 1..live_count).find(|&j| {
                !late(&self.filters[j])
                    && self.filters[j].columns.iter().all(|c| decoded.contains(c))
            });
            if let Some(j) = follows {
                let f = self.filters.remove(j);
                self.filters.insert(i + 1, f);
            }
        }
    }

    /// Whether the query's filters, judged together, are off. Together
    /// they must keep fewer than a quarter to stay: narrowing a batch
    /// copies its columns, which pays when the FilterExec above then sees
    /// few rows, not when it sees most (TPC-H Q20's one-year `l_shipdate`
    /// range, 42% of lineitem, made its scan 2x slower; Q06's four
    /// filters, 2% together, make it 1.5x faster).
    fn query_off(&self) -> bool {
        self.query_seen >= TRIAL_ROWS && self.query_kept * 4 >= self.query_seen
    }

    /// The filters still evaluated.
    pub fn active(&self) -> Vec<usize> {
        let query_off = self.query_off();
        (0..self.filters.len())
            .filter(|&i| self.filters[i].active() && !(self.filters[i].query && query_off))
            .collect()
    }

    /// Drop the rows of a whole decoded batch that the filters reject.
    pub fn apply(&mut self, b: RecordBatch) -> Result<RecordBatch> {
        self.begin();
        let mut b = b;
        // Not measured here: write-store rows come decoded, so the cost of
        // decoding a filter's columns would be missing.
        for i in self.active() {
            let f = &mut self.filters[i];
            let before = b.num_rows();
            let arrays = f.columns.iter().map(|&k| b.column(k).clone()).collect();
            if let Some(mask) = f.mask(arrays, before) {
                b = datafusion::arrow::compute::filter_record_batch(&b, &mask)?;
            }
            self.ran(i, before, before - b.num_rows());
        }
        self.end();
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    fn filter(schema: &SchemaRef, column: &str, op: Operator, v: ScalarValue) -> RowFilter {
        let e = binary(col(column, schema).unwrap(), op, lit(v), schema).unwrap();
        RowFilter::new(&e, schema, Count::new(), true).unwrap()
    }

    fn order(f: &RowFilters) -> Vec<String> {
        f.filters.iter().map(|f| f.expr.to_string()).collect()
    }

    /// Unmeasured filters run first one at a time; then the cheapest per
    /// dropped row leads, a filter on its columns follows it whatever its
    /// rank, a text filter comes after them, and a filter that evaluated
    /// to a literal true (a join's before its build side is read) last.
    #[test]
    fn filters_run_by_measured_cost_per_dropped_row() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Int32, true),
            Field::new("t", DataType::Utf8, true),
        ]));
        let int = |v| ScalarValue::Int32(Some(v));
        let pending = lit(ScalarValue::Boolean(Some(true)));
        let mut f = RowFilters::new(vec![
            RowFilter::new(&pending, &schema, Count::new(), false).unwrap(),
            filter(
                &schema,
                "t",
                Operator::Eq,
                ScalarValue::Utf8(Some("x".into())),
            ),
            filter(&schema, "b", Operator::Gt, int(0)),
            filter(&schema, "a", Operator::GtEq, int(1)),
            filter(&schema, "a", Operator::Lt, int(5)),
        ]);
        assert_eq!(order(&f)[0], "true");
        assert!(f.filters[0].mask(vec![], 10).is_none());
        f.order();
        assert_eq!(
            order(&f),
            ["b@0 > 0", "a@0 >= 1", "a@0 < 5", "t@0 = x", "true"]
        );
        // b: 1 ns a row, drops 10% (10 ns per dropped row); a >= 1: 2 ns,
        // drops half (4); a < 5: 1 ns, drops 5% (20).
        let measure = |f: &mut RowFilters, name: &str, kept: usize, nanos: u64| {
            let i = order(f).iter().position(|n| n == name).unwrap();
            f.filters[i].ran_first(10_000, kept, nanos);
            f.order();
        };
        measure(&mut f, "b@0 > 0", 9_000, 10_000);
        assert_eq!(order(&f)[0], "a@0 >= 1", "the next unmeasured runs first");
        measure(&mut f, "a@0 >= 1", 5_000, 20_000);
        measure(&mut f, "a@0 < 5", 9_500, 10_000);
        assert_eq!(
            order(&f),
            ["a@0 >= 1", "a@0 < 5", "b@0 > 0", "t@0 = x", "true"]
        );
    }
}
