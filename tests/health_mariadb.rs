//! The health probe and task against real MariaDB servers (10.11 here), each a private
//! `mariadbd` on 127.0.0.1 with a free port and a unix socket in its own temp dir, so these
//! tests run in parallel with anything else. They need root (mariadbd drops to user mysql)
//! and `mariadb-install-db`/`mariadbd` on the PATH or in /usr/sbin; without them they are
//! skipped with a message, never silently passed on a developer machine that has them.
//!
//! Every server is killed and every temp dir removed by [`Server`]'s `Drop`, on every exit
//! path including a failed assertion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use primaryd::config::{MysqlConfig, MysqlEndpoint};
use primaryd::health::checker::Health;
use primaryd::health::mysql::{FailureKind, Flavour, MysqlProbe, ProbeResult};
use primaryd::health::task::{self, HealthEvent};
use tokio::sync::mpsc;

const CHECK_USER: &str = "primaryd";
const CHECK_PASS: &str = "s3cret-check";

/// One private mariadbd. Dropping it kills the server and removes its directory.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL also ends a SIGSTOPped process; wait() reaps it before the dir goes.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// These tests need root, user mysql and the MariaDB binaries (`.ci/run` installs them). A
/// machine without them fails loudly rather than passing without testing anything.
fn require_prerequisites() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let ok = root
        && mysql_ids().is_some()
        && find_binary("mariadbd").is_some()
        && find_binary("mariadb-install-db").is_some();
    assert!(
        ok,
        "these tests need root, user mysql, mariadbd and mariadb-install-db \
         (run .ci/run, or install mariadb-server and run as root)"
    );
}

fn mysql_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, "mysql"]).output().ok()?;
        String::from_utf8(o.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// True when every thread of `pid` is stopped: kill(2) only queues SIGSTOP, and on a loaded
/// machine the server can still answer for a moment after it.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // "pid (comm) S ...": the state follows the last ')'.
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|s| s == "T" || s == "t")
            })
            .unwrap_or(false)
    })
}

