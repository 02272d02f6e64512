//! Oracle tests for the alex index: identical tables, one with btree indexes
//! and one with alex indexes, under randomized data and DML; every query form
//! is forced onto the index (checked with EXPLAIN) and must return exactly
//! what btree returns, ordered queries in the same order.
//!
//! OMENDB_ORACLE_SEED fixes the seed; a failure prints the seed it used.

use omendb_systest::{Background, Cluster, ClusterOptions, Result};
use postgres::{Client, SimpleQueryMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Key columns, their types, and a SQL expression deriving each from the
/// row's base value `$v` (bigint).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("k8", "int8", "$v"),
    ("k4", "int4", "($v % 2147483647)::int4"),
    ("k2", "int2", "($v % 32767)::int2"),
    ("f8", "float8", "$v::float8 / 1000"),
    ("f4", "float4", "($v::float8 / 1000)::float4"),
    ("d", "date", "date '2000-01-01' + ($v % 1000000)::int4"),
    (
        "ts",
        "timestamp",
        "timestamp '2000-01-01' + ($v % 100000000000) * interval '1 microsecond'",
    ),
    (
        "tz",
        "timestamptz",
        "timestamptz '2000-01-01 00:00+00' + ($v % 100000000000) * interval '1 microsecond'",
    ),
];

/// Base values for `n` rows of a distribution (None = all columns NULL).
fn distribution(name: &str, n: usize, rng: &mut StdRng) -> Vec<Option<i64>> {
    (0..n)
        .map(|i| {
            if rng.gen_ratio(1, 40) {
                return None;
            }
            let i = i as i64;
            Some(match name {
                "sequential" => i,
                "uniform" => rng.gen_range(-1_000_000_000_000i64..1_000_000_000_000),
                "lognormal" => {
                    // exp of a normal via Box-Muller.
                    let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                    (z * 2.0).exp().mul_add(1000.0, 0.0) as i64
                }
                "timestamps" => 1_700_000_000_000 + i * 1000 + rng.gen_range(-3000..3000),
                "duplicates" => {
                    if rng.gen_ratio(4, 5) {
                        42
                    } else {
                        rng.gen_range(0..20)
                    }
                }
                "extremes" => match rng.gen_range(0..6) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => 0,
                    3 => -1,
                    _ => rng.gen_range(i64::MIN..i64::MAX),
                },
                other => panic!("unknown distribution {other}"),
            })
        })
        .collect()
}

fn insert_sql(table: &str, first_rid: i64, values: &[Option<i64>]) -> String {
    let vals: Vec<String> = values
        .iter()
        .map(|v| v.map_or("NULL".into(), |v| v.to_string()))
        .collect();
    let derived: Vec<String> = COLUMNS.iter().map(|c| c.2.replace("$v", "v")).collect();
    format!(
        "INSERT INTO {table} (rid, {cols}) SELECT {first_rid} + o - 1, {derived}
         FROM unnest('{{{vals}}}'::bigint[]) WITH ORDINALITY AS u(v, o)",
        cols = COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>().join(", "),
        derived = derived.join(", "),
        vals = vals.join(","),
    )
}

/// Special values per type that the base-value mapping never produces.
const SPECIAL_ROWS: &str = "
    (k8, k4, k2, f8, f4, d, ts, tz) VALUES
    (9223372036854775807, 2147483647, 32767, 'Infinity', 'Infinity', 'infinity', 'infinity', 'infinity'),
    (-9223372036854775808, -2147483648, -32768, '-Infinity', '-Infinity', '-infinity', '-infinity', '-infinity'),
    (0, 0, 0, 'NaN', 'NaN', NULL, NULL, NULL),
    (0, 0, 0, '-0', '-0', NULL, NULL, NULL),
    (1, 1, 1, 'NaN', 'NaN', NULL, NULL, NULL)";

fn rows(c: &mut Client, sql: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).map_err(|e| format!("{sql}: {e}"))? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    Ok(out)
}

struct Oracle {
    client: Client,
    queries: usize,
}

