//! [`Transport`]: an open driver plus the core's send path, the one place that
//! applies the driver contract's rules: closed, the record size limit,
//! backpressure and one retry budget per record (`handover`), then delivery
//! tracking and counters. Pending deliveries are awaited by one task per transport
//! (`tracker`).

mod handover;
mod tracker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use smallvec::SmallVec;

use self::handover::{Accepted, Attempt, Batch, Handed};
use self::tracker::{DeliveryTracker, Sent, Tracked};

use crate::driver::{CloseReport, Dialect, Driver, OutgoingRecord, PendingDelivery};
use crate::error::{Error, ErrorKind, Result};
use crate::observability::instruments::TransportMetrics;
use crate::priority::Priority;
use crate::registry::DriverRegistry;
use crate::retry::Retry;
use crate::url::TransportUrl;

/// How long a send waits for room in a full local queue, unless configured.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of one transport's traffic.
#[derive(Debug, Default)]
pub struct TransportStats {
    accepted: AtomicU64,
    delivered: AtomicU64,
    delivery_failed: AtomicU64,
    outcome_unknown: AtomicU64,
    retried: AtomicU64,
}

/// A snapshot of [`TransportStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportCounters {
    /// Records the transport accepted.
    pub accepted: u64,
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Records finally lost after every allowed retry (each one was logged).
    pub delivery_failed: u64,
    /// Records whose outcome is unknown (they may be persisted), never sent again
    /// (each one was logged).
    pub outcome_unknown: u64,
    /// Send attempts repeated after a transient failure.
    pub retried: u64,
}

