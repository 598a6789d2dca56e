//! The driver's wire dialect ([`Dialect`]): which notification form the core writes
//! and whether the URL's virtual host goes into topic names (notifications and RPC
//! alike), on a driver that records what it is handed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use messaging_core::driver::{
    Capabilities, CloseReport, Dialect, Driver, OutgoingRecord, PendingDelivery, Subscription,
    SubscriptionSpec,
};
use messaging_core::rpc::{
    RemoteError, RpcClient, RpcDriver, RpcEndpoint, RpcListenSpec, RpcOperation, RpcReceiver,
    RpcReply, RpcReplyQueue, RpcRequest, RpcServer,
};
use messaging_core::{
    Context, Error, ErrorKind, Notifier, Priority, Result, Retry, Target, Transport, TransportUrl,
};
use serde_json::{json, Value};

#[derive(Debug)]
struct Recorder {
    dialect: Dialect,
    records: Mutex<Vec<OutgoingRecord>>,
    requests: Arc<Mutex<Vec<RpcRequest>>>,
}

#[async_trait]
impl Driver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            rpc: true,
            dialect: self.dialect,
            ..Capabilities::default()
        }
    }
    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        self.records.lock().unwrap().extend_from_slice(batch);
        batch
            .iter()
            .map(|_| Ok(PendingDelivery::Delivered))
            .collect()
    }
    async fn subscribe(&self, _spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        Err(Error::unsupported("recorder", "subscribe"))
    }
    async fn close(&self, _timeout: Duration) -> Result<CloseReport> {
        Ok(CloseReport::default())
    }
    fn rpc(&self, _operation: RpcOperation) -> Result<Arc<dyn RpcDriver>> {
        Ok(Arc::new(RecorderRpc(self.requests.clone())))
    }
}

#[derive(Debug)]
struct RecorderRpc(Arc<Mutex<Vec<RpcRequest>>>);

#[async_trait]
impl RpcDriver for RecorderRpc {
    async fn send_request(&self, request: RpcRequest) -> Result<()> {
        self.0.lock().unwrap().push(request);
        Ok(())
    }
    async fn send_replies(&self, _replies: Vec<RpcReply>) -> Result<()> {
        Ok(())
    }
    async fn open_reply_queue(&self) -> Result<RpcReplyQueue> {
        Err(Error::new(ErrorKind::Transport, "casts only"))
    }
    async fn listen(&self, _spec: RpcListenSpec) -> Result<Box<dyn RpcReceiver>> {
        Err(Error::new(ErrorKind::Transport, "not listening"))
    }
}

fn transport(dialect: Dialect) -> (Arc<Recorder>, Transport) {
    let driver = Arc::new(Recorder {
        dialect,
        records: Mutex::default(),
        requests: Arc::default(),
    });
    let t = Transport::from_driver(
        TransportUrl::parse("recorder://host/vh1").unwrap(),
        driver.clone(),
    );
    (driver, t)
}

/// The inner message of a v2 record.
fn inner(body: &Bytes) -> serde_json::Map<String, Value> {
    let outer: Value = serde_json::from_slice(body).unwrap();
    serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap()
}

fn notifier(t: &Transport) -> Notifier {
    Notifier::builder()
        .publisher_id("compute.host1")
        .topics(["notifications", "metering"])
        .retry(Retry::Limited(0))
        .transport(t)
        .build()
        .unwrap()
}

fn context() -> Context {
    let mut ctx = Context::new();
    ctx.insert("user".into(), json!("u1"));
    ctx.insert("request_id".into(), json!("req-1"));
    ctx
}

/// The topic an RPC server listens on and the one a cast goes to.
async fn rpc_topics(driver: &Recorder, t: &Transport) -> (String, String) {
    let server = RpcServer::builder(t, Target::new("calc").with_server("s1"))
        .endpoint(RpcEndpoint::new().method("m", |_ctx, (): ()| async { Ok::<_, RemoteError>(()) }))
        .build()
        .unwrap();
    RpcClient::new(t, Target::new("calc"))
        .cast(&Context::new(), "m", &())
        .await
        .unwrap();
    let sent = driver.requests.lock().unwrap().pop().unwrap();
    (server.listen_spec().topic.clone(), sent.to.topic)
}

#[tokio::test(flavor = "current_thread")]
async fn kafka_dialect_writes_a_context_object_and_suffixes_the_virtual_host() {
    let (driver, t) = transport(Dialect::Kafka);
    assert_eq!(t.dialect(), Dialect::Kafka);
    assert_eq!(
        t.notification_topic("notifications", Priority::Info),
        "notifications.info.vh1"
    );
    let n = notifier(&t);
    n.info(&context(), "e1", &json!({"a": 1})).await.unwrap();
    n.notify_many(Priority::Info, &context(), [("e2", 2)])
        .await
        .unwrap();
    let records = driver.records.lock().unwrap().clone();
    assert_eq!(records.len(), 4);
    for r in &records {
        assert!(r.topic.ends_with(".info.vh1"), "{}", r.topic);
        let m = inner(&r.body);
        assert_eq!(m["_context"], json!({"user": "u1", "request_id": "req-1"}));
        assert!(!m.contains_key("_unique_id") && !m.contains_key("_context_user"));
    }
    // One body for both topics of a notification.
    assert_eq!(records[0].body, records[1].body);
    assert_eq!(
        rpc_topics(&driver, &t).await,
        ("calc.vh1".into(), "calc.vh1".into())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn amqp_dialect_writes_flat_context_keys_and_no_virtual_host() {
    let (driver, t) = transport(Dialect::Amqp);
    assert_eq!(t.dialect(), Dialect::Amqp);
    assert_eq!(
        t.notification_topic("notifications", Priority::Info),
        "notifications.info"
    );
    let n = notifier(&t);
    n.info(&context(), "e1", &json!({"a": 1})).await.unwrap();
    n.notify_many(Priority::Info, &context(), [("e2", 2), ("e3", 3)])
        .await
        .unwrap();
    let records = driver.records.lock().unwrap().clone();
    let topics: Vec<&str> = records.iter().map(|r| &*r.topic).collect();
    assert_eq!(
        topics,
        ["notifications.info", "metering.info"].repeat(3),
        "no virtual host in the topic names"
    );
    let mut unique_ids = Vec::new();
    for r in &records {
        let m = inner(&r.body);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "message_id",
                "publisher_id",
                "event_type",
                "priority",
                "payload",
                "timestamp",
                "_unique_id",
                "_context_user",
                "_context_request_id",
            ]
        );
        assert_eq!(m["_context_user"], json!("u1"));
        unique_ids.push(m["_unique_id"].as_str().unwrap().to_owned());
        // And it decodes back with its context.
        let back = messaging_core::envelope::decode(&r.body).unwrap();
        assert_eq!(back.context, context());
    }
    // A new `_unique_id` for every message sent, even one notification's copies.
    let mut distinct = unique_ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), unique_ids.len());
    assert_eq!(
        rpc_topics(&driver, &t).await,
        ("calc".into(), "calc".into())
    );
}
