//! One program, memory or Kafka chosen by a configuration file
//! ([`messaging_core::MessagingConfig`] in TOML): the transport, the notifier's
//! topics and the listener's pool all come from the file.
//!
//! ```sh
//! cargo run -p examples --example config_file                                  # examples/config/memory.toml
//! cargo run -p examples --example config_file -- examples/config/kafka.toml    # a broker on 127.0.0.1:9092
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use examples::{load_config, register_drivers, wait_for};
use messaging_core::{Context, HandlerOutcome, NotificationEndpoint};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    register_drivers();
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("config/memory.toml"));
    let config = load_config(&path)?;
    println!("{}: transport {}", path.display(), config.transport_url);
    let transport = config.open_transport()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = config
        .listener_builder(&transport)
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let tx = tx.clone();
            async move {
                println!("handled {}: {}", n.event_type, n.payload);
                let _ = tx.send(());
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()?;
    listener.start().await?;

    let notifier = config
        .notifier_builder(&transport)?
        .publisher_id("example.config")
        .build()?;
    notifier
        .info(
            &Context::new(),
            "example.configured",
            &json!({"from": path.display().to_string()}),
        )
        .await?
        .delivered()
        .await?;

    let topics = config.notifications.topics.len();
    wait_for(&mut rx, topics).await?;
    println!("handled on {topics} topic(s)");
    listener.stop_and_wait().await?;
    transport.close(Duration::from_secs(5)).await?;
    Ok(())
}
