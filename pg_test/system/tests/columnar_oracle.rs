//! omen_columnar against heap: the same randomized DML, single-session and
//! concurrent, with rollbacks and savepoints, applied to a heap table and an
//! omen_columnar table with every common type. Contents (and index-scan
//! answers) are compared after every step; columnar_verify runs throughout.

use omendb_systest::{query_with_plan, Background, Cluster, ClusterOptions, Result};
use postgres::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COLUMNS: &str =
    "id int8 NOT NULL, b bool, i2 int2, i4 int4, f4 float4, f8 float8, n numeric, \
     t text, vc varchar(12), by bytea, d date, tm time, ts timestamp, tz timestamptz, iv interval, \
     u uuid, j json, jb jsonb, a int4[], ta text[]";

/// A random SQL literal for column `k` of COLUMNS (NULL one time in six).
fn literal(rng: &mut StdRng, k: usize) -> String {
    if rng.gen_range(0..6) == 0 {
        return "NULL".into();
    }
    let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_string();
    match k {
        0 => unreachable!("id is generated"),
        1 => pick(rng, &["true", "false"]),
        2 => pick(rng, &["32767", "-32768", "0", "7"]),
        3 => format!("{}", rng.gen_range(-1000..1000)),
        4 => pick(
            rng,
            &[
                "'NaN'::float4",
                "'-Infinity'::float4",
                "'-0'::float4",
                "1.5e-45::float4",
                "3.25",
            ],
        ),
        5 => pick(
            rng,
            &[
                "'NaN'::float8",
                "'Infinity'::float8",
                "4.9e-324",
                "-1e308",
                "0.1",
            ],
        ),
        6 => pick(
            rng,
            &[
                "'NaN'::numeric",
                "123456789012345678901234567890.000000001",
                "-0.5",
                "0",
            ],
        ),
        7 => pick(
            rng,
            &[
                "''",
                "'héllo'",
                "repeat('x', 3000)",
                "'a''b'",
                "'line\nbreak'",
            ],
        ),
        8 => pick(rng, &["'short'", "''", "'twelve chars'"]),
        9 => pick(
            rng,
            &[
                "'\\x'::bytea",
                "'\\x00ff'::bytea",
                "decode(repeat('ab', 5000), 'hex')",
            ],
        ),
        10 => pick(
            rng,
            &[
                "'infinity'::date",
                "'-infinity'::date",
                "'2024-02-29'",
                "'4713-01-01 BC'",
            ],
        ),
        11 => pick(rng, &["'00:00'", "'23:59:59.999999'", "'12:34:56'"]),
        12 => pick(
            rng,
            &[
                "'infinity'::timestamp",
                "'2000-01-01'",
                "'1999-12-31 23:59:59.5'",
            ],
        ),
        13 => pick(
            rng,
            &[
                "'-infinity'::timestamptz",
                "'2024-06-01 12:00+02'",
                "'1970-01-01 00:00+00'",
            ],
        ),
        14 => pick(rng, &["'1 year 2 mons 3 days 04:05:06'", "'-1 day'", "'0'"]),
        15 => pick(
            rng,
            &[
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
                "'00000000-0000-0000-0000-000000000000'",
            ],
        ),
        16 => pick(rng, &["'{\"a\": [1, 2]}'", "'[]'", "'\"s\"'"]),
        17 => pick(rng, &["'{\"b\": {\"c\": null}}'", "'[1, \"x\"]'", "'3.5'"]),
        18 => pick(rng, &["'{1,NULL,3}'", "'{}'", "'{{1,2},{3,4}}'"]),
        _ => pick(rng, &["'{\"x\",NULL,\"\"}'", "'{}'", "ARRAY['a,b', 'c']"]),
    }
}

fn row_values(rng: &mut StdRng, id: i64) -> String {
    let cols: Vec<String> = (1..20).map(|k| literal(rng, k)).collect();
    format!("({id}, {})", cols.join(", "))
}

