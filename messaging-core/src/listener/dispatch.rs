//! The listener as a [`Service`] of the shared loop: decode, dispatch to the
//! endpoints (one at a time or in batches), settle (ack or requeue), and leave the
//! pool after the drain.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;

use super::endpoint::{BatchEndpoint, HandlerOutcome, HandlerResult, NotificationEndpoint};
use crate::driver::{DeliveryTag, ReceivedRecord, Subscription};
use crate::envelope;
use crate::error::Result;
use crate::notification::Notification;
use crate::observability::instruments::{Counted, ListenerHistograms, Timer};
use crate::observability::metrics::{self, Label};
use crate::retry::Retry;
use crate::service::{InFlight, Service};
use crate::trace::{self, RunInSpan};
use crate::transport::Transport;

/// The endpoints of a listener: one at a time, or in batches.
#[derive(Debug, Clone)]
pub(crate) enum Dispatch {
    Single(Arc<[NotificationEndpoint]>),
    Batch {
        endpoints: Arc<[BatchEndpoint]>,
        size: usize,
        timeout: Duration,
    },
}

impl Dispatch {
    /// Whether every typed endpoint that accepts `n` can read its payload (a
    /// record that fails this is skipped like a foreign one).
    fn check_payload(&self, n: &Notification) -> Result<()> {
        match self {
            Dispatch::Single(endpoints) => endpoints.iter().try_for_each(|ep| ep.check_payload(n)),
            Dispatch::Batch { endpoints, .. } => {
                endpoints.iter().try_for_each(|ep| ep.check_payload(n))
            }
        }
    }
}

/// What a listener does with what it received, beyond the shared loop's settings.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSettings {
    pub(crate) allow_requeue: bool,
    pub(crate) dead_letter_topic: Option<String>,
    pub(crate) dead_letter_retry: Retry,
}

/// Counters of one listener (each also a metric), and its histograms.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    pub(crate) received: Counted,
    pub(crate) handled: Counted,
    pub(crate) requeued: Counted,
    pub(crate) handler_failures: Counted,
    pub(crate) skipped: Counted,
    pub(crate) filtered: Counted,
    pub(crate) dead_lettered: Counted,
    pub(crate) dead_letter_failures: Counted,
    pub(crate) histograms: ListenerHistograms,
}

impl ListenerStats {
    /// Counters recorded as metrics with `labels` (the listener's).
    pub(crate) fn new(labels: &[Label]) -> Self {
        let c = |name| Counted::new(metrics::counter(name, labels));
        let mut receive = labels.to_vec();
        receive.push(Label::new(metrics::ATTR_OPERATION, metrics::OP_RECEIVE));
        ListenerStats {
            received: Counted::new(metrics::counter(metrics::CONSUMED_MESSAGES, &receive)),
            handled: c(metrics::LISTENER_HANDLED),
            requeued: c(metrics::LISTENER_REQUEUED),
            handler_failures: c(metrics::LISTENER_HANDLER_FAILURES),
            skipped: c(metrics::LISTENER_SKIPPED),
            filtered: c(metrics::LISTENER_FILTERED),
            dead_lettered: c(metrics::LISTENER_DEAD_LETTERED),
            dead_letter_failures: c(metrics::LISTENER_DEAD_LETTER_FAILURES),
            histograms: ListenerHistograms::new(labels),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ack,
    Requeue,
}

/// What a dispatch decided: one record (no list to allocate), a batch, or a skipped
/// record's copy to the dead-letter topic (whether the broker confirmed it).
pub(crate) enum Settled {
    One(DeliveryTag, Verdict),
    Many(Vec<(DeliveryTag, Verdict)>),
    DeadLettered { tag: DeliveryTag, copied: bool },
}

/// One started listener: its subscription, and what it settled but did not flush yet.
pub(crate) struct ListenerService {
    subscription: Arc<dyn Subscription>,
    dispatch: Dispatch,
    settings: ListenerSettings,
    stats: Arc<ListenerStats>,
    transport: Transport,
    acks: Vec<DeliveryTag>,
    requeues: Vec<DeliveryTag>,
    batch: Vec<(DeliveryTag, Arc<Notification>)>,
    batch_deadline: Option<Instant>,
    /// When the records being dispatched were received (one clock reading per
    /// receive, for the end-to-end latency).
    received_at: chrono::DateTime<chrono::Utc>,
    /// The pool joined, for the spans (`messaging.consumer.group.name`).
    pool: Option<String>,
}

/// Run a handler future. An error or a panic is counted, logged, and taken as
/// [`HandlerOutcome::Requeue`].
async fn run_handler(
    fut: BoxFuture<'_, HandlerResult>,
    what: &str,
    stats: &ListenerStats,
) -> HandlerOutcome {
    let _timer = Timer::start(&stats.histograms.process);
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(HandlerOutcome::Handled)) => HandlerOutcome::Handled,
        Ok(Ok(HandlerOutcome::Requeue)) => {
            tracing::debug!(what, "handler asked to requeue");
            HandlerOutcome::Requeue
        }
        Ok(Err(e)) => {
            stats.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(what, error = %e, "notification handler failed");
            HandlerOutcome::Requeue
        }
        Err(panic) => {
            stats.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(what, panic = %crate::lifecycle::panic_message(panic.as_ref()), "notification handler panicked");
            HandlerOutcome::Requeue
        }
    }
}

