//! The metric handles the core's types hold: obtained once, when a transport,
//! listener, RPC client or server is built (per destination for the transport, the
//! first time it sends there), so recording an event is a handle call (a branch on
//! an empty handle when no recorder is installed), never a registry lookup.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::metrics::{
    self as m, counter, destination_labels, gauge, histogram, Counter, ErrorCounters, Gauge,
    Histogram, Label, Labels,
};
use crate::error::{Error, ErrorKind, Result};

/// A traffic counter kept both as the snapshot value the counters API reads and
/// as a metric: `fetch_add` and `load` as on an `AtomicU64`, so the call sites of
/// the existing counters record metrics unchanged.
#[derive(Debug, Default)]
pub(crate) struct Counted {
    value: AtomicU64,
    metric: Option<Counter>,
}

impl Counted {
    /// A counter also recorded as `metric`.
    pub(crate) fn new(metric: Counter) -> Self {
        Counted {
            value: AtomicU64::new(0),
            metric: Some(metric),
        }
    }

    /// Add `n` (and record it).
    pub(crate) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        if let Some(metric) = &self.metric {
            metric.increment(n);
        }
        self.value.fetch_add(n, order)
    }

    /// The value counted so far.
    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.value.load(order)
    }
}

/// Seconds since `started`, for a duration histogram.
fn seconds_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// Records the time from its creation to its drop into a histogram.
#[derive(Debug)]
pub(crate) struct Timer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl<'a> Timer<'a> {
    pub(crate) fn start(histogram: &'a Histogram) -> Self {
        Timer {
            histogram,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.record(seconds_since(self.started));
    }
}

/// How many destinations get their own `messaging.destination.name` on one
/// transport; the rest share [`m::OTHER`] (bounds cardinality when topics are
/// made per tenant or per request).
pub(crate) const MAX_DESTINATIONS: usize = 1024;

/// The transport's handles, per destination.
#[derive(Debug)]
pub(crate) struct TransportMetrics {
    driver: String,
    destinations: RwLock<HashMap<String, Arc<SendMetrics>, foldhash::fast::RandomState>>,
}

impl TransportMetrics {
    pub(crate) fn new(driver: &str) -> Self {
        TransportMetrics {
            driver: driver.to_owned(),
            destinations: RwLock::default(),
        }
    }

    /// The handles of `topic` (made the first time).
    pub(crate) fn destination(&self, topic: &str) -> Arc<SendMetrics> {
        if let Some(found) = self
            .destinations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return found.clone();
        }
        let mut all = self.destinations.write().unwrap_or_else(|e| e.into_inner());
        let key = if all.len() < MAX_DESTINATIONS || all.contains_key(topic) {
            topic
        } else {
            m::OTHER
        };
        all.entry(key.to_owned())
            .or_insert_with(|| Arc::new(SendMetrics::new(&self.driver, key)))
            .clone()
    }
}

/// The handles of one destination's sends.
#[derive(Debug)]
pub(crate) struct SendMetrics {
    sent: Counter,
    delivered: Counter,
    retried: Counter,
    outcome_unknown: Counter,
    in_flight: Gauge,
    duration: Histogram,
    failed: ErrorCounters,
    failed_duration: RwLock<HashMap<&'static str, Histogram>>,
    labels: Labels,
}

impl SendMetrics {
    fn new(driver: &str, topic: &str) -> Self {
        let mut labels = destination_labels(driver, topic, None);
        labels.push(Label::new(m::ATTR_OPERATION, m::OP_SEND));
        SendMetrics {
            sent: counter(m::SENT_MESSAGES, &labels),
            delivered: counter(m::TRANSPORT_DELIVERED, &labels),
            retried: counter(m::TRANSPORT_RETRIED, &labels),
            outcome_unknown: counter(m::TRANSPORT_OUTCOME_UNKNOWN, &labels),
            in_flight: gauge(m::TRANSPORT_IN_FLIGHT, &labels),
            duration: histogram(m::OPERATION_DURATION, &labels),
            failed: ErrorCounters::new(m::TRANSPORT_FAILED, labels.clone(), usize::MAX),
            failed_duration: RwLock::default(),
            labels,
        }
    }

    /// The transport accepted the record: sent.
    pub(crate) fn accepted(&self) {
        self.sent.increment(1);
    }

    /// An accepted record waits for the broker's acknowledgement: in flight until
    /// [`SendMetrics::delivered`] or [`SendMetrics::gave_up`].
    pub(crate) fn pending(&self) {
        self.in_flight.increment(1.0);
    }

    /// The broker acknowledged a pending record accepted at `started`.
    pub(crate) fn delivered(&self, started: Instant) {
        self.in_flight.decrement(1.0);
        self.delivered_at_once(started);
    }

    /// The driver reported a record accepted at `started` delivered as it took it
    /// (never in flight).
    pub(crate) fn delivered_at_once(&self, started: Instant) {
        self.delivered.increment(1);
        self.duration.record(seconds_since(started));
    }

