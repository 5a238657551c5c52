//! Configuration: strict TOML (unknown keys are errors) parsed into raw structs, then validated
//! into the typed [`Config`] the rest of the daemon uses. Every problem is reported as
//! `key: problem` with its line and column so the operator can find it; `--check` prints all
//! of them at once. Reading is bounded (size, and a deadline: `read.rs`), and what the daemon
//! needs from the host to start (secret files, the socket group, interfaces, local listen
//! addresses: `host.rs`) is checked by `--check`, start-up and reload alike ([`load_all`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::blocking::{self, BlockingError, Lane};

mod de;
mod host;
mod locate;
mod model;
mod raw;
pub(crate) mod read;
mod secrets;
mod validate;

pub use locate::Position;
pub use model::*;
pub use read::{MAX_CONFIG_LEN, MAX_SECRET_LEN};
pub use secrets::Secrets;

/// How long reading the configuration and its secret files may take (start-up, `--check`,
/// reload): they are small local files, so longer means a FIFO without a writer or a hung
/// file system.
pub const READ_DEADLINE: Duration = Duration::from_secs(3);

/// Default BGP hold time in seconds (the FRR "datacenter" profile uses 9/3 as well).
pub const DEFAULT_HOLD_TIME: u16 = 9;
pub const DEFAULT_BGP_PORT: u16 = 179;
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
/// A ToR sends us a handful of routes (a default, maybe loopbacks); far more means a leak.
pub const DEFAULT_MAX_PREFIXES: u32 = 1000;
pub const DEFAULT_MAX_PREFIXES_RESTART: Duration = Duration::from_secs(60);
pub const DEFAULT_STATE_DIR: &str = "/var/lib/primaryd";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/primaryd/primaryd.sock";
/// Control clients connected at once; one more is refused with an error.
pub const DEFAULT_CONTROL_MAX_CLIENTS: usize = 64;
/// A replica lagging more than this (seconds) is withdrawn, unless `max_lag_s` says otherwise.
pub const DEFAULT_MAX_LAG_S: u64 = 30;
/// Global Administrator of the large communities that mark service routes (docs/safety.md).
pub const DEFAULT_COMMUNITY_ASN: u32 = 4_200_000_000;
pub const DEFAULT_INITIAL_ROUTES_WAIT: Duration = Duration::from_millis(1000);

/// One problem found in a config file, with the dotted key it concerns and, when the key is
/// in the file, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub problem: String,
    pub at: Option<Position>,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            problem: problem.into(),
            at: None,
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// A config file that could not be loaded; `Display` prints one `FILE:LINE:COLUMN: key:
/// problem` per line (`FILE: key: problem` for a key not in the file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading did not finish in time (or an earlier attempt is still stuck).
    #[error(
        "{}: cannot read: {reason} (a FIFO without a writer, or a hung file system?)",
        path.display()
    )]
    Blocked {
        path: PathBuf,
        reason: BlockingError,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| match p.at {
            Some(at) => format!("{}:{at}: {p}", path.display()),
            None => format!("{}: {p}", path.display()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads and validates a config file (bounded in size; see [`load_all`] for what start-up
/// checks besides).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read::config_text(path)?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// What start-up, `--check` and reload read: the validated config, its secret files, and the
/// host facts the daemon needs to start (see `host.rs`). Every problem is reported, each with
/// its position in the file.
pub fn load_all(path: &Path) -> Result<(Config, Secrets), ConfigError> {
    let text = read::config_text(path)?;
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let config = parse(&text).map_err(invalid)?;
    let mut problems = Vec::new();
    let secrets = config.read_secrets().map_err(|p| problems.extend(p)).ok();
    problems.extend(host::check(&config));
    match secrets {
        Some(secrets) if problems.is_empty() => Ok((config, secrets)),
        _ => {
            let mut problems = locate::locate_all(&text, problems);
            problems.sort_by_key(|p| p.at.map_or((usize::MAX, 0), |a| (a.line, a.column)));
            Err(invalid(problems))
        }
    }
}

/// [`load_all`] on a thread of its own, given up after `deadline` (for `--check` and
/// start-up: a FIFO without a writer must not hang them).
pub fn load_all_within(path: &Path, deadline: Duration) -> Result<(Config, Secrets), ConfigError> {
    let owned = path.to_path_buf();
    blocking::run_sync(deadline, move || load_all(&owned)).unwrap_or_else(|reason| {
        Err(ConfigError::Blocked {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// [`load_all`] off the event loop on `lane` (reload): never blocks the runtime; gives up
/// after `deadline`, and refuses at once while an earlier read is still stuck.
pub async fn load_all_on(
    lane: &Lane,
    path: &Path,
    deadline: Duration,
) -> Result<(Config, Secrets), ConfigError> {
    let owned = path.to_path_buf();
    lane.run(deadline, move || load_all(&owned))
        .await
        .unwrap_or_else(|reason| {
            Err(ConfigError::Blocked {
                path: path.to_path_buf(),
                reason,
            })
        })
}

/// Parses and validates config text; returns every problem found, with its position.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
    let doc =
        toml::de::DeTable::parse(text).map_err(|e| vec![de::toml_problem(text, "(file)", &e)])?;
    let raw: raw::RawConfig = de::deserialize(text, doc)?;
    let mut v = validate::Validator::default();
    let config = v.config(raw);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(locate::locate_all(text, v.problems))
    }
}

/// A valid config for other modules' tests: `[bgp]` with peer `tor1`, then `services` (TOML
/// `[[service]]` tables).
#[cfg(test)]
pub(crate) fn test_config(services: &str) -> Config {
    let text = format!(
        "[bgp]\nasn = 4200000001\nrouter_id = \"198.19.0.11\"\n\
         [[bgp.peer]]\nname = \"tor1\"\naddress = \"198.18.1.0\"\nremote_asn = 65001\n{services}"
    );
    match parse(&text) {
        Ok(c) => c,
        Err(p) => panic!("test config rejected: {p:?}\n{text}"),
    }
}

/// A primary service `main` announcing `prefix`, checked by `mysql`, everything else at its
/// default: the one place other modules' tests build a [`ServiceConfig`].
#[cfg(test)]
pub(crate) fn test_service(prefix: &str, mysql: MysqlConfig) -> ServiceConfig {
    ServiceConfig {
        name: "main".into(),
        prefixes: vec![prefix.parse().expect("a test prefix")],
        role: Role::Primary,
        attributes: RouteAttributes::default(),
        mysql,
        disable_file: None,
        manage_addresses: false,
        policy: Default::default(),
        fallback: Default::default(),
    }
}

#[cfg(test)]
mod tests;
