//! YCSB core workloads A–F as pgbench scripts, unique btree vs unique alex on
//! the key of one `usertable` each.
//!
//! As in YCSB: ten 100-byte fields; records are numbered and a record's key
//! is a scrambling of its number (YCSB's default `insertorder=hashed`), so
//! hot records and new records land all over the key space; requests choose
//! records with a Zipfian distribution (hottest first), workload D the
//! latest records. The scramble is `n * 2654435761 mod 2^40`, a bijection on
//! record numbers below 2^40 that pgbench and SQL compute alike without
//! overflow.

/// One YCSB workload: its letter, what it does, and pgbench scripts with
/// weights (percent). `$T` is the table, `$S` its insert sequence.
pub struct Workload {
    pub name: &'static str,
    pub what: &'static str,
    pub scripts: &'static [(&'static str, u32)],
}

/// Insert the next record (its number from the table's sequence).
const INSERT: &str =
    "INSERT INTO $T SELECT (n * 2654435761) & 1099511627775, f, f, f, f, f, f, f, f, f, f \
     FROM (SELECT nextval('$S') AS n, repeat('i', 100) AS f) s;\n";

/// Scripts are literals glued together (`concat!` takes no consts); each
/// starts by choosing a record with a Zipfian distribution (pgbench's
/// `random_zipfian` needs s > 1; YCSB's constant is 0.99, close to this)
/// and scrambling its number into its key.
macro_rules! script {
    ($($part:expr),*) => { concat!($($part),*) };
}

const ZIPF_READ: &str = script!(
    "\\set r random_zipfian(0, :records - 1, 1.01)\n\\set k (:r * 2654435761) & 1099511627775\n",
    "SELECT * FROM $T WHERE ycsb_key = :k;\n"
);
const ZIPF_UPDATE: &str = script!(
    "\\set r random_zipfian(0, :records - 1, 1.01)\n\\set k (:r * 2654435761) & 1099511627775\n",
    "\\set v random(0, 25)\nUPDATE $T SET field0 = repeat(chr(97 + :v), 100) WHERE ycsb_key = :k;\n"
);
/// Read the latest records: a Zipfian distance back from the newest one.
const LATEST_READ: &str = "\\set d random_zipfian(0, :records - 1, 1.01)\n\
     SELECT * FROM $T WHERE ycsb_key = (((SELECT last_value FROM $S) - :d) * 2654435761) & 1099511627775;\n";
/// A short scan: up to 100 records from a Zipfian-chosen start key.
const SCAN: &str = script!(
    "\\set r random_zipfian(0, :records - 1, 1.01)\n\\set k (:r * 2654435761) & 1099511627775\n",
    "\\set len random(1, 100)\nSELECT * FROM $T WHERE ycsb_key >= :k ORDER BY ycsb_key LIMIT :len;\n"
);
/// Read a record, then write it back changed, in one transaction.
const READ_MODIFY_WRITE: &str = script!(
    "\\set r random_zipfian(0, :records - 1, 1.01)\n\\set k (:r * 2654435761) & 1099511627775\n",
    "\\set v random(0, 25)\nBEGIN;\nSELECT field0 FROM $T WHERE ycsb_key = :k;\n",
    "UPDATE $T SET field0 = repeat(chr(97 + :v), 100) WHERE ycsb_key = :k;\nEND;\n"
);

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "A",
        what: "update heavy: 50% reads, 50% updates",
        scripts: &[(ZIPF_READ, 50), (ZIPF_UPDATE, 50)],
    },
    Workload {
        name: "B",
        what: "read mostly: 95% reads, 5% updates",
        scripts: &[(ZIPF_READ, 95), (ZIPF_UPDATE, 5)],
    },
    Workload {
        name: "C",
        what: "read only",
        scripts: &[(ZIPF_READ, 100)],
    },
    Workload {
        name: "D",
        what: "read latest: 95% reads of recent records, 5% inserts",
        scripts: &[(LATEST_READ, 95), (INSERT, 5)],
    },
    Workload {
        name: "E",
        what: "short ranges: 95% scans of 1-100 records, 5% inserts",
        scripts: &[(SCAN, 95), (INSERT, 5)],
    },
    Workload {
        name: "F",
        what: "read-modify-write: 50% reads, 50% read-modify-write transactions",
        scripts: &[(ZIPF_READ, 50), (READ_MODIFY_WRITE, 50)],
    },
];

pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name.eq_ignore_ascii_case(name))
}

