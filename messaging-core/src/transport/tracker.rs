//! Delivery tracking: one task per transport awaits every pending delivery, counts
//! successes, and hands failures to [`Transport::resend`] (resend as the record's
//! retry budget allows, then log and count).
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

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{oneshot, Notify};

use super::handover::{Accepted, Attempt, Handed, Refused};
use super::{Transport, TransportInner};
use crate::driver::PendingDelivery;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{Backoff, Retry};

/// How long a delivery handed over while others are pending may wait to be awaited.
pub(super) const REGISTER_EVERY: Duration = Duration::from_millis(1);

/// One delivery to await: the driver's pending delivery, and what settling it needs.
pub(super) struct Tracked {
    pub(super) future: BoxFuture<'static, Result<()>>,
    pub(super) record: Sent,
}

/// A sent record, kept until its delivery settles (the body, to send it again, and
/// the retries it already spent).
pub(super) struct Sent {
    pub(super) attempt: Attempt,
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

/// A success is counted here; a retryable failure with retries left is sent again
/// by [`Transport::resend`] on a task of its own; any other failure is final.
fn settle(t: Sent, outcome: Result<()>, transport: &Weak<TransportInner>) {
    match (outcome, transport.upgrade()) {
        (Ok(()), inner) => {
            if let Some(inner) = inner {
                inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            t.attempt.metrics.delivered(t.attempt.started);
            let _ = t.reply.send(Ok(()));
        }
        (Err(e), Some(inner)) => {
            let transport = Transport {
                inner,
                send_timeout: t.send_timeout,
            };
            let resend = e.kind() != &ErrorKind::OutcomeUnknown
                && e.is_retryable()
                && t.retry.allows(t.attempt.retries)
                && !transport.is_closed();
            if resend {
                tokio::spawn(transport.resend(t, e));
            } else {
                let e = transport.give_up(&t.attempt.record.topic, t.attempt.retries, e);
                t.attempt.metrics.gave_up(&e, t.attempt.started);
                let _ = t.reply.send(Err(e));
            }
        }
        (Err(e), None) => {
            let topic = &t.attempt.record.topic;
            tracing::error!(topic = %topic, error = %e, "notification lost: delivery failed after its transport was dropped");
            t.attempt.metrics.gave_up(&e, t.attempt.started);
            let _ = t.reply.send(Err(e));
        }
    }
}

impl Transport {
    /// Send a record again after its delivery failed with `error`, spending one
    /// retry of its budget, and track the new delivery.
    async fn resend(self, sent: Sent, error: Error) {
        let Sent {
            mut attempt,
            retry,
            send_timeout,
            reply,
        } = sent;
        attempt.retries += 1;
        self.inner.stats.retried.fetch_add(1, Ordering::Relaxed);
        attempt.metrics.retried();
        let topic = &attempt.record.topic;
        tracing::warn!(topic = %topic, error = %error, retries = attempt.retries, "delivery failed, sending again");
        tokio::time::sleep(delivery_backoff(attempt.retries)).await;
        let now = tokio::time::Instant::now();
        let outcome = self
            .hand_to_driver(smallvec::smallvec![attempt], retry, now)
            .await
            .pop();
        match outcome {
            Some(Handed::Accepted(Accepted {
                pending: PendingDelivery::Delivered,
                attempt,
            })) => {
                self.inner.stats.delivered.fetch_add(1, Ordering::Relaxed);
                attempt.metrics.delivered(attempt.started);
                let _ = reply.send(Ok(()));
            }
            Some(Handed::Accepted(Accepted {
                attempt,
                pending: PendingDelivery::Pending(future),
            })) => {
                let record = Sent {
                    attempt,
                    retry,
                    send_timeout,
                    reply,
                };
                self.inner
                    .tracker
                    .push(&self.inner, Tracked { future, record });
            }
            Some(Handed::Refused(Refused { attempt, error })) => {
                let e = self.give_up(&attempt.record.topic, attempt.retries, error);
                attempt.metrics.gave_up(&e, attempt.started);
                let _ = reply.send(Err(e));
            }
            None => {
                let _ = reply.send(Err(Error::new(
                    ErrorKind::Internal,
                    "a resend without an outcome",
                )));
            }
        }
    }
}

/// The wait before the `retries`-th resend after a failed delivery: 10 ms doubling
/// up to 2 s ([`Backoff::default`]).
fn delivery_backoff(retries: u32) -> Duration {
    let mut backoff = Backoff::default();
    (1..retries).for_each(|_| {
        backoff.next_delay();
    });
    backoff.next_delay()
}
