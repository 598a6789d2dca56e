//! `messaging listen`.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use messaging_core::{
    HandlerOutcome, NotificationEndpoint, NotificationFilter, NotificationListener, Priority,
    Result, StartPosition, Target, Transport,
};
use tokio::sync::Notify;

use crate::observe::{self, MetricsArgs, MetricsEndpoint};

/// Arguments of `messaging listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://", env = "MESSAGING_URL")]
    url: String,
    /// Topic (without the priority suffix).
    #[arg(long, default_value = "notifications")]
    topic: String,
    /// Priorities to listen to (repeatable; default: all).
    #[arg(long = "priority")]
    priorities: Vec<Priority>,
    /// Pool (consumer group) to join.
    #[arg(long)]
    pool: Option<String>,
    /// Only event types matching this regex (anchored at the start).
    #[arg(long)]
    event_type: Option<String>,
    /// Exit after this many notifications.
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Start a new pool from the oldest retained notification (Kafka).
    #[arg(long, conflicts_with = "latest")]
    earliest: bool,
    /// Start a new pool from new notifications only (Kafka).
    #[arg(long)]
    latest: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub(crate) async fn run(a: ListenArgs) -> Result<()> {
    let obs = MetricsEndpoint::start(&a.metrics).await?;
    let transport = Transport::open(&a.url)?;
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let limit = a.count;
    let mut endpoint = {
        let seen = seen.clone();
        let done = done.clone();
        NotificationEndpoint::from_fn(move |n| {
            let seen = seen.clone();
            let done = done.clone();
            async move {
                let count = seen.fetch_add(1, Ordering::SeqCst) + 1;
                if limit.is_some_and(|l| count > l) {
                    // Past --count: leave it for the next listener of the pool.
                    return Ok(HandlerOutcome::Requeue);
                }
                let line = n.to_json().to_string();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                if limit.is_some_and(|l| count >= l) {
                    done.notify_one();
                }
                Ok(HandlerOutcome::Handled)
            }
        })
    };
    if !a.priorities.is_empty() {
        endpoint = endpoint.priorities(a.priorities.clone());
    }
    if let Some(re) = &a.event_type {
        endpoint = endpoint.filter(NotificationFilter::new().event_type(re)?);
    }
    let mut builder = NotificationListener::builder(&transport)
        .target(Target::new(&a.topic))
        .endpoint(endpoint)
        .allow_requeue(true)
        .max_concurrency(1);
    if let Some(p) = &a.pool {
        builder = builder.pool(p);
    }
    if a.earliest {
        builder = builder.start_position(StartPosition::Earliest);
    } else if a.latest {
        builder = builder.start_position(StartPosition::Latest);
    }
    let listener = builder.build()?;
    listener.start().await?;
    obs.ready_when(observe::listener_ready(&transport, &listener));
    let timeout = a.timeout.map(|t| Duration::from_secs_f64(t.max(0.0)));
    tokio::select! {
        _ = done.notified(), if limit.is_some() => {}
        _ = async { tokio::time::sleep(timeout.unwrap_or_default()).await }, if timeout.is_some() => {}
        _ = tokio::signal::ctrl_c() => {}
        // The listener stopped on its own, e.g. the broker refused the credentials.
        outcome = listener.wait() => outcome?,
    }
    obs.not_ready("stopping");
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(10)).await?;
    obs.finish().await;
    Ok(())
}