/// A statement template ({T} = table) and whether it needs fresh ids.
fn random_statement(rng: &mut StdRng, next_id: &mut i64) -> String {
    match rng.gen_range(0..10) {
        0..=2 => {
            let n = rng.gen_range(1..4);
            let rows: Vec<String> = (0..n)
                .map(|_| {
                    *next_id += 1;
                    row_values(rng, *next_id)
                })
                .collect();
            format!("INSERT INTO {{T}} VALUES {}", rows.join(", "))
        }
        3 => {
            // Many rows at once: a Parquet segment.
            let n = rng.gen_range(600..1500);
            let first = *next_id + 1;
            *next_id += n;
            format!(
                "INSERT INTO {{T}} (id, i4, t, f8, d, a) SELECT g, (g % 97)::int4, 'r' || (g % 13), g / 7.0, \
                 date '2000-01-01' + (g % 5000)::int, ARRAY[g::int4] FROM generate_series({first}, {}) g",
                *next_id
            )
        }
        4 | 5 => {
            let m = rng.gen_range(5..30);
            let r = rng.gen_range(0..m);
            format!("UPDATE {{T}} SET i4 = coalesce(i4, 0) + 1, t = coalesce(t, '') || 'u' WHERE id % {m} = {r}")
        }
        6 => {
            let m = rng.gen_range(5..40);
            let r = rng.gen_range(0..m);
            format!("DELETE FROM {{T}} WHERE id % {m} = {r}")
        }
        7 => {
            let lo = rng.gen_range(0..(*next_id).max(1));
            format!("DELETE FROM {{T}} WHERE id BETWEEN {lo} AND {}", lo + 50)
        }
        8 => {
            *next_id += 1;
            format!(
                "UPDATE {{T}} SET id = {} WHERE id = (SELECT min(id) FROM {{T}})",
                *next_id + 1_000_000_000
            )
        }
        _ => "UPDATE {T} SET b = NOT b WHERE b IS NOT NULL AND id % 5 = 1".into(),
    }
}

