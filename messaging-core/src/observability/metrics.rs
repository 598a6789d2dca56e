//! Every metric the framework records, by name, with its attribute keys: each one
//! declared once here (drivers use these constants too). See the module above for
//! why the `metrics` crate, and `docs/observability.md` for the table.
//!
//! Names from OpenTelemetry's semantic conventions for messaging where one exists
//! (`messaging.client.sent.messages`, `messaging.client.consumed.messages`,
//! `messaging.client.operation.duration`, `messaging.process.duration`); the rest
//! under [`NAMESPACE`]. Durations are in seconds. Attribute values are bounded:
//! driver names, destinations (topics, queues) the application configured,
//! consumer groups, error kinds, and at most [`MAX_REMOTE_ERROR_TYPES`] remote
//! exception types (then [`OTHER`]); never message ids or payload values.

use std::sync::{Arc, Mutex};

use ::metrics::Unit;
pub use ::metrics::{Counter, Gauge, Histogram, Label};

use crate::error::ErrorKind;

/// The namespace of the metrics semantic conventions do not name.
pub const NAMESPACE: &str = "notification_bus";

// ---- attribute keys (OpenTelemetry semantic conventions) ----

/// The transport (driver) name: `memory`, `kafka`, `rabbitmq`.
pub const ATTR_SYSTEM: &str = "messaging.system";
/// The destination: the full topic name (notifications, RPC), the queue (RabbitMQ depth).
pub const ATTR_DESTINATION: &str = "messaging.destination.name";
/// The Kafka partition of a per-partition gauge.
pub const ATTR_PARTITION: &str = "messaging.destination.partition.id";
/// The pool (consumer group) of a listener; the server name of an RPC server.
pub const ATTR_CONSUMER_GROUP: &str = "messaging.consumer.group.name";
/// What was done: `send`, `receive`, `process`, `call`, `cast`.
pub const ATTR_OPERATION: &str = "messaging.operation.name";
/// Why it failed: an [`ErrorKind`] as [`error_type`] writes it, or a remote exception type.
pub const ATTR_ERROR_TYPE: &str = "error.type";
/// A Kafka broker (`host:port`, librdkafka's `nodename`).
pub const ATTR_SERVER: &str = "server.address";
/// Which client of the Kafka driver a librdkafka statistic is from: `producer`,
/// `consumer` (with its group as [`ATTR_CONSUMER_GROUP`]).
pub const ATTR_KAFKA_CLIENT: &str = "notification_bus.kafka.client";

// ---- operation names ----

/// [`ATTR_OPERATION`] of a notification send.
pub const OP_SEND: &str = "send";
/// [`ATTR_OPERATION`] of a record received by a listener.
pub const OP_RECEIVE: &str = "receive";
/// [`ATTR_OPERATION`] of a handler or RPC method run.
pub const OP_PROCESS: &str = "process";
/// [`ATTR_OPERATION`] of an RPC call.
pub const OP_CALL: &str = "call";
/// [`ATTR_OPERATION`] of an RPC cast.
pub const OP_CAST: &str = "cast";

// ---- semantic-convention metrics ----

/// Counter {message}: records the transport accepted for sending.
pub const SENT_MESSAGES: &str = "messaging.client.sent.messages";
/// Counter {message}: records a listener received (decoded or not).
pub const CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";
/// Histogram, seconds: a send from the first hand-over to the broker's final
/// answer (`operation.name` = `send`, `error.type` when it failed), an RPC call
/// from sending to its reply or timeout (`call`).
pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";
/// Histogram, seconds: a notification handler's run (listener), an RPC method's run (server).
pub const PROCESS_DURATION: &str = "messaging.process.duration";

// ---- transport ----

