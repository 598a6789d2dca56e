//! Faults on a real Kafka-protocol broker: a broker killed (-9) and restarted
//! mid-stream, and a listener process killed mid-batch.
//!
//! - `broker_kill_and_restart_mid_stream_loses_nothing_and_writes_nothing_twice` starts its own Tansu broker
//!   (sqlite storage) with the script named by `MESSAGING_TANSU_SCRIPT`
//!   (`scripts/tansu.sh`), so that killing it never disturbs other tests.
//! - `a_member_joining_and_another_leaving_under_load_duplicate_only_records_in_flight`
//!   needs any broker (as below).
//! - `killed_listener_hands_its_uncommitted_records_to_a_new_member` needs any broker
//!   (as the conformance suite: `KAFKA_BOOTSTRAP_SERVERS`, else Docker) and runs the
//!   listener to kill in a child process (this test binary, re-executed).
//!
//! Without what they need they are skipped with a note, or fail when
//! `MESSAGING_REQUIRE_BROKER=1`.

mod kafka_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{
    BatchEndpoint, Context, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier,
    Retry, StartPosition, Target, Transport,
};
use serde_json::json;

use integration_tests::support::{index_of, runtime};
use integration_tests::tansu::OwnTansu;
use kafka_support::{broker_required, eventually, unique};

fn skip(test: &str, why: &str) {
    if broker_required() {
        panic!("MESSAGING_REQUIRE_BROKER=1 but {test} cannot run: {why}");
    }
    eprintln!("{test} skipped: {why} (MESSAGING_REQUIRE_BROKER=1 makes this a failure)");
}

/// Counts how often each index was handled.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<i64, usize>>>);

impl Counts {
    fn endpoint(&self) -> NotificationEndpoint {
        let me = self.clone();
        NotificationEndpoint::from_fn(move |n| {
            let me = me.clone();
            async move {
                let i = index_of(&n).unwrap_or(-1);
                *me.0.lock().unwrap().entry(i).or_default() += 1;
                Ok(HandlerOutcome::Handled)
            }
        })
    }
    fn snapshot(&self) -> BTreeMap<i64, usize> {
        self.0.lock().unwrap().clone()
    }
    fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The numbers below `total` never handled.
    fn missing(&self, total: i64) -> Vec<i64> {
        let seen = self.0.lock().unwrap();
        (0..total).filter(|i| !seen.contains_key(i)).collect()
    }
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("faults.publisher")
        .topic(topic)
        .retry(Retry::Forever)
        .transport(t)
        .build()
        .unwrap()
}

