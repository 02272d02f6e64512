//! Streaming single-row inserts with background compaction: the design's
//! sensors table, fed by several pgbench clients one reading per
//! transaction, with no manual compaction. Each reading goes to an
//! omen_columnar table and to a heap twin (btree indexes on the key of
//! both). The table's segments are sampled during the load; when it stops,
//! point queries by key (pgbench tps) and a `GROUP BY sensor_id` (median of
//! several runs) are measured on the table as the load left it, then after
//! a full manual compaction, and on heap.
//!
//! Needs a server with omendb preloaded and `omendb.autocompact = on`.

use crate::pgbench;
use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub dsn: String,
    pub seconds: u32,
    pub clients: u32,
    /// Seconds of each point-query pgbench run.
    pub probe_seconds: u32,
    /// Runs of the aggregate (the median is reported).
    pub runs: usize,
}

const COLUMNAR: &str = "stream_c";
const HEAP: &str = "stream_h";
const AGGREGATE: &str = "SELECT sensor_id, avg(temperature), count(*) FROM {T} GROUP BY sensor_id";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn setup(c: &mut Client) -> Result<(), Error> {
    let preloaded: String = c
        .query_one("SHOW shared_preload_libraries", &[])?
        .get(0);
    let auto: String = c.query_one("SHOW omendb.autocompact", &[])?.get(0);
    if !preloaded.contains("omendb") || auto != "on" {
        return Err("the streaming benchmark needs omendb preloaded and omendb.autocompact = on".into());
    }
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS omendb;
         DROP TABLE IF EXISTS {COLUMNAR}, {HEAP};
         DROP SEQUENCE IF EXISTS stream_ts;
         CREATE SEQUENCE stream_ts;
         CREATE TABLE {COLUMNAR} (ts bigint NOT NULL, sensor_id bigint, temperature double precision, status text) USING omen_columnar;
         CREATE INDEX {COLUMNAR}_ts ON {COLUMNAR} (ts);
         CREATE TABLE {HEAP} (ts bigint NOT NULL, sensor_id bigint, temperature double precision, status text);
         CREATE INDEX {HEAP}_ts ON {HEAP} (ts);"
    ))?;
    Ok(())
}

/// (segments, write-store segments) of the columnar table.
fn segments(c: &mut Client) -> Result<(i64, i64), Error> {
    let r = c.query_one(
        &format!("SELECT segments, write_store_segments FROM omendb.columnar_stats('{COLUMNAR}')"),
        &[],
    )?;
    Ok((r.get(0), r.get(1)))
}

/// Point-query tps on `table` and the aggregate's median time.
fn measure(o: &Options, c: &mut Client, table: &str, max_ts: i64) -> Result<(f64, Duration), Error> {
    let script = format!(
        "\\set k random(1, {max_ts})\nSELECT * FROM {table} WHERE ts = :k;\n"
    );
    let tps = pgbench::tps(&o.dsn, &script, 1, o.probe_seconds)?;
    let q = AGGREGATE.replace("{T}", table);
    c.query(&q, &[])?; // warm
    let mut times = Vec::new();
    for _ in 0..o.runs {
        let t = Instant::now();
        c.query(&q, &[])?;
        times.push(t.elapsed());
    }
    Ok((tps, crate::median(&times)))
}

/// Run the benchmark; returns a markdown report.
pub fn run(o: &Options) -> Result<String, Error> {
    let mut c = Client::connect(&o.dsn, NoTls)?;
    setup(&mut c)?;
    let load = format!(
        "\\set s random(1, 100)\n\
         SELECT nextval('stream_ts') AS ts \\gset\n\
         INSERT INTO {COLUMNAR} VALUES (:ts, :s, :s * 0.25, 'ok');\n\
         INSERT INTO {HEAP} VALUES (:ts, :s, :s * 0.25, 'ok');\n"
    );
    // Segments sampled every few seconds while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (dsn, stop) = (o.dsn.clone(), stop.clone());
        std::thread::spawn(move || -> Result<Vec<(i64, i64)>, Error> {
            let mut c = Client::connect(&dsn, NoTls)?;
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                out.push(segments(&mut c)?);
                std::thread::sleep(Duration::from_secs(5));
            }
            Ok(out)
        })
    };
    eprintln!("streaming: {} clients for {} s", o.clients, o.seconds);
    let load_tps = pgbench::tps(&o.dsn, &load, o.clients, o.seconds);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().map_err(|_| "sampler panicked")??;
    let load_tps = load_tps?;
    let rows: i64 = c.query_one(&format!("SELECT count(*) FROM {COLUMNAR}"), &[])?.get(0);
    let heap_rows: i64 = c.query_one(&format!("SELECT count(*) FROM {HEAP}"), &[])?.get(0);
    if rows != heap_rows {
        return Err(format!("{COLUMNAR} has {rows} rows, {HEAP} {heap_rows}").into());
    }
    let left = segments(&mut c)?;
    eprintln!("measuring the table as the load left it ({} segments)", left.0);
    let (tps_left, agg_left) = measure(o, &mut c, COLUMNAR, rows)?;
    c.batch_execute(&format!("SELECT * FROM omendb.columnar_compact('{COLUMNAR}')"))?;
    c.batch_execute(&format!("VACUUM {COLUMNAR}"))?;
    let full = segments(&mut c)?;
    eprintln!("measuring after a full compaction ({} segments)", full.0);
    let (tps_full, agg_full) = measure(o, &mut c, COLUMNAR, rows)?;
    c.batch_execute(&format!("VACUUM ANALYZE {HEAP}"))?;
    let (tps_heap, agg_heap) = measure(o, &mut c, HEAP, rows)?;
    let max_segments = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let max_ws = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    out.push_str(&format!(
        "{} clients, {} s of single-row inserts (one reading per transaction, into both tables): \
         {load_tps:.0} transactions/s, {rows} rows. Segments of the omen_columnar table, sampled \
         every 5 s: at most {max_segments} ({max_ws} in the write store); {} when the load stopped, \
         {} after a full compaction.\n\n",
        o.clients, o.seconds, left.0, full.0
    ));
    out.push_str("| measure | as the load left it | after full compaction | left / full | heap |\n");
    out.push_str("|---|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| point query by key, tps (1 client) | {tps_left:.0} | {tps_full:.0} | {:.2}x slower | {tps_heap:.0} |\n",
        tps_full / tps_left
    ));
    out.push_str(&format!(
        "| GROUP BY sensor_id, ms (median of {}) | {:.1} | {:.1} | {:.2}x slower | {:.1} |\n",
        o.runs,
        ms(agg_left),
        ms(agg_full),
        ms(agg_left) / ms(agg_full),
        ms(agg_heap)
    ));
    let series: Vec<String> = samples.iter().map(|s| s.0.to_string()).collect();
    out.push_str(&format!("\nSegments every 5 s: {}\n", series.join(" ")));
    Ok(out)
}
