//! `primaryd --config F --check`: the shipped example passes, and every problem is printed as
//! `F: key: problem` with a non-zero exit.

use std::path::Path;
use std::process::Command;

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
    std::fs::write(&path, bad).unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    // Unknown keys are reported before semantic validation runs.
    let f = path.display();
    assert!(
        stderr.starts_with(&format!("{f}: service[0].mysql.rsie: unknown field `rsie`")),
        "{stderr}"
    );

    let example = example_text();
    std::fs::write(
        &path,
        example
            .replace("hold_time = 9\n", "hold_time = 2\n")
            .replace("rise = 2", "rise = 0"),
    )
    .unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{f}: bgp.hold_time: 2 is invalid: must be 0 or 3..=65535 seconds"),
            format!("{f}: service[0].mysql.rise: 0 is invalid: must be 1..=1000"),
        ]
    );
}

#[test]
fn missing_password_file_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let example = example_text();
    let missing = dir.path().join("nope.pass");
    std::fs::write(
        &path,
        example.replace(
            "# password_file = \"/etc/primaryd/mysql.pass\"",
            &format!("password_file = {:?}", missing.display().to_string()),
        ),
    )
    .unwrap();
    let (ok, _, stderr) = check(&path);
    assert!(!ok);
    assert!(
        stderr.starts_with(&format!(
            "{}: service[0].mysql.password_file: cannot read {}",
            path.display(),
            missing.display()
        )),
        "{stderr}"
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
