//! The driver conformance suite.
//!
//! A driver passes when every case here passes through its [`DriverHarness`].
//! The capabilities come from the driver itself (`Driver::capabilities` of a
//! transport the harness opens), never from the harness. A case that needs a
//! capability the driver does not claim, or that the harness says its environment
//! cannot serve ([`DriverHarness::cannot_serve`]), is **skipped with the reason**:
//! its test prints `SKIPPED <case> on <driver>: <reason>` past libtest's output
//! capture, and the target's `zz_conformance_summary` test prints how many cases
//! are skipped and why. Cases whose capability has a documented fallback check the
//! fallback instead (without requeue, a refused notification is acknowledged;
//! without RPC, every RPC entry point refuses with `Unsupported`). Topic and pool
//! names are unique per case.
//!
//! One list, in [`__conformance_cases!`](crate::__conformance_cases), generates both
//! the tests and [`CASES`]; a test fails when a public case function is missing from it.
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
pub mod subscription;

use crate::support::runtime;
use std::future::Future;
use std::io::Write;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::{
    Capabilities, NotificationEndpoint, NotificationListener, Notifier, Target, Transport,
};

pub use crate::support::unique;

/// What a driver supplies to run the suite.
#[async_trait]
pub trait DriverHarness: Send + Sync + std::fmt::Debug + 'static {
    /// The driver's name, for messages.
    fn name(&self) -> &'static str;

    /// A new transport on the shared broker (tests close it when done).
    async fn transport(&self) -> Transport;

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

    /// Why this harness's environment cannot serve `case` although the driver
    /// claims what it needs (for example a mock broker that lacks an API); `None`:
    /// it can. The case is then skipped with this reason.
    fn cannot_serve(&self, _case: &str) -> Option<&'static str> {
        None
    }
}

/// The harness a case runs with: the driver's [`DriverHarness`] and the
/// capabilities its driver states.
#[derive(Debug, Clone)]
pub struct Harness {
    driver: Arc<dyn DriverHarness>,
    capabilities: Capabilities,
}

impl Harness {
    /// Ask the driver (through a transport opened and closed at once) what it claims.
    pub async fn probe(driver: Arc<dyn DriverHarness>) -> Harness {
        let t = driver.transport().await;
        let capabilities = t.driver().capabilities();
        t.close(driver.patience())
            .await
            .expect("the probe transport closes");
        Harness {
            driver,
            capabilities,
        }
    }

    /// What the driver claims (`Driver::capabilities`).
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Why `case` is skipped on this driver, if it is.
    pub fn skip_reason(&self, case: &Case) -> Option<String> {
        if let Some(need) = case.needs.iter().find(|n| !n.claimed(&self.capabilities)) {
            return Some(format!(
                "needs Capabilities::{}, which the driver does not claim",
                need.flag()
            ));
        }
        self.driver
            .cannot_serve(case.name)
            .map(|why| format!("the harness cannot serve it: {why}"))
    }
}

impl Deref for Harness {
    type Target = dyn DriverHarness;

    fn deref(&self) -> &Self::Target {
        self.driver.as_ref()
    }
}

/// A capability a case cannot run without (see [`Capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// [`Capabilities::requeue`].
    Requeue,
    /// [`Capabilities::replays_history`].
    ReplaysHistory,
    /// [`Capabilities::ordered_per_partition`].
    OrderedPerPartition,
}

impl Need {
    /// Whether `capabilities` claim it.
    pub fn claimed(self, capabilities: &Capabilities) -> bool {
        match self {
            Need::Requeue => capabilities.requeue,
            Need::ReplaysHistory => capabilities.replays_history,
            Need::OrderedPerPartition => capabilities.ordered_per_partition,
        }
    }

    /// The field of [`Capabilities`] it reads.
    pub fn flag(self) -> &'static str {
        match self {
            Need::Requeue => "requeue",
            Need::ReplaysHistory => "replays_history",
            Need::OrderedPerPartition => "ordered_per_partition",
        }
    }
}

