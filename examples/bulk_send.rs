//! Bulk send with per-notification outcomes and a resend of only what failed.
//!
//! ```sh
//! cargo run -p examples --example bulk_send -- 'kafka://127.0.0.1:9092?create_topics=true'
//! ```
//! (default URL: `memory://`). Monasca's case: after a partial failure, only the
//! failed notifications are sent again, so no entry is stored twice.

use std::time::Duration;

use messaging_core::{Context, Notifier, Priority, Retry, Transport};
use serde_json::json;

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    driver_memory::register();
    driver_kafka::register();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://".to_owned());
    let transport = Transport::open(&url)?;
    let notifier = Notifier::builder()
        .publisher_id("monasca.persister")
        .topic("metrics")
        .retry(Retry::Limited(3))
        .transport(&transport)
        .build()?;

    let items = (0..10_000).map(|i| ("metric.sample", json!({"name": "cpu", "value": i})));
    let mut outcome = notifier
        .notify_many(Priority::Sample, &Context::new(), items)
        .await?
        .outcome()
        .await;
    for attempt in 1..=3 {
        let resend = outcome.resend();
        if resend.is_empty() {
            break;
        }
        eprintln!(
            "attempt {attempt}: resending {} failed notifications",
            resend.notifications()
        );
        outcome = notifier.resend(resend).await?.outcome().await;
    }
    if outcome.unknown_count() > 0 {
        eprintln!(
            "{} notifications have an unknown outcome (may have arrived): not resent",
            outcome.unknown_count()
        );
    }
    for (n, destination, e) in outcome.failures() {
        eprintln!("still failed: {} to {destination}: {e}", n.message_id);
    }
    let report = transport.close(Duration::from_secs(10)).await?;
    println!(
        "done: {} failed deliveries left, {} undelivered at close",
        outcome.failed_count(),
        report.undelivered
    );
    Ok(())
}
