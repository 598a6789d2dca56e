//! Faults on a real RabbitMQ: the broker closes every connection, the broker is
//! killed (-9) and restarted, a listener or an RPC server process is killed (-9)
//! mid-work, reply and fanout queues lose their consumer and expire, and a URL's first
//! host is dead.
//!
//! Needs `RABBITMQ_URL`, and for the cases that act on the node or read its queues
//! `MESSAGING_RABBIT_SCRIPT` (`scripts/rabbitmq.sh`) and `RABBITMQ_INSTANCE` (the node's
//! name for that script), as the README's test command exports them; otherwise skipped
//! with a note (a failure under `MESSAGING_REQUIRE_BROKER=1`). The cases take turns:
//! some disturb the node, some count its queues. The processes killed are this test
//! binary run again as one of the ignored `child_*` tests (as `kafka_faults.rs` does).

mod interop_support;
mod rabbit_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::support::{eventually, index_of, unique, Collector};
use interop_support::Scratch;
use messaging_core::rpc::demo::demo_endpoint;
use messaging_core::rpc::{RemoteError, RpcClient, RpcEndpoint, RpcServer};
use messaging_core::{
    Context, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener, Notifier,
    Retry, StartPosition, Target, Transport,
};
use serde_json::{json, Value};

/// One case at a time: each restarts the node or closes its connections.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Node {
    url: String,
    script: String,
    name: String,
}

fn node() -> Option<Node> {
    rabbit_support::init_tracing();
    let url = rabbit_support::broker_url()?;
    match (
        std::env::var("MESSAGING_RABBIT_SCRIPT"),
        std::env::var("RABBITMQ_INSTANCE"),
    ) {
        (Ok(script), Ok(name)) if !script.is_empty() && !name.is_empty() => {
            Some(Node { url, script, name })
        }
        _ if rabbit_support::broker_required() => panic!(
            "MESSAGING_REQUIRE_BROKER=1 but MESSAGING_RABBIT_SCRIPT or RABBITMQ_INSTANCE is not set"
        ),
        _ => {
            eprintln!(
                "RabbitMQ fault tests skipped: they need MESSAGING_RABBIT_SCRIPT=scripts/rabbitmq.sh \
                 and RABBITMQ_INSTANCE (the node's --name), as scripts/test-all.sh sets them"
            );
            None
        }
    }
}

impl Node {
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("bash")
            .arg(&self.script)
            .arg(args[0])
            .args(["--name", &self.name])
            .args(&args[1..])
            .output()
            .await
            .expect("the broker script runs");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's queues (vhost `/`): per queue, the `columns` asked for
    /// (`name` first), as rabbitmqctl prints them.
    async fn queues(&self, columns: &[&str]) -> BTreeMap<String, Vec<String>> {
        let mut args = vec!["ctl", "list_queues", "-q", "--no-table-headers"];
        args.extend_from_slice(columns);
        self.run(&args)
            .await
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut fields = l.split('\t').map(str::to_owned);
                let name = fields.next().unwrap_or_default();
                (name, fields.collect())
            })
            .collect()
    }
}

/// A transport that retries sends across a reconnect, with a durable exchange and
/// durable queues of its own (they and their persistent messages survive a broker
/// restart; the other tests' `openstack` exchange is not durable).
fn transport(node: &Node) -> Transport {
    rabbit_support::transport(&node.url, DURABLE)
}

const DURABLE: &str = "control_exchange=faults-durable&amqp_durable_queues=true&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&rabbit_interval_max=1&kombu_reconnect_delay=0";

fn notifier(t: &Transport, topic: &str) -> Notifier {
    Notifier::builder()
        .publisher_id("faults")
        .topic(topic)
        .retry(Retry::Limited(20))
        .transport(t)
        .build()
        .unwrap()
}

/// Send `ids` and wait until each is confirmed by the broker.
async fn send_confirmed(n: &Notifier, ids: std::ops::Range<u32>) {
    for i in ids {
        n.info(&Context::new(), "fault.event", &json!({"i": i}))
            .await
            .unwrap_or_else(|e| panic!("notification {i} was not accepted: {e}"))
            .delivered()
            .await
            .unwrap_or_else(|e| panic!("notification {i} was not confirmed: {e}"));
    }
}

