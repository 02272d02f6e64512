//! The workloads `sqlbench` knows. Each compares omendb (or, until its
//! features land, another stock structure) with the stock alternative on the
//! same server and the same data.

use crate::{Variant, Workload};

/// Point probes through a btree vs a hash index on identical tables: proves
/// the harness on stock PostgreSQL; the alex comparison takes its shape.
pub fn point_probes(rows: u64, probes: u64) -> Workload {
    let probe_query = |table: &str| {
        format!("SELECT sum(t.v) FROM bench_probe_keys k JOIN {table} t ON t.id = k.id")
    };
    let session =
        "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; \
                   SET enable_bitmapscan = off; SET max_parallel_workers_per_gather = 0;";
    Workload {
        name: format!("point probes: {probes} random keys into {rows} rows"),
        setup_sql: vec![
            "DROP TABLE IF EXISTS bench_probe_btree, bench_probe_hash, bench_probe_keys".into(),
            format!("CREATE TABLE bench_probe_btree AS SELECT i AS id, i % 1000 AS v FROM generate_series(1, {rows}) i"),
            "CREATE TABLE bench_probe_hash AS TABLE bench_probe_btree".into(),
            "CREATE INDEX ON bench_probe_btree (id)".into(),
            "CREATE INDEX ON bench_probe_hash USING hash (id)".into(),
            format!("CREATE TABLE bench_probe_keys AS SELECT (random() * {rows})::bigint + 1 AS id FROM generate_series(1, {probes})"),
            "VACUUM ANALYZE bench_probe_btree, bench_probe_hash, bench_probe_keys".into(),
        ],
        variants: vec![
            Variant {
                label: "btree".into(),
                session_sql: session.into(),
                query: probe_query("bench_probe_btree"),
                plan_contains: Some("bench_probe_btree_id_idx".into()),
            },
            Variant {
                label: "hash".into(),
                session_sql: session.into(),
                query: probe_query("bench_probe_hash"),
                plan_contains: Some("bench_probe_hash_id_idx".into()),
            },
        ],
        check_sql: Some(vec![
            format!("SELECT ({})::text", probe_query("bench_probe_btree")),
            format!("SELECT ({})::text", probe_query("bench_probe_hash")),
        ]),
        facts: vec![],
    }
}
