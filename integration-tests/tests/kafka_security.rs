//! Security against a real Kafka-protocol broker: SASL SCRAM on Tansu.
//!
//! Every test starts its own Tansu broker (sqlite storage, the only one that keeps
//! SCRAM users) with the script named by `MESSAGING_TANSU_SCRIPT` (`scripts/tansu.sh`):
//! started without authentication, users created (`create-user`, SCRAM-SHA-512 and
//! SCRAM-SHA-256), then restarted with `--authentication` on the same file.
//!
//! - the right credentials deliver end to end with both mechanisms;
//! - a wrong password is an [`ErrorKind::Authentication`] within seconds, for a send
//!   (with and without the driver creating topics) and for a listener (at `start` when
//!   it creates its topics, else from `wait`): no hang, no endless retry, no log storm;
//! - no password ever reaches a log line (everything, librdkafka's own debug lines
//!   included, is captured at trace level), an error or a `Debug` output.
//!
//! TLS: Tansu 0.6.0 takes `--cert`/`--key` but never serves TLS (see docs/kafka.md),
//! so TLS is tested against RabbitMQ (`rabbit_tls.rs`).
//!
//! Without the script they are skipped with a note, or fail when
//! `MESSAGING_REQUIRE_BROKER=1`.

mod kafka_support;

use std::time::{Duration, Instant};

use integration_tests::support::{
    assert_no_secret, captured_logs, index_of, runtime, CapturedLogs, Collector,
};
use integration_tests::tansu::OwnTansu;
use messaging_core::{
    Context, DriverRegistry, ErrorKind, NotificationListener, Notifier, Retry, Target, Transport,
    TransportUrl,
};
use serde_json::json;

use kafka_support::{broker_required, unique, TEST_CLIENT_SETTINGS};

/// Test-only passwords, distinctive enough to search for in everything printed.
const ALICE_PASSWORD: &str = "alice-Scram512-pw-q7Zx";
const BOB_PASSWORD: &str = "bob-Scram256-pw-k2Wv";
const WRONG_PASSWORD: &str = "wrong-pw-never-valid-m9Jr";
const PASSWORDS: [&str; 3] = [ALICE_PASSWORD, BOB_PASSWORD, WRONG_PASSWORD];

/// How soon a refused password must be reported.
const REFUSED_WITHIN: Duration = Duration::from_secs(10);

fn skip(test: &str, why: &str) {
    if broker_required() {
        panic!("MESSAGING_REQUIRE_BROKER=1 but {test} cannot run: {why}");
    }
    eprintln!("{test} skipped: {why} (MESSAGING_REQUIRE_BROKER=1 makes this a failure)");
}

fn captured() -> &'static CapturedLogs {
    captured_logs()
}

fn log_text() -> String {
    captured_logs().text()
}

fn log_tail(n: usize) -> String {
    captured_logs().tail(n, &PASSWORDS)
}

/// Fails if any password appears in `what`.
fn assert_no_password(what: &str, text: &str) {
    assert_no_secret(what, text, &PASSWORDS);
}

// ---------------------------------------------------------------------------------
// A Tansu broker of our own that requires SCRAM.

struct ScramBroker {
    tansu: OwnTansu,
    /// Created before authentication was switched on.
    topic: String,
}

impl ScramBroker {
    /// `None` (skipped) without `MESSAGING_TANSU_SCRIPT`.
    fn start(test: &str) -> Option<Self> {
        let _ = captured();
        let Some(script) = OwnTansu::script() else {
            skip(
                test,
                "MESSAGING_TANSU_SCRIPT (path to scripts/tansu.sh) is not set",
            );
            return None;
        };
        let tansu = OwnTansu::start(script, "sec").expect("start a Tansu broker");
        let topic = unique("sec-topic");
        tansu
            .create_user("alice", ALICE_PASSWORD, "scram512")
            .expect("create a SCRAM-SHA-512 user");
        tansu
            .create_user("bob", BOB_PASSWORD, "scram256")
            .expect("create a SCRAM-SHA-256 user");
        tansu.create_topic(&topic).expect("create a topic");
        tansu
            .require_authentication()
            .expect("restart the broker with authentication");
        Some(ScramBroker { tansu, topic })
    }

