//! The driver conformance suite.
//!
//! A driver passes when every case here passes through its [`DriverHarness`].
//! Cases that need a capability a driver does not claim (see
//! [`messaging_core::Capabilities`]) check the documented fallback instead of
//! being skipped silently. Topic and pool names are unique per case.
//!
//! ```text
//! // tests/conformance_mydriver.rs
//! integration_tests::conformance_tests!(Some(my_harness()));
//! ```

pub mod basic;
pub mod batch;
pub mod failures;
pub mod filters;
pub mod lifecycle;
pub mod pools;
pub mod rpc;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::{
    Capabilities, NotificationEndpoint, NotificationListener, Notifier, Target, Transport,
};

/// What a driver supplies to run the suite.
#[async_trait]
pub trait DriverHarness: Send + Sync + std::fmt::Debug + 'static {
    /// The driver's name, for messages.
    fn name(&self) -> &'static str;

    /// A new transport on the shared broker (tests close it when done).
    async fn transport(&self) -> Transport;

    /// What the driver claims.
    fn capabilities(&self) -> Capabilities;

    /// How long to wait for something that should arrive.
    fn patience(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// How long to keep watching for extra (duplicate or unwanted) deliveries.
    fn quiet_period(&self) -> Duration {
        Duration::from_millis(300)
    }

    /// Wait until listeners started in one pool have settled their membership
    /// (a Kafka group rebalance). Memory needs nothing.
    async fn pool_settled(&self) {}

    /// The largest payload the transport must carry in the large-payload case.
    fn large_payload_bytes(&self) -> usize {
        512 * 1024
    }
}

/// A shared harness.
pub type Harness = Arc<dyn DriverHarness>;

/// A unique topic (or pool) name for a case.
pub fn unique(case: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("conf-{case}-{}", &id[..10])
}

/// A notifier on `transport` for `topics`.
pub fn notifier(transport: &Transport, topics: &[&str]) -> Notifier {
    Notifier::builder()
        .publisher_id("conformance.publisher")
        .topics(topics.iter().map(|t| t.to_string()))
        .transport(transport)
        .build()
        .expect("notifier builds")
}

/// Start a listener on one topic with one endpoint, optionally in a pool.
pub async fn listen(
    transport: &Transport,
    topic: &str,
    pool: Option<&str>,
    endpoint: NotificationEndpoint,
) -> NotificationListener {
    let mut b = NotificationListener::builder(transport)
        .target(Target::new(topic))
        .endpoint(endpoint);
    if let Some(p) = pool {
        b = b.pool(p);
    }
    let l = b.build().expect("listener builds");
    l.start().await.expect("listener starts");
    l
}

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Run one case on a fresh runtime, with an overall deadline.
pub fn run_case(name: &str, harness: Option<Harness>, case: fn(Harness) -> CaseFuture) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let Some(harness) = harness else {
        eprintln!("conformance case {name}: no broker for this driver; skipped (set MESSAGING_REQUIRE_BROKER=1 to fail instead)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let limit = harness.patience() * 12;
    let driver = harness.name();
    runtime.block_on(async move {
        if tokio::time::timeout(limit, case(harness)).await.is_err() {
            panic!("conformance case {name} on {driver} did not finish within {limit:?}");
        }
    });
}

/// Declare one `#[test]` per conformance case for a harness expression of type
/// `Option<Arc<dyn DriverHarness>>` (`None`: the broker is absent; the cases are
/// reported as skipped).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            basic::send_and_receive,
            basic::delivery_receipt_resolves,
            basic::bulk_thousand_no_loss_no_duplicate,
            basic::each_priority_reaches_its_handler,
            basic::topic_isolation,
            basic::several_topics_at_once,
            basic::metadata_and_context_round_trip,
            basic::odd_payloads_round_trip,
            basic::large_payload,
            basic::fifty_concurrent_notifiers,
            pools::two_pools_each_get_everything,
            pools::pool_members_split_without_loss,
            filters::every_filter_field,
            failures::requeue_redelivers,
            failures::handler_error_requeues_when_allowed,
            failures::handler_error_acknowledged_without_requeue,
            failures::handler_panic_does_not_kill_listener,
            failures::foreign_records_are_skipped,
            failures::record_size_limit_is_exact,
            batch::batch_sizes,
            batch::batch_timeout,
            lifecycle::stop_drains_without_loss,
            lifecycle::lifecycle_is_idempotent,
            lifecycle::notify_after_close_is_closed_error,
            rpc::rpc_call_and_reply,
            rpc::rpc_cast,
            rpc::rpc_fanout_to_three_servers,
            rpc::rpc_directed_server,
            rpc::rpc_timeout_without_server,
            rpc::rpc_remote_error,
            rpc::rpc_hundred_concurrent_calls,
            rpc::rpc_stop_drains,
            rpc::rpc_capability_is_truthful
        );
    };
    (@cases $harness:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(stringify!($case), $harness, |h| {
                    Box::pin($crate::conformance::$module::$case(h))
                });
            }
        )*
    };
}
