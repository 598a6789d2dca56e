//! Handing records to the driver: the contract's rules, applied here once for every
//! send, first sends and resends after a failed delivery alike.
//!
//! * A closed transport refuses every record not yet accepted.
//! * A record larger than the driver's [`Capabilities::max_record_bytes`] is refused
//!   before the driver sees it, naming the setting that raises the limit.
//! * A full local queue (`ResourceExhausted`) is waited out, up to the send timeout;
//!   waiting spends no retry.
//! * A retryable failure spends one retry of the record's budget ([`Attempt::retries`]
//!   travels with the record through every resend, so `Retry::Limited(n)` means at
//!   most `n + 1` attempts in all).
//! * An unknown outcome is never sent again.
//!
//! Records that must be sent again go back to the driver together, as one batch.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;

use std::sync::Arc;

use super::Transport;
use crate::driver::{Capabilities, OutgoingRecord, PendingDelivery};
use crate::error::{Error, ErrorKind, Result};
use crate::observability::instruments::SendMetrics;
use crate::retry::{Backoff, Retry};

/// A record on its way, with the retries it has spent so far, when it was first
/// handed over, and its destination's metrics.
pub(super) struct Attempt {
    pub(super) record: OutgoingRecord,
    pub(super) retries: u32,
    pub(super) started: std::time::Instant,
    pub(super) metrics: Arc<SendMetrics>,
}

impl Attempt {
    /// A record that was never sent.
    pub(super) fn first(
        record: OutgoingRecord,
        metrics: Arc<SendMetrics>,
        started: std::time::Instant,
    ) -> Self {
        Attempt {
            metrics,
            record,
            retries: 0,
            started,
        }
    }

    /// `record` again, with what its attempt carried besides it.
    fn carried(record: OutgoingRecord, carried: Carried) -> Self {
        let (retries, started, metrics) = carried;
        Attempt {
            record,
            retries,
            started,
            metrics,
        }
    }
}

/// What an attempt carries besides its record, while the record is in a batch.
type Carried = (u32, std::time::Instant, Arc<SendMetrics>);

/// A record the driver accepted, and its acknowledgement still to come.
pub(super) struct Accepted {
    pub(super) attempt: Attempt,
    pub(super) pending: PendingDelivery,
}

/// A record the driver did not accept, finally: the record, and why.
pub(super) struct Refused {
    pub(super) attempt: Attempt,
    pub(super) error: Error,
}

/// The final outcome of handing one record to the driver.
pub(super) enum Handed {
    Accepted(Accepted),
    Refused(Refused),
}

/// What one driver outcome means for its record.
enum Verdict {
    Accepted(PendingDelivery),
    Again,
    Refused(Error),
}

/// The one backpressure rule: a full local queue (`ResourceExhausted`) is waited
/// out, with a backoff, until a deadline; past it, the send fails with
/// `ResourceExhausted`. Waiting spends no retry.
#[derive(Debug)]
pub(crate) struct Backpressure {
    started: Instant,
    deadline: Instant,
    backoff: Backoff,
}

impl Backpressure {
    /// Wait for room until `deadline`.
    pub(crate) fn until(deadline: Instant) -> Self {
        Self::from(Instant::now(), deadline)
    }

    /// Wait for room from `started` (a clock reading the caller has) until `deadline`.
    fn from(started: Instant, deadline: Instant) -> Self {
        Backpressure {
            started,
            deadline,
            backoff: Backoff::backpressure(),
        }
    }

    /// Whether the deadline passed: a full queue is now final.
    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The final refusal after the queue for `what` stayed full (`e`).
    pub(crate) fn refusal(&self, e: Error, what: &str) -> Error {
        let message = format!(
            "the local queue for {what} stayed full for {:?}",
            self.started.elapsed()
        );
        Error::new(ErrorKind::ResourceExhausted, message).with_source(e)
    }

    /// How long to wait before trying again (never past the deadline).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.backoff.next_delay().min(left)
    }
}

/// The refusal of a record larger than the driver's limit, if it is.
fn check_size(caps: &Capabilities, record: &OutgoingRecord) -> Result<()> {
    match caps.max_record_bytes {
        Some(max) if record.body.len() > max => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "the record for {} is {} bytes, larger than {} ({max})",
                record.topic,
                record.body.len(),
                caps.max_record_bytes_option
                    .unwrap_or("the driver's record size limit"),
            ),
        )
        .with_retryable(false)),
        _ => Ok(()),
    }
}

/// Per-batch lists: a batch of one (every single send) stays off the heap.
pub(super) type Batch<T> = SmallVec<[T; 1]>;

