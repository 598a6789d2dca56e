//! Requeue, handler errors and panics, foreign records and their dead-letter copies,
//! the record size limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use messaging_core::{
    envelope, Context, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener,
    Priority, Retry, StartPosition, SubscriptionSpec, Target,
};
use serde_json::json;

use super::{listen, notifier, unique, Harness};
use crate::support::{assert_exactly_once, index_of, Collector};

type Attempts = Arc<Mutex<HashMap<i64, usize>>>;

/// An endpoint whose handler misbehaves (`how`) on the first attempt of every odd
/// index, and records handled indexes in `done`.
fn flaky(done: Collector, attempts: Attempts, how: &'static str) -> NotificationEndpoint {
    NotificationEndpoint::from_fn(move |n| {
        let done = done.clone();
        let attempts = attempts.clone();
        async move {
            let i = index_of(&n).unwrap_or(-1);
            let attempt = {
                let mut a = attempts.lock().unwrap();
                let c = a.entry(i).or_default();
                *c += 1;
                *c
            };
            if i % 2 == 1 && attempt == 1 {
                match how {
                    "requeue" => return Ok(HandlerOutcome::Requeue),
                    "error" => return Err(format!("refusing {i} once").into()),
                    _ => panic!("handler panics on {i}"),
                }
            }
            done.push(n);
            Ok(HandlerOutcome::Handled)
        }
    })
}

async fn misbehaving_run(
    h: Harness,
    how: &'static str,
    allow_requeue: bool,
) -> (Collector, Attempts, messaging_core::ListenerCounters) {
    let t = h.transport().await;
    let topic = unique(how);
    let done = Collector::new();
    let attempts: Attempts = Arc::default();
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(flaky(done.clone(), attempts.clone(), how))
        .allow_requeue(allow_requeue)
        .build()
        .unwrap();
    l.start().await.unwrap();
    let n = notifier(&t, &[&topic]);
    for i in 0..20 {
        n.info(&Context::new(), how, &json!({"i": i}))
            .await
            .unwrap();
    }
    let expect = if allow_requeue { 20 } else { 10 };
    done.settle(expect, h.patience() * 2, h.quiet_period())
        .await;
    // Wait until the listener has seen everything it will see.
    let deadline = tokio::time::Instant::now() + h.patience();
    while attempts.lock().unwrap().len() < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(h.quiet_period()).await;
    l.stop_and_wait().await.unwrap();
    let counters = l.counters();
    t.close(h.patience()).await.unwrap();
    (done, attempts, counters)
}

/// A handler's `Requeue` makes the notification come back; each is handled once.
pub async fn requeue_redelivers(h: Harness) {
    if !h.capabilities().requeue {
        return requeue_refused_is_acknowledged(h).await;
    }
    let (done, attempts, counters) = misbehaving_run(h, "requeue", true).await;
    assert_exactly_once(&done.indexes(), 20, "requeued then handled");
    let a = attempts.lock().unwrap();
    for i in 0..20 {
        let expected = if i % 2 == 1 { 2 } else { 1 };
        assert_eq!(a.get(&i), Some(&expected), "attempts of {i}");
    }
    assert_eq!(counters.requeued, 10);
}

async fn requeue_refused_is_acknowledged(h: Harness) {
    let (done, _, _) = misbehaving_run(h, "requeue", true).await;
    assert_eq!(done.len(), 10);
}

/// A handler error counts as requeue when the listener allows it (listed as
/// needing requeue: without it there is nothing to check beyond
/// `handler_error_acknowledged_without_requeue`).
pub async fn handler_error_requeues_when_allowed(h: Harness) {
    let (done, _, counters) = misbehaving_run(h, "error", true).await;
    assert_exactly_once(&done.indexes(), 20, "errors requeued then handled");
    assert_eq!(counters.handler_failures, 10);
}

