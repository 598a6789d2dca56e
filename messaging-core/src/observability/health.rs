//! Health and status for applications and orchestrator probes: whether a
//! [`crate::Transport`] is connected ([`crate::Transport::health`]), whether a
//! [`crate::NotificationListener`] or [`crate::RpcServer`] runs
//! ([`crate::NotificationListener::status`], [`crate::RpcServer::status`]), since
//! when, the last error, and the backlog where the driver can tell.
//!
//! Drivers report their connection through [`crate::Driver::health`]; a driver
//! keeps a [`ConnectionTracker`] and updates it from its client library's events
//! (librdkafka's error callback, the AMQP connection's state). A driver that cannot
//! tell reports [`ConnectionState::Unknown`], which [`TransportHealth::is_connected`]
//! counts as connected (nothing says otherwise).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::error::{Error, ErrorKind};

/// The connection to the broker, as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The driver has a working connection (memory: always).
    Connected,
    /// The driver lost its connection, or never got one (all brokers down, the
    /// AMQP connection closed); it keeps trying to reconnect.
    Disconnected,
    /// The driver cannot tell.
    Unknown,
}

impl ConnectionState {
    /// The state as a lower-case word (`connected`, `disconnected`, `unknown`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Unknown => "unknown",
        }
    }
}

/// An error kept for a health or status report: what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// Its portable kind.
    pub kind: ErrorKind,
    /// Its message (with its sources).
    pub message: String,
    /// When it happened.
    pub at: SystemTime,
}

impl ErrorReport {
    /// A report of `error`, now.
    pub fn of(error: &Error) -> Self {
        ErrorReport {
            kind: error.kind().clone(),
            message: error.to_string(),
            at: SystemTime::now(),
        }
    }

    /// A report of a failure of `kind` described by `message`, now.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorReport {
            kind,
            message: message.into(),
            at: SystemTime::now(),
        }
    }
}

/// A transport's health ([`crate::Transport::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportHealth {
    /// The connection, as the driver reports it.
    pub state: ConnectionState,
    /// Since when the connection is in this state (`None` when the driver cannot tell).
    pub since: Option<SystemTime>,
    /// The last connection error the driver saw (it may be in the past: see `state`).
    pub last_error: Option<ErrorReport>,
    /// [`crate::Transport::close`] was called.
    pub closed: bool,
}

impl TransportHealth {
    /// The health of a driver that cannot tell ([`ConnectionState::Unknown`]).
    pub fn unknown() -> Self {
        TransportHealth {
            state: ConnectionState::Unknown,
            since: None,
            last_error: None,
            closed: false,
        }
    }

    /// Whether the transport can be used: not closed, and not known to be
    /// disconnected ([`ConnectionState::Unknown`] counts as connected).
    pub fn is_connected(&self) -> bool {
        !self.closed && self.state != ConnectionState::Disconnected
    }
}

/// What a driver keeps to answer [`crate::Driver::health`]: the connection state,
/// since when, and the last error. Cheap to clone (shared); updated from the
/// client library's callbacks.
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    inner: Arc<Mutex<Tracked>>,
}

#[derive(Debug)]
struct Tracked {
    state: ConnectionState,
    since: SystemTime,
    last_error: Option<ErrorReport>,
}

impl ConnectionTracker {
    /// A tracker starting in `state`, now.
    pub fn new(state: ConnectionState) -> Self {
        ConnectionTracker {
            inner: Arc::new(Mutex::new(Tracked {
                state,
                since: SystemTime::now(),
                last_error: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: ConnectionState) -> bool {
        let mut t = self.lock();
        let changed = t.state != state;
        if changed {
            t.state = state;
            t.since = SystemTime::now();
        }
        changed
    }

    /// The driver has a working connection. Returns whether that is a change.
    pub fn connected(&self) -> bool {
        self.set(ConnectionState::Connected)
    }

    /// The driver lost its connection because of `error`. Returns whether that is a
    /// change (the error is kept either way).
    pub fn disconnected(&self, error: ErrorReport) -> bool {
        self.error(error);
        self.set(ConnectionState::Disconnected)
    }

    /// Keep `error` as the last one without changing the state.
    pub fn error(&self, error: ErrorReport) {
        self.lock().last_error = Some(error);
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.lock().state
    }

    /// The health to report (`closed` is set by the transport).
    pub fn health(&self) -> TransportHealth {
        let t = self.lock();
        TransportHealth {
            state: t.state,
            since: Some(t.since),
            last_error: t.last_error.clone(),
            closed: false,
        }
    }
}

/// Where a listener or an RPC server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Built, not started.
    Created,
    /// Started: receiving and dispatching.
    Running,
    /// Asked to stop: draining what is in flight.
    Stopping,
    /// Stopped after a stop (or its receiver closed).
    Stopped,
    /// Stopped on its own because of an error that retrying cannot fix (see
    /// [`ServiceStatus::last_error`]).
    Failed,
}

impl RunState {
    /// The state as a lower-case word (`created`, `running`, `stopping`, `stopped`, `failed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::Failed => "failed",
        }
    }
}

/// A listener's or RPC server's status ([`crate::NotificationListener::status`],
/// [`crate::RpcServer::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Where it is in its life.
    pub state: RunState,
    /// Since when it is in this state.
    pub since: SystemTime,
    /// The last error: a receive that failed (and was retried), or the one that
    /// stopped it ([`RunState::Failed`]).
    pub last_error: Option<ErrorReport>,
    /// Records waiting for it on the broker, where the driver can tell (Kafka: the
    /// consumer lag summed over its partitions; RabbitMQ and memory: messages ready
    /// in its queues). `None` when unknown.
    pub lag: Option<u64>,
}