    /// A URL with credentials; `create_topics` as given (the test settings say true).
    fn url(
        &self,
        user: &str,
        password: &str,
        mechanism: &str,
        create_topics: bool,
        extra: &str,
    ) -> TransportUrl {
        let settings = TEST_CLIENT_SETTINGS.replace(
            "create_topics=true",
            &format!("create_topics={create_topics}"),
        );
        let text = format!(
            "kafka://{user}:{password}@{}?sasl_mechanism={mechanism}&{settings}&consumer_group={}&{extra}",
            self.tansu.servers,
            unique("group"),
        );
        TransportUrl::parse(text.trim_end_matches('&')).expect("valid test URL")
    }

    fn transport(&self, url: &TransportUrl) -> Transport {
        let registry = DriverRegistry::new();
        registry.register(driver_kafka::factory());
        Transport::open_with(&registry, url, &[]).expect("kafka transport opens")
    }

    /// Log lines of this broker's clients at warning level or above.
    fn loud_lines(&self) -> usize {
        log_text()
            .lines()
            .filter(|l| {
                l.contains(&self.tansu.servers) && (l.contains(" WARN ") || l.contains(" ERROR "))
            })
            .count()
    }
}

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("security.publisher")
        .topic(topic)
        // Forever: only the error's kind (not retryable) may end the attempts.
        .retry(Retry::Forever)
        .transport(t)
        .build()
        .unwrap()
}

/// Send `n` notifications, each confirmed by the broker.
async fn send_confirmed(t: &Transport, topic: &str, n: i64) {
    let notifier = notifier(t, topic);
    let mut receipts = Vec::new();
    for i in 0..n {
        receipts.push(
            notifier
                .info(&Context::new(), "security.check", &json!({"i": i}))
                .await
                .expect("accepted"),
        );
    }
    for r in receipts {
        tokio::time::timeout(Duration::from_secs(30), r.delivered())
            .await
            .expect("confirmed within 30 s")
            .expect("delivered");
    }
}

/// A notification sent with refused credentials: its error, and how long it took
/// (whether `notify` itself or its receipt reports it).
async fn refused_send(t: &Transport, topic: &str) -> (messaging_core::Error, Duration) {
    let notifier = notifier(t, topic);
    let started = Instant::now();
    let outcome = tokio::time::timeout(REFUSED_WITHIN, async {
        match notifier
            .info(&Context::new(), "security.check", &json!({"i": -1}))
            .await
        {
            Err(e) => Err(e),
            Ok(receipt) => receipt.delivered().await,
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "a send with a wrong password hung for {REFUSED_WITHIN:?}; the log's last lines:\n{}",
            log_tail(40)
        )
    });
    let error = outcome.expect_err("a wrong password cannot deliver");
    (error, started.elapsed())
}

fn assert_refused(error: &messaging_core::Error, what: &str) {
    assert_eq!(error.kind(), &ErrorKind::Authentication, "{what}: {error}");
    assert!(!error.is_retryable(), "{what}: {error}");
    assert!(
        error.to_string().contains("refused the credentials"),
        "{what}: {error}"
    );
    assert_no_password(what, &format!("{error} {error:?}"));
}

// ---------------------------------------------------------------------------------

#[test]
fn scram_sha_512_and_sha_256_credentials_deliver_end_to_end() {
    let test = "scram_sha_512_and_sha_256_credentials_deliver_end_to_end";
    let Some(broker) = ScramBroker::start(test) else {
        return;
    };
    runtime().block_on(async {
        for (user, password, mechanism) in [
            ("alice", ALICE_PASSWORD, "SCRAM-SHA-512"),
            ("bob", BOB_PASSWORD, "SCRAM-SHA-256"),
        ] {
            // create_topics=true: the admin client authenticates too.
            let t = broker.transport(&broker.url(user, password, mechanism, true, ""));
            let topic = unique(&format!("scram-{user}"));
            let got = Collector::new();
            let listener = NotificationListener::builder(&t)
                .target(Target::new(&topic))
                .pool(unique("pool"))
                .endpoint(got.endpoint())
                .build()
                .unwrap();
            listener.start().await.expect("the listener authenticates");
            send_confirmed(&t, &topic, 5).await;
            assert_eq!(
                got.wait_for(5, Duration::from_secs(30)).await,
                5,
                "{mechanism}"
            );
            let mut seen = got.indexes();
            seen.sort_unstable();
            assert_eq!(seen, vec![0, 1, 2, 3, 4], "{mechanism}");
            listener.stop_and_wait().await.expect("a clean stop");
            t.close(Duration::from_secs(10)).await.unwrap();
        }
    });
    assert_no_password("the log", &log_text());
}

