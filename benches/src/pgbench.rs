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
    tps_mix(dsn, &[(script.to_string(), 1)], &[], clients, seconds)
}

/// As [`tps`], for a mix of scripts each chosen with its weight (pgbench's
/// `-f file@weight`), with `defines` as pgbench variables (`-D name=value`).
pub fn tps_mix(
    dsn: &str,
    scripts: &[(String, u32)],
    defines: &[(&str, String)],
    clients: u32,
    seconds: u32,
) -> Result<f64, String> {
    let mut args: Vec<String> = ["-n", "-M", "prepared", "-c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend([
        clients.to_string(),
        "-j".into(),
        clients.to_string(),
        "-T".into(),
        seconds.to_string(),
    ]);
    let mut files = Vec::new();
    for (i, (script, weight)) in scripts.iter().enumerate() {
        let path =
            std::env::temp_dir().join(format!("omendb-pgbench-{}-{i}.sql", std::process::id()));
        std::fs::write(&path, script).map_err(|e| format!("writing {}: {e}", path.display()))?;
        args.extend(["-f".into(), format!("{}@{weight}", path.display())]);
        files.push(path);
    }
    for (name, value) in defines {
        args.extend(["-D".into(), format!("{name}={value}")]);
    }
    let out = Command::new(PGBENCH)
        .args(&args)
        .args(conn_args(dsn))
        .env("PGOPTIONS", "-c synchronous_commit=off")
        .output()
        .map_err(|e| format!("running {PGBENCH}: {e}"));
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    let out = out?;
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
