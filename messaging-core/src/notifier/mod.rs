//! The [`Notifier`]: emits notifications through one or more sinks.
//!
//! ```
//! # async fn demo() -> messaging_core::Result<()> {
//! use messaging_core::{Notifier, RecordingSink, Context};
//! use std::sync::Arc;
//! let sink = Arc::new(RecordingSink::new());
//! let notifier = Notifier::builder().publisher_id("compute.host1").sink(sink.clone()).build()?;
//! notifier.info(&Context::new(), "compute.instance.create.end", &serde_json::json!({"id": 1})).await?;
//! assert_eq!(sink.records().len(), 1);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Unlike oslo.messaging, errors are not swallowed: a `notify` returns `Err` when
//! the notification could not be handed to the transport, and the returned
//! [`DeliveryReceipt`] resolves once the broker acknowledged it (or finally failed).

mod outcome;
mod routing;
mod send;
mod sinks;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

pub use outcome::{
    BulkOutcome, BulkReceipt, Destination, NotificationOutcome, NotifyReceipt, PartialFailure,
    Resend,
};
pub use routing::{RoutingRule, RoutingSink};
pub use sinks::{LogSink, MessagingSink, NoopSink, RecordingSink};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::{
    timestamp_now, Context, ContextSanitizer, OutgoingNotification, Payload,
};
use crate::priority::Priority;
use crate::retry::Retry;
use crate::transport::{DeliveryReceipt, Transport};

/// Where a notifier's notifications go (oslo calls these notifier "drivers").
///
/// Every method gives one result per topic, in the order of `topics`: the topic
/// accepted the notification (a receipt for its acknowledgement) or refused it.
/// That lets the notifier report, and resend, per topic.
#[async_trait]
pub trait NotificationSink: Send + Sync + fmt::Debug {
    /// Emit `notification` on every one of `topics`.
    async fn emit(
        &self,
        notification: &OutgoingNotification,
        topics: &[String],
        retry: Retry,
    ) -> TopicResults;

    /// Emit many notifications, each on its own topics: one [`TopicResults`] per
    /// item, in order. The default calls [`NotificationSink::emit`] for each.
    async fn emit_batch(&self, items: &[SinkItem<'_>], retry: Retry) -> Vec<TopicResults> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(self.emit(item.notification, item.topics, retry).await);
        }
        results
    }
}

/// One result per topic: accepted (with a receipt) or refused.
pub type TopicResults = Vec<Result<DeliveryReceipt>>;

/// One notification of a [`NotificationSink::emit_batch`] and the topics it goes to.
#[derive(Debug, Clone, Copy)]
pub struct SinkItem<'a> {
    /// The notification.
    pub notification: &'a OutgoingNotification,
    /// Its topics on this sink.
    pub topics: &'a [String],
}

/// Turns application values into JSON before sending (oslo's serializer hook).
pub trait NotificationSerializer: Send + Sync + fmt::Debug {
    /// Rewrite the context (after secrets were removed).
    fn serialize_context(&self, context: Context) -> Result<Context> {
        Ok(context)
    }
    /// Rewrite the payload.
    fn serialize_payload(&self, payload: Value) -> Result<Value>;
}

#[derive(Debug)]
struct Shared {
    sinks: Vec<Arc<dyn NotificationSink>>,
    topics: Vec<String>,
    serializer: Option<Arc<dyn NotificationSerializer>>,
    sanitizer: ContextSanitizer,
    closed: AtomicBool,
}

/// Emits notifications. Cheap to clone; [`Notifier::prepare`] makes a copy with
/// another publisher id or retry policy that shares the sinks.
#[derive(Debug, Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
    publisher_id: String,
    retry: Retry,
}

/// Builds a [`Notifier`].
#[derive(Debug, Default)]
pub struct NotifierBuilder {
    publisher_id: Option<String>,
    topics: Vec<String>,
    retry: Retry,
    sinks: Vec<Arc<dyn NotificationSink>>,
    serializer: Option<Arc<dyn NotificationSerializer>>,
    sanitizer: Option<ContextSanitizer>,
}

/// The default notification topic.
pub const DEFAULT_TOPIC: &str = "notifications";

impl NotifierBuilder {
    /// The publisher id (e.g. `compute.host1`). Required.
    pub fn publisher_id(mut self, id: impl Into<String>) -> Self {
        self.publisher_id = Some(id.into());
        self
    }

    /// Add a topic (default: `notifications`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Set the topics.
    pub fn topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// The retry policy (default: forever).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Send on a transport (oslo's `messagingv2` driver).
    pub fn transport(self, transport: &Transport) -> Self {
        self.sink(Arc::new(MessagingSink::new(transport.clone())))
    }

    /// Add a sink.
    pub fn sink(mut self, sink: Arc<dyn NotificationSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Add sinks by oslo's driver names: `messaging`, `messagingv2`, `log`, `noop`,
    /// `test`, `routing` (the last needs [`RoutingSink`] built from a rules file, so
    /// it is refused here: add it with [`NotifierBuilder::sink`]).
    pub fn sinks_by_name<S: AsRef<str>>(
        mut self,
        names: impl IntoIterator<Item = S>,
        transport: Option<&Transport>,
    ) -> Result<Self> {
        for name in names {
            self.sinks.push(sink_by_name(name.as_ref(), transport)?);
        }
        Ok(self)
    }

    /// A hook that rewrites context and payload before sending.
    pub fn serializer(mut self, serializer: Arc<dyn NotificationSerializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Which context keys are secrets (default: [`crate::notification::DEFAULT_SECRET_KEYS`]).
    pub fn sanitizer(mut self, sanitizer: ContextSanitizer) -> Self {
        self.sanitizer = Some(sanitizer);
        self
    }

    /// Build the notifier. With no sink at all, notifications go nowhere (`noop`).
    pub fn build(self) -> Result<Notifier> {
        let publisher_id = self.publisher_id.filter(|p| !p.is_empty()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "a notifier needs a publisher_id",
            )
        })?;
        let topics = if self.topics.is_empty() {
            vec![DEFAULT_TOPIC.to_owned()]
        } else {
            self.topics
        };
        Ok(Notifier {
            shared: Arc::new(Shared {
                sinks: self.sinks,
                topics,
                serializer: self.serializer,
                sanitizer: self.sanitizer.unwrap_or_default(),
                closed: AtomicBool::new(false),
            }),
            publisher_id,
            retry: self.retry,
        })
    }
}

