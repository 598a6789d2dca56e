//! `messaging listen --metrics-addr` on a Kafka broker (a Tansu of the test's own),
//! with `messaging send --count 500` from another process: `/metrics` scraped during
//! the run and parsed by Python's `prometheus_client` parser counts 500 received and
//! 500 handled; `/readyz` answers 200 while the broker runs, 503 once it is stopped,
//! and 200 again after it restarts; `/healthz` answers 200 throughout.
//!
//! Needs `MESSAGING_TANSU_SCRIPT` (`scripts/tansu.sh`) and `MESSAGING_INTEROP_PYTHON`
//! (`scripts/python-env.sh`: the venv with `prometheus_client`); the README's test
//! command sets both. Without them the test prints a skip note; under
//! `MESSAGING_REQUIRE_BROKER=1` it fails instead.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::tansu::OwnTansu;
use support::served::Served;
use support::{broker_env, messaging, text};

const SETTINGS: &str =
    "create_topics=true&delivery_timeout=30&rdkafka.consumer.session.timeout.ms=6000\
&rdkafka.consumer.heartbeat.interval.ms=1000&rdkafka.topic.metadata.refresh.interval.ms=2000\
&rdkafka.reconnect.backoff.max.ms=1000";

const SENT: u64 = 500;

/// What Python's `prometheus_client` parser makes of a scrape: every sample's value
/// summed over its label sets, by sample name, and each family's type.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = {}, {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        samples[s.name] = samples.get(s.name, 0.0) + s.value
print(json.dumps({"samples": samples, "types": types}))
"#;

#[derive(Debug, serde::Deserialize)]
struct Parsed {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

fn parse_with_python(python: &str, scrape: &str) -> Parsed {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the interop python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape: {}\n{scrape}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

#[test]
fn listen_metrics_count_what_was_sent_and_readyz_follows_the_broker() {
    let Some(_) = broker_env("MESSAGING_TANSU_SCRIPT", "scripts/tansu.sh") else {
        return;
    };
    let Some(python) = broker_env("MESSAGING_INTEROP_PYTHON", "$(scripts/python-env.sh)") else {
        return;
    };
    let tansu = OwnTansu::start(OwnTansu::script().unwrap(), "observe-cli").unwrap();
    let url = format!("kafka://{}?{SETTINGS}", tansu.servers);
    let topic = format!("observe-{}", std::process::id());
    let mut listen = Served::spawn(&[
        "listen",
        "--url",
        &url,
        "--topic",
        &topic,
        "--priority",
        "info",
        "--pool",
        &format!("{topic}-pool"),
        "--earliest",
        "--timeout",
        "600",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    listen.wait_until("/readyz 200", Duration::from_secs(60), |s| {
        s.get("/readyz").0 == 200
    });
    let out = messaging(&[
        "send",
        "--url",
        &url,
        "--topic",
        &topic,
        "--priority",
        "info",
        "--event-type",
        "observe.test",
        "--count",
        &SENT.to_string(),
    ]);
    assert!(out.status.success(), "send: {}", text(&out.stderr));

    let handled = "notification_bus_listener_handled_total";
    listen.wait_until("500 handled", Duration::from_secs(120), |s| {
        support::served::total(&s.scrape(), handled) >= SENT as f64
    });
    let parsed = parse_with_python(&python, &listen.metrics_text());
    let n = |name: &str| parsed.samples.get(name).copied().unwrap_or(-1.0);
    assert_eq!(n(handled), SENT as f64, "{parsed:?}");
    assert_eq!(
        n("messaging_client_consumed_messages_total"),
        SENT as f64,
        "{parsed:?}"
    );
    assert_eq!(
        n("messaging_process_duration_seconds_count"),
        SENT as f64,
        "{parsed:?}"
    );
    assert_eq!(
        parsed.types.get("notification_bus_listener_handled"),
        Some(&"counter".to_owned())
    );
    assert_eq!(
        parsed.types.get("messaging_process_duration_seconds"),
        Some(&"histogram".to_owned())
    );
    assert!(n("notification_bus_listener_handler_failures_total") <= 0.0);
    assert_eq!(listen.get("/healthz").0, 200);

    tansu.stop().unwrap();
    listen.wait_until(
        "/readyz 503 with the broker stopped",
        Duration::from_secs(90),
        |s| s.get("/readyz").0 == 503,
    );
    let (_, reason) = listen.get("/readyz");
    assert!(
        reason.starts_with("not ready: the transport is"),
        "{reason}"
    );
    assert_eq!(
        listen.get("/healthz").0,
        200,
        "alive while the broker is away"
    );

    tansu.kill_and_restart().unwrap();
    listen.wait_until(
        "/readyz 200 after the restart",
        Duration::from_secs(120),
        |s| s.get("/readyz").0 == 200,
    );
}
