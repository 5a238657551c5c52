//! The secret files a config names (MySQL passwords, TCP MD5 keys, BFD keys), read once per
//! load so `--check`, start-up and reload report an unreadable one like any other problem.

use std::path::Path;

use super::{Config, ConfigProblem};

/// Secrets read from the files the config names, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Per service: the MySQL password.
    pub mysql: Vec<Option<String>>,
    /// Per peer: the TCP MD5 key.
    pub md5: Vec<Option<String>>,
    /// Per peer: the BFD authentication key.
    pub bfd_keys: Vec<Option<crate::bfd::auth::AuthKey>>,
}

impl Config {
    /// Reads every secret file. Problems name the key, so `--check` and start-up report them
    /// like any other config error.
    pub fn read_secrets(&self) -> Result<Secrets, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let unreadable = |key: String, path: Option<&Path>, e: std::io::Error| {
            let path = path.unwrap_or(Path::new(""));
            // Our own refusals (a secret readable by others) carry their text; OS errors not.
            let problem = match e.get_ref() {
                Some(_) => format!("refusing {}: {e}", path.display()),
                None => format!("cannot read {}: {e}", path.display()),
            };
            ConfigProblem::new(key, problem)
        };
        let mut secrets = Secrets::default();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("service[{i}].mysql.password_file");
            let p = s.mysql.read_password().unwrap_or_else(|e| {
                problems.push(unreadable(key, s.mysql.password_file.as_deref(), e));
                None
            });
            secrets.mysql.push(p);
        }
        for (i, peer) in self.bgp.peers.iter().enumerate() {
            let key = format!("bgp.peer[{i}].md5_password_file");
            let path = peer.md5_password_file.as_deref();
            let p = peer.read_md5_password().unwrap_or_else(|e| {
                problems.push(unreadable(key.clone(), path, e));
                None
            });
            // The kernel takes 1..=80 bytes; anything else would fail every connect, forever.
            let max = crate::bgp::socket::MD5_MAX_KEY_LEN;
            if let (Some(k), Some(path)) = (&p, path) {
                if k.is_empty() || k.len() > max {
                    let problem = format!(
                        "the key in {} is {} bytes: TCP MD5 keys are 1..={max} bytes",
                        path.display(),
                        k.len(),
                    );
                    problems.push(ConfigProblem::new(key, problem));
                }
            }
            secrets.md5.push(p);
            let auth = peer.bfd.as_ref().and_then(|b| b.auth.as_ref());
            let k = match auth.map(|a| (a, a.read_key())) {
                Some((_, Ok(k))) => Some(k),
                Some((a, Err(e))) => {
                    let key = format!("bgp.peer[{i}].bfd_auth_key_file");
                    unreadable(key, Some(&a.key_file), e);
                    None
                }
                None => None,
            };
            secrets.bfd_keys.push(k);
        }
        if problems.is_empty() {
            Ok(secrets)
        } else {
            Err(problems)
        }
    }
}
