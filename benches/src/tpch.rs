//! TPC-H, all 22 queries, side by side on one server and one data set:
//! heap tables with primary and foreign-key btree indexes (PostgreSQL's
//! executor), the same data as omen_columnar tables in PostgreSQL's executor
//! (`omendb.datafusion = off`), the omen_columnar tables through the
//! OmenDataFusion scan (default settings), and standalone DuckDB on the same
//! CSV files with the same thread count. Each query's answer on the
//! DataFusion path is checked text-equal to heap's before timing.

use postgres::{Client, NoTls, SimpleQueryMessage};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

pub struct Options {
    pub dsn: String,
    pub data: PathBuf,
    pub queries: PathBuf,
    pub runs: usize,
    /// Per statement, for the slow variant (omen_columnar in PostgreSQL's executor).
    pub timeout_s: u64,
    pub threads: usize,
    pub duckdb_script: Option<PathBuf>,
}

fn describe(e: postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()).into(),
        None => e.to_string().into(),
    }
}

fn text_rows(c: &mut Client, q: &str) -> Result<Vec<String>, Error> {
    Ok(c.simple_query(q)
        .map_err(describe)?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("<NULL>"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

fn loaded(c: &mut Client, suffix: &str) -> Result<bool, Error> {
    let q = format!("SELECT count(*)::text FROM pg_class WHERE relname = 'lineitem{suffix}'");
    Ok(text_rows(c, &q)?.first().is_some_and(|n| n == "1"))
}

fn load(c: &mut Client, o: &Options, suffix: &str, using: &str) -> Result<(), Error> {
    let schema = std::fs::read_to_string(o.queries.join("schema.sql"))?;
    c.batch_execute(&schema.replace("{SUFFIX}", suffix).replace("{USING}", using))
        .map_err(describe)?;
    for t in TABLES {
        eprintln!("loading {t}{suffix}");
        let mut w = c
            .copy_in(&format!(
                "COPY {t}{suffix} FROM STDIN WITH (FORMAT csv, HEADER true)"
            ))
            .map_err(describe)?;
        w.write_all(&std::fs::read(o.data.join(format!("{t}.csv")))?)?;
        w.finish().map_err(describe)?;
    }
    let idx = std::fs::read_to_string(o.queries.join("indexes.sql"))?;
    c.batch_execute(&idx.replace("{SUFFIX}", suffix))
        .map_err(describe)?;
    c.batch_execute("ANALYZE").map_err(describe)?;
    Ok(())
}

/// Median of `runs` timings after a warm-up; None when a run times out.
fn time(c: &mut Client, q: &str, runs: usize) -> Result<Option<Duration>, Error> {
    let mut samples = Vec::new();
    for i in 0..=runs {
        let t = Instant::now();
        match c.batch_execute(q) {
            Ok(()) => {}
            Err(e) if e.code().is_some_and(|s| s.code() == "57014") => return Ok(None),
            Err(e) => return Err(describe(e)),
        }
        if i > 0 {
            samples.push(t.elapsed());
        }
    }
    Ok(Some(crate::median(&samples)))
}

fn geomean(xs: &[f64]) -> f64 {
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

fn ms(d: Option<Duration>, timeout: u64) -> String {
    d.map_or(format!("> {timeout} s"), |d| {
        format!("{:.1}", d.as_secs_f64() * 1e3)
    })
}

/// Backend peak resident memory (VmHWM, kB) of the session `c`.
fn peak_kb(c: &mut Client) -> Option<u64> {
    let pid = text_rows(c, "SELECT pg_backend_pid()::text").ok()?.pop()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn run(o: &Options) -> Result<String, Error> {
    let mut setup = Client::connect(&o.dsn, NoTls)?;
    for (s, using) in [("_h", ""), ("_c", "USING omen_columnar")] {
        if !loaded(&mut setup, s)? {
            load(&mut setup, o, s, using)?;
        }
    }
    let mut heap = Client::connect(&o.dsn, NoTls)?;
    heap.batch_execute("SET omendb.datafusion = off")
        .map_err(describe)?;
    let mut col_pg = Client::connect(&o.dsn, NoTls)?;
    col_pg
        .batch_execute(&format!(
            "SET omendb.datafusion = off; SET statement_timeout = '{}s'",
            o.timeout_s
        ))
        .map_err(describe)?;
    let mut col_df = Client::connect(&o.dsn, NoTls)?;
    let duck = match &o.duckdb_script {
        Some(script) => {
            eprintln!("running DuckDB");
            let out = std::process::Command::new("python3")
                .arg(script)
                .arg(&o.data)
                .arg(&o.queries)
                .arg(o.runs.to_string())
                .arg(o.threads.to_string())
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "duckdb script failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let mut p = l.split_whitespace();
                    Some((p.next()?.to_string(), p.next()?.parse::<f64>().ok()?))
                })
                .collect::<Vec<_>>()
        }
        None => Vec::new(),
    };
    let mut table = String::from(
        "| query | heap + btree (ms) | omen_columnar, PostgreSQL executor (ms) | omen_columnar + DataFusion (ms) | DuckDB (ms) | DataFusion / heap | DataFusion / DuckDB |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let (mut r_heap, mut r_duck, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=22 {
        let q = std::fs::read_to_string(o.queries.join(format!("q{i:02}.sql")))?;
        let (qh, qc) = (q.replace("{S}", "_h"), q.replace("{S}", "_c"));
        let plan = text_rows(&mut col_df, &format!("EXPLAIN {qc}"))?;
        if !plan[0].contains("OmenDataFusion") {
            return Err(format!("Q{i:02} does not run in DataFusion:\n{}", plan.join("\n")).into());
        }
        if text_rows(&mut heap, &qh)? != text_rows(&mut col_df, &qc)? {
            return Err(format!("Q{i:02}: DataFusion's answer differs from heap's").into());
        }
        eprintln!("timing Q{i:02}");
        let th = time(&mut heap, &qh, o.runs)?;
        let tp = time(&mut col_pg, &qc, o.runs)?;
        let td = time(&mut col_df, &qc, o.runs)?;
        let tduck = duck
            .iter()
            .find(|(k, _)| *k == format!("q{i:02}"))
            .map(|(_, v)| *v);
        let (h, d) = (
            th.map(|d| d.as_secs_f64() * 1e3),
            td.map(|d| d.as_secs_f64() * 1e3),
        );
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        if let (Some(h), Some(d)) = (h, d) {
            r_heap.push(d / h);
            times.push((h, d));
        }
        if let (Some(d), Some(k)) = (d, tduck) {
            r_duck.push(d / k);
        }
        table += &format!(
            "| Q{i:02} | {} | {} | {} | {} | {} | {} |\n",
            ms(th, o.timeout_s),
            ms(tp, o.timeout_s),
            ms(td, o.timeout_s),
            tduck.map_or("-".into(), |v| format!("{v:.1}")),
            ratio(d, h),
            ratio(d, tduck)
        );
    }
    let gm = |xs: Vec<f64>| {
        if xs.is_empty() {
            f64::NAN
        } else {
            geomean(&xs)
        }
    };
    let heap_ms: Vec<f64> = times.iter().map(|t| t.0).collect();
    let df_ms: Vec<f64> = times.iter().map(|t| t.1).collect();
    let duck_ms: Vec<f64> = duck.iter().map(|(_, v)| *v).collect();
    table += &format!(
        "| **geomean** | {:.1} | | {:.1} | {:.1} | **{:.3}** | **{:.2}** |\n",
        gm(heap_ms),
        gm(df_ms),
        gm(duck_ms),
        gm(r_heap),
        gm(r_duck)
    );
    let peak = peak_kb(&mut col_df).map_or("unknown".into(), |kb| format!("{} MB", kb / 1024));
    table += &format!(
        "\nDataFusion backend peak resident memory (VmHWM): {peak}; DataFusion threads: {}; medians of {} runs after a warm-up.\n",
        o.threads, o.runs
    );
    Ok(table)
}

/// Default query directory: pg_test/tpch next to this crate.
pub fn default_queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pg_test/tpch")
}
