//! `delete_many` (VACUUM's path) removes exactly the present entries it is given, one
//! atomic group per page, and leaves a valid index.

use alex::{Alex, Direction, Item, MemStore, Options, Tid};
use std::collections::BTreeSet;
use std::ops::Bound;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn contents(ix: &Alex<MemStore>) -> BTreeSet<(u64, Tid)> {
    ix.range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
        .map(|r| r.unwrap())
        .collect()
}

/// A bulk-loaded index of `n` entries (every `dup_every`-th under one key), grown by 20,000
/// inserts so splits and chains are involved; with its oracle and the generator.
fn build(seed: u64, dup_every: u64, n: u32) -> (Alex<MemStore>, BTreeSet<(u64, Tid)>, Rng) {
    let mut rng = Rng(seed * 0x9E37_79B9_7F4A_7C15);
    let mut oracle = BTreeSet::new();
    for i in 0..n {
        let key = if dup_every > 0 && (i as u64).is_multiple_of(dup_every) {
            42
        } else {
            rng.next() % 1_000_000
        };
        oracle.insert((key, Tid::new(i / 100, (i % 100) as u16 + 1)));
    }
    let mut ix =
        Alex::bulk_load(MemStore::new(), Options::default(), oracle.iter().copied()).unwrap();
    for i in 0..20_000u32 {
        let e = (rng.next() % 1_000_000, Tid::new(1_000_000 + i, 1));
        ix.insert(e.0, e.1).unwrap();
        oracle.insert(e);
    }
    (ix, oracle, rng)
}

#[test]
fn delete_many_matches_one_by_one_deletes() {
    for (seed, dup_every) in [(1u64, 0u64), (2, 3), (3, 50)] {
        let (mut ix, mut oracle, mut rng) = build(seed, dup_every, 60_000);
        // Delete ~60% of the entries plus some that are not there.
        let mut victims: Vec<Item> = oracle
            .iter()
            .filter(|_| rng.next() % 10 < 6)
            .map(|&(k, t)| Item::new(k, t))
            .collect();
        victims.extend(
            (0..500).map(|i| Item::new(rng.next() % 1_000_000, Tid::new(3_000_000 + i, 7))),
        );
        victims.sort_unstable();
        victims.dedup();
        let before = ix.store().groups;
        let removed = ix.delete_many(&victims).unwrap();
        let groups = ix.store().groups - before;
        let mut expect_removed = 0;
        for v in &victims {
            if oracle.remove(&(v.key, v.tid)) {
                expect_removed += 1;
            }
        }
        assert_eq!(removed, expect_removed, "seed {seed}");
        assert_eq!(contents(&ix), oracle, "seed {seed}");
        ix.verify().unwrap();
        let report = ix.verify().unwrap();
        assert!(
            groups <= report.data_pages as u64 * 2 + 10,
            "seed {seed}: {groups} groups for {} pages",
            report.data_pages
        );
    }
}

#[test]
fn delete_many_refuses_unsorted_input() {
    let mut ix = Alex::bulk_load(
        MemStore::new(),
        Options::default(),
        (0..100u64).map(|k| (k, Tid::new(1, k as u16 + 1))),
    )
    .unwrap();
    let items = [Item::new(5, Tid::new(1, 6)), Item::new(3, Tid::new(1, 4))];
    assert!(ix.delete_many(&items).is_err());
    assert_eq!(contents(&ix).len(), 100);
}

/// VACUUM's walk (`vacuum_pages`) removes exactly what its callback picks, visits every
/// entry once, and leaves a valid index — also over chains, splits and merged pages.
#[test]
fn vacuum_pages_removes_what_the_callback_picks() {
    for (seed, dup_every) in [(4u64, 0u64), (5, 3)] {
        let (mut ix, mut oracle, _) = build(seed, dup_every, 50_000);
        for round in 0..3u64 {
            let mut asked = 0u64;
            let (kept, removed) = ix
                .vacuum_pages(
                    |k, t| {
                        asked += 1;
                        (k ^ t.block as u64).wrapping_mul(round + 7) % 10 < 6
                    },
                    || {},
                )
                .unwrap();
            let before = oracle.len() as u64;
            oracle.retain(|&(k, t)| (k ^ t.block as u64).wrapping_mul(round + 7) % 10 >= 6);
            assert_eq!(asked, before, "every entry is looked at once");
            assert_eq!(removed, before - oracle.len() as u64);
            assert_eq!(kept, oracle.len() as u64);
            assert_eq!(contents(&ix), oracle);
            ix.verify().unwrap();
            ix.merge_pages(|| {}).unwrap();
            assert_eq!(contents(&ix), oracle);
        }
    }
}
