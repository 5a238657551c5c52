//! `primaryd --config FILE [--check]`: thin entry point; the work is in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use primaryd::config;

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
pub(crate) struct Args {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration (and what start-up needs from the host: secret files,
    /// socket group, interfaces, listen addresses), then exit.
    #[arg(long)]
    check: bool,
    /// Log lines as text (for people) or one JSON object each (for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The same reading and checks as a reload, bounded in time (a FIFO never hangs us).
    let loaded = config::load_all_within(&args.config, config::READ_DEADLINE);
    let (config, secrets) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        println!("{}: OK", args.config.display());
        return ExitCode::SUCCESS;
    }

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        // Colour codes only for a terminal; journald and log files get plain text.
        LogFormat::Text => logger.with_ansi(std::io::stderr().is_terminal()).init(),
        // Spans (peer, service) become fields of every line.
        LogFormat::Json => logger.json().with_current_span(true).init(),
    }

    // One thread is plenty for a handful of sessions and checks, and keeps RSS small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("primaryd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(primaryd::daemon::run(args.config, config, secrets)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("exiting: {e}");
            ExitCode::FAILURE
        }
    }
}
