//! The span constructors: one per operation, the attributes of OpenTelemetry's
//! messaging conventions as fields. The `tracing` macros check the callsite's
//! interest before any field is evaluated, so `otel.name` is formatted only for a
//! span someone records.

use tracing::field::Empty;
use tracing::Span;

use super::TARGET;
use crate::observability::metrics::system_name;

/// The producer span of one notification (or one batch of them) sent to
/// `destination`, the full topic name (the first one when it goes to several).
pub(crate) fn notification_send(
    system: &str,
    destination: &str,
    message_id: Option<&str>,
    batch: Option<usize>,
) -> Span {
    tracing::info_span!(
        target: TARGET,
        "send",
        "otel.name" = %format_args!("{destination} send"),
        "otel.kind" = "producer",
        "messaging.system" = system_name(system),
        "messaging.destination.name" = destination,
        "messaging.operation.name" = "send",
        "messaging.operation.type" = "send",
        "messaging.message.id" = message_id,
        "messaging.batch.message_count" = batch,
    )
}

/// The consumer span the handler of one notification runs in; the root of a new
/// trace until [`super::continue_trace`] gives it the sender's. One span per
/// notification (no separate `receive` span: the listener pushes each record to its
/// handler, so OpenTelemetry's push-based consumer model applies).
pub(crate) fn process(
    system: &str,
    destination: &str,
    group: Option<&str>,
    message_id: &str,
    event_type: &str,
) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "process",
        "otel.name" = %format_args!("{destination} process"),
        "otel.kind" = "consumer",
        "messaging.system" = system_name(system),
        "messaging.destination.name" = destination,
        "messaging.consumer.group.name" = group,
        "messaging.operation.name" = "process",
        "messaging.operation.type" = "process",
        "messaging.message.id" = message_id,
        "event_type" = event_type,
        traceparent = Empty,
    )
}

/// The span a batch handler runs in: a root, linked (see [`super::link`]) to the
/// trace of each notification.
pub(crate) fn process_batch(system: &str, group: Option<&str>, count: usize) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "process",
        "otel.name" = "batch process",
        "otel.kind" = "consumer",
        "messaging.system" = system_name(system),
        "messaging.consumer.group.name" = group,
        "messaging.operation.name" = "process",
        "messaging.operation.type" = "process",
        "messaging.batch.message_count" = count,
    )
}

/// What an RPC client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcOperation {
    Call,
    Cast,
    Fanout,
}

impl RpcOperation {
    fn as_str(self) -> &'static str {
        match self {
            RpcOperation::Call => "call",
            RpcOperation::Cast => "cast",
            RpcOperation::Fanout => "fanout",
        }
    }
}

/// The client span of an RPC request: a child of the caller's current span.
pub(crate) fn rpc_client(
    system: &str,
    topic: &str,
    method: &str,
    namespace: Option<&str>,
    operation: RpcOperation,
) -> Span {
    let op = operation.as_str();
    tracing::info_span!(
        target: TARGET,
        "rpc.client",
        "otel.name" = %format_args!("{topic}.{method} {op}"),
        "otel.kind" = "client",
        "messaging.system" = system_name(system),
        "messaging.destination.name" = topic,
        "messaging.operation.name" = op,
        "messaging.operation.type" = "send",
        "rpc.method" = method,
        "rpc.service" = namespace,
    )
}

/// The server span an RPC method runs in; the root of a new trace until
/// [`super::continue_trace`] gives it the caller's.
pub(crate) fn rpc_server(
    system: &str,
    topic: &str,
    method: &str,
    namespace: Option<&str>,
    message_id: Option<&str>,
) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "rpc.server",
        "otel.name" = %format_args!("{topic}.{method} process"),
        "otel.kind" = "server",
        "messaging.system" = system_name(system),
        "messaging.destination.name" = topic,
        "messaging.operation.name" = "process",
        "messaging.operation.type" = "process",
        "messaging.message.id" = message_id,
        "rpc.method" = method,
        "rpc.service" = namespace,
        traceparent = Empty,
    )
}
