//! Several threads, each with its own `Alex` over one `SharedStore` (PostgreSQL-like page
//! locks and atomic groups), insert, delete, look up and scan at once. Checks: no errors, no
//! deadlock, every entry a thread inserted and has not deleted is found by its lookups and
//! scans *during* the run (Lehman–Yao: no misses while pages split), and afterwards the
//! index holds exactly the union of what the threads left in, and `verify` passes.

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use alex::gen::Rng;
use alex::{Alex, Direction, Item, Options, Tid};
use common::SharedStore;

const THREADS: usize = 4;
/// Random keys live in [RANDOM_LO, 2·RANDOM_LO); the ascending stream starts above them
/// and the descending one below them.
const RANDOM_LO: u64 = 1 << 61;

fn ops_per_thread() -> usize {
    if cfg!(debug_assertions) {
        2_500
    } else {
        25_000
    }
}

/// Thread `t`'s `i`-th TID: disjoint across threads.
fn tid(t: usize, i: usize) -> Tid {
    Tid::new(
        (t as u32 + 1) << 24 | (i / 1000) as u32,
        (i % 1000) as u16 + 1,
    )
}

struct Shared {
    asc: AtomicU64,
    desc: AtomicU64,
}

/// One worker: returns the entries it leaves in the index.
fn worker(
    store: SharedStore,
    t: usize,
    seed: u64,
    sh: &Shared,
    deadline: Instant,
) -> BTreeSet<(u64, Tid)> {
    let mut ix = Alex::open(store).unwrap();
    let mut r = Rng(seed ^ (t as u64 * 0x9E37));
    let mut mine: BTreeSet<(u64, Tid)> = BTreeSet::new();
    let mut list: Vec<(u64, Tid)> = Vec::new(); // may hold deleted entries; checked against `mine`
    let mut next = 0usize;
    for op in 0..ops_per_thread() {
        if op % 256 == 0 && Instant::now() > deadline {
            break;
        }
        let roll = r.below(100);
        if roll < 50 {
            // Key shapes that exercise every split kind: appends at both edges of the key
            // space (shared counters, so threads interleave on the same pages; root grows),
            // random keys between them, heavy duplicates.
            let key = match r.below(4) {
                0 => sh.asc.fetch_add(1 + r.below(3), Ordering::Relaxed),
                1 => sh.desc.fetch_sub(1 + r.below(3), Ordering::Relaxed),
                2 => RANDOM_LO + r.below(RANDOM_LO),
                _ => RANDOM_LO + (1 << 40) + r.below(8),
            };
            let e = (key, tid(t, next));
            next += 1;
            assert!(
                ix.insert(e.0, e.1)
                    .unwrap_or_else(|err| panic!("thread {t} insert {e:?}: {err}")),
                "fresh entry reported present"
            );
            mine.insert(e);
            list.push(e);
        } else if roll < 65 && !list.is_empty() {
            let i = r.below(list.len() as u64) as usize;
            let e = list.swap_remove(i);
            let had = mine.remove(&e);
            assert_eq!(
                ix.delete(e.0, e.1)
                    .unwrap_or_else(|err| panic!("thread {t} delete {e:?}: {err}")),
                had,
                "delete of {e:?}"
            );
        } else if roll < 95 && !list.is_empty() {
            let e = list[r.below(list.len() as u64) as usize];
            let want = mine.contains(&e);
            if r.below(2) == 0 {
                let got = ix
                    .get(e.0)
                    .unwrap_or_else(|err| panic!("thread {t} get {e:?}: {err}"));
                assert_eq!(got.contains(&e.1), want, "thread {t}: lookup of {e:?}");
                assert!(
                    got.windows(2).all(|w| w[0] < w[1]),
                    "get returned unsorted or repeated TIDs"
                );
            } else {
                assert_eq!(
                    ix.contains(e.0, e.1).unwrap(),
                    want,
                    "thread {t}: contains {e:?}"
                );
            }
        } else if !list.is_empty() {
            let k = list[r.below(list.len() as u64) as usize].0;
            scan_check(&ix, t, k, r.below(2) == 0, &mine);
        }
    }
    mine
}

