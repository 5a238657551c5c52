//! Fuzzes config loading: the input is written as a config file and `config::load` reads it
//! (the size cap, the UTF-8 check, the TOML parser, the every-error deserializer with its
//! stand-ins, the validator and the position finder). It must return a config or problems,
//! never panic: bytes that are not UTF-8 are a read error; every problem names a key and what
//! is wrong, and its position (when it has one) is inside the file; the error renders. A
//! config that loads keeps the rules the rest of the daemon relies on (host routes only, each
//! in one service, unique names, valid ASNs and hold times, at least one peer and service).
#![no_main]

use std::collections::HashSet;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use primaryd::config::{load, Config, ConfigError, ConfigProblem};

static FILE: OnceLock<CString> = OnceLock::new();

/// libFuzzer ends with exit(): remove the file then.
extern "C" fn remove_file() {
    if let Some(f) = FILE.get() {
        let _ = std::fs::remove_file(f.to_str().unwrap_or_default());
    }
}

fn file() -> PathBuf {
    let f = FILE.get_or_init(|| {
        // /dev/shm when there is one: ten million writes need not reach a disk.
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let f = dir.join(format!("primaryd-fuzz-config-{}.toml", std::process::id()));
        unsafe { libc::atexit(remove_file) };
        CString::new(f.to_str().unwrap()).unwrap()
    });
    PathBuf::from(f.to_str().unwrap())
}

fn check_problems(text: &str, problems: &[ConfigProblem]) {
    assert!(!problems.is_empty(), "an error without a problem");
    let lines: Vec<&str> = text.split('\n').collect();
    for p in problems {
        assert!(!p.key.is_empty() && !p.problem.trim().is_empty(), "{p:?}");
        if let Some(at) = p.at {
            let line = lines.get(at.line.wrapping_sub(1)).unwrap_or_else(|| {
                panic!("{p:?}: line {} of {}", at.line, lines.len());
            });
            assert!(
                at.column >= 1 && at.column <= line.chars().count() + 1,
                "{p:?}"
            );
        }
    }
}

fn check_config(c: &Config) {
    let b = &c.bgp;
    assert!(![0, 23456].contains(&b.asn) && ![0, 23456].contains(&b.community_asn));
    assert!(!b.router_id.is_unspecified());
    let hold = |h: u16| h == 0 || h >= 3;
    assert!(hold(b.hold_time));
    assert!(!b.peers.is_empty() && !c.services.is_empty());
    let mut names = HashSet::new();
    for p in &b.peers {
        assert!(names.insert(&p.name), "peer {:?} twice", p.name);
        assert!(hold(p.hold_time) && ![0, 23456].contains(&p.remote_asn) && p.port != 0);
    }
    let mut names = HashSet::new();
    let mut prefixes = HashSet::new();
    for s in &c.services {
        assert!(names.insert(&s.name), "service {:?} twice", s.name);
        assert!(!s.prefixes.is_empty());
        for n in &s.prefixes {
            assert_eq!(n.prefix(), if n.is_ipv4() { 32 } else { 128 }, "{n}");
            assert!(prefixes.insert(n), "{n} in two services");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    std::fs::write(&path, data).unwrap();
    let loaded = load(&path);
    match (std::str::from_utf8(data), &loaded) {
        (Ok(_), Ok(config)) => check_config(config),
        (Err(_), Err(ConfigError::Read { .. })) => {}
        (Ok(text), Err(ConfigError::Invalid { problems, .. })) => check_problems(text, problems),
        (utf8, other) => panic!("UTF-8: {}, loaded: {other:?}", utf8.is_ok()),
    }
    if let Err(e) = &loaded {
        assert!(!e.to_string().is_empty());
    }
});