#[test]
fn a_wrong_password_fails_sends_with_an_authentication_error_within_seconds() {
    let test = "a_wrong_password_fails_sends_with_an_authentication_error_within_seconds";
    let Some(broker) = ScramBroker::start(test) else {
        return;
    };
    runtime().block_on(async {
        // The record path: the topic exists, the producer's handshake is refused.
        let t = broker.transport(&broker.url("alice", WRONG_PASSWORD, "SCRAM-SHA-512", false, ""));
        for attempt in 1..=2 {
            let (error, took) = refused_send(&t, &broker.topic).await;
            eprintln!("send #{attempt} refused after {took:?}: {error}");
            assert_refused(&error, "a send's error");
            assert!(took < REFUSED_WITHIN, "{took:?}");
        }
        // The right password for another mechanism's user is refused just the same.
        let t2 = broker.transport(&broker.url("bob", ALICE_PASSWORD, "SCRAM-SHA-256", false, ""));
        let (error, _) = refused_send(&t2, &broker.topic).await;
        assert_refused(&error, "bob with alice's password");
        // The admin path: the driver creates the topic first, and that is refused.
        let t3 = broker.transport(&broker.url("alice", WRONG_PASSWORD, "SCRAM-SHA-512", true, ""));
        let (error, took) = refused_send(&t3, &unique("never-created")).await;
        eprintln!("send with topic creation refused after {took:?}: {error}");
        assert_refused(&error, "a topic creation's error");
        // No endless retry behind the error: the refused clients were stopped, so
        // librdkafka does not go on reconnecting (and logging) ~20 times a second.
        let loud = broker.loud_lines();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = broker.loud_lines();
        assert!(
            later - loud <= 3,
            "{} more warnings/errors in 3 s after the refusals",
            later - loud
        );
        for t in [t, t2, t3] {
            let report = t.close(Duration::from_secs(5)).await.unwrap();
            assert_eq!(report.undelivered, 0);
        }
    });
    assert_no_password("the log", &log_text());
}

#[test]
fn a_listener_with_a_wrong_password_stops_with_an_authentication_error() {
    let test = "a_listener_with_a_wrong_password_stops_with_an_authentication_error";
    let Some(broker) = ScramBroker::start(test) else {
        return;
    };
    runtime().block_on(async {
        // Topics exist: start subscribes (joining happens in the background), then the
        // refusal stops the listener and `wait` returns it.
        let t = broker.transport(&broker.url("alice", WRONG_PASSWORD, "SCRAM-SHA-512", false, ""));
        let got = Collector::new();
        let listener = NotificationListener::builder(&t)
            .target(Target::new(&broker.topic))
            .pool(unique("pool"))
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        let started = Instant::now();
        listener
            .start()
            .await
            .expect("subscribing needs no round trip");
        let error = tokio::time::timeout(REFUSED_WITHIN, listener.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("the listener still runs {REFUSED_WITHIN:?} after a refused password")
            })
            .expect_err("the listener stops with the refusal");
        eprintln!("listener stopped after {:?}: {error}", started.elapsed());
        assert_refused(&error, "the listener's outcome");
        assert!(got.is_empty());
        // Asking it to stop now is fine and keeps the outcome.
        let again = listener
            .stop_and_wait()
            .await
            .expect_err("the same outcome");
        assert_eq!(again.kind(), &ErrorKind::Authentication);

        // Creating its topics first: start itself fails, fast.
        let t2 = broker.transport(&broker.url("alice", WRONG_PASSWORD, "SCRAM-SHA-512", true, ""));
        let listener2 = NotificationListener::builder(&t2)
            .target(Target::new(unique("never-created")))
            .pool(unique("pool"))
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        let started = Instant::now();
        let error = tokio::time::timeout(REFUSED_WITHIN, listener2.start())
            .await
            .expect("start does not hang")
            .expect_err("start fails");
        eprintln!(
            "listener start refused after {:?}: {error}",
            started.elapsed()
        );
        assert_refused(&error, "the listener's start");

        let loud = broker.loud_lines();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            broker.loud_lines() - loud <= 3,
            "the refused consumer goes on retrying"
        );
        t.close(Duration::from_secs(5)).await.unwrap();
        t2.close(Duration::from_secs(5)).await.unwrap();
    });
    assert_no_password("the log", &log_text());
}

