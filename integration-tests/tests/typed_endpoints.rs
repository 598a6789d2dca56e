//! Typed endpoints on the memory driver: the handler gets the payload as its own
//! type; a payload that does not fit is skipped like a foreign record (counted,
//! dead-lettered) without stopping the listener, for one-at-a-time and batch
//! listeners.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::support::Collector;
use messaging_core::{
    BatchEndpoint, Context, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier,
    Priority, Retry, StartPosition, Target, Transport,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Order<'a> {
    id: u32,
    #[serde(borrow)]
    item: std::borrow::Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct OwnedOrder {
    id: u32,
    item: String,
}

const PATIENCE: Duration = Duration::from_secs(30);

fn transport(name: &str) -> Transport {
    driver_memory::register();
    Transport::open(&format!("memory://typed-{name}")).unwrap()
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("shop")
        .topic(topic)
        .retry(Retry::Limited(3))
        .transport(t)
        .build()
        .unwrap()
}

/// Wait until `done` holds (checked every 10 ms) or `PATIENCE` passed.
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn payloads_that_do_not_fit_are_skipped_and_dead_lettered() {
    let t = transport("single");
    let seen: Arc<Mutex<Vec<OwnedOrder>>> = Arc::default();
    let typed = {
        let seen = seen.clone();
        NotificationEndpoint::typed(move |order: OwnedOrder, n| {
            assert_eq!(n.event_type, "order.created");
            seen.lock().unwrap().push(order);
            async { Ok(HandlerOutcome::Handled) }
        })
        .priorities([Priority::Info])
    };
    // An untyped endpoint for another priority: what the typed one does not accept
    // is not checked against its type.
    let warnings = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new("orders"))
        .endpoint(typed)
        .endpoint(warnings.endpoint().priorities([Priority::Warn]))
        .dead_letter_topic("orders.dead")
        .start_position(StartPosition::Earliest)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let n = notifier(&t, "orders");
    let ctx = Context::new();
    for payload in [
        json!({"id": 1, "item": "tea", "extra": [1, 2]}),
        json!({"id": "two", "item": "cake"}),
        json!("not an object"),
        json!({"id": 4, "item": "jam"}),
    ] {
        n.info(&ctx, "order.created", &payload).await.unwrap();
    }
    n.warn(&ctx, "order.late", &json!({"id": "five"}))
        .await
        .unwrap();
    until(|| seen.lock().unwrap().len() >= 2 && !warnings.is_empty()).await;
    until(|| listener.counters().handled >= 3).await;

    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            OwnedOrder {
                id: 1,
                item: "tea".into()
            },
            OwnedOrder {
                id: 4,
                item: "jam".into()
            },
        ]
    );
    assert_eq!(
        warnings.len(),
        1,
        "the other endpoint's notification went through"
    );
    let counters = listener.counters();
    assert_eq!(counters.skipped, 2);
    assert_eq!(counters.dead_lettered, 2);
    assert_eq!(counters.handled, 3, "the two that fit and the warning");
    listener.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn typed_batches_leave_out_what_does_not_fit() {
    let t = transport("batch");
    let batches: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
    let endpoint = {
        let batches = batches.clone();
        BatchEndpoint::typed_batch(move |items: Vec<(OwnedOrder, _)>| {
            batches
                .lock()
                .unwrap()
                .push(items.iter().map(|(order, _)| order.id).collect());
            async { Ok(HandlerOutcome::Handled) }
        })
    };
    let listener = NotificationListener::builder(&t)
        .target(Target::new("orders"))
        .batch_endpoint(endpoint)
        .batch(3, Duration::from_secs(3600))
        .start_position(StartPosition::Earliest)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let n = notifier(&t, "orders");
    let ctx = Context::new();
    for id in 0..9u32 {
        let payload = if id % 3 == 1 {
            json!({"id": id})
        } else {
            json!({"id": id, "item": "x"})
        };
        n.info(&ctx, "order.created", &payload).await.unwrap();
    }
    // Six fit: two full batches of three; the three that do not fit never join one.
    until(|| batches.lock().unwrap().iter().map(Vec::len).sum::<usize>() >= 6).await;
    let mut ids: Vec<u32> = batches.lock().unwrap().concat();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 2, 3, 5, 6, 8]);
    assert!(batches.lock().unwrap().iter().all(|b| b.len() == 3));
    assert_eq!(listener.counters().skipped, 3);
    listener.stop_and_wait().await.unwrap();
}

#[test]
fn typed_access_borrows_from_the_payload() {
    let payload = messaging_core::Payload::from_json(r#"{"id": 7, "item": "scone"}"#).unwrap();
    let order: Order<'_> = payload.deserialize().unwrap();
    assert_eq!(order.id, 7);
    assert!(
        matches!(order.item, std::borrow::Cow::Borrowed("scone")),
        "a string without escapes is borrowed, not copied"
    );
    let escaped = messaging_core::Payload::from_json(r#"{"id": 8, "item": "a\"b"}"#).unwrap();
    let order: Order<'_> = escaped.deserialize().unwrap();
    assert_eq!(order.item, "a\"b");
    let err = messaging_core::Payload::from_json(r#"{"id": "x"}"#)
        .unwrap()
        .deserialize::<OwnedOrder>()
        .unwrap_err();
    assert_eq!(err.kind(), &messaging_core::ErrorKind::Decode);
    assert!(err.to_string().contains("OwnedOrder"), "{err}");
    assert!(messaging_core::Payload::from_json("{broken").is_err());
}
