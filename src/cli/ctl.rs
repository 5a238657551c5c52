//! `primaryctl`'s command line: the clap definitions the binary parses and the man pages and
//! completions are generated from (tests/cli_docs.rs), and the request each command sends.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::operator::protocol::Command;

/// Show what this host announces, to whom, and why; drain and reload primaryd.
#[derive(Parser)]
#[command(
    version,
    after_long_help = "Exit status: 0 on success; 1 when primaryd is not running, the socket \
is not permitted, the daemon refused the request or the answer could not be written; for \
check, 2 when a service is not announced."
)]
pub struct Cli {
    /// primaryd's control socket ([control] socket in its config).
    #[arg(long, global = true, default_value = "/run/primaryd/primaryd.sock")]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Show routes, peers or services.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Withdraw a service's routes and hold them down (persists across restarts).
    Drain(Target),
    /// Let a drained service announce again once healthy.
    Undrain(Target),
    /// Re-read the configuration file (like SIGHUP).
    Reload,
    /// Vouch for this host's server as SERVICE's primary: clears a restart hold or a latched
    /// conflict, and writes a new promotion term when a newer one was seen (docs/safety.md).
    Confirm {
        /// The service's name.
        service: String,
    },
    /// Check now and say the result; a service that passes and may be announced is announced
    /// before the answer. Exit status 0: announced; 2: not announced; 1: error.
    Check(CheckArgs),
}

#[derive(Subcommand)]
pub enum Show {
    /// Per service prefix: health, announced or withdrawn, why, and per peer what was sent.
    Routes {
        /// `received`: what the peers sent us (Adj-RIB-In).
        which: Option<Received>,
        /// With `received`: only this peer.
        #[arg(long)]
        peer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// BGP sessions: state, uptime, capabilities, counters, last error.
    Peers {
        #[arg(long)]
        json: bool,
    },
    /// Health checks: state, last result and latency, counters, reason.
    Services {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Received {
    Received,
}

#[derive(Args)]
pub struct Target {
    /// The service's name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub service: Option<String>,
    /// Every service.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The request this command line sends, and whether the answer is printed as JSON.
    pub fn request(self) -> (Command, bool) {
        match self.command {
            Cmd::Show { what } => match what {
                Show::Routes {
                    which: None, json, ..
                } => (Command::ShowRoutes, json),
                Show::Routes {
                    which: Some(Received::Received),
                    peer,
                    json,
                } => (Command::ShowReceived { peer }, json),
                Show::Peers { json } => (Command::ShowPeers, json),
                Show::Services { json } => (Command::ShowServices, json),
            },
            Cmd::Drain(t) => (Command::Drain { service: t.service }, false),
            Cmd::Undrain(t) => (Command::Undrain { service: t.service }, false),
            Cmd::Reload => (Command::Reload, false),
            Cmd::Confirm { service } => (Command::Confirm { service }, false),
            Cmd::Check(c) => (
                Command::Check {
                    service: c.target.service,
                },
                c.json,
            ),
        }
    }
}
