//! MariaDB 10.11 instances in the DB namespace, per LAB-NOTES: `mariadb-install-db`, then
//! `mariadbd --no-defaults` under `ip netns exec`, reached by the `mariadb` client as root over
//! the Unix socket.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::{kill_child, run, run_ok, tail, wait_until, STEP};

pub const PRIMARYD_USER: &str = "primaryd";
/// Test-only secret; primaryd reads it from the lab's password file.
pub const PRIMARYD_PASSWORD: &str = "pd-lab-check-pw";
pub const REPL_USER: &str = "repl";
pub const REPL_PASSWORD: &str = "pd-lab-repl-pw";

#[derive(Debug, Clone, Copy)]
pub struct MariaDbOpts {
    /// TCP port inside the DB namespace (the socket is what primaryd uses).
    pub port: u16,
    pub server_id: u32,
    /// `--read-only=1` on the command line, at every (re)start.
    pub read_only: bool,
    /// Start it now; otherwise only the data dir is made and the test calls `start()`.
    pub start: bool,
}

impl MariaDbOpts {
    /// The server primaryd checks: port 3306, server-id 1, writable, started.
    pub fn primary() -> MariaDbOpts {
        MariaDbOpts {
            port: 3306,
            server_id: 1,
            read_only: false,
            start: true,
        }
    }

    /// A second server in the same namespace, to replicate from: port 3307, server-id 2.
    pub fn source() -> MariaDbOpts {
        MariaDbOpts {
            port: 3307,
            server_id: 2,
            ..MariaDbOpts::primary()
        }
    }
}

impl Default for MariaDbOpts {
    fn default() -> Self {
        MariaDbOpts::primary()
    }
}

pub struct MariaDb {
    pub name: String,
    pub ns: String,
    /// Owned by mysql: data dir, socket, pid file and error log live here.
    pub dir: PathBuf,
    pub datadir: PathBuf,
    pub socket: PathBuf,
    pub opts: MariaDbOpts,
    child: Mutex<Option<Child>>,
    users_created: AtomicBool,
}