/// Without requeue, a failed notification is acknowledged (and logged), never
/// delivered again, and the listener goes on.
pub async fn handler_error_acknowledged_without_requeue(h: Harness) {
    let (done, attempts, counters) = misbehaving_run(h, "error", false).await;
    let mut got = done.indexes();
    got.sort();
    assert_eq!(got, (0..20).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    assert!(
        attempts.lock().unwrap().values().all(|c| *c == 1),
        "nothing redelivered"
    );
    assert_eq!(counters.handler_failures, 10);
    assert_eq!(counters.requeued, 0);
}

/// A panicking handler neither kills the listener nor loses the notification.
pub async fn handler_panic_does_not_kill_listener(h: Harness) {
    let allow = h.capabilities().requeue;
    let (done, _, counters) = misbehaving_run(h, "panic", allow).await;
    if allow {
        assert_exactly_once(&done.indexes(), 20, "panics requeued then handled");
    } else {
        assert_eq!(done.len(), 10);
    }
    assert_eq!(counters.handler_failures, 10);
}

/// Records that are not oslo notifications are skipped and counted; the listener goes on.
pub async fn foreign_records_are_skipped(h: Harness) {
    let t = h.transport().await;
    let topic = unique("foreign");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let wire = t.notification_topic(&topic, Priority::Info);
    let foreign: [&[u8]; 5] = [
        b"not json at all",
        br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#,
        br#"{"oslo.version": "2.0", "oslo.message": "{broken"}"#,
        br#"{"hello": "world"}"#,
        b"",
    ];
    let n = notifier(&t, &[&topic]);
    n.info(&Context::new(), "before", &json!({"i": 0}))
        .await
        .unwrap();
    for body in foreign {
        t.send(&wire, Bytes::from_static(body), Retry::Limited(3))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
    }
    n.info(&Context::new(), "after", &json!({"i": 1}))
        .await
        .unwrap();
    got.settle(2, h.patience(), h.quiet_period()).await;
    assert_exactly_once(
        &got.indexes(),
        2,
        "real notifications around foreign records",
    );
    let deadline = tokio::time::Instant::now() + h.patience();
    while l.counters().skipped < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(l.counters().skipped, 5);
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// A skipped record is copied to the dead-letter topic and acknowledged only once
/// the copy is confirmed: each foreign record is on the dead-letter topic once, the
/// listener goes on, and its pool does not get the originals again.
pub async fn foreign_records_are_dead_lettered_then_acknowledged(h: Harness) {
    let t = h.transport().await;
    let topic = unique("dlq-src");
    let dlq = unique("dlq");
    t.ensure_topics(std::slice::from_ref(&dlq))
        .await
        .expect("ensure_topics");
    // Subscribed before anything is copied (a queue-based driver keeps only what
    // arrives once its queue exists).
    let dead = t
        .driver()
        .subscribe(SubscriptionSpec {
            topics: vec![dlq.clone()],
            pool: Some(unique("pool")),
            start: StartPosition::Earliest,
        })
        .await
        .expect("subscribe to the dead-letter topic");
    let pool = unique("pool");
    let dead_lettering = |got: &Collector| {
        NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .endpoint(got.endpoint())
            .pool(&pool)
            .dead_letter_topic(&dlq)
            .build()
            .expect("listener builds")
    };
    let got = Collector::new();
    let l = dead_lettering(&got);
    l.start().await.expect("listener starts");
    let wire = t.notification_topic(&topic, Priority::Info);
    let foreign: [&[u8]; 3] = [b"not json at all", br#"{"hello": "world"}"#, b"[1, 2"];
    let n = notifier(&t, &[&topic]);
    n.info(&Context::new(), "before", &json!({"i": 0}))
        .await
        .unwrap();
    for body in foreign {
        t.send(&wire, Bytes::from_static(body), Retry::Limited(3))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
    }
    n.info(&Context::new(), "after", &json!({"i": 1}))
        .await
        .unwrap();
    got.settle(2, h.patience(), h.quiet_period()).await;
    assert_exactly_once(&got.indexes(), 2, "notifications around foreign records");

    let mut copies = Vec::new();
    let deadline = tokio::time::Instant::now() + h.patience();
    while copies.len() < foreign.len() && tokio::time::Instant::now() < deadline {
        let more = dead
            .receive(10, std::time::Duration::from_millis(200))
            .await
            .expect("receive from the dead-letter topic");
        copies.extend(more);
    }
    tokio::time::sleep(h.quiet_period()).await;
    copies.extend(
        dead.receive(10, std::time::Duration::from_millis(200))
            .await
            .expect("receive from the dead-letter topic"),
    );
    let mut copied: Vec<&[u8]> = copies.iter().map(|r| r.body.as_ref()).collect();
    copied.sort();
    let mut expected = foreign.to_vec();
    expected.sort();
    assert_eq!(copied, expected, "each foreign record copied once");
    let tags: Vec<_> = copies.iter().map(|r| r.tag).collect();
    dead.ack(&tags).await.expect("ack the copies");
    dead.close(h.patience()).await.expect("close");
    let counters = l.counters();
    assert_eq!(
        (
            counters.skipped,
            counters.dead_lettered,
            counters.dead_letter_failures
        ),
        (3, 3, 0),
        "{counters:?}"
    );
    l.stop_and_wait().await.unwrap();

    // The originals were acknowledged: the pool's next member gets only what is new.
    let again = Collector::new();
    let next = dead_lettering(&again);
    next.start().await.expect("listener starts");
    n.info(&Context::new(), "probe", &json!({"i": 2}))
        .await
        .unwrap();
    again.settle(1, h.patience(), h.quiet_period()).await;
    assert_eq!(again.indexes(), vec![2], "only the new notification");
    assert_eq!(next.counters().skipped, 0, "no foreign record came back");
    next.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// The driver's record size limit (`Capabilities::max_record_bytes`, which it must
/// state truthfully) holds to the byte: a notification whose encoded record is exactly
/// the limit is delivered, one byte more is refused at once (typed, not retryable,
/// nothing of it arrives), and the transport goes on. Without a limit, 2 MB arrive.
pub async fn record_size_limit_is_exact(h: Harness) {
    let t = h.transport().await;
    let limit = h.capabilities().max_record_bytes;
    let topic = unique("size");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    let n = notifier(&t, &[&topic]);
    let ctx = Context::new();
    // The envelope around a payload {"blob": "..."} of `len` ASCII letters.
    let framing = {
        let empty = n
            .build_notification(Priority::Info, &ctx, "sized", &json!({"blob": ""}))
            .unwrap();
        envelope::encode_as(&empty, t.dialect()).unwrap().len()
    };
    let blob = |record_bytes: usize| json!({"blob": "b".repeat(record_bytes - framing)});
    let fits = limit.unwrap_or(2 * 1024 * 1024);
    if let Some(limit) = limit {
        let before = t.counters().accepted;
        let refused = n
            .info(&ctx, "sized", &blob(limit + 1))
            .await
            .expect_err("one byte over the limit is refused");
        assert_eq!(refused.kind(), &ErrorKind::InvalidArgument, "{refused}");
        assert!(!refused.is_retryable(), "{refused}");
        assert_eq!(t.counters().accepted, before, "nothing was accepted");
    }
    n.info(&ctx, "sized", &blob(fits))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, h.patience()).await, 1);
    assert_eq!(
        got.wait_for(2, h.quiet_period()).await,
        1,
        "only the one that fits"
    );
    let blob_len = got.all()[0].payload.to_value().unwrap()["blob"]
        .as_str()
        .map(str::len);
    assert_eq!(blob_len, Some(fits - framing));
    l.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}
