//! What the rules remember about a service, across daemon restarts:
//! `{state_dir}/{service}.guard.toml`, small TOML an operator can read.
//!
//! Loading fails closed: a record that exists but cannot be read or parsed becomes a latched
//! conflict (an operator must confirm), never a blank record that would forget a newer
//! primary was seen.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::guard::{Record, Seen};

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    server_start_unix_ms: Option<u64>,
    announced_term: Option<u64>,
    seen_term: Option<u64>,
    seen_by: Option<String>,
    tie: Option<String>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[derive(Debug, Clone)]
pub struct GuardStore {
    dir: PathBuf,
}

impl GuardStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        GuardStore { dir: dir.into() }
    }

    fn name(service: &str) -> String {
        format!("{service}.guard.toml")
    }

    pub fn path(&self, service: &str) -> PathBuf {
        self.dir.join(Self::name(service))
    }

    /// The record of `service`; empty when there is none. Never fails: what cannot be read is
    /// a latched conflict.
    pub fn load(&self, service: &str) -> Record {
        let path = self.path(service);
        let unusable = |why: String| Record {
            tie: Some(format!(
                "the safety record {} is {why}; an operator must confirm",
                path.display()
            )),
            ..Record::default()
        };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Record::default(),
            Err(e) => return unusable(format!("unreadable ({e})")),
        };
        match toml::from_str::<OnDisk>(&text) {
            Ok(d) => Record {
                server_start: d.server_start_unix_ms.map(from_unix_ms),
                announced_term: d.announced_term,
                seen: d.seen_term.map(|term| Seen {
                    term,
                    by: d.seen_by.unwrap_or_default(),
                }),
                tie: d.tie,
            },
            Err(e) => unusable(format!("unparsable ({})", e.message())),
        }
    }

    pub fn save(&self, service: &str, r: &Record) -> io::Result<()> {
        let d = OnDisk {
            server_start_unix_ms: r.server_start.map(unix_ms),
            announced_term: r.announced_term,
            seen_term: r.seen.as_ref().map(|s| s.term),
            seen_by: r.seen.as_ref().map(|s| s.by.clone()),
            tie: r.tie.clone(),
        };
        let text = toml::to_string(&d).map_err(io::Error::other)?;
        crate::statefile::write_atomic(&self.dir, &Self::name(service), &text)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_loads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = GuardStore::new(dir.path().join("state"));
        assert_eq!(store.load("main"), Record::default());
        let r = Record {
            server_start: Some(from_unix_ms(1_700_000_000_123)),
            announced_term: Some(7),
            seen: Some(Seen {
                term: 8,
                by: "192.0.2.10/32 also announced by 198.19.0.12".into(),
            }),
            tie: None,
        };
        store.save("main", &r).unwrap();
        assert_eq!(store.load("main"), r);
        assert_eq!(store.load("other"), Record::default());
    }

    #[test]
    fn an_unparsable_or_unreadable_record_is_a_latched_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = GuardStore::new(dir.path());
        fs::write(store.path("main"), "seen_term = [").unwrap();
        let tie = store.load("main").tie.expect("latched");
        assert!(tie.contains("unparsable"), "{tie}");
        fs::create_dir(store.path("dir")).unwrap();
        let tie = store.load("dir").tie.expect("latched");
        assert!(tie.contains("unreadable"), "{tie}");
    }
}
