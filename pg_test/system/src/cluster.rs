//! A PostgreSQL 15 cluster owned by the `postgres` user, for system tests.

use crate::process::{alive, children_of, exists, make_postgres_dir, pg_command, run, sigkill};
use crate::Result;
use postgres::{Client, NoTls};
use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A WAL position, as `pg_current_wal_lsn()` prints it (`16/B374D848`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(s: &str) -> Result<Lsn> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("not an LSN: {s:?}"))?;
        let hi = u64::from_str_radix(hi, 16)?;
        let lo = u64::from_str_radix(lo, 16)?;
        Ok(Lsn((hi << 32) | lo))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// What a server log says when a backend crashed or the server panicked.
pub const CRASH_MARKERS: &[&str] = &["terminated by signal", "PANIC"];

/// How to configure a new cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Load omendb in every process (`shared_preload_libraries`).
    pub preload_omendb: bool,
    /// Every WAL record's redo is checked against a full-page image.
    pub wal_consistency_checking: bool,
    /// omendb's background compaction (off unless a test asks for it, so
    /// tests that count segments see only their own compactions).
    pub autocompact: bool,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
    /// initdb --data-checksums: PostgreSQL verifies every page it reads.
    pub data_checksums: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            preload_omendb: true,
            wal_consistency_checking: true,
            autocompact: false,
            extra_conf: Vec::new(),
            data_checksums: false,
        }
    }
}

pub struct Cluster {
    name: String,
    data_dir: PathBuf,
    port: u16,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn base_dir() -> PathBuf {
    std::env::var_os("OMENDB_SYSTEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/omendb-systest"))
}

fn free_port() -> Result<u16> {
    // The OS picks an unused port; the tiny race with other programs is
    // acceptable for tests, and `start` reports a clash clearly.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn unique_dir(name: &str) -> Result<PathBuf> {
    let base = base_dir();
    make_postgres_dir(&base)?;
    let dir = base.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}

impl Cluster {
    /// initdb a new cluster and start it.
    pub fn start_new(name: &str, opts: &ClusterOptions) -> Result<Cluster> {
        let data_dir = unique_dir(name)?;
        make_postgres_dir(&data_dir)?;
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(&data_dir).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        if opts.data_checksums {
            initdb.arg("--data-checksums");
        }
        run(initdb)?;
        let cluster = Cluster {
            name: name.to_string(),
            data_dir,
            port: free_port()?,
        };
        cluster.write_conf(opts)?;
        cluster.start()?;
        Ok(cluster)
    }

