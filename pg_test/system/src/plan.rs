//! Queries whose plan a test insists on.

use crate::Result;
use postgres::{Client, Row};

/// Run `q` after checking that its EXPLAIN mentions `expect` (an index
/// name, or a node such as `Index Only Scan using …`): an answer from the
/// wrong plan would prove nothing about the access method under test.
/// The query runs in PostgreSQL's executor (`omendb.datafusion = off`):
/// these tests are about index and table access methods.
pub fn query_with_plan(c: &mut Client, q: &str, expect: &str) -> Result<Vec<Row>> {
    c.batch_execute("SET omendb.datafusion = off")?;
    let rows = checked_query(c, q, expect);
    c.batch_execute("RESET omendb.datafusion")?;
    rows
}

fn checked_query(c: &mut Client, q: &str, expect: &str) -> Result<Vec<Row>> {
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN {q}"), &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains(expect)),
        "expected {expect:?} in the plan of {q}, got {plan:?}"
    );
    Ok(c.query(q, &[])?)
}
