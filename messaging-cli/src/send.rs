//! `messaging send`.

use std::collections::VecDeque;
use std::time::Duration;

use clap::Args;
use messaging_core::{
    BulkOutcome, Context, Error, ErrorKind, Notifier, Priority, Result, Retry, Transport,
};

/// Arguments of `messaging send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://", env = "MESSAGING_URL")]
    url: String,
    /// Topic (without the priority suffix).
    #[arg(long, default_value = "notifications")]
    topic: String,
    /// Priority: audit, debug, info, warn, error, critical, sample.
    #[arg(long, default_value = "info")]
    priority: Priority,
    /// Event type, e.g. compute.instance.create.end.
    #[arg(long)]
    event_type: String,
    /// Publisher id, e.g. compute.host1.
    #[arg(long, default_value = "messaging.cli")]
    publisher_id: String,
    /// Payload, as JSON.
    #[arg(long, default_value = "{}")]
    payload: String,
    /// Context, as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// How many to send.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// How many notifications go to the transport in one bulk send.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Retries on failure (-1: forever).
    #[arg(long, default_value_t = 3, allow_hyphen_values = true)]
    retry: i64,
    /// Seconds to wait for the broker's acknowledgements before giving up.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

pub(crate) fn parse_json(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("--{what} is not valid JSON"),
        )
        .with_source(e)
    })
}

pub(crate) fn parse_context(text: Option<&str>) -> Result<Context> {
    match text {
        None => Ok(Context::new()),
        Some(t) => match parse_json("context", t)? {
            serde_json::Value::Object(m) => Ok(m),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                "--context must be a JSON object",
            )),
        },
    }
}

pub(crate) async fn run(a: SendArgs) -> Result<()> {
    let payload = parse_json("payload", &a.payload)?;
    let context = parse_context(a.context.as_deref())?;
    let transport = Transport::open(&a.url)?;
    let notifier = Notifier::builder()
        .publisher_id(&a.publisher_id)
        .topic(&a.topic)
        .retry(Retry::from_oslo(Some(a.retry)))
        .transport(&transport)
        .build()?;
    let timeout = Duration::from_secs_f64(a.timeout.max(0.0));
    let sent =
        tokio::time::timeout(timeout, send_in_batches(&notifier, &a, &context, &payload)).await;
    let report = transport.close(timeout).await?;
    let failures = match sent {
        Err(_) => {
            return Err(Error::timeout(format!(
                "the broker did not acknowledge within {timeout:?}"
            )))
        }
        Ok(r) => r?,
    };
    failures.into_result(a.count)?;
    if report.undelivered > 0 {
        return Err(Error::new(
            ErrorKind::DeliveryFailed,
            format!("{} notifications were not delivered", report.undelivered),
        ));
    }
    eprintln!(
        "sent {} notification(s) to {}.{}",
        a.count, a.topic, a.priority
    );
    Ok(())
}

/// Notifications that may wait for the broker while the next bulks are sent: bounds
/// memory, and is large enough to keep the broker busy even with small bulks.
const IN_FLIGHT: u64 = 10_000;

/// Send `a.count` notifications in bulks of `a.batch_size`, keeping up to
/// [`IN_FLIGHT`] notifications (at least one bulk) unacknowledged, and gather every failure.
async fn send_in_batches(
    notifier: &Notifier,
    a: &SendArgs,
    context: &Context,
    payload: &serde_json::Value,
) -> Result<Failures> {
    let mut in_flight = VecDeque::new();
    let mut waiting = 0;
    let mut failures = Failures::default();
    let mut left = a.count;
    while left > 0 {
        let size = left.min(a.batch_size);
        left -= size;
        let items = std::iter::repeat_n((a.event_type.as_str(), payload), size as usize);
        in_flight.push_back(notifier.notify_many(a.priority, context, items).await?);
        waiting += size;
        while waiting > IN_FLIGHT.max(a.batch_size) {
            let Some(oldest) = in_flight.pop_front() else {
                break;
            };
            waiting -= oldest.len() as u64;
            failures.add(oldest.outcome().await);
        }
    }
    for receipt in in_flight {
        failures.add(receipt.outcome().await);
    }
    Ok(failures)
}

/// Every failed (notification, destination) pair of a `send`: counted exactly, the
/// first few kept to show.
#[derive(Debug, Default)]
struct Failures {
    failed: u64,
    unknown: u64,
    /// Failures because the broker refused the credentials.
    refused: u64,
    shown: Vec<String>,
}

impl Failures {
    /// Failures printed one per line; the rest are only counted.
    const SHOWN: usize = 10;

    fn add(&mut self, outcome: BulkOutcome) {
        for (n, destination, e) in outcome.failures() {
            self.failed += 1;
            if e.kind() == &ErrorKind::OutcomeUnknown {
                self.unknown += 1;
            }
            if e.kind() == &ErrorKind::Authentication {
                self.refused += 1;
            }
            if self.shown.len() < Self::SHOWN {
                self.shown
                    .push(format!("{} to {destination}: {e}", n.message_id));
            }
        }
    }

    /// `Ok` when nothing failed; otherwise print the first failures and return an
    /// error with the exact counts.
    fn into_result(self, count: u64) -> Result<()> {
        if self.failed == 0 {
            return Ok(());
        }
        for line in &self.shown {
            eprintln!("failed: {line}");
        }
        if self.refused == self.failed {
            // One cause for all: say it first (the lines above have the details).
            return Err(Error::new(
                ErrorKind::Authentication,
                format!(
                    "the broker refused the credentials: {} of {count} notification deliveries failed",
                    self.failed
                ),
            ));
        }
        Err(Error::new(
            ErrorKind::DeliveryFailed,
            format!(
                "{} of {count} notification deliveries failed ({} with an unknown outcome: they may have arrived)",
                self.failed, self.unknown
            ),
        ))
    }
}
