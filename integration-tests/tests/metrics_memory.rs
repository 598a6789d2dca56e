//! Metrics, health and status on the memory driver (tier 1, no broker): the
//! counters read what was sent and handled, failures are counted by kind,
//! histograms got their samples, a listener goes running → stopped, and the
//! transport is connected.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use integration_tests::metrics::{self as seen, counter, gauges, histogram_samples};
use integration_tests::support::{eventually, unique, Collector};
use messaging_core::observability::metrics as m;
use messaging_core::observability::{ConnectionState, RunState};
use messaging_core::{
    Context, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationFilter,
    NotificationListener, Notifier, Priority, RemoteError, Retry, RpcClient, RpcEndpoint,
    RpcServer, Target, Transport,
};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

fn transport(name: &str, query: &str) -> Transport {
    seen::install();
    driver_memory::register();
    Transport::open(&format!("memory://{}{query}", unique(name))).unwrap()
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("metrics")
        .topic(topic)
        .retry(Retry::Limited(1))
        .transport(t)
        .build()
        .unwrap()
}

#[tokio::test]
async fn sent_delivered_received_and_handled_read_n_and_histograms_get_n_samples() {
    let t = transport("counts", "");
    let topic = unique("counts");
    let listener = seen::notify_and_count(&t, &topic, 25).await;
    let labels = [
        (m::ATTR_SYSTEM, "memory"),
        (m::ATTR_DESTINATION, topic.as_str()),
    ];
    assert_eq!(counter(m::CONSUMED_MESSAGES, &labels), 25);
    listener.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn failures_requeues_skips_and_filtered_are_counted_by_kind() {
    let t = transport("failures", "");
    let topic = unique("failures");
    let failed_once: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let endpoint = NotificationEndpoint::from_fn(move |n| {
        let first = failed_once.lock().unwrap().insert(
            n.payload_as::<serde_json::Value>().unwrap()["i"]
                .as_u64()
                .unwrap(),
        );
        async move {
            if first {
                Err("fails the first time".into())
            } else {
                Ok(HandlerOutcome::Handled)
            }
        }
    })
    .filter(NotificationFilter::new().event_type("keep\\..*").unwrap());
    let listener = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .allow_requeue(true)
        .endpoint(endpoint)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let notifier = notifier(&t, &topic);
    for i in 0..2 {
        notifier
            .info(&Context::new(), "keep.it", &json!({"i": i}))
            .await
            .unwrap();
    }
    for i in 10..13 {
        notifier
            .info(&Context::new(), "drop.it", &json!({"i": i}))
            .await
            .unwrap();
    }
    let raw = t.notification_topic(&topic, Priority::Info);
    t.send(
        &raw,
        Bytes::from_static(b"not an oslo notification"),
        Retry::Limited(0),
    )
    .await
    .unwrap();
    let l = [(m::ATTR_DESTINATION, topic.as_str())];
    assert!(eventually(PATIENCE, || counter(m::LISTENER_HANDLED, &l) == 5).await);
    assert_eq!(
        counter(m::CONSUMED_MESSAGES, &l),
        8,
        "2 twice, 3 filtered, 1 foreign"
    );
    assert_eq!(counter(m::LISTENER_HANDLER_FAILURES, &l), 2);
    assert_eq!(counter(m::LISTENER_REQUEUED, &l), 2);
    assert_eq!(counter(m::LISTENER_FILTERED, &l), 3);
    assert_eq!(counter(m::LISTENER_SKIPPED, &l), 1);
    assert_eq!(
        histogram_samples(m::PROCESS_DURATION, &l),
        4,
        "one per handler run"
    );
    let c = listener.counters();
    assert_eq!((c.received, c.handler_failures, c.requeued), (8, 2, 2));
    listener.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn a_refused_send_is_counted_by_error_type() {
    let t = transport("refused", "?max_record_bytes=64");
    let topic = unique("refused");
    let too_large = Bytes::from(vec![b'x'; 1000]);
    let e = t
        .send(&topic, too_large, Retry::Limited(0))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
    let refused = [
        (m::ATTR_DESTINATION, topic.as_str()),
        (m::ATTR_ERROR_TYPE, "invalid_argument"),
    ];
    assert_eq!(counter(m::TRANSPORT_FAILED, &refused), 1);
    assert_eq!(counter(m::SENT_MESSAGES, &refused[..1]), 0);
}

#[tokio::test]
async fn memory_queue_depth_shows_the_backlog_of_a_pool() {
    let t = transport("depth", "");
    let topic = unique("depth");
    let got = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    listener.start().await.unwrap();
    listener.stop_and_wait().await.unwrap();
    // The pool's queue exists and nobody takes from it now: a backlog builds up.
    let notifier = notifier(&t, &topic);
    for i in 0..7 {
        notifier
            .info(&Context::new(), "depth.test", &json!({"i": i}))
            .await
            .unwrap();
    }
    // One handler that holds its notification: the other six wait in the queue.
    let again = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(NotificationEndpoint::from_fn(|_| async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            Ok(HandlerOutcome::Handled)
        }))
        .max_concurrency(1)
        .stop_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert_eq!(again.status().lag, None, "not started: unknown");
    let info = t.notification_topic(&topic, Priority::Info);
    let depth = || {
        gauges(m::QUEUE_DEPTH, &[(m::ATTR_DESTINATION, info.as_str())])
            .iter()
            .map(|(_, v)| *v)
            .fold(0.0, f64::max)
    };
    again.start().await.unwrap();
    assert!(
        eventually(PATIENCE, || depth() >= 6.0).await,
        "depth {}",
        depth()
    );
    assert!(again.status().lag.unwrap() >= 6);
    again.stop_and_wait().await.unwrap();
}

#[tokio::test]
async fn rpc_calls_casts_remote_errors_and_timeouts_are_counted() {
    let t = transport("rpc", "");
    let topic = unique("rpc");
    let endpoint = RpcEndpoint::new()
        .method("add", |_ctx, args: serde_json::Value| async move {
            Ok::<_, RemoteError>(args["a"].as_i64().unwrap_or(0) + 1)
        })
        .method("fail", |_ctx, (): ()| async move {
            Err::<(), _>(RemoteError::new("ValueError", "bad value"))
        })
        .method("slow", |_ctx, (): ()| async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok::<_, RemoteError>(())
        });
    let server = RpcServer::builder(&t, Target::new(&topic))
        .endpoint(endpoint)
        .build()
        .unwrap();
    assert_eq!(server.status().state, RunState::Created);
    server.start().await.unwrap();
    assert!(server.status().is_running());
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(Duration::from_secs(10));
    let ctx = Context::new();
    for a in 0..3 {
        let r: i64 = client.call(&ctx, "add", &json!({"a": a})).await.unwrap();
        assert_eq!(r, a + 1);
    }
    for _ in 0..2 {
        let e = client.call::<_, ()>(&ctx, "fail", &()).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Remote { .. }), "{e}");
    }
    client.cast(&ctx, "add", &json!({"a": 1})).await.unwrap();
    let hurried = client.prepare().with_timeout(Duration::from_millis(100));
    let e = hurried.call::<_, ()>(&ctx, "slow", &()).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Timeout);

    let c = [(m::ATTR_DESTINATION, topic.as_str())];
    assert_eq!(counter(m::RPC_CLIENT_CALLS, &c), 6);
    assert_eq!(counter(m::RPC_CLIENT_CASTS, &c), 1);
    assert_eq!(counter(m::RPC_CLIENT_TIMEOUTS, &c), 1);
    let value_error = [c[0], (m::ATTR_ERROR_TYPE, "ValueError")];
    assert_eq!(counter(m::RPC_CLIENT_REMOTE_ERRORS, &value_error), 2);
    let call = [c[0], (m::ATTR_OPERATION, m::OP_CALL)];
    assert_eq!(histogram_samples(m::OPERATION_DURATION, &call), 6);
    let server_topic = server.listen_spec().topic.clone();
    let s = [(m::ATTR_DESTINATION, server_topic.as_str())];
    assert!(eventually(PATIENCE, || counter(m::RPC_SERVER_REPLIED, &s) == 6).await);
    assert_eq!(counter(m::RPC_SERVER_RECEIVED, &s), 7);
    assert_eq!(counter(m::RPC_SERVER_FAILED, &s), 2);
    assert_eq!(histogram_samples(m::PROCESS_DURATION, &s), 7);
    server.stop_and_wait().await.unwrap();
    assert_eq!(server.status().state, RunState::Stopped);
}

#[tokio::test]
async fn listener_status_goes_running_then_stopped_and_memory_is_connected() {
    let t = transport("status", "");
    let health = t.health();
    assert_eq!(health.state, ConnectionState::Connected);
    assert!(health.is_connected() && health.since.is_some());
    let topic = unique("status-topic");
    let got = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    assert_eq!(listener.status().state, RunState::Created);
    listener.start().await.unwrap();
    let running = listener.status();
    assert_eq!(running.state, RunState::Running);
    assert!(running.last_error.is_none());
    notifier(&t, &topic)
        .info(&Context::new(), "status.test", &json!({"n": 1}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    assert!(eventually(PATIENCE, || got.len() == 1).await);
    assert_eq!(listener.status().lag, Some(0), "memory reports its backlog");
    listener.stop_and_wait().await.unwrap();
    let stopped = listener.status();
    assert_eq!(stopped.state, RunState::Stopped);
    assert!(stopped.since >= running.since);
    assert_eq!(stopped.lag, None, "no subscription any more");
    t.close(Duration::from_secs(1)).await.unwrap();
    let closed = t.health();
    assert!(closed.closed && !closed.is_connected());
}
