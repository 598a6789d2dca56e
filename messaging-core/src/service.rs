//! The one service loop behind the notification listener and the RPC server.
//!
//! A service receives items (records, requests) from the transport, starts one
//! piece of work for each, settles what finished (acknowledge, requeue, reply),
//! and on stop drains what is in flight by a deadline. The loop here owns what both
//! share: the stop signal, bounded concurrency (at most `max_concurrency` pieces of
//! work in flight, and no more items asked for than there is room for), receive
//! errors backed off with [`Backoff::receive`] (the stop signal and finished work
//! are still served while backing off), stop on a closed receiver or on a receive
//! error that is not retryable (e.g. [`crate::ErrorKind::Authentication`]: the loop
//! drains and ends with that error, which `wait` returns), and the drain.
//! A [`Service`] supplies what differs.
//!
//! Work in flight is a future polled by the loop's task; a service that wants its
//! work on other tasks spawns it inside that future ([`spawned`]). Work still
//! running at the stop deadline is dropped, which cancels it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::error::{ErrorKind, Result};
use crate::observability::health::StatusCell;
use crate::retry::Backoff;

/// How long `stop` lets work in flight finish, unless told otherwise (listener and
/// RPC server alike).
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings the loop itself needs.
#[derive(Debug, Clone)]
pub(crate) struct ServiceSettings {
    /// Bound on work in flight (at least 1).
    pub(crate) max_concurrency: usize,
    /// How long one receive waits for items.
    pub(crate) poll_wait: Duration,
    /// How long the drain lets work in flight finish.
    pub(crate) stop_timeout: Duration,
}

/// Work started for received items and not finished yet.
pub(crate) struct InFlight<D> {
    running: FuturesUnordered<BoxFuture<'static, D>>,
}

impl<D> InFlight<D> {
    fn new() -> Self {
        InFlight {
            running: FuturesUnordered::new(),
        }
    }

    /// Start `work`. Work that finishes without waiting (most handlers) is returned
    /// at once, to be settled without a trip through the loop.
    pub(crate) fn start(&mut self, mut work: BoxFuture<'static, D>) -> Option<D> {
        // A no-op waker is enough: pending work is polled again (with the loop's
        // waker) as soon as it is pushed.
        match work
            .as_mut()
            .poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
        {
            Poll::Ready(done) => Some(done),
            Poll::Pending => {
                self.running.push(work);
                None
            }
        }
    }

    /// How much work is in flight.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// What the shared loop asks of a listener or an RPC server.
pub(crate) trait Service: Send + Sync + 'static {
    /// One received item.
    type Item: Send;
    /// What finished work leaves to settle.
    type Done: Send + 'static;
    /// What abandoning work at the stop deadline means, for the log.
    const ABANDONED: &'static str;

    /// Who this is, for the log.
    fn name(&self) -> &str;

    /// Wait up to `wait` for at most `max` items (none on timeout). Dropping the
    /// future before it completes must not lose items.
    fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Item>>> + Send;

    /// How many items to ask for when `free` more pieces of work may start.
    fn wanted(&self, free: usize) -> usize {
        free
    }

    /// When items held back (a batch being filled) are due to start.
    fn due(&self) -> Option<Instant> {
        None
    }

    /// Start the work for the items held back, if any.
    fn release(&mut self, _work: &mut InFlight<Self::Done>) {}

    /// `count` items were just received; [`Service::dispatch`] gets each of them next.
    fn received(&mut self, _count: usize) {}

    /// Decode one received item and dispatch it: start its work in `work`, or settle
    /// it at once (an item that cannot be decoded).
    fn dispatch(
        &mut self,
        item: Self::Item,
        work: &mut InFlight<Self::Done>,
    ) -> impl Future<Output = ()> + Send;

    /// Take the outcome of finished work (to be flushed).
    fn settle(&mut self, done: Self::Done);

    /// Send what was settled to the transport (acknowledgements, replies).
    fn flush(&mut self) -> impl Future<Output = ()> + Send;

