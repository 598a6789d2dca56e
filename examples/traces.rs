//! Traces: a notify in an application's span, continued by the listener's handler,
//! exported by OpenTelemetry. messaging-core's `opentelemetry` feature carries the
//! W3C trace context in the notification's context; the application installs the
//! `tracing-opentelemetry` layer and picks the exporter: here `opentelemetry-stdout`
//! (prints each span when it ends); a real deployment would use `opentelemetry-otlp`
//! towards a collector.
//!
//! ```sh
//! cargo run -p examples --example traces [-- TRANSPORT_URL]
//! ```
//!
//! The URL defaults to `memory://traces`.

use examples::{register_drivers, wait_for};
use messaging_core::{
    Context, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier, Target,
    Transport,
};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

/// The trace id of the current span, in W3C hex.
fn current_trace_id() -> String {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

#[tokio::main]
async fn main() -> messaging_core::Result<()> {
    // The exporter: stdout here; OTLP (opentelemetry-otlp) in production.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("traces-example")))
        // The application's logs, with the spans they run in.
        .with(
            tracing_subscriber::fmt::layer()
                .with_filter(tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    register_drivers();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "memory://traces".into());
    let transport = Transport::open(&url)?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = NotificationListener::builder(&transport)
        .target(Target::new("traced-notifications"))
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let tx = tx.clone();
            async move {
                // Runs inside the listener's `process` span, in the sender's trace.
                tracing::info!(event_type = %n.event_type, "handling");
                let _ = tx.send(current_trace_id());
                Ok(HandlerOutcome::Handled)
            }
        }))
        .build()?;
    listener.start().await?;

    let notifier = Notifier::builder()
        .publisher_id("compute.host1")
        .topics(["traced-notifications"])
        .transport(&transport)
        .build()?;
    let request = tracing::info_span!("create instance");
    let trace_id = request
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    async {
        tracing::info!("notifying");
        notifier
            .info(
                &Context::new(),
                "compute.instance.create.end",
                &json!({"id": 1}),
            )
            .await?
            .delivered()
            .await
    }
    .instrument(request)
    .await?;

    let seen = wait_for(&mut rx, 1).await?;
    listener.stop_and_wait().await?;
    transport.close(std::time::Duration::from_secs(5)).await?;
    let _ = provider.shutdown();
    if seen[0] == trace_id {
        println!("trace {trace_id} continued in the handler");
        Ok(())
    } else {
        Err(messaging_core::Error::new(
            messaging_core::ErrorKind::Internal,
            format!("the handler ran in trace {}, not {trace_id}", seen[0]),
        ))
    }
}
