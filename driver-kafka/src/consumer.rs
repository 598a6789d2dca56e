//! One Kafka consumer per listener: at-least-once, cancel-safe, rebalance-aware.
//!
//! **Threading.** Each subscription owns a dedicated thread that is the only user of
//! its librdkafka consumer: it polls continuously (so group membership, heartbeats
//! and rebalances never depend on how fast the listener handles records), stores
//! handled offsets, rewinds for requeues and finally closes the consumer. The async
//! side talks to it through a small shared state (a buffer of fetched records, the
//! [`OffsetTracker`], a stop flag).
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
//! **Requeue.** A requeued record is delivered again by rewinding its partition to it;
//! records after it that were already delivered are skipped (see [`crate::offsets`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::{
    DeliveryTag, Error, ErrorKind, ReceivedRecord, Result, StartPosition, Subscription,
};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{oneshot, Notify};

use crate::errors;
use crate::logging::{self, RepeatFilter};
use crate::mock::MockKafka;
use crate::offsets::{Fetched, OffsetTracker, TopicPartition};

/// How long the consumer thread blocks in one poll at most.
const MAX_POLL_SLICE: Duration = Duration::from_millis(100);
/// Deadline for broker queries made during a rebalance (committed offsets, times).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// A consumer whose buffer stayed full this long pauses its partitions.
const STALLED_AFTER: Duration = Duration::from_secs(2);

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
    group: String,
    start: StartPosition,
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

/// The librdkafka context of a consumer: logs, rebalances, commit results.
struct ConsumerCtx {
    shared: Arc<Shared>,
    /// Keeps an embedded mock cluster alive as long as this consumer.
    _mock: Option<Arc<MockKafka>>,
    repeats: RepeatFilter,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        logging::log("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        logging::client_error("consumer", &error, reason, &self.repeats);
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ConsumerCtx {
    /// For a timestamp start: partitions the group never committed start at the first
    /// record at or after the timestamp (the end when there is none).
    fn position_at_timestamp(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        timestamp: i64,
    ) {
        let committed = match consumer.committed_offsets(tpl.clone(), QUERY_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "could not read committed offsets; starting from auto.offset.reset");
                return;
            }
        };
        let mut lookup = TopicPartitionList::new();
        for e in committed.elements() {
            if e.offset() == Offset::Invalid {
                let _ = lookup.add_partition_offset(
                    e.topic(),
                    e.partition(),
                    Offset::Offset(timestamp),
                );
            }
        }
        if lookup.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(lookup, QUERY_TIMEOUT) {
            Ok(found) => {
                for e in found.elements() {
                    let offset = match e.offset() {
                        Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                        _ => Offset::End,
                    };
                    tracing::debug!(
                        topic = e.topic(),
                        partition = e.partition(),
                        ?offset,
                        timestamp,
                        "starting at a timestamp"
                    );
                    let _ = tpl.set_partition_offset(e.topic(), e.partition(), offset);
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "could not look up offsets for the start timestamp; starting from the earliest record")
            }
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let group = &self.shared.group;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let StartPosition::Timestamp(ts) = self.shared.start {
                    self.position_at_timestamp(consumer, tpl, ts);
                }
                let assigned = partitions(tpl);
                {
                    let mut st = self.shared.lock();
                    for tp in &assigned {
                        st.tracker.assign(tp);
                    }
                    st.assignment_changed = true;
                }
                tracing::info!(group, partitions = ?assigned, "partitions assigned");
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    tracing::error!(group, error = %e, "could not take the assigned partitions");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = partitions(tpl);
                self.forget(&revoked);
                tracing::info!(group, partitions = ?revoked, lost = consumer.assignment_lost(), "partitions revoked");
                // librdkafka commits the stored offsets of revoked partitions (auto-commit).
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(group, error = %e, "could not release the revoked partitions");
                }
            }
            other => {
                tracing::error!(group, error = ?other, "rebalance failed; releasing every partition");
                let all = partitions(tpl);
                self.forget(&all);
                let _ = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                tracing::trace!(group = %self.shared.group, count = offsets.count(), "offsets committed")
            }
            // Nothing new was stored since the last commit.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(
                group = %self.shared.group,
                error = %e,
                "committing offsets failed; the next commit retries (records may be delivered again)"
            ),
        }
    }
}

impl ConsumerCtx {
    /// Revoked partitions: forget their bookkeeping and drop their undelivered records
    /// (the next owner fetches them again).
    fn forget(&self, revoked: &[TopicPartition]) {
        let set: HashSet<&TopicPartition> = revoked.iter().collect();
        let mut st = self.shared.lock();
        for tp in revoked {
            st.tracker.revoke(tp);
            st.to_store.remove(tp);
        }
        st.buffer.retain(|b| !set.contains(&b.tp));
        st.assignment_changed = true;
    }
}

/// The consumer thread.
struct Worker {
    consumer: BaseConsumer<ConsumerCtx>,
    shared: Arc<Shared>,
    settings: ConsumerSettings,
    paused: bool,
    full_since: Option<Instant>,
    errors: RepeatFilter,
}

