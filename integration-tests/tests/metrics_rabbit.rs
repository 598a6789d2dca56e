//! Queue depth and health on a real RabbitMQ: notifications waiting in a pool's
//! queue show as its depth (a gauge per queue, and the listener's lag), and the
//! transport's health goes disconnected when the broker's application stops and
//! connected again once it is back.
//!
//! Needs `RABBITMQ_URL`; the health case also `MESSAGING_RABBIT_SCRIPT` and
//! `RABBITMQ_INSTANCE` (as `rabbit_faults.rs`); otherwise skipped with a note (a
//! failure under `MESSAGING_REQUIRE_BROKER=1`).

mod rabbit_support;

use std::time::Duration;

use integration_tests::metrics::{self as seen, gauges};
use integration_tests::support::{eventually, stuck_member, unique, Collector};
use messaging_core::observability::metrics as m;
use messaging_core::observability::ConnectionState;
use messaging_core::{Context, NotificationListener, Notifier, Retry, Target, Transport};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(90);

/// One case at a time: one stops the broker's application.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const BACKLOG: u64 = 8;

fn transport(base: &str) -> Transport {
    seen::install();
    let exchange = unique("metrics-exchange");
    rabbit_support::transport(
        base,
        &format!("control_exchange={exchange}&rabbit_qos_prefetch_count=1"),
    )
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("metrics")
        .topic(topic)
        .retry(Retry::Limited(3))
        .transport(t)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_backlog_in_a_pool_queue_shows_as_its_depth() {
    let Some(base) = rabbit_support::broker_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    let t = transport(&base);
    let topic = unique("depth");
    let pool = unique("depth-pool");
    // The pool's queue exists, then no member runs while the backlog is sent.
    let first = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .pool(&pool)
        .endpoint(Collector::new().endpoint())
        .build()
        .unwrap();
    first.start().await.unwrap();
    first.stop_and_wait().await.unwrap();
    let n = notifier(&t, &topic);
    for i in 0..BACKLOG {
        let receipt = n
            .info(&Context::new(), "depth.test", &json!({ "i": i }))
            .await;
        receipt.unwrap().delivered().await.unwrap();
    }
    let listener = stuck_member(&t, &topic, &pool);
    listener.start().await.unwrap();
    // Prefetch 1: one message is delivered (and held), the others stay ready.
    let depth = || {
        gauges(
            m::QUEUE_DEPTH,
            &[
                (m::ATTR_SYSTEM, "rabbitmq"),
                (m::ATTR_DESTINATION, pool.as_str()),
            ],
        )
        .iter()
        .map(|(_, v)| *v)
        .sum::<f64>()
    };
    assert!(
        eventually(PATIENCE, || depth() >= (BACKLOG - 1) as f64).await,
        "depth {}:\n{}",
        depth(),
        seen::dump()
    );
    assert!(listener.status().lag.unwrap_or(0) >= BACKLOG - 1);
    assert_eq!(t.health().state, ConnectionState::Connected);
    listener.stop_and_wait().await.unwrap();
    let _ = t.close(Duration::from_secs(5)).await;
}

async fn ctl(script: &str, name: &str, what: &str) {
    let out = tokio::process::Command::new("bash")
        .args([script, "ctl", "--name", name, what])
        .output()
        .await
        .expect("the broker script runs");
    assert!(
        out.status.success(),
        "ctl {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn health_goes_disconnected_when_the_broker_stops_and_connected_when_it_is_back() {
    let Some(base) = rabbit_support::broker_url() else {
        return;
    };
    let (Ok(script), Ok(name)) = (
        std::env::var("MESSAGING_RABBIT_SCRIPT"),
        std::env::var("RABBITMQ_INSTANCE"),
    ) else {
        assert!(
            !rabbit_support::broker_required(),
            "MESSAGING_REQUIRE_BROKER=1 but MESSAGING_RABBIT_SCRIPT or RABBITMQ_INSTANCE is not set"
        );
        eprintln!("skipped: needs MESSAGING_RABBIT_SCRIPT and RABBITMQ_INSTANCE");
        return;
    };
    let _turn = TURN.lock().await;
    let t = transport(&base);
    let topic = unique("health");
    let listener = stuck_member(&t, &topic, &unique("health-pool"));
    listener.start().await.unwrap();
    assert_eq!(t.health().state, ConnectionState::Connected);
    ctl(&script, &name, "stop_app").await;
    let down = eventually(PATIENCE, || {
        t.health().state == ConnectionState::Disconnected
    })
    .await;
    ctl(&script, &name, "start_app").await;
    assert!(down, "health with the broker stopped: {:?}", t.health());
    let up = eventually(PATIENCE, || t.health().state == ConnectionState::Connected).await;
    assert!(up, "health with the broker back: {:?}", t.health());
    assert!(t.health().last_error.is_some());
    assert!(listener.status().is_running());
    listener.stop_and_wait().await.unwrap();
    let _ = t.close(Duration::from_secs(5)).await;
}