    /// The loop stopped receiving: before the drain starts. `timeout` is the stop
    /// timeout.
    fn stop_receiving(
        &mut self,
        work: &mut InFlight<Self::Done>,
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send;

    /// The drain ended and what was settled was flushed: leave (within `timeout`,
    /// the stop timeout).
    fn finish(self, timeout: Duration) -> impl Future<Output = Result<()>> + Send;
}

/// Run `service` until `stop` says so (or its receiver closed), then drain it.
pub(crate) async fn run<S: Service>(
    mut service: S,
    settings: ServiceSettings,
    mut stop: watch::Receiver<bool>,
    status: std::sync::Arc<StatusCell>,
) -> Result<()> {
    let mut work = InFlight::new();
    let mut backoff = Backoff::receive();
    let mut retry_at: Option<Instant> = None;
    let mut failure = None;
    let max = settings.max_concurrency.max(1);
    while !*stop.borrow() {
        let free = max.saturating_sub(work.len());
        let want = service.wanted(free);
        let due = service.due();
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() { break; }
            }
            Some(done) = work.running.next(), if !work.is_empty() => {
                service.settle(done);
                while let Some(Some(more)) = work.running.next().now_or_never() {
                    service.settle(more);
                }
            }
            () = sleep_until(due), if free > 0 => service.release(&mut work),
            received = receive_after(&service, retry_at, want, settings.poll_wait), if want > 0 => match received {
                Ok(items) => {
                    backoff.reset();
                    retry_at = None;
                    service.received(items.len());
                    for item in items {
                        service.dispatch(item, &mut work).await;
                    }
                }
                Err(e) if e.kind() == &ErrorKind::Closed => {
                    tracing::info!(service = service.name(), "the receiver closed under the service; stopping");
                    break;
                }
                Err(e) if !e.is_retryable() => {
                    // e.g. the broker refused the credentials: receiving again would be
                    // refused again, so stop (draining what is in flight) and report it.
                    tracing::error!(service = service.name(), error = %e, kind = %e.kind(), "receive failed for good; stopping");
                    failure = Some(e);
                    break;
                }
                Err(e) => {
                    status.error(&e);
                    let delay = backoff.next_delay();
                    tracing::warn!(service = service.name(), error = %e, ?delay, "receive failed; retrying");
                    retry_at = Some(Instant::now() + delay);
                }
            },
        }
        service.flush().await;
    }
    let drained = drain(service, work, settings.stop_timeout).await;
    match failure {
        Some(e) => Err(e),
        None => drained,
    }
}

/// Sleep until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Receive, after the backoff of a failed receive (if any) has passed.
async fn receive_after<S: Service>(
    service: &S,
    retry_at: Option<Instant>,
    max: usize,
    wait: Duration,
) -> Result<Vec<S::Item>> {
    if let Some(at) = retry_at {
        tokio::time::sleep_until(at).await;
    }
    service.receive(max, wait).await
}

/// Stop receiving, let work in flight finish until the stop timeout, flush, leave.
async fn drain<S: Service>(
    mut service: S,
    mut work: InFlight<S::Done>,
    stop_timeout: Duration,
) -> Result<()> {
    service.stop_receiving(&mut work, stop_timeout).await;
    let deadline = Instant::now() + stop_timeout;
    while !work.is_empty() {
        match tokio::time::timeout_at(deadline, work.running.next()).await {
            Ok(Some(done)) => service.settle(done),
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    service = service.name(),
                    in_flight = work.len(),
                    "stop deadline passed with work still running; abandoning it: {}",
                    S::ABANDONED
                );
                break;
            }
        }
    }
    drop(work);
    service.flush().await;
    service.finish(stop_timeout).await
}

/// Run `task` on its own tokio task, as work that the loop can abandon: dropping
/// the returned future aborts the task.
pub(crate) fn spawned<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> BoxFuture<'static, std::result::Result<T, JoinError>> {
    let mut handle = AbortOnDrop(tokio::spawn(task));
    Box::pin(async move { Pin::new(&mut handle.0).await })
}

/// A task handle that aborts its task when dropped (a no-op once it finished).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
