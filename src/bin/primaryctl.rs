//! `primaryctl`: the operator's client for a running primaryd. The control socket and the
//! `show`/`drain` commands arrive with the CLI release; until then this prints its usage.

use std::process::ExitCode;

const USAGE: &str = "\
usage: primaryctl [--socket PATH] show routes [--json]
       primaryctl [--socket PATH] show peers [--json]
       primaryctl [--socket PATH] show services [--json]
       primaryctl [--socket PATH] drain SERVICE|--all
       primaryctl [--socket PATH] undrain SERVICE|--all

This version of primaryd has no control socket yet, so no command is available.
Follow the daemon's log (it logs every announce and withdraw with its reason).";

fn main() -> ExitCode {
    let help = std::env::args().skip(1).any(|a| a == "-h" || a == "--help");
    if help {
        println!("{USAGE}");
        ExitCode::SUCCESS
    } else {
        eprintln!("{USAGE}");
        ExitCode::from(2)
    }
}
