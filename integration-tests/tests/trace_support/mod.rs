//! The trace cases, run on each transport: spans go through tracing-opentelemetry
//! into an in-memory exporter installed once per test process (a global
//! subscriber, since listeners and servers run on the runtime's worker threads);
//! each case finds its own spans by its unique topic.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use integration_tests::conformance::{listen, notifier};
use integration_tests::support::{eventually, unique, Collector};
use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
use messaging_core::{envelope, Context, HandlerOutcome, NotificationEndpoint, Priority, Retry};
use messaging_core::{OutgoingNotification, Target, Transport};
use opentelemetry::trace::{SpanId, SpanKind, TraceContextExt, TraceId, TracerProvider};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The exporter every span of this process goes to.
pub fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let logs = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("trace-tests")))
            .with(logs);
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        exporter
    })
}

use tracing_subscriber::Layer as _;

/// How long a case waits for a span to end.
const PATIENCE: Duration = Duration::from_secs(30);

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
}

/// The finished spans named `name` whose `messaging.destination.name` is `destination`.
fn spans(name: &str, destination: &str) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.name == name
                && attribute(s, "messaging.destination.name").as_deref() == Some(destination)
        })
        .collect()
}

/// The one span named `name` on `destination`, once it ended.
pub async fn finished_span(name: &str, destination: &str) -> SpanData {
    span(name, destination).await
}

async fn span(name: &str, destination: &str) -> SpanData {
    let found = eventually(PATIENCE, || !spans(name, destination).is_empty()).await;
    assert!(
        found,
        "no span {name:?} ended within {PATIENCE:?}; spans: {:#?}",
        names()
    );
    let mut all = spans(name, destination);
    assert_eq!(all.len(), 1, "one span {name:?}: {all:#?}");
    all.remove(0)
}

fn names() -> Vec<String> {
    exporter()
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect()
}

/// The trace id of the current span, as OpenTelemetry sees it.
fn current_trace_id() -> TraceId {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
}

/// `child`'s parent is `parent` and both are in `parent`'s trace.
fn assert_child_of(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id(),
        "{} is in the trace of {}",
        child.name,
        parent.name
    );
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{}'s parent is {}",
        child.name,
        parent.name
    );
}

