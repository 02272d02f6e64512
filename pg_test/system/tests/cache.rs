//! The shared cache of decoded omen_columnar data under load: readers in
//! several backends (some with no local cache, so every fetch goes to the
//! shared one; all reconnecting often) look rows up by index in a cache far
//! smaller than the table while another session deletes and compacts, and
//! every answer equals a heap twin's under the same snapshot. Then a backend
//! is killed with SIGKILL in the middle of its lookups: the server restarts,
//! the cache is laid out again, holds no pins, and answers still match.
//! Without preloading, the per-backend level works and the shared one says
//! it is absent.

use omendb_systest::{delete_and_compact, Cluster, ClusterOptions, Result, CRASH_MARKERS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: i64 = 1_000_000;
const READERS: usize = 3;

fn setup(cluster: &Cluster) -> Result<()> {
    cluster.sql(&format!(
        "CREATE EXTENSION IF NOT EXISTS omendb;
         CREATE TABLE c (id bigint NOT NULL, v int, t text) USING omen_columnar;
         CREATE TABLE h (id bigint NOT NULL, v int, t text);
         INSERT INTO c SELECT g, g % 1000, 'r' || (g % 97) FROM generate_series(1, {ROWS}) g;
         INSERT INTO h SELECT g, g % 1000, 'r' || (g % 97) FROM generate_series(1, {ROWS}) g;
         CREATE INDEX c_id ON c (id);
         CREATE INDEX h_id ON h (id);
         ANALYZE c, h;"
    ))?;
    Ok(())
}

const LOOKUP: &str =
    "SET enable_seqscan = off; SET enable_bitmapscan = off; SET omendb.datafusion = off;";

/// Look `keys` up in both tables, one snapshot per key; the keys whose rows differ.
fn compare(c: &mut postgres::Client, keys: &[i64]) -> Result<Vec<i64>> {
    let mut bad = Vec::new();
    for &k in keys {
        let mut t = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()?;
        let q = |t: &mut postgres::Transaction, table: &str| -> Result<Vec<String>> {
            Ok(t.query(
                &format!("SELECT {table}::text FROM {table} WHERE id = $1 ORDER BY 1"),
                &[&k],
            )?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
        };
        if q(&mut t, "c")? != q(&mut t, "h")? {
            bad.push(k);
        }
        t.commit()?;
    }
    Ok(bad)
}

fn stats(cluster: &Cluster) -> Result<(bool, i64, i64, i64, i64)> {
    let mut c = cluster.connect()?;
    let r = c.query_one(
        "SELECT present, hits, evictions, pins, entries, too_large, inserts FROM omendb.cache_stats",
        &[],
    )?;
    let (too_large, inserts): (i64, i64) = (r.get(5), r.get(6));
    eprintln!("cache: {inserts} inserts, {too_large} too large");
    Ok((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

#[test]
fn shared_cache_under_readers_compaction_and_a_killed_backend() -> Result<()> {
    let opts = ClusterOptions {
        extra_conf: vec!["omendb.cache_size = 16".into()],
        ..Default::default()
    };
    let cluster = Cluster::start_new("cache", &opts)?;
    setup(&cluster)?;
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for r in 0..READERS {
        let (conn, stop, lookups) = (
            cluster.conn_string("postgres"),
            stop.clone(),
            lookups.clone(),
        );
        handles.push(std::thread::spawn(
            move || -> std::result::Result<(), String> {
                let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(r as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    // A new backend every 50 lookups: its local cache starts empty.
                    let mut c = postgres::Client::connect(&conn, postgres::NoTls)
                        .map_err(|e| e.to_string())?;
                    c.batch_execute(LOOKUP).map_err(|e| e.to_string())?;
                    if r == 0 {
                        c.batch_execute("SET omendb.local_cache_size = 0")
                            .map_err(|e| e.to_string())?;
                    }
                    let keys: Vec<i64> = (0..50)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            1 + (x % ROWS as u64) as i64
                        })
                        .collect();
                    let bad = compare(&mut c, &keys).map_err(|e| format!("reader {r}: {e}"))?;
                    if !bad.is_empty() {
                        return Err(format!(
                            "reader {r}: rows differ from heap for keys {bad:?}"
                        ));
                    }
                    lookups.fetch_add(keys.len() as u64, Ordering::Relaxed);
                }
                Ok(())
            },
        ));
    }
    // Deletes and compactions: new segments (new ids) replace the old ones.
    let mut w = cluster.connect()?;
    let round = delete_and_compact(
        &mut w,
        "c",
        "h",
        Duration::from_secs(25),
        Duration::from_millis(500),
        &handles,
    )?;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "a reader panicked")??;
    }
    let (present, hits, evictions, pins, _) = stats(&cluster)?;
    eprintln!(
        "cache: {} lookups, {round} compactions, {hits} shared hits, {evictions} evictions",
        lookups.load(Ordering::Relaxed)
    );
    assert!(present, "the shared cache is absent");
    assert!(
        hits > 0 && evictions > 0,
        "hits {hits}, evictions {evictions}"
    );
    assert_eq!(pins, 0, "pins left behind");
    cluster.check_log(CRASH_MARKERS)?;

    // SIGKILL a backend in the middle of its lookups.
    let mut victim = cluster.connect()?;
    victim.batch_execute(LOOKUP)?;
    let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let busy = std::thread::spawn(move || {
        victim.batch_execute(
            "DO $$ BEGIN FOR i IN 1..1000000 LOOP PERFORM t FROM c WHERE id = 1 + (i * 7919) % 1000000; END LOOP; END $$",
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill -9 {pid} failed");
    assert!(busy.join().map_err(|_| "victim thread panicked")?.is_err());
    // The postmaster reinitializes shared memory; wait until it accepts again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c = loop {
        if let Ok(mut c) = cluster.connect() {
            if c.simple_query("SELECT 1").is_ok() {
                break c;
            }
        }
        if Instant::now() > deadline {
            return Err("the server did not come back after a backend was killed".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (present, _, _, pins, _) = stats(&cluster)?;
    assert!(
        present && pins == 0,
        "after the restart: present {present}, pins {pins}"
    );
    c.batch_execute(LOOKUP)?;
    let keys: Vec<i64> = (1..=300).map(|i| 1 + (i * 104_729) % ROWS).collect();
    let bad = compare(&mut c, &keys)?;
    assert!(
        bad.is_empty(),
        "after the restart, rows differ for keys {bad:?}"
    );
    let mut c2 = cluster.connect()?;
    c2.batch_execute(LOOKUP)?;
    assert!(compare(&mut c2, &keys)?.is_empty());
    let (_, hits, _, pins, entries) = stats(&cluster)?;
    assert!(
        hits > 0 && entries > 0 && pins == 0,
        "hits {hits}, entries {entries}, pins {pins}"
    );
    Ok(())
}

#[test]
fn without_preload_the_local_level_works_and_the_shared_one_is_absent() -> Result<()> {
    let opts = ClusterOptions {
        preload_omendb: false,
        ..Default::default()
    };
    let cluster = Cluster::start_new("cache-nopreload", &opts)?;
    setup(&cluster)?;
    let (present, hits, _, pins, entries) = stats(&cluster)?;
    assert!(!present && hits == 0 && pins == 0 && entries == 0);
    let mut c = cluster.connect()?;
    c.batch_execute(LOOKUP)?;
    let keys: Vec<i64> = (1..=200).map(|i| 1 + (i * 7919) % ROWS).collect();
    assert!(compare(&mut c, &keys)?.is_empty());
    assert!(compare(&mut c, &keys)?.is_empty());
    let local: i64 = c
        .query_one("SELECT hits FROM omendb.local_cache_stats()", &[])?
        .get(0);
    assert!(local > 0, "the local cache had no hits");
    assert!(!c.query("SELECT omendb.cache_reset()", &[])?[0].get::<_, bool>(0));
    Ok(())
}
