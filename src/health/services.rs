//! Starting the health tasks, and the API the control socket (`primaryctl`) and the daemon's
//! conflict rules use: service snapshots, drain and undrain, fencing.
//!
//! ```text
//! let (control, tasks) = health::services::start(&config, passwords, events_tx);
//! control.statuses()                                  // show services
//! control.drain(&Target::Service("main".into()), Some("kernel upgrade".into())).await?
//! control.undrain(&Target::All).await?
//! control.fence("main", "conflict: ...").await?      // SET GLOBAL read_only=1
//! ```
//!
//! A drain takes effect (withdraws) before it is persisted, so a full disk never keeps a
//! service announced that an operator took out; the error then says the drain will not
//! survive a restart. An undrain is persisted first: if the record cannot be removed the
//! service stays drained, so the running daemon and the next one agree. Drain records are
//! written and removed on a thread of their own with a deadline (`crate::blocking`): a hung
//! state dir makes the command fail, never the daemon wait.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinSet;

use super::drain::{DrainInfo, DrainStore};
use super::fence::FenceError;
use super::state::{ServiceState, ServiceStatus};
use super::task::{run_task, Command, HealthEvent, TaskSetup};
use crate::blocking;
use crate::config::{Config, ServiceConfig};

/// How long writing or removing a drain record may take before the command fails.
const DRAIN_IO_DEADLINE: Duration = Duration::from_secs(3);

/// Which services a drain or undrain applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Service(String),
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("no service named {0:?}")]
    UnknownService(String),
    /// Drained now, but the record could not be written: a restart would not keep it.
    #[error(
        "service {service}: drained, but the drain could not be saved to {} ({source}); \
         it will not survive a restart",
        path.display()
    )]
    NotPersisted {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The drain record could not be removed, so the service stays drained.
    #[error(
        "service {service}: still drained: cannot remove {} ({source})",
        path.display()
    )]
    NotRemoved {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service {0}: its health task is not running")]
    TaskGone(String),
}

#[derive(Clone)]
struct ServiceHandle {
    name: String,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<ServiceStatus>,
}

/// Handle on the running health tasks; cheap to clone.
#[derive(Clone)]
pub struct HealthServices {
    inner: Arc<Inner>,
}

struct Inner {
    /// Services come and go with configuration reloads.
    services: std::sync::Mutex<Vec<ServiceHandle>>,
    store: DrainStore,
    /// One drain or undrain at a time, so memory and disk never disagree.
    busy: Mutex<()>,
}

/// Starts one health task per service, in `tasks` (see [`HealthServices::add`]). Must run
/// inside a tokio runtime.
pub fn start(
    config: &Config,
    passwords: Vec<Option<String>>,
    events: mpsc::Sender<HealthEvent>,
) -> (HealthServices, JoinSet<()>) {
    let control = HealthServices::new(&config.control.state_dir);
    let mut tasks = JoinSet::new();
    let passwords = passwords.into_iter().chain(std::iter::repeat(None));
    for (index, (service, password)) in config.services.iter().zip(passwords).enumerate() {
        tasks.spawn(control.add(index, service, password, events.clone()));
    }
    (control, tasks)
}

impl HealthServices {
    /// No services yet; drains are persisted under `state_dir`.
    pub fn new(state_dir: &Path) -> HealthServices {
        HealthServices {
            inner: Arc::new(Inner {
                services: std::sync::Mutex::new(Vec::new()),
                store: DrainStore::new(state_dir),
                busy: Mutex::new(()),
            }),
        }
    }

    fn services(&self) -> Vec<ServiceHandle> {
        self.inner
            .services
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Registers a service and returns its health task, for the caller to spawn. The task
    /// first adds the service's addresses to `lo` if `manage_addresses` is set and loads its
    /// persisted drain (off the event loop), before its first check: a drained service is
    /// held down from the very start.
    pub fn add(
        &self,
        index: usize,
        service: &ServiceConfig,
        password: Option<String>,
        events: mpsc::Sender<HealthEvent>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let state = ServiceState::new(service, None, Instant::now());
        let (status_tx, status_rx) =
            watch::channel(state.status(Instant::now(), SystemTime::now(), false));
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let setup = TaskSetup {
            index,
            service: service.clone(),
            password,
            drains: Some(self.inner.store.clone()),
            events,
            commands: cmd_rx,
            status: status_tx,
        };
        let handle = ServiceHandle {
            name: service.name.clone(),
            commands: cmd_tx,
            status: status_rx,
        };
        if let Ok(mut services) = self.inner.services.lock() {
            services.retain(|s| s.name != service.name);
            services.push(handle);
        }
        let span = tracing::info_span!("service", name = %service.name);
        tracing::Instrument::instrument(run_task(setup), span)
    }

    /// Forgets a service (its task is stopped by whoever spawned it).
    pub fn remove(&self, name: &str) {
        if let Ok(mut services) = self.inner.services.lock() {
            services.retain(|s| s.name != name);
        }
    }

    /// Every service's current snapshot, in the order they were added.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        self.services()
            .iter()
            .map(|s| s.status.borrow().clone())
            .collect()
    }

