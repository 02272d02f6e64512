//! Segment churn under readers: deletes from an omen_columnar table and its
//! heap twin in one transaction, then a compaction of the columnar one, so
//! its segments are replaced (new ids, freed pages reused) while readers
//! compare the two.

use crate::Result;
use postgres::Client;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rounds of `DELETE … WHERE id % 101 = round` on `columnar` and `heap`
/// and `omendb.columnar_compact(columnar)`, one every `pause`, until `limit`
/// has passed or one of `workers` has ended (it failed: the caller joins
/// it). Returns the rounds run.
pub fn delete_and_compact<T>(
    client: &mut Client,
    columnar: &str,
    heap: &str,
    limit: Duration,
    pause: Duration,
    workers: &[JoinHandle<T>],
) -> Result<u32> {
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < limit && !workers.iter().any(|h| h.is_finished()) {
        round += 1;
        client.batch_execute(&format!(
            "BEGIN;
             DELETE FROM {columnar} WHERE id % 101 = {round};
             DELETE FROM {heap} WHERE id % 101 = {round};
             COMMIT;
             SELECT omendb.columnar_compact('{columnar}');"
        ))?;
        std::thread::sleep(pause);
    }
    Ok(round)
}
