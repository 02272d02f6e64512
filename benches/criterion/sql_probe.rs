//! Criterion against a live server: one indexed point lookup per iteration.
//! Set OMENDB_BENCH_DSN to a server (e.g. the demo cluster); without it the
//! bench reports that it skipped.

use criterion::{criterion_group, criterion_main, Criterion};
use postgres::{Client, NoTls};

fn point_lookup(c: &mut Criterion) {
    let Ok(dsn) = std::env::var("OMENDB_BENCH_DSN") else {
        eprintln!("sql_probe: OMENDB_BENCH_DSN not set; skipped");
        return;
    };
    let mut client = Client::connect(&dsn, NoTls).expect("connect to OMENDB_BENCH_DSN");
    client
        .batch_execute(
            "CREATE TEMP TABLE crit_probe AS SELECT i AS id FROM generate_series(1, 100000) i;
             CREATE INDEX ON crit_probe (id); ANALYZE crit_probe;",
        )
        .expect("setup");
    let stmt = client
        .prepare("SELECT id FROM crit_probe WHERE id = $1")
        .expect("prepare");
    let mut key = 1i32;
    c.bench_function("btree point lookup (live server)", |b| {
        b.iter(|| {
            key = (key + 7919) % 100_000 + 1;
            client.query_opt(&stmt, &[&key]).expect("query")
        })
    });
}

criterion_group!(benches, point_lookup);
criterion_main!(benches);