/// The future of one running case.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One case of the suite, as listed in [`crate::__conformance_cases!`].
#[derive(Debug)]
pub struct Case {
    /// The case function's name (and its test's).
    pub name: &'static str,
    /// The module of `conformance` it lives in.
    pub module: &'static str,
    /// What it cannot run without.
    pub needs: &'static [Need],
    /// Runs it.
    pub run: fn(Harness) -> CaseFuture,
}

/// Every case, from the one list that also generates the tests.
pub static CASES: &[Case] = crate::__conformance_cases!(table);

/// The case called `name`.
pub fn case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

/// Public case functions (`pub async fn NAME(h: Harness)`) of the conformance
/// modules that [`CASES`] does not list, as `module::name`.
pub fn unlisted_cases() -> Vec<String> {
    let sources = [
        ("basic", include_str!("basic.rs")),
        ("batch", include_str!("batch.rs")),
        ("failures", include_str!("failures.rs")),
        ("filters", include_str!("filters.rs")),
        ("lifecycle", include_str!("lifecycle.rs")),
        ("pools", include_str!("pools.rs")),
        ("rpc", include_str!("rpc.rs")),
        ("subscription", include_str!("subscription.rs")),
    ];
    let mut missing = Vec::new();
    for (module, text) in sources {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            let Some((name, args)) = rest.split_once('(') else {
                continue;
            };
            let listed = CASES.iter().any(|c| c.module == module && c.name == name);
            if args.starts_with("h: Harness)") && !listed {
                missing.push(format!("{module}::{name}"));
            }
        }
    }
    missing
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

/// Cases of this process that are running now (the summary waits for them).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Running;

