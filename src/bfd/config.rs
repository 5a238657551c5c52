//! The BFD keys of a `[[bgp.peer]]` (`bfd`, `bfd_min_tx_ms`, `bfd_min_rx_ms`,
//! `bfd_multiplier`, `bfd_auth`, `bfd_auth_key_id`, `bfd_auth_key_file`; see
//! docs/configuration.md), validated into a [`BfdConfig`]; and reading the key file.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::auth::AuthKey;
use super::fsm::Intervals;
use super::packet::{AuthType, SHA1_LEN};
use crate::config::ConfigProblem;

/// 100 ms x 3: the peer is declared down 300 ms after its last packet.
pub const DEFAULT_INTERVAL_MS: u64 = 100;
pub const DEFAULT_MULTIPLIER: u8 = 3;
/// Intervals we accept, in ms: FRR's range. Faster than 10 ms is not something a daemon in
/// user space should promise.
const INTERVAL_MS: std::ops::RangeInclusive<i64> = 10..=60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdConfig {
    /// Desired Min TX Interval.
    pub min_tx: Duration,
    /// Required Min RX Interval.
    pub min_rx: Duration,
    /// Detect Mult.
    pub multiplier: u8,
    pub auth: Option<BfdAuthConfig>,
}

impl BfdConfig {
    pub fn intervals(&self) -> Intervals {
        Intervals {
            desired_min_tx: self.min_tx,
            required_min_rx: self.min_rx,
            detect_mult: self.multiplier,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdAuthConfig {
    pub auth_type: AuthType,
    pub key_id: u8,
    /// First line: the key, 1 to 20 bytes.
    pub key_file: PathBuf,
}

impl BfdAuthConfig {
    /// Reads the key file (refused when group or others may read it).
    pub fn read_key(&self) -> io::Result<AuthKey> {
        let secret = crate::config::read::secret_first_line(&self.key_file, true)?.into_bytes();
        if secret.is_empty() || secret.len() > SHA1_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the key is {} bytes; SHA1 keys are 1 to {SHA1_LEN} bytes",
                    secret.len()
                ),
            ));
        }
        Ok(AuthKey {
            auth_type: self.auth_type,
            key_id: self.key_id,
            secret,
        })
    }
}

/// When `new` differs from `old` in its BFD intervals alone (BFD on in both), the new
/// intervals: a running session takes them with a Poll Sequence (RFC 5880 §6.8.3) instead of
/// being restarted.
pub fn intervals_only_change(
    old: &crate::config::PeerConfig,
    new: &crate::config::PeerConfig,
) -> Option<Intervals> {
    let (Some(a), Some(b)) = (&old.bfd, &new.bfd) else {
        return None;
    };
    if a == b || a.auth != b.auth {
        return None;
    }
    let mut same = new.clone();
    same.bfd = old.bfd.clone();
    (same == *old).then(|| b.intervals())
}

/// A peer's BFD keys as written in the file.
#[derive(Debug, Default)]
pub(crate) struct RawPeerBfd {
    pub bfd: bool,
    pub min_tx_ms: Option<i64>,
    pub min_rx_ms: Option<i64>,
    pub multiplier: Option<i64>,
    pub auth: Option<String>,
    pub auth_key_id: Option<i64>,
    pub auth_key_file: Option<String>,
}

/// Validates the BFD keys of the peer at `key` (e.g. `bgp.peer[0]`); None when BFD is off.
pub(crate) fn validate(key: &str, raw: RawPeerBfd) -> (Option<BfdConfig>, Vec<ConfigProblem>) {
    let mut problems = Problems {
        key,
        list: Vec::new(),
    };
    if !raw.bfd {
        problems.set_without_bfd(&raw);
        return (None, problems.list);
    }
    let min_tx = problems.interval("bfd_min_tx_ms", raw.min_tx_ms);
    let min_rx = problems.interval("bfd_min_rx_ms", raw.min_rx_ms);
    let multiplier = match raw.multiplier {
        None => DEFAULT_MULTIPLIER,
        Some(m) if (1..=255).contains(&m) => m as u8,
        Some(m) => {
            problems.bad("bfd_multiplier", format!("{m} is invalid: must be 1..=255"));
            DEFAULT_MULTIPLIER
        }
    };
    let auth = problems.auth(raw);
    let cfg = BfdConfig {
        min_tx,
        min_rx,
        multiplier,
        auth,
    };
    (Some(cfg), problems.list)
}

