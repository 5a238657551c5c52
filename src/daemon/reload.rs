//! Reading the configuration for a reload without ever blocking the daemon loop: the read
//! (config, secret files, host checks) runs on a thread of its own with a deadline
//! ([`config::load_all_on`]); the loop polls [`Reading::done`] beside health events and
//! sessions. A read that does not finish in time refuses the reload with the reason, and the
//! running configuration stays. Requests that come while a read is under way are answered by
//! a fresh read after it, so none is answered with a file older than its request.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tracing::error;

use super::Reply;
use crate::blocking::Lane;
use crate::config::{self, Config, ConfigError, Secrets};
use crate::operator::protocol::Response;

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
