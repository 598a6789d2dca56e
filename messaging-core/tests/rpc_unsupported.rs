//! On a driver that keeps `Driver::rpc`'s default (Kafka), every RPC entry point
//! fails at once with `Unsupported`, naming the driver and the operation, and
//! touches nothing else on the driver.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{
    Capabilities, CloseReport, Driver, OutgoingRecord, PendingDelivery, Subscription,
    SubscriptionSpec,
};
use messaging_core::rpc::{demo::demo_endpoint, RpcClient, RpcServer};
use messaging_core::{Context, Error, ErrorKind, Result, Target, Transport, TransportUrl};
use serde_json::json;

/// A driver that panics if anything but its name, capabilities or `rpc` is used.
#[derive(Debug)]
struct NoRpc;

#[async_trait]
impl Driver for NoRpc {
    fn name(&self) -> &str {
        "kafka"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn send_batch(&self, _batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        panic!("RPC must not send")
    }
    async fn subscribe(&self, _spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        panic!("RPC must not subscribe")
    }
    async fn close(&self, _timeout: Duration) -> Result<CloseReport> {
        Ok(CloseReport::default())
    }
}

fn unsupported<T: std::fmt::Debug>(result: Result<T, Error>, operation: &str) {
    let e = result.unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::Unsupported {
            driver: "kafka".into(),
            operation: operation.into()
        }
    );
    assert_eq!(
        e.to_string(),
        format!("unsupported operation: the kafka driver does not support {operation}")
    );
}

#[tokio::test]
async fn every_rpc_entry_point_refuses() {
    let t = Transport::from_driver(
        TransportUrl::parse("kafka://broker:9092").unwrap(),
        Arc::new(NoRpc),
    );
    assert!(!t.driver().capabilities().rpc);
    let ctx = Context::new();
    let client = RpcClient::new(&t, Target::new("compute"));
    unsupported(
        client.call::<_, i64>(&ctx, "add", &json!({"a": 1})).await,
        "rpc.call",
    );
    unsupported(client.call_json(&ctx, "add", json!({})).await, "rpc.call");
    unsupported(client.cast(&ctx, "add", &()).await, "rpc.cast");
    unsupported(client.cast_json(&ctx, "add", json!({})).await, "rpc.cast");
    unsupported(client.fanout(&ctx, "add", &()).await, "rpc.fanout");
    unsupported(
        client.fanout_json(&ctx, "add", json!({})).await,
        "rpc.fanout",
    );
    let fanout = client.prepare().with_fanout(true);
    unsupported(fanout.cast(&ctx, "add", &()).await, "rpc.fanout");
    unsupported(fanout.cast_json(&ctx, "add", json!({})).await, "rpc.fanout");
    // Even arguments that would be refused later are not looked at first.
    unsupported(client.call_json(&ctx, "add", json!([1])).await, "rpc.call");

    let server = RpcServer::builder(&t, Target::new("compute").with_server("h1"))
        .endpoint(demo_endpoint())
        .build()
        .unwrap();
    unsupported(server.start().await, "rpc.server");
    server.stop_and_wait().await.unwrap();
}
