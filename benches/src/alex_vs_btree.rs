//! alex vs btree on the same server and data: build time, size, index-only
//! point probes (nested loop), 100-row ordered range scans, and single-row
//! inserts with pgbench.

use crate::{Variant, Workload};

/// A key distribution: its column type, the SQL generating key `i` of `n`,
/// and a pgbench expression generating a new key.
pub struct Dist {
    pub name: &'static str,
    pub sql_type: &'static str,
    key_sql: &'static str,
    pub insert_expr: &'static str,
}

pub const DISTS: &[Dist] = &[
    Dist { name: "sequential", sql_type: "bigint", key_sql: "i", insert_expr: "nextval('ab_seq')" },
    Dist {
        name: "uniform",
        sql_type: "bigint",
        key_sql: "(random() * 1099511627776)::bigint",
        insert_expr: "(random() * 1099511627776)::bigint",
    },
    Dist {
        name: "lognormal",
        sql_type: "bigint",
        key_sql: "(exp(2 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) * 1000000)::bigint",
        insert_expr: "(exp(2 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) * 1000000)::bigint",
    },
    Dist {
        name: "timestamps",
        sql_type: "timestamptz",
        key_sql: "timestamptz '2026-01-01' + i * interval '1 second' + (random() * 3 - 1.5) * interval '1 second'",
        insert_expr: "clock_timestamp() + interval '1 year'",
    },
];

pub fn dist(name: &str) -> Option<&'static Dist> {
    DISTS.iter().find(|d| d.name == name)
}

fn tables(d: &Dist) -> (String, String) {
    (format!("ab_{}_bt", d.name), format!("ab_{}_ax", d.name))
}

/// Same data in two tables; the btree table gets a btree index, the alex
/// table an alex index (built by the `build` workload).
pub fn setup(d: &Dist, rows: u64, probes: u64) -> Vec<String> {
    let (bt, ax) = tables(d);
    vec![
        format!("DROP TABLE IF EXISTS {bt}, {ax}, ab_{n}_probes", n = d.name),
        "SELECT setseed(0.42)".into(),
        format!(
            "CREATE TABLE {bt} AS SELECT ({k})::{t} AS k FROM generate_series(1, {rows}) i",
            k = d.key_sql,
            t = d.sql_type
        ),
        format!("CREATE TABLE {ax} AS TABLE {bt}"),
        format!(
            "CREATE TABLE ab_{n}_probes AS SELECT k FROM {bt} ORDER BY random() LIMIT {probes}",
            n = d.name
        ),
        format!("VACUUM ANALYZE {bt}"),
        format!("VACUUM ANALYZE {ax}"),
        format!("VACUUM ANALYZE ab_{n}_probes", n = d.name),
    ]
}

const FORCE_INDEX: &str = "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_hashjoin = off; \
     SET enable_mergejoin = off; SET enable_material = off; SET max_parallel_workers_per_gather = 0; SET jit = off;";

fn pair(
    d: &Dist,
    name: &str,
    session: &str,
    query: impl Fn(&str) -> String,
    check: bool,
    facts: Vec<(String, String)>,
) -> Workload {
    let (bt, ax) = tables(d);
    Workload {
        name: format!("{} — {name}", d.name),
        setup_sql: vec![],
        variants: vec![
            Variant {
                label: "btree".into(),
                session_sql: session.into(),
                query: query(&bt),
                plan_contains: Some(format!("{bt}_k")),
            },
            Variant {
                label: "alex".into(),
                session_sql: session.into(),
                query: query(&ax),
                plan_contains: Some(format!("{ax}_k")),
            },
        ],
        check_sql: check.then(|| {
            vec![
                format!("SELECT ({})::text", query(&bt)),
                format!("SELECT ({})::text", query(&ax)),
            ]
        }),
        facts,
    }
}

/// CREATE INDEX, timed (the index stays for the other workloads).
pub fn build(d: &Dist) -> Workload {
    let (bt, ax) = tables(d);
    let size = |t: &str| format!("pg_relation_size('{t}_k')");
    let facts = vec![(
        "index size, btree vs alex".to_string(),
        format!(
            "SELECT format('%s vs %s: ratio %s', pg_size_pretty({b}), pg_size_pretty({a}), round({a}::numeric / {b}, 2))",
            b = size(&bt),
            a = size(&ax)
        ),
    )];
    let (btq, axq) = (
        format!("DROP INDEX IF EXISTS {bt}_k; CREATE INDEX {bt}_k ON {bt} (k)"),
        format!("DROP INDEX IF EXISTS {ax}_k; CREATE INDEX {ax}_k ON {ax} USING alex (k)"),
    );
    Workload {
        name: format!("{} — CREATE INDEX", d.name),
        setup_sql: vec![],
        variants: vec![
            Variant {
                label: "btree".into(),
                session_sql: "SET maintenance_work_mem = '1GB'".into(),
                query: btq,
                plan_contains: None,
            },
            Variant {
                label: "alex".into(),
                session_sql: "SET maintenance_work_mem = '1GB'".into(),
                query: axq,
                plan_contains: None,
            },
        ],
        check_sql: None,
        facts,
    }
}

/// Index-only point probes: a nested loop of random existing keys.
pub fn probes(d: &Dist) -> Workload {
    let n = d.name;
    pair(
        d,
        "index-only point probes (nested loop)",
        FORCE_INDEX,
        |t| format!("SELECT count(*) FROM ab_{n}_probes p JOIN {t} t ON t.k = p.k"),
        true,
        vec![],
    )
}

/// 100-row ordered range scans starting at random existing keys.
pub fn ranges(d: &Dist, scans: u64) -> Workload {
    let n = d.name;
    pair(
        d,
        "100-row range scans",
        FORCE_INDEX,
        |t| {
            format!(
                "SELECT sum(c) FROM (SELECT k FROM ab_{n}_probes LIMIT {scans}) p \
                 CROSS JOIN LATERAL (SELECT count(*) c FROM (SELECT k FROM {t} t WHERE t.k >= p.k ORDER BY t.k LIMIT 100) s) x"
            )
        },
        true,
        vec![],
    )
}

/// Tables for the insert benchmark: a copy of the data with one index each.
pub fn insert_setup(d: &Dist) -> Vec<String> {
    let (bt, ax) = tables(d);
    vec![
        "DROP SEQUENCE IF EXISTS ab_seq".into(),
        format!("CREATE SEQUENCE ab_seq START {}", 1_000_000_000_000u64),
        format!("DROP TABLE IF EXISTS {bt}_ins, {ax}_ins"),
        format!("CREATE TABLE {bt}_ins AS TABLE {bt}"),
        format!("CREATE TABLE {ax}_ins AS TABLE {ax}"),
        format!("CREATE INDEX ON {bt}_ins (k)"),
        format!("CREATE INDEX ON {ax}_ins USING alex (k)"),
    ]
}

/// pgbench scripts inserting one row per transaction: (btree, alex).
pub fn insert_scripts(d: &Dist) -> (String, String) {
    let (bt, ax) = tables(d);
    (
        format!("INSERT INTO {bt}_ins (k) VALUES ({});\n", d.insert_expr),
        format!("INSERT INTO {ax}_ins (k) VALUES ({});\n", d.insert_expr),
    )
}
