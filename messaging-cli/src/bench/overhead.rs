//! `messaging bench --observability`: what metrics and tracing cost, measured in one
//! process as interleaved pairs of rounds, one uninstrumented ("off") and one with
//! a Prometheus recorder and a span-recording `tracing` subscriber ("on").
//!
//! The process installs one global recorder and one global subscriber, as an
//! application does, before the first round: the gates of [`super::gate`], closed
//! for an "off" round and open for an "on" one. Each round runs on a tokio runtime of
//! its own and builds its transport, listener and notifier inside it, so the metric
//! handles they fetch at construction are the open gate's (the Prometheus
//! recorder's) or the closed gate's (no-op).

use std::sync::OnceLock;
use std::time::Duration;

use messaging_core::{Error, ErrorKind, Result};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tracing::Subscriber;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::framework::{self, BenchReport};
use super::gate::{set_metrics_open, set_spans_open, MetricsGate, SpanGate};
use super::median;
use crate::observe::{self, MetricsEndpoint};

/// What the "on" rounds turn on (`--observability[=PARTS]`), to tell the cost of
/// each apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Parts {
    /// The metrics recorder and the span-recording subscriber.
    All,
    /// The metrics recorder only.
    Metrics,
    /// The span-recording subscriber only.
    Traces,
    /// Both, and a fmt layer on the subscriber (logs at INFO, written to a sink).
    AllWithLogs,
}

impl Parts {
    fn metrics(self) -> bool {
        self != Parts::Traces
    }

    fn traces(self) -> bool {
        self != Parts::Metrics
    }

    fn describe(self) -> &'static str {
        match self {
            Parts::All => "metrics-exporter-prometheus recorder, tracing registry at INFO",
            Parts::Metrics => "metrics-exporter-prometheus recorder",
            Parts::Traces => "tracing registry at INFO",
            Parts::AllWithLogs => {
                "metrics-exporter-prometheus recorder, tracing registry at INFO with a fmt \
                 layer writing to a sink"
            }
        }
    }
}

/// One round's instrumentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    On(Parts),
}

/// The Prometheus recorder behind the metrics gate, once [`install`]ed.
static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the global recorder and subscriber of `bench --observability=PARTS`, both
/// closed, in place of the command's usual log subscriber (`logs`, which still gets
/// the events it asks for). Call before anything logs or records.
pub(crate) fn install(parts: Parts, logs: Box<dyn Subscriber + Send + Sync>) -> Result<()> {
    let failed = |what: &str, e: messaging_core::BoxError| {
        Error::new(ErrorKind::Internal, format!("cannot install the {what}")).with_source(e)
    };
    let recorder = observe::prometheus_builder().build_recorder();
    let _ = PROMETHEUS.set(recorder.handle());
    metrics::set_global_recorder(MetricsGate {
        prometheus: recorder,
    })
    .map_err(|e| failed("metrics recorder", e.into()))?;
    messaging_core::observability::metrics::describe();
    let spans: Box<dyn Subscriber + Send + Sync> = if parts == Parts::AllWithLogs {
        // Logs as an operator's would be formatted (span fields included), written
        // to nowhere so that the terminal's speed is not measured.
        let sink = tracing_subscriber::fmt::layer().with_writer(std::io::sink);
        Box::new(
            tracing_subscriber::registry()
                .with(LevelFilter::INFO)
                .with(sink),
        )
    } else {
        Box::new(tracing_subscriber::registry().with(LevelFilter::INFO))
    };
    SpanGate { spans, logs }
        .try_init()
        .map_err(|e| failed("tracing subscriber", e.into()))
}

/// Open the gates for `mode` (closing what it does not turn on).
fn set(mode: Mode) {
    let (metrics, spans) = match mode {
        Mode::Off => (false, false),
        Mode::On(parts) => (parts.metrics(), parts.traces()),
    };
    set_metrics_open(metrics);
    set_spans_open(spans);
}

/// One round: `framework::measure` on a runtime of its own in `mode`.
async fn round(
    mode: Mode,
    url: &str,
    count: u64,
    payload_size: usize,
    timeout: Duration,
) -> Result<BenchReport> {
    let url = url.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    set(mode);
    std::thread::spawn(move || {
        // The round's own thread sends (block_on) and one worker runs the listener:
        // two busy threads on a 2-core machine, so the pairs are not measuring how
        // the scheduler shares the cores among three.
        let result = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, "bench runtime").with_source(e))
            .and_then(|rt| {
                let disabled = MetricsEndpoint::disabled();
                rt.block_on(framework::measure(
                    &url,
                    count,
                    payload_size,
                    timeout,
                    &disabled,
                ))
            });
        let _ = tx.send(result);
    });
    let result = rx
        .await
        .map_err(|_| Error::new(ErrorKind::Internal, "a bench round panicked"));
    set(Mode::Off);
    result?
}

