//! The `OmenDataFusion` custom scan: whole read-only queries over
//! omen_columnar tables, run by an embedded Apache DataFusion.
//!
//! - `planner`: the planner hook that decides, and builds the plan node;
//! - `translate` / `expr` / `functions`: PostgreSQL's Query tree -> a
//!   DataFusion LogicalPlan with PostgreSQL's semantics, or the reason not;
//! - `types` / `values`: PostgreSQL types and datums <-> Arrow;
//! - `load`: the main thread copies each table's snapshot out of shared
//!   buffers through the columnar engine (`crate::columnar::{snapshot, rows}`);
//! - `partitioned`: the leaf partitions a plan reads, their column maps;
//! - `source`: the TableProvider and scan node over those bytes;
//!   `decode`: decoding them on DataFusion's threads, each filter's
//!   columns first (`row_filter`: the filters a scan evaluates);
//! - `dynamic`: DataFusion's join filters in the scans, where they pay;
//! - `estimates` / `noted` / `join_order` / `filter_estimates`: PostgreSQL's
//!   column statistics and table estimates for DataFusion's join planning
//!   and join order;
//! - `outer_join`: outer joins that a strict filter makes inner;
//!   `semi_join`: subquery tests run before joins to whole tables;
//! - `exec`: the executor node; `runtime`: DataFusion's threads;
//! - `settings`: `omendb.datafusion*`.

mod decode;
mod dynamic;
mod estimates;
mod exec;
mod expr;
mod filter_estimates;
mod functions;
mod join_order;
mod load;
mod noted;
mod outer_join;
mod partitioned;
pub(crate) mod planner;
mod row_filter;
mod runtime;
mod semi_join;
pub(crate) mod settings;
mod source;
mod translate;
mod types;
mod values;

/// Called from _PG_init: settings and hooks only (threads start on first use).
pub(crate) use noted::note as note_rel_estimate;

pub(crate) fn init() {
    settings::init();
    planner::init();
}
