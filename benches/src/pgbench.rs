//! Write throughput with pgbench: a custom script against the server named
//! by a libpq-style connection string.

use std::process::Command;

pub const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

/// The `key=value` pairs of a connection string, as pgbench arguments.
fn conn_args(dsn: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut db = None;
    for part in dsn.split_whitespace() {
        match part.split_once('=') {
            Some(("host", v)) => args.extend(["-h".into(), v.into()]),
            Some(("port", v)) => args.extend(["-p".into(), v.into()]),
            Some(("user", v)) => args.extend(["-U".into(), v.into()]),
            Some(("dbname", v)) => db = Some(v.to_string()),
            _ => {}
        }
    }
    args.extend(db);
    args
}

/// Run `script` with `clients` clients for `seconds`; returns transactions
/// per second. Commits do not wait for the WAL flush (synchronous_commit =
/// off), so the number reflects the work of inserting, not fsync latency.
pub fn tps(dsn: &str, script: &str, clients: u32, seconds: u32) -> Result<f64, String> {
    let path = std::env::temp_dir().join(format!("omendb-pgbench-{}.sql", std::process::id()));
    std::fs::write(&path, script).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let out = Command::new(PGBENCH)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.to_string(),
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&path)
        .args(conn_args(dsn))
        .env("PGOPTIONS", "-c synchronous_commit=off")
        .output()
        .map_err(|e| format!("running {PGBENCH}: {e}"))?;
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no tps line in pgbench output: {stdout}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_string_becomes_pgbench_arguments() {
        let a = super::conn_args(
            "host=127.0.0.1 port=5499 user=postgres dbname=demo connect_timeout=5",
        );
        assert_eq!(
            a,
            ["-h", "127.0.0.1", "-p", "5499", "-U", "postgres", "demo"]
        );
    }
}
