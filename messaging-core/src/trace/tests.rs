//! Injection and extraction on one thread, with and without the `opentelemetry`
//! feature (`cargo test -p messaging-core [--features opentelemetry]`; the
//! cross-transport cases are integration-tests/tests/traces.rs).

use serde_json::json;

use super::spans::{self, RpcOperation};
use super::{continue_trace, inject, TRACEPARENT};
use crate::notification::Context;

const INCOMING: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn context(value: serde_json::Value) -> Context {
    match value {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[cfg(not(feature = "opentelemetry"))]
mod without_the_feature {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::Layer;

    use super::*;

    /// Keeps every `traceparent` recorded on a span.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Visit for Recorded {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == TRACEPARENT {
                self.0.lock().unwrap().push(value.to_owned());
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: tracing::Subscriber> Layer<S> for Recorded {
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: LayerContext<'_, S>,
        ) {
            values.record(&mut self.clone());
        }
    }

    #[test]
    fn nothing_is_injected_and_an_incoming_traceparent_is_recorded_as_it_is() {
        let recorded = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(recorded.clone());
        tracing::subscriber::with_default(subscriber, || {
            let client = spans::rpc_client("memory", "t", "m", None, RpcOperation::Call);
            assert!(!client.is_disabled());
            let mut ctx = context(json!({"user": "u", TRACEPARENT: INCOMING}));
            let before = ctx.clone();
            inject(&client, &mut ctx);
            assert_eq!(ctx, before, "the application's context goes as it is");

            let server = spans::rpc_server("memory", "t", "m", None, None);
            continue_trace(&server, &ctx);
            let bad = spans::rpc_server("memory", "t", "m", None, None);
            continue_trace(&bad, &context(json!({TRACEPARENT: 7})));
        });
        assert_eq!(*recorded.0.lock().unwrap(), [INCOMING]);
    }
}

#[cfg(feature = "opentelemetry")]
mod with_the_feature {
    use opentelemetry::trace::{TraceContextExt, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::super::TRACESTATE;
    use super::*;

    fn with_otel(f: impl FnOnce()) {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("unit")));
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn the_client_span_replaces_an_incoming_trace_context() {
        with_otel(|| {
            let client = spans::rpc_client("memory", "t", "m", None, RpcOperation::Call);
            let mut ctx = context(json!({TRACEPARENT: INCOMING, TRACESTATE: "old=1"}));
            inject(&client, &mut ctx);
            let sc = client.context().span().span_context().clone();
            let want = format!("00-{}-{}-01", sc.trace_id(), sc.span_id());
            assert_eq!(ctx[TRACEPARENT], json!(want));
            assert!(
                !ctx.contains_key(TRACESTATE),
                "an empty tracestate is left out"
            );
        });
    }

    #[test]
    fn a_server_span_continues_a_well_formed_trace_and_ignores_a_malformed_one() {
        with_otel(|| {
            let server = spans::rpc_server("memory", "t", "m", None, None);
            continue_trace(&server, &context(json!({TRACEPARENT: INCOMING})));
            let sc = server.context().span().span_context().clone();
            assert_eq!(
                sc.trace_id().to_string(),
                "0af7651916cd43dd8448eb211c80319c"
            );

            for bad in [
                json!("00-zz-yy-01"),
                json!(7),
                json!(INCOMING.replace("-01", "")),
            ] {
                let server = spans::rpc_server("memory", "t", "m", None, None);
                continue_trace(&server, &context(json!({TRACEPARENT: bad})));
                let sc = server.context().span().span_context().clone();
                assert!(sc.is_valid(), "a new trace");
                assert_ne!(
                    sc.trace_id().to_string(),
                    "0af7651916cd43dd8448eb211c80319c"
                );
            }
        });
    }
}
