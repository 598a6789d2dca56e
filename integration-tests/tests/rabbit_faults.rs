//! Faults on a real RabbitMQ: the broker closes every connection, and the broker is
//! killed (-9) and restarted.
//!
//! Needs `RABBITMQ_URL`, `MESSAGING_RABBIT_SCRIPT` (`scripts/rabbitmq.sh`) and
//! `RABBITMQ_INSTANCE` (the node's name for that script), as the README's test command
//! exports them; otherwise skipped with a note (a failure under
//! `MESSAGING_REQUIRE_BROKER=1`). The cases take turns: each one disturbs the node.

mod rabbit_support;

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::support::{unique, Collector};
use messaging_core::{
    Context, NotificationListener, Notifier, Retry, StartPosition, Target, Transport,
};
use serde_json::json;

/// One case at a time: each restarts the node or closes its connections.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Node {
    url: String,
    script: String,
    name: String,
}

fn node() -> Option<Node> {
    let url = rabbit_support::broker_url()?;
    match (
        std::env::var("MESSAGING_RABBIT_SCRIPT"),
        std::env::var("RABBITMQ_INSTANCE"),
    ) {
        (Ok(script), Ok(name)) if !script.is_empty() && !name.is_empty() => {
            Some(Node { url, script, name })
        }
        _ if rabbit_support::broker_required() => panic!(
            "MESSAGING_REQUIRE_BROKER=1 but MESSAGING_RABBIT_SCRIPT or RABBITMQ_INSTANCE is not set"
        ),
        _ => {
            eprintln!(
                "RabbitMQ fault tests skipped: they need MESSAGING_RABBIT_SCRIPT=scripts/rabbitmq.sh \
                 and RABBITMQ_INSTANCE (the node's --name), as scripts/test-all.sh sets them"
            );
            None
        }
    }
}

impl Node {
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("bash")
            .arg(&self.script)
            .arg(args[0])
            .args(["--name", &self.name])
            .args(&args[1..])
            .output()
            .await
            .expect("the broker script runs");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A transport that retries sends across a reconnect, with a durable exchange and
/// durable queues of its own (they and their persistent messages survive a broker
/// restart; the other tests' `openstack` exchange is not durable).
fn transport(node: &Node) -> Transport {
    rabbit_support::transport(
        &node.url,
        "control_exchange=faults-durable&amqp_durable_queues=true&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&rabbit_interval_max=1&kombu_reconnect_delay=0",
    )
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("faults")
        .topic(topic)
        .retry(Retry::Limited(20))
        .transport(t)
        .build()
        .unwrap()
}

/// Send `ids` and wait until each is confirmed by the broker.
async fn send_confirmed(n: &Notifier, ids: std::ops::Range<u32>) {
    for i in ids {
        n.info(&Context::new(), "fault.event", &json!({"i": i}))
            .await
            .unwrap_or_else(|e| panic!("notification {i} was not accepted: {e}"))
            .delivered()
            .await
            .unwrap_or_else(|e| panic!("notification {i} was not confirmed: {e}"));
    }
}

/// How many times each `i` arrived.
fn counts(c: &Collector) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for n in c.all() {
        let i = n.payload.to_value().unwrap()["i"].as_u64().unwrap();
        *out.entry(i).or_default() += 1;
    }
    out
}

async fn listener(t: &Transport, topic: &str, c: &Collector) -> NotificationListener {
    let l = NotificationListener::builder(t)
        .target(Target::new(topic))
        .endpoint(c.endpoint())
        .start_position(StartPosition::Earliest)
        .build()
        .unwrap();
    l.start().await.unwrap();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_closed_by_the_broker_listener_and_notifier_recover() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = transport(&node);
    let topic = unique("fault-close");
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..20).await;
    assert_eq!(c.wait_for(20, Duration::from_secs(20)).await, 20);
    node.run(&["ctl", "close_all_connections", "fault test"])
        .await;
    send_confirmed(&n, 20..40).await;
    integration_tests::support::eventually(Duration::from_secs(30), || counts(&c).len() == 40)
        .await;
    let got = counts(&c);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>(),
        "every confirmed notification arrives after the reconnect"
    );
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_no_confirmed_notification() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = transport(&node);
    let topic = unique("fault-restart");
    let n = notifier(&t, &topic);
    // Confirmed before the kill: in a durable queue, persistent.
    send_confirmed(&n, 0..50).await;
    node.run(&["restart"]).await;
    // The notifier reconnects on its next send.
    send_confirmed(&n, 50..60).await;
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    integration_tests::support::eventually(Duration::from_secs(30), || counts(&c).len() == 60)
        .await;
    let got = counts(&c);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>(),
        "every notification confirmed before or after the restart arrives"
    );
    assert!(
        got.values().all(|&k| k == 1),
        "nothing was redelivered: {got:?}"
    );
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_by_an_operator_is_declared_again_by_listener_and_notifier() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = transport(&node);
    let topic = unique("fault-deleted");
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..20).await;
    assert_eq!(c.wait_for(20, Duration::from_secs(20)).await, 20);
    // The broker cancels the listener's consumer; the notifier's declaration is stale.
    node.run(&["ctl", "delete_queue", &format!("{topic}.info")]).await;
    // Each send is confirmed: a returned one is declared again and resent.
    send_confirmed(&n, 20..40).await;
    integration_tests::support::eventually(Duration::from_secs(30), || counts(&c).len() == 40)
        .await;
    let got = counts(&c);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>(),
        "what was sent after the deletion arrives"
    );
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}
