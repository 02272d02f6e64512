//! Appends at the edges of the key space (ids, timestamps; ascending and descending) must
//! not deepen the tree by a level per split.

use alex::gen::{keys, Dist, Rng};
use alex::{Alex, Key, MemStore, Options, Tid};

const MAX_LEVELS: u32 = 6;

fn n() -> usize {
    if let Some(n) = std::env::var("ALEX_DEPTH_N")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    }
}

fn tid(i: usize) -> Tid {
    Tid::new((i / 1000) as u32, (i % 1000) as u16 + 1)
}

/// Bulk-load `base`, insert `more` in order; check depth and contents.
fn check(name: &str, base: &[u64], more: &[u64]) {
    check_levels(name, base, more, MAX_LEVELS)
}

fn check_levels(name: &str, base: &[u64], more: &[u64], max_levels: u32) {
    let t0 = std::time::Instant::now();
    let mut ix = Alex::bulk_load(
        MemStore::new(),
        Options::default(),
        base.iter().enumerate().map(|(i, &k)| (k, tid(i))),
    )
    .unwrap();
    for (i, &k) in more.iter().enumerate() {
        ix.insert(k, tid(base.len() + i)).unwrap();
    }
    let rep = ix.verify().unwrap();
    eprintln!(
        "{name}: {rep:?} meta levels {} in {:?}",
        ix.meta().unwrap().levels,
        t0.elapsed()
    );
    assert_eq!(rep.keys, (base.len() + more.len()) as u64, "{name}");
    assert!(rep.levels <= max_levels, "{name}: {} levels", rep.levels);
    for (i, &k) in more.iter().enumerate().step_by(101) {
        assert!(
            ix.get(k).unwrap().contains(&tid(base.len() + i)),
            "{name}: key {k}"
        );
    }
}

fn ids(r: std::ops::Range<i64>) -> Vec<u64> {
    r.map(|k| k.to_ordered_u64()).collect()
}

#[test]
fn ascending_ids() {
    let n = n() as i64;
    check("ascending into empty", &[], &ids(0..n));
    check("ascending onto bulk", &ids(0..n), &ids(n..2 * n));
}

/// An ascending stream after a large bulk load grows a root whose stream slots are bounded
/// ranges; the nodes split down in them must cover their ranges, or the stream deepens the
/// tree a level per ~1000 pages at each one's last slot (7 levels at 3M onto 3M before).
#[test]
fn ascending_onto_a_large_bulk_load_stays_shallow() {
    let n: i64 = if cfg!(debug_assertions) {
        300_000
    } else {
        3_000_000
    };
    check_levels("ascending onto a large bulk", &ids(0..n), &ids(n..2 * n), 4);
}

#[test]
fn descending_ids() {
    let n = n() as i64;
    let down = |a: i64, b: i64| ids(a..b).into_iter().rev().collect::<Vec<_>>();
    check("descending into empty", &[], &down(-n, 0));
    check("descending onto bulk", &ids(0..n), &down(-n, 0));
    check("descending positive ids into empty", &[], &down(1, n + 1));
}

/// The mirror image: a descending stream's node domains are bounded below by the key
/// space's start, and their slots must reach it, or the stream splits the leftmost slot down
/// again a level per ~1000 pages (at 10M keys: 16, 18 and 28 levels before; 3, 5, 6 now).
#[test]
fn descending_into_a_large_index_stays_shallow() {
    let n = 3 * n() as i64;
    let down = |a: i64, b: i64| ids(a..b).into_iter().rev().collect::<Vec<_>>();
    check_levels("large descending into empty", &[], &down(-n, 0), 4);
    // The bulk load's 3 levels, the node split down at its left edge and the nodes in its
    // wide slots (an ascending stream grows a root instead: 4).
    check_levels("large descending onto bulk", &ids(0..n), &down(-n, 0), 5);
    let ts: Vec<u64> = keys(Dist::Timestamps, n as usize, 7)
        .into_iter()
        .rev()
        .collect();
    // Jitter overflows some slots, which split down as they do for ascending timestamps
    // (4 to 7 levels at 1M keys, depending on the seed, in either direction).
    check_levels("large descending timestamps", &[], &ts, 7);
}

#[test]
fn jittered_timestamps() {
    let n = n();
    let ts = keys(Dist::Timestamps, 2 * n, 1);
    check("timestamps into empty", &[], &ts[..n]);
    check("timestamps onto bulk", &ts[..n], &ts[n..]);
}

#[test]
fn ascending_stream_inside_random_keys() {
    let n = n() / 2;
    let mut r = Rng(3);
    let ks: Vec<u64> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                r.next_u64()
            } else {
                1 << 40 | i as u64
            }
        })
        .collect();
    check("ascending amid random", &[], &ks);
}

/// The soak test's key stream: ids after a bulk load of negative ids, every tenth one a
/// batch of 700 keys a million apart from the previous batch (`id * 1e6 + g`), so two
/// ascending streams interleave at very different densities.
#[test]
fn two_interleaved_ascending_streams() {
    let n = n() as i64 / 5;
    let mut more = Vec::new();
    for id in 0..n / 70 {
        if id % 10 == 0 {
            more.extend((1..=700).map(|g| (id * 1_000_000 + g).to_ordered_u64()));
        } else {
            more.push(id.to_ordered_u64());
        }
    }
    check("ids and batches", &ids(-n..0), &more);
}
