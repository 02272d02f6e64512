//! A streaming standby made with pg_basebackup returns the same rows as the
//! primary after insert, update, delete and vacuum cycles, with
//! wal_consistency_checking = all checking every replayed record (GenericXLog
//! records of alex and omen_columnar, and alex's own VACUUM records,
//! included) on the standby. Run for btree, alex (both also through
//! index-only scans on the standby), and an omen_columnar table (compacted
//! every cycle). alex's in-place inserts are records of omendb's own resource
//! manager: a standby that does not preload omendb stops at the first one
//! with PostgreSQL's message naming it, rather than diverging.

use omendb_systest::{query_with_plan, Cluster, ClusterOptions, Result};
use postgres::Client;
use std::time::Duration;

fn rows(c: &mut Client, index: &str) -> Result<Vec<(i64, String)>> {
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let q = "SELECT id, payload FROM rep_t WHERE id >= 0 ORDER BY id";
    Ok(query_with_plan(c, q, index)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Ids through an index-only scan of `index`.
fn ids_index_only(c: &mut Client, index: &str) -> Result<Vec<i64>> {
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let q = "SELECT id FROM rep_t WHERE id >= 0 ORDER BY id";
    let node = format!("Index Only Scan using {index}");
    Ok(query_with_plan(c, q, &node)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `maintenance` runs after each cycle's VACUUM; with `index_only`, both
/// servers also answer through an index-only scan.
fn replicate(
    name: &str,
    using: &str,
    index_sql: &str,
    index: &str,
    maintenance: &[&str],
    index_only: bool,
) -> Result<()> {
    let primary = Cluster::start_new(name, &ClusterOptions::default())?;
    primary.sql(&format!(
        "CREATE EXTENSION omendb;
         CREATE TABLE rep_t (id bigint NOT NULL, payload text NOT NULL) {using};
         INSERT INTO rep_t SELECT i, md5(i::text) FROM generate_series(0, 999) i;
         {index_sql}"
    ))?;
    let standby = primary.start_standby(&format!("{name}-standby"))?;
    let mut p = primary.connect()?;
    let mut s = standby.connect()?;
    assert!(s
        .query_one("SELECT pg_is_in_recovery()", &[])?
        .get::<_, bool>(0));

    for cycle in 0..3i64 {
        let base = 1000 + cycle * 20_000;
        p.execute("INSERT INTO rep_t SELECT i, md5(i::text) FROM generate_series($1::bigint, $1::bigint + 19999) i", &[&base])?;
        // Random keys too, so inserts land inside pages and split them.
        p.execute("INSERT INTO rep_t SELECT (random() * 1e6)::bigint, 'random' FROM generate_series(1, 5000)", &[])?;
        p.execute(
            "UPDATE rep_t SET payload = 'updated ' || payload WHERE id % 10 = $1",
            &[&cycle],
        )?;
        p.execute("DELETE FROM rep_t WHERE id % 3 = $1", &[&cycle])?;
        p.batch_execute("VACUUM rep_t")?;
        for m in maintenance {
            p.batch_execute(m)?;
        }
        let lsn = primary.current_wal_lsn()?;
        standby.wait_for_replay(lsn, Duration::from_secs(120))?;
        let on_primary = rows(&mut p, index)?;
        let on_standby = rows(&mut s, index)?;
        assert!(!on_primary.is_empty());
        assert_eq!(
            on_primary.len(),
            on_standby.len(),
            "cycle {cycle}: row counts differ"
        );
        assert!(
            on_primary == on_standby,
            "cycle {cycle}: standby rows differ from primary"
        );
        if index_only {
            assert!(
                ids_index_only(&mut p, index)? == ids_index_only(&mut s, index)?,
                "cycle {cycle}: standby index-only scan differs from primary"
            );
        }
        let all = "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM rep_t x";
        let (hp, hs): (String, String) =
            (p.query_one(all, &[])?.get(0), s.query_one(all, &[])?.get(0));
        assert_eq!(hp, hs, "cycle {cycle}: standby table contents differ");
    }
    Ok(())
}

#[test]
fn btree_standby_returns_the_same_rows() -> Result<()> {
    replicate(
        "rep-btree",
        "",
        "CREATE INDEX rep_t_id ON rep_t (id);",
        "rep_t_id",
        &[],
        true,
    )
}

#[test]
fn alex_standby_returns_the_same_rows() -> Result<()> {
    replicate(
        "rep-alex",
        "",
        "CREATE INDEX rep_t_id ON rep_t USING alex (id);",
        "rep_t_id",
        &[],
        true,
    )
}

#[test]
fn columnar_standby_returns_the_same_rows() -> Result<()> {
    replicate(
        "rep-columnar",
        "USING omen_columnar",
        "CREATE INDEX rep_t_id ON rep_t (id); CREATE INDEX rep_t_alex ON rep_t USING alex (id);",
        "rep_t_", // whichever index the planner prefers
        // Compaction rewrites segments and purges deleted rows; pruning the
        // replaced segments' catalog rows lets the next cycle's inserts
        // reuse their pages.
        &[
            "SELECT omendb.columnar_compact('rep_t')",
            "VACUUM omendb.columnar_segment",
        ],
        false,
    )
}

#[test]
fn a_standby_without_omendb_preloaded_stops_at_an_alex_insert_record() -> Result<()> {
    let primary = Cluster::start_new("rep-nopreload", &ClusterOptions::default())?;
    primary.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE rep_t (id bigint NOT NULL);
         INSERT INTO rep_t SELECT generate_series(1, 10000);
         CREATE INDEX rep_t_id ON rep_t USING alex (id);",
    )?;
    let standby = primary.start_standby_with(
        "rep-nopreload-standby",
        &["shared_preload_libraries = ''".to_string()],
    )?;
    // Built pages travel as ordinary full-page records: replayed.
    standby.wait_for_replay(primary.current_wal_lsn()?, Duration::from_secs(60))?;
    // An in-place insert is an omendb_alex record.
    primary.sql("INSERT INTO rep_t VALUES (5000)")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = standby.log_tail(50);
        if log.contains("resource manager with ID 203 not registered") {
            assert!(
                log.contains("shared_preload_libraries"),
                "the refusal should say what to do:\n{log}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby did not refuse the record:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // It stopped rather than going on without the record.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        standby.connect().is_err(),
        "the standby still accepts connections after refusing a record"
    );
    Ok(())
}

/// A row updated again and again under one key: reads and unique checks on
/// the primary remove the entries of its dead versions (omendb_alex
/// ALEX_REMOVE_DEAD records, with their snapshot conflict horizon), so the
/// key keeps a handful of entries instead of one per version; a standby
/// replays the removals (wal_consistency_checking) and answers the same.
#[test]
fn dead_versions_of_a_hot_key_are_removed_on_the_primary_and_replayed() -> Result<()> {
    let primary = Cluster::start_new("rep-hotkey", &ClusterOptions::default())?;
    primary.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE hot (k bigint NOT NULL, n bigint NOT NULL, pad text NOT NULL)
             WITH (autovacuum_enabled = off, fillfactor = 100);
         INSERT INTO hot SELECT g, 0, repeat('p', 900) FROM generate_series(1, 5000) g;
         CREATE UNIQUE INDEX hot_k ON hot USING alex (k);",
    )?;
    let standby = primary.start_standby("rep-hotkey-standby")?;
    let mut p = primary.connect()?;
    p.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let versions = 1500i64;
    for i in 0..versions {
        // Not HOT (the page is full), so each version gets an index entry.
        p.execute("UPDATE hot SET n = n + 1 WHERE k = $1", &[&(1 + i % 3)])?;
        if i % 10 == 0 {
            p.query("SELECT n FROM hot WHERE k = 2", &[])?;
        }
    }
    let entries: i64 = p
        .query_one("SELECT keys FROM omendb.alex_verify('hot_k')", &[])?
        .get(0);
    assert!(
        entries < 5000 + 200,
        "{entries} entries for 5000 rows after {versions} updates of 3 keys: dead versions were not removed"
    );
    let lsn = primary.current_wal_lsn()?;
    standby.wait_for_replay(lsn, Duration::from_secs(120))?;
    let mut s = standby.connect()?;
    s.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")?;
    let q = "SELECT k, n FROM hot WHERE k BETWEEN 1 AND 10 ORDER BY k";
    let on_primary: Vec<(i64, i64)> = query_with_plan(&mut p, q, "hot_k")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let on_standby: Vec<(i64, i64)> = query_with_plan(&mut s, q, "hot_k")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(on_primary, on_standby);
    assert_eq!(on_primary[..3], [(1, 500), (2, 500), (3, 500)]);
    Ok(())
}
