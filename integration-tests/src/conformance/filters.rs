//! Endpoint filters on every field.

use messaging_core::{Context, NotificationFilter, NotificationListener, Priority, Target};
use serde_json::json;

use super::{notifier, unique, Harness};
use crate::support::Collector;

/// Each filter field selects exactly the matching notifications.
pub async fn every_filter_field(h: Harness) {
    let t = h.transport().await;
    let topic = unique("filter");
    let by_publisher = Collector::new();
    let by_event = Collector::new();
    let by_context = Collector::new();
    let by_payload = Collector::new();
    let by_metadata = Collector::new();
    let combined = Collector::new();
    let everything = Collector::new();
    let f = NotificationFilter::new;
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(
            by_publisher
                .endpoint()
                .filter(f().publisher_id(r"compute\.").unwrap()),
        )
        .endpoint(
            by_event
                .endpoint()
                .filter(f().event_type(r"image\.upload").unwrap()),
        )
        .endpoint(
            by_context
                .endpoint()
                .filter(f().context("project_id", "p-42").unwrap()),
        )
        .endpoint(
            by_payload
                .endpoint()
                .filter(f().payload("state", "error").unwrap()),
        )
        .endpoint(
            by_metadata
                .endpoint()
                .filter(f().metadata("message_id", "^[0-9a-f]{8}-").unwrap()),
        )
        .endpoint(
            combined.endpoint().filter(
                f().publisher_id("compute")
                    .unwrap()
                    .payload("state", "error")
                    .unwrap(),
            ),
        )
        .endpoint(everything.endpoint())
        .build()
        .unwrap();
    l.start().await.unwrap();
    let base = notifier(&t, &[&topic]);
    let compute = base.prepare(Some("compute.host1"), None);
    let image = base.prepare(Some("image.host2"), None);
    let ctx42: Context = serde_json::from_value(json!({"project_id": "p-42"})).unwrap();
    let ctx_num: Context = serde_json::from_value(json!({"project_id": 42})).unwrap();
    compute
        .info(
            &Context::new(),
            "compute.instance.create",
            &json!({"i": 0, "state": "active"}),
        )
        .await
        .unwrap();
    image
        .info(
            &ctx42,
            "image.upload.end",
            &json!({"i": 1, "state": "error"}),
        )
        .await
        .unwrap();
    compute
        .notify(
            Priority::Error,
            &ctx_num,
            "compute.instance.delete",
            &json!({"i": 2, "state": "error"}),
        )
        .await
        .unwrap();
    image
        .info(
            &Context::new(),
            "xx.image.upload",
            &json!({"i": 3, "state": 5}),
        )
        .await
        .unwrap();
    image
        .info(&Context::new(), "other", &json!(["not", "an", "object"]))
        .await
        .unwrap();
    assert_eq!(
        everything.settle(5, h.patience(), h.quiet_period()).await,
        5
    );
    let sorted = |c: &Collector| {
        let mut v = c.indexes();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&by_publisher),
        vec![0, 2],
        "publisher_id is anchored at the start"
    );
    assert_eq!(
        sorted(&by_event),
        vec![1],
        "event_type is anchored at the start"
    );
    assert_eq!(
        sorted(&by_context),
        vec![1],
        "a non-string context value never matches"
    );
    assert_eq!(
        sorted(&by_payload),
        vec![1, 2],
        "payload key; a non-object payload never matches"
    );
    assert_eq!(by_metadata.len(), 5, "every message id is a UUID");
    assert_eq!(sorted(&combined), vec![2], "every given field must match");
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}
