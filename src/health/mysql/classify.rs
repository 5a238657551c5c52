//! What a driver or server error means for the check: a lost connection (down at once), a
//! timeout, an answer about the server (unhealthy), or a failed query, with what to do about
//! it in the reason. Pure (errors in, [`ProbeResult`] out).

use std::io;

use mysql_async::{DriverError, IoError, ServerError};

use super::evaluate::Problem;
use super::result::{FailureKind, ProbeResult};
use crate::config::WriteProbeTable;

/// Where the probe was when the error came.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stage {
    Connect,
    Query(&'static str),
}

/// Server errors that mean the connection is going away, not that the query was wrong.
const ER_SERVER_SHUTDOWN: u16 = 1053;
const ER_CONNECTION_KILLED: u16 = 1927; // MariaDB
const ER_SESSION_WAS_KILLED: u16 = 3169; // MySQL
const ER_CLIENT_INTERACTION_TIMEOUT: u16 = 4031; // MySQL 8.0.24+
/// MySQL 5.7+: "The server is currently in offline mode".
const ER_SERVER_OFFLINE_MODE: u16 = 3032;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// "The MariaDB server is running with the --read-only option": a write refused.
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_BAD_DB: u16 = 1049;
const ER_BAD_FIELD: u16 = 1054;

pub(super) fn classify(err: mysql_async::Error, stage: Stage, hint: Option<&str>) -> ProbeResult {
    let lost = |detail: String| {
        let reason = match stage {
            Stage::Connect => format!("connect failed: {detail}"),
            Stage::Query(_) => format!("connection lost: {detail}"),
        };
        ProbeResult::failed(FailureKind::Lost, reason)
    };
    let query = |detail: String, hint: Option<&str>| {
        let mut reason = match stage {
            Stage::Connect => format!("connect failed: {detail}"),
            Stage::Query(sql) => format!("{sql} failed: {detail}"),
        };
        if let Some(h) = hint {
            reason.push_str(&format!(" ({h})"));
        }
        ProbeResult::failed(FailureKind::Query, reason)
    };
    match err {
        // rustls reports a refused certificate or handshake as InvalidData: an answer about
        // the server, not a loss (and retried with backoff, not at every check).
        mysql_async::Error::Io(IoError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
            query(format!("TLS or protocol error: {e}"), None)
        }
        mysql_async::Error::Io(IoError::Io(e)) => lost(io_detail(&e)),
        // A TLS failure (certificate, protocol) is an answer about the server, not a loss.
        #[allow(unreachable_patterns)]
        mysql_async::Error::Io(e) => query(format!("TLS: {e}"), None),
        mysql_async::Error::Driver(DriverError::ConnectionClosed) => {
            lost("connection closed by the server".to_string())
        }
        mysql_async::Error::Server(e) if is_going_away(&e) => lost(server_detail(&e)),
        // MySQL refuses (and disconnects) ordinary users in offline mode: that is an answer.
        mysql_async::Error::Server(e) if e.code == ER_SERVER_OFFLINE_MODE => {
            ProbeResult::Unhealthy(Problem::OfflineModeRefused(server_detail(&e)).into())
        }
        mysql_async::Error::Server(e) if e.code == ER_ACCESS_DENIED => query(
            server_detail(&e),
            Some("check [service.mysql] user and the password in password_file"),
        ),
        mysql_async::Error::Server(e) => {
            let hint = hint.filter(|_| is_privilege_error(&e));
            query(server_detail(&e), hint)
        }
        other => query(other.to_string(), None),
    }
}

/// A failed heartbeat write or read-back, with what to do about it.
pub(super) fn write_failure(err: mysql_async::Error, table: &WriteProbeTable) -> ProbeResult {
    let stage = Stage::Query("write probe");
    match &err {
        mysql_async::Error::Server(e) => match e.code {
            ER_OPTION_PREVENTS_STATEMENT => {
                ProbeResult::Unhealthy(Problem::WriteRefused(server_detail(e)).into())
            }
            ER_LOCK_WAIT_TIMEOUT => ProbeResult::failed(
                FailureKind::Timeout,
                format!("write probe failed: {}", server_detail(e)),
            ),
            ER_NO_SUCH_TABLE | ER_BAD_DB | ER_BAD_FIELD => ProbeResult::failed(
                FailureKind::Query,
                format!(
                    "write probe failed: {} (create {table} with the SQL in docs/health.md)",
                    server_detail(e)
                ),
            ),
            code if is_privilege_error(e) => ProbeResult::failed(
                FailureKind::Query,
                format!(
                    "write probe failed: {} (ERROR {code}: GRANT SELECT, INSERT, UPDATE ON \
                     {table} TO the check user)",
                    server_detail(e)
                ),
            ),
            _ => classify(err, stage, None),
        },
        _ => classify(err, stage, None),
    }
}

