//! What the CLI tests share: running the `messaging` binary and reading its output.

pub(crate) mod served;

use std::process::{Command, Output};

/// Run the `messaging` binary with `args`, to completion.
pub(crate) fn messaging(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of environment variable `var` (a broker address), or `None` with a skip
/// note; a panic under `MESSAGING_REQUIRE_BROKER=1`.
#[allow(dead_code)]
pub(crate) fn broker_env(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ if std::env::var("MESSAGING_REQUIRE_BROKER").is_ok_and(|v| v == "1") => {
            panic!("MESSAGING_REQUIRE_BROKER=1 but {var} is not set")
        }
        _ => {
            eprintln!("CLI broker test skipped: set {var}={example}");
            None
        }
    }
}

/// The number at `path` in `report`, which must be finite and positive.
#[allow(dead_code)]
pub(crate) fn positive(report: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = report;
    for p in path {
        v = &v[*p];
    }
    let x = v.as_f64().unwrap_or(f64::NAN);
    assert!(x.is_finite() && x > 0.0, "{path:?} = {v}");
    x
}

/// Run `bench --raw` on `url` (2 pairs of 500 records) and check what every baseline
/// shares: success, the JSON report last, records of the framework's size on both
/// sides, alternating order, positive ratios. Returns the report and stdout.
#[allow(dead_code)]
pub(crate) fn bench_raw(url: &str) -> (serde_json::Value, String) {
    let out = messaging(&[
        "bench",
        "--url",
        url,
        "--raw",
        "--rounds",
        "2",
        "--count",
        "500",
        "--payload-size",
        "100",
        "--timeout",
        "120",
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "bench: {stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("median over  2 pairs"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON report last");
    assert_eq!(report["framework"]["count"], 500);
    assert_eq!(
        report["raw"]["record_bytes"], report["framework"]["record_bytes"],
        "the baseline sends records of the framework's encoded size"
    );
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0]["raw_first"], false);
    assert_eq!(rounds[1]["raw_first"], true);
    for key in ["notify_vs_raw", "delivered_vs_raw", "end_to_end_vs_raw"] {
        positive(&report, &[key]);
    }
    (report, stdout)
}
