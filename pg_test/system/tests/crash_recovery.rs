//! Stock PostgreSQL through the crash harness: a heap table with btree
//! indexes keeps every committed row across repeated crashes (immediate stop
//! and kill -9) during concurrent inserts, shows no rolled-back row, and its
//! indexes pass amcheck with heapallindexed after recovery.

use omendb_systest::{Cluster, ClusterOptions, InsertWorkload, Ledger, Result};
use std::collections::BTreeSet;
use std::time::Duration;

fn ids_via_index(cluster: &Cluster) -> Result<BTreeSet<i64>> {
    let mut c = cluster.connect()?;
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let plan: Vec<String> = c
        .query("EXPLAIN SELECT id FROM ledger_t WHERE id >= 0 ORDER BY id", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("Index")), "expected an index scan, got {plan:?}");
    Ok(c.query("SELECT id FROM ledger_t WHERE id >= 0 ORDER BY id", &[])?.iter().map(|r| r.get(0)).collect())
}

fn ids_via_seqscan(cluster: &Cluster) -> Result<BTreeSet<i64>> {
    let mut c = cluster.connect()?;
    c.batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off")?;
    Ok(c.query("SELECT id FROM ledger_t", &[])?.iter().map(|r| r.get(0)).collect())
}

#[test]
fn committed_rows_survive_crashes_during_concurrent_inserts() -> Result<()> {
    let cluster = Cluster::start_new("crash", &ClusterOptions::default())?;
    cluster.sql(
        "CREATE EXTENSION amcheck;
         CREATE TABLE ledger_t (id bigint NOT NULL, payload text NOT NULL);
         CREATE INDEX ledger_t_id ON ledger_t (id);
         CREATE INDEX ledger_t_payload ON ledger_t (payload);",
    )?;

    let mut ledger = Ledger::default();
    for round in 0..4i64 {
        let work = InsertWorkload::start(&cluster, "ledger_t", 4, 50, round * 10_000_000_000)?;
        std::thread::sleep(Duration::from_millis(1500));
        if round % 2 == 0 {
            cluster.kill9()?;
        } else {
            cluster.stop_immediate()?;
        }
        let round_ledger = work.finish()?;
        assert!(round_ledger.committed.len() >= 100, "round {round}: too few commits to mean anything ({})", round_ledger.committed.len());
        ledger.merge(round_ledger);

        cluster.start()?;
        let by_index = ids_via_index(&cluster)?;
        let by_heap = ids_via_seqscan(&cluster)?;
        assert_eq!(by_index, by_heap, "round {round}: index and heap disagree after recovery");
        ledger.check(&by_heap).map_err(|e| format!("round {round}: {e}"))?;
        for idx in ["ledger_t_id", "ledger_t_payload"] {
            cluster.sql(&format!("SELECT bt_index_check('{idx}', true)"))?;
        }
    }
    eprintln!(
        "crash test: {} committed, {} rolled back, {} in doubt",
        ledger.committed.len(),
        ledger.rolled_back.len(),
        ledger.in_doubt.len()
    );
    Ok(())
}
