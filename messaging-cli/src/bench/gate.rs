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
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata as SpanMetadata, Subscriber};

/// Whether [`MetricsGate`] is open: change it through [`set_metrics_open`].
static METRICS_OPEN: AtomicBool = AtomicBool::new(false);
/// Whether [`SpanGate`] is open: change it through [`set_spans_open`].
static SPANS_OPEN: AtomicBool = AtomicBool::new(false);

/// Open or close [`MetricsGate`]: handles fetched afterwards record (open) or are
/// no-ops (closed).
pub(crate) fn set_metrics_open(open: bool) {
    METRICS_OPEN.store(open, Ordering::Relaxed);
}

/// Open or close [`SpanGate`], and have every callsite ask it again (as when an
/// application installs its subscriber), so that a closed gate costs a callsite's
/// cached "never" and an open one what the measured subscriber costs alone.
pub(crate) fn set_spans_open(open: bool) {
    if SPANS_OPEN.swap(open, Ordering::Relaxed) != open {
        tracing::callsite::rebuild_interest_cache();
    }
}

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
        // Asked again at every gate change ([`set_spans_open`]), so the answer is what an
        // application's own subscriber would give: cached by the callsite, never a
        // per-use `enabled` call that an application does not pay.
        let spans = self.spans.register_callsite(metadata);
        let logs = self.logs.register_callsite(metadata);
        let spans = if self.is_open() {
            spans
        } else {
            Interest::never()
        };
        let logs = if metadata.is_event() {
            logs
        } else {
            Interest::never()
        };
        if spans.is_never() && logs.is_never() {
            Interest::never()
        } else if spans.is_sometimes() || logs.is_sometimes() {
            Interest::sometimes()
        } else {
            // Always for one and never or always for the other: `event` asks each.
            Interest::always()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let logs = self.logs.max_level_hint();
        if !self.is_open() {
            return logs;
        }
        Some(self.spans.max_level_hint()?.max(logs?))
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
