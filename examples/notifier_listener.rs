//! A notifier and a listener on one transport: three notifications out, the same
//! three handled, then a clean stop.
//!
//! ```sh
//! cargo run -p examples --example notifier_listener [-- TRANSPORT_URL]
//! ```
//!
//! The URL defaults to `memory://examples`; with a Kafka URL
//! (`kafka://127.0.0.1:9092?create_topics=true`) the same program talks to Kafka.

use std::time::Duration;

use examples::{register_drivers, wait_for};
use messaging_core::{
    Context, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier, Target,
    Transport,
};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    register_drivers();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://examples".into());
    let transport = Transport::open(&url)?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("example-notifications"))
        .pool("example")
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let tx = tx.clone();
            async move {
                println!(
                    "handled {} {} from {}: {}",
                    n.priority, n.event_type, n.publisher_id, n.payload
                );
                let _ = tx.send(n.event_type.clone());
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()?;
    listener.start().await?;

    let notifier = Notifier::builder()
        .publisher_id("compute.host1")
        .topics(["example-notifications"])
        .transport(&transport)
        .build()?;
    let ctx = Context::new();
    for (i, event) in [
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.delete.end",
    ]
    .into_iter()
    .enumerate()
    {
        notifier
            .info(&ctx, event, &json!({"instance_id": format!("i-{i}")}))
            .await? // accepted by the transport
            .delivered()
            .await?; // acknowledged by the broker
    }

    let handled = wait_for(&mut rx, 3).await?;
    println!("{} notifications handled", handled.len());
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(5)).await?;
    Ok(())
}
