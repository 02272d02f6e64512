//! Concurrent writers that record what the server acknowledged.
//!
//! Each client inserts batches of rows with ids it owns, one transaction per
//! batch. A batch whose COMMIT returned is *committed* and must survive any
//! crash; a batch the client rolled back on purpose must never be visible; a
//! batch whose COMMIT was in flight when the server died may go either way.

use crate::{Cluster, Result};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Default, Debug)]
pub struct Ledger {
    pub committed: BTreeSet<i64>,
    pub rolled_back: BTreeSet<i64>,
    pub in_doubt: BTreeSet<i64>,
}

impl Ledger {
    pub fn merge(&mut self, other: Ledger) {
        self.committed.extend(other.committed);
        self.rolled_back.extend(other.rolled_back);
        self.in_doubt.extend(other.in_doubt);
    }

    /// Check the ids found after recovery: every committed id is there, no
    /// rolled-back id is, and nothing appears that was never written.
    pub fn check(&self, found: &BTreeSet<i64>) -> Result<()> {
        let lost: Vec<_> = self.committed.difference(found).take(10).collect();
        if !lost.is_empty() {
            return Err(format!(
                "{} committed rows lost, e.g. {lost:?}",
                self.committed.difference(found).count()
            )
            .into());
        }
        let resurrected: Vec<_> = self.rolled_back.intersection(found).take(10).collect();
        if !resurrected.is_empty() {
            return Err(format!("rolled-back rows visible: {resurrected:?}").into());
        }
        let unknown: Vec<_> = found
            .iter()
            .filter(|id| !self.committed.contains(id) && !self.in_doubt.contains(id))
            .take(10)
            .collect();
        if !unknown.is_empty() {
            return Err(format!("rows nobody committed: {unknown:?}").into());
        }
        Ok(())
    }
}

/// `clients` threads inserting into `table (id bigint, payload text)` until
/// stopped or until the server goes away.
pub struct InsertWorkload {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Ledger>>,
}

impl InsertWorkload {
    /// Start the clients. Client `c`'s ids start at `id_base + c * 10^9`, so
    /// successive workloads on one table use distinct `id_base`s.
    pub fn start(
        cluster: &Cluster,
        table: &str,
        clients: usize,
        batch: usize,
        id_base: i64,
    ) -> Result<InsertWorkload> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for c in 0..clients {
            let mut client = cluster.connect()?;
            let stop = stop.clone();
            let table = table.to_string();
            let first = id_base + c as i64 * 1_000_000_000;
            handles.push(std::thread::spawn(move || {
                let mut ledger = Ledger::default();
                let mut next = first;
                let mut n_batch = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<i64> = (next..next + batch as i64).collect();
                    next += batch as i64;
                    n_batch += 1;
                    let roll_back = n_batch % 7 == 0;
                    let outcome = (|| -> std::result::Result<(), postgres::Error> {
                        let mut tx = client.transaction()?;
                        tx.execute(
                            &format!("INSERT INTO {table} (id, payload) SELECT i, md5(i::text) FROM unnest($1::bigint[]) i"),
                            &[&ids],
                        )?;
                        if roll_back {
                            tx.rollback()
                        } else {
                            tx.commit()
                        }
                    })();
                    match (outcome, roll_back) {
                        (Ok(()), false) => ledger.committed.extend(ids),
                        (Ok(()), true) => ledger.rolled_back.extend(ids),
                        (Err(_), true) => ledger.rolled_back.extend(ids),
                        (Err(_), false) => {
                            // The server died (or we were cut off) mid-commit.
                            ledger.in_doubt.extend(ids);
                            break;
                        }
                    }
                }
                ledger
            }));
        }
        Ok(InsertWorkload { stop, handles })
    }

    /// Ask the clients to stop after their current batch, and collect ledgers.
    pub fn finish(self) -> Result<Ledger> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Ledger::default();
        for h in self.handles {
            all.merge(h.join().map_err(|_| "a client thread panicked")?);
        }
        Ok(all)
    }
}
