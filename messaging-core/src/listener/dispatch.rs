//! The listener's loop: fetch, decode, dispatch with bounded concurrency, settle
//! (ack or requeue), and drain on stop.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::endpoint::{BatchEndpoint, HandlerOutcome, HandlerResult, NotificationEndpoint};
use crate::driver::{DeliveryTag, ReceivedRecord, Subscription};
use crate::envelope;
use crate::error::{ErrorKind, Result};
use crate::notification::Notification;
use crate::retry::{Backoff, Retry};
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

#[derive(Debug, Clone)]
pub(crate) struct LoopSettings {
    pub(crate) allow_requeue: bool,
    pub(crate) max_concurrency: usize,
    pub(crate) poll_wait: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) dead_letter_topic: Option<String>,
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    pub(crate) received: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) requeued: AtomicU64,
    pub(crate) handler_failures: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ack,
    Requeue,
}

/// What a dispatch decided: one record (no list to allocate) or a batch.
enum Settled {
    One(DeliveryTag, Verdict),
    Many(Vec<(DeliveryTag, Verdict)>),
}

pub(crate) struct ListenerLoop {
    pub(crate) subscription: Box<dyn Subscription>,
    pub(crate) dispatch: Dispatch,
    pub(crate) settings: LoopSettings,
    pub(crate) stats: Arc<ListenerStats>,
    pub(crate) transport: Transport,
}

/// Run a handler future, turning a panic into an error. Returns whether it was handled.
async fn run_handler(fut: BoxFuture<'_, HandlerResult>, what: &str, stats: &ListenerStats) -> bool {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(HandlerOutcome::Handled)) => true,
        Ok(Ok(HandlerOutcome::Requeue)) => {
            tracing::debug!(what, "handler asked to requeue");
            false
        }
        Ok(Err(e)) => {
            stats.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(what, error = %e, "notification handler failed");
            false
        }
        Err(panic) => {
            stats.handler_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(what, panic = %crate::lifecycle::panic_message(panic.as_ref()), "notification handler panicked");
            false
        }
    }
}

fn refused(allow_requeue: bool, what: &str) -> Verdict {
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
        if !run_handler(ep.handler.handle(n.clone()), &n.event_type, &stats).await {
            return refused(allow_requeue, &n.event_type);
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
        let handled = run_handler(ep.handler.handle_batch(notifications), "batch", &stats).await;
        for (tag, _) in &subset {
            taken.insert(*tag);
            if !handled {
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
                refused(allow_requeue, &n.event_type)
            } else {
                Verdict::Ack
            };
            (*tag, v)
        })
        .collect()
}

