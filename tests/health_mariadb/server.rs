//! One private mariadbd per [`Server`], the prerequisites, and the private network namespace.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use primaryd::config::{MysqlConfig, MysqlEndpoint};
use primaryd::health::mysql::HEARTBEAT_TABLE_SQL;

use crate::setup::{mysql_config, root_opts};

pub(crate) const CHECK_USER: &str = "primaryd";
pub(crate) const CHECK_PASS: &str = "s3cret-check";

/// One private mariadbd. Dropping it kills the server and removes its directory.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL also ends a SIGSTOPped process; wait() reaps it before the dir goes.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// These tests need root, user mysql and the MariaDB binaries (`.ci/run` installs them). A
/// machine without them fails loudly rather than passing without testing anything.
pub(crate) fn require_prerequisites() {
    let ok = testkit::is_root()
        && mysql_ids().is_some()
        && find_binary("mariadbd").is_some()
        && find_binary("mariadb-install-db").is_some();
    assert!(
        ok,
        "these tests need root, user mysql, mariadbd and mariadb-install-db \
         (run .ci/run, or install mariadb-server and run as root)"
    );
}

pub(crate) fn mysql_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, "mysql"]).output().ok()?;
        String::from_utf8(o.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// kill(2) without a child process: no blocking call on the runtime's thread.
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// True when every thread of `pid` is stopped: kill(2) only queues SIGSTOP, and on a loaded
/// machine the server can still answer for a moment after it.
pub(crate) fn all_threads_stopped(pid: u32) -> bool {
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
pub(crate) fn in_private_netns<F, Fut>(make: F)
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
        testkit::ip("link set lo up");
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
    pub(crate) async fn start(server_id: u32) -> Server {
        Server::start_with(server_id, |_| Vec::new()).await
    }

    /// Like `start`, with extra `mariadbd` arguments made from the server's directory.
    pub(crate) async fn start_with(server_id: u32, extra: impl Fn(&Path) -> Vec<String>) -> Server {
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

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mysqld.err")).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Polls until root connects, the process exits, or 60 s pass (slow, loaded CI).
    pub(crate) async fn wait_ready(&mut self) -> bool {
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
    pub(crate) async fn admin(&self) -> Conn {
        let mut c = self.binlogged().await;
        // Keep test users out of the binlog: a replica must not replay them.
        c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
        c
    }

    /// A root connection whose writes replicate.
    pub(crate) async fn binlogged(&self) -> Conn {
        Conn::new(root_opts(&self.socket()))
            .await
            .expect("root connects")
    }

    pub(crate) async fn sql(&self, sql: &str) {
        self.admin()
            .await
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub(crate) async fn query_u64(&self, sql: &str) -> u64 {
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
    pub(crate) async fn setup(&self) {
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

    pub(crate) fn tcp(&self, timeout_ms: u64) -> MysqlConfig {
        mysql_config(
            MysqlEndpoint::Tcp {
                host: "127.0.0.1".into(),
                port: self.port,
            },
            timeout_ms,
        )
    }

    pub(crate) fn unix(&self, timeout_ms: u64) -> MysqlConfig {
        mysql_config(MysqlEndpoint::Socket(self.socket()), timeout_ms)
    }

    /// Ids of the check user's connections whose running statement starts with `info`
    /// (`None`: all of them).
    pub(crate) async fn check_connections(&self, info: Option<&str>) -> Vec<u64> {
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
