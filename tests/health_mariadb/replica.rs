//! Replica roles.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use primaryd::config::Role;
use primaryd::health::checker::Health;
use primaryd::health::mysql::{Healthy, ProbeResult};
use primaryd::health::task::{self, HealthEvent};
use tokio::sync::mpsc;

use crate::server::*;
use crate::setup::*;

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
