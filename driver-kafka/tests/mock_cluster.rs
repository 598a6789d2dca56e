//! The Kafka driver on librdkafka's embedded mock cluster: no broker needed.
//!
//! The driver's part of the contract (round trip, requeue, hand-back of unacknowledged
//! records, the size limit, start positions...) is the conformance suite's, which runs
//! on `kafka+mock://` in `integration-tests/tests/conformance_kafka_mock.rs`. What stays
//! here is Kafka-specific: fault injection (brokers down, produce errors, a full local
//! queue) and a record with no value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use driver_kafka::mock::{ApiKey, RespErr};
use driver_kafka::{ClientRole, KafkaDriver};
use integration_tests::support::{index_of, init_tracing, receive_n, unique};
use messaging_core::{
    Context, Driver, ErrorKind, HandlerOutcome, Notification, NotificationEndpoint,
    NotificationListener, Notifier, OutgoingRecord, Priority, ReceivedRecord, Retry, StartPosition,
    Subscription, SubscriptionSpec, Target, Transport, TransportUrl,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

/// Client settings that keep the mock's groups quick (see docs/test-broker notes).
const FAST: &str =
    "rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=500\
&rdkafka.consumer.topic.metadata.refresh.interval.ms=1000&rdkafka.retry.backoff.max.ms=200";

fn mock(extra: &str) -> (Arc<KafkaDriver>, Transport) {
    init_tracing();
    let url = TransportUrl::parse(&format!("kafka+mock://?{FAST}{extra}")).unwrap();
    let driver = driver_kafka::open(&url, &[]).unwrap();
    let transport = Transport::from_driver(url, driver.clone());
    (driver, transport)
}

/// Records each handled notification's index, and how often each index was seen.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<i64, usize>>>);

impl Seen {
    fn add(&self, n: &Notification) -> usize {
        let i = index_of(n).expect("every notification here carries an integer \"i\"");
        let mut m = self.0.lock().unwrap();
        let c = m.entry(i).or_default();
        *c += 1;
        *c
    }
    fn snapshot(&self) -> HashMap<i64, usize> {
        self.0.lock().unwrap().clone()
    }
    async fn wait_for(&self, distinct: usize, timeout: Duration) -> HashMap<i64, usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if s.len() >= distinct || tokio::time::Instant::now() >= deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A started listener on `topic`, in a pool of its own, that records into `seen`.
async fn counting_listener(t: &Transport, topic: &str, seen: &Seen) -> NotificationListener {
    let seen = seen.clone();
    let listener = NotificationListener::builder(t)
        .target(Target::new(topic))
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let seen = seen.clone();
            async move {
                seen.add(&n);
                Ok(HandlerOutcome::Handled)
            }
        }))
        .pool(unique("pool"))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    listener
}

fn notifier(t: &Transport, topic: &str, retry: Retry) -> Notifier {
    Notifier::builder()
        .publisher_id("test.mock")
        .topic(topic)
        .retry(retry)
        .transport(t)
        .build()
        .unwrap()
}

