use std::ops::Bound;

use alex::gen::{keys, Dist, Rng};
use alex::{Alex, Direction, MemStore, Options, Tid};

fn tid(i: usize) -> Tid {
    Tid::new((i / 100) as u32, (i % 100) as u16 + 1)
}

#[test]
fn bulk_then_lookup_all_distributions() {
    for d in Dist::ALL {
        let ks = keys(d, 50_000, 7);
        let ix = Alex::bulk_load(
            MemStore::new(),
            Options::default(),
            ks.iter().enumerate().map(|(i, &k)| (k, tid(i))),
        )
        .unwrap();
        let rep = ix.verify().unwrap();
        assert_eq!(rep.keys, 50_000, "{d:?}");
        for (i, &k) in ks.iter().enumerate().step_by(97) {
            assert!(ix.get(k).unwrap().contains(&tid(i)), "{d:?} key {k}");
        }
        let all: Vec<_> = ix
            .range(Bound::Unbounded, Bound::Unbounded, Direction::Forward)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all.len(), 50_000);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let back: Vec<_> = ix
            .range(Bound::Unbounded, Bound::Unbounded, Direction::Backward)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back.len(), 50_000);
        eprintln!("{d:?}: {rep:?} data B/key {:.1}", rep.data_bytes_per_key());
    }
}

#[test]
fn inserts_from_empty() {
    for d in Dist::ALL {
        let ks = keys(d, 30_000, 11);
        let mut ix = Alex::create(MemStore::new(), Options::default()).unwrap();
        for (i, &k) in ks.iter().enumerate() {
            assert!(ix.insert(k, tid(i)).unwrap());
            if i % 5000 == 0 {
                ix.verify().unwrap();
            }
        }
        let rep = ix.verify().unwrap();
        assert_eq!(rep.keys, 30_000);
        for (i, &k) in ks.iter().enumerate().step_by(13) {
            assert!(ix.get(k).unwrap().contains(&tid(i)));
        }
        eprintln!("{d:?}: {rep:?} data B/key {:.1}", rep.data_bytes_per_key());
        let mut r = Rng(3);
        for _ in 0..10_000 {
            let i = r.below(ks.len() as u64) as usize;
            ix.delete(ks[i], tid(i)).unwrap();
        }
        ix.verify().unwrap();
    }
}