impl Transport {
    /// Hand `attempts` to the driver under the contract's rules (see the module
    /// docs): one outcome per attempt, in the same order. `now` starts the wait
    /// for room (the caller's clock reading, so a send reads the clock once).
    pub(super) async fn hand_to_driver(
        &self,
        attempts: Batch<Attempt>,
        retry: Retry,
        now: Instant,
    ) -> Batch<Handed> {
        let caps = self.inner.driver.capabilities();
        let mut out: Batch<Option<Handed>> = SmallVec::with_capacity(attempts.len());
        let mut records = Vec::with_capacity(attempts.len());
        let mut meta: Batch<(usize, Carried)> = SmallVec::with_capacity(attempts.len());
        for attempt in attempts {
            match check_size(&caps, &attempt.record) {
                Ok(()) => {
                    let carried = (attempt.retries, attempt.started, attempt.metrics);
                    meta.push((out.len(), carried));
                    records.push(attempt.record);
                    out.push(None);
                }
                Err(error) => out.push(Some(Handed::Refused(Refused { attempt, error }))),
            }
        }
        let mut backpressure = Backpressure::from(now, now + self.send_timeout);
        while !records.is_empty() {
            if self.is_closed() {
                for (record, (slot, carried)) in records.into_iter().zip(meta) {
                    let attempt = Attempt::carried(record, carried);
                    let error = Error::closed("transport");
                    out[slot] = Some(Handed::Refused(Refused { attempt, error }));
                }
                break;
            }
            let mut outcomes = self.inner.driver.send_batch(&records).await.into_iter();
            let mut again = (Vec::new(), Batch::new());
            for (record, (slot, (mut retries, started, metrics))) in records.into_iter().zip(meta) {
                let outcome = outcomes
                    .next()
                    .unwrap_or_else(|| Err(self.missing_outcome()));
                let verdict =
                    self.verdict(outcome, &record.topic, &mut retries, retry, &backpressure);
                let attempt = Attempt::carried(record, (retries, started, metrics));
                out[slot] = match verdict {
                    Verdict::Accepted(pending) => {
                        Some(Handed::Accepted(Accepted { attempt, pending }))
                    }
                    Verdict::Refused(error) => Some(Handed::Refused(Refused { attempt, error })),
                    Verdict::Again => {
                        again.0.push(attempt.record);
                        let carried = (attempt.retries, attempt.started, attempt.metrics);
                        again.1.push((slot, carried));
                        None
                    }
                };
            }
            (records, meta) = again;
            if !records.is_empty() {
                tokio::time::sleep(backpressure.next_delay()).await;
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| unreachable!("every record got an outcome")))
            .collect()
    }

    /// What the driver's outcome for one record means: accepted, send it again
    /// (a full queue within the send timeout, or a retryable failure within the
    /// budget, which it spends), or refused.
    fn verdict(
        &self,
        outcome: Result<PendingDelivery>,
        topic: &str,
        retries: &mut u32,
        retry: Retry,
        backpressure: &Backpressure,
    ) -> Verdict {
        let e = match outcome {
            Ok(pending) => return Verdict::Accepted(pending),
            Err(e) => e,
        };
        if e.kind() == &ErrorKind::ResourceExhausted {
            if backpressure.passed() {
                return Verdict::Refused(backpressure.refusal(e, topic));
            }
            return Verdict::Again;
        }
        if e.kind() == &ErrorKind::OutcomeUnknown {
            return Verdict::Refused(self.give_up(topic, *retries, e));
        }
        if e.is_retryable() && retry.allows(*retries) {
            *retries += 1;
            self.inner.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic, error = %e, retries = *retries, "send failed, retrying");
            return Verdict::Again;
        }
        Verdict::Refused(e)
    }

    /// Send something that is not a record (an RPC request) under the same rules:
    /// refused once the transport is closed, a full queue waited out until
    /// `deadline`. `send` makes one attempt; no retries.
    pub(crate) async fn send_with_backpressure<F, Fut>(
        &self,
        deadline: Instant,
        what: &str,
        mut send: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut backpressure = Backpressure::until(deadline);
        loop {
            if self.is_closed() {
                return Err(Error::closed("transport"));
            }
            match send().await {
                Err(e) if e.kind() == &ErrorKind::ResourceExhausted => {
                    if backpressure.passed() {
                        return Err(backpressure.refusal(e, what));
                    }
                    tokio::time::sleep(backpressure.next_delay()).await;
                }
                outcome => return outcome,
            }
        }
    }

    fn missing_outcome(&self) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!(
                "the {} driver returned fewer outcomes than records",
                self.inner.driver.name()
            ),
        )
    }
}
