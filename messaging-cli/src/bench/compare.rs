//! `messaging bench --raw`: the framework against a raw client baseline in the same
//! run (rdkafka for Kafka URLs, [`super::raw`]; lapin for RabbitMQ URLs,
//! [`super::raw_amqp`]), in alternating pairs, with the median ratios.

use std::time::Duration;

use messaging_core::{Error, ErrorKind, Result, TransportUrl};
use serde::Serialize;

use super::framework::{self, BenchReport};
use super::{median, BenchArgs};
use crate::observe::MetricsEndpoint;

/// Which raw client a URL is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// rdkafka with the Kafka driver's client settings.
    Rdkafka,
    /// lapin with the RabbitMQ driver's settings: confirms, mandatory, persistent,
    /// manual ack and the driver's prefetch.
    Lapin,
}

/// The schemes `--raw` has a baseline for, as the error names them.
const SUPPORTED: &str = "kafka://, rabbit:// or amqp://";

impl Baseline {
    /// The baseline for `url`, or an error naming the schemes that have one.
    pub(crate) fn for_url(url: &str) -> Result<Baseline> {
        let parsed = TransportUrl::parse(url)?;
        match parsed.driver() {
            "kafka" => Ok(Baseline::Rdkafka),
            "rabbit" | "amqp" => Ok(Baseline::Lapin),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "--raw has a raw client baseline for {SUPPORTED} URLs only, not {other}://"
                ),
            )
            .with_retryable(false)),
        }
    }

    /// The client's name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Baseline::Rdkafka => "rdkafka",
            Baseline::Lapin => "lapin",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Baseline::Rdkafka => "raw rdkafka baseline, same run, same settings",
            Baseline::Lapin => {
                "raw lapin baseline (confirms, mandatory, persistent, manual ack), same run, same settings"
            }
        }
    }

    async fn measure(
        self,
        url: &str,
        count: u64,
        record_bytes: usize,
        timeout: Duration,
    ) -> Result<RawReport> {
        match self {
            Baseline::Rdkafka => super::raw::measure(url, count, record_bytes, timeout).await,
            Baseline::Lapin => super::raw_amqp::measure(url, count, record_bytes, timeout).await,
        }
    }
}

/// Figures of one raw run.
#[derive(Debug, Serialize)]
pub(crate) struct RawReport {
    pub(crate) record_bytes: usize,
    /// Records handed to the client library per second (rdkafka's `send_result`
    /// returned; lapin's `basic_publish` returned).
    pub(crate) produce_per_sec: f64,
    /// Records acknowledged by the broker per second (delivery reports; confirms).
    pub(crate) delivered_per_sec: f64,
    pub(crate) end_to_end_per_sec: f64,
}

/// The body of the one record a baseline sends and consumes before its clock starts
/// (its timed records are all `x`).
pub(crate) const WARM_UP: &[u8] = b"warm-up";

/// The consumer's side of the warm-up: tells the measuring side once it has seen
/// [`WARM_UP`].
pub(crate) struct WarmedUp(Option<tokio::sync::oneshot::Sender<()>>);

impl WarmedUp {
    /// The consumer saw the warm-up record (only the first time counts).
    pub(crate) fn seen(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// The measuring side of the warm-up: waits for the consumer's [`WarmedUp`].
pub(crate) struct WarmUpSeen(tokio::sync::oneshot::Receiver<()>);

/// A pair to tell the measuring side that the consumer has seen the warm-up record.
pub(crate) fn warm_up_signal() -> (WarmedUp, WarmUpSeen) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (WarmedUp(Some(tx)), WarmUpSeen(rx))
}

impl WarmUpSeen {
    /// Wait up to `timeout` for the consumer to see the warm-up record.
    pub(crate) async fn wait(self, timeout: Duration) -> Result<()> {
        match tokio::time::timeout(timeout, self.0).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Internal,
                "raw baseline: the consumer ended before the warm-up record",
            )),
            Err(_) => Err(Error::timeout(format!(
                "raw baseline: the warm-up record was not consumed within {timeout:?}"
            ))),
        }
    }
}

