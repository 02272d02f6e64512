//! A client that repeats maintenance statements (compaction, catalog
//! VACUUM) while a workload runs, until asked to stop or the server dies.

use crate::{Cluster, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Background {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<std::result::Result<u64, String>>,
}

impl Background {
    /// Run `statements` in order, over and over, `pause` apart. An error
    /// other than a lost connection (the server was crashed on purpose) or
    /// one whose SQLSTATE is in `allowed` ends the loop and is reported by
    /// [`Background::finish`].
    pub fn start(
        cluster: &Cluster,
        statements: &[&str],
        allowed: &[&str],
        pause: Duration,
    ) -> Result<Background> {
        let mut client = cluster.connect()?;
        let stop = Arc::new(AtomicBool::new(false));
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for s in &statements {
                    if let Err(e) = client.batch_execute(s) {
                        let code = e.code().map(|c| c.code().to_string());
                        match code {
                            // No SQLSTATE: the connection is gone.
                            None => return Ok(rounds),
                            Some(c) if allowed.contains(&c) => {}
                            Some(_) => return Err(format!("{s}: {e:?}")),
                        }
                    }
                }
                rounds += 1;
                std::thread::sleep(pause);
            }
            Ok(rounds)
        });
        Ok(Background { stop, handle })
    }

    /// Stop after the current round; returns the rounds completed.
    pub fn finish(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let rounds = self
            .handle
            .join()
            .map_err(|_| "the background client panicked")??;
        Ok(rounds)
    }
}
