//! Memory-driver behaviour beyond the conformance suite: instances, backpressure,
//! options, give-back of unacknowledged records.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use messaging_core::{
    Context, DriverRegistry, ErrorKind, HandlerOutcome, MessagingConfig, NotificationEndpoint,
    NotificationListener, Notifier, Retry, Target, Transport, TransportUrl,
};
use serde_json::json;

fn registry() -> DriverRegistry {
    let r = DriverRegistry::new();
    r.register(driver_memory::factory());
    r
}

fn open(url: &str) -> Transport {
    Transport::open_with(&registry(), &TransportUrl::parse(url).unwrap(), &[]).unwrap()
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("p")
        .topic(topic)
        .retry(Retry::Limited(0))
        .transport(t)
        .build()
        .unwrap()
}

#[tokio::test]
async fn full_queue_waits_then_fails_with_resource_exhausted() {
    let t = open("memory://backpressure?queue_capacity=5")
        .with_send_timeout(Duration::from_millis(200));
    let n = notifier(&t, "bp");
    for i in 0..5 {
        n.info(&Context::new(), "e", &i).await.unwrap();
    }
    let started = std::time::Instant::now();
    let err = n.info(&Context::new(), "e", &5).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ResourceExhausted, "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the sender waited first"
    );

    // A listener draining the queue lets a waiting sender through.
    let t2 = open("memory://backpressure").with_send_timeout(Duration::from_secs(10));
    let n2 = notifier(&t2, "bp");
    let waiting = tokio::spawn(async move { n2.info(&Context::new(), "e", &6).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    let l = NotificationListener::builder(&t)
        .target(Target::new("bp"))
        .endpoint(NotificationEndpoint::from_fn(|_| async {
            Ok(HandlerOutcome::Handled)
        }))
        .build()
        .unwrap();
    l.start().await.unwrap();
    waiting.await.unwrap().unwrap();
    l.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn named_instances_are_isolated() {
    let a = open("memory://instance-a");
    let b = open("memory://instance-b");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let l = NotificationListener::builder(&b)
        .target(Target::new("shared"))
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n.payload.to_value().unwrap());
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()
        .unwrap();
    l.start().await.unwrap();
    notifier(&a, "shared")
        .info(&Context::new(), "e", &json!("from a"))
        .await
        .unwrap();
    notifier(&b, "shared")
        .info(&Context::new(), "e", &json!("from b"))
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), json!("from b"));
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
        .await
        .is_err());
    l.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn unknown_option_and_bad_value_are_typed_errors() {
    let r = registry();
    let err = Transport::open_with(
        &r,
        &TransportUrl::parse("memory://?colour=red").unwrap(),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InvalidOption {
            key: "colour".into()
        }
    );
    assert!(err.to_string().contains("queue_capacity"));
    let err = Transport::open_with(
        &r,
        &TransportUrl::parse("memory://?queue_capacity=0").unwrap(),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InvalidOption {
            key: "queue_capacity".into()
        }
    );
}

#[tokio::test]
async fn config_options_apply_and_the_url_overrides_them() {
    let config: MessagingConfig = toml::from_str(
        "transport_url = \"memory://cfg?queue_capacity=2\"\n[options]\nqueue_capacity = \"50\"\n",
    )
    .unwrap();
    let t = config
        .open_transport_with(&registry())
        .unwrap()
        .with_send_timeout(Duration::from_millis(50));
    let n = config
        .notifier_builder(&t)
        .unwrap()
        .publisher_id("p")
        .build()
        .unwrap();
    n.info(&Context::new(), "e", &1).await.unwrap();
    n.info(&Context::new(), "e", &2).await.unwrap();
    assert_eq!(
        n.info(&Context::new(), "e", &3).await.unwrap_err().kind(),
        &ErrorKind::ResourceExhausted
    );
}

#[tokio::test]
async fn a_listener_that_vanishes_gives_back_what_it_held() {
    let t = open("memory://vanish");
    let n = notifier(&t, "v");
    for i in 0..10 {
        n.info(&Context::new(), "e", &json!({"i": i}))
            .await
            .unwrap();
    }
    // A handler that never finishes holds every record it took.
    let stuck = NotificationListener::builder(&t)
        .target(Target::new("v"))
        .pool("p")
        .endpoint(NotificationEndpoint::from_fn(|_| async {
            futures::future::pending::<()>().await;
            Ok(HandlerOutcome::Handled)
        }))
        .stop_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    stuck.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stuck.stop_and_wait().await.unwrap();
    let broker = driver_memory::MemoryBroker::instance("vanish", 1);
    assert_eq!(
        broker.queued("v.info", "p"),
        Some(10),
        "nothing handled, so everything is back in the pool's queue"
    );
}

#[tokio::test]
async fn transport_registry_is_global_too() {
    driver_memory::register();
    let t = Transport::open("memory://global").unwrap();
    assert_eq!(t.driver().name(), "memory");
    assert!(Arc::strong_count(t.driver()) >= 1);
}

#[tokio::test]
async fn record_size_limit_is_an_option() {
    let t = open("memory://size-small?max_record_bytes=100");
    assert_eq!(t.driver().capabilities().max_record_bytes, Some(100));
    t.send("size", Bytes::from(vec![b'a'; 100]), Retry::Limited(0))
        .await
        .unwrap();
    let e = t
        .send("size", Bytes::from(vec![b'a'; 101]), Retry::Forever)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("max_record_bytes (100)"), "{e}");
    assert_eq!(t.counters().retried, 0);

    let unlimited = open("memory://size-unlimited?max_record_bytes=0");
    assert_eq!(unlimited.driver().capabilities().max_record_bytes, None);
    unlimited
        .send(
            "size",
            Bytes::from(vec![b'a'; 3_000_000]),
            Retry::Limited(0),
        )
        .await
        .unwrap();
    let default = open("memory://size-default");
    assert_eq!(
        default.driver().capabilities().max_record_bytes,
        Some(driver_memory::DEFAULT_MAX_RECORD_BYTES)
    );
}
