//! # driver-memory: an in-process broker (`memory://[name]`)
//!
//! ```text
//! memory://[instance][/vhost][?queue_capacity=N][&max_record_bytes=N]
//! ```
//!
//! The embedded default transport, and what an application's tests use instead of
//! Kafka: change the URL, keep the code. Each instance name is an independent
//! broker within the process (`memory://` is the unnamed one; `memory://a` and
//! `memory://b` never see each other's traffic).
//!
//! **Model.** Every (topic, pool) pair has a bounded queue: each pool gets its own
//! copy of every notification, and the members of one pool share that queue. A pool's
//! queue outlives its members (like a durable queue): what a stopped listener left
//! unacknowledged, and what was sent meanwhile, waits for the pool's next member.
//! Notifications sent to a topic nobody has subscribed to yet are kept for the first
//! pool that subscribes (unless it asks to start at the latest position).
//!
//! **Guarantees.** Sends are delivered once accepted (the receipt is already
//! complete); a full queue makes the sender wait (the core's send timeout) and then
//! fail with `ResourceExhausted`; requeued and unacknowledged records go back to their
//! pool; records pass through the same oslo envelope as on Kafka.
//!
//! **RPC.** Supported (calls, casts, fanout, directed servers; see `docs/rpc.md`):
//! a request a server took is answered at most once and never redelivered; requests
//! not yet taken wait for a server until their call's timeout; a stopping server
//! leaves what it did not take to the others.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `queue_capacity` | 100000 | records one (topic, pool) queue holds before senders wait |
//! | `max_record_bytes` | 1000000 | largest record accepted (Kafka's default `message.max.bytes`); a larger one is refused with `InvalidArgument`; 0: no limit |

mod broker;
mod queue;
mod rpc;
mod subscription;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{
    Capabilities, CloseReport, Dialect, Driver, DriverFactory, OutgoingRecord, PendingDelivery,
    Subscription, SubscriptionSpec,
};
use messaging_core::observability::{ConnectionState, ConnectionTracker, TransportHealth};
use messaging_core::options::{DriverOptions, OptionKind, OptionSpec};
use messaging_core::rpc::{RpcDriver, RpcOperation};
use messaging_core::{DriverRegistry, Error, Result, TransportUrl};

pub use broker::MemoryBroker;

/// The pool a listener joins when it names none.
pub const DEFAULT_POOL: &str = "default";

/// The default record size limit: Kafka's default `message.max.bytes`, so that an
/// application's tests on memory refuse what production on Kafka would refuse.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_000_000;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "queue_capacity",
        kind: OptionKind::Int {
            min: 1,
            max: 100_000_000,
        },
        default: Some("100000"),
        help: "records one (topic, pool) queue holds before senders wait",
    },
    OptionSpec {
        name: "max_record_bytes",
        kind: OptionKind::Int {
            min: 0,
            max: 2_147_483_647,
        },
        default: Some("1000000"),
        help: "largest record accepted, in bytes, as Kafka's message.max.bytes (0: no limit)",
    },
];

/// Opens `memory://` drivers.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryDriverFactory;

impl DriverFactory for MemoryDriverFactory {
    fn scheme(&self) -> &'static str {
        "memory"
    }

    fn option_specs(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn open(&self, url: &TransportUrl, options: DriverOptions) -> Result<Arc<dyn Driver>> {
        let name = url
            .hosts()
            .first()
            .map(|h| h.hostname.clone())
            .unwrap_or_default();
        let capacity = options.int("queue_capacity").unwrap_or(100_000) as usize;
        let max_record_bytes = match options.int("max_record_bytes") {
            Some(0) => None,
            Some(n) => Some(n as usize),
            None => Some(DEFAULT_MAX_RECORD_BYTES),
        };
        let closed = Arc::new(AtomicBool::new(false));
        Ok(Arc::new(MemoryDriver {
            broker: MemoryBroker::instance(&name, capacity),
            rpc: Arc::new(rpc::MemoryRpc::new(&name, capacity, closed.clone())),
            closed,
            max_record_bytes,
            connection: ConnectionTracker::new(ConnectionState::Connected),
        }))
    }
}

/// The factory, for registries.
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(MemoryDriverFactory)
}

/// Add the memory driver to the process-wide registry.
pub fn register() {
    DriverRegistry::global().register(factory());
}

/// A driver on one in-process broker instance.
#[derive(Debug)]
pub struct MemoryDriver {
    broker: Arc<MemoryBroker>,
    rpc: Arc<rpc::MemoryRpc>,
    closed: Arc<AtomicBool>,
    max_record_bytes: Option<usize>,
    /// Always connected: the broker is in the process.
    connection: ConnectionTracker,
}

impl MemoryDriver {
    /// The broker instance underneath (for inspection in tests).
    pub fn broker(&self) -> &Arc<MemoryBroker> {
        &self.broker
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            requeue: true,
            replays_history: false,
            rpc: true,
            ordered_per_partition: true,
            max_record_bytes: self.max_record_bytes,
            dialect: Dialect::Kafka,
            max_record_bytes_option: Some("max_record_bytes"),
        }
    }

    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        self.broker.publish_batch(batch)
    }

    async fn subscribe(&self, spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("memory transport"));
        }
        Ok(Box::new(self.broker.subscribe(&spec, self.closed.clone())))
    }

    async fn close(&self, _timeout: Duration) -> Result<CloseReport> {
        self.closed.store(true, Ordering::Release);
        Ok(CloseReport::default())
    }

    fn rpc(&self, _operation: RpcOperation) -> Result<Arc<dyn RpcDriver>> {
        Ok(self.rpc.clone())
    }

    fn health(&self) -> TransportHealth {
        self.connection.health()
    }
}
