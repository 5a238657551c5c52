//! `primaryd --config F --check`: the shipped example passes, and every problem is printed as
//! `F:LINE:COLUMN: key: problem` with a non-zero exit; what would make the daemon refuse to
//! start or fail for ever at run time is refused here too; a file that never ends or never
//! answers does not hang it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn check(path: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_primaryd"))
        .arg("--config")
        .arg(path)
        .arg("--check")
        .output()
        .expect("run primaryd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 1-based number of the first line of `text` that starts with `start`.
fn line(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?}"))
        + 1
}

fn example_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/primaryd.toml"))
        .unwrap()
}

#[test]
fn shipped_example_config_passes_check() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/primaryd.toml");
    let (ok, stdout, stderr) = check(&path);
    assert!(ok, "example config rejected:\n{stderr}");
    assert_eq!(stdout.trim(), format!("{}: OK", path.display()));
}

#[test]
fn check_prints_file_key_and_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let example = example_text();
    let bad = example
        .replace("hold_time = 9\n", "hold_time = 2\n")
        .replace("rise = 2", "rise = 0\nrsie = 2");
    std::fs::write(&path, &bad).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    // Unknown keys are reported before semantic validation runs.
    let f = path.display();
    let l = line(&bad, "rsie");
    assert!(
        stderr.starts_with(&format!(
            "{f}:{l}:1: service[0].mysql.rsie: unknown field `rsie`"
        )),
        "{stderr}"
    );

    let bad = example_text()
        .replace("hold_time = 9\n", "hold_time = 2\n")
        .replace("rise = 2", "rise = 0");
    std::fs::write(&path, &bad).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{f}:{}:13: bgp.hold_time: 2 is invalid: must be 0 or 3..=65535 seconds",
                line(&bad, "hold_time")
            ),
            format!(
                "{f}:{}:8: service[0].mysql.rise: 0 is invalid: must be 1..=1000",
                line(&bad, "rise")
            ),
        ]
    );
}

#[test]
fn missing_password_file_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let example = example_text();
    let missing = dir.path().join("nope.pass");
    let text = example.replace(
        "# password_file = \"/etc/primaryd/mysql.pass\"",
        &format!("password_file = {:?}", missing.display().to_string()),
    );
    std::fs::write(&path, &text).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!(
            "{}:{}:17: service[0].mysql.password_file: cannot read {}",
            path.display(),
            line(&text, "password_file"),
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_refuses_what_start_up_refuses_or_what_would_fail_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let f = path.display();

    // Two sessions to one router; secret files given relative to the working directory.
    let text = example_text()
        .replace("address = \"198.18.2.0\"", "address = \"198.18.1.0\"")
        .replace(
            "# password_file = \"/etc/primaryd/mysql.pass\"",
            "password_file = \"mysql.pass\"",
        );
    std::fs::write(&path, &text).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let second_peer = text.find("name = \"tor2\"").unwrap();
    let address = line(&text[second_peer..], "address") + line(&text, "name = \"tor2\"") - 1;
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{f}:{address}:11: bgp.peer[1].address: 198.18.1.0 is already the address of peer \"tor1\""),
            format!(
                "{f}:{}:17: service[0].mysql.password_file: \"mysql.pass\" is not an absolute path",
                line(&text, "password_file")
            ),
        ]
    );

    // An 81-byte MD5 key, a socket group that does not exist, a directory as password file.
    let key = dir.path().join("tor1.key");
    std::fs::write(&key, format!("{}\n", "k".repeat(81))).unwrap();
    let text = example_text()
        .replace(
            "remote_asn = 65001",
            &format!(
                "remote_asn = 65001\nmd5_password_file = {:?}",
                key.display().to_string()
            ),
        )
        .replace(
            "[control]\n",
            "[control]\nsocket_group = \"no-such-group-primaryd\"\n",
        )
        .replace(
            "# password_file = \"/etc/primaryd/mysql.pass\"",
            &format!("password_file = {:?}", dir.path().display().to_string()),
        );
    std::fs::write(&path, &text).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "{f}:{}:21: bgp.peer[0].md5_password_file: the key in {} is 81 bytes: TCP MD5 \
                 keys are 1..=80 bytes",
                line(&text, "md5_password_file"),
                key.display()
            ),
            format!(
                "{f}:{}:16: control.socket_group: group \"no-such-group-primaryd\" does not exist",
                line(&text, "socket_group")
            ),
            format!(
                "{f}:{}:17: service[0].mysql.password_file: refusing {}: is a directory, not a file",
                line(&text, "password_file"),
                dir.path().display()
            ),
        ]
    );
}

/// Runs `primaryd --check`, killing it if it has not exited within `limit`.
fn check_bounded(path: &Path, limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_primaryd"))
        .arg("--config")
        .arg(path)
        .arg("--check")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if status.is_some() {
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
    }
    (status.and_then(|s| s.code()), stderr, started.elapsed())
}

#[test]
fn a_fifo_or_an_endless_file_does_not_hang_check() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("primaryd.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, stderr, took) = check_bounded(&fifo, Duration::from_secs(30));
    assert_eq!(
        code,
        Some(1),
        "--check on a FIFO without a writer: {stderr}"
    );
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}: cannot read: no answer within 3000 ms (a FIFO without a writer, or a hung \
             file system?)",
            fifo.display()
        )
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    let (code, stderr, _) = check_bounded(Path::new("/dev/zero"), Duration::from_secs(30));
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim_end(),
        "/dev/zero: cannot read: larger than 1024 KiB"
    );
}

#[test]
fn unreadable_config_file_is_named() {
    let (ok, _, stderr) = check(Path::new("/nonexistent/primaryd.toml"));
    assert!(!ok);
    assert!(
        stderr.starts_with("/nonexistent/primaryd.toml: cannot read"),
        "{stderr}"
    );
}
