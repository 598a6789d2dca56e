//! The `messaging` binary, run as a user would.

mod support;

use support::{messaging, text};

#[test]
fn demo_shows_who_got_what() {
    let out = messaging(&["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("audit (11)"), "{stdout}");
    assert!(stdout.contains("billing (11)"), "{stdout}");
    assert!(stdout.contains("alerts (1)"), "{stdout}");
    assert!(stdout.contains("batch of 4"), "{stdout}");
}

#[test]
fn bench_prints_a_json_report_last() {
    let out = messaging(&[
        "bench",
        "--count",
        "2000",
        "--payload-size",
        "200",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap();
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(report["count"], 2000);
    assert!(report["end_to_end_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        report["latency_p99_us"].as_u64().unwrap() >= report["latency_p50_us"].as_u64().unwrap()
    );
    // The keys docs/user-guide.md documents.
    for key in [
        "url",
        "payload_size",
        "record_bytes",
        "notify_per_sec",
        "delivered_per_sec",
        "latency_max_us",
        "baseline_json_round_trip_per_sec",
        "end_to_end_vs_baseline",
    ] {
        assert!(!report[key].is_null(), "no {key} in {report}");
    }
    assert!(report["end_to_end_vs_baseline"].as_f64().unwrap() > 0.0);
}

#[test]
fn send_on_memory_succeeds() {
    let out = messaging(&[
        "send",
        "--url",
        "memory://",
        "--topic",
        "t",
        "--priority",
        "warn",
        "--event-type",
        "e",
        "--payload",
        r#"{"a": [1, "ü"]}"#,
        "--context",
        r#"{"user": "u"}"#,
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("sent 3"));
}

#[test]
fn send_in_bulks_sends_every_notification_and_counts_failures_exactly() {
    let send = |url: &str, count: &str, batch: &str| {
        messaging(&[
            "send",
            "--url",
            url,
            "--event-type",
            "e",
            "--count",
            count,
            "--batch-size",
            batch,
        ])
    };
    let out = send("memory://", "2500", "1000");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sent 2500"),
        "{}",
        text(&out.stderr)
    );

    // Every record is larger than the limit: each one is refused, and counted.
    let out = send("memory://?max_record_bytes=10", "25", "10");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("25 of 25 notification deliveries failed"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("failed: ")).count(),
        10,
        "{err}"
    );

    let out = send("memory://", "1", "0");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--batch-size"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_gets_clear_errors_and_a_failure_exit() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "--url", "localhost:9092", "--event-type", "e"],
            "no scheme",
        ),
        (
            // oslo picks its rabbit driver for kombu:// and then fails; here it is
            // an unknown scheme, and the error lists the registered ones.
            &["send", "--url", "kombu://h", "--event-type", "e"],
            "registered drivers: amqp, kafka, memory, rabbit",
        ),
        (
            &["send", "--url", "memory://?bogus=1", "--event-type", "e"],
            "unknown option \"bogus\"",
        ),
        (
            &["send", "--event-type", "e", "--payload", "{not json"],
            "--payload is not valid JSON",
        ),
        (
            &["send", "--event-type", "e", "--context", "[1]"],
            "--context must be a JSON object",
        ),
        (&["listen", "--url", "kafka://h:99999"], "bad port"),
        (
            // Checked before the framework side runs.
            &["bench", "--url", "memory://", "--raw", "--count", "10"],
            "--raw has a raw client baseline for kafka://, rabbit:// or amqp:// URLs only, not memory://",
        ),
    ];
    for (args, expected) in cases {
        let out = messaging(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = messaging(&["send", "--priority", "loud", "--event-type", "e"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown priority"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn listen_exits_after_its_timeout() {
    let out = messaging(&[
        "listen",
        "--url",
        "memory://",
        "--topic",
        "quiet",
        "--timeout",
        "0.3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn call_and_cast_on_memory_with_the_demo_server() {
    let out = messaging(&[
        "call",
        "--topic",
        "calc",
        "--method",
        "add",
        "--args",
        r#"{"a": 2, "b": 40}"#,
        "--demo-server",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");
    let out = messaging(&[
        "call",
        "--topic",
        "calc",
        "--method",
        "fail",
        "--args",
        r#"{"message": "boom"}"#,
        "--demo-server",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("boom"), "{}", text(&out.stderr));
    let out = messaging(&[
        "call",
        "--topic",
        "nobody",
        "--method",
        "ping",
        "--timeout",
        "0.2",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    let out = messaging(&[
        "cast",
        "--topic",
        "calc",
        "--method",
        "ping",
        "--fanout",
        "--demo-server",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn rpc_on_kafka_is_refused_naming_driver_and_operation() {
    for (cmd, extra, op) in [
        ("call", None, "rpc.call"),
        ("cast", None, "rpc.cast"),
        ("cast", Some("--fanout"), "rpc.fanout"),
    ] {
        let mut args = vec![
            cmd,
            "--url",
            "kafka://127.0.0.1:1",
            "--topic",
            "t",
            "--method",
            "m",
        ];
        args.extend(extra);
        let out = messaging(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("kafka") && err.contains(op) && err.contains("unsupported"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn rpc_bench_reports_round_trips() {
    let out = messaging(&["bench", "--rpc", "--count", "500", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(report["calls"], 500);
    assert!(report["calls_per_sec"].as_f64().unwrap() > 0.0);
}

/// `messaging stress` runs every scenario and accounts for every notification: all
/// received once, the largest payload within the record size limit intact, one
/// byte more refused naming the limit's setting.
#[test]
fn stress_accounts_for_every_notification_of_each_scenario() {
    let out = messaging(&[
        "stress",
        "--url",
        "memory://?max_record_bytes=200000",
        "--backlog",
        "5000",
        "--topics",
        "12",
        "--notifiers",
        "50",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backlog", "topics", "notifiers", "payloads"]);
    let expected = [5000, 12 * 10, 50 * 20];
    for (s, sent) in scenarios.iter().zip(expected) {
        assert_eq!(s["sent"], sent, "{s}");
        assert_eq!(s["received"], sent, "{s}");
        assert_eq!(
            (s["lost"].as_u64(), s["duplicates"].as_u64()),
            (Some(0), Some(0)),
            "{s}"
        );
        assert!(s["peak_rss_mib"].as_f64().unwrap() > 1.0, "{s}");
    }
    let payloads = &scenarios[3];
    assert_eq!(payloads["lost"], 0, "{payloads}");
    let d = &payloads["details"];
    let largest = d["largest_payload_bytes"].as_u64().unwrap();
    assert!((199_000..200_000).contains(&largest), "{d}");
    assert_eq!(d["altered_payloads"], 0, "{d}");
    assert!(d["refused_sizes"].as_u64().unwrap() >= 1, "{d}");
    assert!(
        d["refusal"].as_str().unwrap().contains("max_record_bytes"),
        "{d}"
    );
}
