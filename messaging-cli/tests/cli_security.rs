//! The `messaging` binary never prints a password: every command here runs with a
//! distinctive password in its URL and `MESSAGING_LOG=trace` (librdkafka's debug
//! lines included), and everything it printed (stdout and stderr) is searched.
//!
//! - `memory://` and unreachable Kafka/RabbitMQ brokers, and URLs that do not parse:
//!   no broker needed;
//! - a wrong RabbitMQ password (with `RABBITMQ_URL`): "authentication failed", fast;
//! - SASL SCRAM on a Tansu broker of the test's own (`MESSAGING_TANSU_SCRIPT`, i.e.
//!   `scripts/tansu.sh`): `send` and `listen` with the right password deliver, with a
//!   wrong one they fail within seconds with "authentication failed". Skipped with a
//!   note without the script (a failure under `MESSAGING_REQUIRE_BROKER=1`).

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use integration_tests::tansu::OwnTansu;
use support::text;

const PASSWORD: &str = "cli-Secret-pw-u8Rt";
const WRONG_PASSWORD: &str = "cli-wrong-pw-h3Qn";

/// Run `messaging args` with trace logging; fails the test if either password shows.
fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(args)
        .env("MESSAGING_LOG", "trace")
        .output()
        .expect("the binary runs");
    let printed = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    for password in [PASSWORD, WRONG_PASSWORD] {
        if let Some(at) = printed.find(password) {
            let from = printed[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = printed[at..].find('\n').map_or(printed.len(), |i| at + i);
            panic!(
                "messaging {} printed a password: {}",
                args[0],
                &printed[from..to].replace(password, "<PASSWORD>")
            );
        }
    }
    out
}

/// The lines of `stderr` at info level or above, and the CLI's own lines, last 15.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("TRACE") && !l.contains("DEBUG"))
        .collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn send(url: &str, topic: &str) -> Output {
    run(&[
        "send",
        "--url",
        url,
        "--topic",
        topic,
        "--event-type",
        "secret.check",
        "--payload",
        r#"{"n": 1}"#,
    ])
}

