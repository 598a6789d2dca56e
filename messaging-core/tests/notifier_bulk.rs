//! Per-destination outcomes of the notifier: several topics, bulk sends, partial
//! failures and resending only what failed, on a sink double that refuses chosen
//! (notification, topic) pairs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{
    Capabilities, CloseReport, Driver, OutgoingRecord, PendingDelivery, Subscription,
    SubscriptionSpec,
};
use messaging_core::notifier::{SinkItem, TopicResults};
use messaging_core::{
    Context, DeliveryReceipt, Error, ErrorKind, NotificationSink, Notifier, OutgoingNotification,
    PartialFailure, Priority, RecordingSink, Retry, Transport, TransportUrl,
};
use serde_json::json;

/// Decides, from a notification's payload `i`, its topic and how often this pair was
/// offered before, whether the sink refuses it (and with which kind).
type Refuse = dyn Fn(i64, &str, usize) -> Option<ErrorKind> + Send + Sync;

/// A sink that accepts (and keeps) or refuses each (notification, topic) pair.
struct PickySink {
    refuse: Box<Refuse>,
    offered: Mutex<HashMap<(String, String), usize>>,
    /// Accepted pairs: (message id, topic), in order.
    accepted: Mutex<Vec<(String, String)>>,
    batches: Mutex<usize>,
}

impl std::fmt::Debug for PickySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PickySink")
    }
}

impl PickySink {
    fn new(
        refuse: impl Fn(i64, &str, usize) -> Option<ErrorKind> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(PickySink {
            refuse: Box::new(refuse),
            offered: Mutex::default(),
            accepted: Mutex::default(),
            batches: Mutex::new(0),
        })
    }

    /// How often each (message id, topic) was accepted.
    fn accepted_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for pair in self.accepted.lock().unwrap().iter() {
            *counts.entry(pair.clone()).or_default() += 1;
        }
        counts
    }
}

#[async_trait]
impl NotificationSink for PickySink {
    async fn emit(&self, n: &OutgoingNotification, topics: &[String], _r: Retry) -> TopicResults {
        let i = n.payload_value()["i"].as_i64().unwrap_or(-1);
        topics
            .iter()
            .map(|t| {
                let key = (n.message_id.clone(), t.clone());
                let attempt = {
                    let mut offered = self.offered.lock().unwrap();
                    let c = offered.entry(key.clone()).or_default();
                    *c += 1;
                    *c - 1
                };
                match (self.refuse)(i, t, attempt) {
                    Some(kind) => Err(Error::new(kind, format!("refused {i} on {t}"))),
                    None => {
                        self.accepted.lock().unwrap().push(key);
                        Ok(DeliveryReceipt::already_delivered())
                    }
                }
            })
            .collect()
    }

