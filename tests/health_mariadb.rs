//! The health probe, tasks and control API against real MariaDB servers (10.11 here), each a
//! private `mariadbd` with a free port and a unix socket in its own temp dir, so these tests
//! run in parallel with anything else. They need root (mariadbd drops to user mysql; some
//! tests run in a private network namespace) and `mariadb-install-db`/`mariadbd`; without
//! them they fail with a message saying so, never pass without testing anything.
//!
//! Tests that need service addresses run on a thread of their own in a private network
//! namespace (`unshare(CLONE_NEWNET)`): its `lo` carries 192.0.2.x, the servers they start
//! live there too, and nothing touches the host's interfaces. The namespace goes away with
//! the thread and its servers.
//!
//! Every server is killed and every temp dir removed by [`Server`]'s `Drop`, on every exit
//! path including a failed assertion.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use primaryd::config::{self, MysqlConfig, MysqlEndpoint, Role, ServiceConfig, TlsConfig};
use primaryd::health::checker::Health;
use primaryd::health::mysql::{
    FailureKind, Flavour, Healthy, MysqlProbe, ProbeResult, HEARTBEAT_TABLE_SQL,
};
use primaryd::health::services::{self, HealthServices, Target};
use primaryd::health::state::ServiceStatus;
use primaryd::health::task::{self, HealthEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

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

/// kill(2) without a child process: no blocking call on the runtime's thread.
fn signal(pid: u32, sig: libc::c_int) {
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Runs a command that must succeed.
#[track_caller]
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &str) -> String {
    run_ok(Command::new("ip").args(args.split_whitespace()))
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

/// Runs `make()`'s future on a fresh thread that first moves into a private network
/// namespace with `lo` up. Runtime threads, servers and `ip` commands started from there
/// inherit the namespace; the host's interfaces are never touched. A panic inside is the
/// test's panic.
fn in_private_netns<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    require_prerequisites();
    let thread = std::thread::spawn(move || {
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        ip("link set lo up");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(make());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

impl Server {
    /// Installs and starts a server; returns once root can connect over the socket.
    async fn start(server_id: u32) -> Server {
        Server::start_with(server_id, |_| Vec::new()).await
    }

    /// Like `start`, with extra `mariadbd` arguments made from the server's directory.
    async fn start_with(server_id: u32, extra: impl Fn(&Path) -> Vec<String>) -> Server {
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
                .args(extra(d))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mariadbd");
            let mut server = Server { child, port, dir };
            if server.wait_ready().await {
                server.setup().await;
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

    /// A root connection whose statements stay out of the binlog.
    async fn admin(&self) -> Conn {
        let mut c = self.binlogged().await;
        // Keep test users out of the binlog: a replica must not replay them.
        c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
        c
    }

    /// A root connection whose writes replicate.
    async fn binlogged(&self) -> Conn {
        Conn::new(root_opts(&self.socket()))
            .await
            .expect("root connects")
    }

    async fn sql(&self, sql: &str) {
        self.admin()
            .await
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn query_u64(&self, sql: &str) -> u64 {
        let v: Option<u64> = self
            .admin()
            .await
            .query_first(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        v.unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// The check user as the docs prescribe it: a password and SLAVE MONITOR, plus what the
    /// write probe needs on the heartbeat table created by the documented SQL. Also a user
    /// without SLAVE MONITOR, to show the error names it.
    async fn setup(&self) {
        let mut c = self.admin().await;
        c.query_drop(HEARTBEAT_TABLE_SQL)
            .await
            .unwrap_or_else(|e| panic!("the documented heartbeat SQL: {e}"));
        for host in ["localhost", "127.0.0.1"] {
            for sql in [
                format!("CREATE USER '{CHECK_USER}'@'{host}' IDENTIFIED BY '{CHECK_PASS}'"),
                format!("GRANT SLAVE MONITOR ON *.* TO '{CHECK_USER}'@'{host}'"),
                format!(
                    "GRANT SELECT, INSERT, UPDATE ON primaryd.heartbeat TO '{CHECK_USER}'@'{host}'"
                ),
                format!("CREATE USER 'nomonitor'@'{host}' IDENTIFIED BY '{CHECK_PASS}'"),
            ] {
                c.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    fn tcp(&self, timeout_ms: u64) -> MysqlConfig {
        mysql_config(
            MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: self.port,
            },
            timeout_ms,
        )
    }

    fn unix(&self, timeout_ms: u64) -> MysqlConfig {
        mysql_config(MysqlEndpoint::Socket(self.socket()), timeout_ms)
    }

    /// Ids of the check user's connections whose running statement starts with `info`
    /// (`None`: all of them).
    async fn check_connections(&self, info: Option<&str>) -> Vec<u64> {
        let filter = match info {
            None => String::new(),
            Some(i) => format!(" AND info LIKE '{i}%'"),
        };
        self.admin()
            .await
            .query(format!(
                "SELECT id FROM information_schema.processlist \
                 WHERE user = '{CHECK_USER}'{filter}"
            ))
            .await
            .unwrap()
    }
}

fn root_opts(socket: &Path) -> OptsBuilder {
    OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .prefer_socket(false)
}

fn mysql_config(endpoint: MysqlEndpoint, timeout_ms: u64) -> MysqlConfig {
    let mut c = MysqlConfig::new(endpoint, CHECK_USER);
    c.interval = Duration::from_millis(50);
    c.timeout = Duration::from_millis(timeout_ms);
    (c.rise, c.fall) = (2, 1);
    c
}

/// A service around `mysql`, announcing 127.0.0.1 (always configured).
fn service(name: &str, role: Role, mysql: MysqlConfig) -> ServiceConfig {
    let text = format!(
        "[bgp]\nasn = 65000\nrouter_id = \"198.19.0.1\"\n[[bgp.peer]]\nname = \"t\"\n\
         address = \"198.18.1.0\"\nremote_asn = 65001\n[[service]]\nname = \"{name}\"\n\
         prefixes = [\"127.0.0.1/32\"]\n[service.mysql]\nsocket = \"/x\"\nuser = \"u\"\n"
    );
    let mut s = config::parse(&text).unwrap().services.remove(0);
    s.role = role;
    s.mysql = mysql;
    s
}

fn probe(cfg: &MysqlConfig) -> MysqlProbe {
    MysqlProbe::new(cfg, Some(CHECK_PASS.into()))
}

fn replica_probe(cfg: &MysqlConfig) -> MysqlProbe {
    MysqlProbe::for_service(
        &service("reader", Role::Replica, cfg.clone()),
        Some(CHECK_PASS.into()),
    )
}

fn writable() -> ProbeResult {
    ProbeResult::writable()
}

/// An unhealthy result as the operator reads it (`None`: not unhealthy).
fn unhealthy(r: &ProbeResult) -> Option<String> {
    match r {
        ProbeResult::Unhealthy(problems) => Some(problems.to_string()),
        _ => None,
    }
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

/// Waits until a service's published status satisfies `want`; panics with the last status
/// after `within`. Returns the status and how long it took.
async fn wait_status(
    rx: &mut watch::Receiver<ServiceStatus>,
    within: Duration,
    what: &str,
    want: impl FnMut(&ServiceStatus) -> bool,
) -> (ServiceStatus, Duration) {
    let start = Instant::now();
    let found = match tokio::time::timeout(within, rx.wait_for(want)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("the task of {what} ended"),
        Err(_) => None,
    };
    match found {
        Some(s) => (s, start.elapsed()),
        None => panic!(
            "timed out after {within:?} waiting until {what}; status: {:#?}",
            *rx.borrow()
        ),
    }
}

fn up(s: &ServiceStatus) -> bool {
    s.health == Health::Up
}

fn down(s: &ServiceStatus) -> bool {
    s.health == Health::Down
}

/// Starts the health tasks for `config` as the daemon does, with a consumer for their
/// events (the tasks stop when nobody listens).
fn start_health(
    config: &config::Config,
) -> (HealthServices, JoinSet<()>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(64);
    let passwords = vec![Some(CHECK_PASS.to_string()); config.services.len()];
    let (control, tasks) = services::start(config, passwords, tx);
    let events = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    (control, tasks, events)
}

/// A daemon config with one `[[service]]` per entry of `services` (verbatim TOML after the
/// `[[service]]` line).
fn config_text(state_dir: &Path, services: &[String]) -> String {
    let mut t = format!(
        "[bgp]\nasn = 65000\nrouter_id = \"198.19.0.1\"\n[[bgp.peer]]\nname = \"t\"\n\
         address = \"198.18.1.0\"\nremote_asn = 65001\n[control]\nstate_dir = {:?}\n",
        state_dir.display().to_string()
    );
    for s in services {
        t.push_str("\n[[service]]\n");
        t.push_str(s);
    }
    t
}

/// A `[[service]]` body checking `server` over its socket every `interval_ms` (timeout
/// 500 ms, rise 1, fall 1); the extras are added to `[[service]]` and `[service.mysql]`.
fn service_toml(
    name: &str,
    prefix: &str,
    server: &Server,
    interval_ms: u64,
    service_extra: &str,
    mysql_extra: &str,
) -> String {
    format!(
        "name = \"{name}\"\nprefixes = [\"{prefix}\"]\n{service_extra}\n[service.mysql]\n\
         socket = {:?}\nuser = \"{CHECK_USER}\"\ninterval_ms = {interval_ms}\n\
         timeout_ms = 500\nrise = 1\nfall = 1\n{mysql_extra}\n",
        server.socket().display().to_string()
    )
}

/// One server through the life of a primary: writable over TCP and the socket, demoted with
/// read_only, its check connections killed, wrong credentials (in backoff, so the server is
/// not flooded) and a missing privilege, hung under SIGSTOP and back, then killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_probe_through_failures() {
    require_prerequisites();
    let server = Server::start(1).await;

    // Fresh server: writable, over both endpoints, and the connection is kept.
    let mut tcp = probe(&server.tcp(2000));
    assert_eq!(tcp.probe().await, writable());
    assert_eq!(tcp.flavour(), Some(Flavour::MariaDb));
    let mut unix = probe(&server.unix(2000));
    assert_eq!(unix.probe().await, writable());
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
    assert_eq!(unhealthy(&tcp.probe().await), Some("read_only=1".into()));
    assert!(
        tcp.is_connected(),
        "not writable is an answer, not a failure"
    );
    server.sql("SET GLOBAL read_only = 0").await;
    assert_eq!(tcp.probe().await, writable());

    // Only the probe's connections die (KILL, wait_timeout): the probe reconnects at once
    // and answers writable, so the route does not flap.
    let killed = server.check_connections(None).await;
    assert_eq!(killed.len(), 2);
    for id in &killed {
        c.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = server.check_connections(None).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "KILL did not end {left:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tcp.probe().await, writable());
    assert_eq!(unix.probe().await, writable());
    let now = server.check_connections(None).await;
    assert!(
        now.len() == 2 && now.iter().all(|id| !killed.contains(id)),
        "reconnected: {now:?}"
    );

    // A wrong password: a clear reason, and further attempts wait in backoff instead of
    // logging a failed login per check in the server's error log.
    let aborted = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                   WHERE VARIABLE_NAME = 'ABORTED_CONNECTS'";
    let before = server.query_u64(aborted).await;
    let mut bad = MysqlProbe::new(&server.tcp(2000), Some("wrong".into()));
    let r = bad.probe().await;
    let reason = assert_failed(&r, FailureKind::Query).to_string();
    assert!(
        reason.starts_with("connect failed: ERROR 1045") && reason.contains("password_file"),
        "{reason}"
    );
    for _ in 0..20 {
        let (r, took) = timed(&mut bad).await;
        let again = assert_failed(&r, FailureKind::Query);
        assert_eq!(
            again,
            format!("{reason} (connect backoff after 1 failed attempts)")
        );
        assert!(took < Duration::from_millis(50), "{took:?}");
    }
    assert_eq!(
        server.query_u64(aborted).await - before,
        1,
        "one failed login reached the server, not 21"
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
    assert_eq!(hung.probe().await, writable());
    signal(server.pid(), libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_threads_stopped(server.pid()) {
        assert!(Instant::now() < deadline, "mariadbd did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (round, during) in ["SELECT @@global.read_only, ...", "connect"]
        .iter()
        .enumerate()
    {
        let (r, took) = timed(&mut hung).await;
        let reason = assert_failed(&r, FailureKind::Timeout);
        assert_eq!(
            reason,
            format!("check timed out after 500 ms during {during}")
        );
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(700),
            "round {round}: took {took:?}"
        );
        assert!(!hung.is_connected());
    }
    signal(server.pid(), libc::SIGCONT);
    let r = probe_until(&mut hung, Duration::from_secs(15), ProbeResult::is_healthy).await;
    assert_eq!(
        r,
        writable(),
        "recovers after SIGCONT (and the connect backoff)"
    );

    // Killed server: the held connection sees EOF at once, far inside the timeout; so does
    // the reconnect (refused, or a socket nobody listens on).
    assert_eq!(unix.probe().await, writable());
    assert_eq!(tcp.probe().await, writable());
    signal(server.pid(), libc::SIGKILL);
    for p in [&mut tcp, &mut unix] {
        let (r, took) = timed(p).await;
        let reason = assert_failed(&r, FailureKind::Lost);
        assert!(reason.starts_with("connection lost: "), "{reason}");
        assert!(reason.contains("; then connect failed: "), "{reason}");
        assert!(
            took < Duration::from_millis(300),
            "lost noticed in {took:?}"
        );
        // Refused connects are not backed off: they cost the server nothing.
        let (r, took) = timed(p).await;
        let reason = assert_failed(&r, FailureKind::Lost);
        assert!(reason.starts_with("connect failed: "), "{reason}");
        assert!(!reason.contains("backoff"), "{reason}");
        assert!(
            took < Duration::from_millis(300),
            "reconnect failed in {took:?}"
        );
    }
}

/// A primary and a GTID replica of it. As a primary the replica never passes, whatever
/// read_only says; as a reader (role = "replica") it passes while read-only with both
/// threads running and lag within max_lag_s, and fails when it lags or replication stops.
/// Finally a promotion (as orchestrator does it) makes it a primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_replica_roles() {
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

    // read_only is 0 on this replica: only the replication rule stops it as a primary.
    let mut p = probe(&replica.tcp(2000));
    assert_eq!(
        unhealthy(&p.probe().await),
        Some("replication IO and SQL threads running on a primary (connection 'from_db1')".into())
    );
    let mut p = probe(&primary.unix(2000));
    assert_eq!(p.probe().await, writable());

    // The reader role: the primary is no replica; the replica is one once read-only.
    let mut reader_cfg = replica.unix(2000);
    reader_cfg.max_lag = Duration::from_secs(1);
    let mut reader = replica_probe(&reader_cfg);
    assert_eq!(
        unhealthy(&replica_probe(&primary.unix(2000)).probe().await),
        Some(
            "read_only=0 (a replica must be read-only); not replicating: no replication \
             configured"
                .into()
        )
    );
    assert_eq!(
        unhealthy(&reader.probe().await),
        Some("read_only=0 (a replica must be read-only)".into())
    );
    replica.sql("SET GLOBAL read_only = 1").await;
    assert_eq!(
        reader.probe().await,
        ProbeResult::Healthy(Healthy::Replica { lag_s: 0 })
    );

    // Lag: the replica's SQL thread waits behind a table lock while the primary writes;
    // Seconds_Behind_Master grows past max_lag_s = 1.
    let mut writer = primary.binlogged().await;
    writer
        .query_drop(
            "CREATE DATABASE lagtest; CREATE TABLE lagtest.t (id INT PRIMARY KEY) ENGINE=InnoDB",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while replica
        .query_u64("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'lagtest'")
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "lagtest.t did not replicate");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut locker = replica.admin().await;
    locker
        .query_drop("LOCK TABLES lagtest.t WRITE")
        .await
        .unwrap();
    writer
        .query_drop("INSERT INTO lagtest.t VALUES (1)")
        .await
        .unwrap();
    let r = probe_until(&mut reader, Duration::from_secs(15), |r| !r.is_healthy()).await;
    match &r {
        ProbeResult::Unhealthy(reason) => assert!(
            reason.to_string().starts_with("replication lag ")
                && reason
                    .to_string()
                    .ends_with(" s > max_lag_s 1 (connection 'from_db1')"),
            "{reason}"
        ),
        other => panic!("expected lag, got {other:?}"),
    }
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    let r = probe_until(
        &mut reader,
        Duration::from_secs(15),
        ProbeResult::is_healthy,
    )
    .await;
    assert_eq!(
        r,
        ProbeResult::Healthy(Healthy::Replica { lag_s: 0 }),
        "caught up"
    );

    // Replication stopped: withdrawn, naming the thread.
    replica.sql("STOP SLAVE 'from_db1' SQL_THREAD").await;
    assert_eq!(
        unhealthy(&reader.probe().await),
        Some("replication SQL thread not running (No) (connection 'from_db1')".into())
    );
    replica.sql("START SLAVE 'from_db1' SQL_THREAD").await;
    let r = probe_until(
        &mut reader,
        Duration::from_secs(15),
        ProbeResult::is_healthy,
    )
    .await;
    assert!(r.is_healthy(), "{r:?}");
    replica.sql("SET GLOBAL read_only = 0").await;

    // The task as a primary: down first (no verdict yet -> down with the reason), then up
    // after `rise` checks once replication is stopped, then down on demotion.
    let (tx, mut rx) = mpsc::channel::<HealthEvent>(8);
    let cfg = replica.unix(2000);
    let (interval, rise) = (cfg.interval, cfg.rise);
    let checks = tokio::spawn(task::run(
        3,
        service("main", Role::Primary, cfg),
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

/// One daemon, three MariaDB instances (one per port), one service each: independent
/// checks and states. Killing one server is noticed through its watch connection at once,
/// with a 10 s check interval, and the other two never change; removing one service's
/// address withdraws only that service. The third address is added by primaryd itself
/// (`manage_addresses`).
#[test]
fn three_services_on_one_host_fail_independently() {
    in_private_netns(|| async {
        let (a, b, c) = tokio::join!(Server::start(1), Server::start(2), Server::start(3));
        ip("addr add 192.0.2.21/32 dev lo");
        ip("addr add 192.0.2.22/32 dev lo");
        let state = tempfile::tempdir().unwrap();
        let text = config_text(
            state.path(),
            &[
                service_toml("a", "192.0.2.21/32", &a, 10_000, "", ""),
                service_toml("b", "192.0.2.22/32", &b, 100, "", ""),
                service_toml("c", "192.0.2.23/32", &c, 100, "manage_addresses = true", ""),
            ],
        );
        let config = config::parse(&text).unwrap();
        let (control, tasks, events) = start_health(&config);
        // c's task adds it (off the event loop) before its first check: c then comes up in
        // one transition below, never first down for a missing address.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ip("addr show dev lo").contains("inet 192.0.2.23/32") {
            assert!(
                Instant::now() < deadline,
                "manage_addresses never added 192.0.2.23"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rx: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| control.subscribe(n).unwrap())
            .collect();
        for (r, name) in rx.iter_mut().zip(["a", "b", "c"]) {
            let (s, _) = wait_status(r, Duration::from_secs(20), &format!("{name} up"), up).await;
            assert_eq!(s.reason, "writable primary (1 consecutive check)");
            assert_eq!(s.transitions, 1);
        }

        // a's watch is parked on its server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.check_connections(Some("SELECT SLEEP")).await.is_empty() {
            assert!(Instant::now() < deadline, "the watch never parked on a");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last_regular = rx[0].borrow().last_check.clone().unwrap().at;
        let since_last = last_regular.elapsed().unwrap_or_default();
        assert!(
            since_last < Duration::from_secs(5),
            "a's next regular check is at least 5 s away ({since_last:?} since the last)"
        );

        // Fail fast: kill -9 a; its status goes down long before the next check is due.
        let killed = Instant::now();
        signal(a.pid(), libc::SIGKILL);
        let (s, took) = wait_status(&mut rx[0], Duration::from_secs(5), "a down", down).await;
        eprintln!("mariadbd killed: service down after {took:?} (interval 10 s)");
        assert!(
            s.reason.starts_with("connection lost: ")
                && s.reason.contains("; then connect failed: "),
            "{}",
            s.reason
        );
        assert!(
            s.last_check.unwrap().at > last_regular,
            "a check ran after the kill"
        );
        // The whole path (EOF on the watch, the task wakes, the check's refused reconnect)
        // takes milliseconds; 300 ms leaves room for a loaded CI machine and is still a
        // thirtieth of the interval that would otherwise have been waited.
        assert!(took < Duration::from_millis(300), "a down after {took:?}");
        assert!(killed.elapsed() < Duration::from_secs(5));

        // The others did not notice.
        for r in &rx[1..] {
            let s = r.borrow().clone();
            assert_eq!((s.health, s.transitions), (Health::Up, 1), "{s:#?}");
        }

        // b hangs (SIGSTOP): its check times out and it is withdrawn; c, checked by its own
        // task, is not held up for a moment.
        let c_before = rx[2].borrow().successes;
        signal(b.pid(), libc::SIGSTOP);
        let (s, took) = wait_status(&mut rx[1], Duration::from_secs(5), "b down", down).await;
        eprintln!("mariadbd stopped: service down after {took:?} (timeout 500 ms)");
        assert!(
            s.reason.starts_with("check timed out after 500 ms during "),
            "{}",
            s.reason
        );
        // c kept checking every 100 ms while b's check hung.
        let c_now = rx[2].borrow().clone();
        assert_eq!((c_now.health, c_now.transitions), (Health::Up, 1));
        // Every 100 ms over b's hang (about timeout_ms): at least two passing checks of c,
        // which a shared task stuck behind b's check could not have made.
        let c_during = c_now.successes.saturating_sub(c_before);
        assert!(
            c_during >= 2,
            "c passed {c_during} checks during b's {took:?} hang"
        );
        signal(b.pid(), libc::SIGCONT);
        wait_status(
            &mut rx[1],
            Duration::from_secs(20),
            "b up after SIGCONT",
            up,
        )
        .await;

        // c's address goes away: only c is withdrawn, at its next check.
        ip("addr del 192.0.2.23/32 dev lo");
        let (s, _) = wait_status(&mut rx[2], Duration::from_secs(5), "c down", down).await;
        assert_eq!(
            s.reason,
            "address 192.0.2.23 not configured on any local interface"
        );
        assert_eq!(s.check_health, Health::Up, "the server itself is fine");
        assert_eq!(rx[1].borrow().health, Health::Up);
        ip("addr add 192.0.2.23/32 dev lo");
        wait_status(&mut rx[2], Duration::from_secs(5), "c up again", up).await;

        let all = control.statuses();
        let health: Vec<_> = all.iter().map(|s| (s.name.as_str(), s.health)).collect();
        assert_eq!(
            health,
            [("a", Health::Down), ("b", Health::Up), ("c", Health::Up)]
        );
        drop(tasks);
        events.abort();
    });
}

/// The write probe against a stuck commit (a held table lock, then a row lock in an open
/// transaction), flap damping, a killed watch, drain persisted across a restart, the
/// disable file, and drain --all. Two services check the same server: "main" with the write
/// probe and a disable file, "damped" with min_up_interval_ms = 3000.
#[test]
fn write_probe_damping_watch_kill_drain_and_disable_file() {
    in_private_netns(|| async {
        let server = Server::start(1).await;
        ip("addr add 192.0.2.31/32 dev lo");
        ip("addr add 192.0.2.32/32 dev lo");
        let state = tempfile::tempdir().unwrap();
        let disable = state.path().join("main.disabled");
        let text = config_text(
            state.path(),
            &[
                service_toml(
                    "main",
                    "192.0.2.31/32",
                    &server,
                    100,
                    &format!("disable_file = {:?}", disable.display().to_string()),
                    "write_probe_table = \"primaryd.heartbeat\"",
                ),
                service_toml(
                    "damped",
                    "192.0.2.32/32",
                    &server,
                    100,
                    "",
                    "min_up_interval_ms = 3000",
                ),
            ],
        );
        let config = config::parse(&text).unwrap();
        let (control, tasks, events) = start_health(&config);
        let mut main = control.subscribe("main").unwrap();
        let mut damped = control.subscribe("damped").unwrap();
        let within = Duration::from_secs(10);
        wait_status(&mut main, within, "main up", up).await;
        wait_status(&mut damped, within, "damped up", up).await;

        // The heartbeat row is written at every check.
        let seq = "SELECT seq FROM primaryd.heartbeat WHERE server_id = 1 AND service = 'main'";
        let first = server.query_u64(seq).await;
        let deadline = Instant::now() + within;
        while server.query_u64(seq).await == first {
            assert!(Instant::now() < deadline, "the heartbeat does not advance");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A stuck commit: another session holds a write lock on the heartbeat table.
        let mut locker = server.admin().await;
        locker
            .query_drop("LOCK TABLES primaryd.heartbeat WRITE")
            .await
            .unwrap();
        let (s, took) = wait_status(&mut main, within, "main down (table lock)", down).await;
        eprintln!("held table lock: main withdrawn after {took:?} (timeout 500 ms)");
        assert_eq!(
            s.reason,
            "check timed out after 500 ms during the write probe"
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(damped.borrow().health, Health::Up, "no write probe there");
        locker.query_drop("UNLOCK TABLES").await.unwrap();
        wait_status(&mut main, within, "main up (unlocked)", up).await;

        // A row lock held by an open transaction.
        let mut trx = server.admin().await;
        trx.query_drop("BEGIN").await.unwrap();
        trx.query_drop(format!("{seq} FOR UPDATE")).await.unwrap();
        let (s, _) = wait_status(&mut main, within, "main down (row lock)", down).await;
        assert_eq!(
            s.reason,
            "check timed out after 500 ms during the write probe"
        );
        trx.query_drop("ROLLBACK").await.unwrap();
        wait_status(&mut main, within, "main up (rolled back)", up).await;

        // Flap damping: two read_only flaps. "damped" may come back once, then it is held
        // until 3 s after that announcement; "main" comes back each time at once.
        let mut ups = Vec::new();
        for flap in 0..2 {
            server.sql("SET GLOBAL read_only = 1").await;
            wait_status(&mut damped, within, "damped down (read_only)", down).await;
            wait_status(&mut main, within, "main down (read_only)", down).await;
            server.sql("SET GLOBAL read_only = 0").await;
            wait_status(&mut main, within, "main up (writable)", up).await;
            if flap == 1 {
                let (s, _) = wait_status(&mut damped, within, "damped held", |s| {
                    s.damped_until.is_some()
                })
                .await;
                assert_eq!(s.health, Health::Down);
                assert_eq!(s.check_health, Health::Up);
                assert!(
                    s.reason.starts_with("flap damping: healthy again"),
                    "{}",
                    s.reason
                );
            }
            let (s, _) = wait_status(&mut damped, within, "damped up", up).await;
            ups.push(s.since);
        }
        let gap = ups[1].duration_since(ups[0]).unwrap();
        assert!(gap >= Duration::from_secs(3), "re-announced after {gap:?}");

        // Someone kills the watch connections: a check, no flap, and they come back.
        let watches = server.check_connections(Some("SELECT SLEEP")).await;
        assert_eq!(watches.len(), 2, "one watch per service");
        let transitions: Vec<u64> = [&main, &damped]
            .iter()
            .map(|r| r.borrow().transitions)
            .collect();
        let mut admin = server.admin().await;
        for id in &watches {
            admin
                .query_drop(format!("KILL CONNECTION {id}"))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + within;
        loop {
            let now = server.check_connections(Some("SELECT SLEEP")).await;
            if now.len() == 2 && now.iter().all(|id| !watches.contains(id)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "watches not parked again: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after: Vec<u64> = [&main, &damped]
            .iter()
            .map(|r| r.borrow().transitions)
            .collect();
        assert_eq!(
            after, transitions,
            "killing the watch did not flap the routes"
        );

        // Drain: withdrawn at once, persisted, and still drained after a restart.
        let target = Target::Service("main".into());
        let st = control
            .drain(&target, Some("test drain".into()))
            .await
            .unwrap();
        assert_eq!(st[0].health, Health::Down);
        assert_eq!(st[0].reason, "drained by operator: test drain");
        assert_eq!(main.borrow().health, Health::Down);
        assert!(state.path().join("main.drained").exists());
        assert!(matches!(
            control.drain(&Target::Service("nope".into()), None).await,
            Err(services::DrainError::UnknownService(_))
        ));
        drop((control, tasks));
        events.abort();

        let (control, tasks, events) = start_health(&config);
        let mut main = control.subscribe("main").unwrap();
        // The task loads the record (off the event loop) before its first check: the state
        // is born drained, so it never made a transition (an announce would have been one).
        let (s, _) = wait_status(&mut main, within, "main shows the drain", |s| {
            s.drained.is_some()
        })
        .await;
        assert_eq!(
            (s.health, s.reason.as_str(), s.transitions),
            (Health::Down, "drained by operator: test drain", 0),
            "drained before the first check"
        );
        let (s, _) = wait_status(&mut main, within, "main's checks pass", |s| {
            s.check_health == Health::Up
        })
        .await;
        assert_eq!(s.health, Health::Down, "a drained service stays withdrawn");
        let st = control.undrain(&target).await.unwrap();
        assert_eq!(st[0].health, Health::Up, "{:#?}", st[0]);
        assert!(!state.path().join("main.drained").exists());

        // The disable file.
        std::fs::write(&disable, "").unwrap();
        let (s, _) = wait_status(&mut main, within, "main disabled", down).await;
        assert_eq!(s.reason, format!("disabled by file {}", disable.display()));
        assert_eq!(control.status("damped").unwrap().health, Health::Up);
        std::fs::remove_file(&disable).unwrap();
        wait_status(&mut main, within, "main enabled", up).await;

        // drain --all and undrain --all.
        let st = control.drain(&Target::All, None).await.unwrap();
        assert!(st
            .iter()
            .all(|s| s.health == Health::Down && s.reason == "drained by operator"));
        for name in ["main", "damped"] {
            assert!(state.path().join(format!("{name}.drained")).exists());
        }
        control.undrain(&Target::All).await.unwrap();
        for name in ["main", "damped"] {
            let mut r = control.subscribe(name).unwrap();
            wait_status(&mut r, within, &format!("{name} undrained and up"), up).await;
        }
        drop(tasks);
        events.abort();
    });
}

/// TLS to the server with rustls: a user that REQUIRE SSL connects only over TLS, with the
/// private CA given in tls_ca_file; without it the certificate is refused, as a TLS
/// failure that names the cause rather than a lost connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_server() {
    require_prerequisites();
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(d.join("san.cnf"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    let openssl = |args: &str| {
        run_ok(
            Command::new("openssl")
                .current_dir(d)
                .args(args.split_whitespace()),
        );
    };
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=primaryd-test-ca");
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    openssl("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.cnf");
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(
            d.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let dir = d.to_path_buf();
    let server = Server::start_with(1, move |_| {
        vec![
            format!("--ssl-ca={}", dir.join("ca.pem").display()),
            format!("--ssl-cert={}", dir.join("server.pem").display()),
            format!("--ssl-key={}", dir.join("server.key").display()),
        ]
    })
    .await;
    server
        .sql(&format!(
            "CREATE USER 'tlsuser'@'127.0.0.1' IDENTIFIED BY '{CHECK_PASS}' REQUIRE SSL"
        ))
        .await;
    server
        .sql("GRANT SLAVE MONITOR ON *.* TO 'tlsuser'@'127.0.0.1'")
        .await;
    let mut cfg = server.tcp(2000);
    cfg.user = "tlsuser".into();

    let r = probe(&cfg).probe().await;
    let reason = assert_failed(&r, FailureKind::Query);
    assert!(
        reason.contains("ERROR 1045"),
        "plain TCP is refused: {reason}"
    );

    cfg.tls = Some(TlsConfig {
        ca_file: Some(d.join("ca.pem")),
        skip_hostname_check: false,
    });
    assert_eq!(
        probe(&cfg).probe().await,
        writable(),
        "TLS with the private CA"
    );

    cfg.tls = Some(TlsConfig {
        ca_file: None,
        skip_hostname_check: false,
    });
    let r = probe(&cfg).probe().await;
    let reason = assert_failed(&r, FailureKind::Query);
    assert!(
        reason.starts_with("connect failed: TLS or protocol error: ")
            && reason.contains("UnknownIssuer"),
        "{reason}"
    );
}
