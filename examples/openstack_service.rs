//! A service laid out as an OpenStack one, from one configuration file: RPC on one
//! transport (`transport_url`: RabbitMQ in production), notifications on another
//! (`[notifications] transport_url`: Kafka). A "compute" RPC server boots instances
//! and emits `compute.instance.create.end` for each; an "audit" listener consumes them.
//!
//! ```sh
//! cargo run -p examples --example openstack_service        # examples/config/openstack-memory.toml
//! cargo run -p examples --example openstack_service -- examples/config/openstack.toml
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use examples::{load_config, register_drivers, wait_for};
use messaging_core::rpc::{RemoteError, RpcEndpoint, RpcServer};
use messaging_core::{Context, HandlerOutcome, NotificationEndpoint, Notifier, Target};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct Boot {
    name: String,
}

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    register_drivers();
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/openstack-memory.toml")
        });
    let config = load_config(&path)?;
    let rpc = config.open_transport()?;
    let notifications = config.open_notification_transport()?;
    println!(
        "RPC on {}, notifications on {}",
        rpc.url(),
        notifications.url()
    );

    // The audit service: a listener in its pool on the notification transport.
    let (seen, mut audit) = mpsc::unbounded_channel();
    let listener = config
        .listener_builder(&notifications)
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(format!("{} {}", n.event_type, n.payload));
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()?;
    listener.start().await?;

    // The compute service: an RPC server whose method emits a notification.
    let notifier: Notifier = config
        .notifier_builder(&notifications)?
        .publisher_id("compute.host1")
        .build()?;
    let compute = RpcEndpoint::new().method("boot", move |ctx: Context, b: Boot| {
        let notifier = notifier.clone();
        async move {
            let id = format!("{}-1", b.name);
            notifier
                .info(
                    &ctx,
                    "compute.instance.create.end",
                    &json!({"instance_id": id, "name": b.name}),
                )
                .await
                .map_err(|e| RemoteError::new("NotificationFailed", e.to_string()))?;
            Ok::<_, RemoteError>(id)
        }
    });
    let server = RpcServer::builder(&rpc, Target::new("compute").with_server("host1"))
        .endpoint(compute)
        .build()?;
    server.start().await?;

    // A client, with the configured rpc_response_timeout.
    let client = config.rpc_client(&rpc, Target::new("compute"));
    let mut ctx = Context::new();
    ctx.insert("request_id".into(), json!("req-42"));
    for name in ["web", "db"] {
        let id: String = client.call(&ctx, "boot", &json!({"name": name})).await?;
        println!("booted {id}");
    }
    for line in wait_for(&mut audit, 2).await? {
        println!("audit saw {line}");
    }
    println!("2 instances booted over RPC, 2 notifications audited");
    server.stop_and_wait().await?;
    listener.stop_and_wait().await?;
    rpc.close(Duration::from_secs(5)).await?;
    notifications.close(Duration::from_secs(5)).await?;
    Ok(())
}