    /// The record will not be sent again (`error`: what its receipt reports).
    pub(crate) fn gave_up(&self, error: &Error, started: Instant) {
        self.in_flight.decrement(1.0);
        let kind = m::error_type(error.kind());
        if error.kind() == &ErrorKind::OutcomeUnknown {
            self.outcome_unknown.increment(1);
        } else {
            self.failed.increment(kind);
        }
        self.failed_duration(kind).record(seconds_since(started));
    }

    /// The record was refused before the transport accepted it.
    pub(crate) fn refused(&self, error: &Error) {
        self.failed.increment(m::error_type(error.kind()));
    }

    /// A send repeated after a transient failure.
    pub(crate) fn retried(&self) {
        self.retried.increment(1);
    }

    fn failed_duration(&self, kind: &'static str) -> Histogram {
        if let Some(h) = self
            .failed_duration
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
        {
            return h.clone();
        }
        let mut labels = self.labels.clone();
        labels.push(Label::new(m::ATTR_ERROR_TYPE, kind));
        self.failed_duration
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_insert_with(|| histogram(m::OPERATION_DURATION, &labels))
            .clone()
    }
}

/// The labels of a listener or server: its system, destinations, group.
pub(crate) fn service_labels(driver: &str, destinations: &[&str], group: Option<&str>) -> Labels {
    let mut names: Vec<&str> = destinations.to_vec();
    names.sort_unstable();
    names.dedup();
    destination_labels(driver, &names.join(","), group)
}

/// A listener's histograms (its counters are [`Counted`]).
#[derive(Debug)]
pub(crate) struct ListenerHistograms {
    /// A handler's run.
    pub(crate) process: Histogram,
    /// Notification timestamp to dispatch.
    pub(crate) end_to_end: Histogram,
}

impl Default for ListenerHistograms {
    fn default() -> Self {
        ListenerHistograms {
            process: Histogram::noop(),
            end_to_end: Histogram::noop(),
        }
    }
}

impl ListenerHistograms {
    pub(crate) fn new(labels: &[Label]) -> Self {
        let mut process = labels.to_vec();
        process.push(Label::new(m::ATTR_OPERATION, m::OP_PROCESS));
        ListenerHistograms {
            process: histogram(m::PROCESS_DURATION, &process),
            end_to_end: histogram(m::LISTENER_END_TO_END_LATENCY, labels),
        }
    }

    /// Record the time from the notification's oslo `timestamp` (UTC) to `now`,
    /// when it was received. A timestamp that does not parse is ignored; one in the
    /// future (clock skew) counts as 0.
    pub(crate) fn observe_latency(&self, timestamp: &str, now: chrono::DateTime<chrono::Utc>) {
        if let Some(sent) = crate::notification::parse_timestamp(timestamp) {
            let micros = (now - sent).num_microseconds().unwrap_or(0).max(0);
            self.end_to_end.record(micros as f64 / 1e6);
        }
    }
}

/// An RPC client's handles (shared by its `prepare`d copies).
#[derive(Debug)]
pub(crate) struct RpcClientMetrics {
    calls: Counter,
    casts: Counter,
    timeouts: Counter,
    duration: Histogram,
    remote_errors: ErrorCounters,
}

impl RpcClientMetrics {
    pub(crate) fn new(driver: &str, topic: &str) -> Self {
        let labels = destination_labels(driver, topic, None);
        let mut call = labels.clone();
        call.push(Label::new(m::ATTR_OPERATION, m::OP_CALL));
        RpcClientMetrics {
            calls: counter(m::RPC_CLIENT_CALLS, &labels),
            casts: counter(m::RPC_CLIENT_CASTS, &labels),
            timeouts: counter(m::RPC_CLIENT_TIMEOUTS, &labels),
            duration: histogram(m::OPERATION_DURATION, &call),
            remote_errors: ErrorCounters::new(
                m::RPC_CLIENT_REMOTE_ERRORS,
                labels,
                m::MAX_REMOTE_ERROR_TYPES,
            ),
        }
    }

    /// Run a call, counting it, its duration, and how it failed.
    pub(crate) async fn call<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.calls.increment(1);
        let started = Instant::now();
        let outcome = call.await;
        self.duration.record(seconds_since(started));
        if let Err(e) = &outcome {
            match e.kind() {
                ErrorKind::Timeout => self.timeouts.increment(1),
                ErrorKind::Remote { type_name } => self.remote_errors.increment(type_name),
                kind @ (ErrorKind::NoSuchMethod | ErrorKind::UnsupportedVersion) => {
                    self.remote_errors.increment(m::error_type(kind))
                }
                _ => {}
            }
        }
        outcome
    }

    /// A cast (or fanout cast) is being sent.
    pub(crate) fn cast(&self) {
        self.casts.increment(1);
    }
}
