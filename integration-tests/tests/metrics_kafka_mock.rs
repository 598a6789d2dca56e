//! Metrics and health on the Kafka driver against librdkafka's embedded mock
//! cluster (`kafka+mock://`, no broker needed): the counts of the memory test, plus
//! gauges from librdkafka's statistics (consumer lag per partition, broker
//! round-trip time), the listener's lag in its status, and a connected transport.

use std::time::Duration;

use integration_tests::metrics::{self as seen, counter, gauges};
use integration_tests::support::{eventually, unique};
use messaging_core::observability::metrics as m;
use messaging_core::observability::ConnectionState;
use messaging_core::{Priority, Transport};

/// As in the mock conformance run (quick groups), with statistics every 200 ms.
const SETTINGS: &str = "create_topics=true&statistics_interval=0.2\
&rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=500\
&rdkafka.consumer.topic.metadata.refresh.interval.ms=1000&rdkafka.retry.backoff.max.ms=200";

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_mock_counts_and_statistics_gauges() {
    seen::install();
    driver_kafka::register();
    let t = Transport::open(&format!("kafka+mock://?{SETTINGS}")).unwrap();
    let topic = unique("kafka-metrics");
    let listener = seen::notify_and_count(&t, &topic, 10).await;
    let kafka = [(m::ATTR_SYSTEM, "kafka")];
    assert!(counter(m::SENT_MESSAGES, &kafka) >= 10);

    let full = t.notification_topic(&topic, Priority::Info);
    let lag_labels = [kafka[0], (m::ATTR_DESTINATION, full.as_str())];
    let lag = || gauges(m::CONSUMER_LAG, &lag_labels);
    assert!(
        eventually(PATIENCE, || !lag().is_empty()).await,
        "a consumer lag gauge per partition; seen:\n{}",
        seen::dump()
    );
    let (labels, _) = &lag()[0];
    assert!(
        labels.iter().any(|(k, _)| k == m::ATTR_PARTITION),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|(k, _)| k == m::ATTR_CONSUMER_GROUP),
        "{labels:?}"
    );
    assert!(
        eventually(PATIENCE, || listener.status().lag.is_some()).await,
        "the listener's status carries the lag"
    );
    assert!(
        eventually(PATIENCE, || !gauges(m::KAFKA_BROKER_RTT, &kafka).is_empty()).await,
        "broker round-trip time from the statistics"
    );
    assert!(eventually(PATIENCE, || t.health().state == ConnectionState::Connected).await);
    assert!(t.health().is_connected());
    listener.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();
}
