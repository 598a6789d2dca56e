//! The conformance suite on the RabbitMQ driver, against a real RabbitMQ.
//!
//! The broker comes from `RABBITMQ_URL` (CI: a private node from
//! `scripts/rabbitmq.sh start`); without it the cases are skipped with a note, unless
//! `MESSAGING_REQUIRE_BROKER=1`, which makes that a failure.

mod rabbit_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use integration_tests::conformance::DriverHarness;
use messaging_core::Transport;

#[derive(Debug)]
struct RabbitHarness {
    url: String,
}

#[async_trait]
impl DriverHarness for RabbitHarness {
    fn name(&self) -> &'static str {
        "rabbit"
    }

    async fn transport(&self) -> Transport {
        // A limit a case can fill (RabbitMQ's own is 128 MiB).
        rabbit_support::transport(&self.url, "max_record_bytes=1000000")
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(10)
    }
}

fn harness() -> Option<Arc<dyn DriverHarness>> {
    rabbit_support::init_tracing();
    rabbit_support::broker_url()
        .map(|url| Arc::new(RabbitHarness { url }) as Arc<dyn DriverHarness>)
}

integration_tests::conformance_tests!(harness());
