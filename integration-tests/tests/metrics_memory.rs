//! Metrics, health and status on the memory driver (tier 1, no broker): the
//! counters read what was sent and handled, failures are counted by kind,
//! histograms got their samples, a listener goes running → stopped, and the
//! transport is connected.

use std::time::Duration;

use integration_tests::support::{eventually, unique, Collector};
use messaging_core::observability::{ConnectionState, RunState};
use messaging_core::{Context, NotificationListener, Notifier, Retry, Target, Transport};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

fn transport(name: &str) -> Transport {
    driver_memory::register();
    Transport::open(&format!("memory://{}", unique(name))).unwrap()
}

#[tokio::test]
async fn listener_status_goes_running_then_stopped_and_memory_is_connected() {
    let t = transport("status");
    let health = t.health();
    assert_eq!(health.state, ConnectionState::Connected);
    assert!(health.is_connected() && health.since.is_some());
    let topic = unique("status-topic");
    let got = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    assert_eq!(listener.status().state, RunState::Created);
    listener.start().await.unwrap();
    let running = listener.status();
    assert_eq!(running.state, RunState::Running);
    assert!(running.last_error.is_none());
    let notifier = Notifier::builder()
        .publisher_id("metrics")
        .topic(&topic)
        .retry(Retry::Limited(1))
        .transport(&t)
        .build()
        .unwrap();
    notifier
        .info(&Context::new(), "status.test", &json!({"n": 1}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    assert!(eventually(PATIENCE, || got.len() == 1).await);
    assert_eq!(listener.status().lag, Some(0), "memory reports its backlog");
    listener.stop_and_wait().await.unwrap();
    let stopped = listener.status();
    assert_eq!(stopped.state, RunState::Stopped);
    assert!(stopped.since >= running.since);
    t.close(Duration::from_secs(1)).await.unwrap();
    let closed = t.health();
    assert!(closed.closed && !closed.is_connected());
}