/// How many times each `i` arrived.
fn counts(c: &Collector) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for n in c.all() {
        let i = n.payload.to_value().unwrap()["i"].as_u64().unwrap();
        *out.entry(i).or_default() += 1;
    }
    out
}

async fn listener(t: &Transport, topic: &str, c: &Collector) -> NotificationListener {
    let l = NotificationListener::builder(t)
        .target(Target::new(topic))
        .endpoint(c.endpoint())
        .start_position(StartPosition::Earliest)
        .build()
        .unwrap();
    l.start().await.unwrap();
    l
}

/// Wait until every id of `0..n` arrived (at least once); returns how often each did.
async fn all_arrive(c: &Collector, n: u64, why: &str) -> BTreeMap<u64, usize> {
    integration_tests::support::eventually(Duration::from_secs(30), || counts(c).len() as u64 == n)
        .await;
    let got = counts(c);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "{why}"
    );
    got
}

/// A listener gets 20 confirmed notifications; then the node is disturbed by
/// `rabbitmqctl` with `ctl_args(topic)`; 20 more are sent (each confirmed) and every
/// one of the 40 arrives: listener and notifier recovered by themselves.
async fn listener_and_notifier_recover_from(
    what: &str,
    ctl_args: impl FnOnce(&str) -> Vec<String>,
    why: &str,
) {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = transport(&node);
    let topic = unique(what);
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..20).await;
    assert_eq!(c.wait_for(20, Duration::from_secs(20)).await, 20);
    let args = ctl_args(&topic);
    let mut run: Vec<&str> = vec!["ctl"];
    run.extend(args.iter().map(String::as_str));
    node.run(&run).await;
    send_confirmed(&n, 20..40).await;
    all_arrive(&c, 40, why).await;
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_closed_by_the_broker_listener_and_notifier_recover() {
    listener_and_notifier_recover_from(
        "fault-close",
        |_| vec!["close_all_connections".into(), "fault test".into()],
        "every confirmed notification arrives after the reconnect",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_no_confirmed_notification() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = transport(&node);
    let topic = unique("fault-restart");
    let n = notifier(&t, &topic);
    // Confirmed before the kill: in a durable queue, persistent.
    send_confirmed(&n, 0..50).await;
    node.run(&["restart"]).await;
    // The notifier reconnects on its next send.
    send_confirmed(&n, 50..60).await;
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let got = all_arrive(
        &c,
        60,
        "every notification confirmed before or after the restart arrives",
    )
    .await;
    assert!(
        got.values().all(|&k| k == 1),
        "nothing was redelivered: {got:?}"
    );
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

/// The broker cancels the listener's consumer; the notifier's declaration is stale:
/// a returned notification is declared again and resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_by_an_operator_is_declared_again_by_listener_and_notifier() {
    listener_and_notifier_recover_from(
        "fault-deleted",
        |topic| vec!["delete_queue".into(), format!("{topic}.info")],
        "what was sent after the deletion arrives",
    )
    .await;
}

/// Puts the node's memory watermark back when dropped, even after a failed assertion.
struct WatermarkBack<'a>(&'a Node);

impl Drop for WatermarkBack<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.0.script)
            .args([
                "ctl",
                "--name",
                &self.0.name,
                "set_vm_memory_high_watermark",
                "0.4",
            ])
            .output();
    }
}

