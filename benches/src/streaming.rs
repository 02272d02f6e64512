//! Streaming single-row inserts with background compaction: the design's
//! sensors table, fed by several pgbench clients one reading per
//! transaction, with no manual compaction. Each reading goes to an
//! omen_columnar table and to a heap twin (btree indexes on the key of
//! both). Every 5 s during the load the table's segments are counted and
//! point queries by key and a `GROUP BY sensor_id` are timed on both
//! tables; after the load, a full manual compaction, and the same probes
//! again: the ratio says what background compaction leaves on the table.
//! A control separates that from the load's share of the CPU: a compacted
//! omen_columnar copy of 1M readings that nobody writes, probed alike
//! during the load and after it.
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
/// The control: compacted before the load, never written during it.
const RESTING: &str = "stream_r";
const RESTING_ROWS: i64 = 1_000_000;
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
         DROP TABLE IF EXISTS {COLUMNAR}, {HEAP}, {RESTING};
         DROP SEQUENCE IF EXISTS stream_ts;
         CREATE SEQUENCE stream_ts;
         CREATE TABLE {COLUMNAR} (ts bigint NOT NULL, sensor_id bigint, temperature double precision, status text) USING omen_columnar;
         CREATE INDEX {COLUMNAR}_ts ON {COLUMNAR} (ts);
         CREATE TABLE {HEAP} (ts bigint NOT NULL, sensor_id bigint, temperature double precision, status text);
         CREATE INDEX {HEAP}_ts ON {HEAP} (ts);
         CREATE TABLE {RESTING} (ts bigint NOT NULL, sensor_id bigint, temperature double precision, status text) USING omen_columnar;
         INSERT INTO {RESTING} SELECT g, g % 100 + 1, (g % 100 + 1) * 0.25, 'ok' FROM generate_series(1, {RESTING_ROWS}) g;
         CREATE INDEX {RESTING}_ts ON {RESTING} (ts);
         SELECT * FROM omendb.columnar_compact('{RESTING}');"
    ))?;
    // Its own statement: VACUUM cannot run in the batch's transaction.
    c.batch_execute(&format!("VACUUM ANALYZE {RESTING}"))?;
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

/// What the sampler saw during the load.
#[derive(Default)]
struct During {
    segments: Vec<(i64, i64)>,
    columnar: Probes,
    heap: Probes,
    resting: Probes,
}

/// Probes of the three tables and the columnar table's segments, every 5 s
/// until `stop`.
fn sample(dsn: &str, stop: &AtomicBool) -> Result<During, Error> {
    let mut c = Client::connect(dsn, NoTls)?;
    let mut d = During::default();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    while !stop.load(Ordering::Relaxed) {
        d.segments.push(segments(&mut c)?);
        d.columnar.add(probe(&mut c, COLUMNAR, &mut seed)?);
        d.heap.add(probe(&mut c, HEAP, &mut seed)?);
        d.resting.add(probe(&mut c, RESTING, &mut seed)?);
        std::thread::sleep(Duration::from_secs(5));
    }
    Ok(d)
}

fn median_ms(v: &[Duration]) -> f64 {
    crate::median(v).as_secs_f64() * 1000.0
}

fn p90_ms(v: &[Duration]) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() * 9 / 10)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
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
    let During {
        segments: samples,
        columnar: during,
        heap: heap_during,
        resting: resting_during,
    } = sampler.join().map_err(|_| "sampler panicked")??;
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
    let (mut after, mut resting_after) = (Probes::default(), Probes::default());
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..o.runs.max(1) * 4 {
        after.add(probe(&mut c, COLUMNAR, &mut seed)?);
        resting_after.add(probe(&mut c, RESTING, &mut seed)?);
    }
    let max_segments = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let max_ws = samples.iter().map(|s| s.1).max().unwrap_or(0);
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
    out.push_str(
        "| measure, ms | omen_columnar during the load | after full compaction | during / after \
         | heap during the load | compacted copy during the load | after | during / after |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    type Stat = fn(&[Duration]) -> f64;
    let stats: [(&str, bool, Stat); 4] = [
        ("point query by key, median", true, median_ms),
        ("point query by key, p90", true, p90_ms),
        ("GROUP BY sensor_id, median", false, median_ms),
        ("GROUP BY sensor_id, p90", false, p90_ms),
    ];
    for (what, points, stat) in stats {
        let pick = |p: &Probes| stat(if points { &p.points } else { &p.aggregates });
        let (d, a, h) = (pick(&during), pick(&after), pick(&heap_during));
        let (rd, ra) = (pick(&resting_during), pick(&resting_after));
        out.push_str(&format!(
            "| {what} | {d:.3} | {a:.3} | {:.2} | {h:.3} | {rd:.3} | {ra:.3} | {:.2} |\n",
            d / a,
            rd / ra
        ));
    }
    out.push_str(&format!(
        "\nThe compacted copy ({RESTING_ROWS} readings, written before the load and never during it) \
         measures what the load's share of the CPU alone does to the same queries.\n"
    ));
    let series: Vec<String> = samples.iter().map(|s| s.0.to_string()).collect();
    out.push_str(&format!("\nSegments every 5 s: {}\n", series.join(" ")));
    Ok(out)
}
