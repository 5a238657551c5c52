//! Reading the configuration for a reload without ever blocking the daemon loop: the read
//! (config, secret files, host checks) runs on a thread of its own with a deadline
//! ([`config::load_all_on`]); the loop polls [`Reading::done`] beside health events and
//! sessions. A read that does not finish in time refuses the reload with the reason, and the
//! running configuration stays. Requests that come while a read is under way are answered by
//! a fresh read after it, so none is answered with a file older than its request.
//!
//! Then [`Daemon::reload`] applies what was read with the least disruption: unchanged
//! sessions and checks keep running.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tracing::{error, info};

use super::peers::FsmKey;
use super::{Daemon, Reply};
use crate::bfd::auth::AuthKey;
use crate::blocking::Lane;
use crate::config::{self, Config, ConfigError, PeerConfig, Secrets, ServiceConfig};
use crate::operator::protocol::Response;

/// A peer in the new configuration: its config, MD5 key and BFD key.
type WantedPeer<'a> = (&'a PeerConfig, &'a Option<String>, &'a Option<AuthKey>);

pub(super) type Read = Result<(Config, Secrets), ConfigError>;

#[derive(Default)]
pub(super) struct Reading {
    lane: Lane,
    pending: Option<Pin<Box<dyn Future<Output = Read> + Send>>>,
    /// Who the read under way answers (SIGHUP has nobody to answer).
    replies: Vec<Reply>,
    /// Requested again while reading: who the next read answers.
    again: Option<(PathBuf, Vec<Reply>)>,
}

impl Reading {
    /// Starts reading `path`, or queues one more read after the one under way.
    pub(super) fn start(&mut self, path: &Path, reply: Option<Reply>) {
        if self.pending.is_some() {
            let (_, replies) = self
                .again
                .get_or_insert_with(|| (path.to_path_buf(), Vec::new()));
            replies.extend(reply);
            return;
        }
        self.replies.extend(reply);
        let lane = self.lane.clone();
        let path = path.to_path_buf();
        self.pending = Some(Box::pin(async move {
            config::load_all_on(&lane, &path, config::READ_DEADLINE).await
        }));
    }

    /// The outcome of the read under way and whom to answer; never resolves while there is
    /// none. Cancel-safe: the read itself is kept in `self`.
    pub(super) async fn done(&mut self) -> (Read, Vec<Reply>) {
        let Some(pending) = self.pending.as_mut() else {
            return std::future::pending().await;
        };
        let read = pending.await;
        self.pending = None;
        let replies = std::mem::take(&mut self.replies);
        if let Some((path, next)) = self.again.take() {
            self.start(&path, None);
            self.replies = next;
        }
        (read, replies)
    }
}

/// Logs a refused reload and sends the outcome to everyone who asked.
pub(super) fn answer(response: Response, replies: Vec<Reply>) {
    if !response.ok {
        error!(
            "reload refused: {}",
            response.error.as_deref().unwrap_or_default()
        );
    }
    for reply in replies {
        let _ = reply.send(response.clone());
    }
}

impl Daemon {
    /// Applies a re-read configuration. An invalid or unreadable one changes nothing; a valid
    /// one is applied with the least disruption: unchanged sessions and checks keep running.
    pub(super) fn reload(&mut self, read: Read) -> Response {
        let (new, secrets) = match read {
            Ok(v) => v,
            Err(e) => return Response::error(format!("configuration not reloaded:\n{e}")),
        };
        if new.control != self.config.control || new.metrics != self.config.metrics {
            return Response::error(
                "configuration not reloaded: [control] and [metrics] changes need a restart",
            );
        }
        let mut changes = Vec::new();

        self.reload_services(&new, &secrets, &mut changes);
        self.reload_peers(&new, &secrets, &mut changes);
        self.config = Arc::new(new);
        self.decide(None);
        let summary = if changes.is_empty() {
            "configuration reloaded: no changes".to_string()
        } else {
            format!("configuration reloaded: {}", changes.join("; "))
        };
        info!("{summary}");
        Response::ok(serde_json::Value::String(summary))
    }
    /// Services: a changed check restarts the task (state back to unknown: withdrawn until
    /// it passes again); changed prefixes or attributes only change what is announced.
    fn reload_services(&mut self, new: &Config, secrets: &Secrets, changes: &mut Vec<String>) {
        let wanted: BTreeMap<&str, (&ServiceConfig, &Option<String>)> = new
            .services
            .iter()
            .zip(&secrets.mysql)
            .map(|(s, p)| (s.name.as_str(), (s, p)))
            .collect();
        let current: Vec<String> = self.services.keys().cloned().collect();
        for name in current {
            match wanted.get(name.as_str()) {
                None => {
                    self.stop_service(&name);
                    changes.push(format!("service {name} removed"));
                }
                Some((cfg, password)) => {
                    let old = &self.services[&name];
                    let same_check = old.config.mysql == cfg.mysql
                        && old.config.role == cfg.role
                        && old.config.prefixes == cfg.prefixes
                        && old.config.disable_file == cfg.disable_file
                        && old.config.manage_addresses == cfg.manage_addresses
                        && old.password == **password;
                    if !same_check {
                        self.stop_service(&name);
                        self.start_service(cfg, (*password).clone());
                        changes.push(format!("service {name} restarted (check changed)"));
                    } else if old.config != **cfg {
                        if let Some(s) = self.services.get_mut(&name) {
                            s.config = (*cfg).clone();
                        }
                        changes.push(format!("service {name} attributes changed"));
                    }
                }
            }
        }
        for (name, (cfg, password)) in &wanted {
            if !self.services.contains_key(*name) {
                self.start_service(cfg, (*password).clone());
                changes.push(format!("service {name} added"));
            }
        }
    }

