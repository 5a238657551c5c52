//! `primaryd --config FILE [--check]`: thin entry point; the work is in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use primaryd::cli::daemon::{Args, LogFormat};
use primaryd::config;

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
