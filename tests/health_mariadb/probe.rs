//! One server through the life of a primary, and TLS to the server.

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use primaryd::config::TlsConfig;
use primaryd::health::mysql::{FailureKind, Flavour, MysqlProbe, ProbeResult};

use testkit::run_ok;

use crate::server::*;
use crate::setup::*;

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
