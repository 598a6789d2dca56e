//! `messaging demo`: a self-contained tour on `memory://` (or any `--url`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use messaging_core::{
    BatchEndpoint, Context, HandlerOutcome, NotificationEndpoint, NotificationFilter,
    NotificationListener, Notifier, Priority, Result, Target, Transport,
};
use serde_json::json;

/// Arguments of `messaging demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Transport URL.
    #[arg(long, default_value = "memory://demo", env = "MESSAGING_URL")]
    url: String,
    /// Topic to use.
    #[arg(long, default_value = "demo_notifications")]
    topic: String,
}

type Tally = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn record(tally: &Tally, who: &str, what: String) {
    tally
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(who.to_owned())
        .or_default()
        .push(what);
}

fn recording_endpoint(tally: Tally, who: &'static str) -> NotificationEndpoint {
    NotificationEndpoint::from_fn(move |n| {
        let tally = tally.clone();
        async move {
            record(
                &tally,
                who,
                format!("{} {} from {}", n.priority, n.event_type, n.publisher_id),
            );
            Ok(HandlerOutcome::Handled)
        }
    })
}

pub(crate) async fn run(a: DemoArgs) -> Result<()> {
    let transport = Transport::open(&a.url)?;
    let tally: Tally = Arc::default();
    println!("== messaging demo on {} ==", transport.url());
    let listeners = start_listeners(&transport, &a.topic, &tally).await?;
    emit_notifications(&transport, &a.topic).await?;
    wait_for_tally(&tally).await;
    for l in &listeners {
        l.stop_and_wait().await?;
    }
    print_tally(&tally);
    println!("\nRPC (request/reply):");
    match rpc_exchange(&transport).await {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), messaging_core::ErrorKind::Unsupported { .. }) => {
            println!("  not on this transport: {e}");
        }
        Err(e) => return Err(e),
    }
    transport.close(Duration::from_secs(10)).await?;
    Ok(())
}

/// The four listeners of the tour: two full copies, a filtered one, a batch one.
async fn start_listeners(
    transport: &Transport,
    topic: &str,
    tally: &Tally,
) -> Result<[NotificationListener; 4]> {
    println!("Listeners:");
    println!("  * pool 'audit'   : every notification (all priorities)");
    println!("  * pool 'billing' : every notification, second independent copy");
    println!("  * pool 'alerts'  : only error/critical from publishers matching ^compute\\.");
    println!(
        "  * pool 'metering': a batch listener for samples (batches of up to 4, 200 ms timeout)"
    );
    let audit = listener(
        transport,
        topic,
        "audit",
        recording_endpoint(tally.clone(), "audit"),
    )
    .await?;
    let billing = listener(
        transport,
        topic,
        "billing",
        recording_endpoint(tally.clone(), "billing"),
    )
    .await?;
    let alerts_endpoint = recording_endpoint(tally.clone(), "alerts")
        .priorities([Priority::Error, Priority::Critical])
        .filter(NotificationFilter::new().publisher_id(r"compute\.")?);
    let alerts = listener(transport, topic, "alerts", alerts_endpoint).await?;
    let batches = {
        let tally = tally.clone();
        BatchEndpoint::from_batch_fn(move |batch| {
            let tally = tally.clone();
            async move {
                let names: Vec<String> = batch
                    .iter()
                    .map(|n| {
                        let samples = n.payload.to_value().unwrap_or_default();
                        samples[0]["counter_name"]
                            .as_str()
                            .unwrap_or("?")
                            .to_owned()
                    })
                    .collect();
                record(
                    &tally,
                    "metering",
                    format!("batch of {}: {}", batch.len(), names.join(", ")),
                );
                Ok(HandlerOutcome::Handled)
            }
        })
        .priorities([Priority::Sample])
    };
    let metering = NotificationListener::builder(transport)
        .target(Target::new(topic))
        .pool("metering")
        .batch_endpoint(batches)
        .batch(4, Duration::from_millis(200))
        .build()?;
    metering.start().await?;
    Ok([audit, billing, alerts, metering])
}