#[test]
fn broker_kill_and_restart_mid_stream_loses_nothing_and_writes_nothing_twice() {
    kafka_support::init_tracing();
    let Some(script) = OwnTansu::script() else {
        return skip(
            "broker_kill_and_restart_mid_stream_loses_nothing_and_writes_nothing_twice",
            "MESSAGING_TANSU_SCRIPT (path to scripts/tansu.sh) is not set",
        );
    };
    let broker = OwnTansu::start(script, "kfaults").expect("start a Tansu broker");
    runtime().block_on(async {
        let t = kafka_support::transport(&broker.servers, "");
        let topic = unique("restart");
        let got = Counts::default();
        let listener = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(unique("pool"))
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        listener.start().await.unwrap();
        let n = notifier(&t, &topic);
        const TOTAL: i64 = 200;
        let mut receipts = Vec::new();
        for i in 0..TOTAL {
            if i == 60 {
                assert!(
                    eventually(Duration::from_secs(30), || got.distinct() >= 40).await,
                    "the listener never got going"
                );
            }
            if i == 80 {
                // Mid-stream, right after a burst (60..80 sent at once, so produce
                // requests are likely in flight): the broker dies hard.
                broker
                    .kill_and_restart()
                    .expect("kill -9 and restart the broker");
            }
            receipts.push(
                n.info(&Context::new(), "restart", &json!({"i": i}))
                    .await
                    .unwrap(),
            );
            if !(60..80).contains(&i) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for r in receipts {
            r.delivered()
                .await
                .expect("every notification is delivered");
        }
        assert!(
            eventually(Duration::from_secs(60), || got.distinct() as i64 >= TOTAL).await,
            "lost across the broker restart: {:?}",
            got.missing(TOTAL)
        );
        // At-least-once: records handled but not yet committed when the broker died
        // may come twice; none may be missing.
        let dups = got.snapshot().values().filter(|c| **c > 1).count();
        eprintln!("broker restart: {TOTAL} delivered, {dups} delivered twice");
        listener.stop_and_wait().await.unwrap();

        // Producer retries across the restart wrote nothing twice: a new pool reads the
        // whole log, with no fault now, and finds every record exactly once.
        let log = Counts::default();
        let reader = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(unique("reader"))
            .endpoint(log.endpoint())
            .start_position(StartPosition::Earliest)
            .build()
            .unwrap();
        reader.start().await.unwrap();
        assert!(
            eventually(Duration::from_secs(60), || log.distinct() as i64 >= TOTAL).await,
            "the log lacks records: {:?}",
            log.missing(TOTAL)
        );
        // Anything more would be a second copy in the log: give it time to show.
        tokio::time::sleep(Duration::from_secs(2)).await;
        reader.stop_and_wait().await.unwrap();
        let copies = log.snapshot();
        let twice: Vec<_> = copies.iter().filter(|(_, c)| **c != 1).collect();
        assert!(twice.is_empty(), "written more than once: {twice:?}");
        assert_eq!(copies.len() as i64, TOTAL, "{copies:?}");
        let report = t.close(Duration::from_secs(10)).await.unwrap();
        assert_eq!(report.undelivered, 0);
        assert_eq!(t.counters().delivery_failed, 0);
    });
}

const VICTIM_ENV: &str = "KAFKA_FAULTS_VICTIM";

/// The listener process that the next test kills. It does nothing unless started
/// by that test (with `KAFKA_FAULTS_VICTIM=servers|topic|pool|logfile`).
#[test]
#[ignore = "a child process of killed_listener_hands_its_uncommitted_records_to_a_new_member"]
fn victim_listener_process() {
    let Ok(spec) = std::env::var(VICTIM_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [servers, topic, pool, log] = parts[..] else {
        panic!("bad {VICTIM_ENV}");
    };
    let log = PathBuf::from(log);
    runtime().block_on(async move {
        let t = kafka_support::transport(servers, "");
        // Batches of 20, up to 4 in flight. The batch holding index 45 writes its
        // indexes, then hangs: the process is killed while handling it. Later batches
        // are handled and acknowledged, but their offsets cannot be committed past
        // the hanging batch.
        let endpoint = BatchEndpoint::from_batch_fn(move |batch| {
            let log = log.clone();
            async move {
                let indexes: Vec<i64> = batch.iter().map(|n| index_of(n).unwrap_or(-1)).collect();
                let hang = indexes.contains(&45);
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                for i in &indexes {
                    writeln!(f, "{}{i}", if hang { "hang " } else { "" }).unwrap();
                }
                drop(f);
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(HandlerOutcome::Handled)
            }
        });
        let l = NotificationListener::builder(&t)
            .target(Target::new(topic))
            .pool(pool)
            .batch_endpoint(endpoint)
            .batch(20, Duration::from_secs(5))
            .max_concurrency(4)
            .build()
            .unwrap();
        l.start().await.unwrap();
        std::future::pending::<()>().await;
    });
}

fn read_log(path: &Path) -> (BTreeSet<i64>, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut handled = BTreeSet::new();
    let mut hanging = false;
    for line in text.lines() {
        // "hang N": in the batch being handled when killed (never acknowledged).
        if line.starts_with("hang ") {
            hanging = true;
        } else if let Ok(i) = line.parse() {
            handled.insert(i);
        }
    }
    (handled, hanging)
}

#[test]
fn killed_listener_hands_its_uncommitted_records_to_a_new_member() {
    kafka_support::init_tracing();
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return skip(
            "killed_listener_hands_its_uncommitted_records_to_a_new_member",
            "no Kafka broker",
        );
    };
    const TOTAL: i64 = 100;
    let topic = unique("killed");
    let pool = unique("pool");
    let dir = std::env::temp_dir().join(unique("kafka-victim"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("handled.log");
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "");
        let n = notifier(&t, &topic);
        for i in 0..TOTAL {
            n.info(&Context::new(), "killed", &json!({"i": i}))
                .await
                .unwrap()
                .delivered()
                .await
                .unwrap();
        }
        let mut victim = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "victim_listener_process",
                "--ignored",
                "--nocapture",
            ])
            .env(
                VICTIM_ENV,
                format!("{servers}|{topic}|{pool}|{}", log.display()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("start the victim listener");
        // Wait until the victim hangs mid-batch, and the batches before it were
        // acknowledged long enough ago to be committed (every 250 ms).
        let hanging = eventually(Duration::from_secs(60), || read_log(&log).1).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        victim.kill().expect("kill -9 the victim");
        let _ = victim.wait();
        assert!(hanging, "the victim never reached the hanging batch");
        let (handled_by_victim, _) = read_log(&log);

        // Tansu workaround (test-broker.md): a member that died without leaving keeps
        // its partitions until a *new* member joins (and that join waits out the
        // dead member's session timeout, 6 s here); a surviving member would never
        // get them. So the records must reach a member that joins after the kill.
        let heir = Counts::default();
        let l = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(&pool)
            .endpoint(heir.endpoint())
            .build()
            .unwrap();
        l.start().await.unwrap();
        let complete = || {
            let got = heir.snapshot();
            (0..TOTAL).all(|i| handled_by_victim.contains(&i) || got.contains_key(&i))
        };
        assert!(
            eventually(Duration::from_secs(60), complete).await,
            "records neither handled by the killed listener nor delivered to the new member: {:?}",
            (0..TOTAL)
                .filter(|i| !handled_by_victim.contains(i) && !heir.snapshot().contains_key(i))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = heir.snapshot();
        l.stop_and_wait().await.unwrap();
        t.close(Duration::from_secs(10)).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        // The new member starts exactly where the committed prefix ended: everything
        // from there on, once each; nothing the victim committed.
        let first = *got.keys().next().expect("the new member received records");
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            (first..TOTAL).collect::<Vec<_>>(),
            "a contiguous tail"
        );
        assert!(got.values().all(|c| *c == 1), "each once: {got:?}");
        assert!(
            first > 0,
            "the batches handled before the hang were committed"
        );
        assert!(
            first <= 45,
            "the hanging batch (index 45) was never committed"
        );
        assert!(
            (0..first).all(|i| handled_by_victim.contains(&i)),
            "only records the victim handled were committed"
        );
    });
}

