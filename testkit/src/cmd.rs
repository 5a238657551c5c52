//! Running commands: the typed result the lab runner turns into its errors, and the panicking
//! forms the tests use.

use std::fmt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// Why a command did not give what was asked of it.
#[derive(Debug)]
pub enum CmdError {
    /// It could not be started at all.
    Spawn { cmd: String, source: std::io::Error },
    /// It ran and exited unsuccessfully.
    Failed {
        cmd: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Spawn { cmd, source } => write!(f, "cannot run {cmd}: {source}"),
            CmdError::Failed {
                cmd,
                status,
                stdout,
                stderr,
            } => write!(f, "{cmd} failed ({status}):\n{stdout}{stderr}"),
        }
    }
}

impl std::error::Error for CmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CmdError::Spawn { source, .. } => Some(source),
            CmdError::Failed { .. } => None,
        }
    }
}

/// Runs a command to completion with stdin closed; fails only when it cannot be started.
pub fn try_run(cmd: &mut Command) -> Result<Output, CmdError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            cmd: format!("{cmd:?}"),
            source,
        })
}

/// Runs a command that must succeed; its whole output.
pub fn try_run_ok(cmd: &mut Command) -> Result<Output, CmdError> {
    let out = try_run(cmd)?;
    if !out.status.success() {
        return Err(CmdError::Failed {
            cmd: format!("{cmd:?}"),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}

/// Runs a command to completion, panicking only when it cannot be started.
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must succeed and returns its output; panics otherwise.
#[track_caller]
pub fn run_checked(cmd: &mut Command) -> Output {
    try_run_ok(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command that must succeed and returns its stdout; panics otherwise.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_checked(cmd).stdout).into_owned()
}

/// `ip` with a whitespace-separated argument line, which must succeed; its stdout.
#[track_caller]
pub fn ip(args: &str) -> String {
    run_ok(Command::new("ip").args(args.split_whitespace()))
}

/// `kill -SIG PID`; whether it succeeded.
pub fn signal(pid: u32, sig: &str) -> bool {
    try_run(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string()),
    )
    .is_ok_and(|o| o.status.success())
}

/// Kills a child we started and reaps it, so no zombie outlives the test.
pub fn kill_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let _ = child.wait();
}
