//! The process-wide `metrics` recorder and `tracing` subscriber of `bench
//! --observability`: installed once, as an application installs its own (global,
//! for the whole process), and opened or closed between rounds.
//!
//! - [`MetricsGate`] hands out the Prometheus recorder's handles while open and
//!   no-op handles while closed. The core fetches its handles when a transport,
//!   listener or notifier is built, so a round built while the gate is open records
//!   for its whole life, and one built while it is closed records nothing.
//! - [`SpanGate`] passes spans and events to the measured subscriber while open and
//!   reports every span callsite disabled while closed. Warnings and errors go to the
//!   command's log subscriber (stderr, `MESSAGING_LOG`) either way, so the bench is not
//!   silenced.
//!
//! Why global and not thread-local defaults: a span holds the dispatcher it was made
//! under. Under the global one that is a `&'static` reference; under a thread-local
//! default (`tracing::dispatcher::set_default`) it is an `Arc`, whose count every span
//! creation and close changes from both the sending and the handling thread, a cache
//! line bouncing between the cores that no application with a global subscriber pays.

use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata as SpanMetadata, Subscriber};

/// Whether [`MetricsGate`] is open.
pub(crate) static METRICS_OPEN: AtomicBool = AtomicBool::new(false);
/// Whether [`SpanGate`] is open.
pub(crate) static SPANS_OPEN: AtomicBool = AtomicBool::new(false);

/// The global recorder: the Prometheus recorder while open, no-op handles while closed.
pub(crate) struct MetricsGate {
    pub(crate) prometheus: PrometheusRecorder,
}

impl MetricsGate {
    fn is_open(&self) -> bool {
        METRICS_OPEN.load(Ordering::Relaxed)
    }
}

impl Recorder for MetricsGate {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.is_open() {
            self.prometheus.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.is_open() {
            self.prometheus.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.is_open() {
            self.prometheus.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

/// The global subscriber: `spans` (the measured one) while open, nothing but
/// `logs`' events while closed.
pub(crate) struct SpanGate {
    pub(crate) spans: Box<dyn Subscriber + Send + Sync>,
    pub(crate) logs: Box<dyn Subscriber + Send + Sync>,
}

impl SpanGate {
    fn is_open(&self) -> bool {
        SPANS_OPEN.load(Ordering::Relaxed)
    }
}

impl Subscriber for SpanGate {
    fn register_callsite(&self, metadata: &'static SpanMetadata<'static>) -> Interest {
        // Both inner subscribers learn of the callsite; the answer depends on the
        // gate, so it is asked at every use.
        self.spans.register_callsite(metadata);
        self.logs.register_callsite(metadata);
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &SpanMetadata<'_>) -> bool {
        (self.is_open() && self.spans.enabled(metadata))
            || (metadata.is_event() && self.logs.enabled(metadata))
    }

    // Spans exist only while the gate is open, and only in `spans`: every span
    // operation goes there.
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.spans.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.spans.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.spans.record_follows_from(span, follows);
    }

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if self.is_open() && self.spans.enabled(metadata) {
            self.spans.event(event);
        }
        if self.logs.enabled(metadata) {
            self.logs.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.spans.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.spans.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.spans.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.spans.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.spans.current_span()
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.spans.on_register_dispatch(subscriber);
        self.logs.on_register_dispatch(subscriber);
    }
}