/// The broker stops confirming (a memory alarm blocks every publisher): a transport
/// holds at most `max_unconfirmed` messages waiting for their confirm; the next send
/// waits out its send timeout and fails with `ResourceExhausted` naming the option;
/// once the alarm clears, the messages it held are confirmed and arrive, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_confirming_holds_at_most_max_unconfirmed_messages() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let t = rabbit_support::transport(&node.url, &format!("{DURABLE}&max_unconfirmed=3"))
        .with_send_timeout(Duration::from_millis(1500));
    let topic = unique("fault-unconfirmed");
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..1).await;
    assert_eq!(c.wait_for(1, Duration::from_secs(20)).await, 1);

    node.run(&["ctl", "set_vm_memory_high_watermark", "0"])
        .await;
    let back = WatermarkBack(&node);
    let mut held = Vec::new();
    for i in 1..4 {
        let receipt = n
            .info(&Context::new(), "fault.event", &json!({"i": i}))
            .await
            .unwrap_or_else(|e| panic!("notification {i} was not accepted: {e}"));
        held.push(receipt);
    }
    let started = Instant::now();
    let refused = n
        .info(&Context::new(), "fault.event", &json!({"i": 99}))
        .await
        .expect_err("a fourth message waiting for its confirm is refused");
    assert_eq!(refused.kind(), &ErrorKind::ResourceExhausted, "{refused}");
    assert!(
        format!("{refused:#}").contains("max_unconfirmed"),
        "the error names the option: {refused:#}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "it waited out the send timeout first ({:?})",
        started.elapsed()
    );
    drop(back);

    for (i, receipt) in held.into_iter().enumerate() {
        receipt
            .delivered()
            .await
            .unwrap_or_else(|e| panic!("notification {} was not confirmed: {e}", i + 1));
    }
    send_confirmed(&n, 4..5).await;
    let got = all_arrive(
        &c,
        5,
        "what was accepted while the broker was blocked arrives",
    )
    .await;
    assert!(got.values().all(|&k| k == 1), "nothing twice: {got:?}");
    assert!(!got.contains_key(&99), "the refused one was never sent");
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

// ---------------------------------------------------------------------------------
// Processes killed mid-work. The child is this test binary run again as one ignored
// `child_*` test, with its orders (JSON) in CHILD_ENV; it writes what it did, one line
// at a time, to the log file named there.

const CHILD_ENV: &str = "RABBIT_FAULTS_CHILD";

/// The orders of a child process playing `role`, if this process is one.
fn child_orders(role: &str) -> Option<Value> {
    let orders: Value = serde_json::from_str(&std::env::var(CHILD_ENV).ok()?).ok()?;
    (orders["role"] == role).then_some(orders)
}

/// Run this test binary again as the ignored test `entry` with `orders`; killed
/// (SIGKILL) when dropped.
fn spawn_child(entry: &str, orders: &Value) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            entry,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, orders.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the child {entry}: {e}"))
}

/// A child's log: whole lines, appended (one write each).
struct ChildLog(Mutex<std::fs::File>);

impl ChildLog {
    fn open(orders: &Value) -> Arc<Self> {
        let path = orders["log"].as_str().expect("a log path");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Arc::new(ChildLog(Mutex::new(file)))
    }

    fn line(&self, line: impl AsRef<str>) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(format!("{}\n", line.as_ref()).as_bytes())
            .expect("the child writes its log");
    }
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The numbers of the log lines `<word> <n>`.
fn logged(lines: &[String], word: &str) -> BTreeSet<i64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(word)?.strip_prefix(' ')?.parse().ok())
        .collect()
}

async fn wait_for_line(path: &Path, line: &str, child: &mut tokio::process::Child) {
    let found = eventually(Duration::from_secs(60), || {
        log_lines(path).iter().any(|l| l == line)
    })
    .await;
    if !found {
        let status = child.try_wait();
        panic!(
            "the child never logged {line:?} (status {status:?}): {:?}",
            log_lines(path)
        );
    }
}

