//! `messaging bench`: notify throughput, notify-to-handler throughput and latency
//! ([`framework`]), optionally against a raw client ([`compare`]: rdkafka, [`raw`],
//! for Kafka; lapin, [`raw_amqp`], for RabbitMQ), the cost of metrics and tracing
//! ([`overhead`]), or RPC round trips.

use std::time::Duration;

use clap::Args;
use messaging_core::Result;

use crate::observe::{MetricsArgs, MetricsEndpoint};

mod compare;
mod framework;
mod gate;
mod latency;
mod overhead;
mod raw;
mod raw_amqp;

pub(crate) use overhead::install as install_observability;

/// Arguments of `messaging bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://bench", env = "MESSAGING_URL")]
    url: String,
    /// Notifications to send and time. One more is sent and handled first, untimed, so
    /// that a first connection or a consumer group's join is not measured (the raw
    /// baselines do the same).
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Payload size in bytes (the JSON payload is padded to about this size).
    #[arg(long, default_value_t = 200)]
    payload_size: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Measure RPC call round trips (against an in-process demo server) instead.
    #[arg(long)]
    rpc: bool,
    /// Also run a raw client baseline: the same number of records of the same size,
    /// produced and consumed with the client library directly and the driver's
    /// settings (rdkafka for kafka:// URLs; lapin for rabbit:// and amqp:// URLs, with
    /// publisher confirms, mandatory, persistent, manual ack and the driver's
    /// prefetch), and print the framework/raw ratios.
    #[arg(long)]
    raw: bool,
    /// Measure what metrics and tracing cost instead: pairs of rounds, one with no
    /// metrics recorder and no tracing subscriber, one with the Prometheus recorder
    /// and a span-recording subscriber (`=metrics` or `=traces`: only that one),
    /// alternating which runs first (see --rounds), and report both end-to-end rates
    /// and their ratio.
    #[arg(
        long,
        value_enum,
        value_name = "PARTS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all",
        conflicts_with_all = ["raw", "rpc"]
    )]
    observability: Option<overhead::Parts>,
    /// With --raw or --observability: measure this many pairs, alternating which side runs
    /// first (the second of a pair finds memory and broker state the first warmed up),
    /// and report the median ratios.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Calls in flight at once (with --rpc).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    #[command(flatten)]
    metrics: MetricsArgs,
}

impl BenchArgs {
    /// What `--observability` turns on, if it was given.
    pub(crate) fn observability(&self) -> Option<overhead::Parts> {
        self.observability
    }
}

/// The median of `values` (NaN for none).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
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

/// `bench --observability`: the "on" rounds' metrics are what --metrics-addr serves.
async fn run_overhead(a: &BenchArgs, timeout: Duration, parts: overhead::Parts) -> Result<()> {
    let obs = match &a.metrics.metrics_addr {
        Some(addr) => MetricsEndpoint::serve(&a.metrics, addr, overhead::on_handle()?).await?,
        None => MetricsEndpoint::disabled(),
    };
    let r = overhead::measure(&a.url, a.count, a.payload_size, a.rounds, timeout, parts).await?;
    r.print();
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    obs.finish().await;
    Ok(())
}

pub(crate) async fn run(a: BenchArgs) -> Result<()> {
    let timeout = Duration::from_secs_f64(a.timeout.max(1.0));
    if let Some(parts) = a.observability {
        return run_overhead(&a, timeout, parts).await;
    }
    let obs = MetricsEndpoint::start(&a.metrics).await?;
    measure_and_print(&a, timeout, &obs).await?;
    obs.finish().await;
    Ok(())
}

/// The notify-to-handler or RPC benchmark, with the raw comparison if asked for.
async fn measure_and_print(a: &BenchArgs, timeout: Duration, obs: &MetricsEndpoint) -> Result<()> {
    if a.rpc {
        let r = crate::rpc::bench(&a.url, a.count, a.in_flight, obs).await?;
        println!("RPC call benchmark on {}", r.url);
        println!("  calls              {:>12}", r.calls);
        println!("  in flight          {:>12}", r.in_flight);
        println!("  calls              {:>12.0} /s", r.calls_per_sec);
        println!("  latency p50        {:>12} µs", r.latency_p50_us);
        println!("  latency p99        {:>12} µs", r.latency_p99_us);
        println!("  latency max        {:>12} µs", r.latency_max_us);
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    let baseline = if a.raw {
        Some(compare::Baseline::for_url(&a.url)?)
    } else {
        None
    };
    let report = framework::measure(&a.url, a.count, a.payload_size, timeout, obs).await?;
    println!("notify-to-handler benchmark on {}", report.url);
    println!("  notifications      {:>12}", report.count);
    println!("  payload size       {:>12} B", report.payload_size);
    println!(
        "  notify rate        {:>12.0} /s   (accepted by the transport)",
        report.notify_per_sec
    );
    println!(
        "  delivered rate     {:>12.0} /s   (acknowledged by the broker)",
        report.delivered_per_sec
    );
    println!(
        "  end-to-end rate    {:>12.0} /s",
        report.end_to_end_per_sec
    );
    println!("  latency p50        {:>12} µs", report.latency_p50_us);
    println!("  latency p99        {:>12} µs", report.latency_p99_us);
    println!("  latency max        {:>12} µs", report.latency_max_us);
    println!("  baseline: bare serde_json payload round trip, one thread, same run");
    println!(
        "  baseline rate      {:>12.0} /s",
        report.baseline_json_round_trip_per_sec
    );
    println!(
        "  end-to-end / baseline {:>9.3}",
        report.end_to_end_vs_baseline
    );
    let Some(baseline) = baseline else {
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        return Ok(());
    };
    let comparison = compare::compare(baseline, a, timeout, report, obs).await?;
    comparison.print();
    if a.json {
        println!("{}", serde_json::to_string(&comparison)?);
    }
    Ok(())
}
