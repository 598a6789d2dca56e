//! What became of sent notifications, per destination (sink and topic), and what
//! to send again after a partial failure.
//!
//! A notification goes to every topic of its notifier on every sink: each such
//! [`Destination`] has its own outcome. Sending again only where it failed (a
//! [`Resend`]) never duplicates a notification where it already arrived.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};
use crate::notification::OutgoingNotification;
use crate::transport::DeliveryReceipt;

/// One place a notification goes: a sink of the notifier (its index, in the order
/// the sinks were added to the builder) and a topic (without the priority suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The sink's index in the notifier.
    pub sink: usize,
    /// The topic.
    pub topic: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sink {})", self.topic, self.sink)
    }
}

/// One notification as the sinks took it: per destination, accepted (a receipt)
/// or refused.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) notification: OutgoingNotification,
    pub(super) parts: Vec<(Destination, Result<DeliveryReceipt>)>,
}

impl Sent {
    fn is_delivered(&self) -> bool {
        self.parts
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(DeliveryReceipt::is_delivered))
    }

    async fn outcome(self) -> NotificationOutcome {
        let mut destinations = Vec::with_capacity(self.parts.len());
        for (destination, accepted) in self.parts {
            let result = match accepted {
                Ok(receipt) => receipt.delivered().await,
                Err(e) => Err(e),
            };
            destinations.push((destination, result));
        }
        NotificationOutcome {
            notification: self.notification,
            destinations,
        }
    }

    /// `Ok` when every destination accepted it; otherwise the error
    /// [`NotificationOutcome::into_result`] describes (the accepted receipts are
    /// dropped: those deliveries are still tracked, logged and counted).
    pub(super) fn into_accepted(self) -> Result<NotifyReceipt> {
        if self.parts.iter().all(|(_, r)| r.is_ok()) {
            return Ok(NotifyReceipt { sent: self });
        }
        let refused = NotificationOutcome {
            notification: self.notification,
            destinations: self
                .parts
                .into_iter()
                .map(|(d, r)| (d, r.map(drop)))
                .collect(),
        };
        Err(refused.into_error().expect("a destination refused it"))
    }
}

/// The receipt of one notification sent by [`crate::Notifier::notify`]: it resolves
/// once every destination (every topic on every sink) acknowledged it or failed.
#[derive(Debug)]
pub struct NotifyReceipt {
    sent: Sent,
}

impl NotifyReceipt {
    /// Whether every destination already acknowledged it.
    pub fn is_delivered(&self) -> bool {
        self.sent.is_delivered()
    }

    /// The notification that was sent.
    pub fn notification(&self) -> &OutgoingNotification {
        &self.sent.notification
    }

    /// Wait for every destination; the first failure is returned. With several
    /// destinations, its message names where the notification did arrive and its
    /// source is a [`PartialFailure`] holding the [`Resend`] of the failed ones.
    pub async fn delivered(self) -> Result<()> {
        self.outcome().await.into_result()
    }

    /// Wait for every destination and tell each one's outcome.
    pub async fn outcome(self) -> NotificationOutcome {
        self.sent.outcome().await
    }
}

/// What became of one notification at each of its destinations.
#[derive(Debug)]
pub struct NotificationOutcome {
    /// The notification.
    pub notification: OutgoingNotification,
    /// Each destination with its outcome, in the order they were sent to.
    pub destinations: Vec<(Destination, Result<()>)>,
}

impl NotificationOutcome {
    /// Whether it arrived at every destination.
    pub fn is_delivered(&self) -> bool {
        self.destinations.iter().all(|(_, r)| r.is_ok())
    }

    /// The destinations it arrived at.
    pub fn delivered_to(&self) -> impl Iterator<Item = &Destination> {
        self.destinations
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(d, _)| d)
    }

    /// The destinations it failed at, with the errors.
    pub fn failed(&self) -> impl Iterator<Item = (&Destination, &Error)> {
        self.destinations
            .iter()
            .filter_map(|(d, r)| r.as_ref().err().map(|e| (d, e)))
    }

    /// The failed destinations to send it to again: every failure but
    /// [`ErrorKind::OutcomeUnknown`] ones, unless `include_unknown`.
    fn to_resend(&self, include_unknown: bool) -> Vec<Destination> {
        self.failed()
            .filter(|(_, e)| include_unknown || e.kind() != &ErrorKind::OutcomeUnknown)
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// `Ok` when it arrived everywhere, else the first failure. With a single
    /// destination that is the failure itself; with several, an error of the same
    /// kind naming where it arrived, with a [`PartialFailure`] as its source.
    pub fn into_result(self) -> Result<()> {
        self.into_error().map_or(Ok(()), Err)
    }

    /// The error [`NotificationOutcome::into_result`] returns, if any.
    fn into_error(self) -> Option<Error> {
        if self.destinations.len() == 1 {
            return self.destinations.into_iter().find_map(|(_, r)| r.err());
        }
        let succeeded: Vec<Destination> = self.delivered_to().cloned().collect();
        let failed: Vec<String> = self.failed().map(|(d, _)| d.to_string()).collect();
        let resend = Resend::of(&self, false);
        let cause = self.destinations.into_iter().find_map(|(_, r)| r.err())?;
        let message = format!(
            "notification {} ({}) failed on {}; succeeded on [{}]",
            self.notification.message_id,
            self.notification.event_type,
            failed.join(", "),
            succeeded
                .iter()
                .map(Destination::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        Some(
            Error::new(cause.kind().clone(), message)
                .with_retryable(cause.is_retryable())
                .with_source(PartialFailure {
                    succeeded,
                    resend,
                    cause,
                }),
        )
    }
}

/// The source of the error of a notification that failed at some of its
/// destinations: where it did not fail, and what to send again
/// ([`crate::Notifier::resend`]).
#[derive(Debug)]
pub struct PartialFailure {
    /// The destinations that did not fail.
    pub succeeded: Vec<Destination>,
    /// The failed destinations, except [`ErrorKind::OutcomeUnknown`] ones.
    pub resend: Resend,
    cause: Error,
}

impl fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} destination(s) did not fail, {} to resend; first failure",
            self.succeeded.len(),
            self.resend.pairs()
        )
    }
}