/// The listener that `a_killed_listener_hands_what_it_had_not_acknowledged_to_its_pool`
/// kills: it finishes the notifications below `held_from` and holds the others in its
/// handler forever (never acknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a_killed_listener_hands_what_it_had_not_acknowledged_to_its_pool"]
async fn child_holding_listener() {
    let Some(orders) = child_orders("holding-listener") else {
        return;
    };
    let log = ChildLog::open(&orders);
    let held_from = orders["held_from"].as_i64().unwrap();
    let t = rabbit_support::transport(orders["url"].as_str().unwrap(), "");
    let endpoint = {
        let log = log.clone();
        NotificationEndpoint::from_fn(move |n| {
            let log = log.clone();
            async move {
                let i = index_of(&n).unwrap_or(-1);
                log.line(format!("got {i}"));
                if i >= held_from {
                    std::future::pending::<()>().await;
                }
                log.line(format!("done {i}"));
                Ok(HandlerOutcome::Handled)
            }
        })
    };
    let l = NotificationListener::builder(&t)
        .target(Target::new(orders["topic"].as_str().unwrap()))
        .pool(orders["pool"].as_str().unwrap())
        .endpoint(endpoint)
        .max_concurrency(100)
        .build()
        .unwrap();
    l.start().await.unwrap();
    log.line("ready");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_hands_what_it_had_not_acknowledged_to_its_pool() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    const TOTAL: i64 = 50;
    const HELD_FROM: i64 = 20;
    let url = rabbit_support::url_with(&node.url, DURABLE);
    let topic = unique("fault-killed-listener");
    let pool = unique("fault-pool");
    let scratch = Scratch::new();
    let log = scratch.path("child.log");
    let mut victim = spawn_child(
        "child_holding_listener",
        &json!({"role": "holding-listener", "url": url, "topic": topic, "pool": pool,
                "held_from": HELD_FROM, "log": log}),
    );
    // Its pool's queue exists (bound) once it logged "ready".
    wait_for_line(&log, "ready", &mut victim).await;
    let t = transport(&node);
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..TOTAL as u32).await;
    // All of them reach the victim (nobody else is in the pool yet); it finishes, and
    // so acknowledges, those below HELD_FROM.
    let all_in = eventually(Duration::from_secs(30), || {
        let lines = log_lines(&log);
        logged(&lines, "got").len() == TOTAL as usize
            && logged(&lines, "done").len() == HELD_FROM as usize
    })
    .await;
    let lines = log_lines(&log);
    assert!(all_in, "the victim did not get everything: {lines:?}");
    assert_eq!(logged(&lines, "done"), (0..HELD_FROM).collect());
    // The broker's view: the held ones, and only those, unacknowledged.
    // (Generous: under load one rabbitmqctl call takes seconds.)
    let settled = eventually_async(Duration::from_secs(60), || async {
        node.queues(&["name", "messages_ready", "messages_unacknowledged"])
            .await
            .get(&pool)
            .is_some_and(|c| c[..] == ["0".to_owned(), (TOTAL - HELD_FROM).to_string()])
    })
    .await;
    assert!(
        settled,
        "the pool's queue should hold {} unacknowledged: {:?}",
        TOTAL - HELD_FROM,
        node.queues(&["name", "messages_ready", "messages_unacknowledged"])
            .await
            .get(&pool)
    );
    // A second member joins; it gets nothing while the victim holds everything.
    let heir = Collector::new();
    let l = NotificationListener::builder(&t)
        .target(Target::new(&topic))
        .pool(&pool)
        .endpoint(heir.endpoint())
        .build()
        .unwrap();
    l.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(heir.is_empty(), "the heir got something before the kill");
    victim.kill().await.expect("kill -9 the victim");
    let held = (TOTAL - HELD_FROM) as usize;
    assert_eq!(heir.wait_for(held, Duration::from_secs(30)).await, held);
    // Anything more would be a redelivery of an acknowledged one: give it time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = counts(&heir);
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        got.keys().map(|&i| i as i64).collect::<BTreeSet<_>>(),
        (HELD_FROM..TOTAL).collect(),
        "the heir gets exactly what the victim had not acknowledged"
    );
    assert!(got.values().all(|&k| k == 1), "each once: {got:?}");
}

