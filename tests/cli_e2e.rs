//! primaryctl and /metrics against a running daemon in the namespace lab (FRR ToR, MariaDB,
//! primaryd): the tables and the JSON, a failover seen in both and in the metrics, drain and
//! undrain, reload (accepted and refused) and SIGHUP, a reload stuck on its file, a flood of
//! control clients, and the errors for a daemon that is not there, a socket that is not
//! permitted, or a stdout that is closed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{
    hold_until, run, wait_until, Lab, MariaDbOpts, Primaryd, PrimarydOpts, DB_ADDR, SERVICE_PREFIX,
    STEP,
};

const PRIMARYCTL: &str = env!("CARGO_BIN_EXE_primaryctl");
const METRICS_PORT: u16 = 9479;

fn ctl(socket: &Path, args: &[&str]) -> Output {
    run(Command::new(PRIMARYCTL)
        .arg("--socket")
        .arg(socket)
        .args(args))
}

/// stdout of a primaryctl command that must succeed.
fn ctl_ok(socket: &Path, args: &[&str]) -> String {
    let out = ctl(socket, args);
    assert!(
        out.status.success(),
        "primaryctl {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ctl_json(socket: &Path, args: &[&str]) -> Value {
    let text = ctl_ok(socket, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The metrics page, fetched from inside the DB namespace (the endpoint is on its loopback).
fn scrape(lab: &Lab) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{METRICS_PORT}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = run(Command::new("ip").args(["netns", "exec", &lab.db_ns, "bash", "-c", &script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metric(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

struct Setup {
    lab: Lab,
    db: Arc<testkit::MariaDb>,
    daemon: Arc<Primaryd>,
    socket: PathBuf,
    config_path: PathBuf,
    base_config: String,
}

fn setup() -> Setup {
    setup_wrapped(&[])
}

/// The lab with primaryd started through `wrapper` (a command that execs it).
fn setup_wrapped(wrapper: &[&str]) -> Setup {
    let mut lab = Lab::new();
    let db = lab.add_mariadb(MariaDbOpts::primary());
    let socket = lab.dir().join("ctl.sock");
    let base = lab.primaryd_config(&db, PrimarydOpts::default());
    let config = format!(
        "{base}\n[control]\nsocket = {:?}\nstate_dir = {:?}\n\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n",
        socket.display().to_string(),
        lab.dir().join("state").display().to_string()
    );
    let daemon = lab.start_primaryd_wrapped(&config, wrapper);
    let config_path = lab.dir().join("primaryd0.toml");
    lab.wait_route(SERVICE_PREFIX, STEP);
    Setup {
        lab,
        db,
        daemon,
        socket,
        config_path,
        base_config: config,
    }
}

#[test]
fn show_commands_tables_and_json_follow_a_failover_and_metrics_change() {
    let s = setup();
    let sock = &s.socket;

    let table = ctl_ok(sock, &["show", "routes"]);
    for want in [
        "SERVICE",
        "main",
        SERVICE_PREFIX,
        "announced",
        "tor1",
        "advertised since",
        "as-path [4200000001]",
    ] {
        assert!(table.contains(want), "{want:?} missing:\n{table}");
    }
    let routes = ctl_json(sock, &["show", "routes", "--json"]);
    let r = &routes[0];
    assert_eq!(r["service"], "main");
    assert_eq!(r["prefix"], SERVICE_PREFIX);
    assert_eq!(r["state"], "up");
    assert_eq!(r["announced"], true);
    let p = &r["peers"][0];
    assert_eq!(p["peer"], "tor1");
    assert_eq!(p["advertised"], true);
    assert_eq!(p["attributes"]["as_path"], "4200000001");
    assert_eq!(p["attributes"]["next_hop"][0], DB_ADDR);

    let peers = ctl_json(sock, &["show", "peers", "--json"]);
    let tor = &peers[0];
    assert_eq!(tor["state"], "Established");
    assert_eq!(tor["remote_asn"], 65001);
    assert_eq!(tor["local_asn"], 4_200_000_001u64);
    assert_eq!(tor["prefixes_sent"], 1);
    let caps: Vec<&str> = tor["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        caps.contains(&"ipv4-unicast") && caps.contains(&"4-octet-asn"),
        "{caps:?}"
    );
    let table = ctl_ok(sock, &["show", "peers"]);
    assert!(
        table.contains("Established") && table.contains("tor1"),
        "{table}"
    );

    let services = ctl_json(sock, &["show", "services", "--json"]);
    let main = &services[0];
    assert_eq!(main["state"], "up");
    assert_eq!(main["drained"], false);
    assert!(main["last_latency_ms"].as_f64().unwrap() > 0.0);
    // The route is out: the service address is opened (docs/clients.md).
    wait_until(STEP, "the service address is no longer refused", || {
        ctl_json(sock, &["show", "services", "--json"])[0]["clients"]["refusal"] == "open"
    });
    let services = ctl_json(sock, &["show", "services", "--json"]);
    assert_eq!(services[0]["clients"]["export"], "primary", "{services}");
    let table = ctl_ok(sock, &["show", "services"]);
    assert!(
        table.contains("main") && table.contains("primary") && table.contains("open, primary"),
        "{table}"
    );

    let received = ctl_json(sock, &["show", "routes", "received", "--json"]);
    assert!(
        received.as_array().unwrap().is_empty(),
        "FRR announces nothing here"
    );
    let out = ctl(sock, &["show", "routes", "received", "--peer", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no peer named"));

    let page = scrape(&s.lab);
    assert_eq!(
        metric(&page, "primaryd_service_up{service=\"main\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        metric(&page, "primaryd_bgp_session_established{peer=\"tor1\""),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            "primaryd_service_withdrawals_total{service=\"main\"}"
        ),
        Some(0.0)
    );

    // Failover: demoted, the route goes, and everything says so.
    s.db.set_read_only(true);
    s.lab.wait_no_route(SERVICE_PREFIX, STEP);
    wait_until(STEP, "show routes says withdrawn", || {
        let r = ctl_json(sock, &["show", "routes", "--json"]);
        r[0]["announced"] == false
            && r[0]["peers"][0]["advertised"] == false
            && r[0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("read_only=1")
    });
    let page = scrape(&s.lab);
    assert_eq!(
        metric(&page, "primaryd_service_up{service=\"main\"}"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "primaryd_service_withdrawals_total{service=\"main\"}"
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &page,
            "primaryd_check_duration_seconds_count{service=\"main\"}"
        )
        .unwrap()
            > 1.0
    );
    assert_eq!(
        metric(&page, "primaryd_bgp_prefixes_advertised{peer=\"tor1\""),
        Some(0.0)
    );
}

#[test]
fn drain_answers_after_the_withdraw_and_undrain_restores() {
    let s = setup();
    let sock = &s.socket;
    let out = ctl_ok(sock, &["drain", "main"]);
    assert!(out.contains("drained: main"), "{out}");
    // The answer came after the UPDATE was sent: the ToR drops it within moments.
    s.lab
        .wait_no_route(SERVICE_PREFIX, std::time::Duration::from_secs(2));
    let services = ctl_json(sock, &["show", "services", "--json"]);
    assert_eq!(services[0]["drained"], true);
    assert!(services[0]["reason"].as_str().unwrap().contains("drain"));
    let out = ctl(sock, &["drain", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service named"));

    ctl_ok(sock, &["undrain", "--all"]);
    s.lab.wait_route(SERVICE_PREFIX, STEP);
    let services = ctl_json(sock, &["show", "services", "--json"]);
    assert_eq!(services[0]["drained"], false);
}

#[test]
fn reload_applies_changes_keeps_unchanged_sessions_and_refuses_bad_configs() {
    let s = setup();
    let sock = &s.socket;
    let sessions_before = s.lab.bgp_connections_established();

    // Add a peer (nobody there: it just retries) and a MED on the service.
    let added = s
        .base_config
        .replace(
            "[[service]]",
            "[[bgp.peer]]\nname = \"tor9\"\naddress = \"198.18.9.0\"\nremote_asn = 65009\n\n[[service]]",
        )
        .replace("[service.mysql]", "med = 50\n[service.mysql]");
    std::fs::write(&s.config_path, &added).unwrap();
    let out = ctl_ok(sock, &["reload"]);
    assert!(out.contains("peer tor9 started"), "{out}");
    wait_until(STEP, "FRR sees MED 50", || {
        s.lab
            .bgp_best_path(SERVICE_PREFIX)
            .is_some_and(|p| p.med == Some(50))
    });
    let peers = ctl_json(sock, &["show", "peers", "--json"]);
    assert_eq!(peers.as_array().unwrap().len(), 2);
    assert_eq!(
        s.lab.bgp_connections_established(),
        sessions_before,
        "the unchanged session to tor1 must stay up"
    );

    // A config with a mistake is refused with the reason; the running one stays.
    std::fs::write(
        &s.config_path,
        added.replace("med = 50", "med = 50\nmde = 1"),
    )
    .unwrap();
    let out = ctl(sock, &["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("service[0].mde"), "{err}");
    assert!(s.lab.tor_kernel_route(SERVICE_PREFIX).is_some());
    assert_eq!(
        ctl_json(sock, &["show", "peers", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // SIGHUP does the same: back to the original config, tor9 goes.
    std::fs::write(&s.config_path, &s.base_config).unwrap();
    let daemon_pid = primaryd_pid(&s.lab);
    run(Command::new("kill").args(["-HUP", &daemon_pid.to_string()]));
    wait_until(STEP, "tor9 removed after SIGHUP", || {
        ctl_json(sock, &["show", "peers", "--json"])
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    wait_until(STEP, "MED gone after SIGHUP", || {
        s.lab
            .bgp_best_path(SERVICE_PREFIX)
            .is_some_and(|p| p.med.is_none())
    });
    assert_eq!(s.lab.bgp_connections_established(), sessions_before);
    s.lab.assert_primaryd_alive();
}

fn primaryd_pid(lab: &Lab) -> u32 {
    let out = run(Command::new("ip").args(["netns", "pids", &lab.db_ns]));
    let pids = String::from_utf8_lossy(&out.stdout).into_owned();
    pids.lines()
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "primaryd")
        })
        .expect("primaryd runs in the DB namespace")
}

#[test]
fn clear_errors_when_the_daemon_is_absent_or_the_socket_not_permitted() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let out = ctl(&missing, &["show", "routes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is primaryd running"), "{err}");

    // A socket only root may use: an unprivileged user is told so.
    let listener = std::os::unix::net::UnixListener::bind(dir.path().join("root.sock")).unwrap();
    let path = dir.path().join("root.sock");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o660)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = run(Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            PRIMARYCTL,
        ])
        .arg("--socket")
        .arg(&path)
        .args(["show", "peers"]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run as root or as a member of the socket's group"),
        "{err}"
    );
    drop(listener);
}

/// The number of checks the metrics say ran.
fn checks_run(lab: &Lab) -> f64 {
    let page = scrape(lab);
    metric(
        &page,
        "primaryd_check_duration_seconds_count{service=\"main\"}",
    )
    .unwrap_or_else(|| panic!("no check count in:\n{page}"))
}

#[test]
fn a_reload_stuck_on_its_file_blocks_neither_checks_nor_sessions_nor_primaryctl() {
    let s = setup();
    let sock = &s.socket;
    let sessions_before = s.lab.bgp_connections_established();
    // The config path becomes a FIFO nobody writes to: reading it blocks in open(2), as a
    // hung NFS or FUSE mount would.
    std::fs::remove_file(&s.config_path).unwrap();
    nix::unistd::mkfifo(
        &s.config_path,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    run(Command::new("kill").args(["-HUP", &s.daemon.pid().to_string()]));

    // While that read hangs: primaryctl answers at once ...
    let asked = Instant::now();
    let peers = ctl_json(sock, &["show", "peers", "--json"]);
    assert_eq!(peers[0]["state"], "Established");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // ... a demotion is acted on, by an UPDATE on the session that stays up (not by the
    // ToR's hold timer expiring on a frozen daemon) ...
    s.db.set_read_only(true);
    s.lab.wait_no_route(SERVICE_PREFIX, STEP);
    hold_until(
        STEP,
        "the session stays established",
        || s.lab.bgp_connections_established() == sessions_before,
        "the read has been given up (logged)",
        || s.daemon.log().contains("reload refused"),
    );
    let peers = ctl_json(sock, &["show", "peers", "--json"]);
    assert_eq!(peers[0]["state"], "Established");
    assert_eq!(peers[0]["established_transitions"], 1);
    // ... and the reload was refused with the reason, the running configuration kept.
    assert!(
        s.daemon
            .log()
            .contains("cannot read: no answer within 3000 ms (a FIFO without a writer"),
        "{}",
        s.daemon.log()
    );
    // Another reload while that read is still stuck is refused at once.
    let out = ctl(sock, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("configuration not reloaded")
            && err.contains("the previous attempt has not returned yet"),
        "{err}"
    );

    // Unstick the read (a writer that closes at once: the read sees an empty file), put the
    // file back: the daemon reloads normally and the service comes back when writable.
    let fifo = s.config_path.clone();
    let writer = std::thread::spawn(move || {
        drop(std::fs::OpenOptions::new().write(true).open(fifo));
    });
    wait_until(STEP, "the stuck read returned", || writer.is_finished());
    std::fs::remove_file(&s.config_path).unwrap();
    std::fs::write(&s.config_path, &s.base_config).unwrap();
    wait_until(STEP, "a reload is accepted again", || {
        ctl(sock, &["reload"]).status.success()
    });
    let out = ctl_ok(sock, &["reload"]);
    assert!(out.contains("no changes"), "{out}");
    s.db.set_read_only(false);
    s.lab.wait_route(SERVICE_PREFIX, STEP);
    s.lab.assert_primaryd_alive();
}

#[test]
fn a_flood_of_control_clients_is_refused_and_never_starves_the_checks() {
    // The common default: soft limit 1024, hard limit far above. primaryd raises its own.
    let s = setup_wrapped(&["prlimit", "--nofile=1024:20000"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.daemon.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["20000", "20000"],
        "{open_files}"
    );
    // This test's own process needs room for the clients too.
    primaryd::rlimit::raise_nofile().unwrap();

    let mut clients: Vec<(std::os::unix::net::UnixStream, String)> = (0..1100)
        .map(|i| {
            let c = std::os::unix::net::UnixStream::connect(&s.socket)
                .unwrap_or_else(|e| panic!("client {i}: {e}"));
            c.set_nonblocking(true).unwrap();
            (c, String::new())
        })
        .collect();
    // Everyone beyond [control] max_clients (64) is told why and closed.
    let refused = |clients: &mut Vec<(std::os::unix::net::UnixStream, String)>| {
        use std::io::Read;
        for (c, text) in clients.iter_mut() {
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = c.read(&mut buf) {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        clients
            .iter()
            .filter(|(_, t)| t.contains("too many control clients: 64 are connected"))
            .count()
    };
    wait_until(STEP, "1036 clients were refused", || {
        refused(&mut clients) == 1100 - 64
    });
    // The 64 held connections take no check's descriptors: checks keep running, the service
    // stays announced.
    let before = checks_run(&s.lab);
    hold_until(
        STEP,
        "the service stays announced",
        || s.lab.tor_kernel_route(SERVICE_PREFIX).is_some(),
        "20 more checks ran",
        || checks_run(&s.lab) >= before + 20.0,
    );
    let log = s.daemon.log();
    assert!(!log.contains("cannot list local addresses"), "{log}");
    assert!(!log.contains("service down"), "{log}");
    drop(clients);
    wait_until(STEP, "primaryctl is served again", || {
        ctl(&s.socket, &["show", "services"]).status.success()
    });
    let services = ctl_json(&s.socket, &["show", "services", "--json"]);
    assert_eq!(services[0]["state"], "up");
}

#[test]
fn a_closed_stdout_is_exit_status_1_not_a_panic() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    // A stand-in daemon: answers every request with an empty list (or a line of text).
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let data = if line.contains("drain") {
                "\"drained: main\""
            } else {
                "[]"
            };
            let answer = format!("{{\"version\":1,\"ok\":true,\"data\":{data}}}\n");
            (&stream).write_all(answer.as_bytes()).unwrap();
        }
    });
    for args in [
        &["show", "peers"][..],
        &["show", "peers", "--json"],
        &["drain", "main"],
    ] {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let out = Command::new(PRIMARYCTL)
            .arg("--socket")
            .arg(&path)
            .args(args)
            .stdout(std::process::Stdio::from(write_end))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            "primaryctl: cannot write the answer: Broken pipe (os error 32)",
            "{args:?}"
        );
    }
    server.join().unwrap();
}
