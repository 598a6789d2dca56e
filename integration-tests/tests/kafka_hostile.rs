//! The hostile records of the user guide's table on a real Kafka-protocol broker:
//! an rdkafka producer of the test's own (not the framework's) writes to a
//! listener's wire topic a valid notification, then each hostile record (null
//! value, key and headers included), each followed by another valid notification.
//! Every valid notification is delivered exactly once, every hostile record is
//! skipped and counted (or delivered, where it is valid oslo), and the listener
//! still handles a notification sent after all of them.
//!
//! Large values: the table's "large value" rows are 4 MiB here
//! ([`LARGE_ON_A_BROKER`]), four times librdkafka's default `message.max.bytes`
//! (the raw producer raises it, as a hostile producer could) and the listener's
//! `kafka_max_fetch_bytes` (its consumer still reads them: a record larger than the
//! fetch size is returned alone). 10 MB records get tests of their own, because
//! brokers differ: Kafka refuses them at its default `message.max.bytes` (1 MB),
//! Tansu 0.6 accepts them but never serves them (it caps every fetch response at
//! 5 MiB, and the partition stays at that offset); the framework's own producer
//! refuses them before sending, with a typed error.
//!
//! The broker: `KAFKA_BOOTSTRAP_SERVERS` (e.g. `scripts/tansu.sh start`), else
//! Docker; without one the tests are skipped with a note, or fail when
//! `MESSAGING_REQUIRE_BROKER=1`.

mod kafka_support;

use std::time::Duration;

use bytes::Bytes;
use integration_tests::hostile::{
    hostile_records, run_hostile_table, valid, RawRecord, LARGE_ON_A_BROKER, TEN_MB,
};
use integration_tests::support::{runtime, Collector};
use messaging_core::{
    envelope, Context, ErrorKind, NotificationListener, Notifier, Priority, Retry, StartPosition,
    Target,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::value::RawValue;

use kafka_support::{eventually, unique};

/// The raw producer's `message.max.bytes`: room for the 10 MB records.
const RAW_MESSAGE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// An rdkafka producer with the driver's client settings for `servers`, and room
/// for 10 MB records.
fn raw_producer(servers: &str) -> FutureProducer {
    let url = kafka_support::url(servers, "");
    let mut config = driver_kafka::client_config(&url, &[], &driver_kafka::ClientRole::Producer)
        .expect("producer config");
    config.set("message.max.bytes", RAW_MESSAGE_MAX_BYTES.to_string());
    config.create().expect("raw producer")
}

/// Write one record exactly as given and wait for the broker's acknowledgement.
async fn produce(producer: &FutureProducer, topic: &str, r: RawRecord) {
    let size = r.value.as_ref().map_or(0, Vec::len);
    if let Err(e) = try_produce(producer, topic, r).await {
        panic!("the broker refused a record of {size} bytes: {e}");
    }
}

/// Write one record exactly as given: the broker's acknowledgement or refusal.
async fn try_produce(
    producer: &FutureProducer,
    topic: &str,
    r: RawRecord,
) -> Result<(), KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(value) = &r.value {
        record = record.payload(value.as_slice());
    }
    if let Some(key) = &r.key {
        record = record.key(key.as_slice());
    }
    if !r.headers.is_empty() {
        let mut headers = OwnedHeaders::new();
        for (name, value) in &r.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        record = record.headers(headers);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

#[test]
fn every_hostile_record_on_a_real_broker_is_skipped_or_delivered_and_the_listener_goes_on() {
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return;
    };
    kafka_support::init_tracing();
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "");
        let topic = unique("hostile");
        // Brokers such as Tansu never create topics on produce.
        t.ensure_topics(&[t.notification_topic(&topic, Priority::Info)])
            .await
            .expect("topic created");
        let notifier = Notifier::builder()
            .publisher_id("hostile.test")
            .topic(&topic)
            .transport(&t)
            .build()
            .unwrap();
        let records = hostile_records(&notifier, LARGE_ON_A_BROKER);
        let kafka_only = records
            .iter()
            .filter(|r| r.record.value.is_none() || r.record.key.is_some())
            .count();
        assert!(
            kafka_only >= 3,
            "the null value and the keyed records are in the table"
        );
        let producer = raw_producer(&servers);
        let report = run_hostile_table(
            &t,
            &topic,
            records,
            None,
            Duration::from_secs(120),
            |wire, r| {
                let producer = producer.clone();
                async move { produce(&producer, &wire, r).await }
            },
        )
        .await;
        eprintln!("kafka_hostile: {report:?}");
        t.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// The framework's own producer, at librdkafka's default `message.max.bytes`,
/// refuses a 10 MB record before sending it: a typed, not retryable error naming
/// the setting to raise (`rdkafka.producer.message.max.bytes`).
#[test]
fn the_framework_producer_refuses_a_ten_mb_record_with_a_typed_error() {
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return;
    };
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "");
        let topic = unique("hostile-big");
        let err = t
            .send(&topic, Bytes::from(vec![b'x'; TEN_MB]), Retry::Limited(0))
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(err.kind(), &ErrorKind::InvalidArgument, "{err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("message.max.bytes"), "{err}");
        t.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// A 10 MB notification written raw (`message.max.bytes` raised on the producer),
/// then a small one: what happens depends on the broker, and the test says which.
/// Kafka at its default `message.max.bytes` refuses it (`MessageSizeTooLarge`);
/// a broker that takes and serves it delivers both; Tansu 0.6 takes it but never
/// serves it (fetch responses capped at 5 MiB), so the listener never receives
/// it nor anything after it on that partition, and stays running.
#[test]
fn a_ten_mb_record_on_a_real_broker_is_refused_served_or_reported() {
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return;
    };
    kafka_support::init_tracing();
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "");
        let topic = unique("hostile-10mb");
        let wire = t.notification_topic(&topic, Priority::Info);
        t.ensure_topics(std::slice::from_ref(&wire))
            .await
            .expect("topic created");
        let notifier = Notifier::builder()
            .publisher_id("hostile.test")
            .topic(&topic)
            .transport(&t)
            .build()
            .unwrap();
        let got = Collector::new();
        let listener = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(unique("pool"))
            .start_position(StartPosition::Earliest)
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        listener.start().await.unwrap();
        let payload = format!("\"{}\"", "x".repeat(TEN_MB));
        let big = notifier
            .build_notification(
                Priority::Info,
                &Context::new(),
                "ten_mb",
                &RawValue::from_string(payload.clone()).unwrap(),
            )
            .unwrap();
        let producer = raw_producer(&servers);
        match try_produce(
            &producer,
            &wire,
            RawRecord::value(envelope::encode(&big).unwrap()),
        )
        .await
        {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                eprintln!(
                    "kafka_hostile: this broker refuses a 10 MB record (MessageSizeTooLarge)"
                );
            }
            Err(e) => panic!("the broker refused a 10 MB record with an unexpected error: {e}"),
            Ok(()) => {
                produce(&producer, &wire, RawRecord::value(valid(&notifier, 1))).await;
                let served = eventually(Duration::from_secs(30), || got.len() >= 2).await;
                let all = got.all();
                if served {
                    assert_eq!(all.len(), 2, "each once");
                    assert_eq!(all[0].event_type, "ten_mb");
                    assert_eq!(all[0].payload.json().len(), payload.len());
                    eprintln!("kafka_hostile: this broker took and served a 10 MB record");
                } else {
                    // Tansu 0.6: accepted, never served; the partition waits at it.
                    assert!(
                        all.is_empty(),
                        "{} delivered past the big record",
                        all.len()
                    );
                    assert_eq!(listener.counters().received, 0, "{:?}", listener.counters());
                    eprintln!(
                        "kafka_hostile: this broker took a 10 MB record but never serves it \
                         (Tansu 0.6 caps fetch responses at 5 MiB): the partition stays at it"
                    );
                }
            }
        }
        listener
            .stop_and_wait()
            .await
            .expect("the listener stops cleanly");
        t.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// A skipped record larger than the listener's own producer limit cannot be copied
