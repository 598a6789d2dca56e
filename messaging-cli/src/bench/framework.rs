//! The framework side of `messaging bench`: notify, delivered and notify-to-handler
//! rates and latency, with a same-run serde_json baseline.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use messaging_core::{
    Context, Error, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier, Result,
    Retry, StartPosition, Target, Transport,
};
use serde::Serialize;
use tokio::sync::Notify;

use super::latency::LatencyCounts;
use crate::observe::{self, MetricsEndpoint};

#[derive(Serialize)]
struct BenchPayload<'a> {
    t: u64,
    pad: &'a str,
}

/// What the handler reads of a [`BenchPayload`]: only its send time.
#[derive(serde::Deserialize)]
struct SentAt {
    t: u64,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub(crate) struct BenchReport {
    pub(crate) url: String,
    pub(crate) count: u64,
    pub(crate) payload_size: usize,
    /// Size of one encoded record (the oslo envelope around the payload).
    pub(crate) record_bytes: usize,
    /// Notifications accepted by the transport per second (`notify` returned).
    pub(crate) notify_per_sec: f64,
    /// Notifications acknowledged by the broker per second (every receipt resolved).
    pub(crate) delivered_per_sec: f64,
    pub(crate) end_to_end_per_sec: f64,
    pub(crate) latency_p50_us: u64,
    pub(crate) latency_p99_us: u64,
    pub(crate) latency_max_us: u64,
    /// Baseline measured in the same run: serialize the same payload with serde_json
    /// and parse it back into a `Value`, on one thread, with no framework at all.
    pub(crate) baseline_json_round_trip_per_sec: f64,
    /// `end_to_end_per_sec / baseline_json_round_trip_per_sec`.
    pub(crate) end_to_end_vs_baseline: f64,
}

/// The baseline: the bare JSON work one notification needs (payload out and back in),
/// repeated `count` times on this thread.
fn json_baseline(count: u64, pad: &str) -> f64 {
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..count {
        let encoded = serde_json::to_vec(&BenchPayload { t: i, pad }).unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&encoded) {
            bytes += v.as_object().map_or(0, |m| m.len());
        }
    }
    std::hint::black_box(bytes);
    count as f64 / started.elapsed().as_secs_f64()
}

fn progress(count: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("handled");
    bar
}

/// The event type of the one notification sent and handled before the clock starts.
const WARM_UP_EVENT: &str = "bench.warm-up";

/// Run the notify-to-handler benchmark on `url`: one warm-up notification handled
/// first (not timed: the first connection, a consumer group's join), then `count`
/// timed ones.
pub(crate) async fn measure(
    url: &str,
    count: u64,
    payload_size: usize,
    timeout: Duration,
    obs: &MetricsEndpoint,
) -> Result<BenchReport> {
    let transport = Transport::open(url)?;
    let topic = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    // No lock per notification: the handler's own cost is not the framework's.
    let latencies = Arc::new(LatencyCounts::new(600_000_000));
    let handled = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let warmed_up = Arc::new(Notify::new());
    let origin = Instant::now();
    let bar = progress(count);
    let endpoint = {
        let latencies = latencies.clone();
        let handled = handled.clone();
        let all_done = all_done.clone();
        let warmed_up = warmed_up.clone();
        let bar = bar.clone();
        NotificationEndpoint::from_fn(move |n| {
            if n.event_type == WARM_UP_EVENT {
                warmed_up.notify_one();
                return futures::future::ready(Ok(HandlerOutcome::Handled));
            }
            let now = origin.elapsed().as_micros() as u64;
            let sent = n.payload_as::<SentAt>().map_or(now, |p| p.t);
            latencies.record(now.saturating_sub(sent));
            let done = handled.fetch_add(1, Ordering::Relaxed) + 1;
            if done.is_multiple_of(1024) || done == count {
                bar.set_position(done);
            }
            if done == count {
                all_done.notify_one();
            }
            futures::future::ready(Ok(HandlerOutcome::Handled))
        })
    };
    let listener = NotificationListener::builder(&transport)
        .target(Target::new(&topic))
        .endpoint(endpoint)
        .start_position(StartPosition::Earliest)
        .max_concurrency(256)
        .build()?;
    listener.start().await?;
    obs.ready_when(observe::listener_ready(&transport, &listener));
    let notifier = Notifier::builder()
        .publisher_id("bench.publisher")
        .topic(&topic)
        .retry(Retry::Limited(3))
        .transport(&transport)
        .build()?;
    let pad = "x".repeat(payload_size.saturating_sub(40));
    let ctx = Context::new();
    let record_bytes = messaging_core::envelope::encode(&notifier.build_notification(
        messaging_core::Priority::Info,
        &ctx,
        "bench.event",
        &BenchPayload { t: 0, pad: &pad },
    )?)?
    .len();
    // Not timed: the first connection and a consumer group's join.
    notifier
        .info(&ctx, WARM_UP_EVENT, &BenchPayload { t: 0, pad: "" })
        .await?
        .delivered()
        .await?;
    tokio::time::timeout(timeout, warmed_up.notified())
        .await
        .map_err(|_| {
            Error::timeout(format!(
                "the warm-up notification was not handled within {timeout:?}"
            ))
        })?;
    let started = Instant::now();
    // Reserved up front as the raw baseline reserves its delivery futures.
    let mut pending = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let payload = BenchPayload {
            t: origin.elapsed().as_micros() as u64,
            pad: &pad,
        };
        let receipt = notifier.info(&ctx, "bench.event", &payload).await?;
        if !receipt.is_delivered() {
            pending.push(receipt);
        }
    }
    let notify_secs = started.elapsed().as_secs_f64();
    for r in pending {
        r.delivered().await?;
    }
    let delivered_secs = started.elapsed().as_secs_f64();
    let waited = tokio::time::timeout(timeout, async {
        if handled.load(Ordering::Relaxed) < count {
            all_done.notified().await;
        }
    })
    .await;
    let e2e_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    obs.not_ready("between measurements");
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(30)).await?;
    if waited.is_err() {
        return Err(Error::timeout(format!(
            "only {} of {count} notifications were handled within {timeout:?}",
            handled.load(Ordering::Relaxed)
        )));
    }
    let h = latencies.histogram()?;
    let baseline = json_baseline(count, &pad);
    let end_to_end_per_sec = count as f64 / e2e_secs;
    Ok(BenchReport {
        url: transport.url().to_string(),
        count,
        payload_size,
        record_bytes,
        notify_per_sec: count as f64 / notify_secs,
        delivered_per_sec: count as f64 / delivered_secs,
        end_to_end_per_sec,
        latency_p50_us: h.value_at_quantile(0.50),
        latency_p99_us: h.value_at_quantile(0.99),
        latency_max_us: latencies.max(),
        baseline_json_round_trip_per_sec: baseline,
        end_to_end_vs_baseline: end_to_end_per_sec / baseline,
    })
}
