//! [`Transport`]: an open driver plus the core's send path (backpressure, retries,
//! delivery tracking, counters). Pending deliveries are awaited by one task per
//! transport ([`tracker`]).

mod tracker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use self::tracker::{DeliveryTracker, Sent, Tracked};

use crate::driver::{CloseReport, Driver, PendingDelivery};
use crate::error::{Error, ErrorKind, Result};
use crate::priority::Priority;
use crate::registry::DriverRegistry;
use crate::retry::{Backoff, Retry};
use crate::url::TransportUrl;

/// How long a send waits for room in a full local queue, unless configured.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One record of a [`Transport::send_batch`]: the full topic name and the encoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The full topic name (e.g. from [`Transport::notification_topic`]).
    pub topic: String,
    /// The encoded record.
    pub body: Bytes,
}

/// Counters of one transport's traffic.
#[derive(Debug, Default)]
pub struct TransportStats {
    accepted: AtomicU64,
    delivered: AtomicU64,
    delivery_failed: AtomicU64,
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
    /// Send attempts repeated after a transient failure.
    pub retried: u64,
}

impl TransportStats {
    fn snapshot(&self) -> TransportCounters {
        TransportCounters {
            accepted: self.accepted.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            delivery_failed: self.delivery_failed.load(Ordering::Relaxed),
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
                driver,
                tracker: DeliveryTracker::default(),
                closed: AtomicBool::new(false),
                stats: TransportStats::default(),
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

    /// Whether [`Transport::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The topic a notification of `priority` for `topic` goes to: `topic.priority`,
    /// and `.vhost` appended when the URL has a virtual host. Notifiers and listeners
    /// both use this, so a virtual host never separates them.
    pub fn notification_topic(&self, topic: &str, priority: Priority) -> String {
        match self.inner.url.virtual_host() {
            Some(vhost) => format!("{topic}.{}.{vhost}", priority.as_str()),
            None => format!("{topic}.{}", priority.as_str()),
        }
    }

    /// Hand a record to the driver: wait (up to the send timeout) while the local
    /// queue is full, retry transient failures as `retry` allows, and return a
    /// receipt for the broker's acknowledgement. A delivery failure is retried,
    /// then logged and counted even if nobody awaits the receipt.
    pub async fn send(&self, topic: &str, body: Bytes, retry: Retry) -> Result<DeliveryReceipt> {
        let pending = self.accept(topic, &body, retry).await?;
        self.inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
        match pending {
            PendingDelivery::Delivered => {
                self.inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(DeliveryReceipt::already_delivered())
            }
            PendingDelivery::Pending(future) => {
                let (reply, rx) = oneshot::channel();
                self.inner.tracker.push(
                    &self.inner,
                    Tracked {
                        future,
                        record: Sent {
                            topic: topic.to_owned(),
                            body,
                            retry,
                            send_timeout: self.send_timeout,
                            reply,
                        },
                    },
                );
                Ok(DeliveryReceipt::pending(rx))
            }
        }
    }

    /// Send many records: one result per record, in the same order. Each record
    /// goes through [`Transport::send`]'s path (provisional: a loop over it).
    pub async fn send_batch(
        &self,
        records: Vec<OutgoingRecord>,
        retry: Retry,
    ) -> Vec<Result<DeliveryReceipt>> {
        let mut results = Vec::with_capacity(records.len());
        for r in records {
            results.push(self.send(&r.topic, r.body, retry).await);
        }
        results
    }

    async fn accept(&self, topic: &str, body: &Bytes, retry: Retry) -> Result<PendingDelivery> {
        let started = Instant::now();
        let mut retries = 0;
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
        loop {
            if self.is_closed() {
                return Err(Error::closed("transport"));
            }
            match self.inner.driver.send(topic, body.clone()).await {
                Ok(p) => return Ok(p),
                Err(e) if e.kind() == &ErrorKind::ResourceExhausted => {
                    if started.elapsed() >= self.send_timeout {
                        return Err(Error::new(
                            ErrorKind::ResourceExhausted,
                            format!(
                                "the local queue for {topic} stayed full for {:?}",
                                self.send_timeout
                            ),
                        )
                        .with_source(e));
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) if e.is_retryable() && retry.allows(retries) => {
                    retries += 1;
                    self.inner.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic, error = %e, retries, "send failed, retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
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
