//! Disk full: an omen_columnar table and its alex index live in a
//! tablespace on a small tmpfs, next to a heap filler table. Batches (as
//! INSERT … SELECT and as single-row inserts), deletes and compactions run
//! until the disk is full and on; every change is applied in one
//! transaction to the table and to a heap twin in the default tablespace.
//!
//! What must hold: a write that finds the disk full raises an ERROR of
//! class 53 (insufficient resources) and rolls back, nothing else; the
//! server never restarts; after every failure both executors and the alex
//! index return exactly the twin's rows. Once the filler is dropped,
//! writing and compaction work again, VACUUM gives pages back, and the
//! table and index verify.
//!
//! Needs root (it mounts a tmpfs), as the CI runs.

use omendb_systest::{Cluster, ClusterOptions, Result, CRASH_MARKERS};
use postgres::{Client, SimpleQueryMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test's life, owned by postgres.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u32) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={megabytes}m,mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .status()?
            .success();
        if !ok {
            return Err(format!("could not mount a tmpfs at {}", dir.display()).into());
        }
        let fs = Tmpfs(dir.to_path_buf());
        let ok = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir)
            .status()?
            .success();
        if !ok {
            return Err("chown of the tmpfs failed".into());
        }
        Ok(fs)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The one row `sql` returns, as text.
fn text_row(c: &mut Client, sql: &str) -> Result<String> {
    for m in c.simple_query(sql)? {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok((0..r.len())
                .map(|i| r.get(i).unwrap_or("NULL"))
                .collect::<Vec<_>>()
                .join("|"));
        }
    }
    Err(format!("{sql}: no row").into())
}

/// The table's contents read three ways: PostgreSQL's executor, DataFusion,
/// and an alex index scan; each must equal the heap twin's.
fn check_same(c: &mut Client, when: &str) -> Result<()> {
    let q = |t: &str| format!("SELECT count(*), sum(id), max(v) FROM {t}");
    let want = text_row(c, &q("twin"))?;
    for (setting, what) in [
        ("SET omendb.datafusion = off", "the row executor"),
        ("SET omendb.datafusion = force", "DataFusion"),
        (
            "SET omendb.datafusion = off; SET enable_seqscan = off; SET enable_bitmapscan = off",
            "the alex index",
        ),
    ] {
        c.batch_execute(setting)?;
        let sql = if what == "the alex index" {
            q("t WHERE id >= 0")
        } else {
            q("t")
        };
        let got = text_row(c, &sql)?;
        c.batch_execute("RESET ALL")?;
        if got != want {
            return Err(format!("{when}: {what} reads {got}, the heap twin {want}").into());
        }
    }
    Ok(())
}

/// Ok(Some(sqlstate)) for an error of class 53 (the disk is full), an Err
/// for any other.
fn disk_full(what: &str, e: postgres::Error) -> Result<Option<String>> {
    match e.code().map(|c| c.code().to_string()) {
        Some(code) if code.starts_with("53") => Ok(Some(code)),
        _ => Err(format!("{what}: {e}").into()),
    }
}

/// Apply `sql` (with `{T}` for the table) to the table and then the twin in
/// one transaction. Ok(None) when it committed, Ok(Some(sqlstate)) when the
/// disk was full (rolled back: rows inserted by a statement may be written
/// at its end or at commit); any other error fails the test.
fn both(c: &mut Client, sql: &str) -> Result<Option<String>> {
    let mut t = c.transaction()?;
    let r = t
        .batch_execute(&sql.replace("{T}", "t"))
        .and_then(|_| t.batch_execute(&sql.replace("{T}", "twin")));
    match r {
        Ok(()) => t.commit().map(|_| None).or_else(|e| disk_full(sql, e)),
        Err(e) => {
            drop(t);
            disk_full(sql, e)
        }
    }
}

