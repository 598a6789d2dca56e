//! The transport's send pipeline on a scripted driver: one retry budget per record
//! (whether attempts fail when sent or when delivered), unknown outcomes never sent
//! again, and a batch's per-record outcomes in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::driver::{
    Capabilities, CloseReport, Driver, OutgoingRecord, PendingDelivery, Subscription,
    SubscriptionSpec,
};
use messaging_core::{Error, ErrorKind, Result, Retry, Transport, TransportUrl};

/// What one attempt to send a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Accepted, then acknowledged.
    Deliver,
    /// Refused at send time, retryably.
    FailSend,
    /// Accepted, then the delivery fails retryably.
    FailDelivery,
    /// Refused at send time: the outcome is unknown.
    UnknownAtSend,
    /// Accepted, then the delivery's outcome is unknown.
    UnknownAtDelivery,
    /// The local queue is full.
    Full,
}

type Plan = Box<dyn Fn(&[u8], u32) -> Step + Send + Sync>;

/// The step of the n-th call, whatever the record.
type Pattern = fn(u32) -> Step;

/// A driver that does, for each call with each record (by body), what `plan` says
/// (given the number of earlier calls), and counts the attempts.
struct Scripted {
    plan: Plan,
    caps: Capabilities,
    /// Per body: the driver's calls, and the attempts among them (a full queue is
    /// not an attempt).
    attempts: Mutex<HashMap<Bytes, (u32, u32)>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").finish_non_exhaustive()
    }
}

impl Scripted {
    fn attempts(&self, body: &str) -> u32 {
        let attempts = self.attempts.lock().unwrap();
        attempts.get(body.as_bytes()).map_or(0, |(_, n)| *n)
    }

    fn step(&self, body: &Bytes) -> Step {
        let mut attempts = self.attempts.lock().unwrap();
        let (calls, n) = attempts.entry(body.clone()).or_insert((0, 0));
        let step = (self.plan)(body, *calls);
        *calls += 1;
        if step != Step::Full {
            *n += 1;
        }
        step
    }
}

fn failing(kind: ErrorKind, what: &str) -> Error {
    Error::new(kind, format!("scripted: {what}"))
}