    fn write_conf(&self, opts: &ClusterOptions) -> Result<()> {
        let mut conf = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".into(),
            format!("unix_socket_directories = '{}'", self.data_dir.display()),
            "fsync = on".into(),
            "max_connections = 50".into(),
            "shared_buffers = '128MB'".into(),
            "log_min_messages = warning".into(),
            "wal_keep_size = '256MB'".into(),
        ];
        if opts.preload_omendb {
            conf.push("shared_preload_libraries = 'omendb'".into());
            conf.push(format!("omendb.autocompact = {}", opts.autocompact));
        }
        if opts.wal_consistency_checking {
            conf.push("wal_consistency_checking = 'all'".into());
        }
        conf.extend(opts.extra_conf.iter().cloned());
        self.append_conf(&conf)
    }

    /// Append lines to postgresql.conf (later lines win).
    pub fn append_conf(&self, lines: &[String]) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))?;
        writeln!(f, "\n# omendb system test")?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// The end of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error, with the log's tail, if the server log contains any of
    /// `bad` (see [`CRASH_MARKERS`]).
    pub fn check_log(&self, bad: &[&str]) -> Result<()> {
        let log = std::fs::read_to_string(self.log_path())?;
        match bad.iter().find(|b| log.contains(**b)) {
            Some(b) => Err(format!(
                "{}: server log has {b:?}:\n{}",
                self.name,
                self.log_tail(60)
            )
            .into()),
            None => Ok(()),
        }
    }

    /// Start (running crash recovery if the last stop was a crash) and wait
    /// until the server accepts connections.
    pub fn start(&self) -> Result<()> {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "120", "start"]);
        run(c).map_err(|e| {
            format!(
                "{}: start failed: {e}\nserver log:\n{}",
                self.name,
                self.log_tail(30)
            )
        })?;
        Ok(())
    }

    /// Clean shutdown (checkpoint first).
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Crash-like shutdown: no checkpoint, recovery replays WAL on start.
    pub fn stop_immediate(&self) -> Result<()> {
        self.pg_ctl_stop("immediate")
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "120", "-m", mode, "stop"]);
        run(c)?;
        Ok(())
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// `kill -9` the postmaster and then every child, as a power loss would
    /// end them all at once, and wait until they are gone.
    pub fn kill9(&self) -> Result<()> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| format!("{}: no postmaster.pid", self.name))?;
        let children = children_of(pid);
        sigkill(pid);
        for &c in &children {
            sigkill(c);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) || children.iter().any(|&c| alive(c)) {
            if Instant::now() > deadline {
                return Err(format!("{}: processes survived kill -9", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The killed postmaster lingers as a zombie until its parent (here,
        // whatever init the machine runs) reaps it, and PostgreSQL's lock-file
        // check, kill(pid, 0), cannot tell a zombie from a live postmaster. A
        // rebooted machine has no such process, so after a grace period we
        // remove the stale lock file as the reboot would have made it moot.
        let grace = Instant::now() + Duration::from_secs(5);
        while exists(pid) && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
        if exists(pid) {
            std::fs::remove_file(self.data_dir.join("postmaster.pid"))?;
        }
        Ok(())
    }

    pub fn conn_string(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} connect_timeout=10",
            self.port
        )
    }

    pub fn connect(&self) -> Result<Client> {
        self.connect_db("postgres")
    }

    pub fn connect_db(&self, db: &str) -> Result<Client> {
        Ok(Client::connect(&self.conn_string(db), NoTls)?)
    }

    /// Run SQL (one or more statements) and return the first column of the
    /// last statement's rows as text.
    pub fn sql(&self, sql: &str) -> Result<Vec<String>> {
        let mut client = self.connect()?;
        let mut rows = Vec::new();
        let messages = client
            .simple_query(sql)
            .map_err(|e| match e.as_db_error() {
                Some(db) => format!(
                    "{}: {}{}",
                    db.severity(),
                    db.message(),
                    db.hint()
                        .map(|h| format!(" (hint: {h})"))
                        .unwrap_or_default()
                ),
                None => e.to_string(),
            })?;
        for msg in messages {
            match msg {
                postgres::SimpleQueryMessage::Row(r) => {
                    rows.push(r.get(0).unwrap_or("").to_string())
                }
                postgres::SimpleQueryMessage::CommandComplete(_) => {}
                _ => {}
            }
        }
        Ok(rows)
    }

    pub fn current_wal_lsn(&self) -> Result<Lsn> {
        let row = self
            .connect()?
            .query_one("SELECT pg_current_wal_lsn()::text", &[])?;
        Lsn::parse(row.get::<_, &str>(0))
    }

    /// A streaming standby of this cluster: `pg_basebackup -R`, then start.
    pub fn start_standby(&self, name: &str) -> Result<Cluster> {
        self.start_standby_with(name, &[])
    }

    /// A streaming standby with `extra_conf` lines after the copied settings.
    pub fn start_standby_with(&self, name: &str, extra_conf: &[String]) -> Result<Cluster> {
        let data_dir = unique_dir(name)?;
        make_postgres_dir(&data_dir)?;
        // A physical slot keeps the primary from removing WAL the standby has
        // not received: under crash rounds with wal_consistency_checking the
        // standby can fall further behind than wal_keep_size.
        let slot: String = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let mut bb = pg_command("pg_basebackup");
        bb.arg("-D").arg(&data_dir).args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            &slot,
        ]);
        run(bb)?;
        let standby = Cluster {
            name: name.to_string(),
            data_dir,
            port: free_port()?,
        };
        // The copied postgresql.conf names the primary's port and socket dir.
        // Tests read the standby after replay caught up; a query must not be
        // cancelled because replay removes row versions it might need.
        standby.append_conf(&[
            format!("port = {}", standby.port),
            format!("unix_socket_directories = '{}'", standby.data_dir.display()),
            "max_standby_streaming_delay = -1".to_string(),
        ])?;
        standby.append_conf(extra_conf)?;
        std::fs::remove_file(standby.log_path()).ok();
        standby.start()?;
        Ok(standby)
    }

    /// Wait until this standby has replayed WAL up to `lsn`.
    pub fn wait_for_replay(&self, lsn: Lsn, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut client = self.connect()?;
        loop {
            let row = client.query_one("SELECT pg_last_wal_replay_lsn()::text", &[])?;
            let replayed: Option<&str> = row.get(0);
            if let Some(r) = replayed {
                if Lsn::parse(r)? >= lsn {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: replay did not reach {lsn} in {timeout:?} (at {replayed:?})\n{}",
                    self.name,
                    self.log_tail(20)
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.postmaster_pid().is_some_and(alive) {
            let _ = self.stop_immediate();
        }
        if std::env::var_os("OMENDB_KEEP_CLUSTERS").is_none() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