impl ListenerLoop {
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut inflight: FuturesUnordered<BoxFuture<'static, Settled>> = FuturesUnordered::new();
        let mut acks: Vec<DeliveryTag> = Vec::new();
        let mut requeues: Vec<DeliveryTag> = Vec::new();
        let mut batch: Vec<(DeliveryTag, Arc<Notification>)> = Vec::new();
        let mut batch_deadline: Option<Instant> = None;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let max = self.settings.max_concurrency.max(1);
        loop {
            if *stop.borrow() {
                break;
            }
            let free = max.saturating_sub(inflight.len());
            let want = match &self.dispatch {
                Dispatch::Single(_) => free,
                Dispatch::Batch { size, .. } if free > 0 => size.saturating_sub(batch.len()),
                Dispatch::Batch { .. } => 0,
            };
            let deadline =
                batch_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() { break; }
                }
                Some(settled) = inflight.next(), if !inflight.is_empty() => {
                    self.settle(settled, &mut acks, &mut requeues);
                    while let Some(Some(more)) = inflight.next().now_or_never() {
                        self.settle(more, &mut acks, &mut requeues);
                    }
                }
                _ = tokio::time::sleep_until(deadline), if batch_deadline.is_some() && free > 0 => {
                    batch_deadline = None;
                    self.flush_batch(&mut batch, &mut inflight);
                }
                received = self.subscription.receive(want, self.settings.poll_wait), if want > 0 => match received {
                    Ok(records) => {
                        backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
                        for record in records {
                            self.accept(record, &mut acks, &mut requeues, &mut batch, &mut batch_deadline, &mut inflight).await;
                        }
                    }
                    Err(e) if e.kind() == &ErrorKind::Closed => {
                        tracing::info!("subscription closed under the listener");
                        break;
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, ?delay, "receive failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                },
            }
            self.flush_settled(&mut acks, &mut requeues).await;
        }
        self.drain(batch, inflight, acks, requeues).await
    }

    async fn accept(
        &self,
        record: ReceivedRecord,
        acks: &mut Vec<DeliveryTag>,
        requeues: &mut Vec<DeliveryTag>,
        batch: &mut Vec<(DeliveryTag, Arc<Notification>)>,
        batch_deadline: &mut Option<Instant>,
        inflight: &mut FuturesUnordered<BoxFuture<'static, Settled>>,
    ) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let decoded = envelope::decode(&record.body).and_then(|n| {
            self.dispatch.check_payload(&n)?;
            Ok(n)
        });
        let notification = match decoded {
            Ok(n) => Arc::new(n),
            Err(e) => {
                self.skip_foreign(&record, &e).await;
                acks.push(record.tag);
                return;
            }
        };
        match &self.dispatch {
            Dispatch::Single(endpoints) => {
                let fut = dispatch_one(
                    endpoints.clone(),
                    notification,
                    self.settings.allow_requeue,
                    self.stats.clone(),
                );
                let tag = record.tag;
                let mut fut: BoxFuture<'static, Settled> =
                    Box::pin(fut.map(move |v| Settled::One(tag, v)));
                // Most handlers finish without waiting: settle those at once, and
                // only keep the others (which are polled again from `inflight`).
                match futures::poll!(fut.as_mut()) {
                    std::task::Poll::Ready(settled) => self.settle(settled, acks, requeues),
                    std::task::Poll::Pending => inflight.push(fut),
                }
            }
            Dispatch::Batch { size, timeout, .. } => {
                if batch.is_empty() {
                    *batch_deadline = Some(Instant::now() + *timeout);
                }
                batch.push((record.tag, notification));
                if batch.len() >= *size {
                    *batch_deadline = None;
                    self.flush_batch(batch, inflight);
                }
            }
        }
    }

    async fn skip_foreign(&self, record: &ReceivedRecord, error: &crate::Error) {
        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        let preview =
            String::from_utf8_lossy(&record.body[..record.body.len().min(120)]).into_owned();
        tracing::warn!(topic = %record.topic, error = %error, preview, "skipping a record that is not an oslo notification");
        if let Some(dlq) = &self.settings.dead_letter_topic {
            let sent = match self
                .transport
                .send(dlq, record.body.clone(), Retry::Limited(3))
                .await
            {
                Ok(receipt) => receipt.delivered().await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(topic = %dlq, error = %e, "could not copy a skipped record to the dead-letter topic")
                }
            }
        }
    }

    fn flush_batch(
        &self,
        batch: &mut Vec<(DeliveryTag, Arc<Notification>)>,
        inflight: &mut FuturesUnordered<BoxFuture<'static, Settled>>,
    ) {
        if batch.is_empty() {
            return;
        }
        if let Dispatch::Batch { endpoints, .. } = &self.dispatch {
            let items = std::mem::take(batch);
            inflight.push(Box::pin(
                dispatch_batch(
                    endpoints.clone(),
                    items,
                    self.settings.allow_requeue,
                    self.stats.clone(),
                )
                .map(Settled::Many),
            ));
        }
    }

    fn settle(
        &self,
        settled: Settled,
        acks: &mut Vec<DeliveryTag>,
        requeues: &mut Vec<DeliveryTag>,
    ) {
        match settled {
            Settled::One(tag, verdict) => self.settle_one(tag, verdict, acks, requeues),
            Settled::Many(items) => {
                for (tag, verdict) in items {
                    self.settle_one(tag, verdict, acks, requeues);
                }
            }
        }
    }

    fn settle_one(
        &self,
        tag: DeliveryTag,
        verdict: Verdict,
        acks: &mut Vec<DeliveryTag>,
        requeues: &mut Vec<DeliveryTag>,
    ) {
        match verdict {
            Verdict::Ack => {
                self.stats.handled.fetch_add(1, Ordering::Relaxed);
                acks.push(tag);
            }
            Verdict::Requeue => {
                self.stats.requeued.fetch_add(1, Ordering::Relaxed);
                requeues.push(tag);
            }
        }
    }

    async fn flush_settled(&self, acks: &mut Vec<DeliveryTag>, requeues: &mut Vec<DeliveryTag>) {
        if !requeues.is_empty() {
            if let Err(e) = self.subscription.requeue(requeues).await {
                tracing::error!(error = %e, count = requeues.len(), "requeue failed; the records stay unacknowledged and come back after a restart");
            }
            requeues.clear();
        }
        if !acks.is_empty() {
            if let Err(e) = self.subscription.ack(acks).await {
                tracing::warn!(error = %e, count = acks.len(), "acknowledgement failed; these records may be delivered again");
            }
            acks.clear();
        }
    }

    async fn drain(
        self,
        mut batch: Vec<(DeliveryTag, Arc<Notification>)>,
        mut inflight: FuturesUnordered<BoxFuture<'static, Settled>>,
        mut acks: Vec<DeliveryTag>,
        mut requeues: Vec<DeliveryTag>,
    ) -> Result<()> {
        self.flush_batch(&mut batch, &mut inflight);
        let deadline = Instant::now() + self.settings.stop_timeout;
        while !inflight.is_empty() {
            match tokio::time::timeout_at(deadline, inflight.next()).await {
                Ok(Some(settled)) => self.settle(settled, &mut acks, &mut requeues),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        in_flight = inflight.len(),
                        "stop deadline passed with handlers still running; their notifications stay unacknowledged and will be delivered again"
                    );
                    break;
                }
            }
        }
        drop(inflight);
        self.flush_settled(&mut acks, &mut requeues).await;
        self.subscription.close(self.settings.stop_timeout).await
    }
}
