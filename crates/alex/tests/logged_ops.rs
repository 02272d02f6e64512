//! In-place inserts logged as `PageOp`s replay exactly: a store that, like the PostgreSQL
//! binding, applies each op to the page and "logs" it, and a replica that redoes every
//! logged op on its own copy of the page from before, must end with identical bytes.

use std::collections::HashMap;

use alex::gen::{keys, Dist};
use alex::page::{Page, PAGE_SIZE};
use alex::{
    Alex, Applied, ApplyLock, MemStore, Options, PageOp, PageStore, Result, Tid, WriteGroup,
};

/// MemStore whose `apply` keeps a log of (block, page before, op, page after).
struct LoggingStore {
    mem: MemStore,
    log: Vec<(u32, Box<Page>, PageOp, Box<Page>)>,
}

impl PageStore for LoggingStore {
    fn nblocks(&self) -> u32 {
        self.mem.nblocks()
    }
    fn read(&self, blk: u32, f: &mut dyn FnMut(&Page)) -> Result<()> {
        self.mem.read(blk, f)
    }
    fn atomic(&mut self, f: &mut dyn FnMut(&mut dyn WriteGroup) -> Result<()>) -> Result<()> {
        self.mem.atomic(f)
    }
    fn apply(
        &mut self,
        blk: u32,
        _lock: ApplyLock,
        decide: &mut dyn FnMut(&Page) -> Result<Option<PageOp>>,
    ) -> Result<Applied> {
        let mut logged = None;
        let applied = alex::store::apply_in_group(&mut self.mem, blk, &mut |p| {
            let op = decide(p)?;
            if let Some(op) = &op {
                logged = Some((Box::new(*p), op.clone()));
            }
            Ok(op)
        })?;
        if let Some((before, op)) = logged {
            let after = Box::new(*self.mem.page(blk).expect("applied page exists"));
            self.log.push((blk, before, op, after));
        }
        Ok(applied)
    }
}

#[test]
fn logged_inserts_replay_to_identical_pages() {
    let opts = Options {
        exact_count: false,
        ..Options::default()
    };
    for dist in [
        Dist::Uniform,
        Dist::Sequential,
        Dist::Lognormal,
        Dist::Duplicates,
    ] {
        let all = keys(dist, 50_000, 7);
        let init: Vec<(u64, Tid)> = all[..20_000]
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, Tid::new(i as u32, 1)))
            .collect();
        let store = Alex::bulk_load(MemStore::new(), opts, init)
            .unwrap()
            .into_store();
        let mut ix = Alex::open(LoggingStore {
            mem: store,
            log: Vec::new(),
        })
        .unwrap();
        for (i, &k) in all[20_000..].iter().enumerate() {
            ix.insert(k, Tid::new(100_000 + i as u32, 2)).unwrap();
        }
        ix.verify().unwrap();
        // Remove every 7th entry (and one that is not there) as logged ops.
        let mut gone: Vec<alex::Item> = all[..20_000]
            .iter()
            .enumerate()
            .step_by(7)
            .map(|(i, &k)| alex::Item::new(k, Tid::new(i as u32, 1)))
            .collect();
        gone.push(alex::Item::new(all[1], Tid::new(99_999_999, 9)));
        gone.sort_unstable();
        gone.dedup();
        // The judge sees only entries on the page, and keeps back one of each page's.
        let mut kept = Vec::new();
        let removed = ix
            .remove_entries(&gone, &mut |_, present| {
                assert!(!present.is_empty());
                kept.push(present[0]);
                (present[1..].to_vec(), 77)
            })
            .unwrap();
        assert_eq!(removed as usize, gone.len() - 1 - kept.len(), "{dist:?}");
        gone.retain(|it| !kept.contains(it));
        let r = ix.verify().unwrap();
        assert_eq!(r.keys, 50_000 - removed, "{dist:?}");
        for it in &kept {
            assert!(
                ix.get(it.key).unwrap().contains(&it.tid),
                "{dist:?}: kept {it:?} gone"
            );
        }
        for it in gone.iter().step_by(13) {
            assert!(
                !ix.get(it.key).unwrap().contains(&it.tid),
                "{dist:?}: {it:?} still there"
            );
        }
        let log = std::mem::take(&mut ix.store_mut().log);
        let inserts = log
            .iter()
            .filter(|l| matches!(l.2, PageOp::Insert { .. }))
            .count();
        assert!(
            inserts > 20_000,
            "{dist:?}: only {inserts} of 30000 inserts were logged ops"
        );
        assert!(
            log.iter()
                .any(|l| matches!(l.2, PageOp::Remove { conflict: 77, .. })),
            "{dist:?}: no removal was logged"
        );
        // Replay each op on a copy of the page from before it (the decode of its encoding,
        // as redo does); the result must be the page the writer produced.
        let mut redone: HashMap<u32, usize> = HashMap::new();
        for (blk, before, op, after) in &log {
            let op2 = PageOp::decode(&op.encode(), *blk).unwrap();
            let mut page: Box<Page> = before.clone();
            op2.apply(&mut page, *blk).unwrap();
            assert!(
                page[..] == after[..],
                "{dist:?}: redo of {op:?} on block {blk} differs"
            );
            // Applying twice is refused (the slot is taken, or the entries are gone), never
            // a second change.
            let again = page.clone();
            assert!(op2.apply(&mut page, *blk).is_err());
            assert!(page[..] == again[..]);
            *redone.entry(*blk).or_default() += 1;
        }
        assert!(
            redone.len() > 10,
            "{dist:?}: ops touched only {} pages",
            redone.len()
        );
    }
}

#[test]
fn an_op_on_a_page_that_is_not_a_data_page_is_an_error() {
    let zero = [0u8; PAGE_SIZE];
    let op = PageOp::Insert {
        item: alex::Item::new(5, Tid::new(1, 1)),
        at: alex::data_node::InPlace::InRun { a: 0, q: 0 },
    };
    let mut p = zero;
    assert!(op.apply(&mut p, 3).is_err());
    assert!(p[..] == zero[..]);
}
