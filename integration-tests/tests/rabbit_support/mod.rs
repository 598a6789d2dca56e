//! Finding a RabbitMQ broker for the RabbitMQ tests, and opening transports on it.
//!
//! In order: `RABBITMQ_URL` (e.g. `rabbit://guest:guest@127.0.0.1:PORT/`, printed by
//! `scripts/rabbitmq.sh start`, which the README's test command runs); else a
//! throw-away `rabbitmq:3.10` container through testcontainers when a Docker daemon
//! answers; else, with `MESSAGING_REQUIRE_BROKER=1`, a failure saying what to set;
//! otherwise the tests are skipped with a printed note.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::OnceLock;

use messaging_core::{DriverRegistry, Transport, TransportUrl};

pub use integration_tests::support::{broker_required, eventually, init_tracing, unique};

/// The URL of the broker to test against, if any (see the module docs).
pub fn broker_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("RABBITMQ_URL") {
            if !url.trim().is_empty() {
                return Some(url.trim().to_owned());
            }
        }
        if docker_support::daemon_answers() {
            match start_rabbitmq() {
                Ok(url) => return Some(url),
                Err(e) if broker_required() => {
                    panic!("MESSAGING_REQUIRE_BROKER=1: could not start RabbitMQ in Docker: {e}")
                }
                Err(e) => eprintln!("RabbitMQ tests: could not start RabbitMQ in Docker: {e}"),
            }
        }
        if broker_required() {
            panic!(
                "MESSAGING_REQUIRE_BROKER=1 but no RabbitMQ: set RABBITMQ_URL=rabbit://guest:guest@HOST:PORT/ \
                 (e.g. from `scripts/rabbitmq.sh start`)"
            );
        }
        eprintln!(
            "RabbitMQ tests skipped: set RABBITMQ_URL=rabbit://guest:guest@HOST:PORT/ (e.g. from `scripts/rabbitmq.sh start`)"
        );
        None
    })
    .clone()
}

#[path = "../docker_support/mod.rs"]
mod docker_support;

/// A `rabbitmq:3.10` container on a free host port, kept for the whole test process.
fn start_rabbitmq() -> Result<String, String> {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::{GenericImage, ImageExt};
    let port = docker_support::free_port().map_err(|e| e.to_string())?;
    let request = GenericImage::new("rabbitmq", "3.10")
        .with_wait_for(WaitFor::message_on_stdout("Server startup complete"))
        .with_mapped_port(port, 5672.tcp())
        .with_startup_timeout(std::time::Duration::from_secs(180));
    docker_support::keep_running("rabbitmq", request)?;
    // guest may log in from anywhere in the official image.
    Ok(format!("rabbit://guest:guest@127.0.0.1:{port}/"))
}

/// The broker URL with `query` (`k=v&k2=v2`, may be empty) added.
pub fn url_with(base: &str, query: &str) -> String {
    if query.is_empty() {
        return base.to_owned();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// A demo RPC server on `topic` over `t` answers `add(40, 2)` with 42.
pub async fn a_call_is_answered(t: &Transport, topic: &str) {
    use messaging_core::rpc::{demo::demo_endpoint, RpcClient, RpcServer};
    let server = RpcServer::builder(t, messaging_core::Target::new(topic).with_server("s"))
        .endpoint(demo_endpoint())
        .build()
        .unwrap();
    server.start().await.unwrap();
    let client = RpcClient::new(t, messaging_core::Target::new(topic))
        .with_timeout(std::time::Duration::from_secs(20));
    let sum = client
        .call_json(
            &messaging_core::Context::new(),
            "add",
            serde_json::json!({"a": 40, "b": 2}),
        )
        .await
        .unwrap();
    assert_eq!(sum, serde_json::json!(42));
    server.stop_and_wait().await.unwrap();
}

/// A registry with the RabbitMQ driver only.
pub fn registry() -> DriverRegistry {
    let registry = DriverRegistry::new();
    registry.register(driver_rabbit::factory());
    registry
}

/// A transport on the broker, with `query` options added; each transport gets its
/// own control exchange when `exchange` is given, so that cases never see each
/// other's traffic.
pub fn transport(base: &str, query: &str) -> Transport {
    let url = TransportUrl::parse(&url_with(base, query)).expect("a valid RabbitMQ URL");
    Transport::open_with(&registry(), &url, &[]).expect("the RabbitMQ driver opens")
}
