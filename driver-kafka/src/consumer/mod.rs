//! One Kafka consumer per listener: at-least-once, cancel-safe, rebalance-aware.
//!
//! **Threading.** Each subscription owns a dedicated thread that is the only user of
//! its librdkafka consumer: it polls continuously (so group membership, heartbeats
//! and rebalances never depend on how fast the listener handles records), stores
//! handled offsets, rewinds for requeues and finally closes the consumer. The async
//! side talks to it through a small shared state (a buffer of fetched records, the
//! [`OffsetTracker`], a stop flag). This file is the async side; `worker.rs` is
//! what runs on the thread.
//!
//! **Cancel safety.** [`Subscription::receive`] only waits for a notification and then
//! moves records out of the buffer in one synchronous step: dropping the future at
//! any point loses nothing.
//!
//! **Commits.** librdkafka's offset auto-store is off; the driver stores, per
//! partition, the first offset not yet acknowledged (everything before it was
//! handled), and librdkafka's auto-commit commits what was stored, every 250 ms (5 s
//! with `enable_auto_commit=true`), on revocation and on close.
//!
//! **Backpressure.** With `max_poll_records` fetched-but-undelivered records, the
//! thread stops fetching and waits for the listener, polling only to keep its group
//! membership; after 2 s of that it also pauses its partitions, until there is room.
//!
//! **Refused credentials.** When the broker refuses the consumer's credentials (a
//! failed SASL handshake), the thread closes the consumer at once (librdkafka would
//! reconnect and fail again forever) and `receive` fails with
//! [`ErrorKind::Authentication`], not retryable: the listener stops with it.
//!
//! **Requeue.** A requeued record is delivered again by rewinding its partition to it;
//! records after it that were already delivered are skipped (see [`crate::offsets`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::{
    DeliveryTag, Error, ErrorKind, ReceivedRecord, Result, StartPosition, Subscription,
};
use rdkafka::ClientConfig;
use tokio::sync::{oneshot, Notify};

use crate::logging::AuthWatch;
use crate::mock::MockKafka;
use crate::offsets::{OffsetTracker, TopicPartition};

mod worker;

/// What the consumer needs besides its librdkafka configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerSettings {
    pub(crate) group: String,
    pub(crate) topics: Vec<String>,
    pub(crate) start: StartPosition,
    pub(crate) max_buffered: usize,
    pub(crate) poll: Duration,
}

struct Buffered {
    tp: TopicPartition,
    record: ReceivedRecord,
}

#[derive(Default)]
struct State {
    /// Fetched, not handed to the listener yet.
    buffer: VecDeque<Buffered>,
    tracker: OffsetTracker,
    /// Positions to store (the thread stores them).
    to_store: BTreeMap<TopicPartition, i64>,
    /// The assignment changed since the thread last looked (to re-apply a pause).
    assignment_changed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes a waiting `receive`.
    arrived: Notify,
    /// Wakes the consumer thread when the listener took records from a full buffer.
    room: Condvar,
    /// Asks the thread to close the consumer.
    stop: AtomicBool,
    /// Set when the broker refused the consumer's credentials: the thread closes the
    /// consumer and `receive` reports it.
    auth: AuthWatch,
    group: String,
    start: StartPosition,
    /// Statistics (metrics, lag) and errors (health) of this consumer.
    stats: Arc<crate::stats::ClientStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.arrived.notify_one();
        self.room.notify_all();
    }
}

/// A listener's subscription: a consumer group member fed by a consumer thread.
pub(crate) struct KafkaSubscription {
    shared: Arc<Shared>,
    done: Mutex<Option<oneshot::Receiver<Result<()>>>>,
    topics: Vec<String>,
}

impl fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("group", &self.shared.group)
            .field("topics", &self.topics)
            .field("stopping", &self.shared.stopping())
            .finish()
    }
}

impl KafkaSubscription {
    /// Create the consumer, subscribe and start its thread. Joining the group happens
    /// in the background.
    pub(crate) fn start(
        config: ClientConfig,
        settings: ConsumerSettings,
        mock: Option<Arc<MockKafka>>,
        stats: Arc<crate::stats::ClientStats>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            stats,
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            room: Condvar::new(),
            stop: AtomicBool::new(false),
            auth: AuthWatch::default(),
            group: settings.group.clone(),
            start: settings.start,
        });
        let topics = settings.topics.clone();
        let done_rx = worker::spawn(config, settings, shared.clone(), mock)?;
        Ok(KafkaSubscription {
            shared,
            done: Mutex::new(Some(done_rx)),
            topics,
        })
    }

    fn ensure_open(&self) -> Result<()> {
        if self.shared.stopping() {
            Err(Error::closed("kafka subscription"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so that no arrival is missed.
            let arrived = self.shared.arrived.notified();
            if let Some(refusal) = self.shared.auth.refused() {
                return Err(refusal);
            }
            self.ensure_open()?;
            {
                let mut st = self.shared.lock();
                if !st.buffer.is_empty() || max == 0 {
                    let n = max.min(st.buffer.len());
                    let records = st.buffer.drain(..n).map(|b| b.record).collect();
                    drop(st);
                    self.shared.room.notify_one();
                    return Ok(records);
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.ensure_open()?;
        let mut st = self.shared.lock();
        for tag in tags {
            if let Some((tp, position)) = st.tracker.ack(*tag) {
                st.to_store.insert(tp, position);
            }
        }
        Ok(())
    }

    async fn requeue(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.ensure_open()?;
        let mut st = self.shared.lock();
        for tag in tags {
            if !st.tracker.requeue(*tag) {
                tracing::debug!(
                    ?tag,
                    "requeue of a record whose partition was revoked: its next owner delivers it"
                );
            }
        }
        Ok(())
    }

    async fn close(&self, timeout: Duration) -> Result<()> {
        let Some(done) = self.done.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        self.shared.request_stop();
        match tokio::time::timeout(timeout, done).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Internal,
                "the consumer thread ended without reporting",
            )),
            // The thread goes on leaving the group in the background.
            Err(_) => Err(Error::timeout(format!(
                "the consumer of group {} did not leave the group within {timeout:?}; \
                 records handled since the last commit may be delivered again",
                self.shared.group
            ))),
        }
    }

    /// The consumer lag summed over the partitions of librdkafka's last statistics.
    fn lag(&self) -> Option<u64> {
        self.shared.stats.lag()
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        // A safety net only: listeners close their subscription explicitly.
        if !self.shared.stopping() {
            tracing::warn!(group = %self.shared.group, "a Kafka subscription was dropped without close; closing it in the background");
            self.shared.request_stop();
        }
    }
}
