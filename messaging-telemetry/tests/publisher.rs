//! The telemetry publisher end to end on the memory transport, and its failure
//! policies through a test driver that fails on demand.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{
    Capabilities, CloseReport, Driver, DriverFactory, OutgoingRecord, PendingDelivery,
    Subscription, SubscriptionSpec,
};
use messaging_core::options::{DriverOptions, OptionSpec};
use messaging_core::{
    DriverRegistry, Error, ErrorKind, HandlerOutcome, Notification, NotificationEndpoint,
    NotificationListener, Priority, Result, Target, Transport, TransportUrl,
};
use messaging_telemetry::publisher::local_hostname;
use messaging_telemetry::signing::verify_signature;
use messaging_telemetry::{CounterType, PublishPolicy, Sample, TelemetryPublisher};
use serde_json::json;
use tokio::sync::mpsc;

const SECRET: &str = "s3cr3t";
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A driver that fails on demand, in front of the memory driver.

/// How the next failures fail.
const FAIL_SEND: u8 = 0; // the send itself fails, transiently
const FAIL_DELIVERY: u8 = 1; // accepted, then the broker's acknowledgement fails
const FAIL_PERMANENT: u8 = 2; // the send fails with an error no retry can fix

#[derive(Debug, Default)]
struct Faults {
    remaining: AtomicU64,
    mode: AtomicU8,
    sends: AtomicU64,
}

impl Faults {
    fn fail_next(&self, n: u64, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.remaining.store(n, Ordering::SeqCst);
    }

    /// Consume one planned failure, if any.
    fn take(&self) -> Option<u8> {
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
            .ok()
            .map(|_| self.mode.load(Ordering::SeqCst))
    }
}

#[derive(Debug)]
struct FlakyFactory {
    faults: Arc<Faults>,
}

impl DriverFactory for FlakyFactory {
    fn scheme(&self) -> &'static str {
        "flaky"
    }

    fn option_specs(&self) -> &'static [OptionSpec] {
        driver_memory::factory().option_specs()
    }

    fn open(&self, url: &TransportUrl, options: DriverOptions) -> Result<Arc<dyn Driver>> {
        let inner = driver_memory::factory().open(url, options)?;
        Ok(Arc::new(FlakyDriver {
            inner,
            faults: self.faults.clone(),
        }))
    }
}

#[derive(Debug)]
struct FlakyDriver {
    inner: Arc<dyn Driver>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Driver for FlakyDriver {
    fn name(&self) -> &str {
        "flaky"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        let mut out = Vec::with_capacity(batch.len());
        for record in batch {
            self.faults.sends.fetch_add(1, Ordering::SeqCst);
            out.push(match self.faults.take() {
                None => self
                    .inner
                    .send_batch(std::slice::from_ref(record))
                    .await
                    .pop()
                    .expect("one outcome"),
                Some(FAIL_SEND) => Err(Error::new(ErrorKind::Transport, "injected: broker down")),
                Some(FAIL_DELIVERY) => Ok(PendingDelivery::Pending(Box::pin(async {
                    Err(Error::new(
                        ErrorKind::Transport,
                        "injected: not acknowledged",
                    ))
                }))),
                Some(_) => Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "injected: record refused for good",
                )),
            });
        }
        out
    }

    async fn subscribe(&self, spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        self.inner.subscribe(spec).await
    }

    async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        self.inner.close(timeout).await
    }
}

struct Fixture {
    registry: DriverRegistry,
    faults: Arc<Faults>,
}

impl Fixture {
    fn new() -> Self {
        let faults = Arc::new(Faults::default());
        let registry = DriverRegistry::new();
        registry.register(driver_memory::factory());
        registry.register(Arc::new(FlakyFactory {
            faults: faults.clone(),
        }));
        Fixture { registry, faults }
    }

    /// A publisher on `flaky://<broker>?…`.
    fn publisher(&self, broker: &str, query: &str) -> TelemetryPublisher {
        TelemetryPublisher::builder(format!("flaky://{broker}?topic=metering&{query}"))
            .registry(&self.registry)
            .secret(SECRET)
            .host("testhost")
            .build()
            .unwrap()
    }

