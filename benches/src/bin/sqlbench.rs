//! `sqlbench`: run the harness's workloads against a live server.
//!
//! Usage: sqlbench [SUITE] [--dsn DSN] [--runs N] [--rows N] [--probes N]
//!                 [--dists a,b] [--insert-seconds N] [--plot FILE.svg]
//! SUITE: `alex` (alex vs btree, the default), `columnar` (omen_columnar vs
//! heap on TPC-H lineitem; needs --lineitem FILE.csv readable by the server)
//! `tpch` (TPC-H 22 queries: heap, omen_columnar with and without DataFusion,
//! DuckDB; needs --tpch-data DIR of tpchgen-cli CSVs), `ycsb` (YCSB A-F, unique
//! btree vs unique alex, --rows records, --insert-seconds per pgbench run,
//! --clients 1,2,8, --workloads A,B), `streaming` (single-row inserts into
//! an omen_columnar table and a heap twin for --load-seconds, default 600,
//! from --clients clients, default 2, with background compaction; point and
//! GROUP BY queries timed during the load and after a full compaction) or `harness`
//! (btree vs hash).
//! DSN defaults to the demo cluster that scripts/run.sh starts.

use omendb_bench::{alex_vs_btree as ab, pgbench, run, workloads, Workload};
use postgres::{Client, NoTls};

struct Args {
    suite: String,
    dsn: String,
    runs: usize,
    rows: u64,
    probes: u64,
    dists: Vec<String>,
    insert_seconds: u32,
    plot: Option<String>,
    lineitem: Option<String>,
    tpch_data: Option<String>,
    timeout_s: u64,
    threads: usize,
    duckdb: bool,
    clients: Vec<u32>,
    clients_given: bool,
    load_seconds: u32,
    workloads: Vec<String>,
}