/// The problems found in one peer's BFD keys, each named `key.bfd_…`.
struct Problems<'a> {
    key: &'a str,
    list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn bad(&mut self, k: &str, problem: String) {
        let key = format!("{}.{k}", self.key);
        self.list.push(ConfigProblem::new(key, problem));
    }

    /// Every `bfd_*` key set on a peer without `bfd = true`.
    fn set_without_bfd(&mut self, raw: &RawPeerBfd) {
        let set = [
            ("bfd_min_tx_ms", raw.min_tx_ms.is_some()),
            ("bfd_min_rx_ms", raw.min_rx_ms.is_some()),
            ("bfd_multiplier", raw.multiplier.is_some()),
            ("bfd_auth", raw.auth.is_some()),
            ("bfd_auth_key_id", raw.auth_key_id.is_some()),
            ("bfd_auth_key_file", raw.auth_key_file.is_some()),
        ];
        for (k, _) in set.iter().filter(|(_, s)| *s) {
            self.bad(k, "set, but bfd is not enabled (bfd = true)".into());
        }
    }

    fn interval(&mut self, k: &str, v: Option<i64>) -> Duration {
        match v {
            None => Duration::from_millis(DEFAULT_INTERVAL_MS),
            Some(ms) if INTERVAL_MS.contains(&ms) => Duration::from_millis(ms as u64),
            Some(ms) => {
                let (min, max) = (INTERVAL_MS.start(), INTERVAL_MS.end());
                self.bad(k, format!("{ms} is invalid: must be {min}..={max} ms"));
                Duration::from_millis(DEFAULT_INTERVAL_MS)
            }
        }
    }

    /// `bfd_auth`, `bfd_auth_key_id` and `bfd_auth_key_file`, which go together.
    fn auth(&mut self, raw: RawPeerBfd) -> Option<BfdAuthConfig> {
        let auth_type = match raw.auth.as_deref() {
            None => None,
            Some("keyed-sha1") => Some(AuthType::KeyedSha1),
            Some("meticulous-keyed-sha1") => Some(AuthType::MeticulousKeyedSha1),
            Some(other) => {
                let supported = "\"keyed-sha1\" or \"meticulous-keyed-sha1\"";
                self.bad(
                    "bfd_auth",
                    format!("{other:?} is not supported: {supported}"),
                );
                None
            }
        };
        let key_id = match raw.auth_key_id {
            None => 1,
            Some(id) if (0..=255).contains(&id) => id as u8,
            Some(id) => {
                let problem = format!("{id} is invalid: must be 0..=255");
                self.bad("bfd_auth_key_id", problem);
                1
            }
        };
        match (raw.auth.is_some(), raw.auth_key_file) {
            (true, None) => {
                self.bad("bfd_auth_key_file", "required with bfd_auth".into());
                None
            }
            (false, Some(_)) => {
                self.bad("bfd_auth_key_file", "set, but bfd_auth is not".into());
                None
            }
            (false, None) => {
                if raw.auth_key_id.is_some() {
                    self.bad("bfd_auth_key_id", "set, but bfd_auth is not".into());
                }
                None
            }
            (true, Some(f)) if !f.starts_with('/') => {
                let problem = format!("{f:?} is not an absolute path");
                self.bad("bfd_auth_key_file", problem);
                None
            }
            (true, Some(f)) => auth_type.map(|auth_type| BfdAuthConfig {
                auth_type,
                key_id,
                key_file: PathBuf::from(f),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> RawPeerBfd {
        RawPeerBfd {
            bfd: true,
            ..RawPeerBfd::default()
        }
    }

    fn problems(raw: RawPeerBfd) -> Vec<String> {
        validate("bgp.peer[0]", raw)
            .1
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn defaults_are_100_ms_times_3_without_authentication() {
        let (c, p) = validate("bgp.peer[0]", on());
        assert!(p.is_empty());
        let c = c.unwrap();
        assert_eq!(c.min_tx, Duration::from_millis(100));
        assert_eq!(c.min_rx, Duration::from_millis(100));
        assert_eq!(c.multiplier, 3);
        assert_eq!(c.auth, None);
        assert_eq!(validate("x", RawPeerBfd::default()).0, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let raw = RawPeerBfd {
            min_tx_ms: Some(5),
            min_rx_ms: Some(60_001),
            multiplier: Some(0),
            auth: Some("keyed-md5".into()),
            auth_key_id: Some(256),
            auth_key_file: Some("relative".into()),
            ..on()
        };
        assert_eq!(
            problems(raw),
            [
                "bgp.peer[0].bfd_min_tx_ms: 5 is invalid: must be 10..=60000 ms",
                "bgp.peer[0].bfd_min_rx_ms: 60001 is invalid: must be 10..=60000 ms",
                "bgp.peer[0].bfd_multiplier: 0 is invalid: must be 1..=255",
                "bgp.peer[0].bfd_auth: \"keyed-md5\" is not supported: \"keyed-sha1\" or \"meticulous-keyed-sha1\"",
                "bgp.peer[0].bfd_auth_key_id: 256 is invalid: must be 0..=255",
                "bgp.peer[0].bfd_auth_key_file: \"relative\" is not an absolute path",
            ]
        );
    }

    #[test]
    fn options_without_bfd_or_auth_are_refused() {
        let raw = RawPeerBfd {
            min_tx_ms: Some(100),
            auth_key_file: Some("/k".into()),
            ..RawPeerBfd::default()
        };
        assert_eq!(
            problems(raw),
            [
                "bgp.peer[0].bfd_min_tx_ms: set, but bfd is not enabled (bfd = true)",
                "bgp.peer[0].bfd_auth_key_file: set, but bfd is not enabled (bfd = true)",
            ]
        );
        let raw = RawPeerBfd {
            auth: Some("keyed-sha1".into()),
            ..on()
        };
        assert_eq!(
            problems(raw),
            ["bgp.peer[0].bfd_auth_key_file: required with bfd_auth"]
        );
        let raw = RawPeerBfd {
            auth_key_id: Some(2),
            ..on()
        };
        assert_eq!(
            problems(raw),
            ["bgp.peer[0].bfd_auth_key_id: set, but bfd_auth is not"]
        );
    }

    const SERVICE: &str = "[[service]]\nname = \"main\"\nprefixes = [\"192.0.2.10/32\"]\n\
                           [service.mysql]\nsocket = \"/run/mysqld/mysqld.sock\"\nuser = \"u\"\n";

    #[test]
    fn peer_keys_come_from_the_toml_file() {
        let c = crate::config::test_config(&format!(
            "bfd = true\nbfd_min_tx_ms = 50\nbfd_multiplier = 5\n{SERVICE}"
        ));
        let b = c.bgp.peers[0].bfd.clone().unwrap();
        assert_eq!(b.intervals().desired_min_tx, Duration::from_millis(50));
        assert_eq!(b.intervals().required_min_rx, Duration::from_millis(100));
        assert_eq!(b.intervals().detect_mult, 5);
        let c = crate::config::test_config(SERVICE);
        assert_eq!(c.bgp.peers[0].bfd, None, "off unless asked for");
        let text = format!(
            "[bgp]\nasn = 65000\nrouter_id = \"198.19.0.11\"\n[[bgp.peer]]\nname = \"t\"\n\
             address = \"198.18.1.0\"\nremote_asn = 65001\nbfd_multiplier = 0\n{SERVICE}"
        );
        let p: Vec<String> = crate::config::parse(&text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            p,
            ["bgp.peer[0].bfd_multiplier: set, but bfd is not enabled (bfd = true)"]
        );
    }

    #[test]
    fn only_interval_changes_are_applied_in_place() {
        let peer = |keys: &str| {
            crate::config::test_config(&format!("{keys}\n{SERVICE}"))
                .bgp
                .peers[0]
                .clone()
        };
        let old = peer("bfd = true");
        let faster = peer("bfd = true\nbfd_min_tx_ms = 50\nbfd_multiplier = 4");
        let i = intervals_only_change(&old, &faster).unwrap();
        assert_eq!(i.desired_min_tx, Duration::from_millis(50));
        assert_eq!(i.detect_mult, 4);
        assert_eq!(intervals_only_change(&old, &old), None, "nothing changed");
        let other = peer("bfd = true\nbfd_min_tx_ms = 50\nhold_time = 30");
        assert_eq!(intervals_only_change(&old, &other), None, "more than BFD");
        assert_eq!(intervals_only_change(&old, &peer("")), None, "BFD off");
    }

    #[test]
    fn keys_are_read_from_private_files_and_must_fit_sha1() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bfd.key");
        let raw = RawPeerBfd {
            auth: Some("meticulous-keyed-sha1".into()),
            auth_key_id: Some(7),
            auth_key_file: Some(file.display().to_string()),
            ..on()
        };
        let auth = validate("p", raw).0.unwrap().auth.unwrap();
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = auth.read_key().unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = auth.read_key().unwrap();
        assert_eq!(k.secret, b"s3cret");
        assert_eq!((k.auth_type, k.key_id), (AuthType::MeticulousKeyedSha1, 7));
        std::fs::write(&file, "x".repeat(21)).unwrap();
        let e = auth.read_key().unwrap_err();
        assert!(e.to_string().contains("21 bytes"), "{e}");
    }
}
