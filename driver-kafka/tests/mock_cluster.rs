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
/// sent. The core does not resend such a record (its outcome is unknown), so the
/// warm-up goes to a throw-away topic and sends again itself until one copy is
/// delivered (a copy too many there checks nothing).
async fn warm_up_producer(driver: &KafkaDriver, t: &Transport) {
    let topic = unique("warm-up");
    driver
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..30 {
        let sent = t
            .send(&topic, Bytes::from_static(b"warm-up"), Retry::Limited(30))
            .await
            .unwrap()
            .delivered()
            .await;
        match sent {
            Ok(_) => return,
            Err(e) if e.kind() == &ErrorKind::OutcomeUnknown => last = Some(e),
            Err(e) => panic!("the warm-up record failed: {e:?}"),
        }
    }
    panic!("the producer delivered no first record in 30 sends: {last:?}");
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
    // The warm-up may itself have timed out (and sent again) on a busy machine.
    let before = t.counters();
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
    assert_eq!(
        (
            c.retried - before.retried,
            c.outcome_unknown - before.outcome_unknown,
            c.delivery_failed - before.delivery_failed
        ),
        (0, 1, 0)
    );
    // The broker was down throughout: record 1 is not there, and was not resent.
    let sub = subscribe_from_earliest(&driver, &topic).await;
    let got = receive_n(sub.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.iter().map(body_index).collect::<Vec<_>>(), vec![0]);
    assert_nothing_more(sub.as_ref()).await;
    sub.close(Duration::from_secs(10)).await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}

/// A listener on `topic` in `pool`, from the earliest record, that records into
/// `seen` and copies what it skips to `dlq` with the `retry` budget.
async fn dead_lettering_listener(
    t: &Transport,
    topic: &str,
    (dlq, retry): (&str, Retry),
    pool: &str,
    seen: &Seen,
) -> NotificationListener {
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
        .pool(pool)
        .start_position(StartPosition::Earliest)
        .dead_letter_topic(dlq)
        .dead_letter_retry(retry)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    listener
}

/// A dead-letter topic holding "0" and a source topic holding a foreign record
/// ("junk") followed by notifications 0..`after`, all delivered before any fault.
async fn foreign_record_then_notifications(
    driver: &KafkaDriver,
    t: &Transport,
    after: i64,
) -> (Arc<driver_kafka::MockKafka>, String, String) {
    let (mock, dlq) = topic_with_first_record(driver, t, "dlq").await;
    let topic = unique("dlq-src");
    let wire = t.notification_topic(&topic, Priority::Info);
    driver
        .ensure_topics(std::slice::from_ref(&wire))
        .await
        .unwrap();
    t.send(&wire, Bytes::from_static(b"junk"), Retry::Limited(3))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    let n = notifier(t, &topic, Retry::Limited(3));
    for i in 0..after {
        n.info(&Context::new(), "after", &json!({ "i": i }))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
    }
    (mock, dlq, topic)
}

/// The dead-letter topic's records, from the first, as text.
async fn dead_letter_bodies(driver: &KafkaDriver, dlq: &str, n: usize) -> Vec<String> {
    let sub = subscribe_from_earliest(driver, dlq).await;
    let got = receive_n(sub.as_ref(), n, Duration::from_secs(30)).await;
    assert_nothing_more(sub.as_ref()).await;
    sub.close(Duration::from_secs(10)).await.unwrap();
    got.iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// Wait up to 60 s for `done` to hold of the listener's counters.
async fn counters_until(
    listener: &NotificationListener,
    done: impl Fn(&messaging_core::ListenerCounters) -> bool,
) -> messaging_core::ListenerCounters {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = listener.counters();
        if done(&c) || tokio::time::Instant::now() >= deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Produce errors while a skipped record is copied to the dead-letter topic: the
/// transport retries the copy while the listener goes on handling what follows the
/// record; the record is acknowledged once the copy is confirmed, and the copy is
/// there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dead_letter_copy_is_retried_without_stalling_the_listener() {
    let (driver, t) = mock("&delivery_timeout=1&idempotence=false&rdkafka.producer.retries=0");
    let (mock, dlq, topic) = foreign_record_then_notifications(&driver, &t, 5).await;
    let errors = vec![RespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 2000];
    mock.request_errors(ApiKey::Produce, &errors).unwrap();

    let seen = Seen::default();
    let pool = unique("pool");
    let listener =
        dead_lettering_listener(&t, &topic, (&dlq, Retry::Limited(60)), &pool, &seen).await;
    let handled = seen.wait_for(5, Duration::from_secs(30)).await;
    assert_eq!(
        handled.len(),
        5,
        "handled while the copy fails: {handled:?}"
    );
    let c = listener.counters();
    assert_eq!(
        (c.skipped, c.dead_lettered, c.dead_letter_failures),
        (1, 0, 0),
        "the copy is still being retried: {c:?}"
    );
    mock.clear_request_errors(ApiKey::Produce).unwrap();
    let c = counters_until(&listener, |c| c.dead_lettered == 1).await;
    assert_eq!((c.dead_lettered, c.dead_letter_failures), (1, 0), "{c:?}");
    assert!(t.counters().retried >= 1, "{:?}", t.counters());
    listener.stop_and_wait().await.unwrap();
    assert_eq!(dead_letter_bodies(&driver, &dlq, 2).await, ["0", "junk"]);

    // Acknowledged once copied: the pool's next member gets nothing of it.
    let next = dead_lettering_listener(&t, &topic, (&dlq, Retry::Limited(0)), &pool, &seen).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(next.counters().received, 0, "{:?}", next.counters());
    next.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}

/// A copy that still fails after its retry budget leaves the skipped record
/// unacknowledged and counted, never lost: the pool's next member gets it again
/// and copies it once the broker takes records again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_copy_that_keeps_failing_leaves_the_record_for_the_next_member() {
    let (driver, t) = mock("&delivery_timeout=1&idempotence=false&rdkafka.producer.retries=0");
    let (mock, dlq, topic) = foreign_record_then_notifications(&driver, &t, 1).await;
    let errors = vec![RespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 2000];
    mock.request_errors(ApiKey::Produce, &errors).unwrap();

    let seen = Seen::default();
    let pool = unique("pool");
    let first = dead_lettering_listener(&t, &topic, (&dlq, Retry::Limited(1)), &pool, &seen).await;
    let c = counters_until(&first, |c| c.dead_letter_failures == 1).await;
    assert_eq!(
        (c.skipped, c.dead_lettered, c.dead_letter_failures),
        (1, 0, 1),
        "{c:?}"
    );
    first.stop_and_wait().await.unwrap();
    mock.clear_request_errors(ApiKey::Produce).unwrap();

    let again = Seen::default();
    let next = dead_lettering_listener(&t, &topic, (&dlq, Retry::Limited(10)), &pool, &again).await;
    let c = counters_until(&next, |c| c.dead_lettered == 1).await;
    assert_eq!(
        (c.skipped, c.dead_lettered, c.dead_letter_failures),
        (1, 1, 0),
        "the record came back and was copied: {c:?}"
    );
    // Kafka commits only a contiguous prefix, so notification 0 (after the record
    // left unacknowledged) comes back too: handled at least once in all, at most
    // once by each member.
    assert_eq!(seen.snapshot().get(&0), Some(&1));
    assert!(again.snapshot().get(&0).copied().unwrap_or(0) <= 1);
    next.stop_and_wait().await.unwrap();
    assert_eq!(dead_letter_bodies(&driver, &dlq, 2).await, ["0", "junk"]);
    t.close(Duration::from_secs(5)).await.unwrap();
}
