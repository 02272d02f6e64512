//! A harness that runs SQL workloads against a live server, several runs
//! each, and reports medians and A/B ratios side by side.
//!
//! A [`Workload`] has setup SQL and two or more [`Variant`]s that answer the
//! same question different ways (btree vs alex, heap vs omen_columnar). The
//! first variant is the baseline; every other variant's ratio is its median
//! divided by the baseline's median (below 1.0 = faster than the baseline).
//! Variants run interleaved within each run so drift in the machine's state
//! affects them alike.

use postgres::{Client, NoTls};
use std::time::{Duration, Instant};

pub mod alex_vs_btree;
pub mod columnar_vs_heap;
pub mod pgbench;
pub mod plot;
pub mod scan_cache;
pub mod streaming;
pub mod tpch;
pub mod workloads;
pub mod ycsb;

pub struct Variant {
    pub label: String,
    /// SQL run once per connection before timing (SETs, prepared statements).
    pub session_sql: String,
    /// The timed statement.
    pub query: String,
    /// EXPLAIN of the query must mention this (e.g. the index name), so a
    /// variant cannot silently measure a different plan.
    pub plan_contains: Option<String>,
}

pub struct Workload {
    pub name: String,
    /// Statements run one by one (so VACUUM and CREATE INDEX CONCURRENTLY work).
    pub setup_sql: Vec<String>,
    pub variants: Vec<Variant>,
    /// A query whose single text result must be equal for all variants, so
    /// a fast wrong answer cannot win.
    pub check_sql: Option<Vec<String>>,
    /// Facts reported under the timings (e.g. index sizes): label, SQL
    /// returning one text value.
    pub facts: Vec<(String, String)>,
}

pub struct VariantResult {
    pub label: String,
    pub samples: Vec<Duration>,
}

impl VariantResult {
    pub fn median(&self) -> Duration {
        median(&self.samples)
    }
}

pub fn median(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    match s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

pub struct Report {
    pub workload: String,
    pub results: Vec<VariantResult>,
    pub facts: Vec<(String, String)>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server's own message, not just "db error".
fn describe(e: postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()).into(),
        None => e.to_string().into(),
    }
}

/// Set up `w`, then run each variant `runs` times (after one warm-up run).
pub fn run(dsn: &str, w: &Workload, runs: usize) -> Result<Report, Error> {
    let mut setup = Client::connect(dsn, NoTls)?;
    for stmt in &w.setup_sql {
        setup
            .batch_execute(stmt)
            .map_err(|e| format!("setup `{stmt}`: {}", describe(e)))?;
    }
    if let Some(checks) = &w.check_sql {
        let answers: Vec<String> = checks
            .iter()
            .map(|q| {
                setup
                    .query_one(q.as_str(), &[])
                    .map(|r| r.get::<_, String>(0))
            })
            .collect::<Result<_, _>>()
            .map_err(describe)?;
        if answers.windows(2).any(|p| p[0] != p[1]) {
            return Err(format!("{}: variants disagree: {answers:?}", w.name).into());
        }
    }
    let mut sessions = Vec::new();
    for v in &w.variants {
        let mut c = Client::connect(dsn, NoTls)?;
        c.batch_execute(&v.session_sql).map_err(describe)?;
        if let Some(want) = &v.plan_contains {
            let plan: Vec<String> = c
                .query(&format!("EXPLAIN {}", v.query), &[])
                .map_err(describe)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !plan.iter().any(|l| l.contains(want.as_str())) {
                return Err(format!(
                    "{} / {}: plan does not use {want}:\n{}",
                    w.name,
                    v.label,
                    plan.join("\n")
                )
                .into());
            }
        }
        c.batch_execute(&v.query).map_err(describe)?; // warm-up: caches, plans
        sessions.push(c);
    }
    let mut results: Vec<VariantResult> = w
        .variants
        .iter()
        .map(|v| VariantResult {
            label: v.label.clone(),
            samples: Vec::new(),
        })
        .collect();
    for _ in 0..runs {
        for (i, v) in w.variants.iter().enumerate() {
            let t = Instant::now();
            sessions[i].batch_execute(&v.query).map_err(describe)?;
            results[i].samples.push(t.elapsed());
        }
    }
    let mut facts = Vec::new();
    for (label, sql) in &w.facts {
        let value = setup
            .query_one(sql.as_str(), &[])
            .map_err(describe)?
            .get::<_, String>(0);
        facts.push((label.clone(), value));
    }
    Ok(Report {
        workload: w.name.clone(),
        results,
        facts,
    })
}

impl Report {
    /// Median of the last variant over the first (alex over btree).
    pub fn ratio(&self) -> f64 {
        match (self.results.first(), self.results.last()) {
            (Some(a), Some(b)) if !a.median().is_zero() => {
                b.median().as_secs_f64() / a.median().as_secs_f64()
            }
            _ => f64::NAN,
        }
    }

    /// A markdown table: variant, median, min, max, ratio to the baseline.
    pub fn markdown(&self) -> String {
        let base = self.results.first().map(|r| r.median()).unwrap_or_default();
        let mut out = format!(
            "### {}\n\n| variant | median ms | min ms | max ms | runs | ratio vs {} |\n|---|---:|---:|---:|---:|---:|\n",
            self.workload,
            self.results.first().map(|r| r.label.as_str()).unwrap_or("-")
        );
        for r in &self.results {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let min = r.samples.iter().min().copied().unwrap_or_default();
            let max = r.samples.iter().max().copied().unwrap_or_default();
            let ratio = if base.is_zero() {
                f64::NAN
            } else {
                r.median().as_secs_f64() / base.as_secs_f64()
            };
            out += &format!(
                "| {} | {:.3} | {:.3} | {:.3} | {} | {:.2} |\n",
                r.label,
                ms(r.median()),
                ms(min),
                ms(max),
                r.samples.len(),
                ratio
            );
        }
        for (label, value) in &self.facts {
            out += &format!("\n{label}: {value}");
        }
        if !self.facts.is_empty() {
            out += "\n";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_sample_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(
            median(&[ms(4), ms(1), ms(3), ms(2)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn ratio_is_relative_to_the_first_variant() {
        let ms = Duration::from_millis;
        let r = Report {
            workload: "w".into(),
            results: vec![
                VariantResult {
                    label: "base".into(),
                    samples: vec![ms(10), ms(10), ms(10)],
                },
                VariantResult {
                    label: "fast".into(),
                    samples: vec![ms(5), ms(5), ms(6)],
                },
            ],
            facts: vec![("size".into(), "1 MB".into())],
        };
        let md = r.markdown();
        assert!(md.contains("| base | 10.000 |"), "{md}");
        assert!(md.contains("| 0.50 |"), "{md}");
        assert!(md.contains("size: 1 MB"), "{md}");
    }
}
