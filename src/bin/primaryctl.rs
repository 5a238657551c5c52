//! `primaryctl`: the operator's client for a running primaryd, over its control socket.
//! Exits 0 on success and 1 otherwise, also when its output cannot be written (a closed
//! stdout or pipe): never a panic.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use primaryd::cli::ctl::Cli;
use primaryd::operator::protocol::{Command, Request, Response, PROTOCOL_VERSION};
use primaryd::operator::{render, views};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.clone();
    let (command, json) = cli.request();
    let response = match call(&socket, &command) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if !response.ok {
        return fail(response.error.as_deref().unwrap_or("request failed"));
    }
    let data = response.data.unwrap_or(serde_json::Value::Null);
    // `check`: 0 announced, 2 not announced (scripts and orchestrator hooks read it).
    let status = match &command {
        Command::Check { .. } => serde_json::from_value(data.clone()).map_or(
            1,
            |v: Vec<primaryd::operator::check::CheckView>| {
                primaryd::operator::check::exit_status(&v)
            },
        ),
        _ => 0,
    };
    let text = if json {
        let mut text = serde_json::to_string_pretty(&data).unwrap_or_default();
        text.push('\n');
        text
    } else {
        match human(&command, data) {
            Ok(text) => text,
            Err(e) => return fail(&format!("unexpected answer from primaryd: {e}")),
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(status),
        Err(e) => fail(&format!("cannot write the answer: {e}")),
    }
}

/// Says why on stderr (if it is still open) and exits 1.
fn fail(why: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "primaryctl: {why}");
    ExitCode::FAILURE
}

fn call(socket: &PathBuf, command: &Command) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is primaryd running, with this [control] socket?)"
            }
            std::io::ErrorKind::PermissionDenied => {
                " (run as root or as a member of the socket's group)"
            }
            _ => "",
        };
        format!("cannot connect to {}: {e}{hint}", socket.display())
    })?;
    // A drain waits for every peer to have the withdraw: allow for slow peers.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = Request {
        version: PROTOCOL_VERSION,
        command: command.clone(),
    };
    let mut line = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from primaryd: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("unreadable answer from primaryd: {e}"))
}

/// The answer as text for a person.
fn human(command: &Command, data: serde_json::Value) -> Result<String, serde_json::Error> {
    Ok(match command {
        Command::ShowRoutes => {
            let v: Vec<views::RouteView> = serde_json::from_value(data)?;
            render::routes(&v)
        }
        Command::ShowReceived { .. } => {
            let v: Vec<views::ReceivedView> = serde_json::from_value(data)?;
            render::received(&v)
        }
        Command::ShowPeers => {
            let v: Vec<views::PeerView> = serde_json::from_value(data)?;
            let bfd: Vec<(String, primaryd::bfd::view::BfdView)> = v
                .iter()
                .filter_map(|p| p.bfd.clone().map(|b| (p.name.clone(), b)))
                .collect();
            let mut text = format!("{}\n{}", render::peers(&v), render::peer_details(&v));
            if !bfd.is_empty() {
                text.push('\n');
                text.push_str(&primaryd::bfd::view::render(&bfd));
            }
            text
        }
        Command::ShowServices => {
            let v: Vec<views::ServiceView> = serde_json::from_value(data)?;
            render::services(&v)
        }
        Command::Check { .. } => {
            let v: Vec<primaryd::operator::check::CheckView> = serde_json::from_value(data)?;
            primaryd::operator::check::render(&v)
        }
        Command::Drain { .. }
        | Command::Undrain { .. }
        | Command::Reload
        | Command::Confirm { .. } => data.as_str().map_or_else(String::new, |t| format!("{t}\n")),
    })
}