impl MariaDb {
    pub(super) fn install(lab_dir: &Path, ns: &str, name: &str, opts: MariaDbOpts) -> MariaDb {
        let dir = lab_dir.join(name);
        // Its own tmpdir: concurrent bootstraps sharing /tmp fail on each other's temporary
        // tables ("Unknown table 'mysql.tmp_user_sys'") when tests run in parallel.
        let tmpdir = dir.join("tmp");
        fs::create_dir_all(&tmpdir).unwrap();
        run_ok(Command::new("chown").args(["-R", "mysql:mysql"]).arg(&dir));
        let datadir = dir.join("data");
        // --no-defaults first: the packaged my.cnf must not leak into the lab's servers.
        let out = run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]));
        assert!(
            out.status.success(),
            "mariadb-install-db for {name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        MariaDb {
            name: name.to_string(),
            ns: ns.to_string(),
            socket: dir.join("mysqld.sock"),
            datadir,
            dir,
            opts,
            child: Mutex::new(None),
            users_created: AtomicBool::new(false),
        }
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    pub fn port(&self) -> u16 {
        self.opts.port
    }

    /// PID of the running mariadbd.
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.child.lock().unwrap();
        let child = guard.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Starts mariadbd on the same data dir (first start or restart after `kill9`) and waits
    /// until it answers; creates the users on first start.
    #[track_caller]
    pub fn start(&self) {
        {
            let mut guard = self.child.lock().unwrap();
            if let Some(child) = guard.as_mut() {
                assert!(
                    !matches!(child.try_wait(), Ok(None)),
                    "MariaDB {} is already running",
                    self.name
                );
            }
            let out = fs::File::create(self.dir.join("stdout.log")).unwrap();
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns,
                    "/usr/sbin/mariadbd",
                    "--no-defaults",
                ])
                .arg("--user=mysql")
                .arg(format!("--datadir={}", self.datadir.display()))
                .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
                .arg(format!("--socket={}", self.socket.display()))
                .arg(format!("--port={}", self.opts.port))
                // Dual-stack: clients of the service address come over IPv4 and IPv6.
                .arg("--bind-address=0.0.0.0,::")
                .arg(format!(
                    "--pid-file={}",
                    self.dir.join("mysqld.pid").display()
                ))
                .arg(format!("--log-error={}", self.error_log().display()))
                .arg("--skip-name-resolve")
                .arg(format!("--server-id={}", self.opts.server_id))
                .arg("--log-bin=mysql-bin")
                .arg(format!("--read-only={}", u8::from(self.opts.read_only)))
                // Per-user traffic counters: evidence that primaryd is really checking.
                .arg("--userstat=1")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                // Own process group: a Ctrl-C at the terminal is for cargo, not the server.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn mariadbd {}: {e}", self.name));
            *guard = Some(child);
        }
        self.wait_ready(STEP);
        if !self.users_created.swap(true, Ordering::SeqCst) {
            self.create_users();
        }
    }

    /// Waits until the server answers `SELECT 1` over its socket.
    #[track_caller]
    pub fn wait_ready(&self, within: Duration) -> Duration {
        wait_until(within, &format!("MariaDB {} answers", self.name), || {
            assert!(
                self.is_running(),
                "mariadbd {} exited during start-up:\n{}",
                self.name,
                tail(&self.error_log(), 40)
            );
            self.socket.exists() && self.try_sql("SELECT 1").is_ok()
        })
    }

    fn create_users(&self) {
        // Not binlogged: a replica of this server must not replay them (its own users exist).
        let mut stmts = vec!["SET sql_log_bin=0".to_string()];
        for host in ["localhost", "127.0.0.1"] {
            stmts.push(format!(
                "CREATE USER '{PRIMARYD_USER}'@'{host}' IDENTIFIED BY '{PRIMARYD_PASSWORD}'"
            ));
            // MariaDB 10.5+ needs SLAVE MONITOR for SHOW ALL SLAVES STATUS.
            stmts.push(format!(
                "GRANT SLAVE MONITOR ON *.* TO '{PRIMARYD_USER}'@'{host}'"
            ));
        }
        stmts.push(format!(
            "CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}'"
        ));
        stmts.push(format!(
            "GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1'"
        ));
        self.sql(&stmts.join("; "));
    }

    /// Runs SQL as root over the socket; Err carries the client's message.
    pub fn try_sql(&self, stmt: &str) -> Result<String, String> {
        let out = run(Command::new("mariadb")
            .args(["--no-defaults", "--protocol=socket", "--batch"])
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--connect-timeout=5", "-e", stmt]));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Runs SQL as root and returns the client's batch output (tab-separated, header first).
    #[track_caller]
    pub fn sql(&self, stmt: &str) -> String {
        self.try_sql(stmt)
            .unwrap_or_else(|e| panic!("MariaDB {}: {stmt:?} failed: {e}", self.name))
    }

    /// Rows of a query as column -> value (NULL reads as "NULL").
    #[track_caller]
    pub fn query(&self, stmt: &str) -> Vec<BTreeMap<String, String>> {
        let text = self.sql(stmt);
        let mut lines = text.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let cols: Vec<&str> = header.split('\t').collect();
        lines
            .map(|l| {
                cols.iter()
                    .zip(l.split('\t'))
                    .map(|(c, v)| (c.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    #[track_caller]
    pub fn set_read_only(&self, on: bool) {
        self.sql(&format!("SET GLOBAL read_only={}", u8::from(on)));
    }

    #[track_caller]
    pub fn read_only(&self) -> bool {
        self.sql("SELECT @@global.read_only").lines().nth(1) == Some("1")
    }

    /// SIGKILLs mariadbd (connections see EOF at once, as when it crashes) and reaps it.
    #[track_caller]
    pub fn kill9(&self) {
        let mut guard = self.child.lock().unwrap();
        let child = guard
            .as_mut()
            .unwrap_or_else(|| panic!("MariaDB {} was never started", self.name));
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "MariaDB {} is not running",
            self.name
        );
        kill_child(child);
    }

    /// Stops it for good (lab teardown).
    pub(super) fn kill(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = guard.as_mut() {
            kill_child(child);
        }
    }

    /// Makes this server a GTID replica of `source` (in the same namespace, over 127.0.0.1)
    /// and waits until both replication threads run.
    #[track_caller]
    pub fn replicate_from(&self, source: &MariaDb) {
        self.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
             MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE",
            source.port()
        ));
        wait_until(
            STEP,
            &format!(
                "{} replicates from {} (Slave_IO_Running and Slave_SQL_Running: Yes)",
                self.name, source.name
            ),
            || self.replication_threads() == [("Yes".to_string(), "Yes".to_string())],
        );
    }

    /// (Slave_IO_Running, Slave_SQL_Running) per channel of `SHOW ALL SLAVES STATUS`.
    #[track_caller]
    pub fn replication_threads(&self) -> Vec<(String, String)> {
        self.query("SHOW ALL SLAVES STATUS")
            .into_iter()
            .map(|r| {
                (
                    r.get("Slave_IO_Running").cloned().unwrap_or_default(),
                    r.get("Slave_SQL_Running").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// `STOP SLAVE; RESET SLAVE ALL`: what a promotion does.
    #[track_caller]
    pub fn stop_replication(&self) {
        self.sql("STOP SLAVE; RESET SLAVE ALL");
        assert_eq!(self.replication_threads(), []);
    }

    /// Bytes the `primaryd` user has sent this server since it started (userstat counters;
    /// live, and counting every command whatever it is: SELECT, SHOW, ping, a new login).
    /// It grows while primaryd checks: evidence that a quiet ToR is not a stalled daemon.
    #[track_caller]
    pub fn primaryd_bytes_received(&self) -> u64 {
        self.query(&format!(
            "SELECT BYTES_RECEIVED AS n FROM information_schema.USER_STATISTICS \
             WHERE USER = '{PRIMARYD_USER}'"
        ))
        .first()
        .and_then(|r| r.get("n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
    }

    /// Connections of the `primaryd` user open now.
    #[track_caller]
    pub fn primaryd_connections(&self) -> u64 {
        self.sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{PRIMARYD_USER}'"
        ))
        .lines()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
    }
}

/// The promotion term table (issue 11), as docs/health.md gives it.
impl MariaDb {
    /// The check user's name and password (what primaryd's password file holds).
    pub fn check_credentials(&self) -> (&'static str, &'static str) {
        (PRIMARYD_USER, PRIMARYD_PASSWORD)
    }

    /// Creates the term table with the documented SQL and grants the check user what the
    /// docs say (SELECT, INSERT). Binlogged: a replica of this server gets both.
    #[track_caller]
    pub fn create_term_table(&self) {
        self.sql(primaryd::health::facts::TERM_TABLE_SQL);
        self.grant_check_user("SELECT, INSERT ON primaryd.term");
    }

    /// `GRANT {what} TO` the check user, for both hosts it connects from.
    #[track_caller]
    pub fn grant_check_user(&self, what: &str) {
        for host in ["localhost", "127.0.0.1"] {
            self.sql(&format!("GRANT {what} TO '{PRIMARYD_USER}'@'{host}'"));
        }
    }

    /// The service's rows of `primaryd.term`, oldest first: (term, server_id).
    #[track_caller]
    pub fn term_rows(&self, service: &str) -> Vec<(u64, u32)> {
        self.query(&format!(
            "SELECT term, server_id FROM primaryd.term WHERE service = '{service}' ORDER BY term"
        ))
        .iter()
        .map(|r| (r["term"].parse().unwrap(), r["server_id"].parse().unwrap()))
        .collect()
    }

    /// Status `Uptime`, in seconds.
    #[track_caller]
    /// Waits (bounded) until the server has been up `secs` seconds, so that a restart is
    /// told from a start time read a second apart (primaryd allows 2 s).
    pub fn wait_uptime(&self, secs: u64) {
        super::wait_until(super::STEP, &format!("{} up {secs} s", self.name), || {
            self.uptime() >= secs
        });
    }

    pub fn uptime(&self) -> u64 {
        self.query("SHOW GLOBAL STATUS LIKE 'Uptime'")
            .first()
            .and_then(|r| r.get("Value"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("MariaDB {}: no Uptime", self.name))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}
