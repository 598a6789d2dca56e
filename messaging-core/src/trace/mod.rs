//! Traces: `tracing` spans for what the core sends, receives and handles, with
//! OpenTelemetry's messaging attributes, and W3C trace context carried in the
//! message context (see docs/observability.md, "Traces").
//!
//! | span | `otel.kind` | `messaging.operation.type` | where |
//! |---|---|---|---|
//! | `send` | producer | `send` | a notification handed to a transport |
//! | `process` | consumer | `process` | the handler of a notification (or batch), in the sender's trace |
//! | `rpc.client` | client | `send` | an RPC call, cast or fanout |
//! | `rpc.server` | server | `process` | an RPC request a server runs |
//!
//! Every span has the target [`TARGET`] and level INFO: a subscriber that wants
//! none filters `messaging_core::trace=off`, and then building a span costs one
//! callsite check (no field is evaluated, no string built).
//!
//! Trace context travels as the context keys [`TRACEPARENT`] and [`TRACESTATE`]
//! (oslo.messaging 18 does the same for RPC; on the AMQP wire they become
//! `_context_traceparent` and `_context_tracestate`). With the cargo feature
//! `opentelemetry`, the producer and client spans are injected there (replacing
//! whatever the application's context held), and a consumer or server span
//! continues the trace it finds, or starts a new one if there is none or it is
//! malformed (logged at debug). Without the feature nothing is injected: an
//! incoming `traceparent` is only recorded as the span's `traceparent` field,
//! and the application's context keeps (and forwards) it as it is.

mod consume;
mod in_span;
mod propagation;
mod spans;

pub(crate) use consume::{process, process_batch, rpc_server};
pub(crate) use in_span::RunInSpan;
use propagation::{continue_trace, link};
pub(crate) use propagation::{inject, traced, traced_all};
pub use propagation::{TRACEPARENT, TRACESTATE};
pub(crate) use spans::{notification_send, rpc_client, RpcOperation};

#[cfg(test)]
mod tests;

/// The `tracing` target of every span of this crate.
pub const TARGET: &str = "messaging_core::trace";
