//! The lab runner (`primaryd-lab`) as its own integration tests drive it: a command for one
//! lab, with primaryd and primaryctl from beside the runner, and a lab that is removed
//! (`down`) when dropped, also when the test panics.

use std::path::Path;
use std::process::{Command, Stdio};

/// Where the runner's tests keep their labs' state.
pub const LAB_STATE_ROOT: &str = "/var/tmp/primaryd-lab";

/// `primaryd-lab --lab ID` for the tests: their state root, the binaries built beside the
/// runner (`runner`: `env!("CARGO_BIN_EXE_primaryd-lab")`), no stdin.
pub fn lab_runner(runner: &str, id: &str) -> Command {
    let dir = Path::new(runner)
        .parent()
        .expect("the runner's path has a folder");
    for b in ["primaryd", "primaryctl"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: run the tests with `cargo test --workspace` (or `cargo build \
             --workspace` first) so primaryd is built beside primaryd-lab",
            dir.join(b).display()
        );
    }
    let mut c = Command::new(runner);
    c.args(["--lab", id, "--state-root", LAB_STATE_ROOT])
        .arg("--bin-dir")
        .arg(dir)
        .stdin(Stdio::null());
    c
}

/// A runner's lab, removed by `primaryd-lab down` when dropped.
pub struct RunnerLab {
    pub id: String,
    runner: String,
}

impl RunnerLab {
    pub fn new(runner: &str, id: String) -> RunnerLab {
        RunnerLab {
            id,
            runner: runner.to_string(),
        }
    }

    /// `primaryd-lab --lab ID ...` for this lab.
    pub fn command(&self) -> Command {
        lab_runner(&self.runner, &self.id)
    }
}

impl Drop for RunnerLab {
    fn drop(&mut self) {
        let _ = self.command().arg("down").status();
    }
}
