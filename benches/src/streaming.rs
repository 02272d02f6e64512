//! Streaming single-row inserts with background compaction: the design's
//! sensors table, fed by several pgbench clients one reading per
//! transaction, with no manual compaction. Each reading goes to an
//! omen_columnar table and to a heap twin (btree indexes on the key of
//! both). Every 5 s during the load the table's segments are counted and
//! point queries by key and a `GROUP BY sensor_id` are timed on both
//! tables; after the load, a full manual compaction, and the same probes
//! again: the ratio says what background compaction leaves on the table.
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
    /// Probes after the full compaction: 4 per run.
    pub runs: usize,
}

const COLUMNAR: &str = "stream_c";
const HEAP: &str = "stream_h";
const AGGREGATE: &str = "SELECT sensor_id, avg(temperature), count(*) FROM {T} GROUP BY sensor_id";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn setup(c: &mut Client) -> Result<(), Error> {
    let preloaded: String = c.query_one("SHOW shared_preload_libraries", &[])?.get(0);
    let auto: String = c.query_one("SHOW omendb.autocompact", &[])?.get(0);
    if !preloaded.contains("omendb") || auto != "on" {
        return Err(
            "the streaming benchmark needs omendb preloaded and omendb.autocompact = on".into(),
        );
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

/// One probe of `table`: the time of each of 20 point queries by random
/// keys up to the current largest, and of the GROUP BY.
fn probe(c: &mut Client, table: &str, seed: &mut u64) -> Result<(Vec<Duration>, Duration), Error> {
    let max: i64 = c
        .query_one(&format!("SELECT coalesce(max(ts), 1) FROM {table}"), &[])?
        .get(0);
    let point = c.prepare(&format!("SELECT * FROM {table} WHERE ts = $1"))?;
    let mut points = Vec::new();
    for _ in 0..20 {
        // xorshift: keys spread over the whole table
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let k = 1 + (*seed % max as u64) as i64;
        let t = Instant::now();
        c.query(&point, &[&k])?;
        points.push(t.elapsed());
    }
    let t = Instant::now();
    c.query(&AGGREGATE.replace("{T}", table), &[])?;
    Ok((points, t.elapsed()))
}

#[derive(Default)]
struct Probes {
    points: Vec<Duration>,
    aggregates: Vec<Duration>,
}

impl Probes {
    fn add(&mut self, (p, a): (Vec<Duration>, Duration)) {
        self.points.extend(p);
        self.aggregates.push(a);
    }
}

/// Probes of both tables and the columnar table's segments, every 5 s
/// until `stop`.
fn sample(dsn: &str, stop: &AtomicBool) -> Result<(Vec<(i64, i64)>, Probes, Probes), Error> {
    let mut c = Client::connect(dsn, NoTls)?;
    let (mut segs, mut col, mut heap) = (Vec::new(), Probes::default(), Probes::default());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    while !stop.load(Ordering::Relaxed) {
        segs.push(segments(&mut c)?);
        col.add(probe(&mut c, COLUMNAR, &mut seed)?);
        heap.add(probe(&mut c, HEAP, &mut seed)?);
        std::thread::sleep(Duration::from_secs(5));
    }
    Ok((segs, col, heap))
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
    // Segments and query times sampled every 5 s while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (dsn, stop) = (o.dsn.clone(), stop.clone());
        std::thread::spawn(move || sample(&dsn, &stop))
    };
    eprintln!("streaming: {} clients for {} s", o.clients, o.seconds);
    let load_tps = pgbench::tps(&o.dsn, &load, o.clients, o.seconds);
    stop.store(true, Ordering::Relaxed);
    let (samples, during, heap_during) = sampler.join().map_err(|_| "sampler panicked")??;
    let load_tps = load_tps?;
    let rows: i64 = c
        .query_one(&format!("SELECT count(*) FROM {COLUMNAR}"), &[])?
        .get(0);
    let heap_rows: i64 = c
        .query_one(&format!("SELECT count(*) FROM {HEAP}"), &[])?
        .get(0);
    if rows != heap_rows {
        return Err(format!("{COLUMNAR} has {rows} rows, {HEAP} {heap_rows}").into());
    }
    c.batch_execute(&format!(
        "SELECT * FROM omendb.columnar_compact('{COLUMNAR}')"
    ))?;
    c.batch_execute(&format!("VACUUM {COLUMNAR}"))?;
    let full = segments(&mut c)?;
    eprintln!("probing after a full compaction ({} segments)", full.0);
    let mut after = Probes::default();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..o.runs.max(1) * 4 {
        after.add(probe(&mut c, COLUMNAR, &mut seed)?);
    }
    let max_segments = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let max_ws = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let med = |v: &[Duration]| ms(crate::median(v));
    let p90 = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        ms(v.get(v.len() * 9 / 10).copied().unwrap_or_default())
    };
    let mut out = String::new();
    out.push_str(&format!(
        "{} clients, {} s of single-row inserts (one reading per transaction, into both tables): \
         {load_tps:.0} transactions/s, {rows} rows. Segments of the omen_columnar table, sampled \
         every 5 s: at most {max_segments} ({max_ws} in the write store), {} after a full \
         compaction. Every 5 s during the load, 20 point queries by random key and one GROUP BY \
         ran on each table ({} probes); after the full compaction, {} probes of the same kind.\n\n",
        o.clients,
        o.seconds,
        full.0,
        during.aggregates.len(),
        after.aggregates.len()
    ));
    out.push_str("| measure, ms | omen_columnar during the load | after full compaction | during / after | heap during the load |\n");
    out.push_str("|---|---:|---:|---:|---:|\n");
    for (what, d, a, h) in [
        (
            "point query by key, median",
            med(&during.points),
            med(&after.points),
            med(&heap_during.points),
        ),
        (
            "point query by key, p90",
            p90(&during.points),
            p90(&after.points),
            p90(&heap_during.points),
        ),
        (
            "GROUP BY sensor_id, median",
            med(&during.aggregates),
            med(&after.aggregates),
            med(&heap_during.aggregates),
        ),
        (
            "GROUP BY sensor_id, p90",
            p90(&during.aggregates),
            p90(&after.aggregates),
            p90(&heap_during.aggregates),
        ),
    ] {
        out.push_str(&format!(
            "| {what} | {d:.3} | {a:.3} | {:.2} | {h:.3} |\n",
            d / a
        ));
    }
    let series: Vec<String> = samples.iter().map(|s| s.0.to_string()).collect();
    out.push_str(&format!("\nSegments every 5 s: {}\n", series.join(" ")));
    Ok(out)
}