/// A trace started around a notify continues in the handler: the consumer span's
/// parent is the producer span, the handler's span is a child of it, and the
/// handler's own logs run in that trace.
pub async fn a_notify_trace_continues_in_the_handler(t: &Transport) {
    let topic = unique("trace");
    let seen = Arc::new(Mutex::new(None));
    let in_handler = seen.clone();
    let endpoint = NotificationEndpoint::from_fn(move |_n| {
        let in_handler = in_handler.clone();
        async move {
            tracing::info!("handling inside the process span");
            *in_handler.lock().unwrap() = Some(current_trace_id());
            Ok(HandlerOutcome::Handled)
        }
    });
    let l = listen(t, &topic, None, endpoint).await;
    let app = tracing::info_span!("application request");
    let trace_id = app.context().span().span_context().trace_id();
    notifier(t, &[&topic])
        .info(
            &Context::new(),
            "compute.instance.create.end",
            &json!({"id": 1}),
        )
        .instrument(app)
        .await
        .unwrap();
    let destination = t.notification_topic(&topic, Priority::Info);
    let send = span(&format!("{destination} send"), &destination).await;
    let process = span(&format!("{destination} process"), &destination).await;
    assert_eq!(send.span_context.trace_id(), trace_id);
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_child_of(&process, &send);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(trace_id),
        "the handler ran in the trace"
    );
    // The semantic conventions' name, as on the metrics (`rabbit` is `rabbitmq`).
    let system = messaging_core::observability::metrics::system_name(t.driver().name());
    for s in [&send, &process] {
        assert_eq!(attribute(s, "messaging.system").as_deref(), Some(system));
    }
    assert_eq!(
        attribute(&send, "messaging.operation.type").as_deref(),
        Some("send")
    );
    assert_eq!(
        attribute(&process, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert!(attribute(&process, "messaging.message.id").is_some());
    l.stop_and_wait().await.unwrap();
}

/// A handler that notifies with the context it received sends the trace of its
/// own span, not the incoming `traceparent` again.
pub async fn a_handler_that_notifies_sends_its_own_trace(t: &Transport) {
    let first = unique("trace-in");
    let second = unique("trace-out");
    let forward = notifier(t, &[&second]);
    let endpoint = NotificationEndpoint::from_fn(move |n| {
        let forward = forward.clone();
        async move {
            forward.info(&n.context, "forwarded", &json!({})).await?;
            Ok(HandlerOutcome::Handled)
        }
    });
    let got = Collector::new();
    let l1 = listen(t, &first, None, endpoint).await;
    let l2 = listen(t, &second, None, got.endpoint()).await;
    notifier(t, &[&first])
        .info(&Context::new(), "original", &json!({}))
        .instrument(tracing::info_span!("application request"))
        .await
        .unwrap();
    assert_eq!(got.wait_for(1, PATIENCE).await, 1);
    let d1 = t.notification_topic(&first, Priority::Info);
    let d2 = t.notification_topic(&second, Priority::Info);
    let process = span(&format!("{d1} process"), &d1).await;
    let forwarded = span(&format!("{d2} send"), &d2).await;
    let received = span(&format!("{d2} process"), &d2).await;
    assert_child_of(&forwarded, &process);
    assert_child_of(&received, &forwarded);
    let traceparent = got.all()[0].context["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        traceparent.contains(&forwarded.span_context.span_id().to_string()),
        "{traceparent} names the forwarding send span"
    );
    l1.stop_and_wait().await.unwrap();
    l2.stop_and_wait().await.unwrap();
}

/// A notification whose context has no `traceparent`, or a malformed one, is
/// handled and starts a new trace (its consumer span is a root).
pub async fn a_missing_or_malformed_traceparent_starts_a_new_trace(t: &Transport) {
    for (case, context) in [
        ("none", json!({"user": "u"})),
        (
            "malformed",
            json!({"traceparent": "00-not-a-trace-01", "tracestate": "x=1"}),
        ),
        ("not a string", json!({"traceparent": 7})),
    ] {
        let topic = unique("trace-bad");
        let got = Collector::new();
        let l = listen(t, &topic, None, got.endpoint()).await;
        let destination = t.notification_topic(&topic, Priority::Info);
        // Straight through the transport: a notifier would inject its own trace.
        let body = envelope::encode(&raw_notification(context)).unwrap();
        t.send(&destination, body.into(), Retry::Limited(3))
            .await
            .unwrap()
            .delivered()
            .await
            .unwrap();
        assert_eq!(got.wait_for(1, PATIENCE).await, 1, "{case}: handled");
        let process = span(&format!("{destination} process"), &destination).await;
        assert_eq!(
            process.parent_span_id,
            SpanId::INVALID,
            "{case}: a new trace"
        );
        assert!(process.span_context.is_valid(), "{case}");
        l.stop_and_wait().await.unwrap();
    }
}

fn raw_notification(context: serde_json::Value) -> OutgoingNotification {
    let serde_json::Value::Object(context) = context else {
        unreachable!()
    };
    OutgoingNotification {
        message_id: uuid::Uuid::new_v4().to_string(),
        publisher_id: "trace.test".into(),
        event_type: "raw".into(),
        priority: Priority::Info,
        payload: messaging_core::Payload::from_serialize(&json!({})).unwrap(),
        timestamp: "2026-01-01 00:00:00.000000".into(),
        context,
    }
}

/// An RPC call and a cast: the server span is a child of the client span, in the
/// caller's trace, with the RPC attributes.
pub async fn an_rpc_trace_continues_on_the_server(t: &Transport) {
    let topic = unique("trace-rpc");
    let endpoint = RpcEndpoint::new().namespace("tracing").method(
        "echo",
        |_ctx, args: serde_json::Map<String, serde_json::Value>| async move {
            tracing::info!("serving inside the server span");
            Ok::<_, RemoteError>(args)
        },
    );
    let server = RpcServer::builder(t, Target::new(&topic).with_server("s1"))
        .endpoint(endpoint)
        .build()
        .unwrap();
    server.start().await.unwrap();
    let client = RpcClient::new(t, Target::new(&topic))
        .with_namespace("tracing")
        .with_timeout(PATIENCE);
    let app = tracing::info_span!("application call");
    let trace_id = app.context().span().span_context().trace_id();
    let echoed = client
        .call_json(&Context::new(), "echo", json!({"x": 1}))
        .instrument(app)
        .await
        .unwrap();
    assert_eq!(echoed, json!({"x": 1}));
    let client_span = span(&format!("{topic}.echo call"), &topic).await;
    let server_span = span(&format!("{topic}.echo process"), &topic).await;
    assert_eq!(client_span.span_context.trace_id(), trace_id);
    assert_eq!(client_span.span_kind, SpanKind::Client);
    assert_eq!(server_span.span_kind, SpanKind::Server);
    assert_child_of(&server_span, &client_span);
    for s in [&client_span, &server_span] {
        assert_eq!(attribute(s, "rpc.method").as_deref(), Some("echo"));
        assert_eq!(attribute(s, "rpc.service").as_deref(), Some("tracing"));
    }
    assert!(attribute(&server_span, "messaging.message.id").is_some());

    client
        .cast_json(&Context::new(), "echo", json!({"y": 2}))
        .instrument(tracing::info_span!("application cast"))
        .await
        .unwrap();
    let cast = span(&format!("{topic}.echo cast"), &topic).await;
    let found = eventually(PATIENCE, || {
        spans(&format!("{topic}.echo process"), &topic).len() == 2
    })
    .await;
    assert!(found, "the cast was served");
    let served = spans(&format!("{topic}.echo process"), &topic);
    assert!(
        served
            .iter()
            .any(|s| s.parent_span_id == cast.span_context.span_id()
                && s.span_context.trace_id() == cast.span_context.trace_id()),
        "the cast's server span is a child of the cast span"
    );
    server.stop_and_wait().await.unwrap();
}
