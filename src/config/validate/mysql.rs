//! `[service.mysql]`: where the server is, how it is checked (interval, timeout, rise,
//! fall, lag, write probe, term table) and TLS.

use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::config::raw::RawMysql;
use crate::config::{
    MysqlConfig, MysqlEndpoint, Role, TlsConfig, WriteProbeTable, DEFAULT_MAX_LAG_S,
    DEFAULT_MYSQL_PORT,
};

impl Validator {
    /// A `DATABASE.TABLE` the checks write to: primary role only.
    pub(super) fn db_table(
        &mut self,
        key: String,
        raw: Option<String>,
        role: Role,
    ) -> Option<WriteProbeTable> {
        let t = match (raw, role) {
            (None, _) => return None,
            (Some(_), Role::Replica) => {
                self.bad(
                    key,
                    "only valid with role = \"primary\" (a replica is read-only)",
                );
                return None;
            }
            (Some(t), Role::Primary) => t,
        };
        let ident = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        };
        match t.split_once('.') {
            Some((d, tb)) if ident(d) && ident(tb) => Some(WriteProbeTable {
                database: d.to_string(),
                table: tb.to_string(),
            }),
            _ => {
                self.bad(
                    key,
                    format!("{t:?} is not DATABASE.TABLE (letters, digits, _ and $ only)"),
                );
                None
            }
        }
    }

    pub(super) fn mysql(&mut self, key: &str, raw: RawMysql, role: Role) -> MysqlConfig {
        let endpoint = self.endpoint(key, &raw);
        if raw.user.is_empty() {
            self.bad(format!("{key}.user"), "must not be empty");
        }
        let interval = self.positive_ms(&format!("{key}.interval_ms"), raw.interval_ms, 200);
        let timeout = self.positive_ms(&format!("{key}.timeout_ms"), raw.timeout_ms, 1000);
        let max_lag = self.max_lag(key, raw.max_lag_s, role);
        let min_up_interval = self.min_up_interval(key, raw.min_up_interval_ms);
        let write_probe_table = self.db_table(
            format!("{key}.write_probe_table"),
            raw.write_probe_table.clone(),
            role,
        );
        let term_table = self.db_table(format!("{key}.term_table"), raw.term_table.clone(), role);
        let tls = self.tls(key, &raw, &endpoint);
        MysqlConfig {
            endpoint,
            user: raw.user,
            password_file: raw.password_file.map(|p| {
                self.absolute_path(&format!("{key}.password_file"), Some(p), PathBuf::new())
            }),
            interval,
            timeout,
            rise: self.count(&format!("{key}.rise"), raw.rise, 2),
            fall: self.count(&format!("{key}.fall"), raw.fall, 1),
            max_lag,
            min_up_interval,
            write_probe_table,
            term_table,
            tls,
            watch_connection: raw.watch_connection,
        }
    }

    /// `socket` or `host` and `port`: exactly one way to reach the server.
    fn endpoint(&mut self, key: &str, raw: &RawMysql) -> MysqlEndpoint {
        match (raw.socket.clone(), raw.host.clone()) {
            (Some(s), None) => {
                if raw.port.is_some() {
                    self.bad(format!("{key}.port"), "port is only valid with host");
                }
                let socket = Some(s);
                MysqlEndpoint::Socket(self.absolute_path(
                    &format!("{key}.socket"),
                    socket,
                    "".into(),
                ))
            }
            (None, Some(h)) => MysqlEndpoint::Tcp {
                host: h,
                port: self.port(&format!("{key}.port"), raw.port, DEFAULT_MYSQL_PORT),
            },
            (Some(_), Some(_)) => {
                self.bad(key, "set either socket or host, not both");
                MysqlEndpoint::Socket(PathBuf::new())
            }
            (None, None) => {
                self.bad(key, "one of socket or host is required");
                MysqlEndpoint::Socket(PathBuf::new())
            }
        }
    }

    /// `max_lag_s`: replicas only.
    fn max_lag(&mut self, key: &str, max_lag_s: Option<i64>, role: Role) -> Duration {
        match (max_lag_s, role) {
            (None, _) => Duration::from_secs(DEFAULT_MAX_LAG_S),
            (Some(_), Role::Primary) => {
                self.bad(
                    format!("{key}.max_lag_s"),
                    "only valid with role = \"replica\"",
                );
                Duration::from_secs(DEFAULT_MAX_LAG_S)
            }
            (Some(s), Role::Replica) if (0..=86400).contains(&s) => Duration::from_secs(s as u64),
            (Some(s), Role::Replica) => {
                self.bad(
                    format!("{key}.max_lag_s"),
                    format!("{s} is invalid: must be 0..=86400 seconds"),
                );
                Duration::from_secs(DEFAULT_MAX_LAG_S)
            }
        }
    }

    fn min_up_interval(&mut self, key: &str, min_up_interval_ms: Option<i64>) -> Duration {
        match min_up_interval_ms {
            None => Duration::ZERO,
            Some(ms) if (0..=86_400_000).contains(&ms) => Duration::from_millis(ms as u64),
            Some(ms) => {
                self.bad(
                    format!("{key}.min_up_interval_ms"),
                    format!("{ms} is invalid: must be 0..=86400000 milliseconds"),
                );
                Duration::ZERO
            }
        }
    }

    /// `tls`, `tls_ca_file`, `tls_skip_hostname_check`: TCP only, the last two with `tls`.
    fn tls(&mut self, key: &str, raw: &RawMysql, endpoint: &MysqlEndpoint) -> Option<TlsConfig> {
        if raw.tls {
            if matches!(endpoint, MysqlEndpoint::Socket(_)) {
                self.bad(
                    format!("{key}.tls"),
                    "only valid with host (TCP); a Unix socket never leaves the host",
                );
            }
            let ca_file = raw.tls_ca_file.clone().map(|p| {
                self.absolute_path(&format!("{key}.tls_ca_file"), Some(p), PathBuf::new())
            });
            Some(TlsConfig {
                ca_file,
                skip_hostname_check: raw.tls_skip_hostname_check,
            })
        } else {
            for (set, k) in [
                (raw.tls_ca_file.is_some(), "tls_ca_file"),
                (raw.tls_skip_hostname_check, "tls_skip_hostname_check"),
            ] {
                if set {
                    self.bad(format!("{key}.{k}"), "only valid with tls = true");
                }
            }
            None
        }
    }
}