impl Oracle {
    /// Run `q` (with `$T` for the table) on both tables; the alex run must
    /// use `index` (checked in EXPLAIN) and both must agree.
    fn compare(&mut self, q: &str, column: &str, mode: &str) -> Result<()> {
        let settings = match mode {
            "index" => "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_indexscan = on; SET enable_indexonlyscan = on",
            "bitmap" => "SET enable_seqscan = off; SET enable_bitmapscan = on; SET enable_indexscan = off; SET enable_indexonlyscan = off",
            _ => unreachable!(),
        };
        self.client.batch_execute(settings)?;
        let on_alex = q.replace("$T", "o_ax");
        let plan = rows(&mut self.client, &format!("EXPLAIN (COSTS OFF) {on_alex}"))?.join("\n");
        let index = format!("o_ax_{column}");
        if !plan.contains(&index) {
            return Err(format!("{on_alex}\n[{mode}] does not use {index}:\n{plan}").into());
        }
        let want = rows(&mut self.client, &q.replace("$T", "o_bt"))?;
        let got = rows(&mut self.client, &on_alex)?;
        if want != got {
            return Err(format!(
                "{on_alex}\n[{mode}] alex returned {} rows, btree {}; first difference at {:?}",
                got.len(),
                want.len(),
                want.iter().zip(&got).position(|(a, b)| a != b)
            )
            .into());
        }
        self.queries += 1;
        Ok(())
    }

    /// Every query form on every column, with constants drawn from the data.
    fn all_forms(&mut self, rng: &mut StdRng) -> Result<()> {
        for &(col, ty, _) in COLUMNS {
            let sample = rows(&mut self.client, &format!("SELECT {col}::text FROM o_bt WHERE {col} IS NOT NULL ORDER BY random() LIMIT 4"))?;
            if sample.len() < 4 {
                continue;
            }
            let c = |i: usize| format!("'{}'::{ty}", sample[i]);
            let (lo, hi) = (
                format!("LEAST({}, {})", c(0), c(1)),
                format!("GREATEST({}, {})", c(0), c(1)),
            );
            let mut forms = vec![
                (
                    format!("SELECT rid FROM $T WHERE {col} = {} ORDER BY rid", c(2)),
                    "index",
                ),
                (
                    format!("SELECT rid FROM $T WHERE {col} < {} ORDER BY rid", c(0)),
                    "index",
                ),
                (
                    format!("SELECT rid FROM $T WHERE {col} <= {} ORDER BY rid", c(0)),
                    "index",
                ),
                (
                    format!("SELECT rid FROM $T WHERE {col} > {} ORDER BY rid", c(1)),
                    "index",
                ),
                (
                    format!("SELECT rid FROM $T WHERE {col} >= {} ORDER BY rid", c(1)),
                    "index",
                ),
                (
                    format!("SELECT count(*) FROM $T WHERE {col} BETWEEN {lo} AND {hi}"),
                    "index",
                ),
                (
                    format!("SELECT count(*) FROM $T WHERE {col} > {hi} AND {col} < {lo}"),
                    "index",
                ),
                (
                    format!("SELECT count(*) FROM $T WHERE {col} IS NULL"),
                    "index",
                ),
                (
                    format!("SELECT count(*) FROM $T WHERE {col} IS NOT NULL"),
                    "index",
                ),
                (
                    format!("SELECT {col} FROM $T ORDER BY {col} LIMIT 60"),
                    "index",
                ),
                (
                    format!("SELECT {col} FROM $T ORDER BY {col} DESC LIMIT 60"),
                    "index",
                ),
                (
                    format!("SELECT {col} FROM $T WHERE {col} >= {lo} ORDER BY {col} LIMIT 200"),
                    "index",
                ),
                (
                    format!(
                        "SELECT {col} FROM $T WHERE {col} <= {hi} ORDER BY {col} DESC LIMIT 200"
                    ),
                    "index",
                ),
                (
                    format!(
                        "SELECT rid FROM $T WHERE {col} IN ({}, {}, {}) ORDER BY rid",
                        c(0),
                        c(2),
                        c(3)
                    ),
                    "bitmap",
                ),
                (
                    format!(
                        "SELECT rid FROM $T WHERE {col} = ANY (ARRAY[{}, {}, NULL]) ORDER BY rid",
                        c(1),
                        c(3)
                    ),
                    "bitmap",
                ),
                (
                    format!("SELECT rid FROM $T WHERE {col} BETWEEN {lo} AND {hi} ORDER BY rid"),
                    "bitmap",
                ),
            ];
            // Cross-type constants within the operator families.
            match col {
                "k8" => forms.push((
                    format!(
                        "SELECT rid FROM $T WHERE k8 < {}::int4 ORDER BY rid",
                        rng.gen_range(-1000..100_000)
                    ),
                    "index",
                )),
                "k4" => forms.push((
                    format!(
                        "SELECT rid FROM $T WHERE k4 >= {}::int8 ORDER BY rid",
                        rng.gen_range(-1000..100_000)
                    ),
                    "index",
                )),
                "k2" => forms.push((
                    format!(
                        "SELECT rid FROM $T WHERE k2 = {}::int8 ORDER BY rid",
                        rng.gen_range(0..50)
                    ),
                    "index",
                )),
                "f4" => forms.push((
                    format!(
                        "SELECT rid FROM $T WHERE f4 > {}::float8 ORDER BY rid",
                        rng.gen_range(-10.0..100.0)
                    ),
                    "index",
                )),
                "f8" => forms.push((
                    "SELECT rid FROM $T WHERE f8 = 'NaN' ORDER BY rid".to_string(),
                    "index",
                )),
                _ => {}
            }
            for (q, mode) in forms {
                self.compare(&q, col, mode)?;
            }
        }
        Ok(())
    }

