//! Oracle tests for unique alex indexes: the same randomized statements on a
//! table with a unique btree index and on one with a unique alex index must
//! end the same way (row count, or SQLSTATE and message) and leave the same
//! rows — from one session, and from sessions racing on the same keys.
//!
//! OMENDB_ORACLE_SEED fixes the seed; a failure prints the seed it used.

use omendb_systest::{Cluster, ClusterOptions, Result};
use postgres::{Client, GenericClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const SETUP: &str = "CREATE EXTENSION omendb;
    CREATE TABLE u_bt (k bigint, n bigint NOT NULL DEFAULT 0, pad text);
    CREATE TABLE u_ax (k bigint, n bigint NOT NULL DEFAULT 0, pad text);
    CREATE UNIQUE INDEX u_bt_k ON u_bt (k);
    CREATE UNIQUE INDEX u_ax_k ON u_ax USING alex (k);";

/// How a statement ended, with the table's name taken out of messages.
fn outcome(c: &mut impl GenericClient, sql: &str, table: &str) -> String {
    match c.execute(sql.replace("$T", table).as_str(), &[]) {
        Ok(n) => format!("ok {n}"),
        Err(e) => match e.as_db_error() {
            Some(db) => format!(
                "{} {} ({})",
                db.code().code(),
                db.message(),
                db.detail().unwrap_or("")
            )
            .replace(table, "u"),
            None => format!("connection error: {e}"),
        },
    }
}

/// All rows of `table` in key order, read through its index.
fn contents(c: &mut Client, table: &str) -> Result<Vec<(Option<i64>, i64)>> {
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let rows = c.query(
        format!("SELECT k, n FROM {table} ORDER BY k NULLS LAST, n").as_str(),
        &[],
    )?;
    c.batch_execute("RESET enable_seqscan; RESET enable_bitmapscan")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn check_same(c: &mut Client, when: &str) -> Result<()> {
    let want = contents(c, "u_bt")?;
    let got = contents(c, "u_ax")?;
    assert!(
        want == got,
        "{when}: contents differ ({} btree rows, {} alex rows)",
        want.len(),
        got.len()
    );
    let dups: i64 = c
        .query_one(
            "SELECT count(*) - count(DISTINCT k) - count(*) FILTER (WHERE k IS NULL) FROM u_ax",
            &[],
        )?
        .get(0);
    assert_eq!(dups, 0, "{when}: duplicate keys visible in u_ax");
    c.batch_execute("SELECT * FROM omendb.alex_verify('u_ax_k')")?;
    Ok(())
}

/// One random statement over keys 0..domain (`$T` is the table).
fn random_statement(rng: &mut StdRng, domain: i64) -> String {
    let k = |rng: &mut StdRng| rng.gen_range(0..domain);
    match rng.gen_range(0..10) {
        0 => {
            let rows: Vec<String> = (0..rng.gen_range(1..6))
                .map(|_| format!("({}, 0, 'i')", k(rng)))
                .collect();
            format!("INSERT INTO $T VALUES {}", rows.join(", "))
        }
        1 => format!("INSERT INTO $T VALUES (NULL, 0, 'null')"),
        2 => format!(
            "INSERT INTO $T SELECT g, 0, 'range' FROM generate_series({a}, {a} + {}) g",
            rng.gen_range(0..40),
            a = k(rng)
        ),
        3 => format!(
            "INSERT INTO $T VALUES ({}, 0, 'upsert') ON CONFLICT (k) DO UPDATE SET n = $T.n + 1",
            k(rng)
        ),
        4 => {
            let rows: Vec<String> = (0..rng.gen_range(1..20))
                .map(|_| format!("({}, 0, 'nothing')", k(rng)))
                .collect();
            format!(
                "INSERT INTO $T VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            )
        }
        5 => format!("UPDATE $T SET k = {} WHERE k = {}", k(rng), k(rng)),
        // Multi-row key changes are left out: whether they collide depends
        // on the order rows are met, which heap pruning (driven by each
        // index's own heap fetches) may change between the two tables.
        6 => format!("UPDATE $T SET k = k + 1 WHERE k = {}", k(rng)),
        // A new row version with the key unchanged (not HOT: pad grows).
        7 => format!(
            "UPDATE $T SET pad = repeat('p', {}) WHERE k BETWEEN {a} AND {a} + 30",
            rng.gen_range(10..400),
            a = k(rng)
        ),
        8 => format!(
            "DELETE FROM $T WHERE k BETWEEN {a} AND {a} + {}",
            rng.gen_range(0..15),
            a = k(rng)
        ),
        _ => format!(
            "DELETE FROM $T WHERE k % {} = {}",
            rng.gen_range(5..50),
            k(rng) % 5
        ),
    }
}

fn seed() -> u64 {
    std::env::var("OMENDB_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[test]
fn unique_alex_matches_btree_under_random_dml() -> Result<()> {
    let seed = seed();
    eprintln!("unique oracle: OMENDB_ORACLE_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = Cluster::start_new("alex-unique", &ClusterOptions::default())?;
    let mut c = cluster.connect()?;
    c.batch_execute(SETUP)?;
    let mut statements = 0;
    let mut errors = 0;
    for round in 0..60 {
        // Keys crowd a small domain early (many conflicts), spread later
        // (page splits).
        let domain = if round < 30 { 300 } else { 30_000 };
        let mut tx = c.transaction()?;
        for _ in 0..rng.gen_range(5..40) {
            let sql = random_statement(&mut rng, domain);
            let mut ends = Vec::new();
            for table in ["u_bt", "u_ax"] {
                tx.batch_execute("SAVEPOINT s")?;
                let end = outcome(&mut tx, &sql, table);
                tx.batch_execute(if end.starts_with("ok") {
                    "RELEASE SAVEPOINT s"
                } else {
                    "ROLLBACK TO SAVEPOINT s"
                })?;
                ends.push(end);
            }
            assert_eq!(
                ends[0], ends[1],
                "seed {seed}, round {round}: {sql}\n  btree: {}\n  alex:  {}",
                ends[0], ends[1]
            );
            statements += 1;
            errors += usize::from(!ends[0].starts_with("ok"));
        }
        if rng.gen_ratio(1, 4) {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        if round % 10 == 9 {
            c.batch_execute("VACUUM u_bt, u_ax")?;
            check_same(&mut c, &format!("seed {seed}, round {round}"))?;
        }
    }
    check_same(&mut c, &format!("seed {seed}, end"))?;
    assert!(
        errors > 20 && statements - errors > 200,
        "too few conflicts or successes to mean anything: {statements} statements, {errors} errors"
    );
    eprintln!("unique oracle: {statements} statements agreed, {errors} of them errors");
    Ok(())
}

/// Sessions race on a few hundred keys: each statement runs on the btree
/// table and then on the alex table in the same transaction, each in a
/// savepoint. An inserter waits on both tables for the same transactions,
/// so the two must end alike every time (a unique violation on both, or
/// success on both); the transactions commit or abort as a whole. Deletes
/// take a transaction-level advisory lock exclusively and inserts share it,
/// so no delete runs while an inserting transaction is open: otherwise a
/// commit landing between the two halves of a delete would be a legitimate
/// READ COMMITTED difference (btree's half misses the row, alex's sees it).
#[test]
fn unique_alex_matches_btree_under_racing_sessions() -> Result<()> {
    let seed = seed();
    eprintln!("unique race: OMENDB_ORACLE_SEED={seed}");
    let cluster = Cluster::start_new("alex-unique-race", &ClusterOptions::default())?;
    let mut setup = cluster.connect()?;
    setup.batch_execute(SETUP)?;
    setup.batch_execute(
        "INSERT INTO u_bt SELECT g, 0, 'seed' FROM generate_series(1000, 40000) g;
         INSERT INTO u_ax SELECT * FROM u_bt;",
    )?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..4u64 {
        let mut c = cluster.connect()?;
        c.batch_execute("SET lock_timeout = '20s'")?;
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || -> std::result::Result<(u64, u64), String> {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w));
            let (mut pairs, mut conflicts) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tx = c.transaction().map_err(|e| e.to_string())?;
                let mut deadlocked = false;
                for _ in 0..rng.gen_range(1..4) {
                    let k = rng.gen_range(0..200i64);
                    let sql = match rng.gen_range(0..4) {
                        0 | 1 => format!("INSERT INTO $T VALUES ({k}, 0, 'w{w}')"),
                        2 => format!(
                            "INSERT INTO $T VALUES ({k}, 0, 'w{w}') ON CONFLICT (k) DO UPDATE SET n = $T.n + 1"
                        ),
                        _ => format!("DELETE FROM $T WHERE k = {k}"),
                    };
                    let lock = if sql.starts_with("DELETE") {
                        "SELECT pg_advisory_xact_lock(4242)"
                    } else {
                        "SELECT pg_advisory_xact_lock_shared(4242)"
                    };
                    if tx.batch_execute(lock).is_err() {
                        // A deadlock through the advisory lock: start over.
                        deadlocked = true;
                        break;
                    }
                    let mut ends = Vec::new();
                    for table in ["u_bt", "u_ax"] {
                        tx.batch_execute("SAVEPOINT s").map_err(|e| e.to_string())?;
                        let end = outcome(&mut tx, &sql, table);
                        let undo = if end.starts_with("ok") {
                            "RELEASE SAVEPOINT s"
                        } else {
                            "ROLLBACK TO SAVEPOINT s"
                        };
                        tx.batch_execute(undo).map_err(|e| e.to_string())?;
                        ends.push(end);
                    }
                    // Two sessions inserting keys in opposite orders deadlock
                    // on btree as on alex; the victim's transaction ends.
                    if ends.iter().any(|e| e.starts_with("40P01")) {
                        deadlocked = true;
                        break;
                    }
                    if ends[0] != ends[1] {
                        return Err(format!(
                            "seed {seed}, session {w}: {sql}\n  btree: {}\n  alex:  {}",
                            ends[0], ends[1]
                        ));
                    }
                    pairs += 1;
                    conflicts += u64::from(ends[0].starts_with("23505"));
                }
                let end = if deadlocked || rng.gen_ratio(1, 3) {
                    tx.rollback()
                } else {
                    tx.commit()
                };
                end.map_err(|e| e.to_string())?;
            }
            Ok((pairs, conflicts))
        }));
    }
    let mut vacuum = cluster.connect()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        vacuum.batch_execute("VACUUM u_ax, u_bt")?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut pairs, mut conflicts) = (0, 0);
    for h in handles {
        let (p, c) = h.join().map_err(|_| "a session panicked")??;
        pairs += p;
        conflicts += c;
    }
    check_same(&mut setup, &format!("seed {seed}, after the race"))?;
    assert!(
        pairs > 200 && conflicts > 20,
        "too little contention to mean anything: {pairs} statement pairs, {conflicts} conflicts"
    );
    eprintln!("unique race: {pairs} statement pairs agreed, {conflicts} unique violations");
    Ok(())
}
