//! The conformance suite on the Kafka driver, against a real Kafka-protocol broker.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (CI: a Tansu broker from
//! `scripts/tansu.sh start`), else from a Docker container (testcontainers) when a
//! daemon answers; without either the cases are skipped with a note, unless
//! `MESSAGING_REQUIRE_BROKER=1`, which makes that a failure. Tansu never creates
//! topics on its own: the transports here use `create_topics=true`.

mod kafka_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integration_tests::conformance::DriverHarness;
use messaging_core::Transport;

#[derive(Debug)]
struct KafkaHarness {
    servers: String,
}

#[async_trait]
impl DriverHarness for KafkaHarness {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn transport(&self) -> Transport {
        // Each transport gets its own default consumer group, so that pool-less
        // listeners of concurrent cases never rebalance one another.
        kafka_support::transport(&self.servers, "")
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(20)
    }

    fn quiet_period(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn pool_settled(&self) {
        // A second member of a group joins after ~3 s on Tansu, and the rebalance
        // settles about a second later (test-broker.md).
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
}

fn harness() -> Option<Arc<dyn DriverHarness>> {
    kafka_support::init_tracing();
    kafka_support::bootstrap_servers()
        .map(|servers| Arc::new(KafkaHarness { servers }) as Arc<dyn DriverHarness>)
}

integration_tests::conformance_tests!(harness());