/// [`eventually`] with an async check.
async fn eventually_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The RPC server that `an_rpc_server_killed_mid_call_leaves_the_caller_a_timeout` kills:
/// its `hold` logs "started" and sleeps a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of an_rpc_server_killed_mid_call_leaves_the_caller_a_timeout"]
async fn child_sleepy_rpc_server() {
    let Some(orders) = child_orders("sleepy-rpc-server") else {
        return;
    };
    let log = ChildLog::open(&orders);
    let t = rabbit_support::transport(orders["url"].as_str().unwrap(), "");
    let hold = {
        let log = log.clone();
        RpcEndpoint::new().method("hold", move |_ctx: Context, _args: Value| {
            let log = log.clone();
            async move {
                log.line("started");
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, RemoteError>(json!("too late"))
            }
        })
    };
    let target = Target::new(orders["topic"].as_str().unwrap()).with_server("doomed");
    let server = RpcServer::builder(&t, target)
        .endpoint(hold)
        .build()
        .unwrap();
    server.start().await.unwrap();
    log.line("ready");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_server_killed_mid_call_leaves_the_caller_a_timeout() {
    let Some(url) = rabbit_support::broker_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    let topic = unique("fault-killed-server");
    let scratch = Scratch::new();
    let log = scratch.path("child.log");
    let mut doomed = spawn_child(
        "child_sleepy_rpc_server",
        &json!({"role": "sleepy-rpc-server", "url": url, "topic": topic, "log": log}),
    );
    wait_for_line(&log, "ready", &mut doomed).await;
    let t = rabbit_support::transport(&url, "");
    const TIMEOUT: Duration = Duration::from_secs(4);
    let client = RpcClient::new(&t, Target::new(&topic)).with_timeout(TIMEOUT);
    let started = Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call_json(&Context::new(), "hold", json!({})).await }
    });
    wait_for_line(&log, "started", &mut doomed).await;
    doomed.kill().await.expect("kill -9 the server");
    // Another server on the topic answers `hold` at once: the request must not reach
    // it (it was acknowledged when the killed server took it: at most once).
    let rescuer = RpcServer::builder(&t, Target::new(&topic).with_server("rescuer"))
        .endpoint(
            RpcEndpoint::new().method("hold", |_ctx: Context, _args: Value| async {
                Ok::<_, RemoteError>(json!("rescued"))
            }),
        )
        .build()
        .unwrap();
    rescuer.start().await.unwrap();
    let outcome = tokio::time::timeout(TIMEOUT * 3, call)
        .await
        .expect("the call hangs after its server was killed")
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("call to a killed server: {outcome:?} after {elapsed:?}");
    let err = outcome.expect_err("a call whose server died has no result");
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{err}");
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(100)
            && elapsed < TIMEOUT + Duration::from_secs(2),
        "the timeout came after {elapsed:?}, not about {TIMEOUT:?}"
    );
    assert_eq!(
        rescuer.counters().received,
        0,
        "the request was delivered again"
    );
    // The client and the topic still work.
    assert_eq!(
        client
            .call_json(&Context::new(), "hold", json!({}))
            .await
            .unwrap(),
        json!("rescued")
    );
    rescuer.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}