/// A bounded scan from `k` must be strictly ordered and contain every entry of ours in the
/// part of the key space it covered.
fn scan_check(ix: &Alex<SharedStore>, t: usize, k: u64, back: bool, mine: &BTreeSet<(u64, Tid)>) {
    let (dir, lo, hi) = if back {
        (Direction::Backward, Bound::Unbounded, Bound::Included(k))
    } else {
        (Direction::Forward, Bound::Included(k), Bound::Unbounded)
    };
    let got: Vec<(u64, Tid)> = ix
        .range(lo, hi, dir)
        .take(400)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("thread {t} scan from {k}: {e}"));
    if back {
        assert!(
            got.windows(2).all(|w| w[0] > w[1]),
            "backward scan out of order"
        );
    } else {
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "forward scan out of order"
        );
    }
    let Some(&last) = got.last() else {
        assert!(
            !mine.iter().any(|e| if back { e.0 <= k } else { e.0 >= k }),
            "thread {t}: empty scan from {k} missed our entries"
        );
        return;
    };
    let seen: BTreeSet<(u64, Tid)> = got.iter().copied().collect();
    let covered: Vec<&(u64, Tid)> = if back {
        mine.range(last..).take_while(|e| e.0 <= k).collect()
    } else {
        mine.range((k, Tid::MIN)..=last).collect()
    };
    for e in covered {
        assert!(
            seen.contains(e),
            "thread {t}: scan {dir:?} from {k} to {last:?} missed {e:?}"
        );
    }
}

fn run(seed: u64, bulk: usize, opts: Options) {
    let t0 = Instant::now();
    let mut r = Rng(seed);
    let init: Vec<(u64, Tid)> = (0..bulk)
        .map(|i| (RANDOM_LO + r.below(RANDOM_LO), tid(THREADS, i)))
        .collect();
    let store = SharedStore::new();
    Alex::bulk_load(store.clone(), opts, init.iter().copied()).unwrap();
    let sh = Arc::new(Shared {
        asc: AtomicU64::new(2 * RANDOM_LO),
        desc: AtomicU64::new(RANDOM_LO - 1),
    });
    let deadline =
        Instant::now() + Duration::from_secs(if cfg!(debug_assertions) { 20 } else { 8 });
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, sh, barrier) = (store.clone(), sh.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                worker(store, t, seed, &sh, deadline)
            })
        })
        .collect();
    let mut want: BTreeSet<(u64, Tid)> = init.into_iter().collect();
    for h in handles {
        want.extend(h.join().expect("worker panicked"));
    }
    let ix = Alex::open(store.clone()).unwrap();
    let rep = ix
        .verify()
        .unwrap_or_else(|e| panic!("verify after concurrent run: {e}"));
    let got: Vec<(u64, Tid)> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().eq(want.iter()),
        "index contents differ from the union of the threads' entries"
    );
    eprintln!(
        "seed {seed}: {} entries, {rep:?}, {} groups, {} aborted, {:?}",
        got.len(),
        store.groups(),
        store.aborts(),
        t0.elapsed()
    );
}

#[test]
fn four_writers_from_empty_exact_count() {
    // Exact counts put the metapage in every group: the hottest lock order.
    run(1, 0, Options::default());
}

#[test]
fn four_writers_on_bulk_loaded_tight_pages() {
    let o = Options {
        fill: 0.9,
        max_density: 0.92,
        exact_count: false,
        residual_keys: false,
        ..Options::default()
    };
    run(2, 20_000, o);
}

#[test]
fn four_writers_many_seeds() {
    let n = if cfg!(debug_assertions) { 1 } else { 3 };
    for seed in 10..10 + n {
        run(
            seed,
            1000 * seed as usize % 7000,
            Options {
                exact_count: false,
                ..Options::default()
            },
        );
    }
}

/// Readers with long-lived `Alex` values (cached roots and model levels) look up everything
/// a writer has published while it grows the tree: from a single page (split-downs, the
/// first root change), and above a bulk-loaded tree with an ascending stream at the top of
/// the key space (root grows).
#[test]
fn readers_during_root_changes_and_split_downs() {
    readers_during_growth(0);
    readers_during_growth(30_000);
}

