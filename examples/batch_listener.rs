//! A batch listener: the handler gets up to 10 notifications at a time, or fewer
//! once 200 ms passed since the first of a batch arrived.
//!
//! ```sh
//! cargo run -p examples --example batch_listener [-- TRANSPORT_URL]
//! ```

use std::time::Duration;

use examples::{register_drivers, wait_for};
use messaging_core::{
    BatchEndpoint, Context, HandlerOutcome, NotificationListener, Notifier, Target, Transport,
};
use serde_json::json;
use tokio::sync::mpsc;

const SENT: usize = 25;

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    register_drivers();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://examples-batch".into());
    let transport = Transport::open(&url)?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("example-batches"))
        .pool("example")
        .batch(10, Duration::from_millis(200))
        .batch_endpoint(BatchEndpoint::from_batch_fn(move |batch| {
            let tx = tx.clone();
            async move {
                println!("a batch of {}", batch.len());
                for n in batch {
                    // Typed access reads straight from the payload's JSON text.
                    #[derive(serde::Deserialize)]
                    struct Numbered {
                        n: u64,
                    }
                    let _ = tx.send(n.payload_as::<Numbered>().ok().map(|p| p.n));
                }
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()?;
    listener.start().await?;

    let notifier = Notifier::builder()
        .publisher_id("example")
        .topics(["example-batches"])
        .transport(&transport)
        .build()?;
    let ctx = Context::new();
    let mut receipts = Vec::new();
    for n in 0..SENT {
        receipts.push(
            notifier
                .info(&ctx, "example.tick", &json!({ "n": n }))
                .await?,
        );
    }
    for receipt in receipts {
        receipt.delivered().await?;
    }

    let handled = wait_for(&mut rx, SENT).await?;
    println!("{} notifications handled in batches", handled.len());
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(5)).await?;
    Ok(())
}
