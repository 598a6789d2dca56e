//! `messaging send`.

use std::time::Duration;

use clap::Args;
use messaging_core::{Context, Error, ErrorKind, Notifier, Priority, Result, Retry, Transport};

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
    let mut receipts = Vec::with_capacity(a.count as usize);
    for _ in 0..a.count {
        receipts.push(
            notifier
                .notify(a.priority, &context, &a.event_type, &payload)
                .await?,
        );
    }
    let timeout = Duration::from_secs_f64(a.timeout.max(0.0));
    let waited = tokio::time::timeout(timeout, async {
        for r in receipts {
            r.delivered().await?;
        }
        Ok::<(), Error>(())
    })
    .await;
    let report = transport.close(timeout).await?;
    match waited {
        Err(_) => {
            return Err(Error::timeout(format!(
                "the broker did not acknowledge within {timeout:?}"
            )))
        }
        Ok(r) => r?,
    }
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
