//! The [`NotificationListener`]: subscribes to notifications and dispatches them to
//! endpoints.
//!
//! A listener subscribes to `topic.priority` for every target and every priority
//! some endpoint handles, as a member of its pool (every pool gets its own copy of
//! each notification; members of one pool share them).
//!
//! **Guarantees.** A notification is acknowledged only after every endpoint that
//! took it returned; a handler error or panic counts as *requeue* when the listener
//! allows requeue (the notification is delivered again), else it is acknowledged and
//! the failure logged. Records that are not oslo notifications are skipped, logged
//! and counted (and optionally copied to a dead-letter topic); they never stop the
//! listener. `stop` stops fetching, lets the handlers in flight finish (within the
//! stop timeout), acknowledges what they handled and leaves: nothing accepted is lost.
//!
//! **Ordering.** Up to `max_concurrency` (default 64) handlers run at once, so
//! notifications can finish out of order; set it to 1 for strict per-listener order.
//! Handlers run on the listener's task: a handler that blocks or burns CPU for long
//! should move that work to `tokio::task::spawn_blocking`.

mod dispatch;
mod endpoint;
mod filter;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use endpoint::{
    BatchEndpoint, BatchNotificationHandler, Endpoint, FnHandler, HandlerOutcome, HandlerResult,
    NotificationEndpoint, NotificationHandler, TypedHandler,
};
pub use filter::NotificationFilter;

use dispatch::{Dispatch, ListenerService, ListenerSettings, ListenerStats};

use crate::driver::{StartPosition, SubscriptionSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::Lifecycle;
use crate::priority::Priority;
use crate::retry::Retry;
use crate::service::{ServiceSettings, DEFAULT_STOP_TIMEOUT};
use crate::transport::Transport;

pub use crate::target::Target;

/// Default bound on handlers running at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// The default retry budget of a copy to the dead-letter topic: 10 retries, about
/// 6.5 s of the transport's delivery backoff in all.
pub const DEFAULT_DEAD_LETTER_RETRY: Retry = Retry::Limited(10);

/// How long one receive from the subscription waits for records.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// A snapshot of a listener's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerCounters {
    /// Records received from the transport.
    pub received: u64,
    /// Notifications acknowledged after dispatch (handled, filtered out, or refused without requeue).
    pub handled: u64,
    /// Notifications handed back for redelivery.
    pub requeued: u64,
    /// Handler errors and panics.
    pub handler_failures: u64,
    /// Records skipped because they were not oslo notifications.
    pub skipped: u64,
    /// Notifications no endpoint took (priority or filter).
    pub filtered: u64,
    /// Skipped records copied to the dead-letter topic (and then acknowledged).
    pub dead_lettered: u64,
    /// Skipped records whose copy to the dead-letter topic failed after its retry
    /// budget ([`NotificationListenerBuilder::dead_letter_retry`]): left
    /// unacknowledged, so the transport delivers them again (after a restart of the
    /// listener, or to another member of its pool), never lost.
    pub dead_letter_failures: u64,
}

/// Builds a [`NotificationListener`].
#[derive(Debug)]
pub struct NotificationListenerBuilder {
    transport: Transport,
    targets: Vec<Target>,
    endpoints: Vec<NotificationEndpoint>,
    batch_endpoints: Vec<BatchEndpoint>,
    batch: Option<(usize, Duration)>,
    pool: Option<String>,
    settings: ListenerSettings,
    service: ServiceSettings,
    start: StartPosition,
}

impl NotificationListenerBuilder {
    /// Listen to a target (at least one is required).
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Add an endpoint (endpoints run in the order added; the first refusal stops the rest).
    pub fn endpoint(mut self, endpoint: NotificationEndpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Add a batch endpoint (makes this a batch listener).
    pub fn batch_endpoint(mut self, endpoint: BatchEndpoint) -> Self {
        self.batch_endpoints.push(endpoint);
        self
    }

    /// Batch size and timeout for a batch listener: a batch is handed over when it has
    /// `size` notifications or `timeout` after its first one arrived.
    pub fn batch(mut self, size: usize, timeout: Duration) -> Self {
        self.batch = Some((size.max(1), timeout));
        self
    }

    /// Join a pool (consumer group). Without one, the driver's default pool.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Allow requeue (default false, like oslo).
    pub fn allow_requeue(mut self, allow: bool) -> Self {
        self.settings.allow_requeue = allow;
        self
    }

    /// Bound on handlers (or batches) running at once (default 64).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.service.max_concurrency = n.max(1);
        self
    }