/// The verdict on a notification some endpoint did not handle: requeue it where
/// the listener allows requeue, else acknowledge it (logged).
fn unhandled_verdict(allow_requeue: bool, what: &str) -> Verdict {
    if allow_requeue {
        Verdict::Requeue
    } else {
        tracing::warn!(
            what,
            "not handled, and this listener does not allow requeue: acknowledged"
        );
        Verdict::Ack
    }
}

async fn dispatch_one(
    endpoints: Arc<[NotificationEndpoint]>,
    n: Arc<Notification>,
    allow_requeue: bool,
    stats: Arc<ListenerStats>,
) -> Verdict {
    let mut taken = false;
    for ep in endpoints.iter() {
        if !ep.accepts(&n) {
            continue;
        }
        taken = true;
        let outcome = run_handler(ep.handler.handle(n.clone()), &n.event_type, &stats).await;
        if outcome == HandlerOutcome::Requeue {
            return unhandled_verdict(allow_requeue, &n.event_type);
        }
    }
    if !taken {
        stats.filtered.fetch_add(1, Ordering::Relaxed);
    }
    Verdict::Ack
}

async fn dispatch_batch(
    endpoints: Arc<[BatchEndpoint]>,
    items: Vec<(DeliveryTag, Arc<Notification>)>,
    allow_requeue: bool,
    stats: Arc<ListenerStats>,
) -> Vec<(DeliveryTag, Verdict)> {
    let mut refused_tags = HashSet::new();
    let mut taken = HashSet::new();
    for ep in endpoints.iter() {
        let subset: Vec<_> = items.iter().filter(|(_, n)| ep.accepts(n)).collect();
        if subset.is_empty() {
            continue;
        }
        let notifications = subset.iter().map(|(_, n)| n.clone()).collect();
        let outcome = run_handler(ep.handler.handle_batch(notifications), "batch", &stats).await;
        for (tag, _) in &subset {
            taken.insert(*tag);
            if outcome == HandlerOutcome::Requeue {
                refused_tags.insert(*tag);
            }
        }
    }
    stats
        .filtered
        .fetch_add((items.len() - taken.len()) as u64, Ordering::Relaxed);
    items
        .iter()
        .map(|(tag, n)| {
            let v = if refused_tags.contains(tag) {
                unhandled_verdict(allow_requeue, &n.event_type)
            } else {
                Verdict::Ack
            };
            (*tag, v)
        })
        .collect()
}

/// Copy a skipped record to the dead-letter topic `dlq` with the `retry` budget,
/// and say whether the broker confirmed the copy.
async fn copy_to_dead_letter(
    transport: Transport,
    dlq: String,
    record: ReceivedRecord,
    retry: Retry,
) -> Settled {
    let sent = match transport.send(&dlq, record.body.clone(), retry).await {
        Ok(receipt) => receipt.delivered().await,
        Err(e) => Err(e),
    };
    if let Err(e) = &sent {
        tracing::error!(topic = %record.topic, dead_letter_topic = %dlq, error = %e, "could not copy a skipped record to the dead-letter topic; it stays unacknowledged and will be delivered again");
    }
    Settled::DeadLettered {
        tag: record.tag,
        copied: sent.is_ok(),
    }
}

impl ListenerService {
    pub(crate) fn new(
        subscription: Arc<dyn Subscription>,
        dispatch: Dispatch,
        settings: ListenerSettings,
        stats: Arc<ListenerStats>,
        transport: Transport,
        pool: Option<String>,
    ) -> Self {
        ListenerService {
            subscription,
            dispatch,
            settings,
            stats,
            transport,
            acks: Vec::new(),
            requeues: Vec::new(),
            batch: Vec::new(),
            batch_deadline: None,
            received_at: chrono::Utc::now(),
            pool,
        }
    }

    /// Skip a record that is not an oslo notification (or that a typed endpoint
    /// cannot read): count and log it, and acknowledge it at once, or, with a
    /// dead-letter topic, only once its copy there is confirmed (the copy is work in
    /// flight, so the listener goes on dispatching meanwhile).
    fn skip_foreign(
        &mut self,
        record: ReceivedRecord,
        error: &crate::Error,
        work: &mut InFlight<Settled>,
    ) {
        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        let preview =
            String::from_utf8_lossy(&record.body[..record.body.len().min(120)]).into_owned();
        tracing::warn!(topic = %record.topic, error = %error, preview, "skipping a record that is not an oslo notification");
        let Some(dlq) = self.settings.dead_letter_topic.clone() else {
            self.acks.push(record.tag);
            return;
        };
        let copy = copy_to_dead_letter(
            self.transport.clone(),
            dlq,
            record,
            self.settings.dead_letter_retry,
        );
        if let Some(settled) = work.start(Box::pin(copy)) {
            self.settle(settled);
        }
    }