/// Counter {message}: records the broker acknowledged.
pub const TRANSPORT_DELIVERED: &str = "notification_bus.transport.delivered";
/// Counter {message}: records finally not sent (`error.type`): refused at hand-over
/// (too large, closed, queue full past the send timeout) or lost after every retry.
pub const TRANSPORT_FAILED: &str = "notification_bus.transport.failed";
/// Counter {attempt}: sends repeated after a transient delivery failure.
pub const TRANSPORT_RETRIED: &str = "notification_bus.transport.retried";
/// Counter {message}: records whose outcome is unknown (maybe persisted, never resent).
pub const TRANSPORT_OUTCOME_UNKNOWN: &str = "notification_bus.transport.outcome_unknown";
/// Gauge {message}: records accepted whose delivery is not settled yet.
pub const TRANSPORT_IN_FLIGHT: &str = "notification_bus.transport.in_flight";

// ---- listener ----

/// Counter {message}: notifications acknowledged after dispatch.
pub const LISTENER_HANDLED: &str = "notification_bus.listener.handled";
/// Counter {message}: notifications handed back for redelivery.
pub const LISTENER_REQUEUED: &str = "notification_bus.listener.requeued";
/// Counter {failure}: handler errors (`error.type` = `handler`) and panics (`panic`).
pub const LISTENER_HANDLER_FAILURES: &str = "notification_bus.listener.handler_failures";
/// Counter {message}: records skipped (not oslo notifications, unreadable payloads).
pub const LISTENER_SKIPPED: &str = "notification_bus.listener.skipped";
/// Counter {message}: notifications no endpoint took (priority or filter).
pub const LISTENER_FILTERED: &str = "notification_bus.listener.filtered";
/// Counter {message}: skipped records copied to the dead-letter topic.
pub const LISTENER_DEAD_LETTERED: &str = "notification_bus.listener.dead_lettered";
/// Counter {message}: copies to the dead-letter topic that failed (left unacknowledged).
pub const LISTENER_DEAD_LETTER_FAILURES: &str = "notification_bus.listener.dead_letter_failures";
/// Histogram, seconds: from a notification's timestamp (set by its emitter) to its
/// dispatch; includes clock skew between the hosts.
pub const LISTENER_END_TO_END_LATENCY: &str = "notification_bus.listener.end_to_end_latency";

// ---- backlog (drivers) ----

/// Gauge {message}: Kafka consumer lag per topic and partition (librdkafka's
/// statistics, `consumer_lag`), for the consumer group.
pub const CONSUMER_LAG: &str = "notification_bus.consumer.lag";
/// Gauge {message}: messages ready in a queue (RabbitMQ: a passive declare's count;
/// memory: what the pool has not taken yet).
pub const QUEUE_DEPTH: &str = "notification_bus.queue.depth";

// ---- Kafka client statistics (librdkafka) ----

/// Gauge, seconds: a broker's average round-trip time in the last statistics interval.
pub const KAFKA_BROKER_RTT: &str = "notification_bus.kafka.broker.rtt";
/// Gauge {request}: requests waiting to be sent to a broker (`outbuf_cnt`).
pub const KAFKA_BROKER_OUTBUF: &str = "notification_bus.kafka.broker.outbuf_requests";
/// Gauge {request}: requests sent to a broker and waiting for a response (`waitresp_cnt`).
pub const KAFKA_BROKER_WAITRESP: &str = "notification_bus.kafka.broker.waitresp_requests";
/// Gauge {message}: messages in the client's producer queues (`msg_cnt`).
pub const KAFKA_QUEUE_MESSAGES: &str = "notification_bus.kafka.queue.messages";
/// Gauge, bytes: size of the messages in the client's producer queues (`msg_size`).
pub const KAFKA_QUEUE_BYTES: &str = "notification_bus.kafka.queue.bytes";
/// Counter {message}: messages the client transmitted to brokers (`txmsgs`).
pub const KAFKA_TX_MESSAGES: &str = "notification_bus.kafka.tx.messages";
/// Counter {message}: messages the client received from brokers (`rxmsgs`).
pub const KAFKA_RX_MESSAGES: &str = "notification_bus.kafka.rx.messages";

// ---- RPC client ----

