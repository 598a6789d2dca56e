//! Delivery tracking: one task per transport awaits every pending delivery, counts
//! successes, and hands failures to [`Transport::track`] (resend as `retry` allows,
//! then log and count).
//!
//! **Wake-ups.** A send must not wake the task each time: on a busy transport that
//! cross-thread wake-up cost more than the send itself. Sends push into an inbox and
//! wake the task only when it sleeps with nothing to await. While deliveries are
//! pending, the task wakes anyway as they complete, and at least every
//! [`REGISTER_EVERY`]; each time it takes everything the inbox holds. So a receipt
//! resolves at most that much later than the broker's acknowledgement, and an idle
//! transport's first send is tracked at once.
//!
//! **Lifetime.** The task is started by the first send and ends once its transport
//! is dropped and nothing is pending. If the runtime running it shuts down, the
//! deliveries it held fail their receipts, and the next send starts a new task (on
//! the sender's runtime) for whatever is queued.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{oneshot, Notify};

use super::{Transport, TransportInner};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{Backoff, Retry};

/// How long a delivery handed over while others are pending may wait to be awaited.
pub(super) const REGISTER_EVERY: Duration = Duration::from_millis(1);

/// One delivery to await: the driver's pending delivery, and what settling it needs.
pub(super) struct Tracked {
    pub(super) future: BoxFuture<'static, Result<()>>,
    pub(super) record: Sent,
}

/// A sent record, kept until its delivery settles (the body, to send it again).
pub(super) struct Sent {
    pub(super) topic: String,
    pub(super) body: Bytes,
    pub(super) retry: Retry,
    pub(super) send_timeout: Duration,
    pub(super) reply: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct InboxState {
    queue: Vec<Tracked>,
    /// A task is running for this inbox.
    running: bool,
    /// The task sleeps with nothing to await: the next push must wake it.
    idle: bool,
    /// The transport is gone: the task ends once nothing is pending.
    closed: bool,
}

#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    wake: Notify,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The transport's side of its tracking task.
#[derive(Default)]
pub(super) struct DeliveryTracker {
    inbox: Arc<Inbox>,
}

impl std::fmt::Debug for DeliveryTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inbox.lock();
        f.debug_struct("DeliveryTracker")
            .field("queued", &st.queue.len())
            .field("running", &st.running)
            .finish()
    }
}

impl DeliveryTracker {
    /// Hand over a delivery; starts the task if none runs.
    pub(super) fn push(&self, transport: &Arc<TransportInner>, tracked: Tracked) {
        enum Then {
            Nothing,
            Wake,
            Start,
        }
        let then = {
            let mut st = self.inbox.lock();
            st.queue.push(tracked);
            if !st.running {
                st.running = true;
                st.idle = false;
                Then::Start
            } else if st.idle {
                st.idle = false;
                Then::Wake
            } else {
                Then::Nothing
            }
        };
        match then {
            Then::Nothing => {}
            Then::Wake => self.inbox.wake.notify_one(),
            Then::Start => {
                // The guard is made here, not inside the task: a runtime that shuts
                // down before the task's first poll drops it unpolled, and the guard
                // must still mark it gone and fail what it held.
                let running = Running(self.inbox.clone());
                tokio::spawn(run(running, Arc::downgrade(transport)));
            }
        }
    }
}

impl Drop for DeliveryTracker {
    fn drop(&mut self) {
        self.inbox.lock().closed = true;
        self.inbox.wake.notify_one();
    }
}

/// Marks the task gone, however it ends (also when its runtime drops it, polled or
/// not). What is still queued then is dropped: those receipts fail, as the pending
/// ones do.
struct Running(Arc<Inbox>);

impl Drop for Running {
    fn drop(&mut self) {
        let orphans = {
            let mut st = self.0.lock();
            st.running = false;
            st.idle = false;
            std::mem::take(&mut st.queue)
        };
        drop(orphans);
    }
}

type Settling = BoxFuture<'static, (Sent, Result<()>)>;

async fn run(running: Running, transport: Weak<TransportInner>) {
    let inbox = running.0.clone();
    let mut pending: FuturesUnordered<Settling> = FuturesUnordered::new();
    let mut register = tokio::time::interval(REGISTER_EVERY);
    register.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Swapped with the inbox's queue, so both keep their capacity (no regrowth).
    let mut arrived: Vec<Tracked> = Vec::new();
    loop {
        let sleep = {
            let mut st = inbox.lock();
            if st.queue.is_empty() && pending.is_empty() {
                if st.closed {
                    return;
                }
                st.idle = true;
                true
            } else {
                std::mem::swap(&mut st.queue, &mut arrived);
                false
            }
        };
        if sleep {
            inbox.wake.notified().await;
            continue;
        }
        // Not empty now: the inbox held something, or something was pending.
        for Tracked { future, record } in arrived.drain(..) {
            pending.push(Box::pin(async move { (record, future.await) }));
        }
        tokio::select! {
            biased;
            Some((t, outcome)) = pending.next() => settle(t, outcome, &transport),
            _ = register.tick() => {}
            _ = inbox.wake.notified() => {}
        }
    }
}

/// A success is counted here; a failure goes to [`Transport::track`] on a task of
/// its own, which resends as `retry` allows.
fn settle(t: Sent, outcome: Result<()>, transport: &Weak<TransportInner>) {
    match (outcome, transport.upgrade()) {
        (Ok(()), inner) => {
            if let Some(inner) = inner {
                inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            let _ = t.reply.send(Ok(()));
        }
        (Err(e), Some(inner)) => {
            let transport = Transport {
                inner,
                send_timeout: t.send_timeout,
            };
            tokio::spawn(async move {
                let failed: BoxFuture<'static, Result<()>> = Box::pin(async move { Err(e) });
                let outcome = transport.track(&t.topic, t.body, failed, t.retry).await;
                let _ = t.reply.send(outcome);
            });
        }
        (Err(e), None) => {
            tracing::error!(topic = %t.topic, error = %e, "notification lost: delivery failed after its transport was dropped");
            let _ = t.reply.send(Err(e));
        }
    }
}

impl Transport {
    /// Await a delivery; resend while `retry` allows; log and count a final failure.
    async fn track(
        &self,
        topic: &str,
        body: Bytes,
        first: BoxFuture<'static, Result<()>>,
        retry: Retry,
    ) -> Result<()> {
        let mut outcome = first.await;
        let mut retries = 0;
        let mut backoff = Backoff::default();
        loop {
            match outcome {
                Ok(()) => {
                    self.inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.is_retryable() && retry.allows(retries) && !self.is_closed() => {
                    retries += 1;
                    self.inner.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic, error = %e, retries, "delivery failed, sending again");
                    tokio::time::sleep(backoff.next_delay()).await;
                    outcome = match self.accept(topic, &body, retry).await {
                        Ok(p) => p.wait().await,
                        Err(e) => Err(e),
                    };
                }
                Err(e) => {
                    self.inner
                        .stats
                        .delivery_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(topic, error = %e, retries, "notification lost: delivery failed");
                    return Err(Error::new(
                        ErrorKind::DeliveryFailed,
                        format!("delivery to {topic} failed"),
                    )
                    .with_source(e));
                }
            }
        }
    }
}
