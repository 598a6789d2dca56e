//! The listener-side `SignatureVerifier` on the memory transport: signed samples
//! reach the handler, forged, tampered and unsigned ones are acknowledged unseen.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{
    BatchEndpoint, Context, HandlerOutcome, Notification, NotificationEndpoint,
    NotificationListener, Notifier, Priority, Target, Transport,
};
use messaging_telemetry::signing::sign;
use messaging_telemetry::{CounterType, Sample, SignatureVerifier, TelemetryPublisher};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const SECRET: &str = "s3cr3t";

fn sample(name: &str) -> Sample {
    Sample::builder(name, CounterType::Delta, "ns", 10u32, "r-1").build()
}

fn signed_value(name: &str, secret: &str) -> Value {
    let mut m = sample(name).to_map();
    sign(&mut m, secret);
    Value::Object(m)
}

async fn send_raw(transport: &Transport, payload: Value) {
    let notifier = Notifier::builder()
        .publisher_id("forger.host")
        .topic("metering")
        .transport(transport)
        .build()
        .unwrap();
    notifier
        .sample(&Context::new(), "metering", &payload)
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
}

/// Sends, in order: good batch, wrong-secret batch, tampered, unsigned sample,
/// unsigned string payload, a batch with one bad sample among good ones, good object.
async fn send_mix(transport: &Transport, broker: &str) {
    let good = TelemetryPublisher::builder(format!("memory://{broker}?topic=metering"))
        .secret(SECRET)
        .build()
        .unwrap();
    let forged = TelemetryPublisher::builder(format!("memory://{broker}?topic=metering"))
        .secret("not-the-secret")
        .build()
        .unwrap();
    good.publish(&[sample("good-1"), sample("good-2")])
        .await
        .unwrap();
    forged.publish(&[sample("forged")]).await.unwrap();
    let mut tampered = signed_value("tampered", SECRET);
    tampered["counter_volume"] = json!(11);
    send_raw(transport, json!([tampered])).await;
    send_raw(transport, json!([sample("unsigned").to_map()])).await;
    send_raw(transport, json!("no signature at all")).await;
    send_raw(
        transport,
        json!([
            signed_value("mixed-ok", SECRET),
            signed_value("mixed-bad", "x")
        ]),
    )
    .await;
    send_raw(transport, signed_value("good-object", SECRET)).await;
}

fn first_name(n: &Notification) -> String {
    let payload = n.payload.to_value().unwrap();
    let v = payload
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or(&payload);
    v["counter_name"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test]
async fn verifier_passes_only_valid_signatures() {
    driver_memory::register();
    let transport = Transport::open("memory://verifier-single").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Notification>>();
    let verifier = SignatureVerifier::from_fn(SECRET, move |n| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(n);
            Ok(HandlerOutcome::Handled)
        }
    });
    let stats = verifier.stats();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("metering"))
        .endpoint(NotificationEndpoint::new(verifier).priorities([Priority::Sample]))
        .allow_requeue(true)
        .max_concurrency(1)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    send_mix(&transport, "verifier-single").await;

    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        got.push(first_name(&n));
    }
    assert_eq!(got, ["good-1", "good-object"]);
    // Let every rejected one be settled too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listener.counters().handled < 7 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rx.try_recv().is_err(), "nothing else reached the handler");
    let c = stats.snapshot();
    assert_eq!(
        (c.passed, c.rejected_invalid, c.rejected_missing),
        (2, 3, 2)
    );
    assert_eq!(c.rejected(), 5);
    let lc = listener.counters();
    assert_eq!(
        (lc.received, lc.handled, lc.requeued, lc.handler_failures),
        (7, 7, 0, 0)
    );
    listener.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn batch_verifier_filters_the_batch() {
    driver_memory::register();
    let transport = Transport::open("memory://verifier-batch").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<String>>();
    let verifier =
        SignatureVerifier::from_batch_fn(SECRET, move |batch: Vec<Arc<Notification>>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(batch.iter().map(|n| first_name(n)).collect());
                Ok(HandlerOutcome::Handled)
            }
        });
    let stats = verifier.stats();
    // Everything is sent before the listener starts, so one batch holds all seven.
    send_mix(&transport, "verifier-batch").await;
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("metering"))
        .batch_endpoint(BatchEndpoint::new_batch(verifier).priorities([Priority::Sample]))
        .batch(100, Duration::from_millis(300))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        got.extend(batch);
    }
    assert_eq!(got, ["good-1", "good-object"]);
    let c = stats.snapshot();
    assert_eq!((c.passed, c.rejected()), (2, 5));
    listener.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn empty_secret_disables_verification() {
    driver_memory::register();
    let transport = Transport::open("memory://verifier-empty").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Notification>>();
    let verifier = SignatureVerifier::from_fn("", move |n| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(n);
            Ok(HandlerOutcome::Handled)
        }
    });
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("metering"))
        .endpoint(NotificationEndpoint::new(verifier))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    send_raw(&transport, json!("unsigned")).await;
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload, json!("unsigned"));
    listener.stop_and_wait().await.unwrap();
}