#[async_trait]
impl Driver for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        let later = |outcome: Result<()>| {
            Ok(PendingDelivery::Pending(Box::pin(async move {
                tokio::task::yield_now().await;
                outcome
            })))
        };
        batch
            .iter()
            .map(|r| match self.step(&r.body) {
                Step::Deliver => later(Ok(())),
                Step::FailSend => Err(failing(ErrorKind::Transport, "broker down")),
                Step::FailDelivery => {
                    later(Err(failing(ErrorKind::DeliveryFailed, "not acknowledged")))
                }
                Step::UnknownAtSend => Err(failing(ErrorKind::OutcomeUnknown, "timed out")),
                Step::UnknownAtDelivery => {
                    later(Err(failing(ErrorKind::OutcomeUnknown, "timed out")))
                }
                Step::Full => Err(failing(ErrorKind::ResourceExhausted, "queue full")),
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

fn scripted(caps: Capabilities, plan: Plan) -> (Arc<Scripted>, Transport) {
    let driver = Arc::new(Scripted {
        plan,
        caps,
        attempts: Mutex::default(),
    });
    let url = TransportUrl::parse("scripted://").unwrap();
    (driver.clone(), Transport::from_driver(url, driver))
}

/// The outcome of sending `body` and awaiting its receipt (bounded, so a hang fails).
async fn outcome(t: &Transport, body: &'static str, retry: Retry) -> Result<()> {
    let send = async {
        t.send("t", Bytes::from_static(body.as_bytes()), retry)
            .await?
            .delivered()
            .await
    };
    tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .expect("the send never resolved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_retry_makes_exactly_n_plus_one_attempts_however_they_fail() {
    let patterns: [(&str, Pattern); 4] = [
        ("at send time", |_| Step::FailSend),
        ("at delivery time", |_| Step::FailDelivery),
        ("alternately, send first", |i| {
            [Step::FailSend, Step::FailDelivery][i as usize % 2]
        }),
        ("alternately, delivery first", |i| {
            [Step::FailDelivery, Step::FailSend][i as usize % 2]
        }),
    ];
    for (how, pattern) in patterns {
        for n in [0, 1, 3] {
            let (driver, t) = scripted(Capabilities::default(), Box::new(move |_, i| pattern(i)));
            let e = outcome(&t, "r", Retry::Limited(n)).await.unwrap_err();
            assert_eq!(driver.attempts("r"), n + 1, "failing {how}, retry {n}: {e}");
            let c = t.counters();
            assert_eq!(c.retried, u64::from(n), "failing {how}, retry {n}");
            let never_accepted = (0..=n).all(|i| pattern(i) == Step::FailSend);
            let kind = if never_accepted {
                // The send itself reports the driver's error.
                ErrorKind::Transport
            } else {
                ErrorKind::DeliveryFailed
            };
            assert_eq!(e.kind(), &kind, "failing {how}, retry {n}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_sent_again_until_delivered() {
    let plan = |_: &[u8], i: u32| match i {
        0 => Step::FailDelivery,
        1 => Step::FailSend,
        2 => Step::Full,
        _ => Step::Deliver,
    };
    let (driver, t) = scripted(Capabilities::default(), Box::new(plan));
    outcome(&t, "r", Retry::Forever).await.unwrap();
    // A full queue is waited out without spending an attempt.
    assert_eq!(driver.attempts("r"), 3);
    let c = t.counters();
    assert_eq!((c.accepted, c.delivered, c.retried), (1, 1, 2));
    assert_eq!((c.delivery_failed, c.outcome_unknown), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_never_sent_again_and_says_so() {
    // At delivery time, after a retried failure.
    let plan = |_: &[u8], i: u32| {
        if i == 0 {
            Step::FailDelivery
        } else {
            Step::UnknownAtDelivery
        }
    };
    let (driver, t) = scripted(Capabilities::default(), Box::new(plan));
    let e = outcome(&t, "r", Retry::Forever).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::OutcomeUnknown, "{e}");
    assert!(!e.is_retryable());
    // Give a wrongful resend the time to happen.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(driver.attempts("r"), 2);
    let c = t.counters();
    assert_eq!((c.retried, c.outcome_unknown, c.delivery_failed), (1, 1, 0));

    // At send time.
    let (driver, t) = scripted(
        Capabilities::default(),
        Box::new(|_, _| Step::UnknownAtSend),
    );
    let e = outcome(&t, "r", Retry::Forever).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::OutcomeUnknown, "{e}");
    assert_eq!(driver.attempts("r"), 1);
    assert_eq!(t.counters().outcome_unknown, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reports_one_outcome_per_record_in_order() {
    let caps = Capabilities {
        max_record_bytes: Some(8),
        max_record_bytes_option: Some("scripted_limit"),
        ..Capabilities::default()
    };
    let plan = |body: &[u8], _: u32| match body {
        b"full" => Step::Full,
        b"flaky" => Step::FailSend,
        _ => Step::Deliver,
    };
    let (driver, t) = scripted(caps, Box::new(plan));
    let records = ["a", "too large!", "full", "b", "flaky", "c"]
        .map(|body| OutgoingRecord::new("t", Bytes::from_static(body.as_bytes())));
    // "full" waits for room until the transport closes under it.
    let closer = {
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            t.close(Duration::from_secs(1)).await.unwrap();
        })
    };
    let outcomes = t.send_batch(records.to_vec(), Retry::Limited(1)).await;
    closer.await.unwrap();
    assert_eq!(outcomes.len(), records.len());
    let mut kinds = Vec::new();
    for (record, outcome) in records.iter().zip(outcomes) {
        kinds.push(match outcome {
            Ok(receipt) => receipt.delivered().await.err().map(|e| e.kind().clone()),
            Err(e) => {
                if record.body == "too large!" {
                    assert!(e.to_string().contains("scripted_limit (8)"), "{e}");
                }
                Some(e.kind().clone())
            }
        });
    }
    assert_eq!(
        kinds,
        [
            None,
            Some(ErrorKind::InvalidArgument),
            Some(ErrorKind::Closed),
            None,
            Some(ErrorKind::Transport),
            None
        ]
    );
    assert_eq!(
        driver.attempts("too large!"),
        0,
        "refused before the driver"
    );
    assert_eq!(driver.attempts("flaky"), 2, "its own budget: one retry");
    assert_eq!(driver.attempts("a"), 1);
}
