//! Pools: every pool gets a copy; the members of one pool share the load.

use messaging_core::Context;
use serde_json::json;

use super::{listen, notifier, unique, Harness};
use crate::support::{assert_exactly_once, Collector};

/// Two pools on one topic each receive every notification.
pub async fn two_pools_each_get_everything(h: Harness) {
    let t = h.transport().await;
    let topic = unique("pools");
    let (pa, pb) = (unique("pool-a"), unique("pool-b"));
    let a = Collector::new();
    let b = Collector::new();
    let la = listen(&t, &topic, Some(&pa), a.endpoint()).await;
    let lb = listen(&t, &topic, Some(&pb), b.endpoint()).await;
    h.pool_settled().await;
    let n = notifier(&t, &[&topic]);
    for i in 0..200 {
        n.info(&Context::new(), "pools", &json!({"i": i}))
            .await
            .unwrap();
    }
    a.settle(200, h.patience() * 2, h.quiet_period()).await;
    b.settle(200, h.patience() * 2, h.quiet_period()).await;
    assert_exactly_once(&a.indexes(), 200, "pool a");
    assert_exactly_once(&b.indexes(), 200, "pool b");
    la.stop_and_wait().await.unwrap();
    lb.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// Two members of one pool together receive every notification exactly once.
///
/// How the work is split depends on the driver (on Kafka, by partition: with one
/// partition a single member may take everything), so only the union is checked.
pub async fn pool_members_split_without_loss(h: Harness) {
    let t = h.transport().await;
    let topic = unique("split");
    let pool = unique("pool");
    let a = Collector::new();
    let b = Collector::new();
    let la = listen(&t, &topic, Some(&pool), a.endpoint()).await;
    let lb = listen(&t, &topic, Some(&pool), b.endpoint()).await;
    h.pool_settled().await;
    let n = notifier(&t, &[&topic]);
    for i in 0..500 {
        n.info(&Context::new(), "split", &json!({"i": i}))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + h.patience() * 3;
    while a.len() + b.len() < 500 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(h.quiet_period()).await;
    let mut all = a.indexes();
    all.extend(b.indexes());
    assert_exactly_once(&all, 500, "one pool, two members");
    la.stop_and_wait().await.unwrap();
    lb.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}
