//! The simple sinks: messaging (send on a transport), log, noop, test (recording).

use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use super::{NotificationSink, SinkItem, TopicResults};
use crate::driver::{Dialect, OutgoingRecord};
use crate::envelope;
use crate::error::Error;
use crate::notification::OutgoingNotification;
use crate::priority::Priority;
use crate::retry::Retry;
use crate::trace::{self, RunInSpan};
use crate::transport::{DeliveryReceipt, Transport};

/// Sends notifications on a transport in oslo's v2 envelope (`messaging`, `messagingv2`),
/// in the form of the transport's [`crate::driver::Dialect`] ([`Transport::dialect`]):
/// the Kafka form is encoded once for all of a notification's topics; the AMQP form
/// once per topic, since each message sent carries its own `_unique_id` (as oslo's
/// rabbit driver does: a listener bound to two of the topics would otherwise drop
/// the second copy as a duplicate).
#[derive(Debug, Clone)]
pub struct MessagingSink {
    transport: Transport,
    topic_names: Arc<TopicNames>,
}

impl MessagingSink {
    /// A sink sending on `transport`.
    pub fn new(transport: Transport) -> Self {
        MessagingSink {
            transport,
            topic_names: Arc::default(),
        }
    }

    /// The full topic name for `topic` and `priority`, built once and kept.
    fn topic_name(&self, topic: &str, priority: Priority) -> Arc<str> {
        self.topic_names.get_or_insert(topic, priority, || {
            self.transport.notification_topic(topic, priority)
        })
    }
}

/// Full topic names by (topic, priority): a notifier sends to a handful, and
/// building the name costs more than looking it up.
#[derive(Debug, Default)]
struct TopicNames {
    names: RwLock<Vec<(String, Priority, Arc<str>)>>,
}

impl TopicNames {
    /// At most this many are kept; others are built on every send.
    const MAX: usize = 64;

    fn get_or_insert(
        &self,
        topic: &str,
        priority: Priority,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        let find = |names: &[(String, Priority, Arc<str>)]| {
            names
                .iter()
                .find(|(t, p, _)| *p == priority && t == topic)
                .map(|(_, _, name)| name.clone())
        };
        if let Some(name) = find(&self.names.read().unwrap_or_else(|e| e.into_inner())) {
            return name;
        }
        let name: Arc<str> = build().into();
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if find(&names).is_none() && names.len() < Self::MAX {
            names.push((topic.to_owned(), priority, name.clone()));
        }
        name
    }
}

