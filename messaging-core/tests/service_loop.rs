//! The loop that the notification listener and the RPC server share, on a driver
//! whose receives the test scripts: failed receives are retried after a growing
//! backoff, and `stop` lets work in flight finish until the stop timeout, then
//! abandons (cancels) what is still running, for both services alike; `stop` is
//! seen while backing off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::driver::{
    Capabilities, CloseReport, DeliveryTag, Driver, OutgoingRecord, PendingDelivery,
    ReceivedRecord, Subscription, SubscriptionSpec,
};
use messaging_core::rpc::{
    RemoteError, RpcClient, RpcDriver, RpcEndpoint, RpcListenSpec, RpcOperation, RpcReceiver,
    RpcReply, RpcReplyQueue, RpcRequest, RpcServer,
};
use messaging_core::{
    Context, Error, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener,
    Notifier, Result, Target, Transport, TransportUrl,
};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Generous bound for anything to happen on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Everything sent (notifications and RPC requests alike) goes to one queue that
/// every receiver reads; receives fail while `failures_left` is above zero.
#[derive(Debug, Default)]
struct Wire {
    queue: Mutex<VecDeque<Bytes>>,
    failures_left: AtomicUsize,
    failed_at: Mutex<Vec<Instant>>,
    next_tag: AtomicU64,
    acked: Mutex<Vec<DeliveryTag>>,
    closed: AtomicBool,
    /// Receives fail for good (as when the broker refuses the credentials).
    refusing: AtomicBool,
    refused: AtomicUsize,
}

impl Wire {
    fn failing(times: usize) -> Arc<Self> {
        let wire = Wire::default();
        wire.failures_left.store(times, Ordering::SeqCst);
        Arc::new(wire)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>> {
        if self.refusing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Error::authentication("the broker refused the credentials"));
        }
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.failed_at.lock().unwrap().push(Instant::now());
            return Err(Error::new(ErrorKind::Transport, "the broker is away"));
        }
        let taken: Vec<Bytes> = {
            let mut queue = self.queue.lock().unwrap();
            let n = max.min(queue.len());
            queue.drain(..n).collect()
        };
        if taken.is_empty() {
            tokio::time::sleep(wait).await;
        }
        Ok(taken)
    }

    fn failed_at(&self) -> Vec<Instant> {
        self.failed_at.lock().unwrap().clone()
    }
}

#[derive(Debug)]
struct Scripted {
    wire: Arc<Wire>,
    rpc: Arc<ScriptedRpc>,
}

fn transport(wire: &Arc<Wire>) -> Transport {
    let driver = Scripted {
        wire: wire.clone(),
        rpc: Arc::new(ScriptedRpc(wire.clone())),
    };
    Transport::from_driver(
        TransportUrl::parse("scripted://").unwrap(),
        Arc::new(driver),
    )
}

#[async_trait]
impl Driver for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rpc: true,
            ..Capabilities::default()
        }
    }
    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        let mut queue = self.wire.queue.lock().unwrap();
        batch
            .iter()
            .map(|record| {
                queue.push_back(record.body.clone());
                Ok(PendingDelivery::Delivered)
            })
            .collect()
    }
    async fn subscribe(&self, _spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(ScriptedSubscription(self.wire.clone())))
    }
    async fn close(&self, _timeout: Duration) -> Result<CloseReport> {
        Ok(CloseReport::default())
    }
    fn rpc(&self, _operation: RpcOperation) -> Result<Arc<dyn RpcDriver>> {
        Ok(self.rpc.clone())
    }
}

#[derive(Debug)]
struct ScriptedSubscription(Arc<Wire>);

#[async_trait]
impl Subscription for ScriptedSubscription {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>> {
        let bodies = self.0.receive(max, wait).await?;
        Ok(bodies
            .into_iter()
            .map(|body| ReceivedRecord {
                tag: DeliveryTag(self.0.next_tag.fetch_add(1, Ordering::SeqCst)),
                topic: "scripted".into(),
                body,
            })
            .collect())
    }
    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.0.acked.lock().unwrap().extend_from_slice(tags);
        Ok(())
    }
    async fn requeue(&self, _tags: &[DeliveryTag]) -> Result<()> {
        Ok(())
    }
    async fn close(&self, _timeout: Duration) -> Result<()> {
        self.0.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Debug)]