impl ServiceStatus {
    /// Whether it is running (started and not asked to stop).
    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }
}

/// Reads a subscription's backlog for [`ServiceStatus::lag`].
pub(crate) type LagProbe = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The status a [`crate::lifecycle::Lifecycle`] keeps, shared with its task.
#[derive(Default)]
pub(crate) struct StatusCell {
    inner: Mutex<StatusInner>,
}

struct StatusInner {
    state: RunState,
    since: SystemTime,
    last_error: Option<ErrorReport>,
    lag: Option<LagProbe>,
}

impl Default for StatusInner {
    fn default() -> Self {
        StatusInner {
            state: RunState::Created,
            since: SystemTime::now(),
            last_error: None,
            lag: None,
        }
    }
}

impl std::fmt::Debug for StatusCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("StatusCell")
            .field("state", &s.state)
            .field("since", &s.since)
            .finish_non_exhaustive()
    }
}

impl StatusCell {
    fn lock(&self) -> MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move to `state` (a no-op when already there). A stopped or failed service
    /// stays so.
    pub(crate) fn set(&self, state: RunState) {
        let mut s = self.lock();
        let final_state = matches!(s.state, RunState::Stopped | RunState::Failed);
        if s.state != state && !final_state {
            s.state = state;
            s.since = SystemTime::now();
        }
    }

    /// Asked to stop: a running service is draining, one never started is stopped.
    pub(crate) fn stopping(&self) {
        let next = match self.lock().state {
            RunState::Created => RunState::Stopped,
            _ => RunState::Stopping,
        };
        self.set(next);
    }

    /// Keep `error` as the last one.
    pub(crate) fn error(&self, error: &Error) {
        self.lock().last_error = Some(ErrorReport::of(error));
    }

    /// The task ended with `outcome`.
    pub(crate) fn ended(&self, outcome: &crate::Result<()>) {
        match outcome {
            Ok(()) => self.set(RunState::Stopped),
            Err(e) => {
                self.error(e);
                self.set(RunState::Failed);
            }
        }
        self.lock().lag = None;
    }

    /// Read the backlog through `probe` from now on.
    pub(crate) fn set_lag_probe(&self, probe: LagProbe) {
        self.lock().lag = Some(probe);
    }

    /// The status now.
    pub(crate) fn snapshot(&self) -> ServiceStatus {
        let (mut status, probe) = {
            let s = self.lock();
            let status = ServiceStatus {
                state: s.state,
                since: s.since,
                last_error: s.last_error.clone(),
                lag: None,
            };
            (status, s.lag.clone())
        };
        status.lag = probe.and_then(|p| p());
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_stopped_before_it_started_is_stopped_and_stays_so() {
        let cell = StatusCell::default();
        assert_eq!(cell.snapshot().state, RunState::Created);
        cell.stopping();
        assert_eq!(cell.snapshot().state, RunState::Stopped);
        cell.set(RunState::Running);
        assert_eq!(cell.snapshot().state, RunState::Stopped, "final");
    }

    #[test]
    fn a_failed_task_keeps_its_error_and_drops_its_lag_probe() {
        let cell = StatusCell::default();
        cell.set(RunState::Running);
        cell.set_lag_probe(Arc::new(|| Some(3)));
        assert_eq!(cell.snapshot().lag, Some(3));
        cell.ended(&Err(Error::authentication("refused")));
        let s = cell.snapshot();
        assert_eq!(s.state, RunState::Failed);
        assert_eq!(s.last_error.unwrap().kind, ErrorKind::Authentication);
        assert_eq!(s.lag, None);
    }

    #[test]
    fn a_tracker_reports_changes_and_keeps_the_last_error() {
        let t = ConnectionTracker::new(ConnectionState::Unknown);
        assert!(TransportHealth::unknown().is_connected());
        assert!(t.connected());
        assert!(!t.connected(), "no change");
        assert!(t.disconnected(ErrorReport::new(ErrorKind::Transport, "down")));
        let h = t.health();
        assert!(!h.is_connected());
        assert_eq!(h.last_error.unwrap().message, "down");
    }
}
