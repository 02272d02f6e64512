use std::ops::Bound;

use alex::gen::Rng;
use alex::{Alex, Direction, MemStore, Options, Tid};

fn t(i: u32) -> Tid {
    Tid::new(i / 300, (i % 300) as u16 + 1)
}

#[test]
fn one_key_with_a_million_payloads() {
    let n: u32 = if cfg!(debug_assertions) {
        200_000
    } else {
        1_000_000
    };
    let key = 42u64 << 40;
    let mut e: Vec<(u64, Tid)> = (0..n).map(|i| (key, t(i))).collect();
    e.push((key - 1, t(0)));
    e.push((key + 1, t(0)));
    let mut ix = Alex::bulk_load(MemStore::new(), Options::default(), e).unwrap();
    let rep = ix.verify().unwrap();
    assert!(rep.data_pages > 100, "must spill over many pages: {rep:?}");
    let got = ix.get(key).unwrap();
    assert_eq!(got.len(), n as usize);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    // Inserts and deletes inside the chain.
    let mut r = Rng(1);
    for j in 0..2000u32 {
        assert!(ix.insert(key, Tid::new(1_000_000 + j, 1)).unwrap());
        let victim = t(r.below(n as u64) as u32);
        ix.delete(key, victim).unwrap();
    }
    ix.verify().unwrap();
    let after = ix.get(key).unwrap().len();
    let back = ix
        .range(
            Bound::Included(key),
            Bound::Included(key),
            Direction::Backward,
        )
        .count();
    assert_eq!(after, back);
    assert_eq!(ix.get(key - 1).unwrap(), vec![t(0)]);
    assert_eq!(ix.get(key + 1).unwrap(), vec![t(0)]);
}

#[test]
fn duplicate_chain_built_by_inserts() {
    let mut ix = Alex::create(MemStore::new(), Options::default()).unwrap();
    let mut r = Rng(9);
    let n = if cfg!(debug_assertions) {
        5_000
    } else {
        40_000
    };
    let mut all = Vec::new();
    for i in 0..n {
        let k = if i % 10 == 0 { r.below(1000) } else { 500 };
        let tid = Tid::new(r.below(1 << 30) as u32, 1);
        if ix.insert(k, tid).unwrap() {
            all.push((k, tid));
        }
    }
    let rep = ix.verify().unwrap();
    assert!(rep.chain_pages > 0, "{rep:?}");
    all.sort();
    let want: Vec<Tid> = all.iter().filter(|x| x.0 == 500).map(|x| x.1).collect();
    assert_eq!(ix.get(500).unwrap(), want);
    let fwd: Vec<_> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
        .map(|x| x.unwrap())
        .collect();
    assert_eq!(fwd, all);
}

/// A column of NULLs (one key) filled in heap order: each insert goes to the end of one
/// long duplicate chain. The insert path starts at the page the previous inserts used, so
/// an insert reads a few pages, not the whole chain from its head.
#[test]
fn appends_to_a_long_chain_do_not_walk_it() {
    let mut ix = Alex::create(MemStore::new(), Options::default()).unwrap();
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    for i in 0..n {
        ix.insert(u64::MAX, Tid::new(i / 100, (i % 100) as u16 + 1))
            .unwrap();
    }
    let rep = ix.verify().unwrap();
    assert!(rep.chain_pages > 20, "{rep:?}");
    let before = ix.store().reads.get();
    for i in 0..1000 {
        ix.insert(u64::MAX, Tid::new(n + i, 1)).unwrap();
    }
    let per_insert = (ix.store().reads.get() - before) as f64 / 1000.0;
    assert!(
        per_insert < 4.0,
        "{per_insert} page reads per insert into a chain of {} pages",
        rep.chain_pages
    );
    assert_eq!(ix.get(u64::MAX).unwrap().len(), n as usize + 1000);
}

#[test]
fn crash_between_split_groups_leaves_a_valid_index() {
    let mut ix = Alex::create(MemStore::new(), Options::default()).unwrap();
    let mut r = Rng(5);
    let mut keys = Vec::new();
    for _ in 0..20_000 {
        let k = r.next_u64();
        ix.insert(k, t(1)).unwrap();
        keys.push(k);
    }
    ix.crash_after_split_group1 = true;
    let mut incomplete = 0;
    for _ in 0..20_000 {
        let k = r.next_u64();
        ix.insert(k, t(1)).unwrap();
        keys.push(k);
        // Writers that land on a flagged page finish it, so the count goes up and down.
        incomplete = incomplete.max(ix.verify().unwrap().incomplete_splits);
        if incomplete >= 3 {
            break;
        }
    }
    assert!(incomplete > 0, "no split happened");
    ix.verify().unwrap();
    for k in &keys {
        assert_eq!(ix.get(*k).unwrap(), vec![t(1)]);
    }
    // The next writers that land on those pages finish the splits.
    ix.crash_after_split_group1 = false;
    for _ in 0..20_000 {
        let k = r.next_u64();
        ix.insert(k, t(1)).unwrap();
    }
    let rep = ix.verify().unwrap();
    assert!(rep.incomplete_splits < incomplete, "{rep:?}");
}

#[test]
fn float_zero_and_nan() {
    use alex::Key;
    let mut ix = Alex::create(
        MemStore::new(),
        Options {
            key_kind: f64::KIND,
            ..Options::default()
        },
    )
    .unwrap();
    ix.insert((-0.0f64).to_ordered_u64(), t(1)).unwrap();
    ix.insert(0.0f64.to_ordered_u64(), t(2)).unwrap();
    ix.insert(f64::NAN.to_ordered_u64(), t(3)).unwrap();
    ix.insert(f64::INFINITY.to_ordered_u64(), t(4)).unwrap();
    assert_eq!(ix.get(0.0f64.to_ordered_u64()).unwrap(), vec![t(1), t(2)]);
    let last: Vec<_> = ix
        .range(Bound::Unbounded, Bound::Unbounded, Direction::Backward)
        .map(|x| x.unwrap().1)
        .collect();
    assert_eq!(last, vec![t(3), t(4), t(2), t(1)]);
}
