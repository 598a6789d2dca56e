//! The notifier's send path: one notification or a bulk, to every destination or
//! (for a [`Resend`]) only to the given ones, through each sink's batch call.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::outcome::{BulkReceipt, Destination, NotifyReceipt, Resend, Sent};
use super::{Notifier, SinkItem, TopicResults};
use crate::error::{Error, ErrorKind, Result};
use crate::notification::{Context, OutgoingNotification};
use crate::priority::Priority;
use crate::transport::DeliveryReceipt;

/// Per notification, the destinations it was handed to so far, with the results.
type Parts = Vec<Vec<(Destination, Result<DeliveryReceipt>)>>;

impl Notifier {
    /// Send many notifications of one priority with one context: `items` are
    /// (event type, payload) pairs. Each is built once (and, in the Kafka dialect,
    /// encoded once; see [`crate::notifier::MessagingSink`]) and all go
    /// through each sink's batch send ([`super::NotificationSink::emit_batch`]).
    ///
    /// `Err` only when nothing was sent: the notifier is closed, or an item does
    /// not serialize (the error names its index). Otherwise every (notification,
    /// destination) pair has its own outcome: see [`BulkReceipt::outcome`] and,
    /// after a partial failure, [`Notifier::resend`].
    pub async fn notify_many<E, P, I>(
        &self,
        priority: Priority,
        context: &Context,
        items: I,
    ) -> Result<BulkReceipt>
    where
        I: IntoIterator<Item = (E, P)>,
        E: AsRef<str>,
        P: Serialize,
    {
        self.check_open()?;
        let context = self.outgoing_context(context)?;
        let notifications = items
            .into_iter()
            .enumerate()
            .map(|(i, (event_type, payload))| {
                self.build_with_context(priority, context.clone(), event_type.as_ref(), &payload)
                    .map_err(|e| {
                        Error::new(e.kind().clone(), format!("bulk item {i}: {}", e.message()))
                            .with_source(e)
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        self.emit_many(notifications).await
    }

    /// Send already built notifications (each with its own priority) as a bulk,
    /// to every destination; see [`Notifier::notify_many`].
    pub async fn emit_many(&self, notifications: Vec<OutgoingNotification>) -> Result<BulkReceipt> {
        self.check_open()?;
        let everywhere = vec![None; notifications.len()];
        Ok(BulkReceipt {
            sent: self.send_to(notifications, everywhere).await,
        })
    }

    /// Send each notification of `resend` again, with its original message id, to
    /// only the destinations listed for it. A [`Resend`] leaves out pairs whose
    /// outcome is unknown unless it was made with
    /// [`super::BulkOutcome::resend_including_unknown`].
    pub async fn resend(&self, resend: Resend) -> Result<BulkReceipt> {
        self.check_open()?;
        let sinks = self.shared.sinks.len();
        if let Some(d) = resend
            .items
            .iter()
            .flat_map(|(_, d)| d)
            .find(|d| d.sink >= sinks)
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot resend to {d}: this notifier has {sinks} sink(s)"),
            ));
        }
        let (notifications, destinations) =
            resend.items.into_iter().map(|(n, d)| (n, Some(d))).unzip();
        Ok(BulkReceipt {
            sent: self.send_to(notifications, destinations).await,
        })
    }

    /// One notification to every destination (the path of [`Notifier::notify`]).
    pub(super) async fn emit_owned(
        &self,
        notification: OutgoingNotification,
    ) -> Result<NotifyReceipt> {
        self.check_open()?;
        let topics = &self.shared.topics;
        let mut parts = Vec::with_capacity(self.shared.sinks.len() * topics.len());
        for (sink, s) in self.shared.sinks.iter().enumerate() {
            let results = s.emit(&notification, topics, self.retry).await;
            push_parts(&mut parts, sink, topics, results);
        }
        Sent {
            notification,
            parts,
        }
        .into_accepted()
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::closed("notifier"));
        }
        Ok(())
    }

    /// Hand each notification to each sink, on every topic (`None`) or only on the
    /// given destinations.
    async fn send_to(
        &self,
        notifications: Vec<OutgoingNotification>,
        destinations: Vec<Option<Vec<Destination>>>,
    ) -> Vec<Sent> {
        let mut parts: Parts = notifications.iter().map(|_| Vec::new()).collect();
        for (sink, s) in self.shared.sinks.iter().enumerate() {
            let topics: Vec<Cow<'_, [String]>> = destinations
                .iter()
                .map(|d| match d {
                    None => Cow::Borrowed(self.shared.topics.as_slice()),
                    Some(d) => Cow::Owned(topics_on(d, sink)),
                })
                .collect();
            let owners: Vec<usize> = (0..notifications.len())
                .filter(|&i| !topics[i].is_empty())
                .collect();
            if owners.is_empty() {
                continue;
            }
            let items: Vec<SinkItem<'_>> = owners
                .iter()
                .map(|&i| SinkItem {
                    notification: &notifications[i],
                    topics: &topics[i],
                })
                .collect();
            let mut results = s.emit_batch(&items, self.retry).await.into_iter();
            for &i in &owners {
                push_parts(
                    &mut parts[i],
                    sink,
                    &topics[i],
                    results.next().unwrap_or_default(),
                );
            }
        }
        notifications
            .into_iter()
            .zip(parts)
            .map(|(notification, parts)| Sent {
                notification,
                parts,
            })
            .collect()
    }
}

/// The topics of `destinations` on `sink`.
fn topics_on(destinations: &[Destination], sink: usize) -> Vec<String> {
    destinations
        .iter()
        .filter(|d| d.sink == sink)
        .map(|d| d.topic.clone())
        .collect()
}

/// Record a sink's results for one notification, one per topic; a sink that gave
/// fewer results than topics has refused the rest (never silently dropped).
fn push_parts(
    parts: &mut Vec<(Destination, Result<DeliveryReceipt>)>,
    sink: usize,
    topics: &[String],
    results: TopicResults,
) {
    let mut results = results.into_iter();
    for topic in topics {
        let result = results.next().unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::Internal,
                format!("sink {sink} gave no result for topic {topic}"),
            ))
        });
        let destination = Destination {
            sink,
            topic: topic.clone(),
        };
        parts.push((destination, result));
    }
}