/// to the dead-letter topic: the copy is refused (not retried) and the record stays
/// unacknowledged and counted, while the listener goes on; with
/// `rdkafka.producer.message.max.bytes` raised (as `docs/kafka.md` advises), the
/// same record is copied and acknowledged.
#[test]
fn a_skipped_record_too_large_to_dead_letter_stays_unacknowledged_until_the_limit_is_raised() {
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return;
    };
    kafka_support::init_tracing();
    runtime().block_on(async {
        let topic = unique("hostile-dlq");
        let dlq = unique("hostile-dead");
        let admin = kafka_support::transport(&servers, "");
        let wire = admin.notification_topic(&topic, Priority::Info);
        admin
            .ensure_topics(&[wire.clone(), dlq.clone()])
            .await
            .expect("topics created");
        let notifier = Notifier::builder()
            .publisher_id("hostile.test")
            .topic(&topic)
            .transport(&admin)
            .build()
            .unwrap();
        let producer = raw_producer(&servers);
        produce(
            &producer,
            &wire,
            RawRecord::value(vec![b'x'; 2 * 1024 * 1024]),
        )
        .await;
        produce(&producer, &wire, RawRecord::value(valid(&notifier, 1))).await;

        for (extra, copied) in [
            ("", false),
            ("rdkafka.producer.message.max.bytes=16777216", true),
        ] {
            let t = kafka_support::transport(&servers, extra);
            let got = Collector::new();
            let listener = NotificationListener::builder(&t)
                .target(Target::new(&topic))
                .pool(unique("pool"))
                .start_position(StartPosition::Earliest)
                .dead_letter_topic(&dlq)
                .dead_letter_retry(Retry::Limited(0))
                .endpoint(got.endpoint())
                .build()
                .unwrap();
            listener.start().await.unwrap();
            let settled = eventually(Duration::from_secs(60), || {
                let c = listener.counters();
                got.len() == 1 && c.dead_lettered + c.dead_letter_failures >= 1
            })
            .await;
            let c = listener.counters();
            assert!(settled, "{extra:?}: {} delivered, {c:?}", got.len());
            assert_eq!(c.skipped, 1, "{extra:?}: {c:?}");
            if copied {
                assert_eq!((c.dead_lettered, c.dead_letter_failures), (1, 0), "{c:?}");
            } else {
                assert_eq!((c.dead_lettered, c.dead_letter_failures), (0, 1), "{c:?}");
            }
            listener.stop_and_wait().await.expect("stops");
            t.close(Duration::from_secs(10)).await.unwrap();
        }
        admin.close(Duration::from_secs(10)).await.unwrap();
    });
}
