//! The spans of a listener and of an RPC server, continuing the sender's trace.

use tracing::Span;

use super::{continue_trace, link, spans};
use crate::notification::{Context, Notification};

/// The `process` span a notification's handler runs in, in the sender's trace.
pub(crate) fn process(system: &str, topic: &str, pool: Option<&str>, n: &Notification) -> Span {
    let span = spans::process(system, topic, pool, &n.metadata.message_id, &n.event_type);
    continue_trace(&span, &n.context);
    span
}

/// The `process` span of a batch handler, linked to each notification's trace.
pub(crate) fn process_batch<'a>(
    system: &str,
    pool: Option<&str>,
    batch: impl ExactSizeIterator<Item = &'a Notification>,
) -> Span {
    let span = spans::process_batch(system, pool, batch.len());
    if !span.is_disabled() {
        for n in batch {
            link(&span, &n.context);
        }
    }
    span
}

/// The `rpc.server` span a request runs in, in the caller's trace.
pub(crate) fn rpc_server(
    system: &str,
    topic: &str,
    method: &str,
    namespace: Option<&str>,
    message_id: Option<&str>,
    context: &Context,
) -> Span {
    let span = spans::rpc_server(system, topic, method, namespace, message_id);
    continue_trace(&span, context);
    span
}
