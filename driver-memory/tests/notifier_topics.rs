//! A notifier with several topics on the memory driver when one topic's queue is
//! full: the caller learns which topics have the notification, and the resend goes
//! only to the one that refused it. Also a bulk through the transport's batch send.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{
    Context, DriverRegistry, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener,
    Notifier, PartialFailure, Priority, Retry, Target, Transport, TransportUrl,
};
use serde_json::json;

fn open(url: &str) -> Transport {
    let r = DriverRegistry::new();
    r.register(driver_memory::factory());
    Transport::open_with(&r, &TransportUrl::parse(url).unwrap(), &[]).unwrap()
}

fn notifier(t: &Transport, topics: &[&str]) -> Notifier {
    Notifier::builder()
        .publisher_id("p")
        .topics(topics.iter().copied())
        .retry(Retry::Limited(0))
        .transport(t)
        .build()
        .unwrap()
}

/// Message ids handled by a listener on one topic, in order.
type Ids = Arc<Mutex<Vec<String>>>;

async fn listen(t: &Transport, topic: &str) -> (NotificationListener, Ids) {
    let ids = Ids::default();
    let seen = ids.clone();
    let l = NotificationListener::builder(t)
        .target(Target::new(topic))
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(n.metadata.message_id.clone());
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()
        .unwrap();
    l.start().await.unwrap();
    (l, ids)
}

/// Wait (generously) until `ids` holds at least `n`, then return them.
async fn wait_for(ids: &Ids, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = ids.lock().unwrap().clone();
        if got.len() >= n || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_topic_full_then_resend_goes_only_to_it() {
    let t =
        open("memory://bulk-topics?queue_capacity=2").with_send_timeout(Duration::from_millis(100));
    // Fill t2's queue (nobody listens yet).
    let filler = notifier(&t, &["t2"]);
    for i in 0..2 {
        filler.info(&Context::new(), "fill", &i).await.unwrap();
    }
    let n = notifier(&t, &["t1", "t2", "t3"]);
    let err = n
        .info(&Context::new(), "e", &json!({"i": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ResourceExhausted, "{err}");
    assert!(err.message().contains("failed on t2"), "{err}");
    let partial = err
        .source_as::<PartialFailure>()
        .expect("a PartialFailure source");
    let have: Vec<&str> = partial.succeeded.iter().map(|d| d.topic.as_str()).collect();
    assert_eq!(have, ["t1", "t3"]);
    let id = partial.resend.items()[0].0.message_id.clone();

    let mut listeners = BTreeMap::new();
    for topic in ["t1", "t2", "t3"] {
        listeners.insert(topic, listen(&t, topic).await);
    }
    assert_eq!(
        wait_for(&listeners["t2"].1, 2).await.len(),
        2,
        "the fillers drain"
    );
    let outcome = n
        .resend(partial.resend.clone())
        .await
        .unwrap()
        .outcome()
        .await;
    assert!(outcome.is_delivered(), "{outcome:?}");

    let t2 = wait_for(&listeners["t2"].1, 3).await;
    assert_eq!(t2.iter().filter(|m| **m == id).count(), 1, "{t2:?}");
    for topic in ["t1", "t3"] {
        assert_eq!(
            wait_for(&listeners[topic].1, 1).await,
            std::slice::from_ref(&id),
            "{topic}"
        );
    }
    for (_, (l, _)) in listeners {
        l.stop_and_wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_on_two_topics_arrives_once_each_in_order() {
    let t = open("memory://bulk-two");
    let (l1, ids1) = listen(&t, "b1").await;
    let (l2, ids2) = listen(&t, "b2").await;
    let n = notifier(&t, &["b1", "b2"]);
    let items = (0..500).map(|i| ("e", json!({"i": i})));
    let receipt = n
        .notify_many(Priority::Info, &Context::new(), items)
        .await
        .unwrap();
    assert_eq!(receipt.refused(), 0);
    let outcome = receipt.outcome().await;
    assert!(outcome.is_delivered());
    let sent: Vec<String> = outcome
        .notifications
        .iter()
        .map(|o| o.notification.message_id.clone())
        .collect();
    assert_eq!(wait_for(&ids1, 500).await, sent);
    assert_eq!(wait_for(&ids2, 500).await, sent);
    l1.stop_and_wait().await.unwrap();
    l2.stop_and_wait().await.unwrap();
}