    /// The driver's name (`messaging.system`).
    fn system(&self) -> &str {
        self.transport.driver().name()
    }

    fn settle_one(&mut self, tag: DeliveryTag, verdict: Verdict) {
        match verdict {
            Verdict::Ack => {
                self.stats.handled.fetch_add(1, Ordering::Relaxed);
                self.acks.push(tag);
            }
            Verdict::Requeue => {
                self.stats.requeued.fetch_add(1, Ordering::Relaxed);
                self.requeues.push(tag);
            }
        }
    }
}

impl Service for ListenerService {
    type Item = ReceivedRecord;
    type Done = Settled;
    const ABANDONED: &'static str =
        "their notifications stay unacknowledged and will be delivered again";

    fn name(&self) -> &str {
        "listener"
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>> {
        self.subscription.receive(max, wait).await
    }

    fn wanted(&self, free: usize) -> usize {
        match &self.dispatch {
            Dispatch::Single(_) => free,
            Dispatch::Batch { size, .. } if free > 0 => size.saturating_sub(self.batch.len()),
            Dispatch::Batch { .. } => 0,
        }
    }

    fn due(&self) -> Option<Instant> {
        self.batch_deadline
    }

    fn release(&mut self, work: &mut InFlight<Settled>) {
        self.batch_deadline = None;
        if self.batch.is_empty() {
            return;
        }
        if let Dispatch::Batch { endpoints, .. } = &self.dispatch {
            let items = std::mem::take(&mut self.batch);
            let span = trace::process_batch(
                self.system(),
                self.pool.as_deref(),
                items.iter().map(|(_, n)| &**n),
            );
            let job = dispatch_batch(
                endpoints.clone(),
                items,
                self.settings.allow_requeue,
                self.stats.clone(),
            )
            .in_span(span);
            if let Some(settled) = work.start(Box::pin(job.map(Settled::Many))) {
                self.settle(settled);
            }
        }
    }

    fn received(&mut self, count: usize) {
        self.stats
            .received
            .fetch_add(count as u64, Ordering::Relaxed);
        self.received_at = chrono::Utc::now();
    }

    async fn dispatch(&mut self, record: ReceivedRecord, work: &mut InFlight<Settled>) {
        let decoded = envelope::decode(&record.body).and_then(|n| {
            self.dispatch.check_payload(&n)?;
            Ok(n)
        });
        let notification = match decoded {
            Ok(n) => {
                let histograms = &self.stats.histograms;
                histograms.observe_latency(&n.metadata.timestamp, self.received_at);
                Arc::new(n)
            }
            Err(e) => {
                self.skip_foreign(record, &e, work);
                return;
            }
        };
        match &self.dispatch {
            Dispatch::Single(endpoints) => {
                let process = trace::process(
                    self.system(),
                    &record.topic,
                    self.pool.as_deref(),
                    &notification,
                );
                let job = dispatch_one(
                    endpoints.clone(),
                    notification,
                    self.settings.allow_requeue,
                    self.stats.clone(),
                )
                .in_span(process);
                let tag = record.tag;
                if let Some(settled) = work.start(Box::pin(job.map(move |v| Settled::One(tag, v))))
                {
                    self.settle(settled);
                }
            }
            Dispatch::Batch { size, timeout, .. } => {
                if self.batch.is_empty() {
                    self.batch_deadline = Some(Instant::now() + *timeout);
                }
                let full = self.batch.len() + 1 >= *size;
                self.batch.push((record.tag, notification));
                if full {
                    self.release(work);
                }
            }
        }
    }

    fn settle(&mut self, settled: Settled) {
        match settled {
            Settled::One(tag, verdict) => self.settle_one(tag, verdict),
            Settled::DeadLettered { tag, copied: true } => {
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                self.acks.push(tag);
            }
            // Left unacknowledged: the transport delivers it again later.
            Settled::DeadLettered { copied: false, .. } => {
                self.stats
                    .dead_letter_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            Settled::Many(items) => {
                for (tag, verdict) in items {
                    self.settle_one(tag, verdict);
                }
            }
        }
    }

    async fn flush(&mut self) {
        if !self.requeues.is_empty() {
            if let Err(e) = self.subscription.requeue(&self.requeues).await {
                tracing::error!(error = %e, count = self.requeues.len(), "requeue failed; the records stay unacknowledged and come back after a restart");
            }
            self.requeues.clear();
        }
        if !self.acks.is_empty() {
            if let Err(e) = self.subscription.ack(&self.acks).await {
                tracing::warn!(error = %e, count = self.acks.len(), "acknowledgement failed; these records may be delivered again");
            }
            self.acks.clear();
        }
    }

    /// A batch being filled is handed over; the subscription stays open for the
    /// acknowledgements of the drain.
    async fn stop_receiving(&mut self, work: &mut InFlight<Settled>, _timeout: Duration) {
        self.release(work);
    }

    async fn finish(self, timeout: Duration) -> Result<()> {
        self.subscription.close(timeout).await
    }
}
