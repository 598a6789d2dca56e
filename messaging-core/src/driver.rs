//! The driver interface: what a transport must implement.
//!
//! A driver is deliberately thin. It moves opaque, already-encoded records to and
//! from named topics and reports what happened; the portable types in this crate
//! ([`crate::Notifier`], [`crate::NotificationListener`]) own encoding, retries,
//! backpressure waits, batching, dispatch, requeue policy and shutdown.
//!
//! See `docs/writing-a-driver.md` for a walk-through, and the conformance suite in
//! the `integration-tests` crate, which every driver must pass.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

pub mod rpc;

use crate::error::Result;
use crate::options::{DriverOptions, OptionSpec};
use crate::url::TransportUrl;

/// What a driver can do, for callers and for the conformance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// A requeued record is delivered again.
    pub requeue: bool,
    /// A new pool (consumer group) can start from records sent before it subscribed.
    pub replays_history: bool,
    /// The driver implements RPC: [`Driver::rpc`] returns its
    /// [`rpc::RpcDriver`] for every [`rpc::RpcOperation`]. When false, each of them fails with
    /// [`crate::ErrorKind::Unsupported`] without touching the network.
    pub rpc: bool,
    /// Records of one topic (partition) reach one pool member in the order sent.
    pub ordered_per_partition: bool,
    /// The largest record body (encoded notification) the driver accepts. The core
    /// ([`crate::Transport`]) refuses a larger one before it reaches the driver, at
    /// once, with [`crate::ErrorKind::InvalidArgument`] naming
    /// [`Capabilities::max_record_bytes_option`]; not retryable. `None`: no limit.
    pub max_record_bytes: Option<usize>,
    /// The name of the setting that sets [`Capabilities::max_record_bytes`] (memory:
    /// `max_record_bytes`, Kafka: `message.max.bytes`), for the error that refuses a
    /// record too large.
    pub max_record_bytes_option: Option<&'static str>,
    /// How notifications and topic names are written for this transport (see
    /// [`Dialect`]). RPC messages are written the same way whatever the dialect.
    pub dialect: Dialect,
}

/// The wire dialect a driver speaks: the form oslo.messaging's driver for the same
/// broker writes notifications in, and whether the core puts the URL's virtual host
/// into topic names.
///
/// Decoding accepts both forms on every transport; the dialect only chooses what
/// is written. RPC requests and replies do not depend on it: oslo writes them in
/// the AMQP form on every driver (see `docs/rpc.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// oslo's Kafka driver (the memory and Kafka drivers): a notification carries
    /// its context as one `_context` object, and the URL's virtual host is a
    /// `.<vhost>` suffix of every topic name the core builds (notification topics,
    /// [`rpc::RpcAddress::topic`], [`rpc::RpcListenSpec::topic`]).
    #[default]
    Kafka,
    /// oslo's rabbit (AMQP 0-9-1) driver: a notification carries its context as
    /// flat `_context_<key>` keys (one per top-level key, no `_context` object) and
    /// a `_unique_id` (uuid4 hex, new for every message). Topic names get no
    /// virtual-host suffix: the broker has real virtual hosts, and the driver
    /// connects to the URL's ([`crate::TransportUrl::virtual_host`]) itself.
    Amqp,
}

/// One encoded record to send: its full topic name and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// The full topic name (already including the priority, and the virtual host
    /// in the [`Dialect::Kafka`] dialect). Shared: a notifier builds each name once
    /// and every record to it holds the same one.
    pub topic: Arc<str>,
    /// The encoded notification.
    pub body: Bytes,
}

impl OutgoingRecord {
    /// A record of `body` for `topic`.
    pub fn new(topic: impl Into<Arc<str>>, body: Bytes) -> Self {
        OutgoingRecord {
            topic: topic.into(),
            body,
        }
    }
}

/// The transport's acknowledgement of one accepted record, still to come.
#[must_use = "a pending delivery says whether the record reached the broker"]
pub enum PendingDelivery {
    /// The record is already durable as far as this transport goes.
    Delivered,
    /// Resolves when the broker acknowledged (or finally rejected) the record.
    Pending(BoxFuture<'static, Result<()>>),
}

impl Debug for PendingDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PendingDelivery::Delivered => f.write_str("Delivered"),
            PendingDelivery::Pending(_) => f.write_str("Pending"),
        }
    }
}

impl PendingDelivery {
    /// Wait for the outcome.
    pub async fn wait(self) -> Result<()> {
        match self {
            PendingDelivery::Delivered => Ok(()),
            PendingDelivery::Pending(f) => f.await,
        }
    }
}

/// Where a new subscription starts when its pool has no committed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// The driver's configured default (Kafka: `auto_offset_reset`).
    #[default]
    Default,
    /// The oldest record the transport still has.
    Earliest,
    /// Only records sent from now on.
    Latest,
    /// The first record at or after this time, in milliseconds since the Unix epoch.
    Timestamp(i64),
}

/// What a listener asks a driver to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Full topic names (already including the priority, and the virtual host in
    /// the [`Dialect::Kafka`] dialect).
    pub topics: Vec<String>,
    /// The pool (consumer group); `None` uses the driver's default group.
    pub pool: Option<String>,
    /// Where to start without a committed position.
    pub start: StartPosition,
}

