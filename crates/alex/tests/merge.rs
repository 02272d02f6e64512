//! Page merging (`merge_pages`) and reuse of the freed blocks: contents, order and every
//! lookup form stay equal to a `BTreeSet` oracle, `verify` passes, and the store stops
//! growing when deleted key ranges are replaced by new ones.

use alex::gen::Rng;
use alex::{Alex, Direction, Item, MemStore, Options, PageStore, Tid};
use std::collections::BTreeSet;
use std::ops::Bound;

type Oracle = BTreeSet<(u64, Tid)>;

fn check(ix: &Alex<MemStore>, oracle: &Oracle, rng: &mut Rng) {
    ix.verify().unwrap_or_else(|e| panic!("verify: {e}"));
    let fwd: Vec<(u64, Tid)> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(fwd.iter().eq(oracle.iter()), "forward scan differs");
    let mut back: Vec<(u64, Tid)> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Backward)
        .collect::<Result<_, _>>()
        .unwrap();
    back.reverse();
    assert_eq!(back, fwd, "backward scan differs");
    let keys: Vec<u64> = oracle.iter().map(|e| e.0).collect();
    for _ in 0..300 {
        let k = if keys.is_empty() || rng.below(4) == 0 {
            rng.below(1 << 20)
        } else {
            keys[rng.below(keys.len() as u64) as usize]
        };
        let want: Vec<Tid> = oracle
            .range((k, Tid::MIN)..=(k, Tid::MAX))
            .map(|e| e.1)
            .collect();
        assert_eq!(ix.get(k).unwrap(), want, "get({k})");
        let hi = k + rng.below(5000);
        let got: Vec<(u64, Tid)> = ix
            .range(Bound::Included(k), Bound::Excluded(hi), Direction::Forward)
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(u64, Tid)> = oracle
            .range((k, Tid::MIN)..(hi, Tid::MIN))
            .copied()
            .collect();
        assert_eq!(got, want, "range [{k}, {hi})");
    }
}

fn delete(ix: &mut Alex<MemStore>, oracle: &mut Oracle, victims: Vec<(u64, Tid)>) {
    let items: Vec<Item> = victims.iter().map(|&(k, t)| Item::new(k, t)).collect();
    assert_eq!(ix.delete_many(&items).unwrap(), items.len() as u64);
    for v in victims {
        oracle.remove(&v);
    }
}

/// Delete 90% at random, merge: the data pages shrink to about a tenth and everything
/// still reads back; reinserting uses every freed block before extending the store.
#[test]
fn thinned_pages_merge_and_blocks_are_reused() {
    for (seed, dups) in [(1u64, false), (2, true)] {
        let mut rng = Rng(seed);
        let mut oracle = Oracle::new();
        for i in 0..100_000u32 {
            let key = if dups && i % 4 == 0 {
                7777
            } else {
                rng.below(1 << 20)
            };
            oracle.insert((key, Tid::new(i, 1)));
        }
        let mut ix =
            Alex::bulk_load(MemStore::new(), Options::default(), oracle.iter().copied()).unwrap();
        let before = ix.meta().unwrap();
        let victims: Vec<(u64, Tid)> = oracle
            .iter()
            .filter(|_| rng.below(10) != 0)
            .copied()
            .collect();
        delete(&mut ix, &mut oracle, victims);
        let freed = ix.merge_pages(|| {}).unwrap();
        let after = ix.meta().unwrap();
        assert_eq!(after.n_data as usize, before.n_data as usize - freed.len());
        assert!(
            after.n_data < before.n_data / 4,
            "merging left {} of {} data pages",
            after.n_data,
            before.n_data
        );
        check(&ix, &oracle, &mut rng);
        assert_eq!(ix.verify().unwrap().free_pages as usize, freed.len());
        // A second pass finds nothing more to merge.
        assert!(ix.merge_pages(|| {}).unwrap().is_empty());
        // Reinsert as many keys as were deleted: freed blocks are used first.
        ix.store_mut().recycle(&freed);
        let nblocks = ix.store().nblocks();
        for i in 0..90_000u32 {
            let e = (rng.below(1 << 20), Tid::new(1_000_000 + i, 2));
            ix.insert(e.0, e.1).unwrap();
            oracle.insert(e);
        }
        check(&ix, &oracle, &mut rng);
        let grown = ix.store().nblocks() - nblocks;
        let unused = ix.verify().unwrap().free_pages;
        assert_eq!(
            unused, 0,
            "{unused} freed blocks not reused; grew by {grown}"
        );
    }
}

/// A sliding window (time series with retention): append new keys, delete the oldest,
/// merge and recycle each round. The store stays bounded instead of growing with the
/// number of keys ever inserted.
#[test]
fn sliding_window_stays_bounded() {
    let mut rng = Rng(3);
    let mut oracle = Oracle::new();
    let mut ix = Alex::create(MemStore::new(), Options::default()).unwrap();
    let (window, step) = (40_000u64, 10_000u64);
    let mut next = 0u64;
    let mut peak = Vec::new();
    for round in 0..12 {
        for _ in 0..step {
            let e = (next * 1000 + rng.below(1000), Tid::new(next as u32, 1));
            ix.insert(e.0, e.1).unwrap();
            oracle.insert(e);
            next += 1;
        }
        if next > window {
            let old: Vec<(u64, Tid)> = oracle
                .iter()
                .take_while(|e| (e.1.block as u64) < next - window)
                .copied()
                .collect();
            delete(&mut ix, &mut oracle, old);
        }
        let freed = ix.merge_pages(|| {}).unwrap();
        ix.store_mut().recycle(&freed);
        if round % 4 == 3 {
            check(&ix, &oracle, &mut rng);
        }
        peak.push(ix.store().nblocks());
    }
    let (early, late) = (peak[5], peak[11]);
    assert!(
        late <= early + early / 5,
        "store kept growing under a sliding window: {peak:?}"
    );
}

/// Merging runs of pages emptied completely (a deleted key range) and pages of duplicate
/// chains, then deleting everything: one page remains and the index still works.
#[test]
fn emptied_ranges_and_everything() {
    let mut rng = Rng(4);
    let mut oracle = Oracle::new();
    for i in 0..50_000u32 {
        let key = if i % 3 == 0 { 5 } else { rng.below(1 << 20) };
        oracle.insert((key, Tid::new(i, 1)));
    }
    let mut ix =
        Alex::bulk_load(MemStore::new(), Options::default(), oracle.iter().copied()).unwrap();
    let mid: Vec<(u64, Tid)> = oracle
        .iter()
        .filter(|e| e.0 > 200_000 && e.0 < 700_000)
        .copied()
        .collect();
    delete(&mut ix, &mut oracle, mid);
    let freed = ix.merge_pages(|| {}).unwrap();
    assert!(!freed.is_empty());
    check(&ix, &oracle, &mut rng);
    let all: Vec<(u64, Tid)> = oracle.iter().copied().collect();
    delete(&mut ix, &mut oracle, all);
    ix.merge_pages(|| {}).unwrap();
    check(&ix, &oracle, &mut rng);
    for i in 0..5_000u32 {
        let e = (rng.below(1 << 20), Tid::new(i, 9));
        ix.insert(e.0, e.1).unwrap();
        oracle.insert(e);
    }
    check(&ix, &oracle, &mut rng);
}
