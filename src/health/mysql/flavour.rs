//! Which server the probe talks to (MariaDB, or MySQL and its version), from `SELECT
//! VERSION()`; it decides which variables exist, how replication is queried and how the
//! server spells things in reasons. Pure.

use std::fmt;

use super::answers::AnswerError;

/// Which server we talk to; it decides which variables exist and how replication is queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    MySql { major: u16, minor: u16, patch: u16 },
}

impl Flavour {
    /// Parses `SELECT VERSION()`: MariaDB versions contain "MariaDB" (e.g.
    /// "10.11.6-MariaDB-0+deb12u1-log"); anything else is MySQL-like ("8.0.36-28-log").
    pub fn from_version(version: &str) -> Result<Flavour, AnswerError> {
        if version.to_ascii_lowercase().contains("mariadb") {
            return Ok(Flavour::MariaDb);
        }
        let numeric: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').map(|p| p.parse::<u16>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), patch) => Ok(Flavour::MySql {
                major,
                minor,
                patch: match patch {
                    Some(Ok(p)) => p,
                    _ => 0,
                },
            }),
            _ => Err(AnswerError::Version(version.to_string())),
        }
    }

    /// MySQL 5.7+ has `super_read_only` and `offline_mode`; MariaDB and older MySQL do not.
    pub(crate) fn has_super_read_only(&self) -> bool {
        matches!(self, Flavour::MySql { major, minor, .. } if (*major, *minor) >= (5, 7))
    }

    /// The variables, then `server_id` (see [`crate::health::facts`]).
    pub(super) fn vars_query(&self) -> &'static str {
        if self.has_super_read_only() {
            "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode, \
             @@global.server_id"
        } else {
            "SELECT @@global.read_only, @@global.server_id"
        }
    }

    fn is_mysql_8022(&self) -> bool {
        matches!(*self, Flavour::MySql { major, minor, patch } if (major, minor, patch) >= (8, 0, 22))
    }

    pub(super) fn replication_query(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "SHOW ALL SLAVES STATUS",
            f if f.is_mysql_8022() => "SHOW REPLICA STATUS",
            Flavour::MySql { .. } => "SHOW SLAVE STATUS",
        }
    }

    /// The lag column as this server spells it, for reasons.
    pub(super) fn lag_column(&self) -> &'static str {
        if self.is_mysql_8022() {
            "Seconds_Behind_Source"
        } else {
            "Seconds_Behind_Master"
        }
    }

    /// Lifts the server-side statement time limit for the parked watch query (MariaDB's
    /// `max_statement_time`, MySQL's `max_execution_time`, which applies to SELECTs).
    pub fn no_statement_limit(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "SET SESSION max_statement_time = 0",
            Flavour::MySql { .. } => "SET SESSION max_execution_time = 0",
        }
    }

    /// How the server names one replication stream in reasons.
    pub(super) fn channel_word(&self) -> &'static str {
        match self {
            Flavour::MariaDb => "connection",
            Flavour::MySql { .. } => "channel",
        }
    }

    /// Appended to a failed replication query so the operator knows what to grant.
    pub(super) fn privilege_hint(&self) -> &'static str {
        match self {
            Flavour::MariaDb => {
                "the check user needs the SLAVE MONITOR privilege on MariaDB 10.5+ \
                 (GRANT SLAVE MONITOR ON *.* TO ...), REPLICATION CLIENT before"
            }
            Flavour::MySql { .. } => {
                "the check user needs the REPLICATION CLIENT privilege \
                 (GRANT REPLICATION CLIENT ON *.* TO ...)"
            }
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flavour::MariaDb => write!(f, "MariaDB"),
            Flavour::MySql {
                major,
                minor,
                patch,
            } => write!(f, "MySQL {major}.{minor}.{patch}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::MYSQL8;
    use super::*;

    #[test]
    fn flavour_from_version_strings() {
        assert_eq!(
            Flavour::from_version("10.11.6-MariaDB-0+deb12u1-log"),
            Ok(Flavour::MariaDb)
        );
        assert_eq!(
            Flavour::from_version("5.5.5-10.4.32-MariaDB"),
            Ok(Flavour::MariaDb)
        );
        assert_eq!(Flavour::from_version("8.0.36"), Ok(MYSQL8));
        assert_eq!(
            Flavour::from_version("5.7.44-48-log"),
            Ok(Flavour::MySql {
                major: 5,
                minor: 7,
                patch: 44
            })
        );
        assert_eq!(
            Flavour::from_version("8.4"),
            Ok(Flavour::MySql {
                major: 8,
                minor: 4,
                patch: 0
            })
        );
        assert!(Flavour::from_version("").is_err());
        assert!(Flavour::from_version("garbage").is_err());
    }

    #[test]
    fn queries_per_flavour() {
        assert_eq!(
            Flavour::MariaDb.vars_query(),
            "SELECT @@global.read_only, @@global.server_id"
        );
        assert_eq!(
            Flavour::MariaDb.replication_query(),
            "SHOW ALL SLAVES STATUS"
        );
        assert_eq!(
            MYSQL8.vars_query(),
            "SELECT @@global.read_only, @@global.super_read_only, @@global.offline_mode, \
             @@global.server_id"
        );
        assert_eq!(MYSQL8.replication_query(), "SHOW REPLICA STATUS");
        let m8021 = Flavour::MySql {
            major: 8,
            minor: 0,
            patch: 21,
        };
        assert_eq!(m8021.replication_query(), "SHOW SLAVE STATUS");
        let m56 = Flavour::MySql {
            major: 5,
            minor: 6,
            patch: 51,
        };
        assert_eq!(m56.vars_query(), Flavour::MariaDb.vars_query());
        assert_eq!(m56.replication_query(), "SHOW SLAVE STATUS");
    }
}