impl Running {
    fn enter() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Print a line past libtest's output capture (which takes `print!` and
/// `eprint!`, not direct writes), so that skips show in a plain `cargo test`.
fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What the test target calls its driver when there is no harness to ask.
fn driver_label(harness: &Option<Arc<dyn DriverHarness>>, target: &str) -> String {
    match harness {
        Some(h) => h.name().to_owned(),
        None => format!("the driver of {target}"),
    }
}

const NO_BROKER: &str =
    "no broker for this driver (set MESSAGING_REQUIRE_BROKER=1 to fail instead)";

/// Run the listed case `name` on a fresh runtime, with an overall deadline; or
/// report it skipped, with the reason. `target` names the test target.
pub fn run_case(name: &str, target: &str, harness: Option<Arc<dyn DriverHarness>>) {
    let _running = Running::enter();
    crate::support::init_tracing();
    let case = case(name).unwrap_or_else(|| panic!("{name} is not a listed conformance case"));
    let label = driver_label(&harness, target);
    let Some(driver) = harness else {
        announce(&format!("SKIPPED {name} on {label}: {NO_BROKER}"));
        return;
    };
    runtime().block_on(async move {
        let h = Harness::probe(driver).await;
        if let Some(reason) = h.skip_reason(case) {
            announce(&format!("SKIPPED {name} on {label}: {reason}"));
            return;
        }
        let limit = h.patience() * 12;
        if tokio::time::timeout(limit, (case.run)(h)).await.is_err() {
            panic!("conformance case {name} on {label} did not finish within {limit:?}");
        }
    });
}

/// The summary of a test target: fails when a case function is not listed;
/// otherwise waits for the cases running in this process, then prints how many
/// of the listed cases are skipped on this driver, and why.
pub fn summary(target: &str, harness: Option<Arc<dyn DriverHarness>>) {
    let unlisted = unlisted_cases();
    assert!(
        unlisted.is_empty(),
        "case functions missing from __conformance_cases!: {unlisted:?}"
    );
    crate::support::init_tracing();
    let label = driver_label(&harness, target);
    let skipped: Vec<(&str, String)> = match harness {
        None => CASES
            .iter()
            .map(|c| (c.name, NO_BROKER.to_owned()))
            .collect(),
        Some(driver) => runtime().block_on(async move {
            let h = Harness::probe(driver).await;
            CASES
                .iter()
                .filter_map(|c| h.skip_reason(c).map(|r| (c.name, r)))
                .collect()
        }),
    };
    // libtest starts tests in name order; this one sorts last, so the others have
    // started by now. Let them finish, so that this is the closing report.
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while RUNNING.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut report = format!(
        "conformance on {label} ({target}): {} cases listed, {} to run, {} skipped",
        CASES.len(),
        CASES.len() - skipped.len(),
        skipped.len()
    );
    for (name, reason) in &skipped {
        report.push_str(&format!("\n  SKIPPED {name}: {reason}"));
    }
    announce(&report);
}

/// The list of cases, each `module::case [needs]`, handed to
/// [`__conformance_expand!`](crate::__conformance_expand) with a mode: `(table)`
/// builds [`CASES`], `(tests TARGET, HARNESS)` declares the tests.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($($mode:tt)+) => {
        $crate::__conformance_expand! { ($($mode)+)
            basic::send_and_receive [],
            basic::delivery_receipt_resolves [],
            basic::bulk_thousand_no_loss_no_duplicate [],
            basic::each_priority_reaches_its_handler [],
            basic::topic_isolation [],
            basic::several_topics_at_once [],
            basic::metadata_and_context_round_trip [],
            basic::odd_payloads_round_trip [],
            basic::large_payload [],
            basic::fifty_concurrent_notifiers [],
            pools::two_pools_each_get_everything [],
            pools::pool_members_split_without_loss [],
            filters::every_filter_field [],
            failures::requeue_redelivers [],
            failures::handler_error_requeues_when_allowed [Requeue],
            failures::handler_error_acknowledged_without_requeue [],
            failures::handler_panic_does_not_kill_listener [],
            failures::foreign_records_are_skipped [],
            failures::foreign_records_are_dead_lettered_then_acknowledged [],
            failures::record_size_limit_is_exact [],
            batch::batch_sizes [],
            batch::batch_timeout [],
            lifecycle::stop_drains_without_loss [],
            lifecycle::lifecycle_is_idempotent [],
            lifecycle::notify_after_close_is_closed_error [],
            rpc::rpc_call_and_reply [],
            rpc::rpc_cast [],
            rpc::rpc_fanout_to_three_servers [],
            rpc::rpc_directed_server [],
            rpc::rpc_timeout_without_server [],
            rpc::rpc_remote_error [],
            rpc::rpc_hundred_concurrent_calls [],
            rpc::rpc_stop_drains [],
            rpc::rpc_capability_is_truthful [],
            subscription::receive_ack_and_close [],
            subscription::unacknowledged_records_come_back [],
            subscription::requeue_delivers_again [Requeue],
            subscription::receive_is_cancel_safe [],
            subscription::topic_that_does_not_exist [],
            subscription::start_earliest_takes_what_was_sent [],
            subscription::start_latest_skips_what_was_sent [],
            subscription::start_at_a_timestamp [ReplaysHistory],
            subscription::new_pool_replays_history [ReplaysHistory],
            subscription::order_within_a_partition [OrderedPerPartition],
        }
    };
}

/// Expands [`__conformance_cases!`](crate::__conformance_cases) in one mode.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_expand {
    ((table) $($module:ident :: $case:ident [$($need:ident),*]),* $(,)?) => {
        &[$(
            $crate::conformance::Case {
                name: stringify!($case),
                module: stringify!($module),
                needs: &[$($crate::conformance::Need::$need),*],
                run: |h| Box::pin($crate::conformance::$module::$case(h)),
            }
        ),*]
    };
    ((tests $target:expr, $harness:expr) $($module:ident :: $case:ident [$($need:ident),*]),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case(stringify!($case), $target, $harness);
            }
        )*

        /// How many listed cases are skipped on this driver, and why (named to sort,
        /// and so to start, after every case).
        #[test]
        fn zz_conformance_summary() {
            $crate::conformance::summary($target, $harness);
        }
    };
}

/// Declare one `#[test]` per conformance case, and the summary test
/// `zz_conformance_summary`, for a harness expression of type
/// `Option<Arc<dyn DriverHarness>>` (`None`: the broker is absent; every case is
/// reported as skipped).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_cases!(tests env!("CARGO_CRATE_NAME"), $harness);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_function_is_listed_once() {
        assert_eq!(unlisted_cases(), Vec::<String>::new());
        let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len(), "a case is listed twice");
    }
}