/// Counter {call}: RPC calls sent.
pub const RPC_CLIENT_CALLS: &str = "notification_bus.rpc.client.calls";
/// Counter {cast}: RPC casts (and fanout casts) sent.
pub const RPC_CLIENT_CASTS: &str = "notification_bus.rpc.client.casts";
/// Counter {error}: calls answered with a remote error, by its type (`error.type`).
pub const RPC_CLIENT_REMOTE_ERRORS: &str = "notification_bus.rpc.client.remote_errors";
/// Counter {call}: calls that got no reply in time.
pub const RPC_CLIENT_TIMEOUTS: &str = "notification_bus.rpc.client.timeouts";

// ---- RPC server ----

/// Counter {request}: requests received (decoded or not).
pub const RPC_SERVER_RECEIVED: &str = "notification_bus.rpc.server.received";
/// Counter {reply}: replies sent.
pub const RPC_SERVER_REPLIED: &str = "notification_bus.rpc.server.replied";
/// Counter {request}: requests whose method failed, panicked or was not found.
pub const RPC_SERVER_FAILED: &str = "notification_bus.rpc.server.failed";
/// Counter {message}: records that were not RPC requests.
pub const RPC_SERVER_SKIPPED: &str = "notification_bus.rpc.server.skipped";
/// Counter {request}: redelivered requests dropped as duplicates.
pub const RPC_SERVER_DUPLICATES: &str = "notification_bus.rpc.server.duplicates";

/// How many distinct remote exception types get their own `error.type`; the rest
/// are counted as [`OTHER`].
pub const MAX_REMOTE_ERROR_TYPES: usize = 32;
/// The `error.type` of remote exception types past [`MAX_REMOTE_ERROR_TYPES`].
pub const OTHER: &str = "other";