impl std::error::Error for PartialFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// What the sinks accepted of a bulk ([`crate::Notifier::notify_many`],
/// [`crate::Notifier::emit_many`], [`crate::Notifier::resend`]).
#[derive(Debug)]
pub struct BulkReceipt {
    pub(super) sent: Vec<Sent>,
}

impl BulkReceipt {
    /// How many notifications it holds.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// How many (notification, destination) pairs were refused when handed over.
    pub fn refused(&self) -> usize {
        self.sent
            .iter()
            .map(|s| s.parts.iter().filter(|(_, r)| r.is_err()).count())
            .sum()
    }

    /// Wait for every acknowledgement and tell each notification's outcome.
    pub async fn outcome(self) -> BulkOutcome {
        let mut notifications = Vec::with_capacity(self.sent.len());
        for sent in self.sent {
            notifications.push(sent.outcome().await);
        }
        BulkOutcome { notifications }
    }
}

/// What became of every notification of a bulk, at each destination.
#[derive(Debug)]
pub struct BulkOutcome {
    /// One outcome per notification, in the order they were given.
    pub notifications: Vec<NotificationOutcome>,
}

impl BulkOutcome {
    /// Whether every notification arrived at every destination.
    pub fn is_delivered(&self) -> bool {
        self.notifications
            .iter()
            .all(NotificationOutcome::is_delivered)
    }

    /// Every failed (notification, destination) pair, with its error.
    pub fn failures(&self) -> impl Iterator<Item = (&OutgoingNotification, &Destination, &Error)> {
        self.notifications
            .iter()
            .flat_map(|n| n.failed().map(move |(d, e)| (&n.notification, d, e)))
    }

    /// How many (notification, destination) pairs failed.
    pub fn failed_count(&self) -> usize {
        self.failures().count()
    }

    /// How many failed pairs have an unknown outcome ([`ErrorKind::OutcomeUnknown`]):
    /// they may have arrived, so [`BulkOutcome::resend`] leaves them out.
    pub fn unknown_count(&self) -> usize {
        self.failures()
            .filter(|(_, _, e)| e.kind() == &ErrorKind::OutcomeUnknown)
            .count()
    }

    /// The failed pairs to send again, leaving out those whose outcome is unknown
    /// (resending them could duplicate them).
    pub fn resend(&self) -> Resend {
        self.resend_with(false)
    }

    /// The failed pairs to send again, those with an unknown outcome included: the
    /// caller accepts possible duplicates (same message id, so a consumer can drop them).
    pub fn resend_including_unknown(&self) -> Resend {
        self.resend_with(true)
    }

    fn resend_with(&self, include_unknown: bool) -> Resend {
        let mut resend = Resend::default();
        for n in &self.notifications {
            resend.extend(n, include_unknown);
        }
        resend
    }
}

/// Notifications to send again, each only to the destinations where it failed,
/// with its original message id ([`crate::Notifier::resend`]).
#[derive(Debug, Clone, Default)]
pub struct Resend {
    pub(super) items: Vec<(OutgoingNotification, Vec<Destination>)>,
}

impl Resend {
    fn of(outcome: &NotificationOutcome, include_unknown: bool) -> Self {
        let mut resend = Resend::default();
        resend.extend(outcome, include_unknown);
        resend
    }

    fn extend(&mut self, outcome: &NotificationOutcome, include_unknown: bool) {
        let destinations = outcome.to_resend(include_unknown);
        if !destinations.is_empty() {
            self.items
                .push((outcome.notification.clone(), destinations));
        }
    }

    /// Whether there is nothing to send again.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many notifications are to be sent again.
    pub fn notifications(&self) -> usize {
        self.items.len()
    }

    /// How many (notification, destination) pairs are to be sent again.
    pub fn pairs(&self) -> usize {
        self.items.iter().map(|(_, d)| d.len()).sum()
    }

    /// Each notification with the destinations it is to be sent to again.
    pub fn items(&self) -> &[(OutgoingNotification, Vec<Destination>)] {
        &self.items
    }
}