/// A sink for one of oslo's notifier driver names.
pub fn sink_by_name(
    name: &str,
    transport: Option<&Transport>,
) -> Result<Arc<dyn NotificationSink>> {
    Ok(match name {
        "messaging" | "messagingv2" => {
            let t = transport.ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, format!("notifier driver {name:?} needs a transport"))
            })?;
            Arc::new(MessagingSink::new(t.clone()))
        }
        "log" => Arc::new(LogSink),
        "noop" => Arc::new(NoopSink),
        "test" => Arc::new(RecordingSink::new()),
        "routing" => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the routing notifier driver needs a rules file: build it with RoutingSink::from_file",
            ))
        }
        other => {
            return Err(Error::invalid_option(
                "driver",
                format!("unknown notifier driver {other:?}; known: messaging, messagingv2, log, noop, test, routing"),
            ))
        }
    })
}

macro_rules! priority_methods {
    ($($(#[$doc:meta])* $name:ident => $priority:expr;)*) => {$(
        $(#[$doc])*
        pub async fn $name<P: Serialize + ?Sized>(&self, context: &Context, event_type: &str, payload: &P) -> Result<NotifyReceipt> {
            self.notify($priority, context, event_type, payload).await
        }
    )*};
}

impl Notifier {
    /// Start building a notifier.
    pub fn builder() -> NotifierBuilder {
        NotifierBuilder::default()
    }

    /// The publisher id.
    pub fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    /// The retry policy.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The topics.
    pub fn topics(&self) -> &[String] {
        &self.shared.topics
    }

    /// A notifier sharing these sinks, with another publisher id and/or retry policy.
    pub fn prepare(&self, publisher_id: Option<&str>, retry: Option<Retry>) -> Notifier {
        Notifier {
            shared: self.shared.clone(),
            publisher_id: publisher_id
                .map(str::to_owned)
                .unwrap_or_else(|| self.publisher_id.clone()),
            retry: retry.unwrap_or(self.retry),
        }
    }

    priority_methods! {
        /// Send an `audit` notification.
        audit => Priority::Audit;
        /// Send a `debug` notification.
        debug => Priority::Debug;
        /// Send an `info` notification.
        info => Priority::Info;
        /// Send a `warn` notification.
        warn => Priority::Warn;
        /// Send a `warn` notification (oslo's alias).
        warning => Priority::Warn;
        /// Send an `error` notification.
        error => Priority::Error;
        /// Send a `critical` notification.
        critical => Priority::Critical;
        /// Send a `sample` notification (metering).
        sample => Priority::Sample;
    }

    /// Send a notification of any priority.
    ///
    /// Returns once every sink accepted it on every topic; the receipt resolves
    /// once every transport acknowledged it. When some topics accepted it and
    /// others refused, the error names those that have it and its source is a
    /// [`PartialFailure`] with the [`Resend`] for the others.
    pub async fn notify<P: Serialize + ?Sized>(
        &self,
        priority: Priority,
        context: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<NotifyReceipt> {
        let notification = self.build_notification(priority, context, event_type, payload)?;
        self.emit_owned(notification).await
    }

    /// Build the notification that [`Notifier::notify`] would send.
    pub fn build_notification<P: Serialize + ?Sized>(
        &self,
        priority: Priority,
        context: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<OutgoingNotification> {
        let context = self.outgoing_context(context)?;
        self.build_with_context(priority, context, event_type, payload)
    }

    /// The context as it goes out: secrets removed, then the serializer's rewrite.
    fn outgoing_context(&self, context: &Context) -> Result<Context> {
        let context = self.shared.sanitizer.sanitize(context);
        match &self.shared.serializer {
            None => Ok(context),
            Some(s) => s.serialize_context(context),
        }
    }

    /// A notification with an already outgoing context (see [`Self::outgoing_context`]).
    fn build_with_context<P: Serialize + ?Sized>(
        &self,
        priority: Priority,
        context: Context,
        event_type: &str,
        payload: &P,
    ) -> Result<OutgoingNotification> {
        let payload = match &self.shared.serializer {
            None => Payload::from_serialize(payload),
            Some(s) => {
                let value = serde_json::to_value(payload)?;
                Payload::from_serialize(&s.serialize_payload(value)?)
            }
        }
        .map_err(|e| {
            Error::new(
                ErrorKind::Serialization,
                format!("payload of {event_type} does not serialize to JSON"),
            )
            .with_source(e)
        })?;
        Ok(OutgoingNotification {
            message_id: uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
            publisher_id: self.publisher_id.clone(),
            event_type: event_type.to_owned(),
            priority,
            payload,
            timestamp: timestamp_now(),
            context,
        })
    }

    /// Send an already built notification through every sink, as
    /// [`Notifier::notify`] does (the receipt keeps a copy of it).
    pub async fn emit(&self, notification: &OutgoingNotification) -> Result<NotifyReceipt> {
        self.emit_owned(notification.clone()).await
    }

    /// Refuse further notifications from this notifier and every prepared copy.
    /// (Close the [`Transport`] to flush what it has queued.)
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}
