//! Helpers for omendb's system tests: real PostgreSQL 15 clusters run as the
//! `postgres` user, crashed (`pg_ctl stop -m immediate`, `kill -9`) and
//! restarted through recovery, streaming standbys made with `pg_basebackup`,
//! and concurrent clients that keep a ledger of what they committed.
//!
//! Each [`Cluster`] lives in its own directory under `OMENDB_SYSTEST_DIR`
//! (default `/var/tmp/omendb-systest`) on a free loopback port, and is stopped
//! and removed when dropped (set `OMENDB_KEEP_CLUSTERS=1` to keep it for
//! debugging).

mod background;
mod churn;
mod cluster;
mod ledger;
mod plan;
mod process;

pub use background::Background;
pub use churn::delete_and_compact;
pub use cluster::{Cluster, ClusterOptions, Lsn, CRASH_MARKERS};
pub use ledger::{InsertWorkload, Ledger};
pub use plan::query_with_plan;
pub use process::{pg_command, run};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