/// The process that `reply_and_fanout_queues_expire_after_their_consumer_is_killed`
/// kills: an RPC server (so a fanout queue) and a client that called it (so a reply
/// queue), both with `rabbit_transient_queues_ttl=2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of reply_and_fanout_queues_expire_after_their_consumer_is_killed"]
async fn child_rpc_server_and_client() {
    let Some(orders) = child_orders("rpc-server-and-client") else {
        return;
    };
    let log = ChildLog::open(&orders);
    let t = rabbit_support::transport(orders["url"].as_str().unwrap(), "");
    let topic = orders["topic"].as_str().unwrap();
    let server = RpcServer::builder(&t, Target::new(topic).with_server("short-lived"))
        .endpoint(demo_endpoint())
        .build()
        .unwrap();
    server.start().await.unwrap();
    let client = RpcClient::new(&t, Target::new(topic)).with_timeout(Duration::from_secs(20));
    let pong = client.call_json(&Context::new(), "ping", Value::Null).await;
    assert_eq!(pong.unwrap(), json!("pong"));
    log.line("ready");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_and_fanout_queues_expire_after_their_consumer_is_killed() {
    let Some(node) = node() else { return };
    let _turn = TURN.lock().await;
    let topic = unique("fault-expiry");
    let fanout_prefix = format!("{topic}_fanout_");
    let replies_before: BTreeSet<String> = node
        .queues(&["name"])
        .await
        .into_keys()
        .filter(|q| q.starts_with("reply_"))
        .collect();
    let scratch = Scratch::new();
    let log = scratch.path("child.log");
    let url = rabbit_support::url_with(&node.url, "rabbit_transient_queues_ttl=2");
    let mut child = spawn_child(
        "child_rpc_server_and_client",
        &json!({"role": "rpc-server-and-client", "url": url, "topic": topic, "log": log}),
    );
    wait_for_line(&log, "ready", &mut child).await;
    // Its reply queue is the one new reply queue (the cases take turns).
    let queues = node.queues(&["name", "arguments"]).await;
    let ours: Vec<(&String, &Vec<String>)> = queues
        .iter()
        .filter(|(q, _)| {
            q.starts_with(&fanout_prefix)
                || (q.starts_with("reply_") && !replies_before.contains(*q))
        })
        .collect();
    assert_eq!(
        ours.iter().filter(|(q, _)| q.starts_with("reply_")).count(),
        1,
        "one new reply queue: {ours:?}"
    );
    assert_eq!(
        ours.iter()
            .filter(|(q, _)| q.starts_with(&fanout_prefix))
            .count(),
        1,
        "one fanout queue: {ours:?}"
    );
    for (q, columns) in &ours {
        assert!(
            columns.join(" ").contains("x-expires") && columns.join(" ").contains("2000"),
            "{q} expires after 2 s: {columns:?}"
        );
    }
    let ours: BTreeSet<String> = ours.into_iter().map(|(q, _)| q.clone()).collect();
    // Taken before the kill: the broker's 2 s start when it sees the consumers go,
    // after this.
    let killed = Instant::now();
    child.kill().await.expect("kill -9 the child");
    // They outlive their consumer (not exclusive, not auto-delete) until the TTL.
    // The bound is generous: under load one rabbitmqctl call takes seconds.
    let mut first_gone = None;
    while killed.elapsed() < Duration::from_secs(60) {
        let left = node.queues(&["name"]).await;
        if ours.iter().all(|q| !left.contains_key(q)) {
            first_gone = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = first_gone.unwrap_or_else(|| panic!("still there 60 s after the kill: {ours:?}"));
    eprintln!("reply and fanout queues gone {gone:?} after the kill (TTL 2 s)");
    assert!(
        gone >= Duration::from_millis(1900),
        "gone {gone:?} after the kill, before their 2 s TTL"
    );
    // A server stopped cleanly deletes its fanout queue at once (TTL 1800 s here), and
    // leaves its topic and server queues.
    let t = rabbit_support::transport(&node.url, "");
    let topic = unique("fault-clean-stop");
    let fanout_prefix = format!("{topic}_fanout_");
    let server = RpcServer::builder(&t, Target::new(&topic).with_server("clean"))
        .endpoint(demo_endpoint())
        .build()
        .unwrap();
    server.start().await.unwrap();
    let fanouts = |queues: &BTreeMap<String, Vec<String>>| {
        queues
            .keys()
            .filter(|q| q.starts_with(&fanout_prefix))
            .count()
    };
    assert_eq!(fanouts(&node.queues(&["name"]).await), 1);
    server.stop_and_wait().await.unwrap();
    let after = node.queues(&["name"]).await;
    assert_eq!(
        fanouts(&after),
        0,
        "the stopped server's fanout queue is gone"
    );
    assert!(after.contains_key(&topic) && after.contains_key(&format!("{topic}.clean")));
    t.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_host_fails_over_to_the_second() {
    let Some(url) = rabbit_support::broker_url() else {
        return;
    };
    let _turn = TURN.lock().await;
    assert!(
        std::net::TcpStream::connect("127.0.0.1:1").is_err(),
        "the dead host must be dead"
    );
    let two = url.replacen("://", "://guest:guest@127.0.0.1:1,", 1);
    let t = rabbit_support::transport(&two, "");
    let topic = unique("fault-failover");
    let c = Collector::new();
    let l = listener(&t, &topic, &c).await;
    let n = notifier(&t, &topic);
    send_confirmed(&n, 0..5).await;
    assert_eq!(c.wait_for(5, Duration::from_secs(20)).await, 5);
    assert_eq!(counts(&c).len(), 5);
    rabbit_support::a_call_is_answered(&t, &topic).await;
    l.stop_and_wait().await.unwrap();
    t.close(Duration::from_secs(10)).await.unwrap();
}