    pub fn status(&self, name: &str) -> Option<ServiceStatus> {
        self.handle(name).map(|s| s.status.borrow().clone())
    }

    /// A receiver that sees every new snapshot of one service.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<ServiceStatus>> {
        self.handle(name).map(|s| s.status)
    }

    fn handle(&self, name: &str) -> Option<ServiceHandle> {
        self.services().into_iter().find(|s| s.name == name)
    }

    fn targets(&self, target: &Target) -> Result<Vec<ServiceHandle>, DrainError> {
        match target {
            Target::All => Ok(self.services()),
            Target::Service(name) => self
                .handle(name)
                .map(|h| vec![h])
                .ok_or_else(|| DrainError::UnknownService(name.clone())),
        }
    }

    /// Withdraws and holds down the target services, and persists that in `state_dir`.
    /// Returns their snapshots after the change.
    pub async fn drain(
        &self,
        target: &Target,
        note: Option<String>,
    ) -> Result<Vec<ServiceStatus>, DrainError> {
        let _busy = self.inner.busy.lock().await;
        let mut out = Vec::new();
        for h in self.targets(target)? {
            let info = DrainInfo::new(SystemTime::now(), note.clone());
            out.push(set(&h, Some(info.clone())).await?);
            let store = self.inner.store.clone();
            let name = h.name.clone();
            let saved = blocking::run(DRAIN_IO_DEADLINE, move || store.save(&name, &info))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(source) = saved {
                return Err(DrainError::NotPersisted {
                    service: h.name.clone(),
                    path: self.inner.store.path(&h.name),
                    source,
                });
            }
        }
        Ok(out)
    }

    /// Lets the target services be announced again (when healthy), and forgets the
    /// persisted drain.
    pub async fn undrain(&self, target: &Target) -> Result<Vec<ServiceStatus>, DrainError> {
        let _busy = self.inner.busy.lock().await;
        let mut out = Vec::new();
        for h in self.targets(target)? {
            let store = self.inner.store.clone();
            let name = h.name.clone();
            let removed = blocking::run(DRAIN_IO_DEADLINE, move || store.remove(&name))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(source) = removed {
                return Err(DrainError::NotRemoved {
                    service: h.name.clone(),
                    path: self.inner.store.path(&h.name),
                    source,
                });
            }
            out.push(set(&h, None).await?);
        }
        Ok(out)
    }
}

impl HealthServices {
    /// Makes the service's server read-only (`SET GLOBAL read_only = 1`, and
    /// `super_read_only = 1` on MySQL), logged once with `reason`. Answers within the check
    /// timeout (plus the time to reach the task), whatever a running check is doing.
    pub async fn fence(&self, name: &str, reason: &str) -> Result<(), FenceError> {
        let h = self
            .handle(name)
            .ok_or_else(|| FenceError::UnknownService(name.to_string()))?;
        let gone = || FenceError::TaskGone(name.to_string());
        let (done, answer) = oneshot::channel();
        let cmd = Command::Fence {
            reason: reason.to_string(),
            done,
        };
        h.commands.send(cmd).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl HealthServices {
    /// An operator confirmed the service's server as the primary: its next healthy check
    /// writes a promotion term above `above` (docs/safety.md). False if the service is gone.
    pub async fn confirm_term(&self, name: &str, above: u64) -> bool {
        match self.handle(name) {
            Some(h) => h
                .commands
                .send(Command::ConfirmTerm { above })
                .await
                .is_ok(),
            None => false,
        }
    }
}

async fn set(h: &ServiceHandle, drained: Option<DrainInfo>) -> Result<ServiceStatus, DrainError> {
    let gone = || DrainError::TaskGone(h.name.clone());
    let (done, answer) = oneshot::channel();
    h.commands
        .send(Command::SetDrain { drained, done })
        .await
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())
}

impl HealthServices {
    /// `primaryctl check`: every target service checks now (all at once); each answers after
    /// a check that started after the request, once its result reached the daemon
    /// ([`super::on_demand`]).
    pub async fn check_now(
        &self,
        target: &Target,
    ) -> Result<Vec<super::on_demand::CheckOutcome>, DrainError> {
        let mut answers = Vec::new();
        for h in self.targets(target)? {
            let gone = || DrainError::TaskGone(h.name.clone());
            let (done, answer) = oneshot::channel();
            let cmd = Command::CheckNow { done };
            h.commands.send(cmd).await.map_err(|_| gone())?;
            answers.push((h.name.clone(), answer));
        }
        let mut out = Vec::new();
        for (name, answer) in answers {
            out.push(answer.await.map_err(|_| DrainError::TaskGone(name))?);
        }
        Ok(out)
    }
}
