//! Interoperability with the real Python oslo.messaging (its rabbit driver, kombu)
//! over a real RabbitMQ: RPC both ways and notifications both ways.
//!
//! Needs `MESSAGING_INTEROP_PYTHON` (the venv interpreter printed by
//! `scripts/python-env.sh`) and `RABBITMQ_URL` (e.g. from `scripts/rabbitmq.sh start`).
//! Without them the tests print a note and pass, unless `MESSAGING_REQUIRE_BROKER=1`,
//! which makes that a failure. The Python programs are `tests/interop/oslo_rpc_server.py`,
//! `oslo_rpc_client.py`, `oslo_notify.py` and `oslo_listen.py` (see their README).
//!
//! Every test fails on a lost, duplicated or altered message.

mod interop_support;
mod rabbit_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration_tests::support::{unique, Collector};
use interop_support::{
    json_lines, python, python_command, python_rpc_server, stop_python_server, wait_for_file,
    Scratch,
};
use messaging_core::rpc::demo::demo_endpoint;
use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
use messaging_core::{
    Context, ErrorKind, NotificationListener, Notifier, Priority, StartPosition, Target,
};
use serde_json::{json, Map, Value};

fn python_and_broker() -> Option<(PathBuf, String)> {
    let python = python()?;
    let url = rabbit_support::broker_url()?;
    Some((python, url))
}

/// What a Rust server's `record` method saw: (server, args, context).
type Records = Arc<Mutex<Vec<(String, Value, Value)>>>;

/// A Rust server on `topic` named `name`: the demo endpoint, `record`, and an `ns1`
/// endpoint at version 1.2 with `add`.
async fn rust_server(
    transport: &messaging_core::Transport,
    topic: &str,
    name: &str,
    records: &Records,
) -> RpcServer {
    let recorded = records.clone();
    let server_name = name.to_owned();
    let recorder = RpcEndpoint::new().method("record", move |ctx: Context, args: Value| {
        let recorded = recorded.clone();
        let server_name = server_name.clone();
        async move {
            let ctx = serde_json::to_value(&ctx).unwrap_or(Value::Null);
            recorded.lock().unwrap().push((server_name, args, ctx));
            Ok::<_, RemoteError>(Value::Null)
        }
    });
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    let ns1 = RpcEndpoint::new()
        .namespace("ns1")
        .version("1.2")
        .method("add", |_ctx, args: Add| async move {
            Ok::<_, RemoteError>(args.a + args.b)
        });
    let server = RpcServer::builder(transport, Target::new(topic).with_server(name))
        .endpoint(demo_endpoint())
        .endpoint(recorder)
        .endpoint(ns1)
        .build()
        .expect("server builds");
    server.start().await.expect("server starts");
    server
}

