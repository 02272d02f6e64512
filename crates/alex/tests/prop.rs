//! Random operation sequences checked against a BTreeSet<(key, tid)> oracle, with `verify`
//! after every batch, on several key distributions.

use std::collections::BTreeSet;
use std::ops::Bound;

use alex::gen::{keys, Dist};
use alex::{Alex, Direction, Key, MemStore, Options, Tid};
use proptest::prelude::*;

const POOL: usize = 6000;

fn pool(dist: usize, seed: u64) -> Vec<u64> {
    match dist {
        0..=4 => {
            let d = Dist::ALL[dist];
            keys(d, POOL, seed)
        }
        5 => {
            // i64 and f64 extremes plus neighbours, mixed with a few ordinary keys.
            let mut v: Vec<u64> = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX]
                .iter()
                .map(|k| k.to_ordered_u64())
                .collect();
            v.extend(
                [
                    f64::NEG_INFINITY,
                    f64::MIN,
                    -0.0,
                    0.0,
                    f64::MIN_POSITIVE,
                    f64::MAX,
                    f64::INFINITY,
                    f64::NAN,
                    -f64::NAN,
                ]
                .iter()
                .map(|k| k.to_ordered_u64()),
            );
            v.extend([0u64, 1, u64::MAX - 1, u64::MAX]);
            let extra = keys(Dist::Uniform, POOL - v.len(), seed);
            v.extend(extra);
            v
        }
        _ => keys(Dist::Duplicates, POOL, seed)
            .into_iter()
            .map(|k| k % 7)
            .collect(), // very heavy duplicates
    }
}

fn tid(t: u32) -> Tid {
    Tid::new(t % 97, (t % 13) as u16)
}

#[derive(Clone, Debug)]
enum Op {
    /// Insert pool[i..i+n] with tids from t.
    InsertRun(usize, usize, u32),
    Insert(usize, u32),
    /// Delete every present entry of pool[i..i+n].
    DeleteRun(usize, usize),
    Delete(usize, u32),
    Get(usize),
    Range(usize, usize, u8, bool),
    Verify,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..POOL, 1..1500usize, any::<u32>()).prop_map(|(i, n, t)| Op::InsertRun(i, n, t)),
        6 => (0..POOL, any::<u32>()).prop_map(|(i, t)| Op::Insert(i, t)),
        2 => (0..POOL, 1..800usize).prop_map(|(i, n)| Op::DeleteRun(i, n)),
        3 => (0..POOL, any::<u32>()).prop_map(|(i, t)| Op::Delete(i, t)),
        4 => (0..POOL).prop_map(Op::Get),
        4 => (0..POOL, 0..POOL, 0..9u8, any::<bool>()).prop_map(|(a, b, f, back)| Op::Range(a, b, f, back)),
        1 => Just(Op::Verify),
    ]
}

fn bound(k: u64, f: u8) -> Bound<u64> {
    match f % 3 {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    }
}

fn run(
    dist: usize,
    seed: u64,
    bulk: usize,
    ops: Vec<Op>,
    opts: Options,
) -> Result<(), TestCaseError> {
    let pool = pool(dist, seed);
    let mut oracle: BTreeSet<(u64, Tid)> = BTreeSet::new();
    let init: Vec<(u64, Tid)> = pool
        .iter()
        .take(bulk)
        .enumerate()
        .map(|(i, &k)| (k, tid(i as u32)))
        .collect();
    oracle.extend(init.iter().copied());
    let mut ix = Alex::bulk_load(MemStore::new(), opts, init)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    ix.verify()
        .map_err(|e| TestCaseError::fail(format!("after bulk: {e}")))?;
    let v = |ix: &Alex<MemStore>,
             oracle: &BTreeSet<(u64, Tid)>,
             what: &str|
     -> Result<(), TestCaseError> {
        let r = ix
            .verify()
            .map_err(|e| TestCaseError::fail(format!("verify after {what}: {e}")))?;
        prop_assert_eq!(r.keys, oracle.len() as u64);
        Ok(())
    };
    for op in ops {
        match op {
            Op::InsertRun(i, n, t) => {
                for (j, &k) in pool.iter().cycle().skip(i).take(n).enumerate() {
                    let tt = tid(t.wrapping_add(j as u32));
                    let fresh = oracle.insert((k, tt));
                    prop_assert_eq!(ix.insert(k, tt).unwrap(), fresh);
                }
                v(&ix, &oracle, "insert run")?;
            }
            Op::Insert(i, t) => {
                let fresh = oracle.insert((pool[i], tid(t)));
                prop_assert_eq!(ix.insert(pool[i], tid(t)).unwrap(), fresh);
            }
            Op::DeleteRun(i, n) => {
                for &k in pool.iter().cycle().skip(i).take(n) {
                    let tids: Vec<Tid> = oracle
                        .range((k, Tid::MIN)..=(k, Tid::MAX))
                        .map(|x| x.1)
                        .collect();
                    for t in tids {
                        oracle.remove(&(k, t));
                        prop_assert!(ix.delete(k, t).unwrap());
                    }
                }
                v(&ix, &oracle, "delete run")?;
            }
            Op::Delete(i, t) => {
                let had = oracle.remove(&(pool[i], tid(t)));
                prop_assert_eq!(ix.delete(pool[i], tid(t)).unwrap(), had);
            }
            Op::Get(i) => {
                let k = pool[i];
                let want: Vec<Tid> = oracle
                    .range((k, Tid::MIN)..=(k, Tid::MAX))
                    .map(|x| x.1)
                    .collect();
                prop_assert_eq!(ix.get(k).unwrap(), want);
            }
            Op::Range(a, b, f, back) => {
                let (lo, hi) = (
                    bound(pool[a].min(pool[b]), f),
                    bound(pool[a].max(pool[b]), f / 3),
                );
                let key_in = |k: u64| {
                    (match lo {
                        Bound::Included(x) => k >= x,
                        Bound::Excluded(x) => k > x,
                        Bound::Unbounded => true,
                    }) && (match hi {
                        Bound::Included(x) => k <= x,
                        Bound::Excluded(x) => k < x,
                        Bound::Unbounded => true,
                    })
                };
                let mut want: Vec<(u64, Tid)> =
                    oracle.iter().copied().filter(|x| key_in(x.0)).collect();
                let dir = if back {
                    want.reverse();
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let got: Vec<(u64, Tid)> = ix.range(lo, hi, dir).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(got, want, "range {:?}..{:?} {:?}", lo, hi, dir);
            }
            Op::Verify => v(&ix, &oracle, "ops")?,
        }
    }
    v(&ix, &oracle, "end")
}

fn cases() -> u32 {
    if cfg!(debug_assertions) {
        6
    } else {
        40
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn oracle_all_distributions(dist in 0..7usize, seed in any::<u64>(), bulk in 0..POOL, ops in prop::collection::vec(op(), 1..60)) {
        run(dist, seed, bulk, ops, Options::default())?;
    }

    #[test]
    fn oracle_tight_pages_no_residuals(dist in 0..7usize, seed in any::<u64>(), bulk in 0..POOL, ops in prop::collection::vec(op(), 1..40)) {
        // Full pages at build and 8-byte keys: every insert path splits early.
        let o = Options { fill: 0.95, max_density: 0.96, residual_keys: false, exact_count: false, ..Options::default() };
        run(dist, seed, bulk, ops, o)?;
    }
}