/// One random change; (whether it was a compaction, its outcome).
fn step(c: &mut Client, rng: &mut StdRng, next: &mut i64) -> Result<(bool, Option<String>)> {
    let sql = match rng.gen_range(0..10) {
        0..=4 => {
            let n = rng.gen_range(2_000..20_000);
            let s = format!(
                "INSERT INTO {{T}} SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series({next}, {}) g",
                *next + n - 1
            );
            *next += n;
            s
        }
        5..=6 => {
            let rows: Vec<String> = (0..rng.gen_range(1..40))
                .map(|i| format!("INSERT INTO {{T}} VALUES ({}, 'single {i}')", *next + i))
                .collect();
            *next += 40;
            rows.join("; ")
        }
        7..=8 => {
            let a = rng.gen_range(0..(*next).max(1));
            format!(
                "DELETE FROM {{T}} WHERE id BETWEEN {a} AND {}",
                a + rng.gen_range(0..5_000)
            )
        }
        _ => {
            // Compaction writes new segments before it frees the old ones:
            // on a full disk it fails, and must leave the table as it was.
            let sql = "SELECT * FROM omendb.columnar_compact('t')";
            let r = c.batch_execute(sql).map(|_| None);
            return Ok((true, r.or_else(|e| disk_full(sql, e))?));
        }
    };
    Ok((false, both(c, &sql)?))
}

#[test]
fn a_full_disk_is_an_error_and_loses_nothing() -> Result<()> {
    let cluster = Cluster::start_new(
        "disk-full",
        &ClusterOptions {
            // Full-page checks are not what this test is about, and slow
            // the many failing writes down.
            wal_consistency_checking: false,
            ..Default::default()
        },
    )?;
    let fs = Tmpfs::mount(&cluster.data_dir().with_extension("small"), 32)?;
    let mut c = cluster.connect()?;
    c.batch_execute(&format!(
        "CREATE TABLESPACE small LOCATION '{}'",
        fs.0.display()
    ))?;
    c.batch_execute(
        "CREATE EXTENSION omendb;
         CREATE TABLE filler (x text) TABLESPACE small;
         INSERT INTO filler SELECT repeat('f', 1000) FROM generate_series(1, 14000);
         CREATE TABLE t (id bigint NOT NULL, v text) USING omen_columnar TABLESPACE small;
         CREATE INDEX t_id ON t USING alex (id) TABLESPACE small;
         CREATE TABLE twin (id bigint NOT NULL, v text);",
    )?;
    let pid = cluster.postmaster_pid();
    let mut rng = StdRng::seed_from_u64(0x5EED_D15C);
    let (mut next, mut full, mut done) = (0i64, 0usize, 0usize);
    let mut compactions_refused = 0usize;
    // Fill the disk, and keep writing into the full one.
    for i in 0..400 {
        match step(&mut c, &mut rng, &mut next)? {
            (_, None) => done += 1,
            (compaction, Some(_)) => {
                full += 1;
                compactions_refused += compaction as usize;
                check_same(&mut c, &format!("after failed step {i}"))?;
            }
        }
        if full >= 25 && compactions_refused >= 2 {
            break;
        }
    }
    assert!(
        full >= 10,
        "the disk never filled ({done} steps went through)"
    );
    assert_eq!(cluster.postmaster_pid(), pid, "the postmaster restarted");
    check_same(&mut c, "with the disk full")?;
    // Space back: writes and compaction work again; VACUUM truncates.
    c.batch_execute("DROP TABLE filler")?;
    for i in 0..10 {
        if let (_, Some(code)) = step(&mut c, &mut rng, &mut next)? {
            return Err(format!("step {i} after the filler was dropped: {code}").into());
        }
    }
    c.batch_execute("DELETE FROM t WHERE id % 3 = 0; DELETE FROM twin WHERE id % 3 = 0")?;
    for sql in [
        "SELECT * FROM omendb.columnar_compact('t')",
        "VACUUM t",
        "SELECT * FROM omendb.columnar_compact('t')",
        "VACUUM t",
    ] {
        c.batch_execute(sql)
            .map_err(|e| format!("{sql} with space again: {e}"))?;
    }
    check_same(&mut c, "after the filler was dropped")?;
    let verified: i64 = c
        .query_one("SELECT rows_checked FROM omendb.columnar_verify('t')", &[])?
        .get(0);
    // The index may still hold entries of rolled-back rows (they are
    // never returned); what must hold is that it verifies.
    c.batch_execute("SELECT * FROM omendb.alex_verify('t_id')")?;
    let rows: i64 = c.query_one("SELECT count(*) FROM twin", &[])?.get(0);
    assert!(
        verified >= rows,
        "columnar_verify checked {verified} rows, the twin has {rows}"
    );
    assert_eq!(cluster.postmaster_pid(), pid, "the postmaster restarted");
    drop(c);
    cluster.stop()?;
    cluster.check_log(CRASH_MARKERS)?;
    eprintln!(
        "disk full: {done} steps committed, {full} refused with the disk full ({compactions_refused} compactions), {rows} rows at the end"
    );
    Ok(())
}
