//! The machine the tests run on: root, network namespaces, processes, mounts.

use std::fmt::Display;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use crate::cmd::try_run;

/// Whether this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails loudly (never skips) when not root; `why` says what needs it, e.g. "the end-to-end
/// tests build network namespaces".
#[track_caller]
pub fn require_root(why: &str) {
    if !is_root() {
        // SAFETY: as in is_root.
        let euid = unsafe { libc::geteuid() };
        panic!(
            "{why}: run them as root (effective uid is {euid}), e.g. `sudo -E cargo test \
             --workspace`"
        );
    }
}

/// The network namespaces (`ip netns list`); none when `ip` cannot run.
pub fn netns_list() -> Vec<String> {
    try_run(Command::new("ip").args(["netns", "list"]))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose network namespace is `ns` (`ip netns pids`), as the caller's PID type.
pub fn netns_pids<P: FromStr>(ns: &str) -> Vec<P> {
    try_run(Command::new("ip").args(["netns", "pids", ns]))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A process's command name (`/proc/PID/comm`); empty when it is gone.
pub fn comm(pid: impl Display) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The fields of `/proc/PID/stat` after the command name (field 3, the state, first).
fn stat_fields(pid: impl Display) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    Some(after_comm.split_whitespace().map(str::to_string).collect())
}

/// The process exists and is not a zombie.
pub fn alive(pid: impl Display) -> bool {
    stat_fields(pid)
        .and_then(|f| f.first().map(|state| state != "Z"))
        .unwrap_or(false)
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the
/// PID it identifies a process even after the PID is reused.
pub fn start_time(pid: impl Display) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().to_string();
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v.dedup();
    v
}

/// Last `n` lines of a file (with a note of how many came before), or a note why there are
/// none; ends with a newline.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(n);
            let mut out = String::new();
            if skip > 0 {
                out.push_str(&format!("[... {skip} earlier lines ...]\n"));
            }
            for l in &lines[skip..] {
                out.push_str(l);
                out.push('\n');
            }
            out
        }
        Err(e) => format!("[cannot read {}: {e}]\n", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_start_time() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(start_time(me).is_some());
        assert!(!comm(me).is_empty());
        assert!(!alive(u32::MAX));
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn tail_keeps_the_last_lines_and_says_how_many_it_skipped() {
        let dir = std::env::temp_dir().join(format!("testkit-tail-{}", std::process::id()));
        std::fs::write(&dir, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&dir, 2), "[... 1 earlier lines ...]\nb\nc\n");
        assert_eq!(tail(&dir, 5), "a\nb\nc\n");
        std::fs::remove_file(&dir).unwrap();
        assert!(tail(&dir, 2).starts_with("[cannot read "));
    }
}
