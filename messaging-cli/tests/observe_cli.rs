//! `--metrics-addr` without a broker: `/healthz`, `/readyz` and `/metrics` answer
//! while a command runs on `memory://`; the Prometheus text parses and counts what
//! the command sent and handled; `bench --observability` prints both rates and only
//! its instrumented rounds are recorded.
//!
//! The names checked are the ones `docs/observability.md` gives the operator.

mod support;

use std::time::Duration;

use support::served::{histogram_count, names, total, Served};
use support::{messaging, text};

/// The counters and histograms a notify-to-handler run on memory must show.
const SENT: &str = "messaging_client_sent_messages_total";
const CONSUMED: &str = "messaging_client_consumed_messages_total";
const HANDLED: &str = "notification_bus_listener_handled_total";
const PROCESS_DURATION: &str = "messaging_process_duration_seconds";

#[test]
fn rpc_server_answers_health_readiness_and_metrics() {
    let mut served = Served::spawn(&[
        "rpc-server",
        "--url",
        "memory://",
        "--topic",
        "observe-cli",
        "--metrics-addr",
        "127.0.0.1:0",
        "--timeout",
        "120",
    ]);
    let (status, body) = served.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    served.wait_until("/readyz 200", Duration::from_secs(30), |s| {
        s.get("/readyz").0 == 200
    });
    assert_eq!(served.get("/readyz").1, "ready\n");
    // Whatever it holds, it is Prometheus text format.
    served.scrape();
    assert_eq!(served.get("/nothing-here").0, 404);
}

#[test]
fn bench_metrics_count_what_was_sent_and_handled() {
    let mut served = Served::spawn(&[
        "bench",
        "--count",
        "3000",
        "--metrics-addr",
        "127.0.0.1:0",
        "--metrics-linger",
        "120s",
    ]);
    assert_eq!(served.get("/healthz").0, 200);
    served.wait_until("the end of the bench", Duration::from_secs(120), |s| {
        s.stderr().contains("metrics: serving for another")
    });
    let (status, body) = served.get("/readyz");
    assert_eq!((status, body.as_str()), (503, "not ready: finished\n"));
    let text = served.metrics_text();
    let scrape = support::served::parse(&text);
    let found = names(&scrape);
    for name in [SENT, CONSUMED, HANDLED, PROCESS_DURATION] {
        assert!(found.iter().any(|n| n == name), "no {name} in {found:?}");
    }
    // 3000 timed notifications and the untimed warm-up one.
    assert_eq!(total(&scrape, SENT), 3001.0, "{text}");
    assert_eq!(total(&scrape, CONSUMED), 3001.0, "{text}");
    assert_eq!(total(&scrape, HANDLED), 3001.0, "{text}");
    let (observed, buckets) = histogram_count(&scrape, PROCESS_DURATION);
    assert_eq!(observed, 3001.0, "{text}");
    assert!(buckets, "{PROCESS_DURATION} has finite buckets: {text}");
    // Labels follow the messaging conventions, dots as underscores.
    assert!(
        text.contains(r#"messaging_system="memory""#),
        "no messaging_system label: {text}"
    );
}

#[test]
fn bench_observability_prints_both_rates_and_records_only_the_on_rounds() {
    let mut served = Served::spawn(&[
        "bench",
        "--observability",
        "--count",
        "1500",
        "--rounds",
        "2",
        "--json",
        "--metrics-addr",
        "127.0.0.1:0",
        "--metrics-linger",
        "120s",
    ]);
    served.wait_until("the end of the bench", Duration::from_secs(180), |s| {
        s.stderr().contains("metrics: serving for another")
    });
    let stdout = served.stdout();
    for line in ["off (median)", "on (median)", "on / off (median)"] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON report last");
    let pairs = report["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 2, "{report}");
    assert_eq!(pairs[0]["on_first"], false);
    assert_eq!(pairs[1]["on_first"], true);
    for key in [
        "off_end_to_end_per_sec",
        "on_end_to_end_per_sec",
        "on_vs_off",
    ] {
        support::positive(&report, &[key]);
        support::positive(&pairs[0], &[key]);
    }
    assert!(report["on_series"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report["instrumented_with"],
        "metrics-exporter-prometheus recorder, tracing registry at INFO"
    );
    // The endpoint serves the "on" rounds' recorder: two rounds of 1500 and a warm-up
    // notification each, none of the "off" rounds' notifications.
    let scrape = served.scrape();
    assert_eq!(total(&scrape, SENT), 3002.0);
    assert_eq!(total(&scrape, HANDLED), 3002.0);
}

/// `--observability=traces` turns on the subscriber only: the rounds record no metric.
#[test]
fn bench_observability_traces_only_records_no_metrics() {
    let out = messaging(&[
        "bench",
        "--observability=traces",
        "--count",
        "500",
        "--rounds",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["pairs"].as_array().unwrap().len(), 1);
    assert_eq!(report["on_series"], 0, "{report}");
    support::positive(&report, &["on_vs_off"]);
}

#[test]
fn metrics_addr_that_cannot_be_bound_is_a_clear_error() {
    let out = messaging(&["bench", "--count", "10", "--metrics-addr", "not-an-address"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--metrics-addr not-an-address"), "{err}");
}
