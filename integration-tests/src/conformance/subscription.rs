//! The driver's own side of the contract, through its [`Subscription`] directly:
//! receive / ack / requeue / close, cancel safety of `receive`, a topic that does
//! not exist, every [`StartPosition`], order within a partition and history replay.
//!
//! Records are sent through [`Transport::send`] (the core's send path), with plain
//! bodies `0`, `1`...: a driver moves opaque bytes. The ordering case assumes topics
//! of one partition, every driver's default.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use messaging_core::{
    DeliveryTag, ReceivedRecord, Retry, StartPosition, Subscription, SubscriptionSpec, Transport,
};

use super::{unique, Harness};

/// A transport and a fresh topic that exists where the driver needs topics created.
async fn transport_and_topic(h: &Harness, what: &str) -> (Transport, String) {
    let t = h.transport().await;
    let topic = unique(what);
    t.ensure_topics(std::slice::from_ref(&topic))
        .await
        .expect("ensure_topics");
    (t, topic)
}

async fn subscribe(
    t: &Transport,
    topic: &str,
    pool: &str,
    start: StartPosition,
) -> Box<dyn Subscription> {
    t.driver()
        .subscribe(SubscriptionSpec {
            topics: vec![topic.to_owned()],
            pool: Some(pool.to_owned()),
            start,
        })
        .await
        .expect("subscribe")
}

/// Send each body in order and wait until the transport delivered it.
async fn send_all(t: &Transport, topic: &str, bodies: impl IntoIterator<Item = String>) {
    for body in bodies {
        t.send(topic, Bytes::from(body), Retry::Limited(3))
            .await
            .expect("send")
            .delivered()
            .await
            .expect("delivered");
    }
}

fn numbers(range: std::ops::Range<i64>) -> impl Iterator<Item = String> {
    range.map(|i| i.to_string())
}

/// Receive until `n` records arrived or the harness's patience ran out.
async fn receive_n(h: &Harness, sub: &dyn Subscription, n: usize) -> Vec<ReceivedRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + h.patience() * 2;
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let more = sub
            .receive(n - out.len(), Duration::from_millis(200))
            .await
            .expect("receive");
        out.extend(more);
    }
    out
}

/// Whatever else arrives within the harness's quiet period.
async fn receive_quiet(h: &Harness, sub: &dyn Subscription) -> Vec<ReceivedRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + h.quiet_period();
    while tokio::time::Instant::now() < deadline {
        out.extend(
            sub.receive(100, Duration::from_millis(100))
                .await
                .expect("receive"),
        );
    }
    out
}