/// An opaque handle that names one received record within its subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag(pub u64);

/// One record handed to a listener.
#[derive(Debug, Clone)]
pub struct ReceivedRecord {
    /// Its tag, for [`Subscription::ack`] and [`Subscription::requeue`].
    pub tag: DeliveryTag,
    /// The full topic name it came from (shared: a driver hands out the same name
    /// for every record of a topic).
    pub topic: Arc<str>,
    /// The encoded notification.
    pub body: Bytes,
}

/// A driver's view of one listener's subscription.
///
/// Every method takes `&self` so that acknowledgements can be sent while a
/// `receive` is waiting.
#[async_trait]
pub trait Subscription: Send + Sync + Debug {
    /// Wait up to `wait` for records and return at most `max` (an empty vector on timeout).
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>>;

    /// The records were handled (or skipped): never deliver them to this pool again.
    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()>;

    /// Deliver these records again (to this pool), later.
    async fn requeue(&self, tags: &[DeliveryTag]) -> Result<()>;

    /// Stop: make the acknowledgements durable, hand back what was not acknowledged
    /// to the pool, and leave. Must finish within `timeout`.
    async fn close(&self, timeout: Duration) -> Result<()>;

    /// The records waiting for this subscription on the broker, where the driver
    /// can tell (Kafka: consumer lag summed over the assigned partitions, from the
    /// last statistics; RabbitMQ, memory: messages ready in its queues), for
    /// [`crate::NotificationListener::status`]. Must not block (report the last
    /// known figure). `None` (the default): unknown.
    fn lag(&self) -> Option<u64> {
        None
    }
}

/// What closing a driver achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CloseReport {
    /// Records accepted earlier that could not be delivered before the deadline.
    pub undelivered: u64,
}

/// An open connection to one transport: the part of a driver after it was configured.
#[async_trait]
pub trait Driver: Send + Sync + Debug {
    /// The driver's name (`memory`, `kafka`).
    fn name(&self) -> &str;

    /// What this driver can do.
    fn capabilities(&self) -> Capabilities;

    /// Hand a batch of encoded records to the transport: one outcome per record, in
    /// the batch's order (a single send is a batch of one).
    ///
    /// Returns once the transport *accepted* or refused each record. The core has
    /// already applied the contract's rules (closed transport, record size limit),
    /// and owns retries and backpressure, so a driver sends each record once and
    /// reports, per record:
    ///
    /// * a full local queue at once as [`crate::ErrorKind::ResourceExhausted`]: the
    ///   core waits and sends that record again;
    /// * a failure known to have left the record unpersisted as an error whose
    ///   [`crate::Error::is_retryable`] says whether sending again may help;
    /// * a failure after which the record may or may not be persisted as
    ///   [`crate::ErrorKind::OutcomeUnknown`]: the core never resends it.
    ///
    /// The same applies to each [`PendingDelivery`]'s outcome.
    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>>;

    /// Start receiving the given topics as a member of a pool.
    async fn subscribe(&self, spec: SubscriptionSpec) -> Result<Box<dyn Subscription>>;

    /// Make sure `topics` exist, where the transport needs them created (a no-op by default).
    async fn ensure_topics(&self, _topics: &[String]) -> Result<()> {
        Ok(())
    }

    /// Deliver what is queued (within `timeout`) and release resources.
    async fn close(&self, timeout: Duration) -> Result<CloseReport>;

    /// The connection to the broker, for [`crate::Transport::health`]: keep a
    /// [`ConnectionTracker`](crate::observability::ConnectionTracker) and return its
    /// [`health`](crate::observability::ConnectionTracker::health). Must not block.
    /// The default, for a driver that cannot tell, reports
    /// [`ConnectionState::Unknown`](crate::observability::ConnectionState::Unknown).
    fn health(&self) -> crate::observability::TransportHealth {
        crate::observability::TransportHealth::unknown()
    }

    /// The RPC side of this driver (see [`rpc`]), for `operation`.
    ///
    /// The core's RPC client and server call this before anything else. The
    /// default refuses with [`crate::ErrorKind::Unsupported`], naming the driver and
    /// the operation, and must not touch the network. A driver that overrides it
    /// also sets [`Capabilities::rpc`].
    fn rpc(&self, operation: rpc::RpcOperation) -> Result<std::sync::Arc<dyn rpc::RpcDriver>> {
        Err(crate::Error::unsupported(self.name(), operation.as_str()))
    }
}

/// Creates drivers for one URL scheme; registered in a [`crate::DriverRegistry`].
pub trait DriverFactory: Send + Sync + Debug {
    /// The scheme this factory serves (`memory`, `kafka`), without any `+suffix`.
    fn scheme(&self) -> &'static str;

    /// The options this driver understands (URL query keys and config keys).
    fn option_specs(&self) -> &'static [OptionSpec];

    /// Key prefixes passed through unvalidated to the client library (`rdkafka.`).
    fn passthrough_prefixes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Open a driver. `options` were validated against [`DriverFactory::option_specs`].
    fn open(
        &self,
        url: &TransportUrl,
        options: DriverOptions,
    ) -> Result<std::sync::Arc<dyn Driver>>;
}