struct ScriptedRpc(Arc<Wire>);

#[async_trait]
impl RpcDriver for ScriptedRpc {
    async fn send_request(&self, request: RpcRequest) -> Result<()> {
        self.0.queue.lock().unwrap().push_back(request.body);
        Ok(())
    }
    async fn send_replies(&self, _replies: Vec<RpcReply>) -> Result<()> {
        Ok(())
    }
    async fn open_reply_queue(&self) -> Result<RpcReplyQueue> {
        Err(Error::new(ErrorKind::Transport, "casts only"))
    }
    async fn listen(&self, _spec: RpcListenSpec) -> Result<Box<dyn RpcReceiver>> {
        Ok(Box::new(ScriptedReceiver(self.0.clone())))
    }
}

#[derive(Debug)]
struct ScriptedReceiver(Arc<Wire>);

#[async_trait]
impl RpcReceiver for ScriptedReceiver {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Bytes>> {
        self.0.receive(max, wait).await
    }
    async fn close(&self, _timeout: Duration) -> Result<()> {
        self.0.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Sets its flag when dropped: tells that abandoned work was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Wait (within [`PATIENCE`]) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three failed receives before the first good one: the gaps between the attempts
/// are at least the receive backoff's 50, 100 and 200 ms.
fn assert_backed_off(failed_at: &[Instant], succeeded_at: Instant) {
    assert_eq!(failed_at.len(), 3, "every scripted failure was met");
    let gaps = [
        failed_at[1] - failed_at[0],
        failed_at[2] - failed_at[1],
        succeeded_at - failed_at[2],
    ];
    for (gap, least) in gaps.iter().zip([50, 100, 200]) {
        assert!(
            *gap >= Duration::from_millis(least),
            "receive retried after {gap:?}, before the {least} ms backoff: {gaps:?}"
        );
    }
}

async fn notify(t: &Transport, event_type: &str) {
    let notifier = Notifier::builder()
        .publisher_id("test")
        .transport(t)
        .build()
        .unwrap();
    notifier
        .info(&Context::new(), event_type, &json!({}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_backs_off_failed_receives() {
    let wire = Wire::failing(3);
    let t = transport(&wire);
    notify(&t, "after.failures").await;
    let handled_at = Arc::new(Mutex::new(None));
    let seen = handled_at.clone();
    let listener = NotificationListener::builder(&t)
        .target(Target::new("n"))
        .endpoint(NotificationEndpoint::from_fn(move |_n| {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
            async { Ok(HandlerOutcome::Handled) }
        }))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    until("the notification is handled", || {
        listener.counters().handled == 1
    })
    .await;
    listener.stop_and_wait().await.unwrap();
    let handled_at = handled_at.lock().unwrap().expect("handled");
    assert_backed_off(&wire.failed_at(), handled_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_stops_on_a_receive_error_that_is_not_retryable_and_wait_returns_it() {
    let wire = Arc::new(Wire::default());
    let t = transport(&wire);
    notify(&t, "before.refusal").await;
    let listener = NotificationListener::builder(&t)
        .target(Target::new("n"))
        .endpoint(NotificationEndpoint::from_fn(|_n| async {
            Ok(HandlerOutcome::Handled)
        }))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    until("the notification is handled", || {
        listener.counters().handled == 1
    })
    .await;
    wire.refusing.store(true, Ordering::SeqCst);
    let error = tokio::time::timeout(PATIENCE, listener.wait())
        .await
        .expect("the listener stops on its own")
        .expect_err("with the receive error");
    assert_eq!(error.kind(), &ErrorKind::Authentication, "{error}");
    assert!(!error.is_retryable());
    assert_eq!(
        wire.refused.load(Ordering::SeqCst),
        1,
        "never received again"
    );
    // The outcome stays; stop after the end is fine.
    let again = listener.stop_and_wait().await.expect_err("same outcome");
    assert_eq!(again.kind(), &ErrorKind::Authentication);
    assert_eq!(
        wire.acked.lock().unwrap().len(),
        1,
        "what was handled was acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_dropped_early_loses_nothing() {
    let wire = Arc::new(Wire::default());
    let t = transport(&wire);
    let listener = NotificationListener::builder(&t)
        .target(Target::new("n"))
        .endpoint(NotificationEndpoint::from_fn(|_n| async {
            Ok(HandlerOutcome::Handled)
        }))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    // Raced against a timer, as a CLI races it against ctrl-c.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), listener.wait())
            .await
            .is_err(),
        "still running"
    );
    wire.refusing.store(true, Ordering::SeqCst);
    let error = tokio::time::timeout(PATIENCE, listener.wait())
        .await
        .expect("a later wait still sees the end")
        .expect_err("and its outcome");
    assert_eq!(error.kind(), &ErrorKind::Authentication);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_backs_off_failed_receives() {
    let wire = Wire::failing(3);
    let t = transport(&wire);
    let handled_at = Arc::new(Mutex::new(None));
    let seen = handled_at.clone();
    let endpoint = RpcEndpoint::new().method("record", move |_ctx, _args: serde_json::Value| {
        seen.lock().unwrap().get_or_insert_with(Instant::now);
        async { Ok::<_, RemoteError>(()) }
    });
    let server = RpcServer::builder(&t, Target::new("calc").with_server("h1"))
        .endpoint(endpoint)
        .build()
        .unwrap();
    RpcClient::new(&t, Target::new("calc"))
        .cast(&Context::new(), "record", &json!({}))
        .await
        .unwrap();
    server.start().await.unwrap();
    until("the cast is handled", || {
        handled_at.lock().unwrap().is_some()
    })
    .await;
    server.stop_and_wait().await.unwrap();
    let handled_at = handled_at.lock().unwrap().expect("handled");
    assert_backed_off(&wire.failed_at(), handled_at);
}

/// What the drain tests watch: the slow work never finishes on its own, the fast
/// work finishes once released (after `stop`).
#[derive(Default)]
struct Drain {
    started: AtomicUsize,
    release: Notify,
    fast_done: AtomicBool,
    slow_dropped: Arc<AtomicBool>,
}

impl Drain {
    async fn slow(self: Arc<Self>) {
        let _flag = DropFlag(self.slow_dropped.clone());
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }

    async fn fast(self: Arc<Self>) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.release.notified().await;
        self.fast_done.store(true, Ordering::SeqCst);
    }

    /// Once both started: stop, release the fast one, and check that the drain
    /// waited for the deadline, then cancelled the slow one and left.
    async fn stop_and_check(
        &self,
        wire: &Wire,
        stop_timeout: Duration,
        stop: impl FnOnce(),
        wait: impl std::future::Future<Output = Result<()>>,
    ) {
        until("both are running", || {
            self.started.load(Ordering::SeqCst) == 2
        })
        .await;
        let stopped_at = Instant::now();
        stop();
        self.release.notify_one();
        tokio::time::timeout(PATIENCE, wait)
            .await
            .expect("the drain ends after its deadline")
            .unwrap();
        assert!(
            stopped_at.elapsed() >= stop_timeout,
            "the drain gave up before its deadline"
        );
        assert!(
            self.fast_done.load(Ordering::SeqCst),
            "the fast one finished"
        );
        // A spawned task is dropped by its runtime shortly after it was aborted.
        until("the slow one was cancelled", || {
            self.slow_dropped.load(Ordering::SeqCst)
        })
        .await;
        assert!(
            wire.closed.load(Ordering::SeqCst),
            "the receiver was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_drain_finishes_what_it_can_by_the_deadline() {
    let wire = Arc::new(Wire::default());
    let t = transport(&wire);
    notify(&t, "slow").await;
    notify(&t, "fast").await;
    let drain = Arc::new(Drain::default());
    let d = drain.clone();
    let stop_timeout = Duration::from_secs(1);
    let listener = NotificationListener::builder(&t)
        .target(Target::new("n"))
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let d = d.clone();
            async move {
                match n.event_type.as_str() {
                    "slow" => d.slow().await,
                    _ => d.fast().await,
                }
                Ok(HandlerOutcome::Handled)
            }
        }))
        .stop_timeout(stop_timeout)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    drain
        .stop_and_check(&wire, stop_timeout, || listener.stop(), listener.wait())
        .await;
    // Tags follow the sending order: the slow one is 0, the fast one 1.
    assert_eq!(*wire.acked.lock().unwrap(), vec![DeliveryTag(1)]);
    assert_eq!(listener.counters().handled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_drain_finishes_what_it_can_by_the_deadline() {
    let wire = Arc::new(Wire::default());
    let t = transport(&wire);
    let drain = Arc::new(Drain::default());
    let (d1, d2) = (drain.clone(), drain.clone());
    let endpoint = RpcEndpoint::new()
        .method("slow", move |_ctx, _args: serde_json::Value| {
            let d = d1.clone();
            async move {
                d.slow().await;
                Ok::<_, RemoteError>(())
            }
        })
        .method("fast", move |_ctx, _args: serde_json::Value| {
            let d = d2.clone();
            async move {
                d.fast().await;
                Ok::<_, RemoteError>(())
            }
        });
    let stop_timeout = Duration::from_secs(1);
    let server = RpcServer::builder(&t, Target::new("calc").with_server("h1"))
        .endpoint(endpoint)
        .stop_timeout(stop_timeout)
        .build()
        .unwrap();
    let client = RpcClient::new(&t, Target::new("calc"));
    for method in ["slow", "fast"] {
        client
            .cast(&Context::new(), method, &json!({}))
            .await
            .unwrap();
    }
    server.start().await.unwrap();
    drain
        .stop_and_check(&wire, stop_timeout, || server.stop(), server.wait())
        .await;
    assert_eq!(server.counters().received, 2);
}

/// Seven failed receives put the loop into a 3.2 s backoff; `stop` ends it at once.
/// Time is paused (and advanced by tokio when idle), so the measured wait is exact
/// however loaded the machine is.
async fn stop_ends_a_backoff(
    wire: &Wire,
    stop: impl FnOnce(),
    wait: impl std::future::Future<Output = Result<()>>,
) {
    until("seven receives failed", || wire.failed_at().len() >= 7).await;
    let stopped_at = Instant::now();
    stop();
    wait.await.unwrap();
    let waited = stopped_at.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "stop waited {waited:?} for the receive backoff to pass"
    );
}

#[tokio::test(start_paused = true)]
async fn listener_stops_while_backing_off() {
    let wire = Wire::failing(usize::MAX);
    let t = transport(&wire);
    let listener = NotificationListener::builder(&t)
        .target(Target::new("n"))
        .endpoint(NotificationEndpoint::from_fn(|_n| async {
            Ok(HandlerOutcome::Handled)
        }))
        .build()
        .unwrap();
    listener.start().await.unwrap();
    stop_ends_a_backoff(&wire, || listener.stop(), listener.wait()).await;
}

#[tokio::test(start_paused = true)]
async fn server_stops_while_backing_off() {
    let wire = Wire::failing(usize::MAX);
    let t = transport(&wire);
    let server = RpcServer::builder(&t, Target::new("calc").with_server("h1"))
        .endpoint(
            RpcEndpoint::new().method("m", |_ctx, _args: serde_json::Value| async {
                Ok::<_, RemoteError>(())
            }),
        )
        .build()
        .unwrap();
    server.start().await.unwrap();
    stop_ends_a_backoff(&wire, || server.stop(), server.wait()).await;
}
