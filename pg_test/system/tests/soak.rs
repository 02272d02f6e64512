//! Soak: eight clients for `OMENDB_SOAK_SECONDS` (default 40; the README's
//! long run uses 600) of mixed load on an omen_columnar table with an alex
//! index and on its heap twin with a btree — single-row and batch inserts,
//! updates, deletes and rollbacks, each transaction applied to both tables —
//! while two of the clients run analytic queries (DataFusion) and index
//! lookups in REPEATABLE READ snapshots that must see the same answer on
//! both tables, and the background worker compacts with nobody asking.
//! Every backend's and worker's resident memory is sampled and must stay
//! bounded; at the end the tables are equal, verify passes, and the server
//! log has no crash.

use omendb_systest::{Cluster, ClusterOptions, Result, CRASH_MARKERS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: i64 = 6;
const READERS: usize = 2;
/// Resident memory no backend may exceed (shared buffers are 128 MB and
/// count once touched).
const RSS_LIMIT_KB: u64 = 1_000_000;

/// Resident memory (kB) of every process under the postmaster `pid`.
fn rss_of_children(pid: i32) -> Vec<(i32, String, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{child}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        };
        if field("PPid:").and_then(|p| p.parse::<i32>().ok()) != Some(pid) {
            continue;
        }
        let cmd = std::fs::read_to_string(format!("/proc/{child}/cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        let rss = field("VmRSS:").and_then(|r| r.parse().ok()).unwrap_or(0);
        out.push((child, cmd, rss));
    }
    out
}

fn writer(
    cluster: &Cluster,
    k: i64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<std::result::Result<(), String>>> {
    let mut c = cluster.connect()?;
    Ok(std::thread::spawn(move || {
        let mut n = 0i64;
        let step = |c: &mut postgres::Client, n: i64| -> std::result::Result<(), postgres::Error> {
            let id = n * WRITERS + k;
            // One snapshot for both tables: under READ COMMITTED the second
            // statement could see a row the first did not.
            let mut t = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()?;
            let both = |t: &mut postgres::Transaction,
                        sql: &str,
                        p: &[&(dyn postgres::types::ToSql + Sync)]| {
                for table in ["s_c", "s_h"] {
                    t.execute(&sql.replace("{T}", table), p)?;
                }
                Ok::<_, postgres::Error>(())
            };
            match n % 10 {
                // A batch: Parquet segments when it is large enough.
                0 => both(
                    &mut t,
                    "INSERT INTO {T} SELECT $1::bigint * 1000000 + g, g % 50, g / 7.0, 'batch' FROM generate_series(1, 700) g",
                    &[&id],
                )?,
                1 => both(&mut t, "UPDATE {T} SET temp = temp + 1, note = 'upd' WHERE id % 997 = $1::bigint % 997 AND id > 0", &[&id])?,
                2 => both(&mut t, "DELETE FROM {T} WHERE id BETWEEN $1::bigint - 60 AND $1::bigint - 50", &[&id])?,
                _ => both(&mut t, "INSERT INTO {T} VALUES ($1::bigint, ($1::bigint % 50)::int, $1::bigint / 3.0, 'one')", &[&id])?,
            }
            if n % 13 == 5 {
                t.rollback()
            } else {
                t.commit()
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match step(&mut c, n) {
                Ok(()) => {}
                // Concurrent updates of one row (40001) or a deadlock
                // between the twins: the transaction is rolled back.
                Err(e) if matches!(e.code().map(|c| c.code()), Some("40001" | "40P01")) => {}
                Err(e) => return Err(format!("writer {k}: {e:?}")),
            }
            n += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }))
}

fn reader(
    cluster: &Cluster,
    r: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<std::result::Result<(), String>>> {
    let mut c = cluster.connect()?;
    Ok(std::thread::spawn(move || {
        let queries = [
            "SELECT sensor, count(*), sum(id), count(temp), min(temp), max(temp), max(note) FROM {T} GROUP BY sensor ORDER BY sensor",
            "SELECT count(*), sum(id) FROM {T} WHERE id BETWEEN 1000 AND 900000",
            "SELECT id, sensor, note FROM {T} WHERE id IN (7, 70, 700, 7000, 70000) ORDER BY id, sensor, note",
        ];
        let mut i = r;
        while !stop.load(Ordering::Relaxed) {
            let q = queries[i % queries.len()];
            let run = |c: &mut postgres::Client| -> std::result::Result<(String, String), postgres::Error> {
                let mut t = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
                let text = |t: &mut postgres::Transaction, table: &str| -> std::result::Result<String, postgres::Error> {
                    Ok(t.simple_query(&q.replace("{T}", table))?
                        .iter()
                        .filter_map(|m| match m {
                            postgres::SimpleQueryMessage::Row(row) => Some(
                                (0..row.len()).map(|j| row.get(j).unwrap_or("NULL")).collect::<Vec<_>>().join("|"),
                            ),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join("\n"))
                };
                let a = text(&mut t, "s_c")?;
                let b = text(&mut t, "s_h")?;
                t.commit()?;
                Ok((a, b))
            };
            match run(&mut c) {
                Ok((a, b)) if a != b => {
                    return Err(format!("reader {r}: {q}\ncolumnar:\n{a}\nheap:\n{b}"));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("reader {r}: {q}: {e:?}")),
            }
            i += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }))
}

#[test]
fn mixed_load_with_background_compaction_stays_correct_and_bounded() -> Result<()> {
    let seconds: u64 = std::env::var("OMENDB_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let opts = ClusterOptions {
        autocompact: true,
        wal_consistency_checking: false,
        extra_conf: vec![
            "omendb.autocompact_naptime = 2".into(),
            "omendb.autocompact_min_segments = 16".into(),
            "omendb.datafusion_threads = 2".into(),
            "autovacuum_naptime = 5".into(),
            "log_min_messages = log".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new("soak", &opts)?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE s_c (id bigint NOT NULL, sensor int NOT NULL, temp float8, note text) USING omen_columnar;
         CREATE TABLE s_h (id bigint NOT NULL, sensor int NOT NULL, temp float8, note text);
         INSERT INTO s_c SELECT -g, g % 50, g / 9.0, 'seed' FROM generate_series(1, 100000) g;
         INSERT INTO s_h SELECT -g, g % 50, g / 9.0, 'seed' FROM generate_series(1, 100000) g;
         CREATE INDEX s_c_id ON s_c USING alex (id);
         CREATE INDEX s_h_id ON s_h (id);",
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut handles = Vec::new();
    for k in 0..WRITERS {
        handles.push(writer(&cluster, k, stop.clone(), writes.clone())?);
    }
    for r in 0..READERS {
        handles.push(reader(&cluster, r, stop.clone(), reads.clone())?);
    }
    let pid = cluster.postmaster_pid().ok_or("no postmaster")?;
    let start = Instant::now();
    let mut peak: std::collections::HashMap<i32, (u64, String)> = Default::default();
    while start.elapsed() < Duration::from_secs(seconds) && !handles.iter().any(|h| h.is_finished())
    {
        for (child, cmd, rss) in rss_of_children(pid) {
            if rss > RSS_LIMIT_KB {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("{cmd} has {rss} kB resident").into());
            }
            let e = peak.entry(child).or_insert((0, cmd));
            e.0 = e.0.max(rss);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "a client panicked")??;
    }
    assert_eq!(
        cluster.postmaster_pid(),
        Some(pid),
        "the postmaster changed"
    );
    let mut c = cluster.connect()?;
    let all = |c: &mut postgres::Client, t: &str| -> Result<Vec<(i64, i32, f64, String)>> {
        Ok(c.query(
            &format!("SELECT id, sensor, temp, note FROM {t} ORDER BY id"),
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
    };
    let (mut col, mut heap) = (all(&mut c, "s_c")?, all(&mut c, "s_h")?);
    // Ids repeat (batches and single rows overlap): compare as multisets.
    for rows in [&mut col, &mut heap] {
        rows.sort_by(|a, b| {
            (a.0, a.1, &a.3)
                .cmp(&(b.0, b.1, &b.3))
                .then(a.2.total_cmp(&b.2))
        });
    }
    assert!(
        col == heap,
        "tables differ: {} vs {} rows",
        col.len(),
        heap.len()
    );
    c.batch_execute(
        "SELECT * FROM omendb.columnar_verify('s_c'); SELECT * FROM omendb.alex_verify('s_c_id')",
    )?;
    let compactions: i64 = c
        .query_one("SELECT coalesce(sum(automatic_compactions), 0)::bigint FROM omendb.columnar_compactions", &[])?
        .get(0);
    let segments: i64 = c
        .query_one("SELECT segments FROM omendb.columnar_stats('s_c')", &[])?
        .get(0);
    cluster.check_log(&[CRASH_MARKERS, &["automatic compaction of the table"]].concat())?;
    assert!(compactions > 0, "no background compaction in {seconds} s");
    eprintln!(
        "soak: {seconds} s, {WRITERS} writers + {READERS} readers: {} write transactions, {} snapshot comparisons, \
         {} rows at the end, {segments} segments, {compactions} background compactions; \
         largest resident sizes: {:?}",
        writes.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        col.len(),
        {
            let mut top: Vec<_> = peak.values().collect();
            top.sort_by(|a, b| b.0.cmp(&a.0));
            top.iter()
                .take(4)
                .map(|(r, c)| format!("{r} kB {}", c.trim()))
                .collect::<Vec<_>>()
        }
    );
    Ok(())
}
