//! A DataFusion table over one omen_columnar table's snapshot.
//!
//! The main thread fills a [`Loaded`] before DataFusion runs (see
//! `load.rs`): compressed column chunks copied out of shared buffers, the
//! write-store records, and the deleted row numbers. Everything here then
//! runs on DataFusion's threads over those owned bytes: decompressing and
//! decoding row groups, converting them to their logical Arrow form and
//! dropping deleted rows. Nothing here calls PostgreSQL.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema as ArrowSchema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::{
    ColumnStatistics, DFSchema, DataFusionError, Result, ScalarValue, Statistics,
};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use omendb_columnar::prune::{Bound, Filter, Test};
use omendb_columnar::{CopiedChunks, Schema, SegmentReader};

use super::decode::decode_unit;
use super::estimates::ColumnEstimate;
use super::row_filter::{RowFilter, RowFilters};
use super::types::Pg;
use crate::cache::shared::{PartCounts, ScanCache};

/// One column the table offers DataFusion.
#[derive(Clone, Debug)]
pub struct Column {
    /// 0-based table column (attribute number - 1).
    pub index: usize,
    pub pg: Pg,
    /// What ANALYZE found, for DataFusion's join planning.
    pub estimate: Option<ColumnEstimate>,
}

/// A relation the table reads: the table itself, or one of its leaf
/// partitions.
#[derive(Clone, Debug)]
pub struct Rel {
    pub oid: u32,
    /// For each table column (0-based attribute number), the relation's
    /// column holding it, if any.
    pub columns: Vec<Option<usize>>,
    /// A partition's bounds, for skipping it at execution.
    pub bound: Option<super::partitioned::PartBound>,
}

/// A unit of decoding work: one Parquet row group or one write-store batch,
/// of relation `rel` (an index into [`Loaded::rels`]).
pub enum Unit {
    Group {
        rel: usize,
        seg: Arc<ParquetData>,
        group: usize,
    },
    Rows {
        rel: usize,
        /// (row number, write-store item: column count + row record).
        records: Vec<(u64, Vec<u8>)>,
    },
}

pub struct ParquetData {
    pub reader: SegmentReader,
    pub chunks: CopiedChunks,
    /// The segment's id, for the shared cache (None: read uncached).
    pub id: Option<crate::cache::local::SegmentId>,
}

/// What the main thread copied of one relation the table reads.
pub struct LoadedRel {
    /// For messages: the relation's name.
    pub name: String,
    /// The relation's storage schema (all columns), for write-store records.
    pub schema: Schema,
    /// Deleted row numbers, ascending.
    pub deleted: Vec<u64>,
    /// As [`Rel::columns`].
    pub columns: Vec<Option<usize>>,
}

impl LoadedRel {
    /// Where each of `columns` is among the relation's first `ncols`
    /// columns (what one segment or record holds); None: not there (a
    /// column added after it was written).
    pub fn positions(&self, columns: &[Column], ncols: usize) -> Vec<Option<usize>> {
        columns
            .iter()
            .map(|c| {
                self.columns
                    .get(c.index)
                    .copied()
                    .flatten()
                    .filter(|&i| i < ncols)
            })
            .collect()
    }
}

/// What the main thread copied for one scan of the table.
pub struct Loaded {
    pub rels: Vec<LoadedRel>,
    pub units: Vec<Unit>,
    pub rows: u64,
    /// Of `rows`, those not deleted (for PostgreSQL's table statistics).
    pub live_rows: u64,
    pub bytes: usize,
    pub groups_skipped: usize,
    pub groups_read: usize,
    /// Partitions whose bounds exclude every row the filters accept.
    pub partitions_skipped: usize,
    /// The shared cache row groups are read through (taken on the main
    /// thread: None when there is none or the session turned it off).
    pub cache: Option<ScanCache>,
}

/// What planning learned about one table: the columns and filters the
/// optimized plan's scans of it use.
#[derive(Default, Clone)]
pub struct Wanted {
    pub columns: Vec<usize>,
    pub filters: Vec<Filter>,
}