#[test]
fn no_password_is_printed_without_a_broker() {
    // Delivered in-process.
    let url = format!("memory://bob:{PASSWORD}@local/?queue_capacity=10");
    let out = send(&url, "secrets");
    assert!(out.status.success(), "{}", last_lines(&text(&out.stderr)));
    let out = run(&[
        "listen",
        "--url",
        &url,
        "--topic",
        "secrets",
        "--timeout",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", last_lines(&text(&out.stderr)));
    // Refused before anything is sent: an unknown option, URLs that do not parse
    // (an unescaped / , or ? in the password, a bad percent-escape, a bad port).
    for url in [
        format!("memory://bob:{PASSWORD}@local/?no_such_option=1"),
        format!("kafka://bob:{PASSWORD}@h?security_protocol=SSL&no_such_option=1"),
        format!("kafka://bob:{PASSWORD}/x@h:9092"),
        format!("kafka://bob:{PASSWORD},x@h:9092"),
        format!("kafka://bob:{PASSWORD}?x@h:9092"),
        format!("kafka://bob:{PASSWORD}%ff@h:9092"),
        format!("rabbit://bob:{PASSWORD}@h:notaport/"),
        format!("kafka://h?ssl_client_key_password={PASSWORD}&no_such_option=1"),
    ] {
        let out = send(&url, "secrets");
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("error: invalid"),
            "{url}: {}",
            last_lines(&stderr)
        );
    }
    // Brokers that do not answer: the connection errors name the broker, not the
    // password.
    let out = send(
        &format!("kafka://bob:{PASSWORD}@127.0.0.1:9?sasl_mechanism=SCRAM-SHA-512&delivery_timeout=1&rdkafka.debug=conf,security,broker"),
        "secrets",
    );
    assert!(!out.status.success());
    let out = send(
        &format!("rabbit://bob:{PASSWORD}@127.0.0.1:9/?rabbit_retry_interval=0.1"),
        "secrets",
    );
    assert!(!out.status.success());
}

#[test]
fn scram_send_and_listen_work_and_a_wrong_password_fails_fast_without_printing_it() {
    let Some(script) = OwnTansu::script() else {
        if std::env::var("MESSAGING_REQUIRE_BROKER").is_ok_and(|v| v == "1") {
            panic!("MESSAGING_REQUIRE_BROKER=1 but MESSAGING_TANSU_SCRIPT is not set");
        }
        eprintln!("CLI SCRAM test skipped: set MESSAGING_TANSU_SCRIPT=scripts/tansu.sh");
        return;
    };
    let tansu = OwnTansu::start(script, "cli-sec").expect("start a Tansu broker");
    let topic = format!("cli-sec-{}", std::process::id());
    tansu.create_user("carol", PASSWORD, "scram512").unwrap();
    tansu.create_topic(&format!("{topic}.info")).unwrap();
    tansu.require_authentication().unwrap();
    let settings = "sasl_mechanism=SCRAM-SHA-512&delivery_timeout=10\
&rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=1000\
&rdkafka.topic.metadata.refresh.interval.ms=2000";
    // librdkafka's debug lines too (its configuration dump among them)...
    let debug = "rdkafka.debug=conf,security,broker";
    let good = format!(
        "kafka://carol:{PASSWORD}@{}?{settings}&{debug}",
        tansu.servers
    );
    let bad = format!(
        "kafka://carol:{WRONG_PASSWORD}@{}?{settings}&{debug}",
        tansu.servers
    );
    // ...except for `send`: librdkafka counts queued log events in its out-queue
    // length, which `close` reports as undelivered records.
    let good_send = format!("kafka://carol:{PASSWORD}@{}?{settings}", tansu.servers);

    let out = send(&good_send, &topic);
    assert!(
        out.status.success(),
        "send: {}",
        last_lines(&text(&out.stderr))
    );
    let out = run(&[
        "listen",
        "--url",
        &good,
        "--topic",
        &topic,
        "--pool",
        &format!("{topic}-pool"),
        "--earliest",
        "--count",
        "1",
        "--timeout",
        "60",
    ]);
    assert!(
        out.status.success(),
        "listen: {}",
        last_lines(&text(&out.stderr))
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );

    for args in [
        vec![
            "send",
            "--url",
            &bad,
            "--topic",
            &topic,
            "--event-type",
            "secret.check",
            "--payload",
            "{}",
        ],
        // No --timeout: the refusal itself must end it.
        vec!["listen", "--url", &bad, "--topic", &topic, "--earliest"],
    ] {
        let started = Instant::now();
        let out = run(&args);
        let took = started.elapsed();
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{} succeeded with a wrong password",
            args[0]
        );
        assert!(
            stderr.contains("error: authentication failed"),
            "{}: {}",
            args[0],
            last_lines(&stderr)
        );
        assert!(took < Duration::from_secs(20), "{} took {took:?}", args[0]);
        eprintln!("{} refused after {took:?}", args[0]);
    }
}

#[test]
fn a_wrong_rabbitmq_password_fails_fast_without_printing_it() {
    let Some(url) = support::broker_env("RABBITMQ_URL", "rabbit://guest:guest@HOST:PORT/") else {
        return;
    };
    let address = url
        .rsplit_once('@')
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .expect("a URL with credentials");
    let bad = format!("rabbit://guest:{WRONG_PASSWORD}@{address}/");
    for args in [
        vec![
            "send",
            "--url",
            &bad,
            "--topic",
            "secrets",
            "--event-type",
            "secret.check",
            "--payload",
            "{}",
        ],
        vec!["listen", "--url", &bad, "--topic", "secrets"],
    ] {
        let started = Instant::now();
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{} succeeded", args[0]);
        assert!(
            stderr.contains("error: authentication failed"),
            "{}: {}",
            args[0],
            last_lines(&stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{}", args[0]);
    }
}
