//! Configs, probes and waits the tests share.

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::OptsBuilder;
use primaryd::config::{self, MysqlConfig, MysqlEndpoint, Role, ServiceConfig};
use primaryd::health::checker::Health;
use primaryd::health::mysql::{FailureKind, MysqlProbe, ProbeResult};
use primaryd::health::services::{self, HealthServices};
use primaryd::health::state::ServiceStatus;
use primaryd::health::task::HealthEvent;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::server::*;

pub(crate) fn root_opts(socket: &Path) -> OptsBuilder {
    OptsBuilder::default()
        .socket(Some(socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .prefer_socket(false)
}

pub(crate) fn mysql_config(endpoint: MysqlEndpoint, timeout_ms: u64) -> MysqlConfig {
    let mut c = MysqlConfig::new(endpoint, CHECK_USER);
    c.interval = Duration::from_millis(50);
    c.timeout = Duration::from_millis(timeout_ms);
    (c.rise, c.fall) = (2, 1);
    c
}

/// A service around `mysql`, announcing 127.0.0.1 (always configured).
pub(crate) fn service(name: &str, role: Role, mysql: MysqlConfig) -> ServiceConfig {
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

pub(crate) fn probe(cfg: &MysqlConfig) -> MysqlProbe {
    MysqlProbe::new(cfg, Some(CHECK_PASS.into()))
}

pub(crate) fn replica_probe(cfg: &MysqlConfig) -> MysqlProbe {
    MysqlProbe::for_service(
        &service("reader", Role::Replica, cfg.clone()),
        Some(CHECK_PASS.into()),
    )
}

pub(crate) fn writable() -> ProbeResult {
    ProbeResult::writable()
}

/// An unhealthy result as the operator reads it (`None`: not unhealthy).
pub(crate) fn unhealthy(r: &ProbeResult) -> Option<String> {
    match r {
        ProbeResult::Unhealthy(problems) => Some(problems.to_string()),
        _ => None,
    }
}

/// Probes until `want` holds or the deadline passes; returns the last result.
pub(crate) async fn probe_until(
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

pub(crate) async fn timed(p: &mut MysqlProbe) -> (ProbeResult, Duration) {
    let start = Instant::now();
    let r = p.probe().await;
    (r, start.elapsed())
}

pub(crate) async fn next(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a health event in time")
        .expect("task alive")
}

pub(crate) fn assert_failed(r: &ProbeResult, want: FailureKind) -> &str {
    match r {
        ProbeResult::Failed { kind, reason } if *kind == want => reason,
        other => panic!("expected Failed {{ kind: {want:?}, .. }}, got {other:?}"),
    }
}

/// Waits until a service's published status satisfies `want`; panics with the last status
/// after `within`. Returns the status and how long it took.
pub(crate) async fn wait_status(
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

pub(crate) fn up(s: &ServiceStatus) -> bool {
    s.health == Health::Up
}

pub(crate) fn down(s: &ServiceStatus) -> bool {
    s.health == Health::Down
}

/// Starts the health tasks for `config` as the daemon does, with a consumer for their
/// events (the tasks stop when nobody listens).
pub(crate) fn start_health(
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
pub(crate) fn config_text(state_dir: &Path, services: &[String]) -> String {
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
pub(crate) fn service_toml(
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