fn readers_during_growth(bulk: usize) {
    let store = SharedStore::new();
    let mut r = Rng(5);
    let init = (0..bulk).map(|i| (r.below(1 << 40), Tid::new(u32::MAX - i as u32, 2)));
    Alex::bulk_load(
        store.clone(),
        Options {
            exact_count: false,
            ..Options::default()
        },
        init,
    )
    .unwrap();
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        150_000
    };
    let keys: Arc<Vec<u64>> = Arc::new(
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    r.below(1 << 40)
                } else {
                    1 << 40 | i as u64
                }
            })
            .collect(),
    );
    let published = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|j| {
            let (store, keys, published) = (store.clone(), keys.clone(), published.clone());
            std::thread::spawn(move || {
                let ix = Alex::open(store).unwrap();
                let mut r = Rng(j);
                let mut checks = 0u64;
                loop {
                    let upto = published.load(Ordering::Acquire);
                    if upto == usize::MAX {
                        return checks;
                    }
                    if upto == 0 {
                        continue;
                    }
                    for _ in 0..64 {
                        // Mostly the newest keys: the pages being split right now.
                        let i = if r.below(2) == 0 {
                            upto - 1 - r.below(upto.min(200) as u64) as usize
                        } else {
                            r.below(upto as u64) as usize
                        };
                        let got = ix.get(keys[i]).unwrap();
                        assert!(
                            got.contains(&Tid::new(i as u32, 1)),
                            "reader missed key #{i} of {upto}"
                        );
                        checks += 1;
                    }
                }
            })
        })
        .collect();
    let mut w = Alex::open(store.clone()).unwrap();
    for (i, &k) in keys.iter().enumerate() {
        w.insert(k, Tid::new(i as u32, 1)).unwrap();
        published.store(i + 1, Ordering::Release);
    }
    published.store(usize::MAX, Ordering::Release);
    let checks: u64 = readers
        .into_iter()
        .map(|h| h.join().expect("reader panicked"))
        .sum();
    let rep = w.verify().unwrap();
    assert_eq!(rep.keys, (n + bulk) as u64);
    assert!(checks > 1000, "readers barely ran: {checks}");
    eprintln!(
        "bulk {bulk}: {checks} reader lookups, {rep:?}, meta {:?}",
        w.meta().unwrap()
    );
}