    fn both(&mut self, sql: &str) -> Result<()> {
        for t in ["o_bt", "o_ax"] {
            self.client
                .batch_execute(&sql.replace("$T", t))
                .map_err(|e| format!("{sql}: {e}"))?;
        }
        Ok(())
    }

    fn verify_alex(&mut self) -> Result<()> {
        for &(col, _, _) in COLUMNS {
            rows(
                &mut self.client,
                &format!("SELECT * FROM omendb.alex_verify('o_ax_{col}')"),
            )?;
        }
        Ok(())
    }
}

fn create_tables(o: &mut Oracle, index_first: bool, values: &[Option<i64>]) -> Result<()> {
    let cols: Vec<String> = COLUMNS.iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    o.both("DROP TABLE IF EXISTS $T")?;
    o.both(&format!(
        "CREATE TABLE $T (rid bigserial, {})",
        cols.join(", ")
    ))?;
    let make_indexes = |o: &mut Oracle| -> Result<()> {
        for &(col, _, _) in COLUMNS {
            o.client.batch_execute(&format!("CREATE INDEX o_bt_{col} ON o_bt ({col}); CREATE INDEX o_ax_{col} ON o_ax USING alex ({col})"))?;
        }
        Ok(())
    };
    if index_first {
        make_indexes(o)?;
    }
    o.both(&insert_sql("$T", 1, values))?;
    o.both(&format!("INSERT INTO $T {SPECIAL_ROWS}"))?;
    if !index_first {
        make_indexes(o)?;
    }
    o.both("ANALYZE $T")?;
    Ok(())
}