impl TransportStats {
    fn snapshot(&self) -> TransportCounters {
        TransportCounters {
            accepted: self.accepted.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            delivery_failed: self.delivery_failed.load(Ordering::Relaxed),
            outcome_unknown: self.outcome_unknown.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct TransportInner {
    url: TransportUrl,
    driver: Arc<dyn Driver>,
    tracker: DeliveryTracker,
    closed: AtomicBool,
    stats: TransportStats,
    metrics: TransportMetrics,
}

/// An open transport: the driver picked by the URL's scheme, shared by notifiers,
/// listeners and RPC clients. Cloning is cheap and shares the connection.
#[derive(Debug, Clone)]
pub struct Transport {
    inner: Arc<TransportInner>,
    send_timeout: Duration,
}

impl Transport {
    /// Open `url` with the process-wide [`DriverRegistry`].
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(DriverRegistry::global(), &TransportUrl::parse(url)?, &[])
    }

    /// Open with a given registry and configuration options (the URL's query overrides them).
    pub fn open_with(
        registry: &DriverRegistry,
        url: &TransportUrl,
        config_options: &[(String, String)],
    ) -> Result<Self> {
        let driver = registry.open(url, config_options)?;
        Ok(Self::from_driver(url.clone(), driver))
    }

    /// Wrap an already opened driver.
    pub fn from_driver(url: TransportUrl, driver: Arc<dyn Driver>) -> Self {
        Transport {
            inner: Arc::new(TransportInner {
                url,
                tracker: DeliveryTracker::default(),
                closed: AtomicBool::new(false),
                stats: TransportStats::default(),
                metrics: TransportMetrics::new(driver.name()),
                driver,
            }),
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }

    /// This transport (same connection, counters and close) waiting at most
    /// `timeout` for room in a full local queue.
    pub fn with_send_timeout(&self, timeout: Duration) -> Self {
        Transport {
            inner: self.inner.clone(),
            send_timeout: timeout,
        }
    }

    /// The URL this transport was opened from.
    pub fn url(&self) -> &TransportUrl {
        &self.inner.url
    }

    /// The driver underneath.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.inner.driver
    }

    /// The traffic counters.
    pub fn counters(&self) -> TransportCounters {
        self.inner.stats.snapshot()
    }

    /// The connection's health as the driver reports it ([`Driver::health`]), and
    /// whether this transport was closed. Cheap: no network round trip.
    pub fn health(&self) -> crate::observability::TransportHealth {
        let mut health = self.inner.driver.health();
        health.closed = self.is_closed();
        health
    }

    /// Whether [`Transport::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The wire dialect of the driver underneath ([`crate::Capabilities::dialect`]):
    /// how notifications are written and whether topic names carry the virtual host.
    pub fn dialect(&self) -> Dialect {
        self.inner.driver.capabilities().dialect
    }

    /// The URL's virtual host where the core puts it into topic names: in the
    /// [`Dialect::Kafka`] dialect only (an [`Dialect::Amqp`] broker has real
    /// virtual hosts, which its driver uses itself).
    pub(crate) fn topic_virtual_host(&self) -> Option<&str> {
        match self.dialect() {
            Dialect::Kafka => self.inner.url.virtual_host(),
            Dialect::Amqp => None,
        }
    }

    /// The topic a notification of `priority` for `topic` goes to: `topic.priority`,
    /// and, in the [`Dialect::Kafka`] dialect, `.vhost` appended when the URL has a
    /// virtual host. Notifiers and listeners both use this, so a virtual host never
    /// separates them.
    pub fn notification_topic(&self, topic: &str, priority: Priority) -> String {
        match self.topic_virtual_host() {
            Some(vhost) => format!("{topic}.{}.{vhost}", priority.as_str()),
            None => format!("{topic}.{}", priority.as_str()),
        }
    }

    /// Hand a record to the driver: wait (up to the send timeout) while the local
    /// queue is full, retry transient failures as `retry` allows, and return a
    /// receipt for the broker's acknowledgement. A delivery failure is retried,
    /// then logged and counted even if nobody awaits the receipt.
    ///
    /// `retry` is the record's one budget: [`Retry::Limited`]`(n)` allows at most
    /// `n + 1` attempts in all, whether the attempts fail when sent or when the
    /// broker answers. A record whose outcome is unknown (it may be persisted) is
    /// never sent again: its error, or its receipt's, is
    /// [`ErrorKind::OutcomeUnknown`].
    pub async fn send(&self, topic: &str, body: Bytes, retry: Retry) -> Result<DeliveryReceipt> {
        self.send_record(OutgoingRecord::new(topic, body), retry)
            .await
    }

    /// [`Transport::send`] of a record whose topic name is already shared (no copy
    /// of the name).
    pub async fn send_record(
        &self,
        record: OutgoingRecord,
        retry: Retry,
    ) -> Result<DeliveryReceipt> {
        self.send_batch(vec![record], retry)
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::new(ErrorKind::Internal, "a send without an outcome")))
    }