    fn memory(&self, broker: &str) -> Transport {
        Transport::open_with(
            &self.registry,
            &TransportUrl::parse(&format!("memory://{broker}")).unwrap(),
            &[],
        )
        .unwrap()
    }
}

// ---------------------------------------------------------------------------
// Receiving side.

struct Received {
    rx: mpsc::UnboundedReceiver<Arc<Notification>>,
    listener: NotificationListener,
}

impl Received {
    async fn start(transport: &Transport, topic: &str) -> Received {
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = NotificationListener::builder(transport)
            .target(Target::new(topic))
            .endpoint(
                NotificationEndpoint::from_fn(move |n| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(n);
                        Ok(HandlerOutcome::Handled)
                    }
                })
                .priorities([Priority::Sample]),
            )
            .max_concurrency(1)
            .build()
            .unwrap();
        listener.start().await.unwrap();
        Received { rx, listener }
    }

    async fn next(&mut self) -> Arc<Notification> {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a notification in time")
            .expect("listener alive")
    }

    /// Everything that arrives within a short quiet period (checks for extras).
    async fn rest(&mut self) -> Vec<Arc<Notification>> {
        let mut out = Vec::new();
        while let Ok(Some(n)) =
            tokio::time::timeout(Duration::from_millis(200), self.rx.recv()).await
        {
            out.push(n);
        }
        out
    }

    async fn stop(self) {
        self.listener.stop_and_wait().await.unwrap();
    }
}

fn sample(name: &str, volume: u64) -> Sample {
    Sample::builder(name, CounterType::Gauge, "B", volume, format!("res-{name}"))
        .user_id("u-1")
        .project_id("p-1")
        .resource_metadata(
            json!({"host": "compute-1", "flavor": {"vcpus": 2}, "tags": ["a", "ü"]})
                .as_object()
                .unwrap()
                .clone(),
        )
        .build()
}

fn names(n: &Arc<Notification>) -> Vec<String> {
    n.payload
        .to_value()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["counter_name"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn publishes_signed_sample_notifications_on_memory() {
    driver_memory::register();
    let listen = Transport::open("memory://telemetry-basic").unwrap();
    let mut rx = Received::start(&listen, "metering").await;
    assert!(rx.listener.topics().contains(&"metering.sample".to_owned()));

    let publisher = TelemetryPublisher::builder("memory://telemetry-basic?topic=metering")
        .secret(SECRET)
        .host("compute-7")
        .build()
        .unwrap();
    assert_eq!(publisher.publisher_id(), "telemetry.publisher.compute-7");
    let samples = vec![sample("cpu", 1), sample("memory", 512), sample("disk", 3)];
    let report = publisher.publish(&samples).await.unwrap();
    assert_eq!((report.sent_batches, report.sent_samples), (1, 3));

    let n = rx.next().await;
    assert_eq!(n.priority, Priority::Sample);
    assert_eq!(n.publisher_id, "telemetry.publisher.compute-7");
    assert_eq!(n.event_type, "metering");
    assert!(n.context.is_empty());
    let payload = n.payload.to_value().unwrap();
    let payload = payload.as_array().unwrap();
    assert_eq!(payload.len(), 3);
    for (got, sent) in payload.iter().zip(&samples) {
        let got = got.as_object().unwrap();
        assert!(verify_signature(got, SECRET), "signature of {got:?}");
        assert!(!verify_signature(got, "wrong"));
        // Exactly Ceilometer's keys, in Ceilometer's order, and the sample's values.
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "source",
                "counter_name",
                "counter_type",
                "counter_unit",
                "counter_volume",
                "user_id",
                "user_name",
                "project_id",
                "project_name",
                "resource_id",
                "timestamp",
                "resource_metadata",
                "message_id",
                "monotonic_time",
                "message_signature"
            ]
        );
        let mut expected = sent.clone();
        expected.sign(SECRET);
        assert_eq!(Sample::from_map(got.clone()).unwrap(), expected);
        assert_eq!(got["counter_type"], json!("gauge"));
    }
    // The caller's samples were not modified.
    assert!(samples[0].message_signature.is_empty());
    assert!(rx.rest().await.is_empty());
    let c = publisher.counters();
    assert_eq!(
        (c.published_batches, c.published_samples, c.failed_attempts),
        (1, 3, 0)
    );
    rx.stop().await;
    publisher.close(Duration::from_secs(1)).await.unwrap();
    let e = publisher.publish(&samples).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Closed);
}

