//! Running PostgreSQL's programs as the `postgres` user, and finding and
//! killing a postmaster's children.

use crate::Result;
use std::path::Path;
use std::process::{Command, Output};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command for PostgreSQL program `prog`, run as `postgres` when we are root.
pub fn pg_command(prog: &str) -> Command {
    let path = format!("{PG_BIN}/{prog}");
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

/// Run to completion; an error carries the command line, stdout and stderr.
pub fn run(mut cmd: Command) -> Result<Output> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

/// Create `dir` (and parents) and give it to the postgres user, with the
/// 0700 mode PostgreSQL demands of a data directory.
pub fn make_postgres_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if running_as_root() {
        let mut c = Command::new("chown");
        c.arg("postgres:postgres").arg(dir);
        run(c)?;
    }
    Ok(())
}

/// Direct children of `pid`, read from /proc.
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..." where comm may contain spaces or parens.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// True while `pid` runs. A zombie counts as dead: its resources are gone.
pub fn alive(pid: i32) -> bool {
    exists(pid) && !is_zombie(pid)
}

/// True while the pid exists at all, zombie or not (what kill(pid, 0) sees).
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .is_some_and(|stat| {
            stat.rfind(')')
                .and_then(|i| stat.get(i + 2..i + 3))
                .is_some_and(|s| s == "Z" || s == "X")
        })
}

pub fn sigkill(pid: i32) {
    // SAFETY: plain kill(2); a vanished pid is harmless.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
