//! omen_columnar vs heap on TPC-H lineitem (generated locally by
//! tpchgen-cli): COPY load time, size, a scan of all 16 columns, a scan of 2
//! of 16, and a selective range on l_orderkey (lineitem is generated in
//! order-key order, so row-group min/max skipping applies).

use crate::{Variant, Workload};

pub(crate) const COLUMNS: &str = "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber integer, \
    l_quantity numeric(15,2), l_extendedprice numeric(15,2), l_discount numeric(15,2), l_tax numeric(15,2), \
    l_returnflag char(1), l_linestatus char(1), l_shipdate date, l_commitdate date, l_receiptdate date, \
    l_shipinstruct char(25), l_shipmode char(10), l_comment varchar(44)";

pub const HEAP: &str = "li_heap";
pub const COLUMNAR: &str = "li_col";

fn variants(query: impl Fn(&str) -> String) -> Vec<Variant> {
    [("heap", HEAP), ("omen_columnar", COLUMNAR)]
        .iter()
        .map(|(label, t)| Variant {
            label: label.to_string(),
            // PostgreSQL's row executor on both (DataFusion has the TPC-H benchmark).
            session_sql: "SET max_parallel_workers_per_gather = 0; SET omendb.datafusion = off"
                .into(),
            query: query(t),
            plan_contains: Some(format!("Seq Scan on {t}")),
        })
        .collect()
}

/// Loading: COPY of the whole CSV into an empty table, each run.
pub fn load(csv: &str) -> Workload {
    Workload {
        name: "COPY lineitem (load)".into(),
        setup_sql: vec![
            format!("DROP TABLE IF EXISTS {HEAP}, {COLUMNAR}"),
            format!("CREATE TABLE {HEAP} ({COLUMNS})"),
            format!("CREATE TABLE {COLUMNAR} ({COLUMNS}) USING omen_columnar"),
        ],
        variants: [("heap", HEAP), ("omen_columnar", COLUMNAR)]
            .iter()
            .map(|(label, t)| Variant {
                label: label.to_string(),
                session_sql: String::new(),
                query: format!(
                    "TRUNCATE {t}; COPY {t} FROM '{csv}' WITH (FORMAT csv, HEADER true)"
                ),
                plan_contains: None,
            })
            .collect(),
        check_sql: None,
        facts: vec![],
    }
}

/// After loading: VACUUM ANALYZE both, and check they hold the same rows.
pub fn settle() -> Vec<String> {
    vec![
        format!("VACUUM ANALYZE {HEAP}"),
        format!("VACUUM ANALYZE {COLUMNAR}"),
    ]
}

fn checks(query: impl Fn(&str) -> String) -> Option<Vec<String>> {
    Some(vec![query(HEAP), query(COLUMNAR)])
}

pub fn full_scan() -> Workload {
    let q = |t: &str| {
        format!(
            "SELECT count(l_orderkey), count(l_partkey), count(l_suppkey), count(l_linenumber), count(l_quantity), \
             count(l_extendedprice), count(l_discount), count(l_tax), count(l_returnflag), count(l_linestatus), \
             count(l_shipdate), count(l_commitdate), count(l_receiptdate), count(l_shipinstruct), count(l_shipmode), \
             count(l_comment) FROM {t}"
        )
    };
    Workload {
        name: "scan of all 16 columns".into(),
        setup_sql: vec![],
        variants: variants(q),
        check_sql: checks(|t| format!("SELECT x::text FROM ({}) x", q(t))),
        facts: sizes(),
    }
}

pub fn two_columns() -> Workload {
    let q = |t: &str| format!("SELECT sum(l_quantity), sum(l_extendedprice) FROM {t}");
    Workload {
        name: "scan of 2 of 16 columns".into(),
        setup_sql: vec![],
        variants: variants(q),
        check_sql: checks(|t| format!("SELECT x::text FROM ({}) x", q(t))),
        facts: vec![],
    }
}

pub fn selective() -> Workload {
    let q = |t: &str| {
        format!("SELECT count(*), sum(l_extendedprice) FROM {t} WHERE l_orderkey BETWEEN 3000000 AND 3010000")
    };
    Workload {
        name: "selective range (l_orderkey BETWEEN, min/max skipping)".into(),
        setup_sql: vec![],
        variants: variants(q),
        check_sql: checks(|t| format!("SELECT x::text FROM ({}) x", q(t))),
        facts: vec![],
    }
}

/// Point lookups through a btree index on l_orderkey: a nested loop of
/// 20,000 probes (about 80,000 rows fetched by TID).
pub fn point_lookups() -> Workload {
    let q = |t: &str| {
        format!(
            "SELECT count(*), sum(l.l_extendedprice) FROM generate_series(1, 20000) g \
             JOIN {t} l ON l.l_orderkey = (g::bigint * 7919) % 6000000 + 1"
        )
    };
    Workload {
        name: "point lookups (20,000 index probes on l_orderkey)".into(),
        setup_sql: vec![
            format!("CREATE INDEX IF NOT EXISTS {HEAP}_orderkey ON {HEAP} (l_orderkey)"),
            format!("CREATE INDEX IF NOT EXISTS {COLUMNAR}_orderkey ON {COLUMNAR} (l_orderkey)"),
        ],
        variants: [("heap", HEAP), ("omen_columnar", COLUMNAR)]
            .iter()
            .map(|(label, t)| Variant {
                label: label.to_string(),
                session_sql: "SET max_parallel_workers_per_gather = 0; SET enable_seqscan = off; \
                              SET enable_bitmapscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; \
                              SET omendb.datafusion = off"
                    .into(),
                query: q(t),
                plan_contains: Some(format!("Index Scan using {t}_orderkey")),
            })
            .collect(),
        check_sql: checks(|t| format!("SELECT x::text FROM ({}) x", q(t))),
        facts: vec![],
    }
}

fn sizes() -> Vec<(String, String)> {
    vec![
        ("heap size".into(), format!("SELECT pg_size_pretty(pg_total_relation_size('{HEAP}'))")),
        ("omen_columnar size".into(), format!("SELECT pg_size_pretty(pg_total_relation_size('{COLUMNAR}'))")),
        (
            "size ratio columnar/heap".into(),
            format!("SELECT round(pg_total_relation_size('{COLUMNAR}')::numeric / pg_total_relation_size('{HEAP}'), 3)::text"),
        ),
    ]
}