pub struct OmenTable {
    /// For EXPLAIN: the table's name.
    pub name: String,
    /// A partitioned table, read through its leaves in `rels`.
    pub partitioned: bool,
    /// The relations holding the rows: the table, or its leaf partitions.
    pub rels: Vec<Rel>,
    /// The columns offered, by the table's (0-based) attribute numbers.
    pub columns: Vec<Column>,
    pub schema: SchemaRef,
    /// Rows PostgreSQL estimates (for DataFusion's join planning before load).
    pub estimated_rows: usize,
    /// Rows PostgreSQL estimates the query's filters on this scan pass,
    /// when it planned the table (see `noted` and `filter_estimates`).
    pub filtered_rows: Option<usize>,
    pub loaded: Mutex<Option<Arc<Loaded>>>,
    pub partitions: usize,
    /// `omendb.datafusion_scan_filters` when the query was planned.
    scan_filters: bool,
}

impl fmt::Debug for OmenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OmenTable({})", self.name)
    }
}

/// Field name of table column `index` (0-based) in the scan named
/// `scan` (its range-table alias, unique in the query). Names must differ
/// between scans: DataFusion routes pushed-down filters by column name.
pub fn field_name(scan: &str, index: usize) -> String {
    format!("{scan}_c{}", index + 1)
}

impl OmenTable {
    pub fn new(
        scan: &str,
        name: String,
        partitioned: bool,
        rels: Vec<Rel>,
        columns: Vec<Column>,
        estimated_rows: usize,
        partitions: usize,
    ) -> OmenTable {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(field_name(scan, c.index), c.pg.arrow(), true))
            .collect();
        OmenTable {
            name,
            partitioned,
            rels,
            columns,
            schema: Arc::new(ArrowSchema::new(fields)),
            estimated_rows,
            filtered_rows: None,
            loaded: Mutex::new(None),
            partitions: partitions.max(1),
            // Read here, on the main thread, as the query is translated.
            scan_filters: super::settings::scan_filters(),
        }
    }

    /// This table with PostgreSQL's estimate of the rows its filters pass.
    pub fn with_filtered_rows(mut self, rows: Option<usize>) -> OmenTable {
        self.filtered_rows = rows;
        self
    }

    /// The prune filter an expression of a scan's filters gives, if any:
    /// `column op literal` on integer-like columns, `IS [NOT] NULL`.
    pub fn prune_filter(&self, e: &Expr) -> Option<Filter> {
        let col_index = |e: &Expr| -> Option<&Column> {
            let Expr::Column(c) = e else { return None };
            let i = self.schema.index_of(&c.name).ok()?;
            Some(&self.columns[i])
        };
        match e {
            Expr::IsNull(x) => Some(Filter {
                column: col_index(x)?.index,
                test: Test::IsNull,
            }),
            Expr::IsNotNull(x) => Some(Filter {
                column: col_index(x)?.index,
                test: Test::IsNotNull,
            }),
            Expr::BinaryExpr(b) => {
                let strategy = |op: Operator| match op {
                    Operator::Lt => Some(1),
                    Operator::LtEq => Some(2),
                    Operator::Eq => Some(3),
                    Operator::GtEq => Some(4),
                    Operator::Gt => Some(5),
                    _ => None,
                };
                let s = strategy(b.op)?;
                let (col, lit, s) =
                    match (col_index(&b.left), &*b.right, col_index(&b.right), &*b.left) {
                        (Some(c), Expr::Literal(v, _), _, _) => (c, v, s),
                        (_, _, Some(c), Expr::Literal(v, _)) => (c, v, 6 - s),
                        _ => return None,
                    };
                let int_like = matches!(
                    col.pg,
                    Pg::Int2 | Pg::Int4 | Pg::Int8 | Pg::Date | Pg::Timestamp | Pg::TimestampTz
                );
                if !int_like {
                    return None;
                }
                let bound = match lit {
                    ScalarValue::Int16(Some(v)) => *v as i64,
                    ScalarValue::Int32(Some(v)) => *v as i64,
                    ScalarValue::Int64(Some(v)) => *v,
                    _ => return None,
                };
                Some(Filter {
                    column: col.index,
                    test: Test::Cmp(s, Bound::Int(bound)),
                })
            }
            _ => None,
        }
    }
}

