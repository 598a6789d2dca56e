//! `messaging soak` on its own Tansu broker (sqlite) for 60 seconds, with every fault
//! kind at least once (the broker killed and restarted among them): nothing lost,
//! every duplicate attributed to a fault, resident memory within its bound.
//!
//! Needs `MESSAGING_TANSU_SCRIPT` (`scripts/tansu.sh`; the README's test command sets
//! it); fails without it under `MESSAGING_REQUIRE_BROKER=1`, otherwise prints a skip
//! note.

mod support;

use support::{broker_env, messaging, text};

#[test]
fn a_minute_of_soak_with_a_broker_restart_loses_nothing() {
    let Some(script) = broker_env("MESSAGING_TANSU_SCRIPT", "scripts/tansu.sh") else {
        return;
    };
    let out = messaging(&[
        "soak",
        "--duration",
        "60s",
        "--fault-every",
        "11s",
        "--rate",
        "300",
        "--tansu-script",
        &script,
        "--json",
    ]);
    let stdout = text(&out.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report: {stdout}\nstderr: {}", text(&out.stderr)));
    assert!(out.status.success(), "soak failed: {stdout}");
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    assert!(n("sent") > 5_000, "{report}");
    assert_eq!(n("accepted"), n("sent"), "{report}");
    assert_eq!(n("lost"), 0, "{report}");
    assert_eq!(n("unattributed_duplicates"), 0, "{report}");
    assert_eq!(
        n("received"),
        2 * n("accepted"),
        "each pool got everything: {report}"
    );
    assert!(n("duplicates") >= n("unattributed_duplicates"));
    let kinds: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    for kind in ["broker-restart", "member-kill", "member-pause", "rebalance"] {
        assert!(kinds.contains(&kind), "{kind} happened: {kinds:?}");
    }
    assert_eq!(report["ok"], true, "{report}");
}
