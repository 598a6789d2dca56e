//! The telemetry publisher on the Kafka driver, against librdkafka's embedded mock
//! cluster (no broker needed): real produce failures reach the publisher through the
//! delivery receipt, and its `queue` and `default` policies act on them.

use std::sync::Arc;
use std::time::Duration;

use driver_kafka::mock::{ApiKey, RespErr};
use driver_kafka::MockKafka;
use messaging_core::{
    DriverRegistry, ErrorKind, HandlerOutcome, Notification, NotificationEndpoint,
    NotificationListener, Priority, StartPosition, Target, Transport, TransportUrl,
};
use messaging_telemetry::signing::verify_signature;
use messaging_telemetry::{CounterType, Sample, TelemetryPublisher};
use tokio::sync::mpsc;

const SECRET: &str = "s3cr3t";

/// librdkafka gives up on a record after 1 s, so failures show quickly; the mock's
/// consumer groups settle faster with these.
const SETTINGS: &str = "delivery_timeout=1&rdkafka.consumer.session.timeout.ms=6000\
&rdkafka.consumer.heartbeat.interval.ms=500&rdkafka.consumer.topic.metadata.refresh.interval.ms=1000\
&rdkafka.retry.backoff.max.ms=200";

/// The publishers' producer does not retry on its own, so a broker's refusal reaches
/// the publisher as a failure known not to be persisted (retrying it internally until
/// the delivery timeout would make its outcome unknown, and unknown is never resent).
const NO_PRODUCER_RETRIES: &str = "idempotence=false&rdkafka.producer.retries=0";

fn registry() -> DriverRegistry {
    let r = DriverRegistry::new();
    r.register(driver_kafka::factory());
    r
}

fn sample(name: &str) -> Sample {
    Sample::builder(name, CounterType::Gauge, "B", 1u32, "r-1").build()
}

fn unique(what: &str) -> String {
    format!("{what}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_default_policies_on_kafka_produce_failures() {
    let mock = MockKafka::start(1).unwrap();
    let topic = unique("metering");
    mock.create_topic(&format!("{topic}.sample"), 1).unwrap();
    let registry = registry();
    let url = format!(
        "notifier://{}?driver=kafka&topic={topic}&policy=queue&{NO_PRODUCER_RETRIES}&{SETTINGS}",
        mock.bootstrap_servers()
    );
    let publisher = TelemetryPublisher::builder(url)
        .registry(&registry)
        .secret(SECRET)
        .host("mockhost")
        .build()
        .unwrap();
    assert_eq!(publisher.transport().url().driver(), "kafka");

    // Warm up (metadata, producer id).
    assert_eq!(
        publisher
            .publish(&[sample("warm")])
            .await
            .unwrap()
            .sent_batches,
        1
    );

    // The broker refuses every produce: the batch is queued, not lost.
    let refuse = vec![RespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 1000];
    mock.request_errors(ApiKey::Produce, &refuse).unwrap();
    let r = publisher.publish(&[sample("a")]).await.unwrap();
    assert_eq!((r.sent_batches, r.queued_batches), (0, 1), "{r:?}");
    mock.clear_request_errors(ApiKey::Produce).unwrap();

    // Recovered: the queued batch goes first, then the new one.
    let r = publisher.publish(&[sample("b")]).await.unwrap();
    assert_eq!((r.sent_batches, r.queued_batches), (2, 0), "{r:?}");

    // Under `default`, a failure past max_retry is returned to the caller.
    let strict = TelemetryPublisher::builder(format!(
        "kafka://{}?topic={topic}&max_retry=1&{NO_PRODUCER_RETRIES}&{SETTINGS}",
        mock.bootstrap_servers()
    ))
    .registry(&registry)
    .secret(SECRET)
    .build()
    .unwrap();
    strict.publish(&[sample("warm2")]).await.unwrap();
    mock.request_errors(ApiKey::Produce, &refuse).unwrap();
    let e = strict.publish(&[sample("lost")]).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::DeliveryFailed, "{e}");
    assert_eq!(strict.counters().failed_attempts, 2);
    mock.clear_request_errors(ApiKey::Produce).unwrap();

    // What arrived: warm, a, b, warm2, in order, each once and correctly signed.
    let transport = Transport::open_with(
        &registry,
        &TransportUrl::parse(&format!("kafka://{}?{SETTINGS}", mock.bootstrap_servers())).unwrap(),
        &[],
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Notification>>();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new(&topic))
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
        .pool(unique("pool"))
        .start_position(StartPosition::Earliest)
        .max_concurrency(1)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let mut names = Vec::new();
    while names.len() < 4 {
        let n = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("samples arrive")
            .unwrap();
        assert!(n.publisher_id.starts_with("telemetry.publisher."));
        for s in n.payload.to_value().unwrap().as_array().unwrap() {
            assert!(verify_signature(s.as_object().unwrap(), SECRET));
            names.push(s["counter_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(names, ["warm", "a", "b", "warm2"]);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .is_err(),
        "nothing more (the refused batch of the default policy was never stored)"
    );
    listener.stop_and_wait().await.unwrap();
    publisher.close(Duration::from_secs(5)).await.unwrap();
    strict.close(Duration::from_secs(5)).await.unwrap();
    transport.close(Duration::from_secs(5)).await.unwrap();
}
