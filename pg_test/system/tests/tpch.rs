//! TPC-H 22/22 through the OmenDataFusion scan: the eight tables generated
//! by tpchgen-cli (SF 0.01) are loaded both as heap and as omen_columnar
//! tables, with the same btree indexes; every query runs on the heap tables
//! in PostgreSQL's executor and on the columnar tables with
//! `omendb.datafusion = force`, must show OmenDataFusion in EXPLAIN, and
//! must return text-identical rows in the same order. Then rows are
//! deleted, updated and inserted on both sides (deletions, write-store rows)
//! and every query is compared again.

use std::io::Write;
use std::path::{Path, PathBuf};

use omendb_systest::{Cluster, ClusterOptions, Result};
use postgres::{Client, SimpleQueryMessage};

const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

fn tpch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tpch")
}

/// The generated CSV files (made once per machine).
fn data_dir() -> Result<PathBuf> {
    let dir = PathBuf::from(
        std::env::var("OMENDB_TPCH_TEST_DIR")
            .unwrap_or_else(|_| "/var/tmp/omendb-tpch-sf0.01".into()),
    );
    if !dir.join("lineitem.csv").exists() {
        std::fs::create_dir_all(&dir)?;
        let status = std::process::Command::new("tpchgen-cli")
            .args(["csv", "-s", "0.01", "--output-dir"])
            .arg(&dir)
            .status()
            .map_err(|e| {
                format!("tpchgen-cli (pip install tpchgen-cli; scripts/test.sh installs it): {e}")
            })?;
        if !status.success() {
            return Err("tpchgen-cli failed".into());
        }
    }
    Ok(dir)
}

fn rows(c: &mut Client, q: &str) -> std::result::Result<Vec<String>, String> {
    let msgs = c.simple_query(q).map_err(|e| {
        e.as_db_error()
            .map_or(e.to_string(), |d| d.message().to_string())
    })?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("<NULL>"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

fn load(c: &mut Client, suffix: &str, using: &str, data: &Path) -> Result<()> {
    let schema = std::fs::read_to_string(tpch_dir().join("schema.sql"))?;
    c.batch_execute(&schema.replace("{SUFFIX}", suffix).replace("{USING}", using))?;
    for t in TABLES {
        let mut w = c.copy_in(&format!(
            "COPY {t}{suffix} FROM STDIN WITH (FORMAT csv, HEADER true)"
        ))?;
        w.write_all(&std::fs::read(data.join(format!("{t}.csv")))?)?;
        w.finish()?;
    }
    let idx = std::fs::read_to_string(tpch_dir().join("indexes.sql"))?;
    c.batch_execute(&idx.replace("{SUFFIX}", suffix))?;
    Ok(())
}

fn compare_all(c: &mut Client, round: &str) -> Result<()> {
    for i in 1..=22 {
        let q = std::fs::read_to_string(tpch_dir().join(format!("q{i:02}.sql")))?;
        c.batch_execute("SET omendb.datafusion = off")?;
        let want = rows(c, &q.replace("{S}", "_h"))?;
        c.batch_execute("SET omendb.datafusion = force")?;
        let col = q.replace("{S}", "_c");
        let plan = rows(c, &format!("EXPLAIN {col}"))?;
        assert!(
            plan[0].contains("OmenDataFusion"),
            "{round} Q{i}: plan is\n{}",
            plan.join("\n")
        );
        let got = rows(c, &col).map_err(|e| format!("{round} Q{i}: {e}"))?;
        assert_eq!(want, got, "{round} Q{i} differs from heap");
        assert!(
            !want.is_empty() || i == 20,
            "{round} Q{i} returned no rows: the test data is too small"
        );
    }
    Ok(())
}

#[test]
fn tpch_22_queries_match_heap() -> Result<()> {
    let data = data_dir()?;
    let cluster = Cluster::start_new("tpch", &ClusterOptions::default())?;
    let mut c = cluster.connect()?;
    c.batch_execute("CREATE EXTENSION omendb")?;
    load(&mut c, "_h", "", &data)?;
    load(&mut c, "_c", "USING omen_columnar", &data)?;
    c.batch_execute("ANALYZE")?;
    compare_all(&mut c, "loaded")?;
    // Deletions, updates (delete + insert) and single-row inserts, which
    // land in the write store, identically on both sides.
    for s in ["_h", "_c"] {
        c.batch_execute(&format!(
            "DELETE FROM lineitem{s} WHERE l_orderkey % 11 = 3;
             UPDATE lineitem{s} SET l_discount = 0.05 WHERE l_orderkey % 13 = 5;
             INSERT INTO lineitem{s} SELECT l_orderkey, l_partkey, l_suppkey, l_linenumber + 10, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment FROM lineitem{s} WHERE l_orderkey < 40;
             INSERT INTO lineitem{s} VALUES (7, 155, 6, 20, 3, 4500.25, 0.06, 0.01, 'R', 'F', '1994-03-01', '1994-02-01', '1994-03-05', 'DELIVER IN PERSON', 'MAIL', 'one row');
             INSERT INTO orders{s} VALUES (6000001, 7, 'F', 1234.56, '1995-06-01', '1-URGENT', 'Clerk#000000001', 0, 'single row');
             DELETE FROM customer{s} WHERE c_custkey % 17 = 0;"
        ))?;
    }
    c.batch_execute("ANALYZE")?;
    compare_all(&mut c, "after changes")?;
    Ok(())
}