#[tokio::test]
async fn notifier_url_with_driver_memory_and_default_host() {
    driver_memory::register();
    let listen = Transport::open("memory://telemetry-notifier").unwrap();
    let mut rx = Received::start(&listen, "custom").await;
    let publisher = TelemetryPublisher::builder(
        "notifier://telemetry-notifier?driver=memory&topic=custom&max_retry=3",
    )
    .build()
    .unwrap();
    assert_eq!(
        publisher.url().transport_url().to_string(),
        "memory://telemetry-notifier"
    );
    publisher.publish(&[sample("cpu", 1)]).await.unwrap();
    let n = rx.next().await;
    assert_eq!(
        n.publisher_id,
        format!("telemetry.publisher.{}", local_hostname())
    );
    // No secret: an empty signature, as Ceilometer sends.
    assert_eq!(
        n.payload.to_value().unwrap()[0]["message_signature"],
        json!("")
    );
    rx.stop().await;
}

#[tokio::test]
async fn publisher_keys_never_reach_the_transport_but_others_do() {
    driver_memory::register();
    let ok = TelemetryPublisher::builder(
        "memory://telemetry-keys?topic=t&policy=queue&max_retry=3&max_queue_length=4&per_meter_topic=0&queue_capacity=10",
    )
    .build()
    .unwrap();
    assert_eq!(ok.url().policy(), PublishPolicy::Queue);
    assert_eq!(
        ok.url().transport_url().to_string(),
        "memory://telemetry-keys?queue_capacity=10"
    );

    let e = TelemetryPublisher::builder("memory://telemetry-keys?topic=t&bogus=1")
        .build()
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::InvalidOption {
            key: "bogus".into()
        }
    );
    let e = TelemetryPublisher::builder("memory://telemetry-keys?queue_capacity=none")
        .build()
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::InvalidOption {
            key: "queue_capacity".into()
        }
    );
    let e = TelemetryPublisher::builder("memory://?max_retry=x")
        .build()
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::InvalidOption {
            key: "max_retry".into()
        }
    );
    let e = TelemetryPublisher::builder("nosuch://host?topic=t")
        .build()
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UnknownDriver { .. }), "{e}");
}

#[tokio::test]
async fn per_meter_topic_sends_one_batch_per_meter() {
    driver_memory::register();
    let listen = Transport::open("memory://telemetry-per-meter").unwrap();
    let mut rx = Received::start(&listen, "metering").await;
    let publisher = TelemetryPublisher::builder(
        "memory://telemetry-per-meter?topic=metering&per_meter_topic=1",
    )
    .secret(SECRET)
    .build()
    .unwrap();
    let report = publisher
        .publish(&[sample("mem", 1), sample("cpu", 2), sample("mem", 3)])
        .await
        .unwrap();
    assert_eq!((report.sent_batches, report.sent_samples), (3, 6));
    let got: Vec<(String, Vec<String>)> = [rx.next().await, rx.next().await, rx.next().await]
        .iter()
        .map(|n| (n.event_type.clone(), names(n)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "metering".to_owned(),
                vec!["mem".to_owned(), "cpu".into(), "mem".into()]
            ),
            ("metering.cpu".to_owned(), vec!["cpu".to_owned()]),
            (
                "metering.mem".to_owned(),
                vec!["mem".to_owned(), "mem".into()]
            ),
        ]
    );
    rx.stop().await;
}

