//! Batch listeners: size and timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{BatchEndpoint, Context, HandlerOutcome, NotificationListener, Target};
use serde_json::json;

use super::{notifier, unique, Harness};
use crate::support::{assert_exactly_once, Collector};

fn batch_recorder(sizes: Arc<Mutex<Vec<usize>>>, all: Collector) -> BatchEndpoint {
    BatchEndpoint::from_batch_fn(move |batch| {
        let sizes = sizes.clone();
        let all = all.clone();
        async move {
            sizes.lock().unwrap().push(batch.len());
            for n in batch {
                all.push(n);
            }
            Ok(HandlerOutcome::Handled)
        }
    })
}

/// Batches never exceed the batch size; full batches are handed over at that size.
pub async fn batch_sizes(h: Harness) {
    let t = h.transport().await;
    let topic = unique("batch");
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let all = Collector::new();
    let n = notifier(&t, &[&topic]);
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .batch_endpoint(batch_recorder(sizes.clone(), all.clone()))
        .batch(10, h.patience())
        .max_concurrency(1)
        .build()
        .unwrap();
    l.start().await.unwrap();
    let mut receipts = Vec::new();
    for i in 0..30 {
        receipts.push(
            n.info(&Context::new(), "batch", &json!({"i": i}))
                .await
                .unwrap(),
        );
    }
    for r in receipts {
        r.delivered().await.unwrap();
    }
    all.settle(30, h.patience() * 3, h.quiet_period()).await;
    assert_exactly_once(&all.indexes(), 30, "batched");
    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|s| *s <= 10 && *s > 0), "sizes {sizes:?}");
    assert!(
        sizes.contains(&10),
        "full batches come at the batch size: {sizes:?}"
    );
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A partial batch is handed over once the batch timeout passes.
pub async fn batch_timeout(h: Harness) {
    let t = h.transport().await;
    let topic = unique("batch-timeout");
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let all = Collector::new();
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .batch_endpoint(batch_recorder(sizes.clone(), all.clone()))
        .batch(1000, Duration::from_millis(300))
        .build()
        .unwrap();
    l.start().await.unwrap();
    let n = notifier(&t, &[&topic]);
    for i in 0..5 {
        n.info(&Context::new(), "partial", &json!({"i": i}))
            .await
            .unwrap();
    }
    all.settle(5, h.patience(), h.quiet_period()).await;
    assert_exactly_once(&all.indexes(), 5, "partial batch");
    assert!(sizes.lock().unwrap().iter().all(|s| *s <= 5));
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}
