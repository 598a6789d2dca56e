//! The consumer thread: the only user of its librdkafka consumer. It polls, fills
//! the shared buffer, stores handled offsets, rewinds for requeues, answers
//! rebalances (through [`ConsumerCtx`]) and finally closes the consumer. Everything
//! the async side of [`super::KafkaSubscription`] does goes through [`Shared`].

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use messaging_core::{Error, ErrorKind, ReceivedRecord, Result, StartPosition};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::{Buffered, ConsumerSettings, Shared};
use crate::errors;
use crate::logging::{self, RepeatFilter};
use crate::mock::MockKafka;
use crate::offsets::{Fetched, TopicPartition};

/// How long the consumer thread blocks in one poll at most.
const MAX_POLL_SLICE: Duration = Duration::from_millis(100);
/// Deadline for broker queries made during a rebalance (committed offsets, times).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most records taken from librdkafka between two looks at the shared state.
const FETCH_BATCH: usize = 256;
/// A consumer whose buffer stayed full this long pauses its partitions.
const STALLED_AFTER: Duration = Duration::from_secs(2);

/// Create the consumer, subscribe it to `settings.topics` and start its thread.
/// The receiver resolves with the thread's outcome once it closed the consumer.
pub(super) fn spawn(
    config: ClientConfig,
    settings: ConsumerSettings,
    shared: Arc<Shared>,
    mock: Option<Arc<MockKafka>>,
) -> Result<oneshot::Receiver<Result<()>>> {
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
    Ok(done_rx)
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
        logging::log_unless_refused("consumer", &self.shared.auth, level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.shared.stats.on_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.shared.stats.on_error(&error, reason);
        logging::client_error("consumer", &error, reason, &self.repeats, &self.shared.auth);
        if logging::is_authentication(&error) {
            // Wake a waiting receive: it reports the refusal.
            self.shared.arrived.notify_one();
        }
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
                let lost = consumer.assignment_lost();
                if !lost {
                    self.commit_acknowledged(consumer, &revoked);
                }
                self.forget(&revoked);
                tracing::info!(group, partitions = ?revoked, lost, "partitions revoked");
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
    /// Partitions being revoked (not lost): commit what was acknowledged of them,
    /// including acknowledgements the thread has not stored yet, before they go, so
    /// that their next owner starts after every record this member handled.
    fn commit_acknowledged(&self, consumer: &BaseConsumer<Self>, revoked: &[TopicPartition]) {
        let pending: Vec<(TopicPartition, i64)> = {
            let mut st = self.shared.lock();
            revoked
                .iter()
                .filter_map(|tp| Some((tp.clone(), st.to_store.remove(tp)?)))
                .collect()
        };
        if !pending.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (tp, offset) in &pending {
                let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset));
            }
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::debug!(group = %self.shared.group, error = %e, "could not store offsets on revocation");
            }
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(
                group = %self.shared.group,
                error = %e,
                "committing on revocation failed; records handled since the last commit may be delivered again"
            ),
        }
    }

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
        let mut fetched: Vec<(TopicPartition, i64, Bytes)> = Vec::with_capacity(FETCH_BATCH);
        let mut last: Option<TopicPartition> = None;
        while !self.shared.stopping() {
            if self.shared.auth.refused().is_some() {
                tracing::error!(group = %self.settings.group, "the broker refused the consumer's credentials; closing it");
                break;
            }
            self.store_offsets();
            self.seek_requeued();
            // Full: a keep-alive poll only (rebalances, max.poll.interval.ms).
            let room = self.wait_for_room(poll);
            self.fetch(room, poll, &mut last, &mut fetched);
            if !fetched.is_empty() {
                self.buffer(&mut fetched);
            }
        }
        self.close()
    }

    /// Take what librdkafka has: the first poll waits up to `poll` (not at all
    /// without `room`), the next ones take only what is already fetched, up to `room`
    /// and [`FETCH_BATCH`] records, so that the shared state is locked and the listener
    /// woken once per batch, not per record. `last` keeps the partition of the last
    /// record, whose shared name the next records of that partition reuse.
    fn fetch(
        &mut self,
        room: usize,
        poll: Duration,
        last: &mut Option<TopicPartition>,
        fetched: &mut Vec<(TopicPartition, i64, Bytes)>,
    ) {
        let want = room.clamp(1, FETCH_BATCH);
        let mut wait = if room == 0 { Duration::ZERO } else { poll };
        while fetched.len() < want {
            match self.consumer.poll(wait) {
                None => return,
                Some(Ok(message)) => {
                    let tp = match last {
                        Some(tp)
                            if tp.partition == message.partition()
                                && *tp.topic == *message.topic() =>
                        {
                            tp.clone()
                        }
                        _ => last
                            .insert(TopicPartition::new(message.topic(), message.partition()))
                            .clone(),
                    };
                    // A null value is delivered as an empty body (the core skips it).
                    let body = message
                        .payload()
                        .map(Bytes::copy_from_slice)
                        .unwrap_or_default();
                    fetched.push((tp, message.offset(), body));
                }
                Some(Err(e)) => {
                    if let Some(occurrences) = self.errors.admit(&e.to_string(), Instant::now()) {
                        tracing::warn!(group = %self.settings.group, error = %e, occurrences, "consumer error; still consuming");
                    }
                    return;
                }
            }
            wait = Duration::ZERO;
        }
    }

    /// Hand `fetched` to the listener (what the tracker says to deliver), under one
    /// lock, with one wake-up.
    fn buffer(&self, fetched: &mut Vec<(TopicPartition, i64, Bytes)>) {
        let mut delivered = false;
        {
            let mut st = self.shared.lock();
            for (tp, offset, body) in fetched.drain(..) {
                if !st.tracker.is_assigned(&tp) {
                    continue;
                }
                if let Fetched::Deliver(tag) = st.tracker.fetched(&tp, offset) {
                    st.buffer.push_back(Buffered {
                        record: ReceivedRecord {
                            tag,
                            topic: tp.topic.clone(),
                            body,
                        },
                        tp,
                    });
                    delivered = true;
                }
            }
        }
        if delivered {
            self.shared.arrived.notify_one();
        }
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
    /// how many more records the buffer has room for (0: still full). A consumer full for a long time pauses its
    /// partitions, so that it stops taking even the one record per slice that its
    /// keep-alive poll may return; pausing is avoided otherwise, as resuming costs a
    /// fetch round trip.
    fn wait_for_room(&mut self, slice: Duration) -> usize {
        let high = self.settings.max_buffered;
        let (room, changed) = {
            let st = self.shared.lock();
            let (mut st, _) = self
                .shared
                .room
                .wait_timeout_while(st, slice, |s| {
                    s.buffer.len() >= high && !self.shared.stopping()
                })
                .unwrap_or_else(|e| e.into_inner());
            (
                high.saturating_sub(st.buffer.len()),
                std::mem::take(&mut st.assignment_changed),
            )
        };
        let full = room == 0;
        let now = Instant::now();
        let pause = if full {
            let since = *self.full_since.get_or_insert(now);
            let stalled = now.duration_since(since) >= STALLED_AFTER;
            if !stalled || (self.paused && !changed) {
                return room;
            }
            true
        } else {
            self.full_since = None;
            if !self.paused {
                return room;
            }
            false
        };
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(_) => return room,
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
        room
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
