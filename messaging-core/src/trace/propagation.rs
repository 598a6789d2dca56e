//! W3C trace context in the message context: injected by producer and client
//! spans, extracted by consumer and server spans. With the `opentelemetry`
//! feature this goes through the SDK's W3C `TraceContextPropagator` (always that
//! one, not the application's global propagator: the wire format is what oslo
//! writes, whatever else the application propagates); without it, see
//! [`super`].

use tracing::Span;

use crate::notification::{Context, OutgoingNotification};

/// The context key of the W3C `traceparent` (`_context_traceparent` on the AMQP wire).
pub const TRACEPARENT: &str = "traceparent";
/// The context key of the W3C `tracestate` (`_context_tracestate` on the AMQP wire).
pub const TRACESTATE: &str = "tracestate";

/// `notification` with `span`'s trace context in its context, or `None` when
/// there is nothing to inject (no OpenTelemetry trace, or the feature is off):
/// the caller then sends the notification as it is, without a copy.
pub(crate) fn traced(
    span: &Span,
    notification: &OutgoingNotification,
) -> Option<OutgoingNotification> {
    let mut context = None;
    inject_with(span, || context.insert(notification.context.clone()));
    context.map(|context| OutgoingNotification {
        context,
        ..notification.clone()
    })
}

/// [`traced`] for each of `notifications`: `None` when there is nothing to inject.
pub(crate) fn traced_all<'a>(
    span: &Span,
    notifications: impl ExactSizeIterator<Item = &'a OutgoingNotification>,
) -> Option<Vec<OutgoingNotification>> {
    let mut copies = Vec::with_capacity(notifications.len());
    for n in notifications {
        copies.push(traced(span, n)?);
    }
    Some(copies)
}

/// Put `span`'s trace context into `context` (replacing any there).
pub(crate) fn inject(span: &Span, context: &mut Context) {
    inject_with(span, || context);
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use serde_json::Value;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::{TRACEPARENT, TRACESTATE};
    use crate::notification::Context;

    struct Writer<'a>(&'a mut Context);

    impl Injector for Writer<'_> {
        fn set(&mut self, key: &str, value: String) {
            // oslo (Python's propagator) leaves out an empty tracestate.
            if !value.is_empty() {
                self.0.insert(key.to_owned(), Value::String(value));
            }
        }
    }

    struct Reader<'a>(&'a Context);

    impl Extractor for Reader<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(Value::as_str)
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }

    pub(super) fn inject_with<'a>(span: &Span, context: impl FnOnce() -> &'a mut Context) {
        if span.is_disabled() {
            return;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            // No OpenTelemetry layer: the application's context goes as it is.
            return;
        }
        let context = context();
        context.remove(TRACESTATE);
        TraceContextPropagator::new().inject_context(&cx, &mut Writer(context));
    }

    /// The remote span context of `context`'s trace context, if it is well formed.
    fn extract(context: &Context) -> Option<opentelemetry::trace::SpanContext> {
        let traceparent = context.get(TRACEPARENT)?;
        let cx = TraceContextPropagator::new().extract(&Reader(context));
        let remote = cx.span().span_context().clone();
        if remote.is_valid() {
            Some(remote)
        } else {
            tracing::debug!(%traceparent, "ignoring a malformed traceparent in a message context: a new trace starts");
            None
        }
    }

    /// Continue in `span` (a consumer or server span not entered yet) the trace
    /// whose context `context` carries; a missing or malformed one leaves `span`
    /// the root of a new trace (malformed: a debug line).
    pub(crate) fn continue_trace(span: &Span, context: &Context) {
        if span.is_disabled() {
            return;
        }
        if let Some(remote) = extract(context) {
            let parent = opentelemetry::Context::new().with_remote_span_context(remote);
            // Fails only without an OpenTelemetry layer, where there is no trace to continue.
            let _ = span.set_parent(parent);
        }
    }

    /// Link `span` (a batch's span, not entered yet) to the trace `context` carries.
    pub(crate) fn link(span: &Span, context: &Context) {
        if span.is_disabled() {
            return;
        }
        if let Some(remote) = extract(context) {
            span.add_link(remote);
        }
    }
}

#[cfg(not(feature = "opentelemetry"))]
mod otel {
    use serde_json::Value;
    use tracing::Span;

    use super::TRACEPARENT;
    use crate::notification::Context;

    pub(super) fn inject_with<'a>(_span: &Span, _context: impl FnOnce() -> &'a mut Context) {}

    /// Record the `traceparent` of `context` on `span` (nothing interprets it).
    pub(crate) fn continue_trace(span: &Span, context: &Context) {
        if span.is_disabled() {
            return;
        }
        if let Some(traceparent) = context.get(TRACEPARENT).and_then(Value::as_str) {
            span.record(TRACEPARENT, traceparent);
        }
    }

    /// Nothing to link without OpenTelemetry.
    pub(crate) fn link(_span: &Span, _context: &Context) {}
}

use otel::inject_with;
pub(crate) use otel::{continue_trace, link};