/// One pair of rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Pair {
    /// Whether the instrumented round ran first.
    pub(crate) on_first: bool,
    pub(crate) off_end_to_end_per_sec: f64,
    pub(crate) on_end_to_end_per_sec: f64,
    /// `on_end_to_end_per_sec / off_end_to_end_per_sec`.
    pub(crate) on_vs_off: f64,
}

/// The figures of `bench --observability` (its `--json` line).
#[derive(Debug, Serialize)]
pub(crate) struct Overhead {
    pub(crate) url: String,
    pub(crate) count: u64,
    pub(crate) payload_size: usize,
    /// What "on" means.
    pub(crate) instrumented_with: &'static str,
    pub(crate) pairs: Vec<Pair>,
    /// Medians over `pairs`.
    pub(crate) off_end_to_end_per_sec: f64,
    pub(crate) on_end_to_end_per_sec: f64,
    pub(crate) on_vs_off: f64,
    /// Series the "on" rounds' recorder holds (0 would mean nothing was recorded).
    pub(crate) on_series: usize,
}

/// Measure `pairs` pairs, alternating which mode runs first.
pub(crate) async fn measure(
    url: &str,
    count: u64,
    payload_size: usize,
    pairs: u32,
    timeout: Duration,
    parts: Parts,
) -> Result<Overhead> {
    let mut measured = Vec::new();
    for i in 0..pairs {
        let on_first = i % 2 == 1;
        let order = if on_first {
            [Mode::On(parts), Mode::Off]
        } else {
            [Mode::Off, Mode::On(parts)]
        };
        let mut rates = [0.0; 2];
        for mode in order {
            let r = round(mode, url, count, payload_size, timeout).await?;
            rates[usize::from(mode != Mode::Off)] = r.end_to_end_per_sec;
            // Fold the histogram samples into buckets between rounds, as the
            // endpoint's upkeep does every few seconds.
            on_handle()?.run_upkeep();
        }
        measured.push(Pair {
            on_first,
            off_end_to_end_per_sec: rates[0],
            on_end_to_end_per_sec: rates[1],
            on_vs_off: rates[1] / rates[0],
        });
    }
    Ok(Overhead {
        url: url.to_owned(),
        count,
        payload_size,
        instrumented_with: parts.describe(),
        off_end_to_end_per_sec: median(measured.iter().map(|p| p.off_end_to_end_per_sec)),
        on_end_to_end_per_sec: median(measured.iter().map(|p| p.on_end_to_end_per_sec)),
        on_vs_off: median(measured.iter().map(|p| p.on_vs_off)),
        on_series: series(&on_handle()?),
        pairs: measured,
    })
}

/// The "on" rounds' recorder, for `--metrics-addr` to serve; an error before
/// [`install`].
pub(crate) fn on_handle() -> Result<PrometheusHandle> {
    PROMETHEUS.get().cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            "bench --observability: the recorder was not installed",
        )
    })
}

/// Sample lines in a Prometheus text rendering.
fn series(handle: &PrometheusHandle) -> usize {
    handle
        .render()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

impl Overhead {
    /// Print every pair, then the medians.
    pub(crate) fn print(&self) {
        println!("observability overhead on {}", self.url);
        println!("  notifications      {:>12} per round", self.count);
        println!("  on: {}", self.instrumented_with);
        println!("  end-to-end rate per pair (off, on, on/off)");
        for (i, p) in self.pairs.iter().enumerate() {
            let order = if p.on_first { "on first" } else { "off first" };
            println!(
                "  pair {:>2} ({order:<9})  {:>10.0} /s  {:>10.0} /s  {:.3}",
                i + 1,
                p.off_end_to_end_per_sec,
                p.on_end_to_end_per_sec,
                p.on_vs_off
            );
        }
        println!(
            "  off (median)       {:>12.0} /s",
            self.off_end_to_end_per_sec
        );
        println!(
            "  on (median)        {:>12.0} /s",
            self.on_end_to_end_per_sec
        );
        println!("  on / off (median)  {:>12.3}", self.on_vs_off);
        println!("  series recorded    {:>12}", self.on_series);
    }
}
