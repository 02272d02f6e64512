//! Background compaction: clients stream single-row inserts (and some
//! deletes) into an omen_columnar table and the same rows into a heap twin,
//! and nobody calls omendb.columnar_compact. The worker must keep the
//! segment count bounded and purge the deleted rows, the table must equal
//! the heap throughout, and `omendb.autocompact = off` (by reload) must stop
//! it. A database without the extension is visited without complaint.

use omendb_systest::{Cluster, ClusterOptions, Result};
use std::time::{Duration, Instant};

const CLIENTS: i64 = 3;
const LOAD: Duration = Duration::from_secs(20);

/// (segments, write-store segments, deleted rows) of s_c.
fn stats(cluster: &Cluster) -> Result<(i64, i64, i64)> {
    let mut c = cluster.connect()?;
    let r = c.query_one(
        "SELECT segments, write_store_segments, deleted_rows FROM omendb.columnar_stats('s_c')",
        &[],
    )?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

fn same_rows(cluster: &Cluster) -> Result<()> {
    let mut c = cluster.connect()?;
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
    let q = |t: &str| format!("SELECT id, sensor, temp FROM {t} ORDER BY id");
    let col: Vec<(i64, i32, f64)> = c
        .query(&q("s_c"), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let heap: Vec<(i64, i32, f64)> = c
        .query(&q("s_h"), &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    c.batch_execute("COMMIT")?;
    if col != heap {
        return Err(format!(
            "omen_columnar has {} rows, heap {}; first difference at {:?}",
            col.len(),
            heap.len(),
            col.iter().zip(&heap).position(|(a, b)| a != b)
        )
        .into());
    }
    Ok(())
}

/// Poll `cond` every 200 ms for up to `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

/// Single-row statements from CLIENTS clients for `load`; each transaction
/// writes the same row to both tables, every 8th deletes an older one from
/// both. Returns the number of insert statements.
fn stream(cluster: &Cluster, load: Duration, base: i64) -> Result<i64> {
    let handles: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let mut c = cluster.connect()?;
            Ok(std::thread::spawn(move || -> Result<i64> {
                let start = Instant::now();
                let mut n = 0i64;
                while start.elapsed() < load {
                    let id = base + n * CLIENTS + k;
                    let mut t = c.transaction()?;
                    for table in ["s_c", "s_h"] {
                        t.execute(
                            &format!("INSERT INTO {table} VALUES ($1, $2, $3)"),
                            &[&id, &((id % 50) as i32), &(id as f64 / 7.0)],
                        )?;
                    }
                    if n % 8 == 7 {
                        let old = id - 5 * CLIENTS;
                        for table in ["s_c", "s_h"] {
                            t.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&old])?;
                        }
                    }
                    t.commit()?;
                    n += 1;
                }
                Ok(n)
            }))
        })
        .collect::<Result<_>>()?;
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "client thread panicked")??;
    }
    Ok(total)
}

#[test]
fn background_compaction_bounds_segments_and_purges() -> Result<()> {
    let opts = ClusterOptions {
        autocompact: true,
        extra_conf: vec![
            "omendb.autocompact_naptime = 1".into(),
            "omendb.autocompact_min_segments = 16".into(),
            "log_min_messages = log".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("autocompact", &opts)?;
    cluster.sql("CREATE DATABASE plain")?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE s_c (id bigint NOT NULL, sensor int NOT NULL, temp float8) USING omen_columnar;
         CREATE TABLE s_h (id bigint NOT NULL, sensor int NOT NULL, temp float8);
         CREATE INDEX s_c_id ON s_c (id);",
    )?;
    let launcher = wait_for(Duration::from_secs(30), || {
        Ok(cluster.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'omendb autocompact launcher'",
        )? == ["1"])
    })?;
    assert!(launcher, "no launcher in pg_stat_activity");

    // Phase 1: streaming with the worker on.
    let inserted = stream(&cluster, LOAD, 0)?;
    let (segments_after_load, _, _) = stats(&cluster)?;
    same_rows(&cluster)?;
    let settled = wait_for(Duration::from_secs(30), || {
        let (segments, ws, deleted) = stats(&cluster)?;
        Ok(segments <= 4 && ws <= 2 && deleted == 0)
    })?;
    let (segments, ws, deleted) = stats(&cluster)?;
    assert!(
        inserted >= 500,
        "only {inserted} insert statements in {LOAD:?}: the test proves nothing"
    );
    assert!(
        settled,
        "after {inserted} single-row inserts: {segments} segments ({ws} write-store), {deleted} deleted rows left"
    );
    // Each statement made one write-store segment; the worker kept up.
    assert!(
        segments_after_load < inserted / 4,
        "{segments_after_load} segments right after {inserted} inserts"
    );
    eprintln!(
        "autocompact: {inserted} single-row inserts from {CLIENTS} clients in {LOAD:?}: \
         {segments_after_load} segments when the load stopped, {segments} ({ws} write-store) once settled"
    );
    same_rows(&cluster)?;
    assert_eq!(
        cluster.sql("SELECT count(*) > 0 FROM omendb.columnar_verify('s_c')")?,
        ["t"]
    );

    // Phase 2: off by reload: segments pile up again.
    cluster.sql("ALTER SYSTEM SET omendb.autocompact = off")?;
    cluster.sql("SELECT pg_reload_conf()")?;
    std::thread::sleep(Duration::from_secs(2));
    let more = stream(&cluster, Duration::from_secs(3), 1 << 40)?;
    std::thread::sleep(Duration::from_secs(3));
    let (off_segments, _, _) = stats(&cluster)?;
    assert!(
        off_segments >= more,
        "with omendb.autocompact = off, {off_segments} segments after {more} inserts"
    );

    // Phase 3: on again: compacted without a manual call.
    cluster.sql("ALTER SYSTEM SET omendb.autocompact = on")?;
    cluster.sql("SELECT pg_reload_conf()")?;
    let settled = wait_for(Duration::from_secs(30), || {
        let (segments, _, deleted) = stats(&cluster)?;
        Ok(segments <= 5 && deleted == 0)
    })?;
    assert!(
        settled,
        "not compacted after autocompact was turned on again: {:?}",
        stats(&cluster)?
    );
    same_rows(&cluster)?;
    assert_eq!(
        cluster.sql("SELECT count(*) > 0 FROM omendb.columnar_verify('s_c')")?,
        ["t"]
    );
    let log = std::fs::read_to_string(cluster.data_dir().join("server.log"))?;
    assert!(
        log.contains("omendb: automatic compaction of table \"s_c\""),
        "no compaction logged:\n{}",
        cluster.log_tail(40)
    );
    for bad in [
        "failed",
        "PANIC",
        "terminated by signal",
        "exited with exit code",
    ] {
        assert!(
            !log.contains(bad),
            "server log has {bad:?}:\n{}",
            cluster.log_tail(60)
        );
    }
    Ok(())
}
