//! Scans of omen_columnar with the shared cache on and off, against heap,
//! on the lineitem tables the `columnar` suite loads: through PostgreSQL's
//! row executor and through DataFusion. "cold" empties the shared cache in
//! the timed batch (every part is decoded and inserted), "warm" finds it
//! filled by the run before (same connection, so its own level too).

use crate::columnar_vs_heap::{COLUMNAR, COLUMNS, HEAP};
use crate::{Variant, Workload};

/// Statements that load lineitem from `csv` into both tables where they
/// are missing or empty (the `columnar` suite's tables are reused).
pub fn ensure_tables(csv: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {HEAP} ({COLUMNS})"),
        format!("CREATE TABLE IF NOT EXISTS {COLUMNAR} ({COLUMNS}) USING omen_columnar"),
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM {HEAP}) THEN \
             EXECUTE 'COPY {HEAP} FROM ''{csv}'' WITH (FORMAT csv, HEADER true)'; END IF; END $$"
        ),
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM {COLUMNAR}) THEN \
             INSERT INTO {COLUMNAR} SELECT * FROM {HEAP}; END IF; END $$"
        ),
        format!("VACUUM ANALYZE {HEAP}"),
        format!("VACUUM ANALYZE {COLUMNAR}"),
    ]
}

/// One query on heap and on omen_columnar with the cache off, cold, warm.
fn workload(name: &str, datafusion: bool, query: impl Fn(&str) -> String) -> Workload {
    // The row executor on both for the PostgreSQL runs (no parallel
    // workers: columnar scans are not parallel); heap keeps its parallel
    // plan against DataFusion's two threads.
    let (heap_session, col_session, col_plan) = if datafusion {
        (
            "",
            "SET omendb.datafusion = on",
            "OmenDataFusion".to_string(),
        )
    } else {
        (
            "SET max_parallel_workers_per_gather = 0",
            "SET max_parallel_workers_per_gather = 0; SET omendb.datafusion = off",
            format!("Seq Scan on {COLUMNAR}"),
        )
    };
    // (The cold variant's batch cannot be EXPLAINed; the warm one checks
    // the same plan.)
    let col = |label: &str, session: String, prefix: &str| Variant {
        label: label.into(),
        session_sql: session,
        query: format!("{prefix}{}", query(COLUMNAR)),
        plan_contains: prefix.is_empty().then(|| col_plan.clone()),
    };
    Workload {
        name: name.into(),
        setup_sql: vec![],
        variants: vec![
            Variant {
                label: "heap".into(),
                session_sql: heap_session.into(),
                query: query(HEAP),
                plan_contains: None,
            },
            col(
                "omen_columnar, cache off",
                format!("{col_session}; SET omendb.enable_cache = off"),
                "",
            ),
            col(
                "omen_columnar, cache cold",
                col_session.into(),
                "SELECT omendb.cache_reset(); ",
            ),
            col("omen_columnar, cache warm", col_session.into(), ""),
        ],
        check_sql: Some(
            [HEAP, COLUMNAR]
                .iter()
                .map(|t| {
                    format!(
                        "SELECT string_agg(x::text, ';' ORDER BY x::text) FROM ({}) x",
                        query(t)
                    )
                })
                .collect(),
        ),
        facts: vec![],
    }
}

const ALL_16: &str = "count(l_orderkey), count(l_partkey), count(l_suppkey), count(l_linenumber), \
    count(l_quantity), count(l_extendedprice), count(l_discount), count(l_tax), count(l_returnflag), \
    count(l_linestatus), count(l_shipdate), count(l_commitdate), count(l_receiptdate), \
    count(l_shipinstruct), count(l_shipmode), count(l_comment)";

pub fn workloads() -> Vec<Workload> {
    let two = |t: &str| format!("SELECT sum(l_quantity), sum(l_extendedprice) FROM {t}");
    let all = |t: &str| format!("SELECT {ALL_16} FROM {t}");
    let q1 = |t: &str| {
        format!(
            "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice), \
             avg(l_discount), count(*) FROM {t} GROUP BY 1, 2 ORDER BY 1, 2"
        )
    };
    let q6 = |t: &str| {
        format!(
            "SELECT sum(l_extendedprice * l_discount) FROM {t} WHERE l_shipdate >= date '1994-01-01' \
             AND l_shipdate < date '1995-01-01' AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"
        )
    };
    let text = |t: &str| format!("SELECT count(*), max(l_comment), max(l_shipinstruct) FROM {t}");
    vec![
        workload("scan of 2 of 16 columns, PostgreSQL executor", false, two),
        workload("scan of all 16 columns, PostgreSQL executor", false, all),
        workload("scan of 2 of 16 columns, DataFusion", true, two),
        workload("scan of all 16 columns, DataFusion", true, all),
        workload("TPC-H Q1 on lineitem, DataFusion", true, q1),
        workload("TPC-H Q6 on lineitem, DataFusion", true, q6),
        workload(
            "text columns (l_comment, l_shipinstruct), DataFusion",
            true,
            text,
        ),
    ]
}