impl MessagingSink {
    /// Each (topic, body) of `items` as a transport record; an item that does not
    /// encode is refused on each of its topics instead.
    fn records(&self, items: &[SinkItem<'_>]) -> (Vec<OutgoingRecord>, Vec<Option<Error>>) {
        let mut records = Vec::with_capacity(items.iter().map(|i| i.topics.len()).sum());
        let mut refused = Vec::with_capacity(items.len());
        for item in items {
            let n = item.notification;
            let encoded = match self.transport.dialect() {
                Dialect::Kafka => envelope::encode(n).map(|body| {
                    let body = Bytes::from(body);
                    item.topics
                        .iter()
                        .map(|t| OutgoingRecord {
                            topic: self.topic_name(t, n.priority),
                            body: body.clone(),
                        })
                        .collect::<Vec<_>>()
                }),
                Dialect::Amqp => item
                    .topics
                    .iter()
                    .map(|t| {
                        Ok(OutgoingRecord {
                            topic: self.topic_name(t, n.priority),
                            body: envelope::encode_as(n, Dialect::Amqp)?.into(),
                        })
                    })
                    .collect(),
            };
            match encoded {
                Ok(encoded) => {
                    records.extend(encoded);
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        (records, refused)
    }
}

#[async_trait]
impl NotificationSink for MessagingSink {
    async fn emit(
        &self,
        n: &OutgoingNotification,
        topics: &[String],
        retry: Retry,
    ) -> TopicResults {
        let span = self.send_span(topics.first(), n, None);
        let traced = trace::traced(&span, n);
        self.send_each(traced.as_ref().unwrap_or(n), topics, retry)
            .in_span(span)
            .await
    }

    async fn emit_batch(&self, items: &[SinkItem<'_>], retry: Retry) -> Vec<TopicResults> {
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let span = self.send_span(first.topics.first(), first.notification, Some(items.len()));
        let copies = trace::traced_all(&span, items.iter().map(|i| i.notification));
        let traced: Vec<SinkItem<'_>>;
        let items = match &copies {
            None => items,
            Some(copies) => {
                traced = copies
                    .iter()
                    .zip(items)
                    .map(|(n, i)| SinkItem {
                        notification: n,
                        topics: i.topics,
                    })
                    .collect();
                &traced
            }
        };
        self.send_all(items, retry).in_span(span).await
    }
}

impl MessagingSink {
    /// The producer span of `n` (or of a batch of `batch` starting with it).
    fn send_span(
        &self,
        topic: Option<&String>,
        n: &OutgoingNotification,
        batch: Option<usize>,
    ) -> tracing::Span {
        if !tracing::enabled!(target: trace::TARGET, tracing::Level::INFO) {
            return tracing::Span::none();
        }
        let destination = topic.map(|t| self.topic_name(t, n.priority));
        let id = batch.is_none().then_some(n.message_id.as_str());
        trace::notification_send(
            self.transport.driver().name(),
            destination.as_deref().unwrap_or_default(),
            id,
            batch,
        )
    }

    /// Send `n` on each of `topics`.
    async fn send_each(
        &self,
        n: &OutgoingNotification,
        topics: &[String],
        retry: Retry,
    ) -> TopicResults {
        let dialect = self.transport.dialect();
        let once = match dialect {
            Dialect::Kafka => match envelope::encode(n) {
                Ok(body) => Some(Bytes::from(body)),
                Err(e) => return refused_on(topics, e),
            },
            Dialect::Amqp => None,
        };
        let mut results = Vec::with_capacity(topics.len());
        for (i, t) in topics.iter().enumerate() {
            let body = match &once {
                Some(body) => body.clone(),
                None => match envelope::encode_as(n, dialect) {
                    Ok(body) => Bytes::from(body),
                    Err(e) => {
                        results.extend(refused_on(&topics[i..], e));
                        break;
                    }
                },
            };
            let topic = self.topic_name(t, n.priority);
            let record = OutgoingRecord { topic, body };
            results.push(self.transport.send_record(record, retry).await);
        }
        results
    }

    /// Send each item on its topics, as one batch.
    async fn send_all(&self, items: &[SinkItem<'_>], retry: Retry) -> Vec<TopicResults> {
        let (records, refused) = self.records(items);
        let mut sent = self.transport.send_batch(records, retry).await.into_iter();
        items
            .iter()
            .zip(refused)
            .map(|(item, refused)| match refused {
                Some(e) => refused_on(item.topics, e),
                None => sent.by_ref().take(item.topics.len()).collect(),
            })
            .collect()
    }
}

/// `error` on each of `topics` (the first gets it, the others a copy of its kind and message).
fn refused_on(topics: &[String], error: Error) -> TopicResults {
    let mut results: TopicResults = topics
        .iter()
        .skip(1)
        .map(|_| Err(Error::new(error.kind().clone(), error.message())))
        .collect();
    if !topics.is_empty() {
        results.insert(0, Err(error));
    }
    results
}

/// Already delivered on each of `topics` (sinks with nothing to acknowledge).
pub(super) fn delivered_on(topics: &[String]) -> TopicResults {
    topics
        .iter()
        .map(|_| Ok(DeliveryReceipt::already_delivered()))
        .collect()
}

/// Writes notifications to the log through `tracing` (`log`), at a level matching the priority.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

#[async_trait]
impl NotificationSink for LogSink {
    async fn emit(
        &self,
        n: &OutgoingNotification,
        topics: &[String],
        _retry: Retry,
    ) -> TopicResults {
        let text = match envelope::encode(n) {
            Ok(body) => String::from_utf8_lossy(&body).into_owned(),
            Err(e) => return refused_on(topics, e),
        };
        let event_type = n.event_type.as_str();
        match n.priority {
            Priority::Debug => {
                tracing::debug!(target: "messaging.notification", event_type, "{text}")
            }
            Priority::Warn => {
                tracing::warn!(target: "messaging.notification", event_type, "{text}")
            }
            Priority::Error | Priority::Critical => {
                tracing::error!(target: "messaging.notification", event_type, "{text}")
            }
            _ => tracing::info!(target: "messaging.notification", event_type, "{text}"),
        }
        delivered_on(topics)
    }
}

/// Discards notifications (`noop`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

#[async_trait]
impl NotificationSink for NoopSink {
    async fn emit(&self, _n: &OutgoingNotification, topics: &[String], _r: Retry) -> TopicResults {
        delivered_on(topics)
    }
}

/// One notification kept by a [`RecordingSink`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedNotification {
    /// Its priority.
    pub priority: Priority,
    /// Its publisher id.
    pub publisher_id: String,
    /// Its event type.
    pub event_type: String,
    /// Its payload.
    pub payload: Value,
    /// Its (sanitized) context.
    pub context: crate::Context,
    /// Its message id.
    pub message_id: String,
    /// The topics it was sent to.
    pub topics: Vec<String>,
}

/// Keeps notifications in memory for assertions in tests (`test`).
#[derive(Debug, Clone, Default)]
pub struct RecordingSink {
    records: Arc<Mutex<Vec<RecordedNotification>>>,
}

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far, in order.
    pub fn records(&self) -> Vec<RecordedNotification> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forget everything recorded.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[async_trait]
impl NotificationSink for RecordingSink {
    async fn emit(&self, n: &OutgoingNotification, topics: &[String], _r: Retry) -> TopicResults {
        let record = RecordedNotification {
            priority: n.priority,
            publisher_id: n.publisher_id.clone(),
            event_type: n.event_type.clone(),
            payload: n.payload_value(),
            context: n.context.clone(),
            message_id: n.message_id.clone(),
            topics: topics.to_vec(),
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
        delivered_on(topics)
    }
}