#[tokio::test]
async fn default_policy_retries_then_succeeds_once() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-default-ok"), "metering").await;
    let publisher = fx.publisher("flaky-default-ok", "max_retry=5");
    fx.faults.fail_next(3, FAIL_SEND);
    let report = publisher.publish(&[sample("cpu", 1)]).await.unwrap();
    assert_eq!(report.sent_batches, 1);
    let c = publisher.counters();
    assert_eq!(
        (c.failed_attempts, c.retries, c.published_batches),
        (3, 3, 1)
    );
    assert_eq!(fx.faults.sends.load(Ordering::SeqCst), 4);
    assert_eq!(names(&rx.next().await), ["cpu"]);
    assert!(rx.rest().await.is_empty(), "exactly one copy arrives");
    rx.stop().await;
}

#[tokio::test]
async fn default_policy_awaits_the_receipt_and_gives_up_after_max_retry() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-default-fail"), "metering").await;
    let publisher = fx.publisher("flaky-default-fail", "max_retry=2");

    // The transport accepts each attempt; only the acknowledgement fails.
    fx.faults.fail_next(100, FAIL_DELIVERY);
    let e = publisher.publish(&[sample("cpu", 1)]).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::DeliveryFailed, "{e}");
    let c = publisher.counters();
    assert_eq!((c.failed_attempts, c.retries, c.failed_batches), (3, 2, 1));
    assert_eq!(fx.faults.sends.load(Ordering::SeqCst), 3);

    // The failed batch is not kept: the next publish sends only its own.
    fx.faults.fail_next(0, FAIL_SEND);
    publisher.publish(&[sample("mem", 2)]).await.unwrap();
    assert_eq!(names(&rx.next().await), ["mem"]);
    assert!(rx.rest().await.is_empty());
    rx.stop().await;
}

#[tokio::test]
async fn default_policy_does_not_retry_what_no_retry_can_fix() {
    let fx = Fixture::new();
    let publisher = fx.publisher("flaky-default-permanent", "max_retry=50");
    fx.faults.fail_next(1, FAIL_PERMANENT);
    let e = publisher.publish(&[sample("cpu", 1)]).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    assert_eq!(fx.faults.sends.load(Ordering::SeqCst), 1);
    assert_eq!(publisher.counters().retries, 0);
}

#[tokio::test]
async fn queue_policy_keeps_failed_batches_and_sends_them_first_in_order() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-queue"), "metering").await;
    let publisher = fx.publisher("flaky-queue", "policy=queue&max_queue_length=10");

    fx.faults.fail_next(1, FAIL_DELIVERY);
    let r = publisher.publish(&[sample("a", 1)]).await.unwrap();
    assert_eq!(
        (r.sent_batches, r.queued_batches, r.dropped_batches),
        (0, 1, 0)
    );
    // The queue head fails again: the round stops there, nothing is lost.
    fx.faults.fail_next(1, FAIL_SEND);
    let r = publisher.publish(&[sample("b", 2)]).await.unwrap();
    assert_eq!((r.sent_batches, r.queued_batches), (0, 2));
    assert_eq!(publisher.queued_batches().await, 2);
    assert_eq!(publisher.counters().queued_batches, 2);

    let r = publisher
        .publish(&[sample("c", 3), sample("d", 4)])
        .await
        .unwrap();
    assert_eq!(
        (r.sent_batches, r.sent_samples, r.queued_batches),
        (3, 4, 0)
    );
    let order: Vec<Vec<String>> = vec![
        names(&rx.next().await),
        names(&rx.next().await),
        names(&rx.next().await),
    ];
    assert_eq!(order, [vec!["a"], vec!["b"], vec!["c", "d"]]);
    assert!(rx.rest().await.is_empty());
    let c = publisher.counters();
    assert_eq!(
        (c.published_batches, c.failed_attempts, c.dropped_batches),
        (3, 2, 0)
    );
    assert_eq!(c.retries, 2, "a was sent three times, b twice");
    rx.stop().await;
}