fn contents(c: &mut Client, table: &str) -> Result<Vec<String>> {
    Ok(
        c.query(&format!("SELECT x::text FROM {table} x ORDER BY 1"), &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

fn by_index(c: &mut Client, table: &str) -> Result<Vec<String>> {
    c.batch_execute("SET enable_seqscan = off")?;
    let q = format!("SELECT x::text FROM {table} x WHERE id BETWEEN 100 AND 900 ORDER BY id");
    let rows = query_with_plan(c, &q, "Index")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.batch_execute("RESET enable_seqscan")?;
    Ok(rows)
}

fn compare(c: &mut Client, step: &str) -> Result<()> {
    let (h, col) = (contents(c, "oh")?, contents(c, "oc")?);
    if h != col {
        let only_h: Vec<_> = h.iter().filter(|r| !col.contains(r)).take(3).collect();
        let only_c: Vec<_> = col.iter().filter(|r| !h.contains(r)).take(3).collect();
        return Err(format!(
            "after {step}: heap has {} rows, columnar {}; only in heap {only_h:?}; only in columnar {only_c:?}",
            h.len(),
            col.len()
        )
        .into());
    }
    if by_index(c, "oh")? != by_index(c, "oc")? {
        return Err(format!("after {step}: index scans differ").into());
    }
    Ok(())
}

fn setup(name: &str) -> Result<Cluster> {
    let cluster = Cluster::start_new(name, &ClusterOptions::default())?;
    cluster.sql(&format!(
        "CREATE EXTENSION omendb;
         CREATE TABLE oh ({COLUMNS});
         CREATE TABLE oc ({COLUMNS}) USING omen_columnar;
         CREATE INDEX oh_id ON oh (id); CREATE INDEX oc_id ON oc (id);"
    ))?;
    Ok(cluster)
}

#[test]
fn single_session_dml_matches_heap() -> Result<()> {
    let cluster = setup("columnar-oracle")?;
    let mut c = cluster.connect()?;
    let mut rng = StdRng::seed_from_u64(0x0c01_u64);
    let mut next_id = 0i64;
    for step in 0..50 {
        let mode = rng.gen_range(0..10);
        let stmts: Vec<String> = (0..rng.gen_range(1..4))
            .map(|_| random_statement(&mut rng, &mut next_id))
            .collect();
        let mut tx = c.transaction()?;
        for (i, s) in stmts.iter().enumerate() {
            if mode == 1 && i == 1 {
                tx.batch_execute("SAVEPOINT sp")?;
            }
            for t in ["oh", "oc"] {
                tx.batch_execute(&s.replace("{T}", t))?;
            }
            // Compaction inside a transaction that also changes the table
            // (committed or rolled back below).
            if mode == 2 && i == 0 {
                tx.batch_execute("SELECT omendb.columnar_compact('oc')")?;
            }
        }
        if mode == 1 && stmts.len() > 1 {
            tx.batch_execute("ROLLBACK TO SAVEPOINT sp")?;
        }
        let label = format!(
            "step {step} ({} statements, mode {mode}): {stmts:?}",
            stmts.len()
        );
        if mode == 0 {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        compare(&mut c, &label)?;
        if step % 5 == 2 {
            // Compaction on its own; pruning the replaced segments' catalog
            // rows lets the next segments reuse their pages.
            c.batch_execute("SELECT omendb.columnar_compact('oc')")?;
            c.batch_execute("VACUUM omendb.columnar_segment")?;
            c.query("SELECT * FROM omendb.columnar_verify('oc')", &[])
                .map_err(|e| format!("{label} + compaction: {e}"))?;
            compare(&mut c, &format!("{label} + compaction"))?;
        }
        if step % 10 == 9 {
            c.batch_execute("VACUUM oc")?;
            c.batch_execute("ANALYZE oc")?;
            c.query("SELECT * FROM omendb.columnar_verify('oc')", &[])
                .map_err(|e| format!("{label} + VACUUM: {e}"))?;
            compare(&mut c, &format!("{label} + VACUUM"))?;
        }
    }
    c.batch_execute("VACUUM FULL oc")?;
    compare(&mut c, "VACUUM FULL")?;
    c.query("SELECT * FROM omendb.columnar_verify('oc')", &[])?;
    Ok(())
}

#[test]
fn concurrent_sessions_match_heap() -> Result<()> {
    let cluster = setup("columnar-concurrent")?;
    // Each repeatable-read transaction applies one statement to both tables
    // and commits or rolls back both, so whatever the interleaving the
    // tables stay equal. Serialization failures (heap's or columnar's) and
    // deadlocks roll back both.
    let mut handles = Vec::new();
    for t in 0..3u64 {
        let mut c = cluster.connect()?;
        handles.push(std::thread::spawn(
            move || -> std::result::Result<(u32, u32), String> {
                let mut rng = StdRng::seed_from_u64(0xc0c0 + t);
                let mut next_id = (t as i64 + 1) * 100_000_000;
                let (mut committed, mut failed) = (0, 0);
                for _ in 0..40 {
                    let s = random_statement(&mut rng, &mut next_id);
                    let roll_back = rng.gen_range(0..6) == 0;
                    let r = (|| -> std::result::Result<(), postgres::Error> {
                        // One snapshot for both statements (READ COMMITTED
                        // would give each its own and the tables could
                        // legitimately diverge).
                        let mut tx = c
                            .build_transaction()
                            .isolation_level(postgres::IsolationLevel::RepeatableRead)
                            .start()?;
                        tx.batch_execute(&s.replace("{T}", "oh"))?;
                        tx.batch_execute(&s.replace("{T}", "oc"))?;
                        if roll_back {
                            tx.rollback()
                        } else {
                            tx.commit()
                        }
                    })();
                    match r {
                        Ok(()) => committed += 1,
                        Err(e) => {
                            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                            if code != "40001" && code != "40P01" {
                                return Err(format!("{s}: {e:?}"));
                            }
                            failed += 1;
                        }
                    }
                }
                Ok((committed, failed))
            },
        ));
    }
    // Compaction runs throughout; readers' snapshots span its commits.
    let compactor = Background::start(
        &cluster,
        &[
            "SELECT omendb.columnar_compact('oc')",
            "VACUUM omendb.columnar_segment, omendb.columnar_deleted",
        ],
        &[],
        std::time::Duration::from_millis(50),
    )?;
    // Meanwhile a reader checks that a snapshot sees the same in both.
    let mut reader = cluster.connect()?;
    for _ in 0..20 {
        let mut tx = reader
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()?;
        let h: Vec<String> = tx
            .query("SELECT x::text FROM oh x ORDER BY 1", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let c: Vec<String> = tx
            .query("SELECT x::text FROM oc x ORDER BY 1", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The same snapshot through the indexes (TIDs stay valid across
        // compactions that commit meanwhile).
        tx.batch_execute("SET LOCAL enable_seqscan = off")?;
        let via_index = |tx: &mut postgres::Transaction, t: &str| -> Result<Vec<String>> {
            Ok(tx
                .query(&format!("SELECT x::text FROM {t} x WHERE id BETWEEN 0 AND 1000000000000 ORDER BY id, 1"), &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        };
        let (hi, ci) = (via_index(&mut tx, "oh")?, via_index(&mut tx, "oc")?);
        tx.commit()?;
        assert!(
            hi == ci,
            "a repeatable-read snapshot sees different rows through the indexes"
        );
        assert_eq!(
            h.len(),
            c.len(),
            "a repeatable-read snapshot sees different row counts"
        );
        assert!(h == c, "a repeatable-read snapshot sees different rows");
    }
    let mut total = 0;
    for h in handles {
        let (ok, failed) = h.join().map_err(|_| "client panicked")??;
        eprintln!("client: {ok} committed, {failed} serialization failures/deadlocks");
        total += ok;
    }
    assert!(total > 40, "too few transactions committed ({total})");
    let rounds = compactor.finish()?;
    eprintln!("compactor: {rounds} rounds");
    assert!(rounds > 0, "compaction never ran");
    let mut c = cluster.connect()?;
    compare(&mut c, "concurrent workload")?;
    c.query("SELECT * FROM omendb.columnar_verify('oc')", &[])?;
    Ok(())
}

#[test]
fn pg_dump_and_restore_round_trip() -> Result<()> {
    let cluster = setup("columnar-dump")?;
    let mut c = cluster.connect()?;
    let mut rng = StdRng::seed_from_u64(0xd0);
    let mut next_id = 0i64;
    for _ in 0..15 {
        let s = random_statement(&mut rng, &mut next_id);
        for t in ["oh", "oc"] {
            c.batch_execute(&s.replace("{T}", t))?;
        }
    }
    let want = contents(&mut c, "oc")?;
    assert!(!want.is_empty());
    let port = cluster.port().to_string();
    let file = cluster.data_dir().join("dump.custom");
    let file = file.to_str().ok_or("non-UTF-8 path")?;
    let conn = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    let mut dump = omendb_systest::pg_command("pg_dump");
    dump.args(conn).args(["-Fc", "-f", file, "postgres"]);
    omendb_systest::run(dump)?;
    c.batch_execute("CREATE DATABASE restored")?;
    let mut restore = omendb_systest::pg_command("pg_restore");
    restore.args(conn).args(["-d", "restored", file]);
    omendb_systest::run(restore)?;
    let mut r = cluster.connect_db("restored")?;
    let am: String = r
        .query_one("SELECT amname::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE relname = 'oc'", &[])?
        .get(0);
    assert_eq!(
        am, "omen_columnar",
        "the restored table must keep its access method"
    );
    assert!(
        contents(&mut r, "oc")? == want,
        "restored omen_columnar table differs from the dumped one"
    );
    r.query("SELECT * FROM omendb.columnar_verify('oc')", &[])?;
    Ok(())
}
