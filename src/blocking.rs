//! Blocking work off the event loop, with a deadline: reading files (the configuration on
//! reload, the disable file, drain records), listing addresses, running `ip`. Anything that
//! touches a file can block for ever (a FIFO without a writer, a hung NFS or FUSE mount), and
//! the daemon's one runtime thread also runs the health checks and the BGP sessions.
//!
//! Each job runs on a thread of its own rather than tokio's blocking pool: a job that never
//! returns then costs one parked thread and never holds up the runtime's shutdown (dropping a
//! runtime waits for its blocking pool). A [`Lane`] runs one job at a time, so a job that
//! hangs makes the next ones on its lane fail at once instead of piling up threads.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

/// Why a blocking job gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockingError {
    /// Still running after the deadline (it may finish later; its answer is dropped).
    TimedOut(Duration),
    /// The lane's previous job has not returned yet.
    Busy,
    /// The job's thread could not be started, or it panicked.
    Failed(String),
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockingError::TimedOut(d) => {
                write!(f, "no answer within {} ms", d.as_millis())
            }
            BlockingError::Busy => f.write_str("the previous attempt has not returned yet"),
            BlockingError::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for BlockingError {}

fn spawn<T, F>(f: F) -> Result<oneshot::Receiver<T>, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    on_thread(move || {
        let _ = tx.send(f());
    })?;
    Ok(rx)
}

/// Starts `job` on a thread of its own.
fn on_thread(job: impl FnOnce() + Send + 'static) -> Result<(), BlockingError> {
    std::thread::Builder::new()
        .name("primaryd-io".into())
        .spawn(job)
        .map(drop)
        .map_err(|e| BlockingError::Failed(format!("cannot start a thread: {e}")))
}

/// Runs `f` on its own thread and waits at most `deadline` for its answer.
pub async fn run<T, F>(deadline: Duration, f: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let rx = spawn(f)?;
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(BlockingError::Failed("the job panicked".into())),
        Err(_) => Err(BlockingError::TimedOut(deadline)),
    }
}

/// Like [`run`], for callers outside the runtime (`--check`, start-up).
pub fn run_sync<T, F>(deadline: Duration, f: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    on_thread(move || {
        let _ = tx.send(f());
    })?;
    match rx.recv_timeout(deadline) {
        Ok(v) => Ok(v),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(BlockingError::TimedOut(deadline)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(BlockingError::Failed("the job panicked".into()))
        }
    }
}

/// One job at a time; cheap to clone (clones share the lane).
#[derive(Debug, Clone, Default)]
pub struct Lane {
    busy: Arc<AtomicBool>,
}

/// Frees the lane when the job ends, also by a panic.
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Lane {
    pub fn new() -> Lane {
        Lane::default()
    }

    /// Whether a job (perhaps one that timed out) is still running.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// [`run`], unless the lane's previous job is still running: then `Busy` at once.
    pub async fn run<T, F>(&self, deadline: Duration, f: F) -> Result<T, BlockingError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self
            .busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(BlockingError::Busy);
        }
        let release = Release(Arc::clone(&self.busy));
        run(deadline, move || {
            let _release = release;
            f()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test]
    async fn answers_in_time_and_times_out_without_blocking_the_runtime() {
        assert_eq!(run(Duration::from_secs(5), || 7).await, Ok(7));
        let (unblock, blocked) = mpsc::channel::<()>();
        let lane = Lane::new();
        let stuck = lane.run(Duration::from_millis(50), move || blocked.recv().is_ok());
        assert_eq!(
            stuck.await,
            Err(BlockingError::TimedOut(Duration::from_millis(50)))
        );
        // The stuck job still holds the lane: the next one is refused at once.
        assert!(lane.is_busy());
        assert_eq!(
            lane.run(Duration::from_secs(5), || 1).await,
            Err(BlockingError::Busy)
        );
        // Once it returns, the lane is free again.
        unblock.send(()).unwrap();
        let freed = tokio::time::timeout(Duration::from_secs(5), async {
            while lane.is_busy() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(freed.is_ok(), "the lane was never released");
        assert_eq!(lane.run(Duration::from_secs(5), || 2).await, Ok(2));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_frees_its_lane() {
        let lane = Lane::new();
        let r: Result<(), _> = lane
            .run(Duration::from_secs(5), || panic!("test panic"))
            .await;
        assert!(matches!(r, Err(BlockingError::Failed(_))), "{r:?}");
        assert!(!lane.is_busy());
    }

    #[test]
    fn sync_variant_times_out() {
        assert_eq!(run_sync(Duration::from_secs(5), || 3), Ok(3));
        let (_keep, blocked) = mpsc::channel::<()>();
        assert_eq!(
            run_sync(Duration::from_millis(20), move || blocked.recv().is_ok()),
            Err(BlockingError::TimedOut(Duration::from_millis(20)))
        );
    }
}