    /// How long `stop` lets handlers in flight finish (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.service.stop_timeout = timeout;
        self
    }

    /// Copy records that are not oslo notifications (and payloads a typed endpoint
    /// cannot read) to this (full) topic name. A skipped record is acknowledged only
    /// once its copy is confirmed by the broker; the copy is sent while the listener
    /// goes on dispatching (it takes one of the [`max_concurrency`] slots until it is
    /// confirmed). A copy that still fails after its retry budget
    /// ([`dead_letter_retry`]) leaves the original unacknowledged: it is counted
    /// ([`ListenerCounters::dead_letter_failures`]), logged, and delivered again
    /// later, never lost.
    ///
    /// [`max_concurrency`]: NotificationListenerBuilder::max_concurrency
    /// [`dead_letter_retry`]: NotificationListenerBuilder::dead_letter_retry
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.settings.dead_letter_topic = Some(topic.into());
        self
    }

    /// The retry budget of each copy to the dead-letter topic (default
    /// [`DEFAULT_DEAD_LETTER_RETRY`]), spent by the transport with its delivery
    /// backoff (10 ms doubling up to 2 s between attempts).
    pub fn dead_letter_retry(mut self, retry: Retry) -> Self {
        self.settings.dead_letter_retry = retry;
        self
    }

    /// Where a new pool starts (default: the driver's default).
    pub fn start_position(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Build the listener (not started yet).
    pub fn build(self) -> Result<NotificationListener> {
        let invalid = |m: &str| Error::new(ErrorKind::InvalidArgument, m.to_owned());
        if self.targets.is_empty() {
            return Err(invalid("a listener needs at least one target"));
        }
        let (dispatch, priorities): (Dispatch, Vec<Priority>) =
            match (self.endpoints.is_empty(), self.batch_endpoints.is_empty()) {
                (false, true) => {
                    if self.batch.is_some() {
                        return Err(invalid("batch settings need batch endpoints"));
                    }
                    let ps = union(self.endpoints.iter().map(|e| e.handled_priorities()));
                    (Dispatch::Single(self.endpoints.into()), ps)
                }
                (true, false) => {
                    let (size, timeout) = self.batch.unwrap_or((100, Duration::from_secs(1)));
                    let ps = union(self.batch_endpoints.iter().map(|e| e.handled_priorities()));
                    (
                        Dispatch::Batch {
                            endpoints: self.batch_endpoints.into(),
                            size,
                            timeout,
                        },
                        ps,
                    )
                }
                (true, true) => return Err(invalid("a listener needs at least one endpoint")),
                (false, false) => {
                    return Err(invalid(
                        "a listener has either endpoints or batch endpoints, not both",
                    ))
                }
            };
        if priorities.is_empty() {
            return Err(invalid("no endpoint handles any priority"));
        }
        let mut topics = Vec::new();
        for t in &self.targets {
            for p in &priorities {
                topics.push(self.transport.notification_topic(&t.topic, *p));
            }
        }
        let targets: Vec<&str> = self.targets.iter().map(|t| t.topic.as_str()).collect();
        let labels = crate::observability::instruments::service_labels(
            self.transport.driver().name(),
            &targets,
            self.pool.as_deref(),
        );
        Ok(NotificationListener {
            inner: Arc::new(ListenerInner {
                transport: self.transport,
                spec: SubscriptionSpec {
                    topics,
                    pool: self.pool,
                    start: self.start,
                },
                dispatch,
                settings: self.settings,
                service: self.service,
                stats: Arc::new(ListenerStats::new(&labels)),
                lifecycle: Lifecycle::new("listener"),
            }),
        })
    }
}

/// Reads `subscription`'s backlog while the listener's task holds it (a weak
/// reference: the probe never keeps a closed subscription alive).
fn lag_probe(
    subscription: &Arc<dyn crate::driver::Subscription>,
) -> crate::observability::health::LagProbe {
    let subscription = Arc::downgrade(subscription);
    Arc::new(move || subscription.upgrade().and_then(|s| s.lag()))
}

