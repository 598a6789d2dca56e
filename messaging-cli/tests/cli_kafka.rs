//! `messaging send` and `messaging listen` in two processes over a real Kafka broker.
//!
//! Runs when `KAFKA_BOOTSTRAP_SERVERS` is set (the README's test command starts a
//! Tansu broker and sets it); fails without it under `MESSAGING_REQUIRE_BROKER=1`,
//! otherwise prints a skip note.

mod support;

use support::{bench_raw, broker_env, messaging, text};

const SETTINGS: &str =
    "create_topics=true&delivery_timeout=10&rdkafka.consumer.session.timeout.ms=6000\
&rdkafka.consumer.heartbeat.interval.ms=1000&rdkafka.topic.metadata.refresh.interval.ms=2000";

fn broker_url() -> Option<String> {
    broker_env("KAFKA_BOOTSTRAP_SERVERS", "host:port").map(|s| format!("kafka://{s}?{SETTINGS}"))
}

#[test]
fn send_then_listen_in_another_process() {
    let Some(url) = broker_url() else { return };
    let topic = format!("cli-{}", std::process::id());
    let out = messaging(&[
        "send",
        "--url",
        &url,
        "--topic",
        &topic,
        "--priority",
        "error",
        "--event-type",
        "volume.attach.error",
        "--publisher-id",
        "volume.host9",
        "--payload",
        r#"{"volume": "v-1", "size_gb": 10}"#,
        "--context",
        r#"{"user": "bob", "password": "never-sent"}"#,
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "send: {}", text(&out.stderr));
    let out = messaging(&[
        "listen",
        "--url",
        &url,
        "--topic",
        &topic,
        "--priority",
        "error",
        "--pool",
        &format!("{topic}-pool"),
        "--earliest",
        "--count",
        "3",
        "--timeout",
        "60",
    ]);
    assert!(out.status.success(), "listen: {}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let mut ids = std::collections::HashSet::new();
    for l in &lines {
        assert_eq!(l["priority"], "error");
        assert_eq!(l["event_type"], "volume.attach.error");
        assert_eq!(l["publisher_id"], "volume.host9");
        assert_eq!(
            l["payload"],
            serde_json::json!({"volume": "v-1", "size_gb": 10})
        );
        assert_eq!(l["context"], serde_json::json!({"user": "bob"}));
        assert!(ids.insert(l["metadata"]["message_id"].as_str().unwrap().to_owned()));
        assert!(l["metadata"]["timestamp"].as_str().unwrap().len() >= 19);
    }
}

/// `bench --raw` on the broker: both sides deliver every record, in two pairs with
/// alternating order, and every ratio is a real positive number.
#[test]
fn bench_raw_compares_the_framework_with_rdkafka() {
    let Some(url) = broker_url() else { return };
    let (report, _) = bench_raw(&url);
    assert_eq!(report["baseline"], "rdkafka");
}
