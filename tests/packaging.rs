//! The Debian package, end to end: `cargo deb` packs the binaries this test run built (no
//! second build), `dpkg --root` installs it into a scratch root (maintainer scripts run
//! chrootless, honouring $DPKG_ROOT: the machine's own files and users are never touched),
//! the installed example configuration passes `primaryd --check`, `primaryctl --help` runs,
//! the unit passes `systemd-analyze verify` with the installed binaries and man pages, and
//! `dpkg --purge` removes it all. The scratch root goes with the test, also when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::run_checked as run;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cargo deb` over a target dir whose `release/` holds this run's binaries.
fn build_deb(scratch: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let version = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: cargo install cargo-deb --locked (.ci/run installs it): {version:?}"
    );
    let release = scratch.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for (name, built) in [
        ("primaryd", env!("CARGO_BIN_EXE_primaryd")),
        ("primaryctl", env!("CARGO_BIN_EXE_primaryctl")),
    ] {
        std::fs::copy(built, release.join(name)).unwrap();
    }
    let out_dir = scratch.join("deb");
    run(Command::new(&cargo)
        .args(["deb", "--no-build", "--fast", "--output"])
        .arg(&out_dir)
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target")));
    let deb = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");
    deb
}

/// An empty dpkg database under `root`.
fn dpkg_root(root: &Path) {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").unwrap();
    }
}

fn dpkg(root: &Path, args: &[&str]) -> Output {
    // The root has no libc6 or systemd packages in its database: dependencies are the
    // machine's (they are installed here), hence --force-depends.
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args))
}

#[test]
fn deb_installs_checks_verifies_and_purges() {
    let scratch = tempfile::tempdir().unwrap();
    let deb = build_deb(scratch.path());
    let root = scratch.path().join("root");
    dpkg_root(&root);

    let info = text(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(info.contains("Package: primaryd"), "{info}");
    dpkg(&root, &["-i", deb.to_str().unwrap()]);

    // What the package ships, where Debian looks for it.
    for f in [
        "usr/bin/primaryd",
        "usr/bin/primaryctl",
        "etc/primaryd/primaryd.toml",
        "lib/systemd/system/primaryd.service",
        "usr/lib/tmpfiles.d/primaryd.conf",
        "usr/lib/sysusers.d/primaryd.conf",
        "usr/share/man/man8/primaryd.8.gz",
        "usr/share/man/man8/primaryctl.8.gz",
        "usr/share/man/man8/primaryctl-check.8.gz",
        "usr/share/bash-completion/completions/primaryctl",
        "usr/share/zsh/vendor-completions/_primaryctl",
        "usr/share/fish/vendor_completions.d/primaryctl.fish",
        "usr/lib/primaryd/primaryd-orchestrator-hook",
        "usr/share/doc/primaryd/operations.md",
        "usr/share/doc/primaryd/examples/orchestrator.conf.json",
    ] {
        assert!(root.join(f).exists(), "{f} not installed");
    }
    // The postinst made the system user and group in the root (not on this machine).
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("primaryd:") && l.ends_with(":/usr/sbin/nologin")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("primaryd:")), "{group}");
    let dpkg_status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(
        dpkg_status.contains("Status: install ok installed"),
        "{dpkg_status}"
    );

    // The installed example passes --check; primaryctl runs.
    let bin = root.join("usr/bin");
    let config = root.join("etc/primaryd/primaryd.toml");
    let out = run(Command::new(bin.join("primaryd"))
        .arg("--config")
        .arg(&config)
        .arg("--check"));
    assert_eq!(text(&out).trim(), format!("{}: OK", config.display()));
    let help = text(&run(Command::new(bin.join("primaryctl")).arg("--help")));
    assert!(help.contains("check") && help.contains("drain"), "{help}");
    run(Command::new("sh")
        .arg("-n")
        .arg(root.join("usr/lib/primaryd/primaryd-orchestrator-hook")));

    // systemd-analyze verify on the installed unit, its binaries and man pages from the root
    // (the unit's /usr/bin paths point into the root in this copy; nothing else changes).
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/primaryd.service")).unwrap();
    let units = scratch.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    let copy = units.join("primaryd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/", &format!("{}/", bin.display())),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .expect("systemd-analyze (package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&verify)
    );

    dpkg(&root, &["--purge", "primaryd"]);
    for f in [
        "usr/bin/primaryd",
        "lib/systemd/system/primaryd.service",
        "etc/primaryd",
    ] {
        assert!(!root.join(f).exists(), "{f} left after purge");
    }
}

/// The unit keeps the properties the docs promise: notify with a watchdog, withdraw on stop
/// (SIGTERM), only the two capabilities, a read-only system but for state and socket dirs.
#[test]
fn unit_promises() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/primaryd.service"),
    )
    .unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
            .to_string()
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("WatchdogSec"), "10s");
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(
        value("CapabilityBoundingSet"),
        "CAP_NET_ADMIN CAP_NET_BIND_SERVICE"
    );
    assert_eq!(value("AmbientCapabilities"), value("CapabilityBoundingSet"));
    assert_eq!(value("ReadWritePaths"), "/var/lib/primaryd /run/primaryd");
    let tmpfiles = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/primaryd.tmpfiles"),
    )
    .unwrap();
    assert!(tmpfiles.contains("d /run/primaryd 0750 primaryd primaryd -"));
}