/// Random inserts, updates and deletes applied to both tables, some rolled
/// back, some through savepoints.
fn random_dml(o: &mut Oracle, dist: &str, rng: &mut StdRng, round: i64) -> Result<()> {
    let extra = distribution(dist, 3000, rng);
    o.both(&format!(
        "BEGIN; {}; COMMIT",
        insert_sql("$T", 1_000_000 * (round + 1), &extra)
    ))?;
    let (m, r) = (rng.gen_range(3..9), rng.gen_range(0..3));
    let new_v = rng.gen_range(-5_000_000i64..5_000_000);
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|(c, _, e)| format!("{c} = {}", e.replace("$v", &format!("({new_v} + rid)"))))
        .collect();
    o.both(&format!(
        "UPDATE $T SET {} WHERE rid % {m} = {r}",
        sets.join(", ")
    ))?;
    o.both(&format!("DELETE FROM $T WHERE rid % {} = {}", m + 1, r))?;
    o.both(&format!(
        "BEGIN; DELETE FROM $T WHERE rid % 2 = 0; {}; ROLLBACK",
        insert_sql("$T", 9_000_000, &extra[..100])
    ))?;
    o.both(&format!(
        "BEGIN; SAVEPOINT s; DELETE FROM $T WHERE rid % 5 = 1; ROLLBACK TO s; {}; COMMIT",
        insert_sql("$T", 5_000_000 * (round + 1), &extra[..200])
    ))?;
    o.both("VACUUM $T")?;
    Ok(())
}

