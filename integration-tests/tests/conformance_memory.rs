//! The conformance suite on the memory driver.

use std::sync::Arc;

use async_trait::async_trait;
use integration_tests::conformance::{DriverHarness, Harness};
use messaging_core::{Capabilities, DriverRegistry, Transport, TransportUrl};

#[derive(Debug)]
struct MemoryHarness {
    registry: DriverRegistry,
}

#[async_trait]
impl DriverHarness for MemoryHarness {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn transport(&self) -> Transport {
        let url = TransportUrl::parse("memory://conformance").unwrap();
        Transport::open_with(&self.registry, &url, &[]).unwrap()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            requeue: true,
            replays_history: false,
            rpc: true,
            ordered_per_partition: true,
            max_record_bytes: Some(driver_memory::DEFAULT_MAX_RECORD_BYTES),
            max_record_bytes_option: Some("max_record_bytes"),
        }
    }
}

fn harness() -> Option<Harness> {
    let registry = DriverRegistry::new();
    registry.register(driver_memory::factory());
    Some(Arc::new(MemoryHarness { registry }))
}

integration_tests::conformance_tests!(harness());