impl Server {
    /// Installs and starts a server; returns once root can connect over the socket.
    async fn start(server_id: u32) -> Server {
        let mut last_log = String::new();
        // A port picked free can be taken before mariadbd binds it: try a few.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("primaryd-health-")
                .tempdir_in("/tmp")
                .expect("temp dir");
            let (uid, gid) = mysql_ids().expect("user mysql");
            // mariadbd runs as mysql and writes its socket, pid and log here. Its own tmpdir:
            // concurrent install-db runs sharing /tmp collide on temp table names.
            let tmp = dir.path().join("tmp");
            std::fs::create_dir(&tmp).expect("tmp dir");
            for d in [dir.path(), tmp.as_path()] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).expect("chown");
            }
            let tmpdir = format!("--tmpdir={}", tmp.display());
            let out = Command::new(find_binary("mariadb-install-db").expect("install-db"))
                .arg("--no-defaults")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .arg(&tmpdir)
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .output()
                .expect("run mariadb-install-db");
            assert!(
                out.status.success(),
                "mariadb-install-db failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let port = free_port();
            let d = dir.path();
            let child = Command::new(find_binary("mariadbd").expect("mariadbd"))
                .arg("--no-defaults")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", d.join("data").display()))
                .arg(format!("--socket={}", d.join("mysqld.sock").display()))
                .arg(&tmpdir)
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
                .arg(format!("--log-error={}", d.join("mysqld.err").display()))
                .arg("--skip-name-resolve")
                .arg(format!("--server-id={server_id}"))
                .arg("--log-bin=mysql-bin")
                .arg("--innodb-buffer-pool-size=32M")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mariadbd");
            let mut server = Server { child, port, dir };
            if server.wait_ready().await {
                server.setup_users().await;
                return server;
            }
            last_log = server.log();
            if !last_log.contains("already in use") {
                break;
            }
        }
        panic!("mariadbd did not start:\n{last_log}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mysqld.err")).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Polls until root connects, the process exits, or 60 s pass (slow, loaded CI).
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if let Ok(conn) = Conn::new(root_opts(&self.socket())).await {
                drop(conn);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn admin(&self) -> Conn {
        let mut c = Conn::new(root_opts(&self.socket()))
            .await
            .expect("root connects");
        // Keep test users out of the binlog: a replica must not replay them.
        c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
        c
    }

    async fn sql(&self, sql: &str) {
        self.admin()
            .await
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The check user as the docs prescribe it: a password and SLAVE MONITOR, nothing else.
    /// Also a user without that privilege, to show the error names it.
    async fn setup_users(&self) {
        let mut c = self.admin().await;
        for host in ["localhost", "127.0.0.1"] {
            for sql in [
                format!("CREATE USER '{CHECK_USER}'@'{host}' IDENTIFIED BY '{CHECK_PASS}'"),
                format!("GRANT SLAVE MONITOR ON *.* TO '{CHECK_USER}'@'{host}'"),
                format!("CREATE USER 'nomonitor'@'{host}' IDENTIFIED BY '{CHECK_PASS}'"),
            ] {
                c.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    fn tcp(&self, timeout_ms: u64) -> MysqlConfig {
        config(
            MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: self.port,
            },
            timeout_ms,
        )
    }

    fn unix(&self, timeout_ms: u64) -> MysqlConfig {
        config(MysqlEndpoint::Socket(self.socket()), timeout_ms)
    }
}

fn root_opts(socket: &Path) -> OptsBuilder {
    OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .prefer_socket(false)
}

fn config(endpoint: MysqlEndpoint, timeout_ms: u64) -> MysqlConfig {
    MysqlConfig {
        endpoint,
        user: CHECK_USER.into(),
        password_file: None,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(timeout_ms),
        rise: 2,
        fall: 1,
    }
}

fn probe(cfg: &MysqlConfig) -> MysqlProbe {
    MysqlProbe::new(cfg, Some(CHECK_PASS.into()))
}

/// Probes until `want` holds or the deadline passes; returns the last result.
async fn probe_until(
    p: &mut MysqlProbe,
    within: Duration,
    want: impl Fn(&ProbeResult) -> bool,
) -> ProbeResult {
    let deadline = Instant::now() + within;
    loop {
        let r = p.probe().await;
        if want(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn timed(p: &mut MysqlProbe) -> (ProbeResult, Duration) {
    let start = Instant::now();
    let r = p.probe().await;
    (r, start.elapsed())
}

async fn next(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a health event in time")
        .expect("task alive")
}

fn assert_failed(r: &ProbeResult, want: FailureKind) -> &str {
    match r {
        ProbeResult::Failed { kind, reason } if *kind == want => reason,
        other => panic!("expected Failed {{ kind: {want:?}, .. }}, got {other:?}"),
    }
}

/// One server through the life of a primary: writable over TCP and the socket, demoted with
/// read_only, its check connections killed, wrong credentials and a missing privilege, hung
/// under SIGSTOP and back, then killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_probe_through_failures() {
    require_prerequisites();
    let server = Server::start(1).await;

    // Fresh server: writable, over both endpoints, and the connection is kept.
    let mut tcp = probe(&server.tcp(2000));
    assert_eq!(tcp.probe().await, ProbeResult::Writable);
    assert_eq!(tcp.flavour(), Some(Flavour::MariaDb));
    let mut unix = probe(&server.unix(2000));
    assert_eq!(unix.probe().await, ProbeResult::Writable);
    assert!(tcp.is_connected() && unix.is_connected());

    // The probe checks what was configured: a TCP probe stays on TCP (prefer_socket off).
    let mut c = server.admin().await;
    let tcp_clients: Vec<Row> = c
        .query(format!(
            "SELECT host FROM information_schema.processlist \
             WHERE user = '{CHECK_USER}' AND host LIKE '127.0.0.1:%'"
        ))
        .await
        .unwrap();
    assert_eq!(
        tcp_clients.len(),
        1,
        "exactly the TCP probe connects over TCP"
    );

    // Demotion.
    server.sql("SET GLOBAL read_only = 1").await;
    assert_eq!(
        tcp.probe().await,
        ProbeResult::NotWritable("read_only=1".into())
    );
    assert!(
        tcp.is_connected(),
        "not writable is an answer, not a failure"
    );
    server.sql("SET GLOBAL read_only = 0").await;
    assert_eq!(tcp.probe().await, ProbeResult::Writable);

    // Only the probe's connections die (KILL, wait_timeout): the probe reconnects at once
    // and answers Writable, so the route does not flap.
    let killed: Vec<u64> = c
        .query(format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{CHECK_USER}'"
        ))
        .await
        .unwrap();
    assert_eq!(killed.len(), 2);
    for id in &killed {
        c.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u64> = c
            .query(format!(
                "SELECT id FROM information_schema.processlist WHERE user = '{CHECK_USER}'"
            ))
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "KILL did not end {left:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tcp.probe().await, ProbeResult::Writable);
    assert_eq!(unix.probe().await, ProbeResult::Writable);
    let now: Vec<u64> = c
        .query(format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{CHECK_USER}'"
        ))
        .await
        .unwrap();
    assert!(
        now.len() == 2 && now.iter().all(|id| !killed.contains(id)),
        "reconnected: {now:?}"
    );

    // Credentials and privileges: query failures that name the problem.
    let mut bad = MysqlProbe::new(&server.tcp(2000), Some("wrong".into()));
    let r = bad.probe().await;
    let reason = assert_failed(&r, FailureKind::Query);
    assert!(
        reason.contains("connect failed") && reason.contains("1045"),
        "{reason}"
    );
    let mut cfg = server.unix(2000);
    cfg.user = "nomonitor".into();
    let mut nomon = probe(&cfg);
    let r = nomon.probe().await;
    let reason = assert_failed(&r, FailureKind::Query);
    assert!(
        reason.starts_with("SHOW ALL SLAVES STATUS failed"),
        "{reason}"
    );
    assert!(reason.contains("SLAVE MONITOR"), "{reason}");
    assert!(!nomon.is_connected(), "a failed probe drops its connection");

    // Hung server: only the timeout notices, on time, both on the held connection and on a
    // fresh connect (the kernel still accepts TCP for a stopped process).
    let mut hung = probe(&server.tcp(500));
    assert_eq!(hung.probe().await, ProbeResult::Writable);
    signal(server.pid(), "STOP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_threads_stopped(server.pid()) {
        assert!(Instant::now() < deadline, "mariadbd did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for round in 0..2 {
        let (r, took) = timed(&mut hung).await;
        let reason = assert_failed(&r, FailureKind::Timeout);
        assert_eq!(reason, "check timed out after 500 ms");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(700),
            "round {round}: took {took:?}"
        );
        assert!(!hung.is_connected());
    }
    signal(server.pid(), "CONT");
    let r = probe_until(&mut hung, Duration::from_secs(10), ProbeResult::is_writable).await;
    assert_eq!(r, ProbeResult::Writable, "recovers after SIGCONT");

    // Killed server: the held connection sees EOF at once, far inside the timeout; so does
    // the reconnect (refused, or a socket nobody listens on).
    assert_eq!(unix.probe().await, ProbeResult::Writable);
    assert_eq!(tcp.probe().await, ProbeResult::Writable);
    signal(server.pid(), "KILL");
    for p in [&mut tcp, &mut unix] {
        let (r, took) = timed(p).await;
        let reason = assert_failed(&r, FailureKind::Lost);
        assert!(reason.starts_with("connection lost: "), "{reason}");
        assert!(reason.contains("; then connect failed: "), "{reason}");
        assert!(
            took < Duration::from_millis(300),
            "lost noticed in {took:?}"
        );
        let (r, took) = timed(p).await;
        let reason = assert_failed(&r, FailureKind::Lost);
        assert!(reason.starts_with("connect failed: "), "{reason}");
        assert!(
            took < Duration::from_millis(300),
            "reconnect failed in {took:?}"
        );
    }
}

/// A primary and a GTID replica of it: the replica is not writable while replication runs,
/// whatever read_only says, and the task reports it up once replication is stopped (a
/// promotion, as orchestrator does it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_replica_is_not_a_primary() {
    require_prerequisites();
    let (primary, replica) = tokio::join!(Server::start(1), Server::start(2));
    primary
        .sql("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pass'")
        .await;
    primary
        .sql("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        .await;
    replica
        .sql(&format!(
            "CHANGE MASTER 'from_db1' TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'repl', MASTER_PASSWORD = 'repl-pass', MASTER_USE_GTID = slave_pos",
            primary.port
        ))
        .await;
    replica.sql("START SLAVE 'from_db1'").await;

    // Wait, with a deadline, until both threads run.
    let mut admin = replica.admin().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<Row> = admin.query("SHOW ALL SLAVES STATUS").await.unwrap();
        let get = |col: &str| -> String {
            rows.first()
                .and_then(|r| r.get_opt::<String, _>(col))
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if get("Slave_IO_Running") == "Yes" && get("Slave_SQL_Running") == "Yes" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replication did not start: IO {:?} SQL {:?}, errors {:?} / {:?}",
            get("Slave_IO_Running"),
            get("Slave_SQL_Running"),
            get("Last_IO_Error"),
            get("Last_SQL_Error")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // read_only is 0 on this replica: only the replication rule stops it.
    let mut p = probe(&replica.tcp(2000));
    assert_eq!(
        p.probe().await,
        ProbeResult::NotWritable(
            "replication IO and SQL threads running on a primary (connection 'from_db1')".into()
        )
    );
    let mut p = probe(&primary.unix(2000));
    assert_eq!(p.probe().await, ProbeResult::Writable);

    // The task: down first (no verdict yet -> down with the reason), then up after `rise`
    // checks once replication is stopped, then down on demotion.
    let (tx, mut rx) = mpsc::channel::<HealthEvent>(8);
    let cfg = replica.unix(2000);
    let (interval, rise) = (cfg.interval, cfg.rise);
    let checks = tokio::spawn(task::run(
        3,
        "main".into(),
        cfg,
        Some(CHECK_PASS.into()),
        tx,
    ));
    let ev = next(&mut rx).await;
    assert_eq!((ev.service, ev.health), (3, Health::Down));
    assert!(ev.reason.contains("connection 'from_db1'"), "{}", ev.reason);

    replica.sql("STOP ALL SLAVES").await;
    let promoted = Instant::now();
    let ev = next(&mut rx).await;
    assert_eq!(ev.health, Health::Up, "{}", ev.reason);
    assert_eq!(ev.reason, "writable primary (2 consecutive checks)");
    let took = promoted.elapsed();
    assert!(
        took < interval * (rise + 1) + Duration::from_millis(500),
        "up {took:?} after promotion"
    );

    replica.sql("SET GLOBAL read_only = 1").await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.health, ev.reason.as_str()),
        (Health::Down, "read_only=1")
    );

    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), checks)
        .await
        .expect("the task ends with its receiver")
        .unwrap();
}
