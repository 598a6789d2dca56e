//! Credentials on a real RabbitMQ: a wrong password is an
//! [`ErrorKind::Authentication`] within seconds (for a send, with the notifier
//! retrying forever, and for a listener's start), and no password ever reaches a log
//! line (lapin's and the driver's, captured at trace level), an error or a `Debug`
//! output, for a user created by the test with a distinctive password.
//!
//! Needs `RABBITMQ_URL`; the user-creating case also `MESSAGING_RABBIT_SCRIPT` and
//! `RABBITMQ_INSTANCE` (as the README's test command exports them). Otherwise skipped
//! with a note (a failure under `MESSAGING_REQUIRE_BROKER=1`). TLS (a CA and client
//! certificate made for the node at its start) is in `rabbit_tls.rs`.

mod rabbit_support;

use std::time::{Duration, Instant};

use integration_tests::support::{
    assert_no_secret, broker_required, captured_logs, unique, Collector,
};
use messaging_core::{
    Context, DriverRegistry, ErrorKind, NotificationListener, Notifier, Retry, Target, Transport,
    TransportUrl,
};
use serde_json::json;

const PASSWORD: &str = "rabbit-Secret-pw-t4Lc";
const WRONG_PASSWORD: &str = "rabbit-wrong-pw-z6Ny";
const PASSWORDS: [&str; 2] = [PASSWORD, WRONG_PASSWORD];
const REFUSED_WITHIN: Duration = Duration::from_secs(10);

/// `host:port` of the node (from `RABBITMQ_URL`), with the log capture installed.
fn node_address() -> Option<String> {
    let _ = captured_logs();
    let url = TransportUrl::parse(&rabbit_support::broker_url()?).expect("RABBITMQ_URL parses");
    Some(url.hosts()[0].address(5672))
}

fn transport(url: &str) -> Transport {
    let registry = DriverRegistry::new();
    registry.register(driver_rabbit::factory());
    Transport::open_with(&registry, &TransportUrl::parse(url).unwrap(), &[]).unwrap()
}

fn notifier(t: &Transport) -> Notifier {
    Notifier::builder()
        .publisher_id("security.publisher")
        .topic("security")
        .retry(Retry::Forever)
        .transport(t)
        .build()
        .unwrap()
}

fn assert_refused(error: &messaging_core::Error, what: &str) {
    assert_eq!(error.kind(), &ErrorKind::Authentication, "{what}: {error}");
    assert!(!error.is_retryable(), "{what}: {error}");
    assert!(
        error.to_string().contains("refused the credentials"),
        "{what}: {error}"
    );
    assert_no_secret(what, &format!("{error} {error:?}"), &PASSWORDS);
}

/// A send and a listener with `user:WRONG_PASSWORD`: both refused, typed, quickly.
async fn wrong_password_is_refused(address: &str, user: &str) -> String {
    let t = transport(&format!("rabbit://{user}:{WRONG_PASSWORD}@{address}/"));
    let mut printed = format!("{t:?} {}\n", t.url());
    let n = notifier(&t);
    let started = Instant::now();
    let sent = tokio::time::timeout(REFUSED_WITHIN, async {
        match n.info(&Context::new(), "security.check", &json!({})).await {
            Err(e) => Err(e),
            Ok(receipt) => receipt.delivered().await,
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "a send with a wrong password hung; log:\n{}",
            captured_logs().tail(30, &PASSWORDS)
        )
    });
    let error = sent.expect_err("a wrong password cannot deliver");
    eprintln!("send refused after {:?}: {error}", started.elapsed());
    assert_refused(&error, "a send's error");
    printed.push_str(&format!("{error:?}\n"));

    let got = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new(unique("security")))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    let started = Instant::now();
    let error = tokio::time::timeout(REFUSED_WITHIN, listener.start())
        .await
        .expect("start does not hang")
        .expect_err("start fails");
    eprintln!(
        "listener start refused after {:?}: {error}",
        started.elapsed()
    );
    assert_refused(&error, "the listener's start");
    printed.push_str(&format!("{error:?} {listener:?}\n"));
    t.close(Duration::from_secs(5)).await.unwrap();
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_rabbitmq_password_is_an_authentication_error_within_seconds() {
    let Some(address) = node_address() else {
        return;
    };
    let printed = wrong_password_is_refused(&address, "guest").await;
    assert_no_secret("errors and Debug output", &printed, &PASSWORDS);
    assert_no_secret("the log", &captured_logs().text(), &PASSWORDS);
}

/// `scripts/rabbitmq.sh ctl ARGS` on the test node.
fn ctl(args: &[&str]) -> Result<(), String> {
    let (Ok(script), Ok(name)) = (
        std::env::var("MESSAGING_RABBIT_SCRIPT"),
        std::env::var("RABBITMQ_INSTANCE"),
    ) else {
        return Err("MESSAGING_RABBIT_SCRIPT or RABBITMQ_INSTANCE is not set".into());
    };
    let out = std::process::Command::new("bash")
        .args([script.as_str(), "ctl", "--name", name.as_str()])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        // Not the arguments: they may hold the test password.
        Err(format!("rabbitmqctl {} failed: {}", args[0], out.status))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rabbitmq_password_reaches_a_log_line_an_error_or_a_debug_output() {
    let Some(address) = node_address() else {
        return;
    };
    let user = unique("sec-user");
    if let Err(why) = ctl(&["add_user", &user, PASSWORD]) {
        if broker_required() {
            panic!("MESSAGING_REQUIRE_BROKER=1 but cannot create a RabbitMQ user: {why}");
        }
        eprintln!("no_rabbitmq_password_reaches_a_log_line skipped: {why}");
        return;
    }
    ctl(&["set_permissions", "-p", "/", &user, ".*", ".*", ".*"]).expect("grant the user /");

    let url = format!("rabbit://{user}:{PASSWORD}@{address}/");
    let t = transport(&url);
    let mut printed = format!("{t:?} {} {:?}\n", t.url(), t.url());
    let topic = unique("security");
    let got = Collector::new();
    let listener = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .endpoint(got.endpoint())
        .build()
        .unwrap();
    listener.start().await.expect("the user's password works");
    let n = Notifier::builder()
        .publisher_id("security.publisher")
        .topic(&topic)
        .transport(&t)
        .build()
        .unwrap();
    n.info(&Context::new(), "security.check", &json!({"i": 0}))
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, Duration::from_secs(30)).await, 1);
    printed.push_str(&format!("{listener:?} {n:?} {:?}\n", got.all()));
    listener.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(5)).await.unwrap();

    printed.push_str(&wrong_password_is_refused(&address, &user).await);
    let _ = ctl(&["delete_user", &user]);
    assert_no_secret("errors and Debug output", &printed, &PASSWORDS);
    let log = captured_logs().text();
    assert!(log.contains("lapin"), "lapin's lines are captured");
    assert_no_secret("the log", &log, &PASSWORDS);
}
