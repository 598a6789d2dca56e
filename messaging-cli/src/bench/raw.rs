//! The raw rdkafka baseline of `messaging bench --raw`: the same number of records of
//! the same size, produced and consumed with rdkafka directly and the same client
//! settings as the framework's Kafka driver, timed the same way.

use std::time::{Duration, Instant};

use futures::StreamExt;
use messaging_core::{Error, ErrorKind, Result, StartPosition, Transport, TransportUrl};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use serde::Serialize;

use super::framework::{self, BenchReport};

/// Framework/raw ratios of one pair of runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Ratios {
    /// Which side of the pair ran first.
    pub(crate) raw_first: bool,
    /// Notifications accepted by the transport / records handed to librdkafka.
    pub(crate) notify: f64,
    /// Broker-acknowledged rates.
    pub(crate) delivered: f64,
    /// Produce-to-consume rates.
    pub(crate) end_to_end: f64,
}

impl Ratios {
    fn of(framework: &BenchReport, raw: &RawReport, raw_first: bool) -> Self {
        Ratios {
            raw_first,
            notify: framework.notify_per_sec / raw.produce_per_sec,
            delivered: framework.delivered_per_sec / raw.delivered_per_sec,
            end_to_end: framework.end_to_end_per_sec / raw.end_to_end_per_sec,
        }
    }
}

/// The framework against raw rdkafka: the first pair in full, every pair's ratios and
/// their medians.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    pub(crate) framework: BenchReport,
    pub(crate) raw: RawReport,
    pub(crate) rounds: Vec<Ratios>,
    /// Medians over `rounds`.
    pub(crate) notify_vs_raw: f64,
    pub(crate) delivered_vs_raw: f64,
    pub(crate) end_to_end_vs_raw: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Measure raw rdkafka against the framework run `first` (which ran first), then
/// `rounds - 1` more pairs, alternating which side runs first.
pub(crate) async fn compare(
    url: &str,
    count: u64,
    payload_size: usize,
    rounds: u32,
    timeout: Duration,
    first: BenchReport,
) -> Result<Comparison> {
    let raw = measure(url, count, first.record_bytes, timeout).await?;
    let mut ratios = vec![Ratios::of(&first, &raw, false)];
    for round in 1..rounds {
        let raw_first = round % 2 == 1;
        let (framework, raw) = if raw_first {
            let raw = measure(url, count, first.record_bytes, timeout).await?;
            (
                framework::measure(url, count, payload_size, timeout).await?,
                raw,
            )
        } else {
            let framework = framework::measure(url, count, payload_size, timeout).await?;
            (
                framework,
                measure(url, count, first.record_bytes, timeout).await?,
            )
        };
        ratios.push(Ratios::of(&framework, &raw, raw_first));
    }
    Ok(Comparison {
        framework: first,
        raw,
        notify_vs_raw: median(ratios.iter().map(|r| r.notify).collect()),
        delivered_vs_raw: median(ratios.iter().map(|r| r.delivered).collect()),
        end_to_end_vs_raw: median(ratios.iter().map(|r| r.end_to_end).collect()),
        rounds: ratios,
    })
}

impl Comparison {
    /// Print the raw figures of the first pair, then the ratios.
    pub(crate) fn print(&self) {
        let first = self.rounds[0];
        println!(
            "raw rdkafka baseline, same run, same settings, {} B records",
            self.raw.record_bytes
        );
        println!(
            "  produce rate       {:>12.0} /s   framework/raw {:.3}",
            self.raw.produce_per_sec, first.notify
        );
        println!(
            "  delivered rate     {:>12.0} /s   framework/raw {:.3}",
            self.raw.delivered_per_sec, first.delivered
        );
        println!(
            "  end-to-end rate    {:>12.0} /s   framework/raw {:.3}",
            self.raw.end_to_end_per_sec, first.end_to_end
        );
        if self.rounds.len() < 2 {
            return;
        }
        println!("framework/raw per pair (notify, delivered, end-to-end)");
        for (i, r) in self.rounds.iter().enumerate() {
            let order = if r.raw_first {
                "raw first"
            } else {
                "framework first"
            };
            println!(
                "  pair {:>2} ({order:<15})  {:.3}  {:.3}  {:.3}",
                i + 1,
                r.notify,
                r.delivered,
                r.end_to_end
            );
        }
        println!(
            "  median over {:>2} pairs       {:.3}  {:.3}  {:.3}",
            self.rounds.len(),
            self.notify_vs_raw,
            self.delivered_vs_raw,
            self.end_to_end_vs_raw
        );
    }
}

/// Figures of the raw run.
#[derive(Debug, Serialize)]
pub(crate) struct RawReport {
    pub(crate) record_bytes: usize,
    /// Records handed to librdkafka per second.
    pub(crate) produce_per_sec: f64,
    /// Records acknowledged by the broker per second.
    pub(crate) delivered_per_sec: f64,
    pub(crate) end_to_end_per_sec: f64,
}

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

    let consume = tokio::spawn(async move {
        let mut seen = 0u64;
        let mut stream = consumer.stream();
        while seen < count {
            match stream.next().await {
                Some(Ok(m)) => {
                    if m.payload().is_some() {
                        seen += 1;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "raw baseline consumer"),
                None => break,
            }
        }
        seen
    });

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
    let consumed = tokio::time::timeout(timeout, consume)
        .await
        .map_err(|_| {
            Error::timeout(format!(
                "raw baseline: not every record was consumed within {timeout:?}"
            ))
        })?
        .map_err(|e| Error::new(ErrorKind::Internal, "raw consumer task").with_source(e))?;
    let e2e_secs = started.elapsed().as_secs_f64();
    producer
        .flush(Duration::from_secs(10))
        .map_err(|e| kafka_error("flush", e))?;
    if consumed < count {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("raw baseline consumed {consumed} of {count}"),
        ));
    }
    Ok(RawReport {
        record_bytes,
        produce_per_sec: count as f64 / produce_secs,
        delivered_per_sec: count as f64 / delivered_secs,
        end_to_end_per_sec: count as f64 / e2e_secs,
    })
}
