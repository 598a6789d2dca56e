//! Where a new pool starts on Kafka (`StartPosition`), against a real broker.
//!
//! Gated like the conformance suite: `KAFKA_BOOTSTRAP_SERVERS`, else Docker, else
//! skipped (or a failure with `MESSAGING_REQUIRE_BROKER=1`). Offsets by timestamp
//! need Tansu's sqlite storage (its memory storage reports wrong offsets).

mod kafka_support;

use std::time::Duration;

use bytes::Bytes;
use integration_tests::support::runtime;
use messaging_core::{Retry, StartPosition, Subscription, SubscriptionSpec, Transport};

async fn send_all(t: &Transport, topic: &str, bodies: &[&'static str]) {
    for b in bodies {
        t.send(topic, Bytes::from_static(b.as_bytes()), Retry::Limited(3))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
    }
}

/// Everything that arrives within `window` after the first record.
async fn drain(sub: &dyn Subscription, first_within: Duration, window: Duration) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + first_within;
    while out.is_empty() && tokio::time::Instant::now() < deadline {
        for r in sub.receive(100, Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8_lossy(&r.body).into_owned());
            sub.ack(&[r.tag]).await.unwrap();
        }
    }
    let until = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < until {
        for r in sub.receive(100, Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8_lossy(&r.body).into_owned());
            sub.ack(&[r.tag]).await.unwrap();
        }
    }
    out
}

#[test]
fn new_pools_start_where_asked() {
    kafka_support::init_tracing();
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return;
    };
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "");
        let topic = kafka_support::unique("positions");
        t.ensure_topics(std::slice::from_ref(&topic)).await.unwrap();
        send_all(&t, &topic, &["a1", "a2"]).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        send_all(&t, &topic, &["b1", "b2"]).await;

        let subscribe = |start| {
            let t = t.clone();
            let topic = topic.clone();
            async move {
                t.driver()
                    .subscribe(SubscriptionSpec {
                        topics: vec![topic],
                        pool: Some(kafka_support::unique("pool")),
                        start,
                    })
                    .await
                    .unwrap()
            }
        };
        let patience = Duration::from_secs(20);
        let quiet = Duration::from_secs(1);

        // Default: the auto_offset_reset option, earliest by default.
        let sub = subscribe(StartPosition::Default).await;
        assert_eq!(
            drain(sub.as_ref(), patience, quiet).await,
            ["a1", "a2", "b1", "b2"]
        );
        sub.close(patience).await.unwrap();

        // A timestamp: the first record at or after it.
        let sub = subscribe(StartPosition::Timestamp(since)).await;
        assert_eq!(drain(sub.as_ref(), patience, quiet).await, ["b1", "b2"]);
        sub.close(patience).await.unwrap();

        // Latest: only what is sent after the pool joined (~1-3 s on Tansu).
        let sub = subscribe(StartPosition::Latest).await;
        let idle = drain(sub.as_ref(), Duration::from_secs(6), Duration::ZERO).await;
        assert!(idle.is_empty(), "{idle:?}");
        send_all(&t, &topic, &["c1"]).await;
        assert_eq!(drain(sub.as_ref(), patience, quiet).await, ["c1"]);
        sub.close(patience).await.unwrap();
        t.close(patience).await.unwrap();
    });
}
