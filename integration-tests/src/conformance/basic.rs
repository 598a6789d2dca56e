//! Sending and receiving: the basic contract.

use std::sync::Arc;

use messaging_core::{Context, Priority};
use serde_json::json;

use super::{listen, notifier, unique, Harness};
use crate::support::{assert_exactly_once, Collector};

/// One notification arrives with every field intact.
pub async fn send_and_receive(h: Harness) {
    let t = h.transport().await;
    let topic = unique("send");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let n = notifier(&t, &[&topic]);
    n.info(
        &Context::new(),
        "compute.instance.create.end",
        &json!({"id": "abc", "n": 1}),
    )
    .await
    .unwrap();
    assert_eq!(got.settle(1, h.patience(), h.quiet_period()).await, 1);
    let r = &got.all()[0];
    assert_eq!(r.priority, Priority::Info);
    assert_eq!(r.event_type, "compute.instance.create.end");
    assert_eq!(r.publisher_id, "conformance.publisher");
    assert_eq!(r.payload, json!({"id": "abc", "n": 1}));
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// The receipt resolves once the transport has the notification.
pub async fn delivery_receipt_resolves(h: Harness) {
    let t = h.transport().await;
    let topic = unique("receipt");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let receipt = notifier(&t, &[&topic])
        .warn(&Context::new(), "e", &1)
        .await
        .unwrap();
    tokio::time::timeout(h.patience(), receipt.delivered())
        .await
        .expect("receipt resolves in time")
        .unwrap();
    assert_eq!(got.wait_for(1, h.patience()).await, 1);
    assert!(t.counters().accepted >= 1);
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// 1,000 notifications, none lost, none duplicated.
pub async fn bulk_thousand_no_loss_no_duplicate(h: Harness) {
    let t = h.transport().await;
    let topic = unique("bulk");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let n = notifier(&t, &[&topic]);
    let mut receipts = Vec::new();
    for i in 0..1000 {
        receipts.push(
            n.info(&Context::new(), "bulk", &json!({"i": i}))
                .await
                .unwrap(),
        );
    }
    for r in receipts {
        r.delivered().await.unwrap();
    }
    got.settle(1000, h.patience() * 3, h.quiet_period()).await;
    assert_exactly_once(&got.indexes(), 1000, "bulk");
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// Each priority goes to the endpoint that handles it, and only there.
pub async fn each_priority_reaches_its_handler(h: Harness) {
    let t = h.transport().await;
    let topic = unique("prio");
    let collectors: Vec<(Priority, Collector)> = Priority::ALL
        .iter()
        .map(|p| (*p, Collector::new()))
        .collect();
    let mut b = messaging_core::NotificationListener::builder(&t)
        .target(messaging_core::Target::new(&topic));
    for (p, c) in &collectors {
        b = b.endpoint(c.endpoint().priorities([*p]));
    }
    let l = b.build().unwrap();
    l.start().await.unwrap();
    let n = notifier(&t, &[&topic]);
    for p in Priority::ALL {
        n.notify(
            p,
            &Context::new(),
            &format!("event.{p}"),
            &json!({"p": p.as_str()}),
        )
        .await
        .unwrap();
    }
    for (p, c) in &collectors {
        assert_eq!(
            c.settle(1, h.patience(), h.quiet_period()).await,
            1,
            "priority {p}"
        );
        let r = &c.all()[0];
        assert_eq!(r.priority, *p);
        assert_eq!(r.event_type, format!("event.{p}"));
    }
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A listener on one topic never sees another topic's notifications.
pub async fn topic_isolation(h: Harness) {
    let t = h.transport().await;
    let (a, b) = (unique("iso-a"), unique("iso-b"));
    let got = Collector::new();
    let l = listen(&t, &a, None, got.endpoint()).await;
    let other = Collector::new();
    let lb = listen(&t, &b, None, other.endpoint()).await;
    // Both listeners are in the transport's default pool: on Kafka one consumer
    // group, whose rebalance may deliver an uncommitted record again. Isolation is
    // the point here, so send once the group has settled.
    h.pool_settled().await;
    notifier(&t, &[&b])
        .info(&Context::new(), "e", &json!({"i": 1}))
        .await
        .unwrap();
    notifier(&t, &[&a])
        .info(&Context::new(), "e", &json!({"i": 2}))
        .await
        .unwrap();
    assert_eq!(got.settle(1, h.patience(), h.quiet_period()).await, 1);
    assert_eq!(got.indexes(), vec![2]);
    assert_eq!(other.settle(1, h.patience(), h.quiet_period()).await, 1);
    assert_eq!(other.indexes(), vec![1]);
    l.stop_and_wait().await.unwrap();
    lb.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A notifier with two topics reaches both; a listener with two targets hears both.
pub async fn several_topics_at_once(h: Harness) {
    let t = h.transport().await;
    let (a, b) = (unique("multi-a"), unique("multi-b"));
    let got = Collector::new();
    let l = messaging_core::NotificationListener::builder(&t)
        .target(messaging_core::Target::new(&a))
        .target(messaging_core::Target::new(&b))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    l.start().await.unwrap();
    notifier(&t, &[&a, &b])
        .info(&Context::new(), "both", &json!({"i": 0}))
        .await
        .unwrap();
    notifier(&t, &[&b])
        .error(&Context::new(), "only-b", &json!({"i": 1}))
        .await
        .unwrap();
    assert_eq!(got.settle(3, h.patience(), h.quiet_period()).await, 3);
    let mut events: Vec<String> = got.all().iter().map(|n| n.event_type.clone()).collect();
    events.sort();
    assert_eq!(events, vec!["both", "both", "only-b"]);
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// message_id and timestamp arrive as sent; the context arrives without its secrets.
pub async fn metadata_and_context_round_trip(h: Harness) {
    let t = h.transport().await;
    let topic = unique("meta");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let n = notifier(&t, &[&topic]);
    let ctx: Context = serde_json::from_value(
        json!({"user": "alice", "project_id": "p1", "auth_token": "SECRET", "roles": ["admin"]}),
    )
    .unwrap();
    let sent = n
        .build_notification(
            Priority::Audit,
            &ctx,
            "identity.user.created",
            &json!({"u": 1}),
        )
        .unwrap();
    n.emit(&sent).await.unwrap();
    assert_eq!(got.wait_for(1, h.patience()).await, 1);
    let r = &got.all()[0];
    assert_eq!(r.metadata.message_id, sent.message_id);
    assert_eq!(r.metadata.timestamp, sent.timestamp);
    assert_eq!(
        uuid::Uuid::parse_str(&r.metadata.message_id)
            .unwrap()
            .get_version_num(),
        4
    );
    assert_eq!(r.context.get("user"), Some(&json!("alice")));
    assert_eq!(r.context.get("roles"), Some(&json!(["admin"])));
    assert!(
        !r.context.contains_key("auth_token"),
        "secrets never leave the process"
    );
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// Unicode, escapes, numbers at the edges and odd JSON shapes arrive unchanged.
pub async fn odd_payloads_round_trip(h: Harness) {
    let t = h.transport().await;
    let topic = unique("odd");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let n = notifier(&t, &[&topic]);
    let payloads = vec![
        json!({"i": 0, "text": "héllo wörld — 日本語 — emoji 🚀 — rtl עברית"}),
        json!({"i": 1, "esc": "quote \" backslash \\ newline \n tab \t nul \u{0000} ctrl \u{001f}"}),
        json!({"i": 2, "nums": [0, -1, 9007199254740993u64, -9223372036854775808i64, 1.5e-300, 1.2345678901234567]}),
        json!({"i": 3, "nested": {"a": [[], {}, [null, true, false]], "b": {"c": {"d": {"e": "deep"}}}}}),
        json!({"i": 4, "": "empty key", "key with spaces": 1, "ключ": "значение"}),
        json!({"i": 5, "s": "oslo.message\": \"{fake}\" }"}),
    ];
    for p in &payloads {
        n.info(&Context::new(), "odd", p).await.unwrap();
    }
    for (p, e) in [
        (json!("just a string"), "scalar-string"),
        (json!(null), "scalar-null"),
        (json!([1, "two"]), "scalar-list"),
    ] {
        n.info(&Context::new(), e, &p).await.unwrap();
    }
    assert_eq!(got.settle(9, h.patience(), h.quiet_period()).await, 9);
    for p in &payloads {
        assert!(
            got.all().iter().any(|r| &r.payload == p),
            "payload {p} arrived unchanged"
        );
    }
    let by_event = |e: &str| {
        got.all()
            .iter()
            .find(|r| r.event_type == e)
            .map(|r| r.payload.to_value().unwrap())
    };
    assert_eq!(by_event("scalar-string"), Some(json!("just a string")));
    assert_eq!(by_event("scalar-null"), Some(json!(null)));
    assert_eq!(by_event("scalar-list"), Some(json!([1, "two"])));
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A payload of [`super::DriverHarness::large_payload_bytes`] arrives intact.
pub async fn large_payload(h: Harness) {
    let t = h.transport().await;
    let topic = unique("large");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let size = h.large_payload_bytes();
    let big: String = (0..size)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let receipt = notifier(&t, &[&topic])
        .info(&Context::new(), "large", &json!({"blob": big}))
        .await
        .unwrap();
    receipt.delivered().await.unwrap();
    assert_eq!(got.wait_for(1, h.patience()).await, 1);
    let payload = got.all()[0].payload.to_value().unwrap();
    assert_eq!(payload["blob"].as_str().map(str::len), Some(size));
    assert_eq!(payload["blob"].as_str(), Some(big.as_str()));
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// 50 notifiers sending at once: everything arrives exactly once.
pub async fn fifty_concurrent_notifiers(h: Harness) {
    let t = h.transport().await;
    let topic = unique("fifty");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let base = notifier(&t, &[&topic]);
    let mut tasks = Vec::new();
    for w in 0..50i64 {
        let n = base.prepare(Some(&format!("worker.{w}")), None);
        tasks.push(tokio::spawn(async move {
            for k in 0..20i64 {
                n.info(&Context::new(), "fifty", &json!({"i": w * 20 + k}))
                    .await
                    .unwrap()
                    .delivered()
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    got.settle(1000, h.patience() * 3, h.quiet_period()).await;
    assert_exactly_once(&got.indexes(), 1000, "fifty notifiers");
    let publishers: std::collections::HashSet<String> =
        got.all().iter().map(|n| n.publisher_id.clone()).collect();
    assert_eq!(publishers.len(), 50);
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
    let _ = Arc::new(());
}