/// Every metric: name, unit, meaning (for [`describe`] and the docs).
const ALL: &[(&str, Kind, Unit, &str)] = &[
    (
        SENT_MESSAGES,
        Kind::Counter,
        Unit::Count,
        "Records the transport accepted for sending",
    ),
    (
        CONSUMED_MESSAGES,
        Kind::Counter,
        Unit::Count,
        "Records a listener received",
    ),
    (
        OPERATION_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Send until the broker's final answer; RPC call until its reply",
    ),
    (
        PROCESS_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Notification handler or RPC method run time",
    ),
    (
        TRANSPORT_DELIVERED,
        Kind::Counter,
        Unit::Count,
        "Records the broker acknowledged",
    ),
    (
        TRANSPORT_FAILED,
        Kind::Counter,
        Unit::Count,
        "Records finally not sent, by error.type",
    ),
    (
        TRANSPORT_RETRIED,
        Kind::Counter,
        Unit::Count,
        "Sends repeated after a transient failure",
    ),
    (
        TRANSPORT_OUTCOME_UNKNOWN,
        Kind::Counter,
        Unit::Count,
        "Records whose outcome is unknown (never resent)",
    ),
    (
        TRANSPORT_IN_FLIGHT,
        Kind::Gauge,
        Unit::Count,
        "Records accepted whose delivery is not settled",
    ),
    (
        LISTENER_HANDLED,
        Kind::Counter,
        Unit::Count,
        "Notifications acknowledged after dispatch",
    ),
    (
        LISTENER_REQUEUED,
        Kind::Counter,
        Unit::Count,
        "Notifications handed back for redelivery",
    ),
    (
        LISTENER_HANDLER_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Handler errors and panics",
    ),
    (
        LISTENER_SKIPPED,
        Kind::Counter,
        Unit::Count,
        "Records skipped (not oslo notifications)",
    ),
    (
        LISTENER_FILTERED,
        Kind::Counter,
        Unit::Count,
        "Notifications no endpoint took",
    ),
    (
        LISTENER_DEAD_LETTERED,
        Kind::Counter,
        Unit::Count,
        "Skipped records copied to the dead-letter topic",
    ),
    (
        LISTENER_DEAD_LETTER_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Failed copies to the dead-letter topic",
    ),
    (
        LISTENER_END_TO_END_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "Notification timestamp to dispatch",
    ),
    (
        CONSUMER_LAG,
        Kind::Gauge,
        Unit::Count,
        "Kafka consumer lag per topic and partition",
    ),
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        Unit::Count,
        "Messages ready in a queue",
    ),
    (
        KAFKA_BROKER_RTT,
        Kind::Gauge,
        Unit::Seconds,
        "Kafka broker average round-trip time",
    ),
    (
        KAFKA_BROKER_OUTBUF,
        Kind::Gauge,
        Unit::Count,
        "Kafka requests waiting to be sent to a broker",
    ),
    (
        KAFKA_BROKER_WAITRESP,
        Kind::Gauge,
        Unit::Count,
        "Kafka requests waiting for a broker's response",
    ),
    (
        KAFKA_QUEUE_MESSAGES,
        Kind::Gauge,
        Unit::Count,
        "Messages in librdkafka's producer queues",
    ),
    (
        KAFKA_QUEUE_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Bytes in librdkafka's producer queues",
    ),
    (
        KAFKA_TX_MESSAGES,
        Kind::Counter,
        Unit::Count,
        "Messages librdkafka transmitted",
    ),
    (
        KAFKA_RX_MESSAGES,
        Kind::Counter,
        Unit::Count,
        "Messages librdkafka received",
    ),
    (
        RPC_CLIENT_CALLS,
        Kind::Counter,
        Unit::Count,
        "RPC calls sent",
    ),
    (
        RPC_CLIENT_CASTS,
        Kind::Counter,
        Unit::Count,
        "RPC casts sent",
    ),
    (
        RPC_CLIENT_REMOTE_ERRORS,
        Kind::Counter,
        Unit::Count,
        "RPC calls answered with a remote error, by type",
    ),
    (
        RPC_CLIENT_TIMEOUTS,
        Kind::Counter,
        Unit::Count,
        "RPC calls without a reply in time",
    ),
    (
        RPC_SERVER_RECEIVED,
        Kind::Counter,
        Unit::Count,
        "RPC requests received",
    ),
    (
        RPC_SERVER_REPLIED,
        Kind::Counter,
        Unit::Count,
        "RPC replies sent",
    ),
    (
        RPC_SERVER_FAILED,
        Kind::Counter,
        Unit::Count,
        "RPC requests that failed",
    ),
    (
        RPC_SERVER_SKIPPED,
        Kind::Counter,
        Unit::Count,
        "Records that were not RPC requests",
    ),
    (
        RPC_SERVER_DUPLICATES,
        Kind::Counter,
        Unit::Count,
        "Duplicate RPC requests dropped",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Describe every metric (unit, meaning) to the installed recorder; call it once
/// after installing the recorder. Optional: metrics are recorded without it.
pub fn describe() {
    for (name, kind, unit, help) in ALL {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(*name, *unit, *help),
            Kind::Gauge => ::metrics::describe_gauge!(*name, *unit, *help),
            Kind::Histogram => ::metrics::describe_histogram!(*name, *unit, *help),
        }
    }
}

/// The `error.type` of an error kind: its variant's name in snake case (bounded).
pub fn error_type(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidUrl => "invalid_url",
        ErrorKind::UnknownDriver { .. } => "unknown_driver",
        ErrorKind::InvalidOption { .. } => "invalid_option",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::Unsupported { .. } => "unsupported",
        ErrorKind::Timeout => "timeout",
        ErrorKind::DeliveryFailed => "delivery_failed",
        ErrorKind::OutcomeUnknown => "outcome_unknown",
        ErrorKind::ResourceExhausted => "resource_exhausted",
        ErrorKind::Decode => "decode",
        ErrorKind::Serialization => "serialization",
        ErrorKind::Closed => "closed",
        ErrorKind::Transport => "transport",
        ErrorKind::Authentication => "authentication",
        ErrorKind::Handler => "handler",
        ErrorKind::Remote { .. } => "remote",
        ErrorKind::NoSuchMethod => "no_such_method",
        ErrorKind::UnsupportedVersion => "unsupported_version",
        ErrorKind::Internal => "internal",
    }
}

