//! primaryd under test, run in the DB namespace with a config per src/config.rs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    kill_child, run, signal, tail, wait_for, MariaDb, DB_ADDR, DB_ASN, DB_ROUTER_ID,
    SERVICE_PREFIX, TOR_ADDR, TOR_ASN,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_primaryd");

/// The knobs tests turn; everything else in the config is fixed by the lab.
#[derive(Debug, Clone, Copy)]
pub struct PrimarydOpts {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    /// Offered hold time; FRR offers 3 (`timers 1 3`), the session uses the smaller.
    pub hold_time: u16,
    /// `[service] fallback`: off unless a test is about it, so "no route" means withdrawn.
    pub fallback: bool,
}

impl Default for PrimarydOpts {
    fn default() -> Self {
        PrimarydOpts {
            interval_ms: 100,
            timeout_ms: 500,
            rise: 1,
            fall: 1,
            hold_time: 3,
            fallback: false,
        }
    }
}

impl PrimarydOpts {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// The lab's config: one peer (the ToR), one service checking `db` over its socket.
pub fn config_text(db: &MariaDb, password_file: &Path, o: &PrimarydOpts) -> String {
    format!(
        r#"[bgp]
asn = {DB_ASN}
router_id = "{DB_ROUTER_ID}"
hold_time = {hold}

[[bgp.peer]]
name = "tor1"
address = "{TOR_ADDR}"
remote_asn = {TOR_ASN}
local_address = "{DB_ADDR}"

[[service]]
name = "main"
prefixes = ["{SERVICE_PREFIX}"]
fallback = {fallback}

[service.mysql]
socket = "{socket}"
user = "{user}"
password_file = "{pass}"
interval_ms = {interval}
timeout_ms = {timeout}
rise = {rise}
fall = {fall}
"#,
        hold = o.hold_time,
        socket = db.socket.display(),
        user = super::mariadb::PRIMARYD_USER,
        pass = password_file.display(),
        interval = o.interval_ms,
        timeout = o.timeout_ms,
        rise = o.rise,
        fall = o.fall,
        fallback = o.fallback,
    )
}

pub const CTL_BIN: &str = env!("CARGO_BIN_EXE_primaryctl");

pub struct Primaryd {
    pub config: PathBuf,
    /// The control socket the harness gave it (None when the test's config has `[control]`).
    pub control_socket: Option<PathBuf>,
    log: PathBuf,
    pid: u32,
    child: Mutex<Child>,
    started: Instant,
    /// Set once the test signals it: from then on an exit is expected.
    signalled: AtomicBool,
}

impl Primaryd {
    /// Where the control socket of the lab's `n`th daemon is, unless its config says otherwise.
    pub fn control_socket_path(lab_dir: &Path, n: usize) -> PathBuf {
        lab_dir.join(format!("primaryd{n}.sock"))
    }