#[test]
fn alex_matches_btree_on_every_distribution() -> Result<()> {
    let seed: u64 = std::env::var("OMENDB_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("alex oracle seed: {seed} (set OMENDB_ORACLE_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = Cluster::start_new("alex-oracle", &ClusterOptions::default())?;
    let mut o = Oracle {
        client: cluster.connect()?,
        queries: 0,
    };
    o.client
        .batch_execute("CREATE EXTENSION omendb; SET jit = off")?;
    for (i, dist) in [
        "sequential",
        "uniform",
        "lognormal",
        "timestamps",
        "duplicates",
        "extremes",
    ]
    .iter()
    .enumerate()
    {
        let values = distribution(dist, 20_000, &mut rng);
        create_tables(&mut o, i % 2 == 0, &values)?;
        let run = |o: &mut Oracle, rng: &mut StdRng, stage: &str| -> Result<()> {
            o.all_forms(rng)
                .map_err(|e| format!("seed {seed}, {dist}, {stage}: {e}"))?;
            o.verify_alex()
                .map_err(|e| format!("seed {seed}, {dist}, {stage}: {e}").into())
        };
        run(&mut o, &mut rng, "after load")?;
        for round in 0..2 {
            random_dml(&mut o, dist, &mut rng, round)?;
            run(&mut o, &mut rng, &format!("after DML round {round}"))?;
        }
    }
    eprintln!("alex oracle: {} queries agreed", o.queries);
    Ok(())
}

#[test]
fn alex_matches_btree_under_concurrent_writers() -> Result<()> {
    let cluster = Cluster::start_new("alex-concurrent", &ClusterOptions::default())?;
    let mut setup = cluster.connect()?;
    setup.batch_execute(
        "CREATE EXTENSION omendb;
         CREATE TABLE c_bt (rid bigint PRIMARY KEY, k bigint);
         CREATE TABLE c_ax (rid bigint PRIMARY KEY, k bigint);
         CREATE INDEX c_bt_k ON c_bt (k);
         CREATE INDEX c_ax_k ON c_ax USING alex (k);
         INSERT INTO c_bt SELECT -i, (random() * 200000)::bigint - 100000 FROM generate_series(1, 40000) i;
         INSERT INTO c_ax SELECT * FROM c_bt;
         CREATE SEQUENCE pad_window;",
    )?;
    let writers = 3;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..writers {
        let mut c = cluster.connect()?;
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || -> Result<u64> {
            let mut rng = StdRng::seed_from_u64(w as u64);
            let mut txns = 0;
            let mut next = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each writer owns rids with rid % writers == w: no row conflicts.
                let sql = match rng.gen_range(0..4) {
                    0 | 1 => {
                        let rows: Vec<String> = (0..50)
                            .map(|_| {
                                next += 1;
                                format!(
                                    "({}, {})",
                                    next * writers as i64 + w as i64,
                                    rng.gen_range(-100_000i64..100_000)
                                )
                            })
                            .collect();
                        format!("INSERT INTO $T VALUES {}", rows.join(","))
                    }
                    2 => format!(
                        "UPDATE $T SET k = k + {} WHERE rid % {writers} = {w} AND rid % 7 = {}",
                        rng.gen_range(1..1000),
                        rng.gen_range(0..7)
                    ),
                    _ => format!(
                        "DELETE FROM $T WHERE rid % {writers} = {w} AND rid % 11 = {}",
                        rng.gen_range(0..11)
                    ),
                };
                let rollback = rng.gen_ratio(1, 6);
                let body = format!(
                    "{}; {}",
                    sql.replace("$T", "c_bt"),
                    sql.replace("$T", "c_ax")
                );
                c.batch_execute(&format!(
                    "BEGIN; {body}; {}",
                    if rollback { "ROLLBACK" } else { "COMMIT" }
                ))?;
                txns += 1;
            }
            Ok(txns)
        }));
    }
    // VACUUM runs throughout: dead entries go, thinned pages merge (moving
    // entries left under the readers' scans) and splits reuse freed pages.
    // Padding rows (negative rids, random keys) are deleted 1,500 at a time
    // from both tables, so pages thin out until VACUUM merges them.
    let vacuum = Background::start(
        &cluster,
        &[
            "BEGIN; SELECT nextval('pad_window');
             DELETE FROM c_bt WHERE rid < 0 AND -rid BETWEEN currval('pad_window') * 1500 - 1499 AND currval('pad_window') * 1500;
             DELETE FROM c_ax WHERE rid < 0 AND -rid BETWEEN currval('pad_window') * 1500 - 1499 AND currval('pad_window') * 1500;
             COMMIT",
            "VACUUM c_ax",
        ],
        &[],
        Duration::from_millis(300),
    )?;
    // Readers compare both tables in one snapshot while the writers run.
    let mut reader = cluster.connect()?;
    reader.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let plan = rows(
        &mut reader,
        "EXPLAIN SELECT rid, k FROM c_ax WHERE k >= 0 AND k < 20000 ORDER BY k, rid",
    )?
    .join("\n");
    assert!(
        plan.contains("c_ax_k"),
        "reader would not use the alex index: {plan}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut checks = 0;
    while std::time::Instant::now() < deadline {
        let lo: i64 = (checks as i64 * 7919) % 200_000 - 100_000;
        reader.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
        let q = |t: &str| {
            format!(
                "SELECT rid, k FROM {t} WHERE k >= {lo} AND k < {} ORDER BY k, rid",
                lo + 20_000
            )
        };
        let want = rows(&mut reader, &q("c_bt"))?;
        let got = rows(&mut reader, &q("c_ax"))?;
        reader.batch_execute("COMMIT")?;
        assert_eq!(
            want, got,
            "concurrent check {checks}: alex and btree differ in one snapshot"
        );
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let vacuums = vacuum.finish()?;
    let mut txns = 0;
    for h in handles {
        txns += h.join().map_err(|_| "writer panicked")??;
    }
    assert!(
        txns > 50 && checks > 10,
        "too little work to mean anything: {txns} txns, {checks} checks"
    );
    rows(&mut reader, "VACUUM c_ax")?;
    rows(&mut reader, "SELECT * FROM omendb.alex_verify('c_ax_k')")?;
    let stats = rows(
        &mut reader,
        "SELECT data_pages, free_pages FROM omendb.alex_stats('c_ax_k')",
    )?;
    // The padding deletes thinned pages that VACUUM merged (freed pages
    // that splits have not taken back remain).
    let free: i32 = reader
        .query_one("SELECT free_pages FROM omendb.alex_stats('c_ax_k')", &[])?
        .get(0);
    assert!(free > 0, "no page was merged: {stats:?}");
    eprintln!(
        "concurrent: {txns} writer transactions, {checks} snapshot comparisons, {vacuums} vacuums, (data, free) pages {stats:?}"
    );
    Ok(())
}

#[test]
fn alex_stays_bounded_through_delete_vacuum_reinsert() -> Result<()> {
    let cluster = Cluster::start_new("alex-vacuum", &ClusterOptions::default())?;
    let mut c = cluster.connect()?;
    c.batch_execute(
        "CREATE EXTENSION omendb;
         CREATE TABLE v_t (k bigint);
         INSERT INTO v_t SELECT (random() * 1e9)::bigint FROM generate_series(1, 100000);
         CREATE INDEX v_t_k ON v_t USING alex (k);",
    )?;
    let size = |c: &mut Client| -> Result<i64> {
        Ok(c.query_one("SELECT pg_relation_size('v_t_k')", &[])?.get(0))
    };
    let built = size(&mut c)?;
    let mut sizes = Vec::new();
    for _ in 0..3 {
        c.batch_execute("DELETE FROM v_t WHERE random() < 0.9")?;
        c.batch_execute("VACUUM v_t")?;
        c.batch_execute("INSERT INTO v_t SELECT (random() * 1e9)::bigint FROM generate_series(1, 100000 - (SELECT count(*) FROM v_t))")?;
        rows(&mut c, "SELECT * FROM omendb.alex_verify('v_t_k')")?;
        sizes.push(size(&mut c)?);
    }
    eprintln!("vacuum: built {built} bytes, after cycles {sizes:?}");
    let last = *sizes.last().ok_or("no cycles")?;
    // VACUUM merges the thinned pages and the reinserted keys reuse them.
    assert!(
        last <= built * 3 / 2,
        "index grew without bound: built {built}, after cycles {sizes:?}"
    );
    assert!(
        sizes[2] <= sizes[1] * 11 / 10 + 8192 * 16,
        "index keeps growing across cycles: {sizes:?}"
    );
    Ok(())
}

/// CREATE INDEX reports its phases and tuple counts to
/// `pg_stat_progress_create_index` (watched from a second session).
#[test]
fn alex_build_reports_progress() -> Result<()> {
    let cluster = Cluster::start_new("alex-progress", &ClusterOptions::default())?;
    let mut c = cluster.connect()?;
    let rows: i64 = 3_000_000;
    c.batch_execute(&format!(
        "CREATE EXTENSION omendb;
         CREATE TABLE p_t (k bigint);
         INSERT INTO p_t SELECT (random() * 1e12)::bigint FROM generate_series(1, {rows});"
    ))?;
    c.batch_execute("VACUUM ANALYZE p_t")?;
    let build = std::thread::spawn(move || -> Result<()> {
        c.batch_execute(
            "SET max_parallel_maintenance_workers = 0; CREATE INDEX p_t_k ON p_t USING alex (k)",
        )?;
        Ok(())
    });
    let mut watcher = cluster.connect()?;
    // (phase, tuples_total, tuples_done) samples, in order.
    let mut seen: Vec<(String, i64, i64)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !build.is_finished() && std::time::Instant::now() < deadline {
        for r in watcher.query(
            "SELECT phase, tuples_total, tuples_done FROM pg_stat_progress_create_index
             WHERE relid = 'p_t'::regclass",
            &[],
        )? {
            let s = (r.get(0), r.get(1), r.get(2));
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
    }
    build.join().map_err(|_| "build thread panicked")??;
    let phases: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    eprintln!("progress samples: {}", seen.len());
    let saw = |p: &str| phases.iter().any(|x| *x == format!("building index: {p}"));
    assert!(saw("scanning table"), "no scan phase in {phases:?}");
    assert!(
        saw("sorting keys") || saw("bulk loading the learned index") || saw("writing pages"),
        "no phase after the scan in {phases:?}"
    );
    // After the scan the total is the number of keys, and the count done
    // only grows, never past it.
    let after: Vec<&(String, i64, i64)> = seen
        .iter()
        .filter(|s| s.0 != "building index: scanning table" && s.1 > 0)
        .collect();
    assert!(
        !after.is_empty(),
        "no tuple counts after the scan: {seen:?}"
    );
    assert!(
        after.iter().all(|s| s.1 == rows && s.2 <= rows),
        "{after:?}"
    );
    assert!(after.windows(2).all(|w| w[0].2 <= w[1].2), "{after:?}");
    Ok(())
}