fn parse() -> Args {
    let mut a = Args {
        suite: "alex".into(),
        dsn: "host=127.0.0.1 port=5499 user=postgres dbname=omendb_demo".into(),
        runs: 5,
        rows: 1_000_000,
        probes: 100_000,
        dists: ab::DISTS.iter().map(|d| d.name.to_string()).collect(),
        insert_seconds: 10,
        plot: None,
        lineitem: None,
        tpch_data: None,
        timeout_s: 60,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        duckdb: true,
        clients: vec![1, 2, 8],
        clients_given: false,
        load_seconds: 600,
        workloads: omendb_bench::ycsb::WORKLOADS
            .iter()
            .map(|w| w.name.to_string())
            .collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        let num = |v: String| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{arg} takes a number")))
        };
        match arg.as_str() {
            "alex" | "harness" | "columnar" | "scancache" | "tpch" | "ycsb" | "streaming" => {
                a.suite = arg.clone()
            }
            "--load-seconds" => a.load_seconds = num(value()) as u32,
            "--clients" => {
                a.clients_given = true;
                a.clients = value()
                    .split(',')
                    .map(|c| {
                        c.parse()
                            .unwrap_or_else(|_| usage("--clients takes numbers"))
                    })
                    .collect()
            }
            "--workloads" => a.workloads = value().split(',').map(str::to_string).collect(),
            "--tpch-data" => a.tpch_data = Some(value()),
            "--timeout" => a.timeout_s = num(value()),
            "--threads" => a.threads = num(value()) as usize,
            "--no-duckdb" => a.duckdb = false,
            "--lineitem" => a.lineitem = Some(value()),
            "--dsn" => a.dsn = value(),
            "--runs" => a.runs = num(value()) as usize,
            "--rows" => a.rows = num(value()),
            "--probes" => a.probes = num(value()),
            "--insert-seconds" => a.insert_seconds = num(value()) as u32,
            "--plot" => a.plot = Some(value()),
            "--dists" => a.dists = value().split(',').map(str::to_string).collect(),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    a
}

fn main() {
    let a = parse();
    let result = match a.suite.as_str() {
        "harness" => report(&a, &workloads::point_probes(a.rows, a.probes)).map(|_| ()),
        "columnar" => columnar_suite(&a),
        "scancache" => scan_cache_suite(&a),
        "tpch" => tpch_suite(&a),
        "ycsb" => ycsb_suite(&a),
        "streaming" => streaming_suite(&a),
        _ => alex_suite(&a),
    };
    if let Err(e) = result {
        eprintln!("sqlbench: {e}");
        std::process::exit(1);
    }
}

fn tpch_suite(a: &Args) -> Result<(), String> {
    use omendb_bench::tpch;
    let data = a.tpch_data.clone().ok_or("tpch needs --tpch-data DIR")?;
    let queries = tpch::default_queries();
    let o = tpch::Options {
        dsn: a.dsn.clone(),
        data: data.into(),
        duckdb_script: a
            .duckdb
            .then(|| queries.join("../../benches/tpch/duckdb_tpch.py")),
        queries,
        runs: a.runs,
        timeout_s: a.timeout_s,
        threads: a.threads,
    };
    let table = tpch::run(&o).map_err(|e| e.to_string())?;
    println!("{table}");
    Ok(())
}

fn streaming_suite(a: &Args) -> Result<(), String> {
    use omendb_bench::streaming;
    let o = streaming::Options {
        dsn: a.dsn.clone(),
        seconds: a.load_seconds,
        clients: if a.clients_given { a.clients[0] } else { 2 },
        runs: a.runs,
    };
    let report = streaming::run(&o).map_err(|e| e.to_string())?;
    println!("{report}");
    Ok(())
}

fn ycsb_suite(a: &Args) -> Result<(), String> {
    use omendb_bench::ycsb;
    let workloads: Vec<&ycsb::Workload> = a
        .workloads
        .iter()
        .map(|n| ycsb::workload(n).ok_or_else(|| format!("unknown YCSB workload {n}")))
        .collect::<Result<_, _>>()?;
    let mut client = Client::connect(&a.dsn, NoTls).map_err(|e| e.to_string())?;
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS omendb")
        .map_err(|e| e.to_string())?;
    eprintln!("loading {} records into each table", a.rows);
    for stmt in ycsb::setup(a.rows) {
        client
            .batch_execute(&stmt)
            .map_err(|e| format!("{stmt}: {e}"))?;
    }
    for (_, table, _) in ycsb::VARIANTS {
        for q in ycsb::plan_checks(table) {
            let plan: Vec<String> = client
                .query(&format!("EXPLAIN {q}"), &[])
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !plan.iter().any(|l| l.contains(&format!("{table}_key"))) {
                return Err(format!(
                    "{q}: plan does not use {table}_key:\n{}",
                    plan.join("\n")
                ));
            }
        }
    }
    println!(
        "## YCSB: {} records of 10 x 100-byte fields, Zipfian keys; unique btree vs unique alex; \
         tables vacuumed and prewarmed before each workload; pgbench {} s per run, median tps of {} runs\n",
        a.rows, a.insert_seconds, a.runs
    );
    println!("| workload | clients | btree tps | alex tps | ratio alex/btree |\n|---|---:|---:|---:|---:|");
    let mut ratios: Vec<(String, f64)> = Vec::new();
    let records = a.rows.to_string();
    for w in workloads {
        for stmt in ycsb::between_workloads() {
            client
                .batch_execute(&stmt)
                .map_err(|e| format!("{stmt}: {e}"))?;
        }
        for &clients in &a.clients {
            let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..a.runs {
                for (i, (_, table, _)) in ycsb::VARIANTS.iter().enumerate() {
                    for stmt in ycsb::reset_sequences() {
                        client.batch_execute(&stmt).map_err(|e| e.to_string())?;
                    }
                    let t = pgbench::tps_mix(
                        &a.dsn,
                        &ycsb::scripts(w, table),
                        &[("records", records.clone())],
                        clients,
                        a.insert_seconds,
                    )?;
                    samples[i].push(t);
                }
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (b, x) = (med(&mut samples[0]), med(&mut samples[1]));
            println!(
                "| {} ({}) | {clients} | {b:.0} | {x:.0} | {:.2} |",
                w.name,
                w.what,
                x / b
            );
            // As a time ratio, like the other suites: btree tps / alex tps.
            ratios.push((format!("YCSB {}, {clients} client(s)", w.name), b / x));
        }
    }
    println!();
    if let Some(path) = &a.plot {
        let title = format!(
            "alex / btree time per YCSB operation, {} records (below 1.0: alex faster)",
            a.rows
        );
        std::fs::write(path, omendb_bench::plot::ratio_chart(&title, &ratios))
            .map_err(|e| format!("{path}: {e}"))?;
        println!("plot written to {path}");
    }
    Ok(())
}

fn report(a: &Args, w: &Workload) -> Result<f64, String> {
    let r = run(&a.dsn, w, a.runs).map_err(|e| e.to_string())?;
    println!("{}", r.markdown());
    Ok(r.ratio())
}

fn alex_suite(a: &Args) -> Result<(), String> {
    println!(
        "## alex vs btree: {} rows, {} probes, {} runs each (medians)\n",
        a.rows, a.probes, a.runs
    );
    let mut client = Client::connect(&a.dsn, NoTls).map_err(|e| e.to_string())?;
    // (label, time ratio alex/btree): below 1 alex is faster or smaller.
    let mut ratios: Vec<(String, f64)> = Vec::new();
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS omendb")
        .map_err(|e| e.to_string())?;
    for name in &a.dists {
        let d = ab::dist(name).ok_or_else(|| format!("unknown distribution {name}"))?;
        for stmt in ab::setup(d, a.rows, a.probes) {
            client
                .batch_execute(&stmt)
                .map_err(|e| format!("{stmt}: {e}"))?;
        }
        ratios.push((format!("{} build time", d.name), report(a, &ab::build(d))?));
        let size: f64 = client
            .query_one(&format!("SELECT pg_relation_size('ab_{n}_ax_k')::float8 / pg_relation_size('ab_{n}_bt_k')", n = d.name), &[])
            .map_err(|e| e.to_string())?
            .get(0);
        ratios.push((format!("{} index size", d.name), size));
        ratios.push((
            format!("{} point probes", d.name),
            report(a, &ab::probes(d))?,
        ));
        ratios.push((
            format!("{} 100-row ranges", d.name),
            report(a, &ab::ranges(d, (a.probes / 10).max(1)))?,
        ));
        for stmt in ab::insert_setup(d) {
            client
                .batch_execute(&stmt)
                .map_err(|e| format!("{stmt}: {e}"))?;
        }
        let (bt, ax) = ab::insert_scripts(d);
        println!(
            "### {} — single-row inserts (pgbench, {} s per run)\n",
            d.name, a.insert_seconds
        );
        println!("| clients | btree tps | alex tps | ratio alex/btree |\n|---:|---:|---:|---:|");
        for clients in [1, 2] {
            let b = pgbench::tps(&a.dsn, &bt, clients, a.insert_seconds)?;
            let x = pgbench::tps(&a.dsn, &ax, clients, a.insert_seconds)?;
            println!("| {clients} | {b:.0} | {x:.0} | {:.2} |", x / b);
            // As a time ratio, like the others: btree tps / alex tps.
            ratios.push((
                format!("{} insert time, {clients} client(s)", d.name),
                b / x,
            ));
        }
        println!();
    }
    if let Some(path) = &a.plot {
        let title = format!(
            "alex / btree, {} rows (below 1.0: alex faster or smaller)",
            a.rows
        );
        std::fs::write(path, omendb_bench::plot::ratio_chart(&title, &ratios))
            .map_err(|e| format!("{path}: {e}"))?;
        println!("plot written to {path}");
    }
    Ok(())
}

fn columnar_suite(a: &Args) -> Result<(), String> {
    use omendb_bench::columnar_vs_heap as cv;
    let csv = a
        .lineitem
        .as_deref()
        .ok_or("the columnar suite needs --lineitem FILE.csv")?;
    println!(
        "## omen_columnar vs heap: TPC-H lineitem from {csv}, {} runs each (medians)\n",
        a.runs
    );
    let mut client = Client::connect(&a.dsn, NoTls).map_err(|e| e.to_string())?;
    // An extension created by an older build (same version) lacks the
    // access method or newer catalog tables: recreate it.
    let has_am: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_am WHERE amname = 'omen_columnar' \
             AND to_regclass('omendb.columnar_free') IS NOT NULL",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    if has_am == 0 {
        client
            .batch_execute("DROP EXTENSION IF EXISTS omendb CASCADE; CREATE EXTENSION omendb")
            .map_err(|e| e.to_string())?;
    }
    let mut ratios: Vec<(String, f64)> = Vec::new();
    ratios.push(("COPY load time".into(), report(a, &cv::load(csv))?));
    for stmt in cv::settle() {
        client
            .batch_execute(&stmt)
            .map_err(|e| format!("{stmt}: {e}"))?;
    }
    let size: f64 = client
        .query_one(
            &format!(
                "SELECT pg_total_relation_size('{}')::float8 / pg_total_relation_size('{}')",
                cv::COLUMNAR,
                cv::HEAP
            ),
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    ratios.push(("size on disk".into(), size));
    ratios.push(("scan, all 16 columns".into(), report(a, &cv::full_scan())?));
    ratios.push((
        "scan, 2 of 16 columns".into(),
        report(a, &cv::two_columns())?,
    ));
    ratios.push(("selective range".into(), report(a, &cv::selective())?));
    ratios.push(("point lookups".into(), report(a, &cv::point_lookups())?));
    if let Some(path) = &a.plot {
        let title =
            "omen_columnar / heap, TPC-H SF1 lineitem (below 1.0: columnar faster or smaller)";
        std::fs::write(path, omendb_bench::plot::ratio_chart(title, &ratios))
            .map_err(|e| format!("{path}: {e}"))?;
        println!("plot written to {path}");
    }
    Ok(())
}

/// Scans with the shared cache off, cold and warm, on the lineitem tables
/// of the `columnar` suite (loaded first if missing).
fn scan_cache_suite(a: &Args) -> Result<(), String> {
    let csv = a
        .lineitem
        .as_deref()
        .ok_or("the scancache suite needs --lineitem FILE.csv")?;
    let mut client = Client::connect(&a.dsn, NoTls).map_err(|e| e.to_string())?;
    // An extension created by an older build (same version) lacks the
    // cache's functions: recreate it (and the tables, below).
    let current: bool = client
        .query_one(
            "SELECT to_regprocedure('omendb.cache_reset()') IS NOT NULL",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    if !current {
        client
            .batch_execute("DROP EXTENSION IF EXISTS omendb CASCADE; CREATE EXTENSION omendb")
            .map_err(|e| e.to_string())?;
    }
    for stmt in omendb_bench::scan_cache::ensure_tables(csv) {
        client
            .batch_execute(&stmt)
            .map_err(|e| format!("{stmt}: {e}"))?;
    }
    let shared: String = client
        .query_one(
            "SELECT format('%s MB, preloaded: %s', capacity_bytes / 1048576, present) FROM omendb.cache_stats",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    println!(
        "## omen_columnar scans with the shared cache off / cold / warm vs heap: {} runs each (medians); shared cache {shared}\n",
        a.runs
    );
    for w in omendb_bench::scan_cache::workloads() {
        report(a, &w)?;
    }
    Ok(())
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "sqlbench: {msg}\nusage: sqlbench [alex|columnar|scancache|tpch|ycsb|streaming|harness] [--lineitem FILE.csv] [--dsn DSN] [--runs N] [--rows N] [--probes N] [--dists a,b] [--insert-seconds N] [--load-seconds N] [--clients N,..]"
    );
    std::process::exit(2);
}