    /// Starts primaryd in `ns`; `wrapper` is a command that execs it (e.g. `prlimit
    /// --nofile=1024:20000`), so the PID stays primaryd's.
    pub(super) fn start(
        lab_dir: &Path,
        ns: &str,
        n: usize,
        config_text: &str,
        wrapper: &[&str],
    ) -> Primaryd {
        let config = lab_dir.join(format!("primaryd{n}.toml"));
        // Every daemon gets its own control socket and state dir (the defaults under /run and
        // /var/lib are shared by the whole machine), unless the test chose them.
        let control_socket = match config_text.split_once("[control]") {
            None => Some(Self::control_socket_path(lab_dir, n)),
            // The test's own: `socket = "…"` in its [control] table.
            Some((_, control)) => control
                .lines()
                .take_while(|l| !l.trim_start().starts_with('['))
                .find_map(|l| l.trim().strip_prefix("socket = "))
                .map(|v| PathBuf::from(v.trim_matches('"'))),
        };
        let config_text = &if config_text.contains("[control]") {
            config_text.to_string()
        } else {
            format!(
                "{config_text}\n[control]\nsocket = {:?}\nstate_dir = {:?}\n",
                Self::control_socket_path(lab_dir, n).display().to_string(),
                lab_dir.join(format!("state{n}")).display().to_string()
            )
        };
        fs::write(&config, config_text).unwrap();
        // A config the daemon rejects fails here, with its own words, not as a missing route.
        // In the namespace: --check looks at its interfaces and addresses.
        let check = run(Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            .arg("--config")
            .arg(&config)
            .arg("--check"));
        assert!(
            check.status.success(),
            "primaryd --check rejects the lab config ({}):\n{}{}\n{config_text}",
            check.status,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = lab_dir.join(format!("primaryd{n}.log"));
        let out = fs::File::create(&log).unwrap();
        // `ip netns exec` and `env` both exec, so the child's PID is primaryd's own: signals
        // reach the daemon and the exit status is its.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "env", "RUST_LOG=primaryd=debug,info"])
            .args(wrapper)
            .arg(BIN)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn primaryd: {e}"));
        Primaryd {
            config,
            control_socket,
            log,
            pid: child.id(),
            child: Mutex::new(child),
            started: Instant::now(),
            signalled: AtomicBool::new(false),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything primaryd wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `primaryctl --socket SOCKET ARGS… --json` against this daemon, parsed.
    #[track_caller]
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let socket = self
            .control_socket
            .as_ref()
            .expect("the harness chose the control socket");
        let out = run(Command::new(CTL_BIN)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .arg("--json"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "primaryctl {args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("primaryctl {args:?}: not JSON ({e}): {stdout}"))
    }

    /// `show services`' state and reason of `service`.
    #[track_caller]
    pub fn service_state(&self, service: &str) -> (String, String) {
        let all = self.ctl_json(&["show", "services"]);
        let s = all
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == service))
            .unwrap_or_else(|| panic!("no service {service} in {all}"));
        let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        (text("state"), text("reason"))
    }

    /// `primaryctl confirm SERVICE`: its answer.
    #[track_caller]
    pub fn confirm(&self, service: &str) -> String {
        let socket = self
            .control_socket
            .as_ref()
            .expect("the harness chose the control socket");
        let out = run(Command::new(CTL_BIN)
            .arg("--socket")
            .arg(socket)
            .args(["confirm", service]));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "primaryctl confirm {service} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Log lines about peer `peer` (its tracing span) that contain `needle`.
    pub fn peer_log(&self, peer: &str, needle: &str) -> Vec<String> {
        let span = format!("peer{{name={peer} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&span) && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Time since it was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Its exit status, if it has exited (reaps it).
    pub fn try_exit(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    #[track_caller]
    fn send(&self, sig: &str) {
        assert!(
            self.try_exit().is_none(),
            "primaryd already exited ({:?}):\n{}",
            self.try_exit(),
            tail(&self.log, 40)
        );
        self.signalled.store(true, Ordering::SeqCst);
        assert!(signal(self.pid, sig), "kill -{sig} {} failed", self.pid);
    }

    #[track_caller]
    pub fn sigterm(&self) {
        self.send("TERM");
    }

    #[track_caller]
    pub fn sigkill(&self) {
        self.send("KILL");
    }

    /// Waits until primaryd exits and returns its status.
    #[track_caller]
    pub fn wait_exit(&self, within: Duration) -> ExitStatus {
        wait_for(within, "primaryd exits", || self.try_exit())
    }

    /// Panics with its log when primaryd is no longer running.
    #[track_caller]
    pub fn assert_running(&self) {
        if let Some(status) = self.try_exit() {
            panic!(
                "primaryd exited unexpectedly ({status}); the end of its log:\n{}",
                tail(&self.log, 60)
            );
        }
    }

    /// Like `assert_running`, but only until the test has signalled it.
    #[track_caller]
    pub(super) fn assert_not_died(&self) {
        if !self.signalled.load(Ordering::SeqCst) {
            self.assert_running();
        }
    }

    pub(super) fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        kill_child(&mut child);
    }
}

impl Drop for Primaryd {
    fn drop(&mut self) {
        self.kill();
    }
}
