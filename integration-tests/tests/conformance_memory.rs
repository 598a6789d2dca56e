//! The conformance suite on the memory driver.

use std::sync::Arc;

use async_trait::async_trait;
use integration_tests::conformance::DriverHarness;
use messaging_core::{DriverRegistry, Transport, TransportUrl};

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
}

fn harness() -> Option<Arc<dyn DriverHarness>> {
    let registry = DriverRegistry::new();
    registry.register(driver_memory::factory());
    Some(Arc::new(MemoryHarness { registry }))
}

integration_tests::conformance_tests!(harness());
