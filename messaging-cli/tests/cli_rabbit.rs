//! `messaging bench` over a real RabbitMQ node: `--raw` against lapin, and `--rpc`.
//!
//! Runs when `RABBITMQ_URL` is set (e.g. from `scripts/rabbitmq.sh start`; the
//! README's test command sets it); fails without it under
//! `MESSAGING_REQUIRE_BROKER=1`, otherwise prints a skip note.

mod support;

use support::{bench_raw, broker_env, messaging, positive, text};

fn broker_url() -> Option<String> {
    broker_env("RABBITMQ_URL", "rabbit://guest:guest@HOST:PORT/")
}

/// `bench --raw` on the node: both sides deliver every record, in two pairs with
/// alternating order, against lapin, and every rate and ratio is a positive number.
#[test]
fn bench_raw_compares_the_framework_with_lapin() {
    let Some(url) = broker_url() else { return };
    let (report, stdout) = bench_raw(&url);
    assert!(stdout.contains("raw lapin baseline"), "{stdout}");
    assert_eq!(report["baseline"], "lapin");
    let rates = [
        ("framework", "notify_per_sec"),
        ("framework", "delivered_per_sec"),
        ("framework", "end_to_end_per_sec"),
        ("raw", "produce_per_sec"),
        ("raw", "delivered_per_sec"),
        ("raw", "end_to_end_per_sec"),
    ];
    for (side, key) in rates {
        positive(&report, &[side, key]);
    }
    // Confirms come after publishing, consumption after confirms (or with them).
    for side in ["framework", "raw"] {
        let first = if side == "raw" {
            "produce_per_sec"
        } else {
            "notify_per_sec"
        };
        let sent = positive(&report, &[side, first]);
        let delivered = positive(&report, &[side, "delivered_per_sec"]);
        let e2e = positive(&report, &[side, "end_to_end_per_sec"]);
        assert!(sent >= delivered && delivered >= e2e, "{side}: {report}");
    }
}

/// `bench --rpc` on the node: every call answered, with latencies.
#[test]
fn bench_rpc_calls_the_in_process_server() {
    let Some(url) = broker_url() else { return };
    let out = messaging(&[
        "bench",
        "--rpc",
        "--url",
        &url,
        "--count",
        "200",
        "--in-flight",
        "4",
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "bench: {stdout}\n{}",
        text(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON report last");
    assert_eq!(report["calls"], 200);
    assert_eq!(report["in_flight"], 4);
    positive(&report, &["calls_per_sec"]);
    let p50 = positive(&report, &["latency_p50_us"]);
    let p99 = positive(&report, &["latency_p99_us"]);
    assert!(p50 <= p99, "{report}");
}
