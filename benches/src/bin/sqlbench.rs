//! `sqlbench`: run the harness's workloads against a live server.
//!
//! Usage: sqlbench [--dsn DSN] [--runs N] [--rows N] [--probes N]
//! DSN defaults to the demo cluster that scripts/run.sh starts.

use omendb_bench::{run, workloads};

fn main() {
    let mut dsn = "host=127.0.0.1 port=5499 user=postgres dbname=omendb_demo".to_string();
    let (mut runs, mut rows, mut probes) = (7usize, 1_000_000u64, 100_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--dsn" => dsn = value(),
            "--runs" => runs = value().parse().unwrap_or_else(|_| usage("--runs takes a number")),
            "--rows" => rows = value().parse().unwrap_or_else(|_| usage("--rows takes a number")),
            "--probes" => probes = value().parse().unwrap_or_else(|_| usage("--probes takes a number")),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let workload = workloads::point_probes(rows, probes);
    match run(&dsn, &workload, runs) {
        Ok(report) => print!("{}", report.markdown()),
        Err(e) => {
            eprintln!("sqlbench: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("sqlbench: {msg}\nusage: sqlbench [--dsn DSN] [--runs N] [--rows N] [--probes N]");
    std::process::exit(2);
}