fn bodies(records: &[ReceivedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_by_key(|b| (b.len(), b.clone()));
    v
}

fn tags(records: &[ReceivedRecord]) -> Vec<DeliveryTag> {
    records.iter().map(|r| r.tag).collect()
}

async fn close(h: &Harness, sub: Box<dyn Subscription>) {
    sub.close(h.patience()).await.expect("subscription closes");
}

/// Records arrive intact and once, from the topic they were sent to; acknowledged
/// ones never come back to the pool after a close, and new ones still arrive.
pub async fn receive_ack_and_close(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-ack").await;
    let pool = unique("pool");
    let sub = subscribe(&t, &topic, &pool, StartPosition::Default).await;
    send_all(&t, &topic, numbers(0..10)).await;
    let got = receive_n(&h, sub.as_ref(), 10).await;
    assert_eq!(sorted(bodies(&got)), numbers(0..10).collect::<Vec<_>>());
    assert!(
        got.iter().all(|r| *r.topic == *topic),
        "topic of each record"
    );
    let distinct: HashSet<DeliveryTag> = got.iter().map(|r| r.tag).collect();
    assert_eq!(distinct.len(), 10, "each record has its own tag");
    sub.ack(&tags(&got)).await.expect("ack");
    assert!(receive_quiet(&h, sub.as_ref()).await.is_empty());
    close(&h, sub).await;

    let again = subscribe(&t, &topic, &pool, StartPosition::Default).await;
    send_all(&t, &topic, numbers(10..11)).await;
    let got = receive_n(&h, again.as_ref(), 1).await;
    let mut all = bodies(&got);
    all.extend(bodies(&receive_quiet(&h, again.as_ref()).await));
    assert_eq!(
        all,
        vec!["10"],
        "only the new record: acked ones never come back"
    );
    again.ack(&tags(&got)).await.expect("ack");
    close(&h, again).await;
    t.close(h.patience()).await.unwrap();
}

/// What a member did not acknowledge comes back to the next member of its pool
/// when it closes; what was acknowledged before it does not. (Records acknowledged
/// after an unacknowledged one may come back once: Kafka commits an offset, the
/// first one not acknowledged.)
pub async fn unacknowledged_records_come_back(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-back").await;
    let pool = unique("pool");
    let first = subscribe(&t, &topic, &pool, StartPosition::Default).await;
    send_all(&t, &topic, numbers(0..10)).await;
    let got = receive_n(&h, first.as_ref(), 10).await;
    assert_eq!(got.len(), 10);
    let acked: Vec<DeliveryTag> = got
        .iter()
        .filter(|r| r.body.as_ref() != b"2")
        .map(|r| r.tag)
        .collect();
    first.ack(&acked).await.expect("ack");
    close(&h, first).await;

    let second = subscribe(&t, &topic, &pool, StartPosition::Default).await;
    let mut again = receive_n(&h, second.as_ref(), 1).await;
    again.extend(receive_quiet(&h, second.as_ref()).await);
    let back = bodies(&again);
    assert!(back.contains(&"2".to_owned()), "2 came back: {back:?}");
    assert!(
        !back.contains(&"0".to_owned()) && !back.contains(&"1".to_owned()),
        "acknowledged before the gap, never again: {back:?}"
    );
    let distinct: HashSet<&String> = back.iter().collect();
    assert_eq!(distinct.len(), back.len(), "each at most once: {back:?}");
    second.ack(&tags(&again)).await.expect("ack");
    close(&h, second).await;

    let third = subscribe(&t, &topic, &pool, StartPosition::Default).await;
    let rest = receive_quiet(&h, third.as_ref()).await;
    assert!(
        rest.is_empty(),
        "everything was acknowledged: {:?}",
        bodies(&rest)
    );
    close(&h, third).await;
    t.close(h.patience()).await.unwrap();
}

/// A requeued record is delivered again, to the same member; only it.
pub async fn requeue_delivers_again(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-requeue").await;
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Default).await;
    send_all(&t, &topic, numbers(0..6)).await;
    let got = receive_n(&h, sub.as_ref(), 6).await;
    assert_eq!(got.len(), 6);
    let (odd, even): (Vec<ReceivedRecord>, Vec<ReceivedRecord>) = got
        .into_iter()
        .partition(|r| matches!(r.body.as_ref(), b"1" | b"3" | b"5"));
    sub.ack(&tags(&even)).await.expect("ack");
    sub.requeue(&tags(&odd)).await.expect("requeue");
    let mut again = receive_n(&h, sub.as_ref(), 3).await;
    again.extend(receive_quiet(&h, sub.as_ref()).await);
    assert_eq!(sorted(bodies(&again)), vec!["1", "3", "5"]);
    sub.ack(&tags(&again)).await.expect("ack");
    assert!(receive_quiet(&h, sub.as_ref()).await.is_empty());
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

/// A `receive` future dropped part-way (as a listener's `select!` does) loses
/// nothing: every record still arrives exactly once.
pub async fn receive_is_cancel_safe(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-cancel").await;
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Default).await;
    send_all(&t, &topic, numbers(0..50)).await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + h.patience() * 2;
    let mut round = 0u64;
    while got.len() < 50 && tokio::time::Instant::now() < deadline {
        round += 1;
        // Most rounds are cut off after 0-4 ms; every fourth is left to finish.
        let cut = Duration::from_millis(round % 5);
        let receive = sub.receive(7, Duration::from_millis(100));
        let more = if round.is_multiple_of(4) {
            receive.await.expect("receive")
        } else {
            match tokio::time::timeout(cut, receive).await {
                Ok(more) => more.expect("receive"),
                Err(_) => continue,
            }
        };
        sub.ack(&tags(&more)).await.expect("ack");
        got.extend(more);
    }
    got.extend(receive_quiet(&h, sub.as_ref()).await);
    assert_eq!(sorted(bodies(&got)), numbers(0..50).collect::<Vec<_>>());
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

/// Subscribing to a topic nobody created is no error: `receive` returns nothing
/// until records are sent there, then they arrive.
pub async fn topic_that_does_not_exist(h: Harness) {
    let t = h.transport().await;
    let topic = unique("sub-none");
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Earliest).await;
    let nothing = sub
        .receive(10, Duration::from_millis(500))
        .await
        .expect("receive on a missing topic is not an error");
    assert!(nothing.is_empty());
    t.ensure_topics(std::slice::from_ref(&topic))
        .await
        .expect("ensure_topics");
    send_all(&t, &topic, numbers(0..3)).await;
    let got = receive_n(&h, sub.as_ref(), 3).await;
    assert_eq!(sorted(bodies(&got)), numbers(0..3).collect::<Vec<_>>());
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

/// `StartPosition::Earliest`: the default pool of a topic gets what was sent before
/// it subscribed. (A *named* pool's backlog is the driver's: Kafka replays history,
/// memory keeps it for the first pool, RabbitMQ binds the pool's queue when it
/// subscribes, as oslo does; see `new_pool_replays_history`.)
pub async fn start_earliest_takes_what_was_sent(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-earliest").await;
    send_all(&t, &topic, numbers(0..5)).await;
    let sub = t
        .driver()
        .subscribe(SubscriptionSpec {
            topics: vec![topic.clone()],
            pool: None,
            start: StartPosition::Earliest,
        })
        .await
        .expect("subscribe");
    let mut got = receive_n(&h, sub.as_ref(), 5).await;
    got.extend(receive_quiet(&h, sub.as_ref()).await);
    assert_eq!(sorted(bodies(&got)), numbers(0..5).collect::<Vec<_>>());
    sub.ack(&tags(&got)).await.expect("ack");
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

/// `StartPosition::Latest`: nothing sent before the subscription arrives; what is
/// sent once it is in place does.
pub async fn start_latest_skips_what_was_sent(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-latest").await;
    send_all(&t, &topic, (0..5).map(|i| format!("old-{i}"))).await;
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Latest).await;
    // When "from now on" begins is the driver's (Kafka: once the group assigned the
    // partition), so send new records until one arrives.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + h.patience() * 2;
    let mut k = 0;
    while got.is_empty() && tokio::time::Instant::now() < deadline {
        send_all(&t, &topic, [format!("new-{k}")]).await;
        k += 1;
        got.extend(
            sub.receive(100, Duration::from_millis(200))
                .await
                .expect("receive"),
        );
    }
    got.extend(receive_quiet(&h, sub.as_ref()).await);
    let seen = bodies(&got);
    assert!(!seen.is_empty(), "a record sent after subscribing arrives");
    assert!(
        seen.iter().all(|b| b.starts_with("new-")),
        "nothing from before: {seen:?}"
    );
    sub.ack(&tags(&got)).await.expect("ack");
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `StartPosition::Timestamp`: a new pool starts at the first record at or after
/// the time.
pub async fn start_at_a_timestamp(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-time").await;
    send_all(&t, &topic, (0..3).map(|i| format!("before-{i}"))).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let from = now_millis();
    tokio::time::sleep(Duration::from_millis(50)).await;
    send_all(&t, &topic, (0..3).map(|i| format!("after-{i}"))).await;
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Timestamp(from)).await;
    let mut got = receive_n(&h, sub.as_ref(), 3).await;
    got.extend(receive_quiet(&h, sub.as_ref()).await);
    assert_eq!(bodies(&got), vec!["after-0", "after-1", "after-2"]);
    sub.ack(&tags(&got)).await.expect("ack");
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}

/// A new pool can start from records another pool already consumed.
pub async fn new_pool_replays_history(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-replay").await;
    let first = subscribe(&t, &topic, &unique("pool-a"), StartPosition::Earliest).await;
    send_all(&t, &topic, numbers(0..5)).await;
    let got = receive_n(&h, first.as_ref(), 5).await;
    assert_eq!(got.len(), 5);
    first.ack(&tags(&got)).await.expect("ack");
    close(&h, first).await;
    let late = subscribe(&t, &topic, &unique("pool-b"), StartPosition::Earliest).await;
    let mut replayed = receive_n(&h, late.as_ref(), 5).await;
    replayed.extend(receive_quiet(&h, late.as_ref()).await);
    assert_eq!(sorted(bodies(&replayed)), numbers(0..5).collect::<Vec<_>>());
    late.ack(&tags(&replayed)).await.expect("ack");
    close(&h, late).await;
    t.close(h.patience()).await.unwrap();
}

/// Records of one topic (one partition) reach a member in the order sent.
pub async fn order_within_a_partition(h: Harness) {
    let (t, topic) = transport_and_topic(&h, "sub-order").await;
    let sub = subscribe(&t, &topic, &unique("pool"), StartPosition::Default).await;
    let mut receipts = Vec::new();
    for body in numbers(0..200) {
        receipts.push(
            t.send(&topic, Bytes::from(body), Retry::Limited(0))
                .await
                .expect("send"),
        );
    }
    for r in receipts {
        r.delivered().await.expect("delivered");
    }
    let got = receive_n(&h, sub.as_ref(), 200).await;
    assert_eq!(bodies(&got), numbers(0..200).collect::<Vec<_>>());
    sub.ack(&tags(&got)).await.expect("ack");
    close(&h, sub).await;
    t.close(h.patience()).await.unwrap();
}
