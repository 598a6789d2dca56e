//! A typed handler: the endpoint's closure takes the payload as a struct of its own,
//! deserialized straight from the JSON text it arrived as. A payload that does not fit
//! the struct is skipped like a foreign record (logged, counted, copied to the
//! dead-letter topic), and the listener carries on.
//!
//! Run with `cargo run -p examples --example typed_handler`.

use messaging_core::{
    Context, HandlerOutcome, NotificationEndpoint, NotificationFilter, NotificationListener,
    Notifier, Target, Transport,
};
use serde::Deserialize;
use serde_json::json;

/// What a `compute.instance.create.*` payload carries (other keys are ignored).
#[derive(Debug, Deserialize)]
struct InstanceCreated {
    instance_id: String,
    flavor: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> messaging_core::Result<()> {
    driver_memory::register();
    let transport = Transport::open("memory://typed-handler")?;

    let (seen, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let created = NotificationEndpoint::typed(move |created: InstanceCreated, n| {
        let seen = seen.clone();
        async move {
            println!(
                "{} from {}: {} ({})",
                n.event_type, n.publisher_id, created.instance_id, created.flavor
            );
            let _ = seen.send(created.instance_id);
            Ok(HandlerOutcome::Handled)
        }
    })
    .filter(NotificationFilter::new().event_type(r"compute\.instance\.create\.")?);

    let listener = NotificationListener::builder(&transport)
        .target(Target::new("notifications"))
        .endpoint(created)
        .dead_letter_topic("notifications.dead")
        .build()?;
    listener.start().await?;

    let notifier = Notifier::builder()
        .publisher_id("compute.host1")
        .transport(&transport)
        .build()?;
    let ctx = Context::new();
    for payload in [
        json!({"instance_id": "i-1", "flavor": "m1.small", "state": "active"}),
        json!({"instance_id": 7}), // does not fit `InstanceCreated`: skipped
        json!({"instance_id": "i-2", "flavor": "m1.large"}),
    ] {
        notifier
            .info(&ctx, "compute.instance.create.end", &payload)
            .await?
            .delivered()
            .await?;
    }

    assert_eq!(handled.recv().await.as_deref(), Some("i-1"));
    assert_eq!(handled.recv().await.as_deref(), Some("i-2"));
    let counters = listener.counters();
    assert_eq!(counters.skipped, 1, "the payload that did not fit");
    assert_eq!(counters.dead_lettered, 1);
    listener.stop_and_wait().await?;
    println!("2 typed notifications handled, 1 that did not fit skipped");
    Ok(())
}