/// A listener whose handler stalls: the consumer stops fetching at
/// `max_poll_records`, pauses its partitions after a while, and resumes when the
/// handler goes on, losing and repeating nothing, in order.
#[test]
fn stalled_listener_pauses_and_resumes_in_order() {
    kafka_support::init_tracing();
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return skip(
            "stalled_listener_pauses_and_resumes_in_order",
            "no Kafka broker",
        );
    };
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "max_poll_records=5");
        let topic = unique("stall");
        let order = Arc::new(Mutex::new(Vec::new()));
        let endpoint = {
            let order = order.clone();
            NotificationEndpoint::from_fn(move |n| {
                let order = order.clone();
                async move {
                    let i = index_of(&n).unwrap_or(-1);
                    if i == 3 {
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                    order.lock().unwrap().push(i);
                    Ok(HandlerOutcome::Handled)
                }
            })
        };
        let l = NotificationListener::builder(&t)
            .target(Target::new(&topic))
            .pool(unique("pool"))
            .endpoint(endpoint)
            .max_concurrency(1)
            .build()
            .unwrap();
        l.start().await.unwrap();
        let n = notifier(&t, &topic);
        for i in 0..60 {
            n.info(&Context::new(), "stall", &json!({"i": i}))
                .await
                .unwrap();
        }
        assert!(
            eventually(Duration::from_secs(60), || order.lock().unwrap().len()
                >= 60)
            .await,
            "stuck after the stall: {:?}",
            order.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*order.lock().unwrap(), (0..60).collect::<Vec<i64>>());
        l.stop_and_wait().await.unwrap();
        t.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// A listener that copies what it skips to `dlq`, in `pool`, from the earliest record.
async fn dead_lettering(
    t: &Transport,
    topic: &str,
    dlq: &str,
    pool: &str,
    counts: &Counts,
) -> NotificationListener {
    let l = NotificationListener::builder(t)
        .target(Target::new(topic))
        .pool(pool)
        .endpoint(counts.endpoint())
        .start_position(StartPosition::Earliest)
        .dead_letter_topic(dlq)
        .dead_letter_retry(Retry::Limited(1))
        .build()
        .unwrap();
    l.start().await.unwrap();
    l
}

/// On a real broker, a copy to a dead-letter topic that does not exist yet (Tansu
/// creates no topic by itself, and this transport does not either) fails: the
/// skipped record stays unacknowledged and is counted, and the notification after
/// it is handled meanwhile. Once the topic exists, the pool's next member gets the
/// record again and copies it: it is on the dead-letter topic once.
#[test]
fn dead_letter_copy_fails_then_succeeds_once_the_topic_exists() {
    kafka_support::init_tracing();
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return skip(
            "dead_letter_copy_fails_then_succeeds_once_the_topic_exists",
            "no Kafka broker",
        );
    };
    runtime().block_on(async {
        // Creates the source topic (and later the dead-letter topic).
        let admin = kafka_support::transport(&servers, "");
        let topic = unique("dlq-src");
        let dlq = unique("dlq");
        let wire = admin.notification_topic(&topic, messaging_core::Priority::Info);
        admin
            .ensure_topics(std::slice::from_ref(&wire))
            .await
            .unwrap();
        admin
            .send(&wire, bytes::Bytes::from_static(b"junk"), Retry::Limited(3))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
        notifier(&admin, &topic)
            .info(&Context::new(), "after", &json!({"i": 0}))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();

        let registry = messaging_core::DriverRegistry::new();
        registry.register(driver_kafka::factory());
        let no_create = messaging_core::TransportUrl::parse(&format!(
            "kafka://{servers}?delivery_timeout=2&rdkafka.consumer.session.timeout.ms=6000\
             &rdkafka.consumer.heartbeat.interval.ms=1000"
        ))
        .unwrap();
        let t = Transport::open_with(&registry, &no_create, &[]).unwrap();
        let pool = unique("pool");
        let counts = Counts::default();
        let first = dead_lettering(&t, &topic, &dlq, &pool, &counts).await;
        assert!(
            eventually(Duration::from_secs(60), || first
                .counters()
                .dead_letter_failures
                == 1)
            .await,
            "{:?}",
            first.counters()
        );
        let c = first.counters();
        assert_eq!((c.skipped, c.dead_lettered), (1, 0), "{c:?}");
        assert_eq!(counts.snapshot().get(&0), Some(&1), "handled meanwhile");
        first.stop_and_wait().await.unwrap();

        admin
            .ensure_topics(std::slice::from_ref(&dlq))
            .await
            .unwrap();
        let next = dead_lettering(&t, &topic, &dlq, &pool, &counts).await;
        assert!(
            eventually(Duration::from_secs(60), || next.counters().dead_lettered
                == 1)
            .await,
            "the record came back and was copied: {:?}",
            next.counters()
        );
        assert_eq!(next.counters().dead_letter_failures, 0);
        next.stop_and_wait().await.unwrap();

        let sub = admin
            .driver()
            .subscribe(messaging_core::SubscriptionSpec {
                topics: vec![dlq.clone()],
                pool: Some(unique("pool")),
                start: StartPosition::Earliest,
            })
            .await
            .unwrap();
        let copies =
            integration_tests::support::receive_n(sub.as_ref(), 2, Duration::from_secs(10)).await;
        let bodies: Vec<&[u8]> = copies.iter().map(|r| r.body.as_ref()).collect();
        assert_eq!(bodies, vec![b"junk".as_slice()], "copied once");
        sub.close(Duration::from_secs(10)).await.unwrap();
        t.close(Duration::from_secs(10)).await.unwrap();
        admin.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// One handling of a record by a member of the rebalance test: which member, the
/// record's index, and when the handler returned (the listener acknowledges then).
type Handling = (&'static str, i64, std::time::Instant);

/// Every handling of the rebalance test, in order.
#[derive(Clone, Default)]
struct Handlings(Arc<Mutex<Vec<Handling>>>);

impl Handlings {
    /// An endpoint for `member` whose handler takes `work` per record.
    fn endpoint(&self, member: &'static str, work: Duration) -> NotificationEndpoint {
        let me = self.clone();
        NotificationEndpoint::from_fn(move |n| {
            let me = me.clone();
            async move {
                tokio::time::sleep(work).await;
                let i = index_of(&n).unwrap_or(-1);
                me.0.lock()
                    .unwrap()
                    .push((member, i, std::time::Instant::now()));
                Ok(HandlerOutcome::Handled)
            }
        })
    }
    fn by(&self, member: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.0 == member)
            .count()
    }
    fn distinct(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.1)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Rebalance under load: while records are being handled, member B joins the pool
/// and then member A leaves it cleanly. Nothing is lost; a record comes twice only
/// if it was still in flight (not yet acknowledged, or acknowledged above one that
/// was not, so not committable) when its partition was revoked: the first handling
/// of every duplicate ends after B began to join, and there are no more of them
/// than the two rebalances can have had in flight. The count is printed.
#[test]
fn a_member_joining_and_another_leaving_under_load_duplicate_only_records_in_flight() {
    kafka_support::init_tracing();
    let Some(servers) = kafka_support::bootstrap_servers() else {
        return skip(
            "a_member_joining_and_another_leaving_under_load_duplicate_only_records_in_flight",
            "no Kafka broker",
        );
    };
    const TOTAL: i64 = 4000;
    const CONCURRENCY: usize = 4;
    let work = Duration::from_millis(3);
    let topic = unique("rebalance");
    let pool = unique("pool");
    runtime().block_on(async {
        let t = kafka_support::transport(&servers, "topic_partitions=3");
        let n = notifier(&t, &topic);
        for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
            let items = chunk.iter().map(|i| ("rebalance", json!({"i": i})));
            let outcome = n
                .notify_many(messaging_core::Priority::Info, &Context::new(), items)
                .await
                .unwrap()
                .outcome()
                .await;
            assert!(outcome.is_delivered(), "{:?}", outcome.failures().count());
        }
        let handled = Handlings::default();
        let member = |name: &'static str| {
            NotificationListener::builder(&t)
                .target(Target::new(&topic))
                .pool(&pool)
                .start_position(StartPosition::Earliest)
                .max_concurrency(CONCURRENCY)
                .endpoint(handled.endpoint(name, work))
                .build()
                .unwrap()
        };
        let a = member("a");
        a.start().await.unwrap();
        assert!(
            eventually(Duration::from_secs(60), || handled.by("a") >= 300).await,
            "member a handled only {}",
            handled.by("a")
        );
        let join_began = std::time::Instant::now();
        let b = member("b");
        b.start().await.unwrap();
        assert!(
            eventually(Duration::from_secs(60), || handled.by("b") >= 200).await,
            "member b never got partitions: {} handled",
            handled.by("b")
        );
        let a_at_leave = handled.by("a");
        a.stop_and_wait().await.unwrap();
        assert!(
            eventually(Duration::from_secs(120), || handled.distinct() as i64 >= TOTAL).await,
            "lost: {} of {TOTAL} handled",
            handled.distinct()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        b.stop_and_wait().await.unwrap();
        t.close(Duration::from_secs(10)).await.unwrap();

        let all = handled.0.lock().unwrap().clone();
        let mut first: BTreeMap<i64, std::time::Instant> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for (who, i, at) in &all {
            match first.get(i) {
                None => {
                    first.insert(*i, *at);
                }
                Some(at_first) => duplicates.push((*who, *i, *at_first)),
            }
        }
        assert_eq!(
            first.keys().copied().collect::<Vec<_>>(),
            (0..TOTAL).collect::<Vec<_>>(),
            "every record handled, nothing else"
        );
        let early: Vec<_> = duplicates
            .iter()
            .filter(|(_, _, at_first)| *at_first < join_began)
            .collect();
        assert!(
            early.is_empty(),
            "records acknowledged before the rebalance began came again: {early:?}"
        );
        // Two rebalances; at each, the records in the handlers of both members and
        // those acknowledged after one still in flight on the same partition.
        let bound = 2 * 2 * 2 * CONCURRENCY;
        assert!(
            duplicates.len() <= bound,
            "{} duplicates, more than the {bound} the rebalances can have had in flight: {duplicates:?}",
            duplicates.len()
        );
        eprintln!(
            "rebalance under load: {TOTAL} records, member a handled {a_at_leave} before leaving, \
             b joined and took over; {} duplicates (records in flight at a revoke), none lost",
            duplicates.len()
        );
    });
}