/// Every service's notifications, each awaited until the broker acknowledged it.
async fn emit_notifications(transport: &Transport, topic: &str) -> Result<()> {
    println!("\nServices emitting:");
    let base = Notifier::builder()
        .publisher_id("demo")
        .topic(topic)
        .transport(transport)
        .build()?;
    let compute = base.prepare(Some("compute.host1"), None);
    let image = base.prepare(Some("image.host2"), None);
    let telemetry = base.prepare(Some("telemetry.publisher.host3"), None);
    let ctx: Context = serde_json::from_value(
        json!({"request_id": "req-1", "user": "alice", "auth_token": "never-sent"}),
    )?;
    let mut receipts = Vec::new();
    let emit = |who: &str, p: Priority, e: &str| println!("  {who:<28} {p:<8} {e}");
    emit(
        "compute.host1",
        Priority::Info,
        "compute.instance.create.end",
    );
    receipts.push(
        compute
            .info(
                &ctx,
                "compute.instance.create.end",
                &json!({"instance_id": "i-1", "state": "active"}),
            )
            .await?,
    );
    emit(
        "compute.host1",
        Priority::Error,
        "compute.instance.resize.error",
    );
    receipts.push(
        compute
            .error(
                &ctx,
                "compute.instance.resize.error",
                &json!({"instance_id": "i-1", "reason": "no host"}),
            )
            .await?,
    );
    emit("image.host2", Priority::Info, "image.upload");
    receipts.push(
        image
            .info(
                &ctx,
                "image.upload",
                &json!({"image_id": "img-9", "size": 1048576}),
            )
            .await?,
    );
    emit("image.host2", Priority::Critical, "image.store.full");
    receipts.push(
        image
            .critical(&ctx, "image.store.full", &json!({"store": "file"}))
            .await?,
    );
    emit("compute.host1", Priority::Audit, "compute.instance.exists");
    receipts.push(
        compute
            .audit(
                &ctx,
                "compute.instance.exists",
                &json!({"instance_id": "i-1"}),
            )
            .await?,
    );
    for (i, name) in [
        "cpu",
        "memory",
        "disk.read.bytes",
        "network.incoming.bytes",
        "vcpus",
        "cpu_util",
    ]
    .iter()
    .enumerate()
    {
        emit(
            "telemetry.publisher.host3",
            Priority::Sample,
            &format!("metering ({name})"),
        );
        let sample = json!([{"counter_name": name, "counter_type": "gauge", "counter_volume": i, "resource_id": "i-1"}]);
        receipts.push(telemetry.sample(&ctx, "metering", &sample).await?);
    }
    for r in receipts {
        r.delivered().await?;
    }
    Ok(())
}

/// Wait (up to 20 s) until every listener got what it should, then a little longer
/// for the last batch.
async fn wait_for_tally(tally: &Tally) {
    // 5 non-sample notifications for audit and billing, 1 for alerts, 6 samples in batches.
    let want = |who: &str, n: usize| {
        let tally = tally.clone();
        let who = who.to_owned();
        move || {
            tally
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&who)
                .map_or(0, Vec::len)
                >= n
        }
    };
    let checks: Vec<Box<dyn Fn() -> bool>> = vec![
        Box::new(want("audit", 11)),
        Box::new(want("billing", 11)),
        Box::new(want("alerts", 1)),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !checks.iter().all(|c| c()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
}

fn print_tally(tally: &Tally) {
    println!("\nWho got what:");
    for (who, items) in tally.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("  {who} ({}):", items.len());
        for item in items {
            println!("    - {item}");
        }
    }
    println!(
        "\nNote: the context's auth_token was removed before sending; every pool got its own copy;"
    );
    println!("the alerts pool saw only compute's error; samples arrived in batches.");
}

async fn listener(
    t: &Transport,
    topic: &str,
    pool: &str,
    endpoint: NotificationEndpoint,
) -> Result<NotificationListener> {
    let l = NotificationListener::builder(t)
        .target(Target::new(topic))
        .pool(pool)
        .endpoint(endpoint)
        .build()?;
    l.start().await?;
    Ok(l)
}

async fn rpc_exchange(transport: &Transport) -> Result<()> {
    use messaging_core::rpc::demo::demo_endpoint;
    use messaging_core::{RpcClient, RpcServer};
    let mut servers = Vec::new();
    for name in ["scheduler-1", "scheduler-2"] {
        let s = RpcServer::builder(transport, Target::new("demo_scheduler").with_server(name))
            .endpoint(demo_endpoint())
            .build()?;
        s.start().await?;
        servers.push(s);
    }
    let client = RpcClient::new(transport, Target::new("demo_scheduler"))
        .with_timeout(Duration::from_secs(10));
    let ctx: Context = serde_json::from_value(json!({"request_id": "req-2", "user": "alice"}))?;
    let sum: i64 = client.call(&ctx, "add", &json!({"a": 20, "b": 22})).await?;
    println!("  call add(20, 22) on any scheduler        -> {sum}");
    let pong: String = client
        .prepare()
        .with_server("scheduler-2")
        .call(&ctx, "ping", &json!({}))
        .await?;
    println!("  call ping() on scheduler-2 only          -> {pong}");
    let echoed: serde_json::Value = client.call(&ctx, "context", &json!({})).await?;
    println!(
        "  call context(): the server saw user      -> {}",
        echoed["user"]
    );
    match client
        .call::<_, serde_json::Value>(&ctx, "fail", &json!({"message": "no valid host"}))
        .await
    {
        Err(e) => println!("  call fail() reaches the caller as        -> {e}"),
        Ok(v) => println!("  call fail() unexpectedly returned {v}"),
    }
    client.fanout(&ctx, "ping", &json!({})).await?;
    println!("  fanout ping() to both schedulers         -> sent");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in servers {
        s.stop_and_wait().await?;
    }
    Ok(())
}
