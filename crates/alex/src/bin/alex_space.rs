//! Prints bytes per key of data pages (keys + TIDs + all page overhead) and of model pages,
//! per distribution, after bulk load and after inserting the same number of keys again,
//! with and without residual key encoding. `ALEX_BENCH_LARGE=1` uses 10M keys.

use alex::gen::{keys, Dist};
use alex::{Alex, MemStore, Options, Tid};

fn main() {
    let n: usize = if std::env::var("ALEX_BENCH_LARGE").is_ok_and(|x| x == "1") {
        10_000_000
    } else {
        1_000_000
    };
    let ins = n / 10;
    println!("n = {n} bulk-loaded keys, then {ins} inserted; i64 keys + 6-byte TIDs, 8 KiB pages");
    println!("| distribution | residual keys | data B/key (bulk) | model B/key (bulk) | levels | data B/key (+inserts) | model B/key (+inserts) | levels |");
    println!("|---|---|---|---|---|---|---|---|");
    for d in Dist::ALL {
        let all = keys(d, n + ins, 1);
        for residual in [true, false] {
            let opts = Options {
                residual_keys: residual,
                ..Options::default()
            };
            let mut ix = Alex::bulk_load(
                MemStore::new(),
                opts,
                all[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (k, Tid::new(i as u32, 1))),
            )
            .unwrap();
            let a = ix.verify().unwrap();
            for (i, &k) in all[n..].iter().enumerate() {
                ix.insert(k, Tid::new(u32::MAX - i as u32, 2)).unwrap();
            }
            let b = ix.verify().unwrap();
            println!(
                "| {} | {} | {:.2} | {:.3} | {} | {:.2} | {:.3} | {} |",
                d.name(),
                if residual { "yes" } else { "no (8 B)" },
                a.data_bytes_per_key(),
                a.model_bytes_per_key(),
                a.levels,
                b.data_bytes_per_key(),
                b.model_bytes_per_key(),
                b.levels
            );
        }
    }
}
