//! Fuzz-style: random and mutated pages must give `Err`, never a panic or a hang.

use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};

use alex::data_node::DataNode;
use alex::gen::{keys, Dist, Rng};
use alex::meta::Meta;
use alex::model_node::ModelNode;
use alex::page::{self, PAGE_SIZE};
use alex::{Alex, Direction, MemStore, Options, PageStore, Tid};

fn decode_all(p: &[u8; PAGE_SIZE]) {
    let _ = page::check(p, 7);
    let _ = Meta::decode(p);
    let _ = ModelNode::decode(p, 7);
    if let Ok(n) = DataNode::decode(p, 7) {
        let _ = alex::data_node::check_contents(&n, p, 7);
        let _ = n.entries(p);
        let _ = n.find(p, alex::Item::new(12345, Tid::MIN));
    }
}

#[test]
fn random_pages_never_panic() {
    let mut r = Rng(77);
    let iters = if cfg!(debug_assertions) {
        3_000
    } else {
        30_000
    };
    for i in 0..iters {
        let mut p = [0u8; PAGE_SIZE];
        for b in p.iter_mut() {
            *b = r.next_u64() as u8;
        }
        if i % 2 == 0 {
            // Valid-looking header so decoding gets past the first checks.
            page::init(&mut p.clone(), page::Kind::Data, 100, 200);
            p[PAGE_SIZE - 2..].copy_from_slice(&page::PAGE_MAGIC.to_le_bytes());
            p[page::SPECIAL_OFF] = 1 + (r.below(3) as u8);
            p[page::SPECIAL_OFF + 1] = page::FORMAT_VERSION;
            p[16..18].copy_from_slice(&(page::SPECIAL_OFF as u16).to_le_bytes());
            p[18..20].copy_from_slice(&(8192u16 | 4).to_le_bytes());
        }
        decode_all(&p);
    }
}

#[test]
fn mutated_index_pages_never_panic() {
    let ks = keys(Dist::Lognormal, 20_000, 3);
    let mut ix = Alex::bulk_load(
        MemStore::new(),
        Options::default(),
        ks.iter().take(10_000).map(|&k| (k, Tid::new(1, 1))),
    )
    .unwrap();
    for &k in &ks[10_000..] {
        ix.insert(k, Tid::new(2, 2)).unwrap();
    }
    ix.verify().unwrap();
    let base = ix.into_store();
    let mut r = Rng(99);
    let iters = if cfg!(debug_assertions) { 150 } else { 1500 };
    let mut detected = 0;
    for _ in 0..iters {
        let mut s = base.clone();
        let blk = r.below(s.nblocks() as u64) as u32;
        let p = s.page_mut(blk).unwrap();
        for _ in 0..1 + r.below(8) {
            let off = r.below(PAGE_SIZE as u64) as usize;
            p[off] = match r.below(3) {
                0 => r.next_u64() as u8,
                1 => p[off] ^ (1 << r.below(8)),
                _ => 0xff,
            };
        }
        decode_all(p);
        let res = catch_unwind(AssertUnwindSafe(|| {
            let Ok(mut ix) = Alex::open(s) else {
                return true;
            };
            let bad = ix.verify().is_err();
            for &k in ks.iter().step_by(1999) {
                let _ = ix.get(k);
                let _ = ix
                    .range(Bound::Included(k), Bound::Unbounded, Direction::Forward)
                    .take(300)
                    .count();
                let _ = ix
                    .range(Bound::Unbounded, Bound::Excluded(k), Direction::Backward)
                    .take(300)
                    .count();
                let _ = ix.insert(k ^ 0x5555, Tid::new(3, 3));
                let _ = ix.delete(k, Tid::new(1, 1));
            }
            bad
        }));
        match res {
            Ok(bad) => detected += bad as usize,
            Err(_) => panic!("panic on a corrupted page at block {blk}"),
        }
    }
    assert!(
        detected > iters / 4,
        "verify detected only {detected} of {iters} corruptions"
    );
}
