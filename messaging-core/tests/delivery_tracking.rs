//! The transport's delivery tracking, on a driver whose deliveries the test settles
//! by hand: every receipt resolves (in any completion order, while other deliveries
//! stay pending, after a quiet spell), failures are sent again, and a runtime that
//! shuts down fails its receipts instead of hanging them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::driver::{
    Capabilities, CloseReport, Driver, OutgoingRecord, PendingDelivery, Subscription,
    SubscriptionSpec,
};
use messaging_core::{DeliveryReceipt, Error, ErrorKind, Result, Retry, Transport, TransportUrl};
use tokio::sync::oneshot;

/// A driver whose sends stay pending until the test settles them.
#[derive(Debug, Default)]
struct Deferred {
    sent: Mutex<Vec<(Bytes, oneshot::Sender<Result<()>>)>>,
}

impl Deferred {
    /// Take every delivery sent so far, in sending order.
    fn take(&self) -> Vec<(Bytes, oneshot::Sender<Result<()>>)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

#[async_trait]
impl Driver for Deferred {
    fn name(&self) -> &str {
        "deferred"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        let mut sent = self.sent.lock().unwrap();
        batch
            .iter()
            .map(|r| {
                let (tx, rx) = oneshot::channel();
                sent.push((r.body.clone(), tx));
                Ok(PendingDelivery::Pending(Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(Error::new(ErrorKind::DeliveryFailed, "dropped").with_retryable(false))
                    })
                })))
            })
            .collect()
    }
    async fn subscribe(&self, _spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        unimplemented!("not used")
    }
    async fn close(&self, _timeout: Duration) -> Result<CloseReport> {
        Ok(CloseReport::default())
    }
}

fn transport() -> (Arc<Deferred>, Transport) {
    let driver = Arc::new(Deferred::default());
    let t = Transport::from_driver(TransportUrl::parse("deferred://").unwrap(), driver.clone());
    (driver, t)
}

/// Resolves the receipt, failing the test if it hangs.
async fn resolved(receipt: DeliveryReceipt) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(10), receipt.delivered())
        .await
        .expect("the receipt never resolved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receipt_resolves_whatever_the_completion_order() {
    let (driver, t) = transport();
    let mut receipts = Vec::new();
    let mut settled = 0;
    for round in 0..20 {
        for i in 0..100 {
            let body = Bytes::from(format!("{round}-{i}"));
            receipts.push(t.send("t", body, Retry::Limited(0)).await.unwrap());
        }
        // Settle what was sent so far, newest first, while later rounds keep sending.
        for (_, tx) in driver.take().into_iter().rev() {
            tx.send(Ok(())).unwrap();
            settled += 1;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(settled, 2000);
    for r in receipts {
        resolved(r).await.unwrap();
    }
    let c = t.counters();
    assert_eq!(
        (c.accepted, c.delivered, c.delivery_failed),
        (2000, 2000, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_handed_over_while_another_is_pending_are_awaited() {
    let (driver, t) = transport();
    let first = t
        .send("t", Bytes::from_static(b"slow"), Retry::Limited(0))
        .await
        .unwrap();
    let (_, slow) = driver.take().pop().unwrap();
    // Let the tracker take "slow" and settle down to await it (it is not idle now, so
    // the next sends do not wake it); these must not wait for "slow".
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut receipts = Vec::new();
    for i in 0..100 {
        receipts.push(
            t.send("t", Bytes::from(i.to_string()), Retry::Limited(0))
                .await
                .unwrap(),
        );
    }
    for (_, tx) in driver.take() {
        tx.send(Ok(())).unwrap();
    }
    for r in receipts {
        resolved(r).await.unwrap();
    }
    assert_eq!(t.counters().delivered, 100);
    slow.send(Ok(())).unwrap();
    resolved(first).await.unwrap();
    assert_eq!(t.counters().delivered, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_after_a_quiet_spell_is_tracked() {
    let (driver, t) = transport();
    for round in 0..3 {
        let r = t
            .send("t", Bytes::from(format!("{round}")), Retry::Limited(0))
            .await
            .unwrap();
        for (_, tx) in driver.take() {
            tx.send(Ok(())).unwrap();
        }
        resolved(r).await.unwrap();
        // Long enough for the tracker to go to sleep with nothing pending.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.counters().delivered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_sent_again_and_a_final_one_reported() {
    let (driver, t) = transport();
    let retried = t
        .send("t", Bytes::from_static(b"again"), Retry::Limited(1))
        .await
        .unwrap();
    let lost = t
        .send("t", Bytes::from_static(b"lost"), Retry::Limited(0))
        .await
        .unwrap();
    let transient = || Err(Error::new(ErrorKind::DeliveryFailed, "transient").with_retryable(true));
    for (_, tx) in driver.take() {
        tx.send(transient()).unwrap();
    }
    // "again" comes back to the driver (the core resends it); settle it this time.
    let resent = loop {
        let mut sent = driver.take();
        if let Some(s) = sent.pop() {
            assert!(sent.is_empty());
            break s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(resent.0, Bytes::from_static(b"again"));
    resent.1.send(Ok(())).unwrap();
    resolved(retried).await.unwrap();
    let e = resolved(lost).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::DeliveryFailed);
    let c = t.counters();
    assert_eq!((c.delivered, c.retried, c.delivery_failed), (1, 1, 1));
}

/// The first runtime shuts down with a delivery pending: its tracker task either ran
/// (multi-threaded runtime, most of the time) or never got polled at all (current
/// thread runtime: `block_on` returns before the spawned task runs). Both must
/// fail the receipt and leave the transport able to track on the next runtime.
fn runtime_shutdown_case(first_runtime: tokio::runtime::Runtime) {
    let (driver, t) = transport();
    let stranded = first_runtime
        .block_on(t.send("t", Bytes::from_static(b"a"), Retry::Limited(0)))
        .unwrap();
    // Its tracker ends with the runtime, the delivery still pending.
    drop(first_runtime);
    let second_runtime = tokio::runtime::Runtime::new().unwrap();
    second_runtime.block_on(async {
        let e = resolved(stranded).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Internal, "{e}");
        let r = t
            .send("t", Bytes::from_static(b"b"), Retry::Limited(0))
            .await
            .unwrap();
        let (body, tx) = driver.take().pop().unwrap();
        assert_eq!(body, Bytes::from_static(b"b"));
        tx.send(Ok(())).unwrap();
        resolved(r).await.unwrap();
    });
}

#[test]
fn a_runtime_that_shuts_down_fails_its_receipts_and_the_next_one_tracks_again() {
    runtime_shutdown_case(tokio::runtime::Runtime::new().unwrap());
}

#[test]
fn a_runtime_that_shuts_down_before_the_tracker_first_runs_fails_its_receipts_too() {
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime_shutdown_case(current_thread);
}