/// The two variants: (label, table, index method).
pub const VARIANTS: [(&str, &str, &str); 2] = [
    ("btree", "ycsb_btree", "btree"),
    ("alex", "ycsb_alex", "alex"),
];

fn fields(decl: bool) -> String {
    (0..10)
        .map(|i| {
            if decl {
                format!("field{i} text")
            } else {
                format!("field{i}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Load `records` records into the btree table, copy it to the alex table,
/// and give each its unique index and insert sequence.
pub fn setup(records: u64) -> Vec<String> {
    let mut sql = vec![
        "DROP TABLE IF EXISTS ycsb_btree, ycsb_alex".to_string(),
        "DROP SEQUENCE IF EXISTS ycsb_btree_seq, ycsb_alex_seq".to_string(),
        format!(
            "CREATE TABLE ycsb_btree (ycsb_key int8 NOT NULL, {})",
            fields(true)
        ),
        format!(
            "INSERT INTO ycsb_btree SELECT (n * 2654435761) & 1099511627775, {} \
             FROM (SELECT n, rpad(md5(n::text), 100, md5(n::text)) AS f FROM generate_series(0, {}) n) s",
            (0..10).map(|_| "f").collect::<Vec<_>>().join(", "),
            records - 1
        ),
        "CREATE TABLE ycsb_alex AS TABLE ycsb_btree".to_string(),
    ];
    for (_, table, method) in VARIANTS {
        sql.push(format!(
            "CREATE UNIQUE INDEX {table}_key ON {table} USING {method} (ycsb_key)"
        ));
        sql.push(format!("CREATE SEQUENCE {table}_seq START {records}"));
    }
    sql.push("CREATE EXTENSION IF NOT EXISTS pg_prewarm".to_string());
    sql
}

/// Before each workload: both tables vacuumed (the previous workload's dead
/// versions gone, as YCSB runs each workload on a fresh load) and read into
/// shared buffers, so neither variant pays the other's cold cache.
pub fn between_workloads() -> Vec<String> {
    VARIANTS
        .iter()
        .flat_map(|(_, t, _)| {
            [
                format!("VACUUM ANALYZE {t}"),
                format!("SELECT pg_prewarm('{t}'), pg_prewarm('{t}_key')"),
            ]
        })
        .collect()
}

/// Restart the insert sequences (between workloads, so D reads what exists).
pub fn reset_sequences() -> Vec<String> {
    VARIANTS
        .iter()
        .map(|(_, t, _)| format!("SELECT setval('{t}_seq', (SELECT count(*) FROM {t}) - 1)"))
        .collect()
}

/// The workload's scripts for one table, with the record count set.
pub fn scripts(w: &Workload, table: &str) -> Vec<(String, u32)> {
    w.scripts
        .iter()
        .map(|(s, weight)| {
            (
                s.replace("$T", table)
                    .replace("$S", &format!("{table}_seq")),
                *weight,
            )
        })
        .collect()
}

/// Queries whose plans must use the table's key index.
pub fn plan_checks(table: &str) -> Vec<String> {
    vec![
        format!("SELECT * FROM {table} WHERE ycsb_key = 12345"),
        format!("SELECT * FROM {table} WHERE ycsb_key >= 12345 ORDER BY ycsb_key LIMIT 50"),
        format!("UPDATE {table} SET field0 = 'x' WHERE ycsb_key = 12345"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_weighs_100_percent_and_names_its_table() {
        for w in WORKLOADS {
            assert_eq!(
                w.scripts.iter().map(|s| s.1).sum::<u32>(),
                100,
                "{}",
                w.name
            );
            for (s, _) in scripts(w, "ycsb_alex") {
                assert!(!s.contains('$'), "{}: {s}", w.name);
                assert!(s.contains("ycsb_alex"), "{}: {s}", w.name);
            }
        }
        assert_eq!(fields(true).matches("text").count(), 10);
    }

    #[test]
    fn the_key_scramble_is_a_bijection_that_fits_int8() {
        let key = |n: u64| (n * 2654435761) & 1099511627775;
        let mut seen = std::collections::HashSet::new();
        for n in 0..200_000u64 {
            assert!(seen.insert(key(n)));
        }
        // Record numbers stay far below 2^24, so n * 2654435761 < 2^63.
        assert!((1u64 << 24)
            .checked_mul(2654435761)
            .is_some_and(|p| p < i64::MAX as u64));
    }
}