#[tokio::test]
async fn queue_policy_drops_the_oldest_beyond_max_queue_length() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-queue-cap"), "metering").await;
    let publisher = fx.publisher("flaky-queue-cap", "policy=queue&max_queue_length=2");

    let mut last = Default::default();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        fx.faults.fail_next(1, FAIL_SEND);
        last = publisher.publish(&[sample(name, i as u64)]).await.unwrap();
    }
    assert_eq!(last.queued_batches, 2);
    let c = publisher.counters();
    assert_eq!(
        (c.dropped_batches, c.dropped_samples, c.queued_batches),
        (2, 2, 2)
    );

    // Recovery: flush sends what is left, oldest first.
    let r = publisher.flush().await.unwrap();
    assert_eq!((r.sent_batches, r.queued_batches), (2, 0));
    assert_eq!(names(&rx.next().await), ["c"]);
    assert_eq!(names(&rx.next().await), ["d"]);
    assert!(rx.rest().await.is_empty());
    rx.stop().await;
}

#[tokio::test]
async fn queue_policy_drops_a_batch_no_retry_can_fix() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-queue-perm"), "metering").await;
    let publisher = fx.publisher("flaky-queue-perm", "policy=queue");
    fx.faults.fail_next(1, FAIL_PERMANENT);
    let r = publisher.publish(&[sample("bad", 1)]).await.unwrap();
    assert_eq!((r.dropped_batches, r.queued_batches), (1, 0));
    publisher.publish(&[sample("good", 1)]).await.unwrap();
    assert_eq!(names(&rx.next().await), ["good"]);
    rx.stop().await;
}

#[tokio::test]
async fn queue_policy_close_flushes_then_reports_what_is_lost() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-queue-close"), "metering").await;
    let publisher = fx.publisher("flaky-queue-close", "policy=queue");
    fx.faults.fail_next(1, FAIL_SEND);
    publisher.publish(&[sample("a", 1)]).await.unwrap();
    // close flushes once: a goes out.
    let report = publisher.close(Duration::from_secs(1)).await.unwrap();
    assert_eq!(report.abandoned_batches, 0);
    assert_eq!(names(&rx.next().await), ["a"]);
    rx.stop().await;

    let publisher = fx.publisher("flaky-queue-close", "policy=queue");
    fx.faults.fail_next(2, FAIL_SEND);
    publisher.publish(&[sample("b", 1)]).await.unwrap();
    let report = publisher.close(Duration::from_secs(1)).await.unwrap();
    assert_eq!(report.abandoned_batches, 1);
    assert_eq!(publisher.counters().dropped_batches, 1);
}

#[tokio::test]
async fn drop_policy_discards_and_counts() {
    let fx = Fixture::new();
    let mut rx = Received::start(&fx.memory("flaky-drop"), "metering").await;
    let publisher = fx.publisher("flaky-drop", "policy=drop&max_retry=50");
    fx.faults.fail_next(1, FAIL_DELIVERY);
    let r = publisher
        .publish(&[sample("lost", 1), sample("lost2", 1)])
        .await
        .unwrap();
    assert_eq!(
        (r.sent_batches, r.dropped_batches, r.dropped_samples),
        (0, 1, 2)
    );
    assert_eq!(
        fx.faults.sends.load(Ordering::SeqCst),
        1,
        "drop does not retry"
    );
    let r = publisher.publish(&[sample("kept", 1)]).await.unwrap();
    assert_eq!((r.sent_batches, r.dropped_batches), (1, 0));
    assert_eq!(names(&rx.next().await), ["kept"]);
    assert!(rx.rest().await.is_empty());
    let c = publisher.counters();
    assert_eq!(
        (c.dropped_batches, c.dropped_samples, c.published_batches),
        (1, 2, 1)
    );
    rx.stop().await;
}

#[tokio::test]
async fn builder_overrides_the_url() {
    let fx = Fixture::new();
    let publisher = TelemetryPublisher::builder("flaky://flaky-override?policy=queue")
        .registry(&fx.registry)
        .policy(PublishPolicy::Drop)
        .max_retry(1)
        .event_type("event")
        .build()
        .unwrap();
    assert_eq!(publisher.url().policy(), PublishPolicy::Drop);
    assert_eq!(publisher.url().max_retry(), 1);
    assert_eq!(publisher.event_type(), "event");
    assert_eq!(publisher.url().topics(), ["metering"]);
}
