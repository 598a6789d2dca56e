//! Reading the metrics a test produced: a small recorder on `metrics-util`'s
//! atomic [`Registry`] (its reads leave the values alone, unlike the
//! `DebuggingRecorder`'s snapshots, which reset counters and gauges), installed
//! as the process's global recorder before any transport is opened, as the docs
//! ask; queries by metric name and a subset of labels. Tests keep apart by using
//! their own destinations.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

#[derive(Clone)]
struct TestRecorder(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

fn registry() -> &'static Registry<Key, AtomicStorage> {
    static REGISTRY: OnceLock<TestRecorder> = OnceLock::new();
    &REGISTRY
        .get_or_init(|| {
            let recorder = TestRecorder(Arc::new(Registry::atomic()));
            metrics::set_global_recorder(recorder.clone())
                .unwrap_or_else(|_| panic!("another global metrics recorder in this test binary"));
            recorder
        })
        .0
}

/// Install the test recorder (call first, before opening transports).
pub fn install() {
    registry();
}

fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

fn label_pairs(key: &Key) -> Vec<(String, String)> {
    key.labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The sum of the counters named `name` whose labels include `labels`.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut sum = 0;
    registry().visit_counters(|key, c| {
        if matches(key, name, labels) {
            sum += c.load(Ordering::Acquire);
        }
    });
    sum
}

/// The gauges named `name` whose labels include `labels`, with all their labels.
pub fn gauges(name: &str, labels: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
    let mut out = Vec::new();
    registry().visit_gauges(|key, g| {
        if matches(key, name, labels) {
            out.push((label_pairs(key), f64::from_bits(g.load(Ordering::Acquire))));
        }
    });
    out
}

/// How many samples the histograms named `name` whose labels include `labels` got.
pub fn histogram_samples(name: &str, labels: &[(&str, &str)]) -> usize {
    let mut n = 0;
    registry().visit_histograms(|key, h| {
        if matches(key, name, labels) {
            n += h.data().len();
        }
    });
    n
}

/// Every counter and gauge seen so far, for a failing test's message.
pub fn dump() -> String {
    let mut lines = Vec::new();
    registry().visit_counters(|key, c| {
        lines.push(format!(
            "counter {} {:?} = {}",
            key.name(),
            label_pairs(key),
            c.load(Ordering::Acquire)
        ));
    });
    registry().visit_gauges(|key, g| {
        lines.push(format!(
            "gauge {} {:?} = {}",
            key.name(),
            label_pairs(key),
            f64::from_bits(g.load(Ordering::Acquire))
        ));
    });
    lines.sort();
    lines.join("\n")
}

/// One end-to-end run for the metrics tests of every driver: a listener in its
/// own pool on `topic`, `n` notifications sent and awaited, then the metrics must
/// count `n` sent, delivered, received and handled, and the histograms `n`
/// samples each. Returns the listener, still running.
pub async fn notify_and_count(
    t: &messaging_core::Transport,
    topic: &str,
    n: usize,
) -> messaging_core::NotificationListener {
    use messaging_core::observability::metrics as m;
    use messaging_core::{
        Context, NotificationListener, Notifier, Priority, Retry, StartPosition, Target,
    };
    let patience = std::time::Duration::from_secs(60);
    let got = crate::support::Collector::new();
    let listener = NotificationListener::builder(t)
        .target(Target::new(topic))
        .pool(crate::support::unique("metrics-pool"))
        .start_position(StartPosition::Earliest)
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let notifier = Notifier::builder()
        .publisher_id("metrics")
        .topic(topic)
        .retry(Retry::Limited(3))
        .transport(t)
        .build()
        .unwrap();
    for i in 0..n {
        let payload = serde_json::json!({ "i": i });
        let receipt = notifier
            .info(&Context::new(), "metrics.test", &payload)
            .await;
        receipt.unwrap().delivered().await.unwrap();
    }
    let sent_to = t.notification_topic(topic, Priority::Info);
    let send = [(m::ATTR_DESTINATION, sent_to.as_str())];
    let listen = [(m::ATTR_DESTINATION, topic)];
    let handled = || counter(m::LISTENER_HANDLED, &listen) == n as u64;
    assert!(
        crate::support::eventually(patience, handled).await,
        "handled: {}",
        counter(m::LISTENER_HANDLED, &listen)
    );
    assert_eq!(got.len(), n);
    assert_eq!(counter(m::SENT_MESSAGES, &send), n as u64);
    assert_eq!(counter(m::TRANSPORT_DELIVERED, &send), n as u64);
    assert_eq!(counter(m::TRANSPORT_FAILED, &send), 0);
    assert_eq!(counter(m::CONSUMED_MESSAGES, &listen), n as u64);
    let send_op = [send[0], (m::ATTR_OPERATION, m::OP_SEND)];
    assert_eq!(histogram_samples(m::OPERATION_DURATION, &send_op), n);
    let in_flight = gauges(m::TRANSPORT_IN_FLIGHT, &send);
    assert_eq!(in_flight.iter().map(|(_, v)| *v).sum::<f64>(), 0.0);
    let process = [listen[0], (m::ATTR_OPERATION, m::OP_PROCESS)];
    assert_eq!(histogram_samples(m::PROCESS_DURATION, &process), n);
    assert_eq!(
        histogram_samples(m::LISTENER_END_TO_END_LATENCY, &listen),
        n
    );
    assert_eq!(listener.counters().handled, n as u64);
    listener
}