    /// [`Transport::send`] for several records at once, handed to the driver as
    /// batches: one outcome per record, in the same order. Each record has its own
    /// `retry` budget; a record refused (too large, transport closed) does not hold
    /// up the others.
    pub async fn send_batch(
        &self,
        records: Vec<OutgoingRecord>,
        retry: Retry,
    ) -> Vec<Result<DeliveryReceipt>> {
        let now = tokio::time::Instant::now();
        // A batch mostly goes to one topic: its handles are looked up once.
        let mut attempts: Batch<Attempt> = SmallVec::with_capacity(records.len());
        for r in records {
            let metrics = match attempts.last() {
                Some(prev) if prev.record.topic == r.topic => prev.metrics.clone(),
                _ => self.inner.metrics.destination(&r.topic),
            };
            attempts.push(Attempt::first(r, metrics, now.into_std()));
        }
        let handed = self.hand_to_driver(attempts, retry, now).await;
        let stats = &self.inner.stats;
        handed
            .into_iter()
            .map(|handed| match handed {
                Handed::Accepted(Accepted { attempt, pending }) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    attempt.metrics.accepted();
                    Ok(self.track(attempt, pending, retry))
                }
                Handed::Refused(refused) => {
                    refused.attempt.metrics.refused(&refused.error);
                    Err(refused.error)
                }
            })
            .collect()
    }

    /// A receipt for an accepted record: at once if it is already delivered, else
    /// through the tracking task.
    fn track(&self, attempt: Attempt, pending: PendingDelivery, retry: Retry) -> DeliveryReceipt {
        match pending {
            PendingDelivery::Delivered => {
                self.inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                attempt.metrics.delivered_at_once(attempt.started);
                DeliveryReceipt::already_delivered()
            }
            PendingDelivery::Pending(future) => {
                attempt.metrics.pending();
                let (reply, rx) = oneshot::channel();
                self.inner.tracker.push(
                    &self.inner,
                    Tracked {
                        future,
                        record: Sent {
                            attempt,
                            retry,
                            send_timeout: self.send_timeout,
                            reply,
                        },
                    },
                );
                DeliveryReceipt::pending(rx)
            }
        }
    }

    /// The end of a record that will not be sent again: an unknown outcome or a
    /// final failure, logged and counted here, and the error its receipt reports.
    fn give_up(&self, topic: &str, retries: u32, e: Error) -> Error {
        let stats = &self.inner.stats;
        if e.kind() == &ErrorKind::OutcomeUnknown {
            stats.outcome_unknown.fetch_add(1, Ordering::Relaxed);
            tracing::error!(topic, error = %e, retries, "notification outcome unknown: it may be persisted, so it is not sent again");
            Error::new(
                ErrorKind::OutcomeUnknown,
                format!("the record for {topic} may or may not be persisted"),
            )
            .with_source(e)
        } else {
            stats.delivery_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(topic, error = %e, retries, "notification lost: delivery failed");
            let retryable = e.is_retryable();
            // Refused credentials stay what they are (the record was not persisted
            // either): the caller must fix the configuration, not resend.
            let kind = match e.kind() {
                ErrorKind::Authentication => ErrorKind::Authentication,
                _ => ErrorKind::DeliveryFailed,
            };
            Error::new(kind, format!("delivery to {topic} failed"))
                .with_retryable(retryable)
                .with_source(e)
        }
    }

    /// Make sure these topics exist where the driver needs them created.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<()> {
        self.inner.driver.ensure_topics(topics).await
    }

    /// Refuse new sends, deliver what is queued within `timeout`, close the driver.
    /// Idempotent. The report counts records that could not be delivered.
    pub async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(CloseReport::default());
        }
        self.inner.driver.close(timeout).await
    }
}

/// The broker's acknowledgement of a notification, still to come.
///
/// Dropping a receipt is fine: a failure is still retried, logged and counted
/// ([`Transport::counters`]); awaiting [`DeliveryReceipt::delivered`] tells the caller.
#[derive(Debug)]
pub struct DeliveryReceipt {
    waits: Vec<oneshot::Receiver<Result<()>>>,
}

impl DeliveryReceipt {
    /// A receipt for something already delivered.
    pub fn already_delivered() -> Self {
        DeliveryReceipt { waits: Vec::new() }
    }

    fn pending(rx: oneshot::Receiver<Result<()>>) -> Self {
        DeliveryReceipt { waits: vec![rx] }
    }

    /// Combine receipts (a notification sent to several topics or sinks).
    pub fn merge(receipts: impl IntoIterator<Item = DeliveryReceipt>) -> Self {
        DeliveryReceipt {
            waits: receipts.into_iter().flat_map(|r| r.waits).collect(),
        }
    }

    /// Whether every part is already known to be delivered.
    pub fn is_delivered(&self) -> bool {
        self.waits.is_empty()
    }

    /// Wait until the broker acknowledged every part; the first failure is returned.
    pub async fn delivered(self) -> Result<()> {
        for rx in self.waits {
            match rx.await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        "delivery tracker ended without a result",
                    ))
                }
            }
        }
        Ok(())
    }
}