/// VACUUM-style merging while readers look up and scan and a writer inserts (reusing the
/// freed blocks): a deleter removes 90% of a bulk-loaded index in batches and merges the
/// thinned pages after each batch. Readers must find every entry that is never deleted, in
/// order, whatever page it has been moved to.
#[test]
fn readers_and_writers_during_merges() {
    let store = SharedStore::new();
    let mut r = Rng(21);
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        120_000
    };
    let all: Vec<(u64, Tid)> = (0..n)
        .map(|i| (r.below(1 << 40), Tid::new(i as u32, 1)))
        .collect();
    Alex::bulk_load(store.clone(), Options::default(), all.iter().copied()).unwrap();
    let stable: Arc<BTreeSet<(u64, Tid)>> = Arc::new(
        all.iter()
            .filter(|e| e.1.block % 10 == 0)
            .copied()
            .collect(),
    );
    let mut doomed: Vec<(u64, Tid)> = all
        .iter()
        .filter(|e| e.1.block % 10 != 0)
        .copied()
        .collect();
    doomed.sort_unstable();
    let done = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|j| {
            let (store, stable, done) = (store.clone(), stable.clone(), done.clone());
            std::thread::spawn(move || {
                let ix = Alex::open(store).unwrap();
                let keys: Vec<(u64, Tid)> = stable.iter().copied().collect();
                let mut r = Rng(100 + j);
                let mut checks = 0u64;
                while done.load(Ordering::Acquire) == 0 {
                    let e = keys[r.below(keys.len() as u64) as usize];
                    match r.below(3) {
                        0 => assert!(
                            ix.get(e.0).unwrap().contains(&e.1),
                            "reader {j}: get missed {e:?}"
                        ),
                        1 => assert!(ix.contains(e.0, e.1).unwrap(), "reader {j}: {e:?}"),
                        _ => scan_check(&ix, j as usize, e.0, r.below(2) == 0, &stable),
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    let inserter = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut ix = Alex::open(store).unwrap();
            let mut r = Rng(7);
            let mut added = BTreeSet::new();
            let mut i = 0u32;
            while done.load(Ordering::Acquire) == 0 {
                let e = (r.below(1 << 40), Tid::new(u32::MAX - i, 3));
                ix.insert(e.0, e.1).unwrap();
                added.insert(e);
                i += 1;
            }
            added
        })
    };
    let mut ix = Alex::open(store.clone()).unwrap();
    let mut merged = 0;
    let rounds = if cfg!(debug_assertions) { 2 } else { 4 };
    for round in 0..rounds {
        if round > 0 {
            // Refill with new entries (splits that reuse the freed blocks), then thin again.
            doomed = (0..n)
                .filter(|i| i % 10 != 0)
                .map(|i| (r.below(1 << 40), Tid::new(i as u32, 2 + round as u16)))
                .collect();
            for e in &doomed {
                ix.insert(e.0, e.1).unwrap();
            }
            doomed.sort_unstable();
        }
        for batch in doomed.chunks(doomed.len() / 8 + 1) {
            let items: Vec<Item> = batch.iter().map(|&(k, t)| Item::new(k, t)).collect();
            assert_eq!(ix.delete_many(&items).unwrap(), items.len() as u64);
            let freed = ix.merge_pages(|| {}).unwrap();
            merged += freed.len();
            store.recycle(&freed);
        }
    }
    done.store(1, Ordering::Release);
    let checks: u64 = readers
        .into_iter()
        .map(|h| h.join().expect("reader panicked"))
        .sum();
    let added = inserter.join().expect("inserter panicked");
    let rep = ix
        .verify()
        .unwrap_or_else(|e| panic!("verify after merges: {e}"));
    let got: Vec<(u64, Tid)> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
        .collect::<Result<_, _>>()
        .unwrap();
    let want: BTreeSet<(u64, Tid)> = stable.iter().chain(added.iter()).copied().collect();
    assert!(got.iter().eq(want.iter()), "contents after merges differ");
    assert!(merged > 0, "no page was merged");
    eprintln!(
        "{merged} pages merged, {checks} reader checks, {} inserts, {rep:?}",
        added.len()
    );
}

/// A split-down counts its parent's depth from the root it read. If another writer grows a
/// new root above that one before the split-down's second group, the new page sits one
/// level deeper than counted; the metapage's `levels` (checked by `verify`, used by the
/// planner's cost) must still cover it. Deterministic: the grow runs at the start of the
/// group that links the split-down (the soak test hit this once, with 22 levels).
#[test]
fn split_down_finished_after_a_root_grow_counts_levels() {
    let store = SharedStore::new();
    let n0 = 20_000u64;
    Alex::bulk_load(
        store.clone(),
        Options::default(),
        (0..n0).map(|i| (i * 1_000_000, tid(THREADS, i as usize))),
    )
    .unwrap();
    let mut a = Alex::open(store.clone()).unwrap();
    let meta0 = a.meta().unwrap();
    // The first group after a split-down's first one (a model page more, no level more)
    // is the one that links it: a root grow by another writer goes first.
    let (b_store, grown) = (store.clone(), Arc::new(AtomicUsize::new(0)));
    let (mut models, g) = (meta0.n_model, grown.clone());
    store.before_groups(move || {
        let m = Alex::open(b_store.clone()).unwrap().meta().unwrap();
        if m.n_model == models || m.levels != meta0.levels {
            models = m.n_model;
            return false;
        }
        let mut b = Alex::open(b_store.clone()).unwrap();
        let mut k = n0 * 1_000_000;
        while b.meta().unwrap().levels == meta0.levels {
            b.insert(k, tid(1, g.load(Ordering::Relaxed))).unwrap();
            g.fetch_add(1, Ordering::Relaxed);
            k += 1_000;
        }
        true
    });
    // Fill one page in the middle until it splits down.
    let mut k = n0 / 2 * 1_000_000 + 1;
    while grown.load(Ordering::Relaxed) == 0 {
        a.insert(k, tid(0, k as usize)).unwrap();
        k += 1;
        assert!(k < n0 / 2 * 1_000_000 + 1_000_000, "no split-down");
    }
    let rep = a
        .verify()
        .unwrap_or_else(|e| panic!("verify after a split-down raced a root grow: {e}"));
    assert_eq!(a.meta().unwrap().levels, rep.levels, "{rep:?}");
    assert_eq!(
        rep.levels,
        meta0.levels + 2,
        "not a level more on both sides: {rep:?}"
    );
}