/// Everything printed while the right and a wrong password are used, with
/// librdkafka's debug contexts for configuration, security and brokers on: no password.
#[test]
fn no_password_reaches_a_log_line_an_error_or_a_debug_output() {
    let test = "no_password_reaches_a_log_line_an_error_or_a_debug_output";
    let Some(broker) = ScramBroker::start(test) else {
        return;
    };
    let debug = "rdkafka.debug=conf,security,broker,protocol,generic";
    runtime().block_on(async {
        let mut printed = String::new();
        let good_url = broker.url("alice", ALICE_PASSWORD, "SCRAM-SHA-512", true, debug);
        let bad_url = broker.url("bob", WRONG_PASSWORD, "SCRAM-SHA-256", true, debug);
        for url in [&good_url, &bad_url] {
            printed.push_str(&format!("{url} {url:?} {:?}\n", url.hosts()));
            let driver = driver_kafka::open(url, &[]).expect("the driver opens");
            printed.push_str(&format!("{driver:?} {:?}\n", driver.config()));
            let t = broker.transport(url);
            printed.push_str(&format!("{t:?} {}\n", t.url()));
            let notifier = notifier(&t, "unused");
            printed.push_str(&format!("{notifier:?}\n"));
            t.close(Duration::from_secs(5)).await.unwrap();
        }

        let good = broker.transport(&good_url);
        let topic = unique("leak");
        let got = Collector::new();
        let listener = NotificationListener::builder(&good)
            .target(Target::new(&topic))
            .pool(unique("pool"))
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        listener.start().await.unwrap();
        printed.push_str(&format!("{listener:?}\n"));
        send_confirmed(&good, &topic, 2).await;
        assert_eq!(got.wait_for(2, Duration::from_secs(30)).await, 2);
        for n in got.all() {
            printed.push_str(&format!("{n:?} {:?}\n", index_of(&n)));
        }
        listener.stop_and_wait().await.unwrap();
        good.close(Duration::from_secs(10)).await.unwrap();

        let bad = broker.transport(&bad_url);
        let (error, _) = refused_send(&bad, &broker.topic).await;
        printed.push_str(&format!("{error} {error:?}\n"));
        let listener = NotificationListener::builder(&bad)
            .target(Target::new(&broker.topic))
            .endpoint(got.endpoint())
            .build()
            .unwrap();
        match listener.start().await {
            Err(e) => printed.push_str(&format!("{e} {e:?}\n")),
            Ok(()) => {
                let e = tokio::time::timeout(REFUSED_WITHIN, listener.wait())
                    .await
                    .expect("the listener stops")
                    .expect_err("refused");
                printed.push_str(&format!("{e} {e:?}\n"));
            }
        }
        bad.close(Duration::from_secs(5)).await.unwrap();
        // A URL that does not parse: its error quotes nothing of the credentials.
        for text in [
            format!(
                "kafka://alice:{ALICE_PASSWORD}@{}:notaport",
                broker.tansu.servers
            ),
            format!("kafka://alice:{ALICE_PASSWORD}/x@{}", broker.tansu.servers),
            format!("kafka://alice:{ALICE_PASSWORD}%ff@{}", broker.tansu.servers),
        ] {
            let e = TransportUrl::parse(&text).expect_err("not a valid URL");
            printed.push_str(&format!("{e} {e:?}\n"));
        }
        assert_no_password("errors and Debug output", &printed);
    });
    let log = log_text();
    // The capture did see librdkafka's debug lines and the refusal (so it was on).
    assert!(
        log.contains("librdkafka"),
        "librdkafka's lines are captured"
    );
    assert!(
        log.contains("refused the credentials"),
        "the refusal is logged"
    );
    assert!(log.contains(&broker.tansu.servers));
    assert_no_password("the log", &log);
}
