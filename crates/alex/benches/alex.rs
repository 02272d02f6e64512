//! Criterion benches: alex (MemStore) vs BTreeMap vs sorted Vec + binary search.
//! 1M keys by default; `ALEX_BENCH_LARGE=1` adds 10M.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::time::Duration;

use alex::gen::{keys, Dist, Rng};
use alex::{Alex, Direction, MemStore, Options, Tid};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const PROBES: usize = 1000;
const DISTS: [Dist; 4] = [
    Dist::Sequential,
    Dist::Uniform,
    Dist::Lognormal,
    Dist::Timestamps,
];

fn sizes() -> Vec<usize> {
    let mut v = vec![1_000_000];
    if std::env::var("ALEX_BENCH_LARGE").is_ok_and(|x| x == "1") {
        v.push(10_000_000);
    }
    v
}

fn data(d: Dist, n: usize) -> Vec<(u64, Tid)> {
    let mut k = keys(d, n, 42);
    k.sort_unstable();
    k.dedup();
    k.into_iter()
        .enumerate()
        .map(|(i, k)| (k, Tid::new(i as u32 / 200, (i % 200) as u16 + 1)))
        .collect()
}

fn bench(c: &mut Criterion) {
    for n in sizes() {
        for d in DISTS {
            let e = data(d, n);
            let tag = format!(
                "{}/{}",
                d.name(),
                if n >= 10_000_000 { "10M" } else { "1M" }
            );
            let mut g = c.benchmark_group(format!("bulk_load/{tag}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(3));
            g.bench_function("alex", |b| {
                b.iter(|| {
                    Alex::bulk_load(MemStore::new(), Options::default(), e.iter().copied())
                        .map(|_| ())
                })
            });
            g.bench_function("btreemap", |b| {
                b.iter(|| black_box(e.iter().copied().collect::<BTreeMap<u64, Tid>>().len()))
            });
            g.bench_function("sorted_vec", |b| b.iter(|| black_box(e.to_vec().len())));
            g.finish();

            let ix =
                Alex::bulk_load(MemStore::new(), Options::default(), e.iter().copied()).unwrap();
            let bt: BTreeMap<u64, Tid> = e.iter().copied().collect();
            let mut r = Rng(7);
            let probes: Vec<u64> = (0..PROBES)
                .map(|_| e[r.below(e.len() as u64) as usize].0)
                .collect();

            let mut g = c.benchmark_group(format!("lookup_x{PROBES}/{tag}"));
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            g.bench_function("alex", |b| {
                let mut out = Vec::with_capacity(4);
                b.iter(|| {
                    for &k in &probes {
                        out.clear();
                        ix.get_into(k, &mut out).unwrap();
                        black_box(&out);
                    }
                })
            });
            g.bench_function("btreemap", |b| {
                b.iter(|| {
                    probes.iter().for_each(|k| {
                        black_box(bt.get(k));
                    })
                })
            });
            g.bench_function("sorted_vec", |b| {
                b.iter(|| {
                    probes.iter().for_each(|k| {
                        black_box(e.binary_search_by_key(k, |x| x.0).ok());
                    })
                })
            });
            g.finish();

            let mut g = c.benchmark_group(format!("range100_x100/{tag}"));
            g.sample_size(20)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            let starts = &probes[..100];
            g.bench_function("alex", |b| {
                b.iter(|| {
                    for &k in starts {
                        let s: u64 = ix
                            .range(Bound::Included(k), Bound::Unbounded, Direction::Forward)
                            .take(100)
                            .map(|x| x.map_or(0, |x| x.0))
                            .sum();
                        black_box(s);
                    }
                })
            });
            g.bench_function("btreemap", |b| {
                b.iter(|| {
                    for &k in starts {
                        black_box(bt.range(k..).take(100).map(|x| *x.0).sum::<u64>());
                    }
                })
            });
            g.bench_function("sorted_vec", |b| {
                b.iter(|| {
                    for &k in starts {
                        let i = e.partition_point(|x| x.0 < k);
                        black_box(e[i..].iter().take(100).map(|x| x.0).sum::<u64>());
                    }
                })
            });
            g.finish();

            // Inserts: 10k new keys (from the same distribution, fresh seed) into the loaded index.
            let fresh: Vec<u64> = keys(d, 10_000, 4242)
                .into_iter()
                .map(|k| k.wrapping_add(if d == Dist::Sequential { n as u64 } else { 0 }))
                .collect();
            let mut g = c.benchmark_group(format!("insert_x10k/{tag}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(3));
            let store = ix.store().clone();
            g.bench_function("alex", |b| {
                b.iter_batched(
                    || Alex::open(store.clone()).unwrap(),
                    |mut ix| {
                        for (i, &k) in fresh.iter().enumerate() {
                            ix.insert(k, Tid::new(u32::MAX, i as u16)).unwrap();
                        }
                        ix
                    },
                    BatchSize::PerIteration,
                )
            });
            g.bench_function("btreemap", |b| {
                b.iter_batched(
                    || bt.clone(),
                    |mut bt| {
                        for (i, &k) in fresh.iter().enumerate() {
                            bt.insert(k, Tid::new(u32::MAX, i as u16));
                        }
                        bt
                    },
                    BatchSize::PerIteration,
                )
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
