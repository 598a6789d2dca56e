//! Notifier behaviour that needs no transport: sinks, prepare, serializer, sanitizing.

use std::collections::BTreeMap;
use std::sync::Arc;

use messaging_core::notifier::{sink_by_name, LogSink, NoopSink, NotificationSerializer};
use messaging_core::{
    Context, ContextSanitizer, ErrorKind, Notifier, Priority, RecordingSink, Result, Retry,
};
use serde_json::{json, Value};

fn ctx(v: Value) -> Context {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn every_priority_method_records_its_priority() {
    let rec = Arc::new(RecordingSink::new());
    let n = Notifier::builder()
        .publisher_id("p")
        .sink(rec.clone())
        .build()
        .unwrap();
    let c = Context::new();
    n.audit(&c, "e", &0).await.unwrap();
    n.debug(&c, "e", &1).await.unwrap();
    n.info(&c, "e", &2).await.unwrap();
    n.warn(&c, "e", &3).await.unwrap();
    n.warning(&c, "e", &4).await.unwrap();
    n.error(&c, "e", &5).await.unwrap();
    n.critical(&c, "e", &6).await.unwrap();
    n.sample(&c, "e", &7).await.unwrap();
    let got: Vec<Priority> = rec.records().iter().map(|r| r.priority).collect();
    use Priority::*;
    assert_eq!(
        got,
        vec![Audit, Debug, Info, Warn, Warn, Error, Critical, Sample]
    );
    assert!(rec
        .records()
        .iter()
        .all(|r| r.topics == vec!["notifications".to_owned()]));
}

#[tokio::test]
async fn prepare_shares_sinks_with_another_publisher_and_retry() {
    let rec = Arc::new(RecordingSink::new());
    let n = Notifier::builder()
        .publisher_id("a")
        .topics(["t1", "t2"])
        .sink(rec.clone())
        .build()
        .unwrap();
    let m = n.prepare(Some("b"), Some(Retry::Limited(0)));
    assert_eq!(m.retry(), Retry::Limited(0));
    assert_eq!(n.retry(), Retry::Forever);
    m.info(&Context::new(), "e", &json!({})).await.unwrap();
    n.info(&Context::new(), "e", &json!({})).await.unwrap();
    let pubs: Vec<String> = rec
        .records()
        .iter()
        .map(|r| r.publisher_id.clone())
        .collect();
    assert_eq!(pubs, vec!["b", "a"]);
    assert_eq!(rec.records()[0].topics, vec!["t1", "t2"]);
    n.close();
    assert_eq!(
        m.info(&Context::new(), "e", &1).await.unwrap_err().kind(),
        &ErrorKind::Closed,
        "prepared copies share close"
    );
}

#[derive(Debug)]
struct Upper;

impl NotificationSerializer for Upper {
    fn serialize_context(&self, mut context: Context) -> Result<Context> {
        context.insert("serialized".into(), true.into());
        Ok(context)
    }
    fn serialize_payload(&self, payload: Value) -> Result<Value> {
        Ok(match payload {
            Value::String(s) => Value::String(s.to_uppercase()),
            other => other,
        })
    }
}

#[tokio::test]
async fn serializer_hook_rewrites_context_and_payload_after_sanitizing() {
    let rec = Arc::new(RecordingSink::new());
    let n = Notifier::builder()
        .publisher_id("p")
        .sink(rec.clone())
        .serializer(Arc::new(Upper))
        .sanitizer(ContextSanitizer::new(["api_key"]))
        .build()
        .unwrap();
    n.info(
        &ctx(json!({"api_key": "k", "auth_token": "kept: not in the custom list"})),
        "e",
        &"hello",
    )
    .await
    .unwrap();
    let r = &rec.records()[0];
    assert_eq!(r.payload, json!("HELLO"));
    assert_eq!(
        r.context,
        ctx(json!({"auth_token": "kept: not in the custom list", "serialized": true}))
    );
}

#[tokio::test]
async fn unserializable_payload_is_a_serialization_error() {
    let n = Notifier::builder()
        .publisher_id("p")
        .sink(Arc::new(NoopSink))
        .build()
        .unwrap();
    let mut bad: BTreeMap<(i32, i32), i32> = BTreeMap::new();
    bad.insert((1, 2), 3);
    let err = n.info(&Context::new(), "e", &bad).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Serialization, "{err}");
    assert!(
        n.info(&Context::new(), "e", &f64::NAN).await.is_ok(),
        "NaN serializes as null, like serde_json does"
    );
}

#[tokio::test]
async fn sinks_by_oslo_name() {
    for name in ["log", "noop", "test"] {
        assert!(sink_by_name(name, None).is_ok(), "{name}");
    }
    assert_eq!(
        sink_by_name("messagingv2", None).unwrap_err().kind(),
        &ErrorKind::InvalidArgument
    );
    assert!(matches!(
        sink_by_name("carrier-pigeon", None).unwrap_err().kind(),
        ErrorKind::InvalidOption { .. }
    ));
    let n = Notifier::builder()
        .publisher_id("p")
        .sink(Arc::new(LogSink))
        .build()
        .unwrap();
    assert!(n
        .error(&Context::new(), "e", &1)
        .await
        .unwrap()
        .is_delivered());
    assert!(
        Notifier::builder().build().is_err(),
        "a publisher id is required"
    );
}
