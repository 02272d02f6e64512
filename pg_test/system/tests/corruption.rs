//! Damaged files: with the server stopped, bytes are flipped, pages zeroed,
//! halves of pages overwritten (a torn write) and files cut short, in an
//! omen_columnar table and in alex indexes (on it and on a heap table);
//! then every read path runs: both executors, index point and range scans,
//! the verifiers, VACUUM.
//!
//! - With data checksums (initdb -k), every statement either returns the
//!   undamaged answer or raises XX001 (data corrupted) / XX002 (index
//!   corrupted, as nbtree raises it).
//! - Without them, a flipped value may go unnoticed, as in heap; what must
//!   hold is that no backend crashes: the postmaster never restarts.
//!
//! `OMENDB_CORRUPTION_CASES` sets the damaged variants per target and kind
//! (default 2, the long campaign in the README uses more).

use omendb_systest::{Cluster, ClusterOptions, Result, CRASH_MARKERS};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

const BLCKSZ: u64 = 8192;

/// (settings, statement) pairs: every read path.
const STATEMENTS: &[(&str, &str)] = &[
    (
        "SET omendb.datafusion = off",
        "SELECT count(*), sum(id), count(v), min(v), max(v) FROM c",
    ),
    (
        "SET omendb.datafusion = force",
        "SELECT count(*), sum(id), count(v), min(v), max(v) FROM c",
    ),
    (
        "SET omendb.datafusion = force",
        "SELECT id % 7, count(*), max(v) FROM c WHERE id > 1000 GROUP BY 1 ORDER BY 1",
    ),
    (
        "SET enable_seqscan = off; SET enable_bitmapscan = off",
        "SELECT id, v FROM c WHERE id IN (17, 5000, 77777, 99999, 100123) ORDER BY id",
    ),
    (
        "SET enable_seqscan = off; SET enable_bitmapscan = off",
        "SELECT count(*), sum(id) FROM c WHERE id BETWEEN 20000 AND 30000",
    ),
    (
        "SET enable_seqscan = off; SET enable_bitmapscan = off",
        "SELECT count(*), sum(id) FROM h WHERE id BETWEEN 100 AND 90000",
    ),
    (
        "SET enable_seqscan = off; SET enable_bitmapscan = off",
        "SELECT id, v FROM h WHERE id IN (3, 4242, 88888) ORDER BY id",
    ),
    (
        "",
        "SELECT segments, rows_checked FROM omendb.columnar_verify('c')",
    ),
    ("", "SELECT keys FROM omendb.alex_verify('c_id')"),
    ("", "SELECT keys FROM omendb.alex_verify('h_id')"),
    ("", "VACUUM c"),
    ("", "VACUUM h"),
];

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// One byte XORed with a non-zero value.
    Flip,
    /// A whole page of zeros (PostgreSQL takes it for a new page).
    Zero,
    /// The second half of a page zeroed: a write that stopped midway.
    Torn,
    /// The file cut short.
    Truncate,
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn damage(path: &PathBuf, how: Damage, rng: &mut Rng) -> Result<String> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let blocks = len / BLCKSZ;
    let blk = rng.below(blocks);
    Ok(match how {
        Damage::Flip => {
            let off = blk * BLCKSZ + rng.below(BLCKSZ);
            let mut b = [0u8; 1];
            f.seek(SeekFrom::Start(off))?;
            f.read_exact(&mut b)?;
            b[0] ^= 1 + rng.below(255) as u8;
            f.seek(SeekFrom::Start(off))?;
            f.write_all(&b)?;
            format!("byte {} of block {blk} flipped", off % BLCKSZ)
        }
        Damage::Zero => {
            f.seek(SeekFrom::Start(blk * BLCKSZ))?;
            f.write_all(&[0u8; BLCKSZ as usize])?;
            format!("block {blk} zeroed")
        }
        Damage::Torn => {
            f.seek(SeekFrom::Start(blk * BLCKSZ + BLCKSZ / 2))?;
            f.write_all(&[0u8; (BLCKSZ / 2) as usize])?;
            format!("second half of block {blk} zeroed")
        }
        Damage::Truncate => {
            // At least the metapage: a file cut to nothing reads as an
            // empty table (its storage id, the key of its catalog rows, is
            // on that page), as a heap file cut short reads as fewer rows.
            let keep = 1 + rng.below(blocks - 1);
            f.set_len(keep * BLCKSZ)?;
            format!("cut to {keep} of {blocks} blocks")
        }
    })
}