    /// Peers: any change to a peer or to `[bgp]` identity restarts its session; new BFD
    /// intervals alone are applied in place.
    fn reload_peers(&mut self, new: &Config, secrets: &Secrets, changes: &mut Vec<String>) {
        let key = FsmKey::of(new);
        let wanted: BTreeMap<&str, WantedPeer> = new
            .bgp
            .peers
            .iter()
            .zip(&secrets.md5)
            .zip(&secrets.bfd_keys)
            .map(|((p, k), b)| (p.name.as_str(), (p, k, b)))
            .collect();
        let current: Vec<String> = self.peers.keys().cloned().collect();
        for name in current {
            // New BFD intervals alone keep the session: a Poll Sequence carries them.
            let mut retime = None;
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|(cfg, md5, bfd_key)| {
                    let p = &self.peers[&name];
                    retime = crate::bfd::config::intervals_only_change(&p.config, cfg);
                    (p.config == **cfg || retime.is_some())
                        && p.md5 == **md5
                        && p.bfd_key == **bfd_key
                        && p.fsm == key
                });
            if let (true, Some(i), Some(p)) = (keep, retime, self.peers.get_mut(&name)) {
                if let (Some(c), Some((cfg, ..))) = (&p.bfd, wanted.get(name.as_str())) {
                    c.set_intervals(i);
                    p.config = (*cfg).clone();
                    changes.push(format!("peer {name}: BFD intervals changed"));
                }
            }
            if !keep {
                let why = if wanted.contains_key(name.as_str()) {
                    "peer configuration changed"
                } else {
                    "peer removed from the configuration"
                };
                self.stop_peer(&name, why);
                changes.push(format!("peer {name}: session closed ({why})"));
            }
        }
        self.rebind_and_start_peers(new, secrets, &wanted, changes);
    }

    /// Listening sockets again when keys or TTLs changed, then the sessions not running yet.
    fn rebind_and_start_peers(
        &mut self,
        new: &Config,
        secrets: &Secrets,
        wanted: &BTreeMap<&str, WantedPeer>,
        changes: &mut Vec<String>,
    ) {
        if new.bgp.listen != self.config.bgp.listen
            || new
                .bgp
                .peers
                .iter()
                .zip(&secrets.md5)
                .any(|(p, k)| k.is_some() && !self.peers.contains_key(&p.name) || p.ttl_security)
        {
            // New MD5 keys or TTLs must be on the listening sockets before the peer's SYN.
            if let Err(e) = self.bind_listeners(new, secrets) {
                error!("reload: listeners: {e}");
                changes.push(format!("listeners not rebound: {e}"));
            }
        }
        for (name, (cfg, md5, bfd_key)) in wanted {
            if !self.peers.contains_key(*name) {
                if let Err(e) = self.start_peer(new, cfg, (*md5).clone(), (*bfd_key).clone()) {
                    error!("reload: {e}");
                    changes.push(format!("peer {name} not started: {e}"));
                } else {
                    changes.push(format!("peer {name} started"));
                }
            }
        }
    }
}