/// Wait up to `timeout` for a baseline's consumer task, which returns how many
/// records it consumed.
pub(crate) async fn consumed_within(
    consume: tokio::task::JoinHandle<u64>,
    timeout: Duration,
) -> Result<u64> {
    tokio::time::timeout(timeout, consume)
        .await
        .map_err(|_| {
            Error::timeout(format!(
                "raw baseline: not every record was consumed within {timeout:?}"
            ))
        })?
        .map_err(|e| Error::new(ErrorKind::Internal, "raw consumer task").with_source(e))
}

impl RawReport {
    /// The rates of a raw run of `count` records that took `secs` (to produce, to be
    /// acknowledged, to be consumed), once the consumer got all `consumed` of them.
    pub(crate) fn of(
        record_bytes: usize,
        count: u64,
        consumed: u64,
        [produce, delivered, e2e]: [f64; 3],
    ) -> Result<RawReport> {
        if consumed < count {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("raw baseline consumed {consumed} of {count}"),
            ));
        }
        Ok(RawReport {
            record_bytes,
            produce_per_sec: count as f64 / produce,
            delivered_per_sec: count as f64 / delivered,
            end_to_end_per_sec: count as f64 / e2e,
        })
    }
}

/// Framework/raw ratios of one pair of runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Ratios {
    /// Which side of the pair ran first.
    pub(crate) raw_first: bool,
    /// Notifications accepted by the transport / records handed to the client.
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

/// The framework against a raw client: the first pair in full, every pair's ratios
/// and their medians.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    /// The raw client: `rdkafka` or `lapin`.
    pub(crate) baseline: &'static str,
    pub(crate) framework: BenchReport,
    pub(crate) raw: RawReport,
    pub(crate) rounds: Vec<Ratios>,
    /// Medians over `rounds`.
    pub(crate) notify_vs_raw: f64,
    pub(crate) delivered_vs_raw: f64,
    pub(crate) end_to_end_vs_raw: f64,
    #[serde(skip)]
    describe: &'static str,
}

/// Measure `baseline` against the framework run `first` (which ran first), then
/// `--rounds` - 1 more pairs, alternating which side runs first.
pub(crate) async fn compare(
    baseline: Baseline,
    a: &BenchArgs,
    timeout: Duration,
    first: BenchReport,
    obs: &MetricsEndpoint,
) -> Result<Comparison> {
    let (url, count, payload_size, rounds) = (a.url.as_str(), a.count, a.payload_size, a.rounds);
    let bytes = first.record_bytes;
    let raw = baseline.measure(url, count, bytes, timeout).await?;
    let mut ratios = vec![Ratios::of(&first, &raw, false)];
    for round in 1..rounds {
        let raw_first = round % 2 == 1;
        let (framework, raw) = if raw_first {
            let raw = baseline.measure(url, count, bytes, timeout).await?;
            (
                framework::measure(url, count, payload_size, timeout, obs).await?,
                raw,
            )
        } else {
            let framework = framework::measure(url, count, payload_size, timeout, obs).await?;
            (
                framework,
                baseline.measure(url, count, bytes, timeout).await?,
            )
        };
        ratios.push(Ratios::of(&framework, &raw, raw_first));
    }
    Ok(Comparison {
        baseline: baseline.name(),
        framework: first,
        raw,
        notify_vs_raw: median(ratios.iter().map(|r| r.notify)),
        delivered_vs_raw: median(ratios.iter().map(|r| r.delivered)),
        end_to_end_vs_raw: median(ratios.iter().map(|r| r.end_to_end)),
        rounds: ratios,
        describe: baseline.describe(),
    })
}

impl Comparison {
    /// Print the raw figures of the first pair, then the ratios.
    pub(crate) fn print(&self) {
        let first = self.rounds[0];
        println!("{}, {} B records", self.describe, self.raw.record_bytes);
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