/// Run every statement; Ok(answers) per statement, or the SQLSTATE.
fn run_all(cluster: &Cluster) -> Result<Vec<std::result::Result<Vec<String>, String>>> {
    let mut out = Vec::new();
    for (settings, sql) in STATEMENTS {
        let mut c = cluster.connect()?;
        if !settings.is_empty() {
            c.batch_execute(settings)?;
        }
        out.push(match c.simple_query(sql) {
            Ok(msgs) => Ok(msgs
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| match r.try_get(i) {
                                Ok(v) => v.unwrap_or("NULL").to_string(),
                                // Damaged text without checksums may not
                                // even be UTF-8 (heap would send it too).
                                Err(_) => "<not UTF-8>".to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) => match e.code() {
                Some(code) => Err(code.code().to_string()),
                // Not a server error: the connection went away.
                None => Err(format!("no SQLSTATE: {e}")),
            },
        });
    }
    Ok(out)
}

fn campaign(checksums: bool) -> Result<()> {
    let name = if checksums {
        "corruption-checksums"
    } else {
        "corruption"
    };
    let opts = ClusterOptions {
        data_checksums: checksums,
        // Redo is not what this test is about, and the damaged pages are
        // never written back by recovery (each case starts from a clean stop).
        wal_consistency_checking: false,
        extra_conf: vec![
            "omendb.datafusion_threads = 2".into(),
            // A statement looping on damaged data fails the test (57014).
            "statement_timeout = '60s'".into(),
        ],
        ..Default::default()
    };
    let cluster = Cluster::start_new(name, &opts)?;
    cluster.sql(
        "CREATE EXTENSION omendb;
         CREATE TABLE c (id bigint NOT NULL, v text) USING omen_columnar;
         INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 60000) g;
         INSERT INTO c SELECT g, repeat(chr(65 + g % 26), g % 50) FROM generate_series(60001, 100000) g;
         CREATE INDEX c_id ON c USING alex (id);
         CREATE TABLE h (id bigint NOT NULL, v text);
         INSERT INTO h SELECT g, 'h' || g FROM generate_series(1, 100000) g;
         CREATE INDEX h_id ON h USING alex (id);
         DELETE FROM c WHERE id % 97 = 0;",
    )?;
    {
        let mut c = cluster.connect()?;
        for i in 0..200i64 {
            c.execute(
                "INSERT INTO c VALUES ($1::bigint, 'single ' || $1::bigint)",
                &[&(100_001 + i)],
            )?;
        }
    }
    // What the statements change (VACUUM removes the deleted rows' index
    // entries) is done before the answers are taken.
    cluster.sql("VACUUM c")?;
    cluster.sql("VACUUM h")?;
    let pristine = run_all(&cluster)?;
    for (i, r) in pristine.iter().enumerate() {
        if let Err(e) = r {
            return Err(format!("{}: fails undamaged: {e}", STATEMENTS[i].1).into());
        }
    }
    let files: Vec<(String, PathBuf)> = ["c", "c_id", "h_id"]
        .iter()
        .map(|rel| -> Result<(String, PathBuf)> {
            let p = cluster.sql(&format!("SELECT pg_relation_filepath('{rel}')"))?;
            Ok((rel.to_string(), cluster.data_dir().join(&p[0])))
        })
        .collect::<Result<_>>()?;
    cluster.stop()?;
    let saved: Vec<Vec<u8>> = files
        .iter()
        .map(|(_, p)| std::fs::read(p))
        .collect::<std::io::Result<_>>()?;
    let cases: u64 = std::env::var("OMENDB_CORRUPTION_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let mut rng = Rng(if checksums {
        0x9E37_79B9_7F4A_7C15
    } else {
        0xD1B5_4A32_D192_ED03
    });
    let (mut tried, mut errored, mut correct) = (0, 0, 0);
    for (fi, (rel, path)) in files.iter().enumerate() {
        for how in [Damage::Flip, Damage::Zero, Damage::Torn, Damage::Truncate] {
            for _ in 0..cases {
                let what = damage(path, how, &mut rng)?;
                cluster.start()?;
                let pid = cluster.postmaster_pid();
                let answers = run_all(&cluster)?;
                let case = format!("{rel}: {what}");
                for (i, a) in answers.iter().enumerate() {
                    let sql = STATEMENTS[i].1;
                    match a {
                        Ok(rows) if checksums && Ok(rows) != pristine[i].as_ref() => {
                            return Err(
                                format!("{case}: {sql} returned wrong rows: {rows:?}").into()
                            )
                        }
                        Err(code) if code.starts_with("no SQLSTATE") => {
                            return Err(
                                format!("{case}: {sql}: {code}\n{}", cluster.log_tail(30)).into()
                            )
                        }
                        Err(code) if checksums && code != "XX001" && code != "XX002" => {
                            return Err(format!(
                                "{case}: {sql} raised {code}, not XX001/XX002\n{}",
                                cluster.log_tail(10)
                            )
                            .into())
                        }
                        Ok(_) => correct += 1,
                        Err(_) => errored += 1,
                    }
                }
                assert_eq!(
                    cluster.postmaster_pid(),
                    pid,
                    "{case}: the postmaster changed"
                );
                cluster.stop()?;
                cluster
                    .check_log(CRASH_MARKERS)
                    .map_err(|e| format!("{case}: {e}"))?;
                std::fs::write(path, &saved[fi])?;
                tried += 1;
            }
        }
    }
    // The damage must have been read: some statements raised errors.
    assert!(
        errored > 0,
        "{name}: no statement noticed any of {tried} damaged files"
    );
    eprintln!(
        "{name}: {tried} damaged files, {} statements: {errored} raised a corruption error, {correct} answered{}",
        errored + correct,
        if checksums { " correctly" } else { "" }
    );
    Ok(())
}

#[test]
fn damaged_pages_raise_corruption_errors_with_checksums() -> Result<()> {
    campaign(true)
}

#[test]
fn damaged_pages_never_crash_the_server_without_checksums() -> Result<()> {
    campaign(false)
}
