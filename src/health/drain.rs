//! Operator drains that survive a restart: one file per drained service in `[control]
//! state_dir`, `{state_dir}/{service}.drained`. Present: drained; absent: not.
//!
//! Loading fails closed: a record that exists but cannot be read or parsed still drains the
//! service (with a reason that says so), as does a state dir that cannot be searched. A
//! restart must never re-announce a service an operator took out.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Why and since when a service is drained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainInfo {
    pub since: SystemTime,
    /// Free text from the operator (or about an unreadable record).
    pub note: Option<String>,
}

impl DrainInfo {
    pub fn new(since: SystemTime, note: Option<String>) -> Self {
        DrainInfo { since, note }
    }

    /// The reason shown for a drained service.
    pub fn reason(&self) -> String {
        match &self.note {
            None => "drained by operator".to_string(),
            Some(n) => format!("drained by operator: {n}"),
        }
    }
}

/// The record as written: small TOML, so an operator can read it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    since_unix_ms: u64,
    note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DrainStore {
    dir: PathBuf,
}

impl DrainStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DrainStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a service's drain record lives.
    pub fn path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.drained"))
    }

    /// The persisted drain of `service`, if any. Never fails: what cannot be read drains.
    pub fn load(&self, service: &str) -> Option<DrainInfo> {
        let path = self.path(service);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                return Some(DrainInfo::new(
                    SystemTime::now(),
                    Some(format!(
                        "drain record {} unreadable ({e}); treated as drained",
                        path.display()
                    )),
                ))
            }
        };
        match toml::from_str::<Record>(&text) {
            Ok(r) => Some(DrainInfo::new(
                SystemTime::UNIX_EPOCH + Duration::from_millis(r.since_unix_ms),
                r.note,
            )),
            Err(e) => Some(DrainInfo::new(
                SystemTime::now(),
                Some(format!(
                    "drain record {} unparsable ({}); treated as drained",
                    path.display(),
                    e.message()
                )),
            )),
        }
    }

    /// Persists a drain: written to a temporary file, synced, renamed into place and the
    /// directory synced, so a crash leaves either the old state or the new one.
    pub fn save(&self, service: &str, info: &DrainInfo) -> io::Result<()> {
        let record = Record {
            since_unix_ms: info
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            note: info.note.clone(),
        };
        let text = toml::to_string(&record).map_err(io::Error::other)?;
        crate::statefile::write_atomic(&self.dir, &format!("{service}.drained"), &text)
    }

    /// Forgets a drain (absent already is fine).
    pub fn remove(&self, service: &str) -> io::Result<()> {
        crate::statefile::remove(&self.dir, &format!("{service}.drained"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        // The state dir is created on the first drain.
        let store = DrainStore::new(dir.path().join("state"));
        assert_eq!(store.load("main"), None);
        let since = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let info = DrainInfo::new(since, Some("kernel upgrade".into()));
        store.save("main", &info).unwrap();
        assert_eq!(store.load("main"), Some(info.clone()));
        assert_eq!(store.load("other"), None);
        assert_eq!(info.reason(), "drained by operator: kernel upgrade");
        let text = fs::read_to_string(store.path("main")).unwrap();
        assert!(text.contains("since_unix_ms = 1700000000123"), "{text}");
        store.remove("main").unwrap();
        assert_eq!(store.load("main"), None);
        store.remove("main").unwrap();
    }

    #[test]
    fn unparsable_or_unreadable_record_drains() {
        let dir = tempfile::tempdir().unwrap();
        let store = DrainStore::new(dir.path());
        fs::write(store.path("main"), "garbage = [").unwrap();
        let d = store
            .load("main")
            .expect("an unparsable record still drains");
        assert!(d.reason().contains("unparsable"), "{}", d.reason());
        // A directory where the file should be: unreadable.
        fs::create_dir(store.path("dir")).unwrap();
        let d = store
            .load("dir")
            .expect("an unreadable record still drains");
        assert!(d.reason().contains("unreadable"), "{}", d.reason());
        assert_eq!(
            DrainInfo::new(SystemTime::now(), None).reason(),
            "drained by operator"
        );
    }
}
