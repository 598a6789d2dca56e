//! The raw rdkafka baseline of `messaging bench --raw`: the same number of records of
//! the same size, produced and consumed with rdkafka directly and the same client
//! settings as the framework's Kafka driver, timed the same way: the clock starts
//! once one warm-up record has been produced and consumed (the consumer group has
//! joined), as the framework side's starts once a warm-up notification is handled.

use std::time::{Duration, Instant};

use futures::StreamExt;
use messaging_core::{Error, ErrorKind, Result, StartPosition, Transport, TransportUrl};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;

use super::compare::{consumed_within, warm_up_signal, RawReport, WARM_UP};

fn kafka_error(what: &str, e: rdkafka::error::KafkaError) -> Error {
    Error::new(ErrorKind::Transport, format!("raw baseline: {what}")).with_source(e)
}

/// Produce `count` records of `record_bytes` bytes to a fresh topic and consume them.
pub(crate) async fn measure(
    url: &str,
    count: u64,
    record_bytes: usize,
    timeout: Duration,
) -> Result<RawReport> {
    let parsed = TransportUrl::parse(url)?;
    let topic = format!(
        "bench-raw-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    // Topic creation goes through the driver (not timed): brokers such as Tansu never
    // auto-create topics.
    let admin = Transport::open(url)?;
    admin.ensure_topics(std::slice::from_ref(&topic)).await?;
    admin.close(Duration::from_secs(5)).await?;

    let producer_config =
        driver_kafka::client_config(&parsed, &[], &driver_kafka::ClientRole::Producer)?;
    let consumer_config = driver_kafka::client_config(
        &parsed,
        &[],
        &driver_kafka::ClientRole::Consumer {
            group: format!("{topic}-group"),
            start: StartPosition::Earliest,
        },
    )?;
    let producer: FutureProducer = producer_config
        .create()
        .map_err(|e| kafka_error("producer", e))?;
    let consumer: StreamConsumer = consumer_config
        .create()
        .map_err(|e| kafka_error("consumer", e))?;
    consumer
        .subscribe(&[&topic])
        .map_err(|e| kafka_error("subscribe", e))?;

    let (mut warmed_up, warm_up_seen) = warm_up_signal();
    let consume = tokio::spawn(async move {
        let mut seen = 0u64;
        let mut stream = consumer.stream();
        while seen < count {
            match stream.next().await {
                Some(Ok(m)) => match m.payload() {
                    Some(WARM_UP) => warmed_up.seen(),
                    Some(_) => seen += 1,
                    None => {}
                },
                Some(Err(e)) => tracing::warn!(error = %e, "raw baseline consumer"),
                None => break,
            }
        }
        seen
    });

    // Not timed: the consumer group's join (as on the framework side).
    producer
        .send(
            FutureRecord::<(), [u8]>::to(&topic).payload(WARM_UP),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| kafka_error("warm-up", e))?;
    warm_up_seen.wait(timeout).await?;

    let body = vec![b'x'; record_bytes.max(1)];
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut record = FutureRecord::<(), [u8]>::to(&topic).payload(&body[..]);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                    tokio::task::yield_now().await;
                }
                Err((e, _)) => return Err(kafka_error("produce", e)),
            }
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(kafka_error("delivery", e)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::DeliveryFailed,
                    "raw baseline: delivery cancelled",
                ))
            }
        }
    }
    let delivered_secs = started.elapsed().as_secs_f64();
    let consumed = consumed_within(consume, timeout).await?;
    let e2e_secs = started.elapsed().as_secs_f64();
    producer
        .flush(Duration::from_secs(10))
        .map_err(|e| kafka_error("flush", e))?;
    RawReport::of(
        record_bytes,
        count,
        consumed,
        [produce_secs, delivered_secs, e2e_secs],
    )
}