fn union<'a>(sets: impl Iterator<Item = &'a [Priority]>) -> Vec<Priority> {
    let mut out: Vec<Priority> = Vec::new();
    for set in sets {
        for p in set {
            if !out.contains(p) {
                out.push(*p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug)]
struct ListenerInner {
    transport: Transport,
    spec: SubscriptionSpec,
    dispatch: Dispatch,
    settings: ListenerSettings,
    service: ServiceSettings,
    stats: Arc<ListenerStats>,
    lifecycle: Lifecycle,
}

/// Listens to notifications and dispatches them to endpoints. Cheap to clone.
///
/// `start`, `stop` and `wait` are idempotent: `start` after `start` does nothing,
/// `stop` before `start` makes `start` refuse, `wait` returns once the listener has
/// drained and left (at once if it never started).
#[derive(Debug, Clone)]
pub struct NotificationListener {
    inner: Arc<ListenerInner>,
}

impl NotificationListener {
    /// Start building a listener on a transport.
    pub fn builder(transport: &Transport) -> NotificationListenerBuilder {
        NotificationListenerBuilder {
            transport: transport.clone(),
            targets: Vec::new(),
            endpoints: Vec::new(),
            batch_endpoints: Vec::new(),
            batch: None,
            pool: None,
            settings: ListenerSettings {
                allow_requeue: false,
                dead_letter_topic: None,
                dead_letter_retry: DEFAULT_DEAD_LETTER_RETRY,
            },
            service: ServiceSettings {
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
                poll_wait: POLL_WAIT,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
            },
            start: StartPosition::Default,
        }
    }

    /// The full topic names this listener subscribes to.
    pub fn topics(&self) -> &[String] {
        &self.inner.spec.topics
    }

    /// Subscribe and start dispatching. Returns once the subscription exists.
    pub async fn start(&self) -> Result<()> {
        let inner = &self.inner;
        inner
            .lifecycle
            .start(inner.service.clone(), async move {
                let transport = &inner.transport;
                if transport.is_closed() {
                    return Err(Error::closed("transport"));
                }
                transport.ensure_topics(&inner.spec.topics).await?;
                let subscription = transport.driver().subscribe(inner.spec.clone()).await?;
                let subscription: Arc<dyn crate::driver::Subscription> = subscription.into();
                inner
                    .lifecycle
                    .status_cell()
                    .set_lag_probe(lag_probe(&subscription));
                Ok(ListenerService::new(
                    subscription,
                    inner.dispatch.clone(),
                    inner.settings.clone(),
                    inner.stats.clone(),
                    transport.clone(),
                ))
            })
            .await
    }

    /// Ask the listener to stop: no more fetching; handlers in flight finish. Returns at once.
    pub fn stop(&self) {
        self.inner.lifecycle.stop();
    }

    /// Wait until the listener stopped, drained and left its pool. A listener whose
    /// subscription failed for good stops on its own, and `wait` returns that error
    /// (e.g. [`crate::ErrorKind::Authentication`] when the broker refused the
    /// credentials); otherwise `Ok` after [`NotificationListener::stop`].
    /// Cancel-safe: it may be raced against other events in a `select!`.
    pub async fn wait(&self) -> Result<()> {
        self.inner.lifecycle.wait().await
    }

    /// `stop` then `wait`.
    pub async fn stop_and_wait(&self) -> Result<()> {
        self.inner.lifecycle.stop_and_wait().await
    }

    /// Running or stopped and since when, the last error, and the backlog waiting
    /// on the broker where the driver can tell ([`crate::Subscription::lag`]).
    pub fn status(&self) -> crate::observability::ServiceStatus {
        self.inner.lifecycle.status()
    }

    /// The listener's counters.
    pub fn counters(&self) -> ListenerCounters {
        let s = &self.inner.stats;
        ListenerCounters {
            received: s.received.load(Ordering::Relaxed),
            handled: s.handled.load(Ordering::Relaxed),
            requeued: s.requeued.load(Ordering::Relaxed),
            handler_failures: s.handler_failures.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            filtered: s.filtered.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            dead_letter_failures: s.dead_letter_failures.load(Ordering::Relaxed),
        }
    }
}