/// The `messaging.system` of a driver name (semantic conventions' values where
/// they differ: `rabbit` is `rabbitmq`), on metrics and spans alike.
pub fn system_name(driver: &str) -> &str {
    match driver {
        "rabbit" => "rabbitmq",
        other => other,
    }
}

/// A set of labels, built once per handle owner.
pub type Labels = Vec<Label>;

/// The labels every metric of a destination carries: `messaging.system` (from
/// the driver's name), `messaging.destination.name`, and the consumer group when
/// there is one.
pub fn destination_labels(driver: &str, destination: &str, group: Option<&str>) -> Labels {
    let mut labels = vec![
        Label::new(ATTR_SYSTEM, system_name(driver).to_owned()),
        Label::new(ATTR_DESTINATION, destination.to_owned()),
    ];
    if let Some(group) = group {
        labels.push(Label::new(ATTR_CONSUMER_GROUP, group.to_owned()));
    }
    labels
}

/// A counter of `name` with `labels` (call once per owner, never per event).
pub fn counter(name: &'static str, labels: &[Label]) -> Counter {
    ::metrics::counter!(name, labels.iter())
}

/// A gauge of `name` with `labels` (call once per owner, never per event).
pub fn gauge(name: &'static str, labels: &[Label]) -> Gauge {
    ::metrics::gauge!(name, labels.iter())
}

/// A histogram of `name` with `labels` (call once per owner, never per event).
pub fn histogram(name: &'static str, labels: &[Label]) -> Histogram {
    ::metrics::histogram!(name, labels.iter())
}

/// Counters of one metric split by a bounded `error.type`: each type's handle is
/// obtained the first time it is seen (failures are rare next to successes); past
/// `cap` distinct types, the rest share [`OTHER`].
#[derive(Debug)]
pub struct ErrorCounters {
    name: &'static str,
    labels: Labels,
    cap: usize,
    seen: Mutex<Vec<(String, Counter)>>,
}

impl ErrorCounters {
    /// Counters of `name` with `labels` plus `error.type`, at most `cap` types.
    pub fn new(name: &'static str, labels: Labels, cap: usize) -> Self {
        ErrorCounters {
            name,
            labels,
            cap,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Count one failure of `error_type`.
    pub fn increment(&self, error_type: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = seen.iter().find(|(t, _)| t == error_type) {
            c.increment(1);
            return;
        }
        let key = if seen.len() < self.cap {
            error_type
        } else {
            OTHER
        };
        if let Some((_, c)) = seen.iter().find(|(t, _)| t == key) {
            c.increment(1);
            return;
        }
        let mut labels = self.labels.clone();
        labels.push(Label::new(ATTR_ERROR_TYPE, key.to_owned()));
        let c = counter(self.name, &labels);
        c.increment(1);
        seen.push((key.to_owned(), c));
    }
}

/// A shared [`ErrorCounters`].
pub type SharedErrorCounters = Arc<ErrorCounters>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_past_the_cap_share_other() {
        let c = ErrorCounters::new(RPC_CLIENT_REMOTE_ERRORS, Vec::new(), 2);
        for t in [
            "ValueError",
            "KeyError",
            "ValueError",
            "TypeError",
            "OSError",
        ] {
            c.increment(t);
        }
        let seen = c.seen.lock().unwrap();
        let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(types, ["ValueError", "KeyError", OTHER]);
    }

    #[test]
    fn every_metric_is_described_once_and_error_types_are_snake_case() {
        let mut names: Vec<&str> = ALL.iter().map(|(n, ..)| *n).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name declared twice");
        assert_eq!(error_type(&ErrorKind::DeliveryFailed), "delivery_failed");
        assert_eq!(system_name("rabbit"), "rabbitmq");
    }
}