impl Worker {
    fn run(mut self) -> Result<()> {
        let poll = self.settings.poll.min(MAX_POLL_SLICE);
        while !self.shared.stopping() {
            self.store_offsets();
            self.seek_requeued();
            // Full: a keep-alive poll only (rebalances, max.poll.interval.ms).
            let full = self.wait_for_room(poll);
            match self.consumer.poll(if full { Duration::ZERO } else { poll }) {
                None => {}
                Some(Ok(message)) => {
                    let tp = TopicPartition::new(message.topic(), message.partition());
                    let mut st = self.shared.lock();
                    if !st.tracker.is_assigned(&tp) {
                        continue;
                    }
                    if let Fetched::Deliver(tag) = st.tracker.fetched(&tp, message.offset()) {
                        // A null value is delivered as an empty body (the core skips it).
                        let body = message
                            .payload()
                            .map(Bytes::copy_from_slice)
                            .unwrap_or_default();
                        st.buffer.push_back(Buffered {
                            record: ReceivedRecord {
                                tag,
                                topic: tp.topic.to_string(),
                                body,
                            },
                            tp,
                        });
                        drop(st);
                        self.shared.arrived.notify_one();
                    }
                }
                Some(Err(e)) => {
                    if let Some(occurrences) = self.errors.admit(&e.to_string(), Instant::now()) {
                        tracing::warn!(group = %self.settings.group, error = %e, occurrences, "consumer error; still consuming");
                    }
                }
            }
        }
        self.close()
    }

    fn store_offsets(&self) {
        let to_store = std::mem::take(&mut self.shared.lock().to_store);
        if to_store.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in &to_store {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset));
        }
        // Fails only for partitions no longer assigned: their next owner re-delivers.
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!(group = %self.settings.group, error = %e, "could not store offsets");
        }
    }

    fn seek_requeued(&self) {
        let seeks = self.shared.lock().tracker.take_seeks();
        for (tp, offset) in seeks {
            let result = self.consumer.seek(
                &tp.topic,
                tp.partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            );
            let mut st = self.shared.lock();
            match result {
                Ok(()) => {
                    // Undelivered records after the rewind point are fetched again.
                    st.tracker.seeked(&tp, offset);
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, offset, "rewound to a requeued record");
                }
                Err(e) if st.tracker.is_assigned(&tp) => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, offset, error = %e, "rewind failed; trying again");
                    st.tracker.seek_failed(&tp, offset);
                }
                Err(_) => {}
            }
        }
    }

    /// Flow control: while `max_poll_records` fetched records wait for the listener,
    /// wait (up to one poll slice) for it to take some instead of fetching more. Returns
    /// whether the buffer is still full. A consumer full for a long time pauses its
    /// partitions, so that it stops taking even the one record per slice that its
    /// keep-alive poll may return; pausing is avoided otherwise, as resuming costs a
    /// fetch round trip.
    fn wait_for_room(&mut self, slice: Duration) -> bool {
        let high = self.settings.max_buffered;
        let (full, changed) = {
            let st = self.shared.lock();
            let (mut st, _) = self
                .shared
                .room
                .wait_timeout_while(st, slice, |s| {
                    s.buffer.len() >= high && !self.shared.stopping()
                })
                .unwrap_or_else(|e| e.into_inner());
            (
                st.buffer.len() >= high,
                std::mem::take(&mut st.assignment_changed),
            )
        };
        let now = Instant::now();
        let pause = if full {
            let since = *self.full_since.get_or_insert(now);
            let stalled = now.duration_since(since) >= STALLED_AFTER;
            if !stalled || (self.paused && !changed) {
                return full;
            }
            true
        } else {
            self.full_since = None;
            if !self.paused {
                return full;
            }
            false
        };
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(_) => return full,
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        match result {
            Ok(()) => {
                tracing::debug!(group = %self.settings.group, pause, "fetch flow control");
                self.paused = pause;
            }
            Err(e) => {
                tracing::debug!(group = %self.settings.group, error = %e, "could not pause/resume")
            }
        }
        full
    }

    /// Store the last acknowledgements and leave the group: librdkafka revokes the
    /// partitions (committing the stored offsets) and leaves when the consumer is
    /// dropped, which happens here, on this thread. The async side bounds the wait.
    fn close(self) -> Result<()> {
        self.store_offsets();
        let group = self.settings.group.clone();
        {
            let mut st = self.shared.lock();
            let unacked = st.tracker.outstanding();
            if unacked > 0 {
                tracing::info!(
                    group,
                    unacked,
                    "closing with unacknowledged records; the group delivers them again"
                );
            }
            st.buffer.clear();
        }
        // rust-rdkafka's drop closes the consumer (close_queue, then polls until
        // closed, serving the final rebalance); calling close_queue here as well would
        // make that drop fail noisily.
        drop(self.consumer);
        self.shared.lock().tracker.clear();
        tracing::info!(group, "consumer left the group");
        Ok(())
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
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            room: Condvar::new(),
            stop: AtomicBool::new(false),
            group: settings.group.clone(),
            start: settings.start,
        });
        let consumer: BaseConsumer<ConsumerCtx> = config
            .create_with_context(ConsumerCtx {
                shared: shared.clone(),
                _mock: mock,
                repeats: RepeatFilter::default(),
            })
            .map_err(|e| errors::transport("could not create the Kafka consumer", e))?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            errors::transport(format!("could not subscribe to {:?}", settings.topics), e)
        })?;
        tracing::info!(group = %settings.group, topics = ?settings.topics, "subscribed");
        let (done_tx, done_rx) = oneshot::channel();
        let topics = settings.topics.clone();
        let worker = Worker {
            consumer,
            shared: shared.clone(),
            settings,
            paused: false,
            full_since: None,
            errors: RepeatFilter::default(),
        };
        thread::Builder::new()
            .name(format!("kafka-consumer-{}", shared.group))
            .spawn(move || {
                let outcome = worker.run();
                let _ = done_tx.send(outcome);
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("could not start the consumer thread: {e}"),
                )
            })?;
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
