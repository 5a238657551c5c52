//! `primaryd`'s command line: the clap definitions the binary parses and the man page and
//! completions are generated from (tests/cli_docs.rs).

use std::path::PathBuf;

use clap::Parser;

/// Announce a MySQL service address over BGP only while the local server is a healthy,
/// writable primary.
#[derive(Parser)]
#[command(
    version,
    after_long_help = "SIGTERM or SIGINT withdraws every route, sends Cease to every router and \
exits 0; SIGHUP re-reads the configuration (an invalid one is refused and the running one \
stays). Under systemd (Type=notify) it reports READY=1, STATUS= and watchdog kicks.\n\n\
Files: /etc/primaryd/primaryd.toml (the configuration), /var/lib/primaryd (drains and the \
split-brain records), /run/primaryd/primaryd.sock (the control socket; see primaryctl(8)). \
Documentation: /usr/share/doc/primaryd/."
)]
pub struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the configuration (and what start-up needs from the host: secret files,
    /// socket group, interfaces, listen addresses), then exit.
    #[arg(long)]
    pub check: bool,
    /// Log lines as text (for people) or one JSON object each (for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
