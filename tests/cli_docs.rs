//! The man pages and shell completions in packaging/ are generated from the binaries' clap
//! definitions (`primaryd::cli`, which the binaries parse) and must be current: this test
//! regenerates them and compares. After changing a flag or a help text, regenerate with
//!
//!     PRIMARYD_BLESS=1 cargo test --test cli_docs
//!
//! and commit the files (the package ships them: /usr/share/man/man8, bash-completion, zsh
//! vendor-completions, fish vendor_completions.d).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use primaryd::cli::{ctl, daemon};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging")
}

/// Every generated file: its path under packaging/ and its content.
fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let commands = [
        daemon::Args::command().name("primaryd"),
        ctl::Cli::command().name("primaryctl"),
    ];
    for mut cmd in commands {
        cmd.build();
        let name = cmd.get_name().to_string();
        man_pages(&cmd, &mut out);
        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut text);
            out.push((PathBuf::from("completions").join(file), text));
        }
    }
    out
}

/// The command's page and one per subcommand (`primaryctl-show.8`, ...), as its SUBCOMMANDS
/// section refers to them.
fn man_pages(cmd: &clap::Command, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let mut man = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .render(&mut man)
        .unwrap();
    out.push((PathBuf::from(format!("man/{}.8", cmd.get_name())), man));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap names are 'static; a test process may leak a few.
        let name: &'static str = format!("{}-{}", cmd.get_name(), sub.get_name()).leak();
        let sub = sub.clone().name(name).bin_name(name.replace('-', " "));
        man_pages(&sub, out);
    }
}

#[test]
fn man_pages_and_completions_are_current() {
    let bless = std::env::var_os("PRIMARYD_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, content) in generated() {
        let path = packaging().join(&rel);
        if std::fs::read(&path).ok().as_deref() == Some(&content[..]) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date in packaging/: {}; regenerate with PRIMARYD_BLESS=1 cargo test --test cli_docs",
        stale.join(", ")
    );
}

/// What the generated files must say, so that a generator producing empty or wrong pages
/// cannot pass by being compared with itself.
#[test]
fn pages_and_completions_cover_every_command() {
    let files = generated();
    let text = |name: &str| {
        let (_, c) = files
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not generated"));
        String::from_utf8(c.clone()).unwrap()
    };
    let ctl = text("man/primaryctl.8");
    assert!(
        ctl.starts_with(".ie \\n(.g .ds Aq") || ctl.contains(".TH primaryctl 8"),
        "{ctl}"
    );
    for sub in ["show", "drain", "undrain", "reload", "confirm", "check"] {
        assert!(
            ctl.contains(&format!("primaryctl\\-{sub}(8)")),
            "{sub} missing:\n{ctl}"
        );
        text(&format!("man/primaryctl-{sub}.8"));
        assert!(text("primaryctl.bash").contains(sub), "bash: {sub}");
        assert!(text("_primaryctl").contains(sub), "zsh: {sub}");
        assert!(text("primaryctl.fish").contains(sub), "fish: {sub}");
    }
    assert!(text("man/primaryctl-check.8").contains("2: not announced"));
    assert!(text("man/primaryctl-show-routes.8").contains("\\-\\-json"));
    let daemon = text("man/primaryd.8");
    for flag in ["\\-\\-config", "\\-\\-check", "\\-\\-log\\-format"] {
        assert!(daemon.contains(flag), "{flag} missing:\n{daemon}");
    }
}