/// A Kafka record with no value at all (a tombstone, which the core's send path
/// cannot produce, so the conformance suite's foreign-record case does not cover it)
/// is skipped and counted; the notifications around it arrive once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_a_value_is_skipped_and_counted() {
    let (driver, t) = mock("");
    let topic = unique("null");
    let seen = Seen::default();
    let listener = counting_listener(&t, &topic, &seen).await;
    let n = notifier(&t, &topic, Retry::Limited(3));
    n.info(&Context::new(), "before", &json!({"i": 0}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    let wire = t.notification_topic(&topic, Priority::Info);
    let raw: FutureProducer = driver
        .client_config(&ClientRole::Producer)
        .unwrap()
        .create()
        .unwrap();
    raw.send(FutureRecord::<(), [u8]>::to(&wire), Duration::from_secs(30))
        .await
        .unwrap();
    n.info(&Context::new(), "after", &json!({"i": 1}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    let got = seen.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "both notifications arrived: {got:?}");
    assert!(got.values().all(|c| *c == 1), "no duplicates: {got:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while listener.counters().skipped < 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listener.counters().skipped, 1, "{:?}", listener.counters());
    listener.stop_and_wait().await.unwrap();
    assert_eq!(
        t.close(Duration::from_secs(5)).await.unwrap().undelivered,
        0
    );
}

fn body_index(r: &ReceivedRecord) -> i64 {
    std::str::from_utf8(&r.body).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_down_and_up_mid_stream_loses_nothing() {
    let (driver, t) = mock("");
    let mock = driver.mock_cluster().unwrap().clone();
    let topic = unique("outage");
    let seen = Seen::default();
    let listener = counting_listener(&t, &topic, &seen).await;
    let n = notifier(&t, &topic, Retry::Forever);
    let mut receipts = Vec::new();
    for i in 0..60 {
        if i == 20 {
            // Wait until the listener is consuming, then take every broker down.
            seen.wait_for(10, Duration::from_secs(30)).await;
            mock.broker_down(-1).unwrap();
        }
        if i == 40 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            mock.broker_up(-1).unwrap();
        }
        receipts.push(
            n.info(&Context::new(), "e", &json!({"i": i}))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for r in receipts {
        r.delivered().await.unwrap();
    }
    let got = seen.wait_for(60, Duration::from_secs(60)).await;
    let missing: Vec<i64> = (0..60).filter(|i| !got.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost across the outage: {missing:?}");
    listener.stop_and_wait().await.unwrap();
    let report = t.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.undelivered, 0);
    assert_eq!(t.counters().delivery_failed, 0);
}

/// Wait until the transport's producer has delivered a record, whatever its
/// `delivery_timeout`: then its idempotent producer id is assigned and the broker
/// connection is up.
///
/// A fresh idempotent producer holds its first record until librdkafka's producer-id
/// state machine has an id, and that machine re-checks on a 500 ms timer. If the
/// leader's connection is up by the first tick the first record takes ~0.5 s; on a
/// busy machine it often is not, and the record waits for the second tick, ~1.0 s:
/// with `delivery_timeout=1` it then times out (`MessageTimedOut`) before it was ever
/// sent. So the warm-up goes to a throw-away topic with the core retrying until one
/// copy is delivered (a copy too many there checks nothing).
async fn warm_up_producer(driver: &KafkaDriver, t: &Transport) {
    let topic = unique("warm-up");
    driver
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    t.send(&topic, Bytes::from_static(b"warm-up"), Retry::Limited(30))
        .await
        .unwrap()
        .delivered()
        .await
        .expect("the producer delivers a first record within 30 retries");
}

/// A fresh topic on the driver's mock cluster holding record "0": metadata and the
/// producer id are in place before faults are injected.
async fn topic_with_first_record(
    driver: &KafkaDriver,
    t: &Transport,
    what: &str,
) -> (Arc<driver_kafka::MockKafka>, String) {
    let mock = driver.mock_cluster().unwrap().clone();
    warm_up_producer(driver, t).await;
    let topic = unique(what);
    driver
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    t.send(&topic, Bytes::from_static(b"0"), Retry::Limited(0))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    (mock, topic)
}

/// A subscription of a new pool to `topic`, from its first record.
async fn subscribe_from_earliest(driver: &KafkaDriver, topic: &str) -> Box<dyn Subscription> {
    driver
        .subscribe(SubscriptionSpec {
            topics: vec![topic.to_owned()],
            pool: Some(unique("pool")),
            start: StartPosition::Earliest,
        })
        .await
        .unwrap()
}

async fn assert_nothing_more(sub: &dyn Subscription) {
    let extra = sub.receive(10, Duration::from_millis(500)).await.unwrap();
    assert!(extra.is_empty(), "unexpected records: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_retried_by_the_core_or_reported() {
    // librdkafka does not retry (so a broker's refusal reaches the core as what it is,
    // not as a timeout, whose outcome would be unknown) and gives up on a record after
    // 1 s; the core's retry decides what follows.
    let (driver, t) = mock("&delivery_timeout=1&idempotence=false&rdkafka.producer.retries=0");
    let (mock, topic) = topic_with_first_record(&driver, &t, "perr").await;

    // retry=0: the receipt reports the failure, typed and retryable.
    let errors = vec![RespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 500];
    mock.request_errors(ApiKey::Produce, &errors).unwrap();
    let failed = t
        .send(&topic, Bytes::from_static(b"1"), Retry::Limited(0))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap_err();
    assert_eq!(failed.kind(), &ErrorKind::DeliveryFailed, "{failed}");
    assert_eq!(t.counters().delivery_failed, 1);

    // retry=10: the core sends again until the errors stop.
    let receipt = t
        .send(&topic, Bytes::from_static(b"2"), Retry::Limited(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    mock.clear_request_errors(ApiKey::Produce).unwrap();
    receipt.delivered().await.unwrap();
    assert!(t.counters().retried >= 1, "{:?}", t.counters());

    let sub = subscribe_from_earliest(&driver, &topic).await;
    let got = receive_n(sub.as_ref(), 2, Duration::from_secs(30)).await;
    // Record 1 was reported lost; every other record is there once.
    assert_eq!(got.iter().map(body_index).collect::<Vec<_>>(), vec![0, 2]);
    assert_nothing_more(sub.as_ref()).await;
    sub.close(Duration::from_secs(10)).await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}

/// Transient produce errors that librdkafka retries itself (records pipelined behind
/// the failing request): every record is reported delivered, and is there once, in order.
///
/// On the mock cluster this depends on the driver's `kafka+mock://` producer keeping one
/// request in flight (see `KafkaConfig::with_mock_cluster`): the mock does not check an
/// idempotent producer's sequence numbers, and with 5 requests in flight about one round
/// in ten lost the first record after the errors although it was reported delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_produce_errors_lose_nothing_and_duplicate_nothing() {
    let (driver, t) = mock("&delivery_timeout=60");
    let (mock, topic) = topic_with_first_record(&driver, &t, "transient").await;
    const ROUNDS: i64 = 10;
    const PER_ROUND: i64 = 20;
    let transient = [RespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3];
    for round in 0..ROUNDS {
        mock.request_errors(ApiKey::Produce, &transient).unwrap();
        let first = 1 + round * PER_ROUND;
        let mut receipts = Vec::new();
        for i in first..first + PER_ROUND {
            // retry=0: only librdkafka's own retries are at work.
            receipts.push(
                t.send(&topic, Bytes::from(i.to_string()), Retry::Limited(0))
                    .await
                    .unwrap(),
            );
        }
        for r in receipts {
            r.delivered().await.unwrap();
        }
    }
    assert_eq!(t.counters().delivery_failed, 0, "{:?}", t.counters());
    let sub = subscribe_from_earliest(&driver, &topic).await;
    let total = (1 + ROUNDS * PER_ROUND) as usize;
    let got: Vec<i64> = receive_n(sub.as_ref(), total, Duration::from_secs(30))
        .await
        .iter()
        .map(body_index)
        .collect();
    let expected: Vec<i64> = (0..total as i64).collect();
    assert_eq!(got, expected, "lost, duplicated or reordered");
    assert_nothing_more(sub.as_ref()).await;
    sub.close(Duration::from_secs(10)).await.unwrap();
    let report = t.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.undelivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_backpressure_and_close_reports_the_undelivered() {
    // A local queue of one record, held back by a 300 ms linger.
    let (driver, t) = mock("&linger=0.3&rdkafka.producer.queue.buffering.max.messages=1");
    let topic = unique("queue");
    let send_one = |body: &'static [u8]| {
        let batch = [OutgoingRecord::new(topic.clone(), Bytes::from_static(body))];
        let driver = driver.clone();
        async move { driver.send_batch(&batch).await.pop().expect("one outcome") }
    };
    let first = send_one(b"a").await.unwrap();
    let full = send_one(b"b").await.unwrap_err();
    assert_eq!(full.kind(), &ErrorKind::ResourceExhausted, "{full}");
    // The core waits for room, then the record goes out.
    t.send(&topic, Bytes::from_static(b"b"), Retry::Limited(0))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    first.wait().await.unwrap();

    // With the brokers down, close gives up at its deadline and counts what is left.
    let (driver, t) = mock("");
    let topic = unique("undelivered");
    driver
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    t.send(&topic, Bytes::from_static(b"warm-up"), Retry::Limited(0))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    driver.mock_cluster().unwrap().broker_down(-1).unwrap();
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(
            t.send(&topic, Bytes::from(i.to_string()), Retry::Forever)
                .await
                .unwrap(),
        );
    }
    let report = t.close(Duration::from_millis(500)).await.unwrap();
    assert_eq!(report.undelivered, 3);
    for r in receipts {
        let e = r.delivered().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::DeliveryFailed, "{e}");
    }
    assert_eq!(t.counters().delivery_failed, 3);
}

/// A delivery timeout on the (default) idempotent producer: the record may be
/// persisted without an acknowledgement, so the receipt says `OutcomeUnknown` and the
/// core does not send it again, whatever its retry allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_timeout_is_outcome_unknown_and_never_resent() {
    let (driver, t) = mock("&delivery_timeout=1");
    let (mock, topic) = topic_with_first_record(&driver, &t, "timeout").await;
    mock.broker_down(1).unwrap();
    let receipt = t
        .send(&topic, Bytes::from_static(b"1"), Retry::Forever)
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), receipt.delivered())
        .await
        .expect("the receipt never resolved")
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::OutcomeUnknown, "{e}");
    assert!(!e.is_retryable());
    assert!(
        e.to_string().contains("timed out"),
        "the driver's cause is kept: {e}"
    );
    mock.broker_up(1).unwrap();
    // A resend would show in the counters (and then as a second copy).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = t.counters();
    assert_eq!((c.retried, c.outcome_unknown, c.delivery_failed), (0, 1, 0));
    // The broker was down throughout: record 1 is not there, and was not resent.
    let sub = subscribe_from_earliest(&driver, &topic).await;
    let got = receive_n(sub.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.iter().map(body_index).collect::<Vec<_>>(), vec![0]);
    assert_nothing_more(sub.as_ref()).await;
    sub.close(Duration::from_secs(10)).await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}
