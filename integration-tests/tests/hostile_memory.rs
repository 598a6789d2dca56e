//! The hostile records of the user guide's table on the memory driver (no broker
//! needed): each between two valid notifications, written raw with
//! `Transport::send`; every valid notification is delivered exactly once, each
//! hostile record is skipped and counted (or delivered, where it is valid oslo),
//! and the listener goes on. The real-broker version is in `kafka_hostile.rs`.

use std::time::Duration;

use bytes::Bytes;
use integration_tests::hostile::{hostile_records, run_hostile_table, TEN_MB};
use integration_tests::support::unique;
use messaging_core::{ErrorKind, Notifier, Retry, Transport};

/// Room for the 10 MB records: the memory driver's default limit is Kafka's
/// default `message.max.bytes` (1,000,000).
const LIMIT: usize = 16 * 1024 * 1024;

fn transport(extra: &str) -> Transport {
    driver_memory::register();
    Transport::open(&format!("memory://{}?{extra}", unique("hostile"))).unwrap()
}

fn notifier(t: &Transport) -> Notifier {
    Notifier::builder()
        .publisher_id("hostile.test")
        .topic("unused")
        .transport(t)
        .build()
        .unwrap()
}

/// Send `value` raw (a null value is an empty body: memory records always have one).
async fn send_raw(t: &Transport, wire: &str, value: Option<Vec<u8>>) {
    t.send(
        wire,
        Bytes::from(value.unwrap_or_default()),
        Retry::Limited(0),
    )
    .await
    .expect("accepted")
    .delivered()
    .await
    .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_record_is_skipped_or_delivered_and_the_listener_goes_on() {
    integration_tests::support::init_tracing();
    let t = transport(&format!("max_record_bytes={LIMIT}"));
    let records = hostile_records(&notifier(&t), TEN_MB);
    let report = run_hostile_table(
        &t,
        &unique("topic"),
        records,
        None,
        Duration::from_secs(60),
        |wire, r| {
            let t = t.clone();
            async move { send_raw(&t, &wire, r.value).await }
        },
    )
    .await;
    assert!(report.skipped > 30, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_hostile_records_are_dead_lettered_and_the_listener_goes_on() {
    integration_tests::support::init_tracing();
    let t = transport(&format!("max_record_bytes={LIMIT}"));
    let records = hostile_records(&notifier(&t), TEN_MB);
    let dlq = unique("dead");
    run_hostile_table(
        &t,
        &unique("topic"),
        records,
        Some(&dlq),
        Duration::from_secs(60),
        |wire, r| {
            let t = t.clone();
            async move { send_raw(&t, &wire, r.value).await }
        },
    )
    .await;
}

/// With the default limit, a 10 MB record is refused at the sender with a typed,
/// not retryable error naming the setting: it never reaches a listener.
#[tokio::test]
async fn a_ten_mb_record_is_refused_under_the_default_limit() {
    let t = transport("");
    let err = t
        .send(
            "anything",
            Bytes::from(vec![b'x'; TEN_MB]),
            Retry::Limited(0),
        )
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(err.kind(), &ErrorKind::InvalidArgument, "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("max_record_bytes"), "{err}");
}