    async fn emit_batch(&self, items: &[SinkItem<'_>], retry: Retry) -> Vec<TopicResults> {
        *self.batches.lock().unwrap() += 1;
        let mut results = Vec::new();
        for item in items {
            results.push(self.emit(item.notification, item.topics, retry).await);
        }
        results
    }
}

fn notifier(topics: &[&str], sink: Arc<dyn NotificationSink>) -> Notifier {
    Notifier::builder()
        .publisher_id("bulk.test")
        .topics(topics.iter().copied())
        .sink(sink)
        .build()
        .unwrap()
}

fn pair(id: &str, topic: &str) -> (String, String) {
    (id.to_owned(), topic.to_owned())
}

#[tokio::test]
async fn second_of_three_topics_refused_names_the_others_and_resend_goes_only_to_it() {
    let sink =
        PickySink::new(|_, t, attempt| (t == "t2" && attempt == 0).then_some(ErrorKind::Transport));
    let n = notifier(&["t1", "t2", "t3"], sink.clone());
    let err = n
        .info(&Context::new(), "e", &json!({"i": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Transport, "{err}");
    assert!(err.is_retryable());
    assert!(err.message().contains("failed on t2 (sink 0)"), "{err}");
    assert!(
        err.message()
            .contains("succeeded on [t1 (sink 0), t3 (sink 0)]"),
        "{err}"
    );
    let partial = err
        .source_as::<PartialFailure>()
        .expect("a PartialFailure source");
    let topics: Vec<&str> = partial.succeeded.iter().map(|d| d.topic.as_str()).collect();
    assert_eq!(topics, ["t1", "t3"]);
    assert_eq!(partial.resend.pairs(), 1);
    let id = partial.resend.items()[0].0.message_id.clone();

    let outcome = n
        .resend(partial.resend.clone())
        .await
        .unwrap()
        .outcome()
        .await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let expected: BTreeMap<_, _> = [pair(&id, "t1"), pair(&id, "t2"), pair(&id, "t3")]
        .into_iter()
        .map(|p| (p, 1))
        .collect();
    assert_eq!(
        sink.accepted_counts(),
        expected,
        "each topic has it exactly once"
    );
}

#[tokio::test]
async fn single_topic_refusal_is_the_sinks_error_unchanged() {
    let sink = PickySink::new(|_, _, _| Some(ErrorKind::ResourceExhausted));
    let n = notifier(&["only"], sink);
    let err = n
        .info(&Context::new(), "e", &json!({"i": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::ResourceExhausted);
    assert_eq!(err.message(), "refused 1 on only");
    assert!(err.source_as::<PartialFailure>().is_none());
}

#[tokio::test]
async fn bulk_partial_failure_then_resend_of_only_the_failed_holds_each_once() {
    // Every third notification is refused on t2 the first time; t1 takes everything.
    let sink = PickySink::new(|i, t, attempt| {
        (i % 3 == 0 && t == "t2" && attempt == 0).then_some(ErrorKind::DeliveryFailed)
    });
    let n = notifier(&["t1", "t2"], sink.clone());
    let items = (0..30).map(|i| ("compute.instance.exists", json!({"i": i})));
    let receipt = n
        .notify_many(Priority::Info, &Context::new(), items)
        .await
        .unwrap();
    assert_eq!(receipt.len(), 30);
    assert_eq!(receipt.refused(), 10);
    assert_eq!(
        *sink.batches.lock().unwrap(),
        1,
        "one batch call for the bulk"
    );
    let outcome = receipt.outcome().await;
    assert!(!outcome.is_delivered());
    assert_eq!(outcome.failed_count(), 10);
    let failed: Vec<i64> = outcome
        .failures()
        .map(|(n, d, _)| {
            assert_eq!(d.topic, "t2");
            n.payload_value()["i"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(failed, (0..30).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    let ids: Vec<String> = outcome
        .notifications
        .iter()
        .map(|o| o.notification.message_id.clone())
        .collect();

    let resend = outcome.resend();
    assert_eq!((resend.notifications(), resend.pairs()), (10, 10));
    let again = n.resend(resend).await.unwrap().outcome().await;
    assert!(again.is_delivered(), "{again:?}");

    let counts = sink.accepted_counts();
    assert_eq!(counts.len(), 60, "every notification on both topics");
    for id in &ids {
        assert_eq!(counts.get(&pair(id, "t1")), Some(&1));
        assert_eq!(counts.get(&pair(id, "t2")), Some(&1));
    }
}

#[tokio::test]
async fn outcome_unknown_is_resent_only_when_the_caller_opts_in() {
    let sink = PickySink::new(|i, _, attempt| match (i, attempt) {
        (1, 0) => Some(ErrorKind::OutcomeUnknown),
        (2, 0) => Some(ErrorKind::Timeout),
        _ => None,
    });
    let n = notifier(&["t"], sink.clone());
    let items = (0..4).map(|i| ("e", json!({"i": i})));
    let outcome = n
        .notify_many(Priority::Info, &Context::new(), items)
        .await
        .unwrap()
        .outcome()
        .await;
    assert_eq!((outcome.failed_count(), outcome.unknown_count()), (2, 1));
    let payload_i = |o: &OutgoingNotification| o.payload_value()["i"].as_i64().unwrap();
    let safe: Vec<i64> = outcome
        .resend()
        .items()
        .iter()
        .map(|(n, _)| payload_i(n))
        .collect();
    assert_eq!(safe, [2]);
    let all: Vec<i64> = outcome
        .resend_including_unknown()
        .items()
        .iter()
        .map(|(n, _)| payload_i(n))
        .collect();
    assert_eq!(all, [1, 2]);
    assert!(n
        .resend(outcome.resend())
        .await
        .unwrap()
        .outcome()
        .await
        .is_delivered());
    assert_eq!(
        sink.accepted_counts().len(),
        3,
        "the unknown one was not sent again"
    );
}

#[tokio::test]
async fn bulk_with_an_unserializable_item_sends_nothing_and_names_it() {
    let rec = Arc::new(RecordingSink::new());
    let n = notifier(&["t"], rec.clone());
    // JSON object keys must be strings: a map keyed by tuples does not serialize.
    let bad: HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
    let items = [("good", None), ("bad", Some(&bad))];
    let err = n
        .notify_many(Priority::Info, &Context::new(), items)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Serialization, "{err}");
    assert!(err.message().starts_with("bulk item 1:"), "{err}");
    assert!(rec.records().is_empty(), "nothing of the bulk was sent");
}

#[tokio::test]
async fn bulk_through_the_default_batch_keeps_order_topics_and_priority() {
    let rec = Arc::new(RecordingSink::new());
    let n = notifier(&["a", "b"], rec.clone());
    let items = (0..5).map(|i| (format!("e{i}"), i));
    let outcome = n
        .notify_many(Priority::Sample, &Context::new(), items)
        .await
        .unwrap()
        .outcome()
        .await;
    assert!(outcome.is_delivered());
    let got: Vec<(String, Priority, Vec<String>)> = rec
        .records()
        .into_iter()
        .map(|r| (r.event_type, r.priority, r.topics))
        .collect();
    let want: Vec<(String, Priority, Vec<String>)> = (0..5)
        .map(|i| {
            (
                format!("e{i}"),
                Priority::Sample,
                vec!["a".into(), "b".into()],
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn closed_notifier_refuses_a_bulk() {
    let rec = Arc::new(RecordingSink::new());
    let n = notifier(&["t"], rec.clone());
    n.close();
    let err = n
        .notify_many(Priority::Info, &Context::new(), [("e", 1)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Closed);
    assert!(rec.records().is_empty());
}

/// A driver that acknowledges every record at once, except that while `fail_on` is
/// set, records for that topic are accepted and then fail (a broker-side failure).
#[derive(Debug, Default)]
struct FailsOneTopic {
    fail_on: Mutex<Option<String>>,
    /// Topics of the records that were delivered, in order.
    delivered: Mutex<Vec<String>>,
}

#[async_trait]
impl Driver for FailsOneTopic {
    fn name(&self) -> &str {
        "fails-one-topic"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn send_batch(
        &self,
        batch: &[OutgoingRecord],
    ) -> Vec<messaging_core::Result<PendingDelivery>> {
        let fail_on = self.fail_on.lock().unwrap().clone();
        let mut delivered = self.delivered.lock().unwrap();
        batch
            .iter()
            .map(|record| {
                let topic = &*record.topic;
                if fail_on.as_deref() == Some(topic) {
                    let e = Error::new(ErrorKind::DeliveryFailed, format!("{topic} lost it"));
                    return Ok(PendingDelivery::Pending(Box::pin(async move {
                        Err(e.with_retryable(false))
                    })));
                }
                delivered.push(topic.to_owned());
                Ok(PendingDelivery::Delivered)
            })
            .collect()
    }
    async fn subscribe(
        &self,
        _spec: SubscriptionSpec,
    ) -> messaging_core::Result<Box<dyn Subscription>> {
        Err(Error::unsupported("fails-one-topic", "subscribe"))
    }
    async fn close(&self, _timeout: Duration) -> messaging_core::Result<CloseReport> {
        Ok(CloseReport::default())
    }
}

#[tokio::test]
async fn broker_side_failure_on_one_topic_is_reported_by_delivered_and_resent_only_there() {
    let driver = Arc::new(FailsOneTopic::default());
    *driver.fail_on.lock().unwrap() = Some("t2.info".into());
    let t = Transport::from_driver(TransportUrl::parse("fails://").unwrap(), driver.clone());
    let n = Notifier::builder()
        .publisher_id("p")
        .topics(["t1", "t2", "t3"])
        .retry(Retry::Limited(0))
        .transport(&t)
        .build()
        .unwrap();
    let receipt = n
        .info(&Context::new(), "e", &json!({"i": 1}))
        .await
        .unwrap();
    assert!(!receipt.is_delivered());
    let err = receipt.delivered().await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::DeliveryFailed, "{err}");
    assert!(err.message().contains("failed on t2 (sink 0)"), "{err}");
    let partial = err
        .source_as::<PartialFailure>()
        .expect("a PartialFailure source");
    assert_eq!(partial.succeeded.len(), 2);

    *driver.fail_on.lock().unwrap() = None;
    let again = n
        .resend(partial.resend.clone())
        .await
        .unwrap()
        .outcome()
        .await;
    assert!(again.is_delivered(), "{again:?}");
    assert_eq!(
        *driver.delivered.lock().unwrap(),
        ["t1.info", "t3.info", "t2.info"]
    );
}