fn is_going_away(e: &ServerError) -> bool {
    matches!(
        e.code,
        ER_SERVER_SHUTDOWN
            | ER_CONNECTION_KILLED
            | ER_SESSION_WAS_KILLED
            | ER_CLIENT_INTERACTION_TIMEOUT
    )
}

/// Access denied (1045), specific privilege missing (1227), command denied (1142/1143).
fn is_privilege_error(e: &ServerError) -> bool {
    matches!(e.code, 1045 | 1142 | 1143 | 1227)
}

fn server_detail(e: &ServerError) -> String {
    format!("ERROR {} ({}): {}", e.code, e.state, e.message)
}

fn io_detail(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "server closed the connection (EOF)".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::flavour::Flavour;
    use super::*;

    /// A server's error with this code.
    fn server_error(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    /// The kind and reason of a failed probe.
    fn failed(r: ProbeResult) -> (FailureKind, String) {
        match r {
            ProbeResult::Failed { kind, reason } => (kind, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classify_errors() {
        let io = |k: io::ErrorKind| mysql_async::Error::Io(IoError::Io(io::Error::from(k)));
        let (k, r) = failed(classify(
            io(io::ErrorKind::ConnectionRefused),
            Stage::Connect,
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        assert!(r.starts_with("connect failed: "), "{r}");
        let (k, r) = failed(classify(
            io(io::ErrorKind::UnexpectedEof),
            Stage::Query("SHOW ALL SLAVES STATUS"),
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        assert!(r.starts_with("connection lost: "), "{r}");
        let (k, _) = failed(classify(
            mysql_async::Error::Driver(DriverError::ConnectionClosed),
            Stage::Query("x"),
            None,
        ));
        assert_eq!(k, FailureKind::Lost);
        assert_eq!(
            failed(classify(server_error(1053), Stage::Query("x"), None)).0,
            FailureKind::Lost
        );
        let (k, r) = failed(classify(
            server_error(1227),
            Stage::Query("SHOW ALL SLAVES STATUS"),
            Some(Flavour::MariaDb.privilege_hint()),
        ));
        assert_eq!(k, FailureKind::Query);
        assert!(
            r.starts_with("SHOW ALL SLAVES STATUS failed: ERROR 1227"),
            "{r}"
        );
        assert!(r.contains("SLAVE MONITOR"), "{r}");
        match classify(server_error(3032), Stage::Connect, None) {
            ProbeResult::Unhealthy(r) => {
                assert!(r.to_string().starts_with("offline_mode=1 ("), "{r}")
            }
            other => panic!("{other:?}"),
        }
        // The hint is only for privilege errors.
        let (_, r) = failed(classify(
            server_error(1064),
            Stage::Query("x"),
            Some(Flavour::MariaDb.privilege_hint()),
        ));
        assert!(!r.contains("SLAVE MONITOR"), "{r}");
    }

    #[test]
    fn write_probe_failures_say_what_to_do() {
        let t = WriteProbeTable {
            database: "primaryd".into(),
            table: "heartbeat".into(),
        };
        let (k, r) = failed(write_failure(server_error(1146), &t));
        assert_eq!(k, FailureKind::Query);
        assert!(
            r.ends_with("(create primaryd.heartbeat with the SQL in docs/health.md)"),
            "{r}"
        );
        let (k, r) = failed(write_failure(server_error(1142), &t));
        assert_eq!(k, FailureKind::Query);
        assert!(
            r.contains("GRANT SELECT, INSERT, UPDATE ON primaryd.heartbeat"),
            "{r}"
        );
        assert_eq!(
            failed(write_failure(server_error(1205), &t)).0,
            FailureKind::Timeout
        );
        assert_eq!(
            failed(write_failure(server_error(1053), &t)).0,
            FailureKind::Lost
        );
        match write_failure(server_error(1290), &t) {
            ProbeResult::Unhealthy(r) => {
                assert!(r.to_string().starts_with("write probe refused: "), "{r}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn access_denied_and_tls_failures_are_answers_not_losses() {
        let (k, r) = match classify(
            mysql_async::Error::Server(ServerError {
                code: 1045,
                message: "Access denied for user 'primaryd'@'localhost' (using password: YES)"
                    .into(),
                state: "28000".into(),
            }),
            Stage::Connect,
            None,
        ) {
            ProbeResult::Failed { kind, reason } => (kind, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(k, FailureKind::Query);
        assert!(
            r.starts_with("connect failed: ERROR 1045 (28000): Access denied"),
            "{r}"
        );
        assert!(r.ends_with("(check [service.mysql] user and the password in password_file)"));
        let tls = mysql_async::Error::Io(IoError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        )));
        match classify(tls, Stage::Connect, None) {
            ProbeResult::Failed { kind, reason } => {
                assert_eq!(kind, FailureKind::Query);
                assert_eq!(
                    reason,
                    "connect failed: TLS or protocol error: invalid peer certificate: UnknownIssuer"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
