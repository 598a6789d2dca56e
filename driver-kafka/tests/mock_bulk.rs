//! Bulk send on librdkafka's embedded mock cluster (`kafka+mock://`) with produce
//! errors injected for part of a bulk: the caller learns exactly which notifications
//! failed, resends only those, and the topic then holds every notification once.

use std::collections::BTreeMap;
use std::time::Duration;

use driver_kafka::mock::{ApiKey, RespErr};
use integration_tests::support::{receive_n, unique};
use messaging_core::{
    envelope, Context, Driver, Notifier, Priority, Retry, StartPosition, SubscriptionSpec,
    Transport, TransportUrl,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_for_part_of_a_bulk_then_resend_of_only_those_holds_each_once() {
    // Small produce requests (10 records each) so that the injected errors hit only
    // some of the bulk; no idempotence, so a refused request fails only its records.
    let url = TransportUrl::parse(
        "kafka+mock://?idempotence=false&rdkafka.producer.batch.num.messages=10\
&rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=500",
    )
    .unwrap();
    let driver = driver_kafka::open(&url, &[]).unwrap();
    let t = Transport::from_driver(url, driver.clone());
    let mock = driver.mock_cluster().unwrap().clone();
    let topic = unique("bulk");
    let wire = t.notification_topic(&topic, Priority::Info);
    driver
        .ensure_topics(std::slice::from_ref(&wire))
        .await
        .unwrap();
    let n = Notifier::builder()
        .publisher_id("test.bulk")
        .topic(&topic)
        .retry(Retry::Limited(0))
        .transport(&t)
        .build()
        .unwrap();
    // Metadata in place before faults are injected.
    let warm_up = n
        .info(&Context::new(), "warm.up", &json!({"i": -1}))
        .await
        .unwrap();
    let warm_up_id = warm_up.notification().message_id.clone();
    warm_up.delivered().await.unwrap();

    // Three produce requests are refused by the broker, for good (not retried).
    mock.request_errors(
        ApiKey::Produce,
        &[RespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 3],
    )
    .unwrap();
    const BULK: usize = 100;
    let items = (0..BULK).map(|i| ("compute.instance.exists", json!({"i": i})));
    let outcome = n
        .notify_many(Priority::Info, &Context::new(), items)
        .await
        .unwrap()
        .outcome()
        .await;
    mock.clear_request_errors(ApiKey::Produce).unwrap();
    let failed = outcome.failed_count();
    assert!(
        failed > 0 && failed < BULK,
        "a partial failure, got {failed} of {BULK} failed"
    );
    assert_eq!(
        outcome.unknown_count(),
        0,
        "a refused request is a definite failure"
    );
    let mut expected: Vec<String> = outcome
        .notifications
        .iter()
        .map(|o| o.notification.message_id.clone())
        .collect();
    expected.push(warm_up_id);

    let resend = outcome.resend();
    assert_eq!(resend.pairs(), failed, "exactly the failed ones are resent");
    let again = n.resend(resend).await.unwrap().outcome().await;
    assert!(again.is_delivered(), "{:?}", again.failures().next());

    let sub = driver
        .subscribe(SubscriptionSpec {
            topics: vec![wire],
            pool: Some(unique("pool")),
            start: StartPosition::Earliest,
        })
        .await
        .unwrap();
    let got = receive_n(sub.as_ref(), BULK + 1, Duration::from_secs(60)).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        let id = envelope::decode(&r.body).unwrap().metadata.message_id;
        *counts.entry(id).or_default() += 1;
    }
    let extra = sub.receive(10, Duration::from_millis(500)).await.unwrap();
    assert!(extra.is_empty(), "unexpected records: {}", extra.len());
    expected.sort();
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        expected,
        "every notification"
    );
    assert!(
        counts.values().all(|&c| c == 1),
        "each exactly once: {counts:?}"
    );
    sub.close(Duration::from_secs(10)).await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}
