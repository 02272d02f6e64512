//! Crashes during concurrent inserts: every committed row survives, no
//! rolled-back row appears, the indexes pass their checkers after
//! recovery, and a streaming standby that followed through every crash
//! returns the same rows by sequential and index scan. Run for stock btree (proving the harness), for alex, whose
//! concurrent inserts force page splits while VACUUM merges emptied pages and
//! the server is killed, and for
//! omen_columnar, compacted (and purged of deleted padding rows) throughout.

use omendb_systest::{
    query_with_plan, Background, Cluster, ClusterOptions, InsertWorkload, Ledger, Result,
};
use std::collections::BTreeSet;
use std::time::Duration;

fn ids_via_index(cluster: &Cluster, index: &str) -> Result<BTreeSet<i64>> {
    let mut c = cluster.connect()?;
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let q = "SELECT id FROM ledger_t WHERE id >= 0 ORDER BY id";
    Ok(query_with_plan(&mut c, q, index)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn ids_via_seqscan(cluster: &Cluster) -> Result<BTreeSet<i64>> {
    let mut c = cluster.connect()?;
    c.batch_execute(
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
    )?;
    Ok(c.query("SELECT id FROM ledger_t WHERE id >= 0", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What runs beside the inserting clients until the crash.
struct Maintenance<'a> {
    statements: &'a [&'a str],
    /// SQLSTATEs the statements may end with, besides a crash's.
    allowed: &'a [&'a str],
}

/// Rounds of: concurrent inserts (and `maintenance`), crash (kill -9 or
/// immediate stop), recovery, and checks; four, or `OMENDB_CRASH_ROUNDS`
/// (the long campaign the README describes). `setup` creates ledger_t's indexes
/// (and may add rows with negative ids, which the ledger ignores); `check`
/// runs the index checker after recovery.
fn crash_rounds(
    name: &str,
    using: &str,
    batch: usize,
    setup: &str,
    index: &str,
    check: &[&str],
    maintenance: Option<Maintenance>,
) -> Result<()> {
    let cluster = Cluster::start_new(name, &ClusterOptions::default())?;
    cluster.sql(&format!(
        "CREATE EXTENSION amcheck; CREATE EXTENSION omendb;
         CREATE TABLE ledger_t (id bigint NOT NULL, payload text NOT NULL) {using}; {setup}"
    ))?;
    // A streaming standby follows through every crash; after each recovery
    // it must have replayed to the primary's position and hold its rows.
    let standby = cluster.start_standby(&format!("{name}-standby"))?;
    let mut ledger = Ledger::default();
    let rounds: i64 = std::env::var("OMENDB_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    for round in 0..rounds {
        let work = InsertWorkload::start(&cluster, "ledger_t", 4, batch, round * 10_000_000_000)?;
        let background = match &maintenance {
            // Errors a crash or shutdown sends to the client are expected.
            Some(m) => Some(Background::start(
                &cluster,
                m.statements,
                &[&["57P01", "57P02", "57P03"], m.allowed].concat(),
                Duration::from_millis(20),
            )?),
            None => None,
        };
        std::thread::sleep(Duration::from_millis(1500));
        if round % 2 == 0 {
            cluster.kill9()?;
        } else {
            cluster.stop_immediate()?;
        }
        let round_ledger = work.finish()?;
        if let Some(b) = background {
            let rounds = b.finish().map_err(|e| format!("round {round}: {e}"))?;
            eprintln!("{name} round {round}: {rounds} maintenance rounds");
        }
        assert!(
            round_ledger.committed.len() >= 100,
            "round {round}: too few commits to mean anything ({})",
            round_ledger.committed.len()
        );
        ledger.merge(round_ledger);

        cluster.start()?;
        let by_index = ids_via_index(&cluster, index)?;
        let by_heap = ids_via_seqscan(&cluster)?;
        assert_eq!(
            by_index.len(),
            by_heap.len(),
            "round {round}: index and heap disagree after recovery"
        );
        assert!(
            by_index == by_heap,
            "round {round}: index and heap disagree after recovery"
        );
        ledger
            .check(&by_heap)
            .map_err(|e| format!("round {round}: {e}"))?;
        for sql in check {
            cluster
                .sql(sql)
                .map_err(|e| format!("round {round}: {sql}: {e}"))?;
        }
        standby.wait_for_replay(cluster.current_wal_lsn()?, Duration::from_secs(300))?;
        let on_standby = ids_via_seqscan(&standby)?;
        assert!(
            on_standby == by_heap,
            "round {round}: the standby has {} rows, the primary {}",
            on_standby.len(),
            by_heap.len()
        );
        assert!(
            ids_via_index(&standby, index)? == by_heap,
            "round {round}: the standby's index scan differs from the primary"
        );
    }
    eprintln!(
        "{name}: {rounds} crashes, {} committed, {} rolled back, {} in doubt",
        ledger.committed.len(),
        ledger.rolled_back.len(),
        ledger.in_doubt.len()
    );
    Ok(())
}

#[test]
fn btree_keeps_committed_rows_across_crashes() -> Result<()> {
    crash_rounds(
        "crash-btree",
        "",
        50,
        "CREATE INDEX ledger_t_id ON ledger_t (id); CREATE INDEX ledger_t_payload ON ledger_t (payload);",
        "ledger_t_id",
        &["SELECT bt_index_check('ledger_t_id', true)", "SELECT bt_index_check('ledger_t_payload', true)"],
        None,
    )
}

#[test]
fn alex_keeps_committed_rows_across_crashes() -> Result<()> {
    crash_rounds(
        "crash-alex",
        "",
        50,
        "CREATE INDEX ledger_t_id ON ledger_t USING alex (id);
         INSERT INTO ledger_t SELECT -i, 'padding' FROM generate_series(1, 60000) i;",
        "ledger_t_id",
        &["SELECT * FROM omendb.alex_verify('ledger_t_id')"],
        // Deleting the lowest padding rows empties pages that VACUUM merges
        // while the inserts split pages and reuse the freed ones.
        Some(Maintenance {
            statements: &[
                "DELETE FROM ledger_t WHERE id < 0 AND id < (SELECT min(id) FROM ledger_t) + 1500",
                "VACUUM ledger_t",
            ],
            allowed: &[],
        }),
    )
}

#[test]
fn unique_alex_keeps_committed_rows_and_no_duplicates_across_crashes() -> Result<()> {
    crash_rounds(
        "crash-alex-unique",
        "",
        50,
        "CREATE UNIQUE INDEX ledger_t_id ON ledger_t USING alex (id);
         INSERT INTO ledger_t SELECT -i, 'padding' FROM generate_series(1, 60000) i;",
        "ledger_t_id",
        &[
            "SELECT * FROM omendb.alex_verify('ledger_t_id')",
            // Division by zero if a key is there twice.
            "SELECT 1 / (count(*) = count(DISTINCT id))::int FROM ledger_t",
        ],
        // Beside the inserts (which split pages), a client keeps inserting
        // committed keys again (refused, or skipped by ON CONFLICT; never
        // keys a client may still insert) and empties pages for VACUUM.
        Some(Maintenance {
            statements: &[
                "INSERT INTO ledger_t SELECT max(id), 'dup' FROM ledger_t",
                "INSERT INTO ledger_t SELECT id, 'dup' FROM ledger_t WHERE id >= 0 ORDER BY id DESC LIMIT 20 ON CONFLICT (id) DO NOTHING",
                "DELETE FROM ledger_t WHERE id < 0 AND id < (SELECT min(id) FROM ledger_t) + 1500",
                "VACUUM ledger_t",
            ],
            allowed: &["23505"],
        }),
    )
}

#[test]
fn columnar_keeps_committed_rows_across_crashes() -> Result<()> {
    // Batches of 50 rows go to the write store; of 2000 to Parquet segments.
    for (name, batch) in [("crash-columnar-ws", 50), ("crash-columnar-parquet", 2000)] {
        crash_rounds(
            name,
            "USING omen_columnar",
            batch,
            "CREATE INDEX ledger_t_id ON ledger_t (id);
             INSERT INTO ledger_t SELECT -i, 'padding' FROM generate_series(1, 20000) i;",
            "ledger_t_id",
            &[
                "SELECT * FROM omendb.columnar_verify('ledger_t')",
                "SELECT bt_index_check('ledger_t_id', true)",
            ],
            // Deletes of padding rows give compaction rows to purge; the
            // catalog VACUUM lets segments reuse freed pages; compaction
            // reclaims the pages of batches the crashes cut off, and the
            // table's VACUUM truncates free pages when it gets the lock.
            Some(Maintenance {
                statements: &[
                    "DELETE FROM ledger_t WHERE id < 0 AND id < (SELECT min(id) FROM ledger_t) + 500",
                    "VACUUM ledger_t",
                    "SELECT omendb.columnar_compact('ledger_t')",
                    "VACUUM omendb.columnar_segment, omendb.columnar_deleted",
                ],
                allowed: &[],
            }),
        )?;
    }
    Ok(())
}
