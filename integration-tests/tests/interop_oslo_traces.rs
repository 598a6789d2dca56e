//! Traces across languages (issue 12): a Python oslo.messaging 18 RPC client with
//! `[oslo_messaging_tracing] tracing_enabled = true` calls a Rust RPC server, whose
//! span continues the Python trace; and a Rust client calls a Python server, whose
//! span continues the Rust trace. Both sides keep their spans in memory (Python:
//! `InMemorySpanExporter` under a `TracerProvider` oslo reuses; Rust: see
//! `trace_support`). Over a real RabbitMQ, where the trace context travels as
//! `_context_traceparent`.
//!
//! Needs `MESSAGING_INTEROP_PYTHON` (the venv of `scripts/python-env.sh`, with the
//! OpenTelemetry packages) and `RABBITMQ_URL`; without them the tests print a note
//! and pass, unless `MESSAGING_REQUIRE_BROKER=1`.

mod interop_support;
mod rabbit_support;
mod trace_support;

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::support::unique;
use interop_support::{
    json_lines, python, python_command, python_rpc_server, stop_python_server, Scratch,
};
use messaging_core::rpc::demo::demo_endpoint;
use messaging_core::rpc::{RpcClient, RpcServer};
use messaging_core::{Context, Target};
use opentelemetry::trace::TraceContextExt;
use serde_json::{json, Value};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn python_and_broker() -> Option<(PathBuf, String)> {
    trace_support::exporter();
    let python = python()?;
    let url = rabbit_support::broker_url()?;
    Some((python, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_trace_continues_on_a_rust_server() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let transport = rabbit_support::transport(&url, "");
    let topic = unique("trace-py-to-rust");
    let server = RpcServer::builder(&transport, Target::new(&topic).with_server("r1"))
        .endpoint(demo_endpoint())
        .build()
        .unwrap();
    server.start().await.unwrap();

    let scratch = Scratch::new();
    let file = scratch.path("requests.json");
    let requests = json!([{"kind": "call", "topic": topic, "method": "echo",
                           "args": {"x": 1}, "timeout": 20, "context": {"user": "u1"}}]);
    std::fs::write(&file, serde_json::to_vec(&requests).unwrap()).unwrap();
    let out = python_command(&python, "oslo_rpc_client.py")
        .arg("--url")
        .arg(&url)
        .arg("--requests")
        .arg(&file)
        .arg("--trace")
        .output()
        .await
        .expect("the Python client runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oslo_rpc_client.py failed: {stderr}");
    let lines = json_lines(&out.stdout, "oslo_rpc_client.py");
    assert_eq!(lines[0]["result"], json!({"x": 1}), "{lines:#?}\n{stderr}");
    let spans = lines
        .iter()
        .find_map(|l| l["spans"].as_array())
        .unwrap_or_else(|| panic!("no spans line: {lines:#?}\n{stderr}"));
    let producer = spans
        .iter()
        .find(|s| s["name"] == json!(format!("{topic}.echo")))
        .unwrap_or_else(|| panic!("no producer span from oslo: {spans:#?}\n{stderr}"));

    let rust = trace_support::finished_span(&format!("{topic}.echo process"), &topic).await;
    assert_eq!(
        Value::String(rust.span_context.trace_id().to_string()),
        producer["trace_id"],
        "the Rust server span is in the Python trace"
    );
    assert_eq!(
        Value::String(rust.parent_span_id.to_string()),
        producer["span_id"],
        "the Rust server span's parent is oslo's producer span"
    );
    server.stop_and_wait().await.unwrap();
    transport.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_trace_continues_on_a_python_server() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let scratch = Scratch::new();
    let topic = unique("trace-rust-to-py");
    let server = python_rpc_server(&python, &url, &topic, &scratch, &["--trace"]).await;
    let transport = rabbit_support::transport(&url, "");
    let client =
        RpcClient::new(&transport, Target::new(&topic)).with_timeout(Duration::from_secs(20));
    let app = tracing::info_span!("application call");
    let trace_id = app.context().span().span_context().trace_id();
    let echoed = client
        .call_json(&Context::new(), "echo", json!({"y": 2}))
        .instrument(app)
        .await
        .expect("echo");
    assert_eq!(echoed["args"], json!({"y": 2}));
    let rust = trace_support::finished_span(&format!("{topic}.echo call"), &topic).await;
    assert_eq!(rust.span_context.trace_id(), trace_id);
    transport.close(Duration::from_secs(10)).await.unwrap();

    // The server writes a line per request; stop it to read them all.
    let out = stop_python_server(server).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&out.stdout, "oslo_rpc_server.py");
    let served = lines
        .iter()
        .find(|l| l["served"] == "echo")
        .unwrap_or_else(|| panic!("echo not served: {lines:#?}\n{stderr}"));
    let span = &served["span"];
    assert_eq!(
        span["trace_id"],
        Value::String(trace_id.to_string()),
        "oslo's server span is in the Rust trace: {served}\n{stderr}"
    );
    assert_eq!(
        span["parent_span_id"],
        Value::String(rust.span_context.span_id().to_string()),
        "oslo's server span's parent is the Rust client span: {served}"
    );
    assert_eq!(
        served["context"]["traceparent"]
            .as_str()
            .map(|t| t.contains(&trace_id.to_string())),
        Some(true),
        "the endpoint's context has the traceparent, as oslo's own: {served}"
    );
}
