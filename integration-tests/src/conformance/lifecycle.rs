//! start / stop / wait, draining, and use after close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use messaging_core::{
    Context, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener, Target,
};
use serde_json::json;

use super::{listen, notifier, unique, Harness};
use crate::support::{assert_exactly_once, Collector};

/// Stopping a listener mid-stream finishes the handlers in flight and loses
/// nothing: the next member of the pool receives the rest, none twice.
pub async fn stop_drains_without_loss(h: Harness) {
    let t = h.transport().await;
    let topic = unique("drain");
    let pool = unique("pool");
    let first = Collector::new();
    let started = Arc::new(AtomicUsize::new(0));
    let slow = {
        let first = first.clone();
        let started = started.clone();
        NotificationEndpoint::from_fn(move |n| {
            let first = first.clone();
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                first.push(n);
                Ok(HandlerOutcome::Handled)
            }
        })
    };
    let l1 = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .pool(&pool)
        .endpoint(slow)
        .max_concurrency(8)
        .build()
        .unwrap();
    l1.start().await.unwrap();
    let n = notifier(&t, &[&topic]);
    for i in 0..300 {
        n.info(&Context::new(), "drain", &json!({"i": i}))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
    }
    first.wait_for(20, h.patience()).await;
    l1.stop_and_wait().await.unwrap();
    let handled_first = first.len();
    assert_eq!(
        started.load(Ordering::SeqCst),
        handled_first,
        "every handler that started finished before wait returned"
    );
    assert!(
        handled_first < 300,
        "the stop came mid-stream ({handled_first} handled)"
    );
    let second = Collector::new();
    let l2 = listen(&t, &topic, Some(&pool), second.endpoint()).await;
    second
        .settle(300 - handled_first, h.patience() * 3, h.quiet_period() * 2)
        .await;
    let mut all = first.indexes();
    all.extend(second.indexes());
    assert_exactly_once(&all, 300, "across a graceful stop");
    l2.stop_and_wait().await.unwrap();
    t.close(h.patience()).await.unwrap();
}

/// start, stop and wait can each be called more than once, in any order that makes sense.
pub async fn lifecycle_is_idempotent(h: Harness) {
    let t = h.transport().await;
    let topic = unique("life");
    let got = Collector::new();
    let l = listen(&t, &topic, None, got.endpoint()).await;
    l.start().await.unwrap();
    notifier(&t, &[&topic])
        .info(&Context::new(), "e", &json!({"i": 0}))
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, h.patience()).await, 1);
    l.stop();
    l.stop();
    l.wait().await.unwrap();
    l.wait().await.unwrap();
    assert_eq!(
        l.start().await.unwrap_err().kind(),
        &ErrorKind::Closed,
        "a stopped listener does not restart"
    );
    let never = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    never.stop();
    never.wait().await.unwrap();
    assert_eq!(never.start().await.unwrap_err().kind(), &ErrorKind::Closed);
    t.close(h.patience()).await.unwrap();
}

/// After the transport is closed, a notify fails with the closed error.
pub async fn notify_after_close_is_closed_error(h: Harness) {
    let t = h.transport().await;
    let topic = unique("closed");
    let n = notifier(&t, &[&topic]);
    t.close(h.patience()).await.unwrap();
    t.close(h.patience()).await.unwrap();
    let err = n
        .info(&Context::new(), "late", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Closed, "{err}");
    n.close();
    let t2 = h.transport().await;
    let n2 = notifier(&t2, &[&topic]);
    n2.close();
    assert_eq!(
        n2.info(&Context::new(), "late", &json!({}))
            .await
            .unwrap_err()
            .kind(),
        &ErrorKind::Closed
    );
    t2.close(h.patience()).await.unwrap();
}
