//! Scans through the shared cache under load: one backend scanning in
//! DataFusion (whose threads read and fill the cache themselves) and one in
//! PostgreSQL's executor, both reconnecting often, aggregate a 1M-row table
//! in a cache smaller than its decoded columns while another session
//! deletes and compacts; every answer equals a heap twin's under the same
//! snapshot. Then backends in the middle of DataFusion scans are ended
//! with pg_terminate_backend: none may leave a pin behind (their threads
//! are waited for as the backend exits) and the server keeps running.

use omendb_systest::{delete_and_compact, Cluster, ClusterOptions, Result, CRASH_MARKERS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: i64 = 1_000_000;

const QUERY: &str = "SELECT v % 7, count(*), min(id), max(id), min(t), max(t), sum(v) FROM {T} GROUP BY 1 ORDER BY 1";

/// QUERY's rows on `table`, as text (formatted here: a row's text form is
/// not something DataFusion computes).
fn scan(t: &mut impl postgres::GenericClient, table: &str) -> Result<Vec<String>> {
    Ok(t.query(&QUERY.replace("{T}", table), &[])?
        .iter()
        .map(|r| {
            let (k, n, lo, hi): (i32, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let (tmin, tmax, sv): (String, String, i64) = (r.get(4), r.get(5), r.get(6));
            format!("{k} {n} {lo} {hi} {tmin} {tmax} {sv}")
        })
        .collect())
}

/// The query on c (with `mode`: 'force' or 'off') and on h (PostgreSQL's
/// executor) in one snapshot; Err if they differ.
fn compare(c: &mut postgres::Client, mode: &str) -> Result<()> {
    let mut t = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()?;
    let run = |t: &mut postgres::Transaction, table: &str, df: &str| -> Result<Vec<String>> {
        t.batch_execute(&format!("SET LOCAL omendb.datafusion = {df}"))?;
        scan(t, table)
    };
    let (col, heap) = (run(&mut t, "c", mode)?, run(&mut t, "h", "off")?);
    t.commit()?;
    if col != heap {
        return Err(format!("{mode}: columnar {col:?} != heap {heap:?}").into());
    }
    Ok(())
}

fn cache_stats(c: &mut postgres::Client) -> Result<(i64, i64, i64, i64)> {
    let r = c.query_one(
        "SELECT hits, inserts, evictions, pins FROM omendb.cache_stats",
        &[],
    )?;
    Ok((r.get(0), r.get(1), r.get(2), r.get(3)))
}

#[test]
fn scans_share_the_cache_under_compaction_and_terminated_backends() -> Result<()> {
    // 64 MB: 4 MB partitions, so a row group's column (at most 1 MB) fits,
    // while the table's columns and the compactions' new segments do not.
    let opts = ClusterOptions {
        extra_conf: vec![
            "omendb.cache_size = 64".into(),
            "omendb.datafusion_min_cost = 0".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("cache-scan", &opts)?;
    cluster.sql(&format!(
        "CREATE EXTENSION IF NOT EXISTS omendb;
         CREATE TABLE c (id bigint NOT NULL, v int, t text) USING omen_columnar;
         CREATE TABLE h (id bigint NOT NULL, v int, t text);
         INSERT INTO h SELECT g, g % 1000, 'r' || (g % 97) FROM generate_series(1, {ROWS}) g;
         INSERT INTO c SELECT * FROM h;
         ANALYZE c, h;"
    ))?;
    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for mode in ["force", "off"] {
        let (conn, stop, scans) = (cluster.conn_string("postgres"), stop.clone(), scans.clone());
        handles.push(std::thread::spawn(
            move || -> std::result::Result<(), String> {
                while !stop.load(Ordering::Relaxed) {
                    // A new backend every 5 scans (DataFusion threads anew).
                    let mut c = postgres::Client::connect(&conn, postgres::NoTls)
                        .map_err(|e| e.to_string())?;
                    for _ in 0..5 {
                        compare(&mut c, mode).map_err(|e| e.to_string())?;
                        scans.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            },
        ));
    }
    let mut w = cluster.connect()?;
    let round = delete_and_compact(
        &mut w,
        "c",
        "h",
        Duration::from_secs(25),
        Duration::from_millis(1500),
        &handles,
    )?;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "a scanner panicked")??;
    }
    let (hits, inserts, evictions, pins) = cache_stats(&mut w)?;
    eprintln!(
        "cache scans: {} scans, {round} compactions, {hits} hits, {inserts} inserts, {evictions} evictions",
        scans.load(Ordering::Relaxed)
    );
    assert!(hits > 0 && inserts > 0, "hits {hits}, inserts {inserts}");
    assert_eq!(pins, 0, "pins left behind");

    // End backends in the middle of DataFusion scans.
    for i in 0..5 {
        let mut victim = cluster.connect()?;
        victim.batch_execute("SET omendb.datafusion = force")?;
        let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[])?.get(0);
        let busy = std::thread::spawn(move || {
            victim.batch_execute(
                "DO $$ BEGIN FOR i IN 1..100000 LOOP PERFORM sum(id), max(t) FROM c; END LOOP; END $$",
            )
        });
        std::thread::sleep(Duration::from_millis(700 + 300 * i));
        let ended: bool = w
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])?
            .get(0);
        assert!(ended, "pg_terminate_backend({pid})");
        assert!(busy.join().map_err(|_| "victim thread panicked")?.is_err());
        let deadline = Instant::now() + Duration::from_secs(30);
        while w
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )?
            .get::<_, i64>(0)
            > 0
        {
            assert!(Instant::now() < deadline, "backend {pid} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_, _, _, pins) = cache_stats(&mut w)?;
        assert_eq!(pins, 0, "backend {pid} left pins behind");
    }
    cluster.check_log(CRASH_MARKERS)?;
    let mut c = cluster.connect()?;
    compare(&mut c, "force")?;
    compare(&mut c, "off")?;
    Ok(())
}

/// Every answer a server gives: scans in both executors and point lookups
/// by index, as text.
fn answers(c: &mut postgres::Client) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for df in ["force", "off"] {
        c.batch_execute(&format!("SET omendb.datafusion = {df}"))?;
        out.extend(scan(c, "c")?);
    }
    c.batch_execute(
        "SET omendb.datafusion = off; SET enable_seqscan = off; SET enable_bitmapscan = off",
    )?;
    for k in (1..=200i64).map(|i| 1 + (i * 7919) % 200_000) {
        let rows = c.query("SELECT c::text FROM c WHERE id = $1", &[&k])?;
        out.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    c.batch_execute("RESET ALL")?;
    Ok(out)
}

/// A standby fills and reads its own shared cache (keys come from the
/// replayed catalog), and answers as the primary does, before and after the
/// primary deletes and compacts (new segments, old entries unreachable).
#[test]
fn a_standby_serves_from_its_own_cache() -> Result<()> {
    let opts = ClusterOptions {
        extra_conf: vec![
            "omendb.cache_size = 64".into(),
            "omendb.datafusion_min_cost = 0".into(),
        ],
        ..Default::default()
    };
    let primary = Cluster::start_new("cache-primary", &opts)?;
    primary.sql(
        "CREATE EXTENSION IF NOT EXISTS omendb;
         CREATE TABLE c (id bigint NOT NULL, v int, t text) USING omen_columnar;
         INSERT INTO c SELECT g, g % 1000, 'r' || (g % 97) FROM generate_series(1, 200000) g;
         CREATE INDEX c_id ON c (id);
         ANALYZE c;",
    )?;
    let standby = primary.start_standby("cache-standby")?;
    standby.wait_for_replay(primary.current_wal_lsn()?, Duration::from_secs(60))?;
    let (mut p, mut s) = (primary.connect()?, standby.connect()?);
    for round in 0..3 {
        let want = answers(&mut p)?;
        assert!(!want.is_empty());
        // Twice: the second time from the standby's cache.
        assert_eq!(answers(&mut s)?, want, "round {round}: standby differs");
        assert_eq!(
            answers(&mut s)?,
            want,
            "round {round}: standby (cached) differs"
        );
        let (hits, inserts, _, pins) = cache_stats(&mut s)?;
        assert!(
            hits > 0 && inserts > 0,
            "standby: hits {hits}, inserts {inserts}"
        );
        assert_eq!(pins, 0);
        p.batch_execute(&format!(
            "DELETE FROM c WHERE id % 7 = {round}; SELECT omendb.columnar_compact('c');"
        ))?;
        standby.wait_for_replay(primary.current_wal_lsn()?, Duration::from_secs(60))?;
    }
    standby.check_log(CRASH_MARKERS)?;
    primary.check_log(CRASH_MARKERS)?;
    Ok(())
}

/// A scan of more decoded data than the cache holds offers at most half
/// the cache, then reads through it without inserting; the next scan of
/// the same table is answered in part from what the first one kept.
#[test]
fn a_scan_larger_than_the_cache_offers_at_most_half_of_it() -> Result<()> {
    let opts = ClusterOptions {
        extra_conf: vec![
            "omendb.cache_size = 64".into(),
            "omendb.datafusion_min_cost = 0".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("cache-budget", &opts)?;
    // About 80 MB decoded, in parts of 0.5-0.8 MB (a part may take 1 MB
    // of this cache): ids, and short texts with their offsets.
    cluster.sql(
        "CREATE EXTENSION IF NOT EXISTS omendb;
         CREATE TABLE big (id bigint NOT NULL, t text) USING omen_columnar;
         INSERT INTO big SELECT g, 'x' || (g % 1000) FROM generate_series(1, 4000000) g;
         ANALYZE big;",
    )?;
    let mut c = cluster.connect()?;
    let capacity: i64 = c
        .query_one("SELECT capacity_bytes FROM omendb.cache_stats", &[])?
        .get(0);
    let used = |c: &mut postgres::Client| -> Result<(i64, i64, i64)> {
        let r = c.query_one(
            "SELECT bytes_used, hits, inserts FROM omendb.cache_stats",
            &[],
        )?;
        Ok((r.get(0), r.get(1), r.get(2)))
    };
    for df in ["force", "off"] {
        c.batch_execute(&format!(
            "SELECT omendb.cache_reset(); SET omendb.datafusion = {df}"
        ))?;
        let want: i64 = 4_000_000;
        let n: i64 = c
            .query_one("SELECT count(*) FROM big WHERE t LIKE 'x%' OR id > 0", &[])?
            .get(0);
        assert_eq!(n, want);
        let (bytes, _, inserts) = used(&mut c)?;
        eprintln!("{df}: {inserts} parts kept, {bytes} of {capacity} bytes");
        // Half the cache, plus the block rounding of each part.
        assert!(
            inserts > 20 && bytes <= capacity / 2 + inserts * 8192,
            "{df}: one scan kept {inserts} parts, {bytes} bytes of a {capacity}-byte cache"
        );
        let n: i64 = c
            .query_one("SELECT count(*) FROM big WHERE t LIKE 'x%' OR id > 0", &[])?
            .get(0);
        assert_eq!(n, want);
        let (bytes2, hits, _) = used(&mut c)?;
        assert!(hits > 0, "{df}: the second scan found nothing");
        assert!(bytes2 <= capacity, "{df}: {bytes2} bytes used");
    }
    Ok(())
}