#[async_trait]
impl TableProvider for OmenTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Simple filters are evaluated in the scan too (`row_filter`),
        // some prune row groups; the FilterExec above stays and decides.
        Ok(filters
            .iter()
            .map(|f| {
                let prunes = self.prune_filter(f).is_some();
                if prunes || (self.scan_filters && simple_filter(f)) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let fields: Vec<Field> = projection
            .iter()
            .map(|&i| self.schema.field(i).clone())
            .collect();
        let schema = Arc::new(ArrowSchema::new(fields));
        let columns: Vec<Column> = projection
            .iter()
            .map(|&i| self.columns[i].clone())
            .collect();
        let (prune, row_filters) = self.scan_filters(state, &schema, &columns, filters);
        let loaded = self
            .loaded
            .lock()
            .map_err(|_| DataFusionError::Internal("poisoned".into()))?
            .clone();
        let rows = loaded
            .as_ref()
            .map_or(self.estimated_rows, |l| l.rows as usize);
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(self.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(OmenScanExec {
            table: self.name.clone(),
            partitions: self.partitioned.then_some(self.rels.len()),
            columns,
            schema,
            loaded,
            prune,
            row_filters,
            dynamic: Vec::new(),
            rows,
            // A table never analyzed has no row count before its load.
            filtered_rows: self
                .filtered_rows
                .map(|f| if rows > 0 { f.min(rows) } else { f }),
            props,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }
}

/// A filter a scan evaluates as it decodes, and its text for EXPLAIN.
type ScanFilter = (Arc<dyn PhysicalExpr>, String);

/// The scan node: decodes the loaded units of its partition.
pub struct OmenScanExec {
    table: String,
    /// For a partitioned table: how many leaf partitions it reads.
    partitions: Option<usize>,
    columns: Vec<Column>,
    schema: SchemaRef,
    loaded: Option<Arc<Loaded>>,
    /// The filters that prune row groups (for EXPLAIN; load.rs applies them).
    prune: Vec<String>,
    /// The query's filters on the table, evaluated as rows are decoded,
    /// with their text for EXPLAIN.
    row_filters: Vec<ScanFilter>,
    /// Filters a hash join derives from its build side once that is read
    /// (DataFusion's dynamic filters): applied to each decoded batch, so
    /// probe rows that cannot match leave the scan at once.
    dynamic: Vec<Arc<dyn PhysicalExpr>>,
    /// Rows it reads (PostgreSQL's estimate before the load, the row
    /// groups' rows after it).
    rows: usize,
    /// Rows PostgreSQL estimates the query's filters pass, if known: the
    /// scan's statistics report these, and the FilterExec above takes
    /// them as they are (`filter_estimates::ScanEstimates`).
    filtered_rows: Option<usize>,
    props: PlanProperties,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for OmenScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OmenScanExec({})", self.table)
    }
}

impl DisplayAs for OmenScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        write!(f, "OmenColumnarScan: table={}", self.table)?;
        if let Some(n) = self.partitions {
            write!(f, ", partitions={n}")?;
        }
        write!(f, ", columns=[{}]", cols.join(", "))?;
        if !self.row_filters.is_empty() {
            let text: Vec<&str> = self.row_filters.iter().map(|(_, t)| t.as_str()).collect();
            write!(f, ", filters=[{}]", text.join(", "))?;
        }
        if !self.prune.is_empty() {
            write!(f, ", prune=[{}]", self.prune.join(", "))?;
        }
        if let Some(l) = &self.loaded {
            write!(
                f,
                ", row_groups_read={}, row_groups_skipped={}, bytes={}",
                l.groups_read, l.groups_skipped, l.bytes
            )?;
            if self.partitions.is_some() {
                write!(f, ", partitions_skipped={}", l.partitions_skipped)?;
            }
        }
        Ok(())
    }
}

impl OmenTable {
    /// A scan's `filters` (over the table's columns): the text of those
    /// that prune row groups, and those the scan evaluates as it decodes,
    /// as physical expressions over its columns (`columns`, `schema`), text
    /// last (the scan then orders them by what it measures, see
    /// `row_filter`). A filter on a column the scan does not
    /// read, or that DataFusion cannot plan here, is left to the
    /// FilterExec.
    fn scan_filters(
        &self,
        state: &dyn Session,
        schema: &SchemaRef,
        columns: &[Column],
        filters: &[Expr],
    ) -> (Vec<String>, Vec<ScanFilter>) {
        let prune = filters
            .iter()
            .filter(|f| self.prune_filter(f).is_some())
            .map(|f| f.to_string())
            .collect();
        if !self.scan_filters {
            return (prune, Vec::new());
        }
        let Ok(df_schema) = DFSchema::try_from(schema.as_ref().clone()) else {
            return (prune, Vec::new());
        };
        let mut planned: Vec<(ScanFilter, Vec<usize>)> = filters
            .iter()
            .filter(|f| simple_filter(f))
            .filter_map(|f| {
                // The scan's field names are unique in the query.
                let e = unnormalize_col(f.clone());
                let p = state.create_physical_expr(e, &df_schema).ok()?;
                let mut read: Vec<usize> = collect_columns(&p).iter().map(|c| c.index()).collect();
                read.sort_unstable();
                Some(((p, f.to_string()), read))
            })
            .collect();
        // Filters on text last: its conversion is the costly one, so it
        // is best done for the rows the others pass (TPC-H Q12).
        planned.sort_by_key(|(_, read)| read.iter().any(|&k| columns[k].pg.is_text()));
        // A filter is worth evaluating here only if some column is left
        // that no filter so far reads: that column is then decoded only
        // for the rows that pass. Otherwise the FilterExec would just
        // evaluate it again.
        let mut read_so_far = vec![false; columns.len()];
        let mut row = Vec::new();
        for (f, read) in planned {
            let saves = (0..columns.len()).any(|k| !read_so_far[k] && !read.contains(&k));
            if saves {
                read.iter().for_each(|&k| read_so_far[k] = true);
                row.push(f);
            }
        }
        (prune, row)
    }
}

/// Whether a scan evaluates filter `e` as it decodes: one built of
/// columns, constants, comparisons, arithmetic, IN lists, LIKE and casts.
/// Function calls stay with the FilterExec: evaluated in the scan too, a
/// `substring(c_phone …) IN (…)` cost the scan 50 ms to save 5 (TPC-H Q22).
fn simple_filter(e: &Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    !e.is_volatile()
        && !e
            .exists(|x| {
                Ok(!matches!(
                    x,
                    Expr::Column(_)
                        | Expr::Literal(..)
                        | Expr::BinaryExpr(_)
                        | Expr::Not(_)
                        | Expr::IsNull(_)
                        | Expr::IsNotNull(_)
                        | Expr::IsTrue(_)
                        | Expr::IsFalse(_)
                        | Expr::IsNotTrue(_)
                        | Expr::IsNotFalse(_)
                        | Expr::Negative(_)
                        | Expr::Between(_)
                        | Expr::InList(_)
                        | Expr::Like(_)
                        | Expr::Cast(_)
                        | Expr::TryCast(_)
                ))
            })
            .unwrap_or(true)
}

impl OmenScanExec {
    /// Whether its statistics count the rows PostgreSQL estimates its
    /// filters pass.
    pub fn has_filtered_estimate(&self) -> bool {
        self.filtered_rows.is_some()
    }

    /// This scan with dynamic filters `dynamic` (fresh metrics).
    fn with_dynamic(&self, dynamic: Vec<Arc<dyn PhysicalExpr>>) -> Arc<dyn ExecutionPlan> {
        Arc::new(OmenScanExec {
            table: self.table.clone(),
            partitions: self.partitions,
            columns: self.columns.clone(),
            schema: self.schema.clone(),
            loaded: self.loaded.clone(),
            prune: self.prune.clone(),
            row_filters: self.row_filters.clone(),
            dynamic,
            rows: self.rows,
            filtered_rows: self.filtered_rows,
            props: self.props.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// This scan without dynamic filters, if it has any.
    pub fn without_dynamic(&self) -> Option<Arc<dyn ExecutionPlan>> {
        (!self.dynamic.is_empty()).then(|| self.with_dynamic(Vec::new()))
    }
}

impl ExecutionPlan for OmenScanExec {
    fn name(&self) -> &'static str {
        "OmenColumnarScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &PlanProperties {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let loaded = self.loaded.clone().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "table {} was not loaded before execution",
                self.table
            ))
        })?;
        let parts = match self.props.partitioning {
            Partitioning::UnknownPartitioning(n) => n,
            _ => 1,
        };
        let columns = self.columns.clone();
        let schema = self.schema.clone();
        let units: Vec<usize> = (partition..loaded.units.len()).step_by(parts).collect();
        let s2 = schema.clone();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let decoded = MetricBuilder::new(&self.metrics).counter("bytes_decoded", partition);
        let hits = MetricBuilder::new(&self.metrics).counter("cache_hits", partition);
        let misses = MetricBuilder::new(&self.metrics).counter("cache_misses", partition);
        let dropped_dynamic =
            MetricBuilder::new(&self.metrics).counter("rows_dropped_dynamic", partition);
        let dropped_filter =
            MetricBuilder::new(&self.metrics).counter("rows_dropped_filter", partition);
        let mut filters =
            RowFilters::new(
                self.dynamic
                    .iter()
                    .filter_map(|e| RowFilter::new(e, &schema, dropped_dynamic.clone(), false))
                    .chain(self.row_filters.iter().filter_map(|(e, _)| {
                        RowFilter::new(e, &schema, dropped_filter.clone(), true)
                    }))
                    .collect(),
            );
        let stream = futures::stream::iter(units).map(move |u| {
            let timer = baseline.elapsed_compute().timer();
            let mut counts = PartCounts::default();
            let b = decode_unit(&loaded, u, &columns, &s2, &mut filters, &mut counts);
            timer.done();
            hits.add(counts.hits);
            misses.add(counts.misses);
            if let Ok(b) = &b {
                baseline.record_output(b.num_rows());
                decoded.add(b.get_array_memory_size());
            }
            b
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Keep the dynamic filters pushed down to us (DataFusion's physical
    /// optimizer offers every filter above the scan). Every filter is
    /// reported as not pushed down: an ordinary one stays in the FilterExec
    /// above, and a dynamic one is only a shortcut the join does not rely on
    /// (see `row_filter`).
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let dynamic: Vec<Arc<dyn PhysicalExpr>> = child
            .parent_filters
            .iter()
            .map(|f| f.filter.clone())
            .filter(|f| {
                f.as_any()
                    .downcast_ref::<DynamicFilterPhysicalExpr>()
                    .is_some()
            })
            .collect();
        let out = FilterPushdownPropagation::all_unsupported(child);
        if dynamic.is_empty() {
            return Ok(out);
        }
        let mut all = self.dynamic.clone();
        all.extend(dynamic);
        Ok(out.with_updated_node(self.with_dynamic(all)))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Statistics> {
        let mut s = Statistics::new_unknown(&self.schema);
        let all = self.filtered_rows.unwrap_or(self.rows);
        let rows = match partition {
            None => all,
            Some(_) => all / self.props.partitioning.partition_count().max(1),
        };
        s.num_rows = Precision::Inexact(rows);
        s.column_statistics = self
            .columns
            .iter()
            .map(|c| {
                c.estimate.map_or_else(ColumnStatistics::new_unknown, |e| {
                    e.statistics(self.rows, rows)
                })
            })
            .collect();
        Ok(s)
    }
}

use futures::StreamExt;
