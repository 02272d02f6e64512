//! Stock PostgreSQL through the replica harness: a streaming standby made
//! with pg_basebackup returns the same rows as the primary after insert,
//! update, delete and vacuum cycles, with wal_consistency_checking = all
//! checking every replayed record on the standby.

use omendb_systest::{Cluster, ClusterOptions, Result};
use postgres::Client;
use std::time::Duration;

fn rows(c: &mut Client) -> Result<Vec<(i64, String)>> {
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    Ok(c
        .query("SELECT id, payload FROM rep_t WHERE id >= 0 ORDER BY id", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

#[test]
fn standby_returns_the_same_rows_as_the_primary() -> Result<()> {
    let primary = Cluster::start_new("primary", &ClusterOptions::default())?;
    primary.sql(
        "CREATE TABLE rep_t (id bigint PRIMARY KEY, payload text NOT NULL);
         INSERT INTO rep_t SELECT i, md5(i::text) FROM generate_series(0, 999) i;",
    )?;
    let standby = primary.start_standby("standby")?;
    let mut p = primary.connect()?;
    let mut s = standby.connect()?;
    assert_eq!(s.query_one("SELECT pg_is_in_recovery()", &[])?.get::<_, bool>(0), true);

    for cycle in 0..3i64 {
        let base = 1000 + cycle * 20_000;
        p.execute("INSERT INTO rep_t SELECT i, md5(i::text) FROM generate_series($1::bigint, $1::bigint + 19999) i", &[&base])?;
        p.execute("UPDATE rep_t SET payload = 'updated ' || payload WHERE id % 10 = $1", &[&cycle])?;
        p.execute("DELETE FROM rep_t WHERE id % 3 = $1", &[&cycle])?;
        p.batch_execute("VACUUM rep_t")?;
        let lsn = primary.current_wal_lsn()?;
        standby.wait_for_replay(lsn, Duration::from_secs(120))?;
        let on_primary = rows(&mut p)?;
        let on_standby = rows(&mut s)?;
        assert!(!on_primary.is_empty());
        assert_eq!(on_primary.len(), on_standby.len(), "cycle {cycle}: row counts differ");
        assert!(on_primary == on_standby, "cycle {cycle}: standby rows differ from primary");
    }
    Ok(())
}
