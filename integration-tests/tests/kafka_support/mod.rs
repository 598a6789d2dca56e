//! Finding a Kafka-protocol broker for the Kafka tests, and opening transports on it.
//!
//! In order: `KAFKA_BOOTSTRAP_SERVERS` (e.g. a Tansu broker started by
//! `scripts/tansu.sh start`); else a throw-away `apache/kafka` container through
//! testcontainers when a Docker daemon answers; else, with `MESSAGING_REQUIRE_BROKER=1`,
//! a failure saying what to set; otherwise the tests are skipped with a printed note.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::OnceLock;

use messaging_core::{DriverRegistry, Transport, TransportUrl};

pub use integration_tests::support::{broker_required, eventually, init_tracing, unique};

/// Client settings that keep tests fast and reliable on Tansu (docs: test-broker.md):
/// the same session timeout everywhere, quick heartbeats and metadata refreshes, and a
/// producer that reports a missing topic after 10 s rather than 300 s.
pub const TEST_CLIENT_SETTINGS: &str = "create_topics=true&delivery_timeout=10\
&rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=1000\
&rdkafka.consumer.max.poll.interval.ms=10000&rdkafka.topic.metadata.refresh.interval.ms=2000";

/// The bootstrap servers of the broker to test against, if any (see the module docs).
pub fn bootstrap_servers() -> Option<String> {
    static BROKER: OnceLock<Option<String>> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            if let Ok(servers) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
                if !servers.trim().is_empty() {
                    return Some(servers.trim().to_owned());
                }
            }
            if docker::daemon_answers() {
                match docker::start_kafka() {
                    Ok(servers) => return Some(servers),
                    Err(e) if broker_required() => {
                        panic!("MESSAGING_REQUIRE_BROKER=1: could not start Kafka in Docker: {e}")
                    }
                    Err(e) => eprintln!("Kafka tests: could not start Kafka in Docker: {e}"),
                }
            }
            if broker_required() {
                panic!(
                    "MESSAGING_REQUIRE_BROKER=1 but no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS=host:port \
                     (e.g. `scripts/tansu.sh start`) or make a Docker daemon available"
                );
            }
            eprintln!(
                "Kafka tests skipped: set KAFKA_BOOTSTRAP_SERVERS=host:port (e.g. from `scripts/tansu.sh start`) \
                 or run a Docker daemon; MESSAGING_REQUIRE_BROKER=1 makes this a failure"
            );
            None
        })
        .clone()
}

/// A `kafka://` URL for `servers` with the test settings, `extra` query pairs, and
/// those of `MESSAGING_KAFKA_EXTRA_QUERY` (to run the tests with other settings, e.g.
/// `topic_partitions=3&max_poll_records=5&compression=zstd`).
pub fn url(servers: &str, extra: &str) -> TransportUrl {
    let mut text = format!("kafka://{servers}?{TEST_CLIENT_SETTINGS}");
    let from_env = std::env::var("MESSAGING_KAFKA_EXTRA_QUERY").unwrap_or_default();
    for more in [extra, from_env.as_str()] {
        let more = more.trim_matches('&');
        if !more.is_empty() {
            text.push('&');
            text.push_str(more);
        }
    }
    TransportUrl::parse(&text).expect("valid test URL")
}

/// A transport on `servers` (own consumer group for pool-less listeners).
pub fn transport(servers: &str, extra: &str) -> Transport {
    let registry = DriverRegistry::new();
    registry.register(driver_kafka::factory());
    let group = unique("group");
    let url = url(servers, &format!("consumer_group={group}&{extra}"));
    Transport::open_with(&registry, &url, &[]).expect("kafka transport opens")
}

#[path = "../docker_support/mod.rs"]
mod docker_support;

mod docker {
    use std::time::Duration;

    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::{GenericImage, ImageExt};

    pub use super::docker_support::daemon_answers;
    use super::docker_support::{free_port, keep_running};

    /// Start a single-node KRaft `apache/kafka` on a fixed host port (advertised as
    /// such), kept for the whole test process.
    pub fn start_kafka() -> Result<String, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let request = GenericImage::new("apache/kafka", "3.9.0")
            .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
            .with_mapped_port(port, 9092.tcp())
            .with_env_var("KAFKA_NODE_ID", "1")
            .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
            .with_env_var("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
            .with_env_var(
                "KAFKA_ADVERTISED_LISTENERS",
                format!("PLAINTEXT://127.0.0.1:{port}"),
            )
            .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
            .with_env_var(
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            )
            .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
            .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .with_startup_timeout(Duration::from_secs(180));
        keep_running("kafka", request)?;
        Ok(format!("127.0.0.1:{port}"))
    }
}