async fn run_python_client(python: &std::path::Path, url: &str, requests: &Value) -> Vec<Value> {
    let scratch = Scratch::new();
    let file = scratch.path("requests.json");
    std::fs::write(&file, serde_json::to_vec(requests).unwrap()).unwrap();
    let out = python_command(python, "oslo_rpc_client.py")
        .arg("--url")
        .arg(url)
        .arg("--requests")
        .arg(&file)
        .output()
        .await
        .expect("the Python client runs");
    assert!(
        out.status.success(),
        "oslo_rpc_client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout, "oslo_rpc_client.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_rust_servers() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let transport = rabbit_support::transport(&url, "");
    let topic = unique("rpc-py-to-rust");
    let records: Records = Arc::default();
    let s1 = rust_server(&transport, &topic, "s1", &records).await;
    let s2 = rust_server(&transport, &topic, "s2", &records).await;
    let nested =
        json!({"x": {"list": [1, "two", {"three": 3.5}], "none": null, "yes": true}, "é": "ü"});
    let ctx = json!({"user": "u1", "request_id": "req-1", "roles": ["admin"]});
    let requests = json!([
        {"kind": "call", "topic": topic, "method": "echo", "args": nested, "timeout": 20, "context": ctx},
        {"kind": "call", "topic": topic, "method": "add", "namespace": "ns1", "version": "1.2", "args": {"a": 40, "b": 2}, "timeout": 20, "context": {}},
        {"kind": "call", "topic": topic, "method": "fail", "args": {"type_name": "QuotaExceeded", "message": "over quota"}, "timeout": 20, "context": {}},
        {"kind": "call", "topic": topic, "method": "no_such_method", "args": {}, "timeout": 20, "context": {}},
        {"kind": "call", "topic": topic, "server": "s2", "method": "context", "args": {}, "timeout": 20, "context": ctx},
        {"kind": "cast", "topic": topic, "server": "s2", "method": "record", "args": {"n": 1}, "context": ctx},
        {"kind": "fanout", "topic": topic, "method": "record", "args": {"n": 2}, "context": ctx},
        {"kind": "cast", "topic": topic, "method": "record", "args": {"n": 3}, "context": ctx},
    ]);
    let lines = run_python_client(&python, &url, &requests).await;
    assert_eq!(lines.len(), 8, "one line per request: {lines:#?}");
    assert_eq!(lines[0]["result"], nested, "echo: {}", lines[0]);
    assert_eq!(
        lines[1]["result"],
        json!(42),
        "add in ns1 1.2: {}",
        lines[1]
    );
    let fail = &lines[2]["error"];
    assert_eq!(fail["class"], "RemoteError", "{}", lines[2]);
    assert_eq!(fail["exc_type"], "QuotaExceeded", "{}", lines[2]);
    assert_eq!(fail["value"], "over quota", "{}", lines[2]);
    let missing = &lines[3]["error"];
    assert_eq!(missing["class"], "RemoteError", "{}", lines[3]);
    assert_eq!(missing["exc_type"], "NoSuchMethod", "{}", lines[3]);
    assert!(
        missing["value"]
            .as_str()
            .is_some_and(|v| v.contains("no_such_method")),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4]["result"]["user"], "u1", "{}", lines[4]);
    assert_eq!(lines[4]["result"]["request_id"], "req-1", "{}", lines[4]);
    for (i, line) in lines.iter().enumerate().skip(5) {
        assert_eq!(line["ok"], true, "request {i}: {line}");
    }
    // The directed cast reaches s2 only, the fanout both, the topic cast one of them.
    let wanted = 4;
    let got_all = integration_tests::support::eventually(Duration::from_secs(20), || {
        records.lock().unwrap().len() >= wanted
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = records.lock().unwrap().clone();
    assert!(got_all && records.len() == wanted, "{records:#?}");
    let by_n = |n: i64| -> Vec<String> {
        let mut servers: Vec<String> = records
            .iter()
            .filter(|(_, args, _)| args["n"] == json!(n))
            .map(|(s, _, _)| s.clone())
            .collect();
        servers.sort();
        servers
    };
    assert_eq!(by_n(1), ["s2"]);
    assert_eq!(by_n(2), ["s1", "s2"]);
    assert_eq!(by_n(3).len(), 1);
    for (_, _, ctx) in &records {
        assert_eq!(ctx["user"], "u1", "the context crossed: {ctx}");
    }
    s1.stop_and_wait().await.unwrap();
    s2.stop_and_wait().await.unwrap();
    transport.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_a_python_server() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let scratch = Scratch::new();
    let topic = unique("rpc-rust-to-py");
    let server = python_rpc_server(&python, &url, &topic, &scratch, &[]).await;
    let transport = rabbit_support::transport(&url, "");
    let client =
        RpcClient::new(&transport, Target::new(&topic)).with_timeout(Duration::from_secs(20));
    let mut ctx = Context::new();
    ctx.insert("user".into(), json!("u7"));
    let args = json!({"a": {"b": [1, 2, {"c": null}]}, "s": "ünï"});
    let echoed = client
        .call_json(&ctx, "echo", args.clone())
        .await
        .expect("echo");
    assert_eq!(echoed["args"], args);
    assert_eq!(echoed["context_user"], "u7");
    assert_eq!(echoed["nested"]["list"], json!([1, "two", {"three": 3.0}]));

    let sum = client
        .prepare()
        .with_namespace("ns1")
        .with_version("1.2")
        .call_json(&Context::new(), "add", json!({"a": 40, "b": 2}))
        .await
        .expect("add");
    assert_eq!(sum, json!(42));

    let err = client
        .call_json(
            &Context::new(),
            "fail_custom",
            json!({"message": "custom boom", "code": 7}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::Remote {
            type_name: "InteropError".into()
        },
        "{err}"
    );
    assert!(err.message().contains("custom boom"), "{err}");

    let err = client
        .call_json(&Context::new(), "nope", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Remote { .. } | ErrorKind::NoSuchMethod
        ),
        "{err}"
    );

    let lonely = RpcClient::new(&transport, Target::new(unique("rpc-nobody")))
        .with_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let err = lonely
        .call_json(&Context::new(), "echo", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    transport.close(Duration::from_secs(10)).await.unwrap();
    drop(server);
}

fn notifications(topic_hint: &str) -> Vec<Value> {
    let priorities = [
        "audit", "debug", "info", "warn", "error", "critical", "sample",
    ];
    (0..14)
        .map(|i| {
            json!({
                "priority": priorities[i % priorities.len()],
                "publisher_id": format!("compute.host{i}"),
                "event_type": format!("{topic_hint}.event.{i}"),
                "payload": {"i": i, "nested": {"list": [i, "x", {"f": 1.5}], "none": null}, "text": "ünïcödé"},
                "context": {"user": format!("user-{i}"), "request_id": format!("req-{i}")},
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_notifier_to_rust_listener() {
    python_to_rust(false).await;
}

/// kombu's `kombu_compression=gzip` (a zlib body and a `compression` header): the Rust
/// listener decompresses by the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_python_notifications_to_a_rust_listener() {
    python_to_rust(true).await;
}

async fn python_to_rust(compressed: bool) {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let python_url = if compressed {
        rabbit_support::url_with(&url, "kombu_compression=gzip")
    } else {
        url.clone()
    };
    let transport = rabbit_support::transport(&url, "");
    let topic = unique("notify-py-to-rust");
    let collector = Collector::new();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new(&topic))
        .endpoint(collector.endpoint())
        .start_position(StartPosition::Earliest)
        .build()
        .unwrap();
    listener.start().await.unwrap();
    let inputs = notifications("py");
    let scratch = Scratch::new();
    let file = scratch.path("input.json");
    std::fs::write(&file, serde_json::to_vec(&inputs).unwrap()).unwrap();
    let out = python_command(&python, "oslo_notify.py")
        .args(["--url", &python_url, "--topic", &topic, "--input"])
        .arg(&file)
        .output()
        .await
        .expect("the Python notifier runs");
    assert!(
        out.status.success(),
        "oslo_notify.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = json_lines(&out.stdout, "oslo_notify.py");
    assert_eq!(sent.len(), inputs.len());
    assert_eq!(
        collector
            .wait_for(inputs.len(), Duration::from_secs(30))
            .await,
        inputs.len()
    );
    assert_eq!(
        collector
            .wait_for(inputs.len() + 1, Duration::from_secs(1))
            .await,
        inputs.len(),
        "no duplicates"
    );
    let got: BTreeMap<String, _> = collector
        .all()
        .into_iter()
        .map(|n| (n.metadata.message_id.clone(), n))
        .collect();
    for s in &sent {
        let id = s["message_id"].as_str().unwrap();
        let n = got
            .get(id)
            .unwrap_or_else(|| panic!("{id} was not received: {s}"));
        assert_eq!(n.publisher_id, s["publisher_id"], "{id}");
        assert_eq!(n.event_type, s["event_type"], "{id}");
        assert_eq!(
            n.priority.as_wire(),
            s["priority"].as_str().unwrap().to_uppercase(),
            "{id}"
        );
        assert_eq!(n.payload.to_value().unwrap(), s["payload"], "{id}");
        assert_eq!(n.metadata.timestamp, s["timestamp"], "{id}");
        let ctx = serde_json::to_value(&n.context).unwrap();
        for (k, v) in s["context"].as_object().unwrap() {
            assert_eq!(&ctx[k], v, "{id}: context key {k}");
        }
    }
    listener.stop_and_wait().await.unwrap();
    transport.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_notifier_to_python_listener() {
    rust_to_python(false).await;
}

/// `kombu_compression=gzip` on the Rust side: kombu decompresses by the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_rust_notifications_to_a_python_listener() {
    rust_to_python(true).await;
}

async fn rust_to_python(compressed: bool) {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let topic = unique("notify-rust-to-py");
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let inputs = notifications("rs");
    let listener = python_command(&python, "oslo_listen.py")
        .args(["--url", &url, "--topic", &topic, "--count"])
        .arg(inputs.len().to_string())
        .args([
            "--timeout",
            "60",
            "--pool",
            &unique("pypool"),
            "--ready-file",
        ])
        .arg(&ready)
        .spawn()
        .expect("the Python listener starts");
    assert!(
        wait_for_file(&ready, Duration::from_secs(60)).await,
        "the Python listener did not get ready"
    );
    let transport = rabbit_support::transport(
        &url,
        if compressed {
            "kombu_compression=gzip"
        } else {
            ""
        },
    );
    let notifier = Notifier::builder()
        .publisher_id("unused")
        .topic(&topic)
        .transport(&transport)
        .build()
        .unwrap();
    let mut sent = Vec::new();
    for input in &inputs {
        let mut ctx = Context::new();
        for (k, v) in input["context"].as_object().unwrap() {
            ctx.insert(k.clone(), v.clone());
        }
        let priority: Priority = input["priority"].as_str().unwrap().parse().unwrap();
        let n = notifier
            .prepare(input["publisher_id"].as_str(), None)
            .build_notification(
                priority,
                &ctx,
                input["event_type"].as_str().unwrap(),
                &input["payload"],
            )
            .unwrap();
        notifier.emit(&n).await.unwrap().delivered().await.unwrap();
        sent.push(n);
    }
    let out = listener
        .wait_with_output()
        .await
        .expect("the Python listener ends");
    assert!(
        out.status.success(),
        "oslo_listen.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json_lines(&out.stdout, "oslo_listen.py");
    assert_eq!(got.len(), sent.len(), "exactly once each: {got:#?}");
    let by_id: BTreeMap<&str, &Value> = got
        .iter()
        .map(|g| (g["metadata"]["message_id"].as_str().unwrap(), g))
        .collect();
    assert_eq!(by_id.len(), sent.len(), "no duplicates");
    for n in &sent {
        let g = by_id
            .get(n.message_id.as_str())
            .unwrap_or_else(|| panic!("{} was not received", n.message_id));
        assert_eq!(g["publisher_id"], n.publisher_id.as_str());
        assert_eq!(g["event_type"], n.event_type.as_str());
        assert_eq!(
            g["priority"].as_str().unwrap().to_uppercase(),
            n.priority.as_wire()
        );
        assert_eq!(g["payload"], n.payload_value());
        assert_eq!(g["metadata"]["timestamp"], n.timestamp.as_str());
        let ctx: Map<String, Value> =
            serde_json::from_value(serde_json::to_value(&n.context).unwrap()).unwrap();
        for (k, v) in &ctx {
            assert_eq!(&g["context"][k], v, "{}: context key {k}", n.message_id);
        }
    }
    transport.close(Duration::from_secs(10)).await.unwrap();
}

/// oslo's call monitor: a Python caller with `call_monitor_timeout` 2 s calls a Rust
/// method that takes 5 s. Without heartbeats it would end in `MessagingTimeout`
/// after about 2 s; the Rust server beats every second, so the call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_callers_call_monitor_gets_heartbeats_from_a_rust_server() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let transport = rabbit_support::transport(&url, "");
    let topic = unique("rpc-monitor");
    let records: Records = Arc::default();
    let server = rust_server(&transport, &topic, "s1", &records).await;
    let requests = json!([
        {"kind": "call", "topic": topic, "method": "sleep", "args": {"seconds": 5}, "timeout": 30, "call_monitor_timeout": 2, "context": {}},
        {"kind": "call", "topic": topic, "method": "sleep", "args": {"seconds": 0.2}, "timeout": 30, "context": {}},
    ]);
    let lines = run_python_client(&python, &url, &requests).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].get("error").is_none() && lines[0]["result"].is_null(),
        "a monitored 5 s call: {}",
        lines[0]
    );
    assert!(
        lines[0]["elapsed"].as_f64().is_some_and(|t| t >= 4.5),
        "{}",
        lines[0]
    );
    // No heartbeat for a caller without a monitor (oslo's FLAW: it would crash on one).
    assert!(
        lines[1].get("error").is_none() && lines[1]["result"].is_null(),
        "{}",
        lines[1]
    );
    server.stop_and_wait().await.unwrap();
    transport.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_servers_share_one_clients_calls() {
    let Some((python, url)) = python_and_broker() else {
        return;
    };
    let scratch = Scratch::new();
    let topic = unique("rpc-shared-topic");
    let py = python_rpc_server(&python, &url, &topic, &scratch, &[]).await;
    let transport = rabbit_support::transport(&url, "");
    // The Rust server's echo answers like the Python one: the arguments and its name.
    let served_by_rust: Arc<Mutex<Vec<i64>>> = Arc::default();
    let echo = {
        let served = served_by_rust.clone();
        RpcEndpoint::new().method("echo", move |_ctx: Context, args: Value| {
            let served = served.clone();
            async move {
                served
                    .lock()
                    .unwrap()
                    .push(args["n"].as_i64().unwrap_or(-1));
                Ok::<_, RemoteError>(json!({"args": args, "server": "r1"}))
            }
        })
    };
    let rust = RpcServer::builder(&transport, Target::new(&topic).with_server("r1"))
        .endpoint(echo)
        .build()
        .unwrap();
    rust.start().await.unwrap();
    const CALLS: i64 = 20;
    let client =
        RpcClient::new(&transport, Target::new(&topic)).with_timeout(Duration::from_secs(20));
    let mut answered_by = BTreeMap::new();
    for n in 0..CALLS {
        let result = client
            .call_json(&Context::new(), "echo", json!({"n": n}))
            .await
            .unwrap_or_else(|e| panic!("call {n}: {e}"));
        assert_eq!(result["args"], json!({"n": n}), "call {n}: {result}");
        let server = result["server"].as_str().unwrap_or_default().to_owned();
        answered_by.insert(n, server);
    }
    rust.stop_and_wait().await.unwrap();
    transport.close(Duration::from_secs(10)).await.unwrap();
    // A clean stop (SIGTERM), then its output.
    let out = stop_python_server(py).await;
    assert!(
        out.status.success(),
        "oslo_rpc_server.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served_by_python: Vec<i64> = json_lines(&out.stdout, "oslo_rpc_server.py")
        .iter()
        .filter(|l| l["served"] == "echo")
        .map(|l| l["args"]["n"].as_i64().unwrap_or(-1))
        .collect();
    let served_by_rust = served_by_rust.lock().unwrap().clone();
    eprintln!(
        "{CALLS} calls: {} served by Python, {} by Rust",
        served_by_python.len(),
        served_by_rust.len()
    );
    // Every call served exactly once, by the server that answered it.
    let mut served: Vec<i64> = served_by_python
        .iter()
        .chain(&served_by_rust)
        .copied()
        .collect();
    served.sort_unstable();
    assert_eq!(
        served,
        (0..CALLS).collect::<Vec<_>>(),
        "each call served once"
    );
    for n in &served_by_python {
        assert_eq!(answered_by[n], "p1", "call {n}");
    }
    for n in &served_by_rust {
        assert_eq!(answered_by[n], "r1", "call {n}");
    }
    assert!(
        !served_by_python.is_empty() && !served_by_rust.is_empty(),
        "both servers take some calls: Python {served_by_python:?}, Rust {served_by_rust:?}"
    );
}
