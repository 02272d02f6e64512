//! Background compaction: clients stream single-row inserts (and some
//! deletes) into an omen_columnar table and the same rows into a heap twin,
//! and nobody calls omendb.columnar_compact. The worker must keep the
//! segment count bounded and purge the deleted rows, the table must equal
//! the heap throughout, and `omendb.autocompact = off` (by reload) must stop
//! it. A database without the extension is visited without complaint.

use omendb_systest::{Cluster, ClusterOptions, Result, CRASH_MARKERS};
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

/// Whether the deleted rows left in s_c are below the share that makes a
/// table due by itself (`omendb.autocompact_deleted_fraction`, 0.1): rows
/// deleted after the last compaction stay until enough accumulate, as
/// autovacuum leaves dead tuples below its scale factor.
fn few_deleted(cluster: &Cluster, deleted: i64) -> Result<bool> {
    let rows: Vec<String> = cluster.sql("SELECT row_count FROM omendb.columnar_stats('s_c')")?;
    let rows: i64 = rows.first().and_then(|r| r.parse().ok()).unwrap_or(0);
    Ok(deleted * 10 < rows.max(1))
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
            "autovacuum_naptime = 1".into(),
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
    // Statistics kept up with the load: the table counts its changes in
    // pg_stat_user_tables, and the worker ANALYZEs it after a compaction
    // when autovacuum would (autovacuum itself skips a table whose lock a
    // compaction holds, which under this load is most of the time). So a
    // key lookup probes the index, as on heap; with stale statistics the
    // planner guessed 0.5% of the rows and scanned.
    let (tuples, analyzed): (f32, bool) = {
        let mut c = cluster.connect()?;
        let r = c.query_one(
            "SELECT c.reltuples, s.last_analyze IS NOT NULL
               FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
              WHERE c.relname = 's_c'",
            &[],
        )?;
        (r.get(0), r.get(1))
    };
    let plan = cluster.sql("EXPLAIN (COSTS OFF) SELECT * FROM s_c WHERE id = 12345")?;
    assert!(
        analyzed && f64::from(tuples) >= inserted as f64 * 7.0 / 8.0 / 2.0,
        "statistics behind the load: reltuples {tuples} after {inserted} inserts (analyzed by the worker: {analyzed})"
    );
    assert!(
        plan.first()
            .is_some_and(|l| l.contains("Index Scan using s_c_id")),
        "key lookup right after the load: {plan:?}"
    );
    same_rows(&cluster)?;
    // Settled = nothing left due: fewer write-store segments than
    // `omendb.autocompact_min_segments` (16; the tail of the load stays
    // until more arrive, as autovacuum leaves dead tuples below its
    // threshold) beside a few Parquet ones, and few deleted rows.
    let settled = wait_for(Duration::from_secs(30), || {
        let (segments, ws, deleted) = stats(&cluster)?;
        Ok(ws < 16 && segments - ws <= 4 && few_deleted(&cluster, deleted)?)
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
    // Every 8th transaction deleted a row; most of those were purged.
    let purged: Vec<String> =
        cluster.sql("SELECT rows_purged FROM omendb.columnar_compactions WHERE relname = 's_c'")?;
    let purged: i64 = purged.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(
        purged >= inserted / 16,
        "{purged} rows purged of about {} deleted",
        inserted / 8
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
        Ok(segments <= 5 && few_deleted(&cluster, deleted)?)
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
    cluster.check_log(&[CRASH_MARKERS, &["failed", "exited with exit code"]].concat())?;
    Ok(())
}

/// A session that adds `omendb.autocompact_min_segments` write-store
/// segments nudges the launcher: a burst of single-row inserts is compacted
/// within seconds, with no VACUUM and no round (the naptime is an hour).
#[test]
fn inserts_nudge_the_launcher() -> Result<()> {
    let opts = ClusterOptions {
        autocompact: true,
        extra_conf: vec![
            "omendb.autocompact_naptime = 3600".into(),
            "omendb.autocompact_min_segments = 16".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("autocompact-nudge", &opts)?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE n (id bigint NOT NULL, v text) USING omen_columnar;
         CREATE TABLE n_heap (id bigint NOT NULL, v text);",
    )?;
    let mut c = cluster.connect()?;
    let segments = |c: &mut postgres::Client| -> Result<i64> {
        Ok(
            c.query_one("SELECT segments FROM omendb.columnar_stats('n')", &[])?
                .get(0),
        )
    };
    // Fewer than min_segments: no nudge, nothing compacted.
    for i in 0..10i64 {
        for t in ["n", "n_heap"] {
            c.execute(
                &format!("INSERT INTO {t} VALUES ($1::bigint, 'row ' || $1::bigint)"),
                &[&i],
            )?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(segments(&mut c)?, 10, "compacted without being asked");
    for i in 10..500i64 {
        for t in ["n", "n_heap"] {
            c.execute(
                &format!("INSERT INTO {t} VALUES ($1::bigint, 'row ' || $1::bigint)"),
                &[&i],
            )?;
        }
    }
    let compacted = wait_for(Duration::from_secs(20), || Ok(segments(&mut c)? < 16))?;
    assert!(
        compacted,
        "500 single-row inserts, no compaction: {} segments",
        segments(&mut c)?
    );
    let q = |t: &str| format!("SELECT id, v FROM {t} ORDER BY id");
    let rows = |c: &mut postgres::Client, t: &str| -> Result<Vec<(i64, String)>> {
        Ok(c.query(&q(t), &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    };
    assert_eq!(rows(&mut c, "n")?, rows(&mut c, "n_heap")?);
    cluster.check_log(CRASH_MARKERS)?;
    Ok(())
}

/// VACUUM of a table that is due wakes the launcher (its naptime here is an
/// hour), the compaction shows in `omendb.columnar_compactions`, and a
/// throttled worker is seen sleeping in VACUUM's wait event.
#[test]
fn vacuum_wakes_the_worker_which_is_throttled_and_counted() -> Result<()> {
    let opts = ClusterOptions {
        autocompact: true,
        extra_conf: vec![
            "omendb.autocompact_naptime = 3600".into(),
            "omendb.autocompact_min_segments = 16".into(),
            "log_min_messages = log".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("autocompact-wake", &opts)?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE w (id bigint NOT NULL, v text) USING omen_columnar;
         CREATE TABLE w_heap (id bigint NOT NULL, v text);",
    )?;
    // One session per row: a session that adds min_segments write-store
    // segments nudges the launcher by itself (see the next test).
    for i in 0..40i64 {
        let mut c = cluster.connect()?;
        for t in ["w", "w_heap"] {
            c.execute(
                &format!("INSERT INTO {t} VALUES ($1::bigint, 'row ' || $1::bigint)"),
                &[&i],
            )?;
        }
    }
    let mut c = cluster.connect()?;
    c.batch_execute("DELETE FROM w WHERE id % 5 = 0; DELETE FROM w_heap WHERE id % 5 = 0")?;
    let segments = |c: &mut postgres::Client| -> Result<i64> {
        Ok(
            c.query_one("SELECT segments FROM omendb.columnar_stats('w')", &[])?
                .get(0),
        )
    };
    assert_eq!(segments(&mut c)?, 40);
    // No round for an hour, and nothing asked: the table stays as it is.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(segments(&mut c)?, 40, "compacted without being asked");
    assert_eq!(
        cluster.sql("SELECT count(*) FROM omendb.columnar_compactions")?,
        ["0"]
    );
    c.batch_execute("VACUUM w")?;
    // Compacted, and counted (the worker records after it commits).
    let woken = wait_for(Duration::from_secs(20), || {
        Ok(segments(&mut c)? <= 2
            && cluster.sql("SELECT count(*) FROM omendb.columnar_compactions")? == ["1"])
    })?;
    assert!(
        woken,
        "VACUUM did not wake the worker: {} segments",
        segments(&mut c)?
    );
    let row = c.query_one(
        "SELECT relname::text, manual_compactions, automatic_compactions, segments_replaced,
                rows_purged, last_compaction > now() - interval '1 minute'
         FROM omendb.columnar_compactions",
        &[],
    )?;
    assert_eq!(row.get::<_, String>(0), "w");
    assert_eq!(row.get::<_, i64>(1), 0);
    assert!(row.get::<_, i64>(2) >= 1);
    assert!(
        row.get::<_, i64>(3) >= 40,
        "{} segments replaced",
        row.get::<_, i64>(3)
    );
    assert_eq!(row.get::<_, i64>(4), 8);
    assert!(row.get::<_, bool>(5));
    let q = "SELECT id, v FROM {} ORDER BY id";
    let rows = |c: &mut postgres::Client, t: &str| -> Result<Vec<(i64, String)>> {
        Ok(c.query(&q.replace("{}", t), &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    };
    assert_eq!(rows(&mut c, "w")?, rows(&mut c, "w_heap")?);
    c.batch_execute("SELECT * FROM omendb.columnar_compact('w')")?;
    let manual: i64 = c
        .query_one(
            "SELECT manual_compactions FROM omendb.columnar_compactions WHERE relname = 'w'",
            &[],
        )?
        .get(0);
    assert_eq!(manual, 1);

    // Throttled to a crawl, a compaction of a larger table is seen
    // sleeping in VACUUM's wait event; set back, it finishes.
    cluster.sql("ALTER SYSTEM SET omendb.autocompact_cost_delay = 50")?;
    cluster.sql("ALTER SYSTEM SET omendb.autocompact_cost_limit = 1")?;
    cluster.sql("SELECT pg_reload_conf()")?;
    c.batch_execute(
        "CREATE TABLE big (id bigint NOT NULL, v text) USING omen_columnar;
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
         DELETE FROM big WHERE id % 2 = 0;",
    )?;
    c.batch_execute("VACUUM big")?;
    let slept = wait_for(Duration::from_secs(30), || {
        Ok(cluster.sql(
            "SELECT count(*) FROM pg_stat_activity
             WHERE backend_type = 'omendb autocompact worker' AND wait_event = 'VacuumDelay'",
        )? == ["1"])
    })?;
    assert!(slept, "no throttled worker seen:\n{}", cluster.log_tail(20));
    // The running worker keeps its settings; it is stopped, and the next
    // one (woken by the next VACUUM) runs at full speed.
    cluster.sql("ALTER SYSTEM RESET omendb.autocompact_cost_delay")?;
    cluster.sql("ALTER SYSTEM RESET omendb.autocompact_cost_limit")?;
    cluster.sql("SELECT pg_reload_conf()")?;
    cluster.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE backend_type = 'omendb autocompact worker'",
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let purged = wait_for(Duration::from_secs(30), || {
        c.batch_execute("VACUUM big")?;
        let d: i64 = c
            .query_one("SELECT deleted_rows FROM omendb.columnar_stats('big')", &[])?
            .get(0);
        Ok(d == 0)
    })?;
    assert!(purged, "big not compacted after throttling was lifted");
    let (n, s): (i64, i64) = {
        let r = c.query_one("SELECT count(*), sum(id)::bigint FROM big", &[])?;
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (n, s),
        (100_000, (1..=200_000i64).filter(|i| i % 2 == 1).sum())
    );
    assert_eq!(
        cluster.sql("SELECT count(*) > 0 FROM omendb.columnar_verify('big')")?,
        ["t"]
    );
    Ok(())
}

/// A sliding window: batches go in (every third one rolled back, leaving
/// pages no one owns), rows older than the window are deleted, and only the
/// background worker, autovacuum and a periodic VACUUM (which truncates)
/// look after it. The table must equal its heap twin and verify, and the
/// file must stay within six times the window's compacted size or the heap
/// twin's size, whichever is larger.
#[test]
fn sliding_window_with_rollbacks_stays_correct_and_bounded() -> Result<()> {
    let opts = ClusterOptions {
        autocompact: true,
        extra_conf: vec![
            "omendb.autocompact_naptime = 1".into(),
            "omendb.autocompact_min_segments = 16".into(),
            "autovacuum_naptime = 1".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("autocompact-window", &opts)?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE win (id bigint NOT NULL, v text) USING omen_columnar;
         CREATE TABLE win_heap (id bigint NOT NULL, v text);",
    )?;
    const BATCH: i64 = 4000;
    const WINDOW: i64 = 5 * BATCH;
    let mut c = cluster.connect()?;
    let size = |c: &mut postgres::Client| -> Result<i64> {
        Ok(c.query_one("SELECT pg_relation_size('win') / 8192", &[])?
            .get(0))
    };
    let (mut next, mut sizes) = (0i64, Vec::new());
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        let mut t = c.transaction()?;
        for table in ["win", "win_heap"] {
            t.execute(
                &format!(
                    "INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series($1::bigint, $1::bigint + {BATCH} - 1) g"
                ),
                &[&next],
            )?;
        }
        if round % 3 == 2 {
            t.rollback()?;
        } else {
            t.commit()?;
            next += BATCH;
        }
        for table in ["win", "win_heap"] {
            c.execute(
                &format!("DELETE FROM {table} WHERE id < $1::bigint - {WINDOW}"),
                &[&next],
            )?;
        }
        if round % 5 == 4 {
            c.batch_execute("VACUUM win")?;
        }
        std::thread::sleep(Duration::from_millis(700));
        sizes.push(size(&mut c)?);
    }
    let a: Vec<String> =
        cluster.sql("SELECT count(*)::text || '|' || sum(id)::text || '|' || max(v) FROM win")?;
    let b: Vec<String> = cluster
        .sql("SELECT count(*)::text || '|' || sum(id)::text || '|' || max(v) FROM win_heap")?;
    assert_eq!(a, b, "the table and its heap twin differ");
    assert_eq!(
        cluster.sql("SELECT count(*) > 0 FROM omendb.columnar_verify('win')")?,
        ["t"]
    );
    // The file stays within a few times what the window takes compacted,
    // or within its heap twin's size: each compaction writes into extents
    // earlier ones freed (old segments and write-store pages, once their
    // rows are pruned) and VACUUM cuts the free tail.
    cluster.sql("SELECT * FROM omendb.columnar_compact('win')")?;
    let live: i64 = c
        .query_one(
            "SELECT ceil(stored_bytes / 8192.0)::bigint FROM omendb.columnar_stats('win')",
            &[],
        )?
        .get(0);
    let heap: i64 = c
        .query_one("SELECT pg_relation_size('win_heap') / 8192", &[])?
        .get(0);
    eprintln!(
        "sliding window: file size in pages by round: {sizes:?}; the window compacted: {live} pages; its heap twin: {heap} pages"
    );
    let late = sizes[ROUNDS / 2..].iter().max().copied().unwrap_or(0);
    assert!(
        late <= (6 * live).max(heap),
        "the file grew to {late} pages in the second half, for a window of {live} pages (heap: {heap})"
    );
    Ok(())
}
