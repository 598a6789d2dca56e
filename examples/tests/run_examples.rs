//! Runs every example program to completion on its default (memory://) settings.
//!
//! `cargo test -p examples` builds the examples before it runs this test; their
//! binaries sit in `target/<profile>/examples/`, next to this test's `deps/`.

use std::path::PathBuf;
use std::process::Command;

fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(name)
        .with_extension(std::env::consts::EXE_EXTENSION);
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test -p examples`, which builds the examples",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str], expected: &str) {
    let out = Command::new(example_binary(name))
        .args(args)
        .output()
        .expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(expected), "{name} printed:\n{stdout}");
}

#[test]
fn notifier_listener_runs() {
    run("notifier_listener", &[], "3 notifications handled");
}

#[test]
fn batch_listener_runs() {
    run("batch_listener", &[], "25 notifications handled in batches");
}

#[test]
fn rpc_server_client_runs() {
    run("rpc_server_client", &[], "add(40, 2) = 42");
}

#[test]
fn config_file_runs() {
    run("config_file", &[], "handled on 1 topic(s)");
}

/// The same program on the Kafka driver, against librdkafka's embedded mock cluster.
#[test]
fn notifier_listener_runs_on_kafka_mock() {
    run(
        "notifier_listener",
        &["kafka+mock://?create_topics=true"],
        "3 notifications handled",
    );
}

#[test]
fn typed_handler_runs() {
    run(
        "typed_handler",
        &[],
        "2 typed notifications handled, 1 that did not fit skipped",
    );
}

#[test]
fn bulk_send_runs() {
    run(
        "bulk_send",
        &[],
        "done: 0 failed deliveries left, 0 undelivered at close",
    );
}

#[test]
fn openstack_service_runs() {
    run(
        "openstack_service",
        &[],
        "2 instances booted over RPC, 2 notifications audited",
    );
}

#[test]
fn traces_runs() {
    run("traces", &[], "continued in the handler");
}
