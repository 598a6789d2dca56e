//! The start / stop / wait state machine shared by listeners and RPC servers
//! (their loop is [`crate::service`]).
//!
//! `start` after `start` does nothing; `stop` is synchronous and idempotent and makes
//! a later `start` refuse with [`crate::ErrorKind::Closed`]; `wait` returns once the
//! background task drained and ended (at once if it never started), as often as
//! it is called, with the task's outcome (a failure keeps its [`ErrorKind`], e.g.
//! [`ErrorKind::Authentication`] when the subscription's credentials were refused).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::observability::health::{RunState, ServiceStatus, StatusCell};
use crate::service::{self, Service, ServiceSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    Stopped,
}

#[derive(Debug)]
struct Task {
    state: State,
    handle: Option<JoinHandle<Result<()>>>,
    /// The task's outcome once it ended (a failure keeps its kind).
    outcome: Option<Result<(), Error>>,
}

/// One background service's lifecycle.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    what: &'static str,
    stop: watch::Sender<bool>,
    stopped: Mutex<bool>,
    task: tokio::sync::Mutex<Task>,
    status: Arc<StatusCell>,
}

impl Lifecycle {
    pub(crate) fn new(what: &'static str) -> Self {
        Lifecycle {
            what,
            stop: watch::channel(false).0,
            stopped: Mutex::new(false),
            task: tokio::sync::Mutex::new(Task {
                state: State::Created,
                handle: None,
                outcome: None,
            }),
            status: Arc::default(),
        }
    }

    /// The status the task keeps up to date (and its backlog probe, see
    /// [`StatusCell::set_lag_probe`]).
    pub(crate) fn status_cell(&self) -> &Arc<StatusCell> {
        &self.status
    }

    /// The status now.
    pub(crate) fn status(&self) -> ServiceStatus {
        self.status.snapshot()
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `setup` and spawn the [`service::run`] loop of the service it returns,
    /// unless already running (nothing to do) or stopped (refused). A failed setup
    /// leaves the service startable.
    pub(crate) async fn start<S, SFut>(&self, settings: ServiceSettings, setup: SFut) -> Result<()>
    where
        S: Service,
        SFut: Future<Output = Result<S>>,
    {
        let mut task = self.task.lock().await;
        if self.is_stopped() {
            return Err(Error::closed(self.what));
        }
        match task.state {
            State::Running => return Ok(()),
            State::Stopped => return Err(Error::closed(self.what)),
            State::Created => {}
        }
        let service = match setup.await {
            Ok(service) => service,
            Err(e) => {
                self.status.error(&e);
                return Err(e);
            }
        };
        let status = self.status.clone();
        let run = service::run(service, settings, self.stop.subscribe(), status.clone());
        status.set(RunState::Running);
        task.handle = Some(tokio::spawn(async move {
            let outcome = run.await;
            status.ended(&outcome);
            outcome
        }));
        task.state = State::Running;
        Ok(())
    }

    /// Signal the task to stop. Returns at once.
    pub(crate) fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.status.stopping();
        self.stop.send_replace(true);
    }

    /// `stop`, then `wait`.
    pub(crate) async fn stop_and_wait(&self) -> Result<()> {
        self.stop();
        self.wait().await
    }

    /// Wait for the task to end; its outcome is kept for later calls. Cancel-safe:
    /// the task's handle stays in place until it ended, so a `wait` dropped early
    /// (e.g. raced against a signal in a `select!`) loses nothing.
    pub(crate) async fn wait(&self) -> Result<()> {
        let mut task = self.task.lock().await;
        if let Some(handle) = task.handle.as_mut() {
            let joined = handle.await;
            task.handle = None;
            let outcome = match joined {
                Ok(r) => r,
                Err(e) => Err(Error::new(
                    ErrorKind::Internal,
                    format!("{} task failed: {e}", self.what),
                )),
            };
            task.outcome = Some(outcome);
            task.state = State::Stopped;
        } else if self.is_stopped() {
            task.state = State::Stopped;
        }
        match &task.outcome {
            Some(Err(e)) => Err(e.detached()),
            _ => Ok(()),
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".to_owned())
}
