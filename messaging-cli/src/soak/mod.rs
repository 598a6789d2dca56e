//! `messaging soak`: notifiers at a target rate and listener processes in two pools
//! (one of them a batch listener) with misbehaving handlers, for a duration, under
//! a fault schedule (the broker killed and restarted, a member killed, a member
//! paused past its session timeout, a member joining while another leaves), with an
//! account of every message id: lost, duplicated (and why), latency and resident
//! memory over time, throughput.
//!
//! Without `--url` the soak starts its own Tansu broker (sqlite storage) through
//! `scripts/tansu.sh` and also kills and restarts it; with `--url` it soaks that
//! broker without broker faults.

mod cluster;
mod ledger;
pub(crate) mod member;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clap::Args;
use messaging_core::{Context, Error, ErrorKind, Notifier, Result, Retry, Transport};
use serde::Serialize;

use cluster::{MemberPlan, Members, OwnBroker};
use ledger::{FaultEvent, Ledger, Receipt, Window};
use member::now_us;

use crate::observe::{self, MetricsArgs, MetricsEndpoint};

/// Arguments of `messaging soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// A broker to soak (kafka:// or rabbit://), without broker faults. Without it,
    /// the soak starts its own Tansu broker (sqlite) and restarts it too.
    #[arg(long)]
    url: Option<String>,
    /// How long to send (e.g. `60s`, `30m`); the drain comes after.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Notifiers sending at once.
    #[arg(long, default_value_t = 4)]
    notifiers: usize,
    /// Notifications per second, all notifiers together (0: as fast as they go).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Payload size in bytes (about).
    #[arg(long, default_value_t = 200)]
    payload_size: usize,
    /// Members of the pool that takes notifications one at a time.
    #[arg(long, default_value_t = 2)]
    members: usize,
    /// Members of the batch pool.
    #[arg(long, default_value_t = 1)]
    batch_members: usize,
    /// Batch size of the batch pool.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Per mille of handler calls that fail, panic, requeue and run slowly (200 ms).
    #[arg(long, default_value = "10,3,10,5")]
    misbehave: String,
    /// A fault every this long (0: none).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    fault_every: Duration,
    /// The faults, in turn: broker-restart (own broker only), member-kill,
    /// member-pause, rebalance.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "broker-restart,member-kill,member-pause,rebalance"
    )]
    faults: Vec<FaultKind>,
    /// How long a paused member stays stopped (past the 6 s session timeout the
    /// soak's own broker URL sets).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Give up waiting for the last notifications after this long.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Length of one window of the figures over time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Resident memory a process may grow by after its warm-up (the first fifth of
    /// the soak, at most 60 s; for a member, from when it first handled a message)
    /// before the soak fails.
    #[arg(long, default_value_t = 64.0)]
    rss_growth_limit_mib: f64,
    /// The Tansu control script (for the soak's own broker).
    #[arg(
        long,
        env = "MESSAGING_TANSU_SCRIPT",
        default_value = "scripts/tansu.sh"
    )]
    tansu_script: PathBuf,
    /// Where the member processes' logs go (default: a new directory under /tmp).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FaultKind {
    BrokerRestart,
    MemberKill,
    MemberPause,
    Rebalance,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::BrokerRestart => "broker-restart",
            FaultKind::MemberKill => "member-kill",
            FaultKind::MemberPause => "member-pause",
            FaultKind::Rebalance => "rebalance",
        }
    }
}

/// Settings of the soak's own broker: topics created with 3 partitions (so that a
/// pool's members share them), quick group sessions (6 s), and a producer that
/// rides through a broker restart. librdkafka's prefetch queue is bounded (8 MiB per
/// consumer, 1 MiB per fetch) instead of its default 64 MiB: a member catching up on
/// a backlog after a fault would otherwise fill it, and the resident-memory bound
/// would measure librdkafka's buffer instead of the framework's memory.
const OWN_BROKER_QUERY: &str = "create_topics=true&topic_partitions=3&delivery_timeout=120\
&rdkafka.consumer.session.timeout.ms=6000&rdkafka.consumer.heartbeat.interval.ms=1000\
&rdkafka.consumer.max.poll.interval.ms=30000&rdkafka.topic.metadata.refresh.interval.ms=2000\
&rdkafka.consumer.fetch.wait.max.ms=100&rdkafka.consumer.queued.max.messages.kbytes=8192\
&rdkafka.consumer.fetch.max.bytes=1048576&rdkafka.consumer.max.partition.fetch.bytes=262144";

/// How long after a fault its effect may still show (a rebalance that follows a
/// kill after the session timeout, a member that joined).
const SETTLE: Duration = Duration::from_secs(15);

/// The soak's report (the `--json` line).
#[derive(Debug, Serialize)]
struct SoakReport {
    url: String,
    duration_secs: f64,
    sent: u64,
    /// Messages the broker acknowledged (each must be handled once in every pool).
    accepted: u64,
    send_failed: u64,
    send_unknown: u64,
    /// Distinct messages handled, all pools together.
    received: u64,
    received_per_pool: BTreeMap<String, u64>,
    /// Accepted messages some pool never handled, all pools together.
    lost: u64,
    duplicates: u64,
    duplicates_by_cause: BTreeMap<&'static str, u64>,
    unattributed_duplicates: u64,
    /// The first unattributed duplicates.
    unattributed_samples: Vec<ledger::Duplicate>,
    /// Handlings of ids the soak never sent.
    strays: u64,
    sent_per_sec: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    rss_growth_limit_mib: f64,
    /// Per process: growth after its warm-up, in MiB.
    rss_growth_mib: BTreeMap<String, f64>,
    rss_peak_mib: BTreeMap<String, f64>,
    faults: Vec<FaultEvent>,
    windows: Vec<Window>,
    member_logs: String,
    ok: bool,
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run the soak.
pub(crate) async fn run(a: SoakArgs) -> Result<()> {
    let soak_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let obs = MetricsEndpoint::start(&a.metrics).await?;
    let own = match &a.url {
        Some(_) => None,
        None => Some(OwnBroker::start(&a.tansu_script, &format!("soak-{soak_id}")).await?),
    };
    let url = match (&a.url, &own) {
        (Some(url), _) => url.clone(),
        (None, Some(b)) => format!("kafka://{}?{OWN_BROKER_QUERY}", b.servers),
        (None, None) => unreachable!("a soak without --url has its own broker"),
    };
    let result = soak(&a, &url, own.as_ref(), &soak_id, &obs).await;
    if let Some(b) = &own {
        if let Err(e) = b.stop().await {
            tracing::warn!(error = %e, "could not stop the soak's broker");
        }
    }
    let report = result?;
    print_summary(&report);
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    obs.finish().await;
    if !report.ok {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "soak failed: {} lost, {} unattributed duplicates, resident memory within bound: {}",
                report.lost,
                report.unattributed_duplicates,
                within_bound(&report)
            ),
        ));
    }
    Ok(())
}

fn within_bound(r: &SoakReport) -> bool {
    r.rss_growth_mib
        .values()
        .all(|g| *g <= r.rss_growth_limit_mib)
}

async fn soak(
    a: &SoakArgs,
    url: &str,
    own: Option<&OwnBroker>,
    soak_id: &str,
    obs: &MetricsEndpoint,
) -> Result<SoakReport> {
    let log_dir = match &a.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("messaging-soak-{soak_id}")),
    };
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| Error::new(ErrorKind::Internal, "cannot create the log dir").with_source(e))?;
    let topic = format!("soak-{soak_id}");
    let transport = Transport::open(url)?;
    transport
        .ensure_topics(&[transport.notification_topic(&topic, messaging_core::Priority::Info)])
        .await?;
    let ledger = Arc::new(Mutex::new(Ledger::new(a.notifiers.max(1), 2)));
    let plan = MemberPlan {
        url: url.to_owned(),
        topic: topic.clone(),
        pools: vec![
            (format!("soak-{soak_id}-single"), 0),
            (format!("soak-{soak_id}-batch"), a.batch_size.max(1)),
        ],
        misbehave: a.misbehave.clone(),
        log_dir: log_dir.clone(),
    };
    let members = Arc::new(tokio::sync::Mutex::new(Members::new(plan, ledger.clone())));
    {
        let mut m = members.lock().await;
        for _ in 0..a.members.max(1) {
            m.spawn(0)?;
        }
        for _ in 0..a.batch_members.max(1) {
            m.spawn(1)?;
        }
    }
    // The members' first rebalances (each join) may deliver records again that
    // were handled but not acknowledged when a partition moved.
    {
        let mut l = lock(&ledger);
        l.fault(FaultEvent {
            kind: "startup-joins",
            pool: None,
            at_secs: 0.0,
            at_us: now_us(),
            until_us: now_us() + SETTLE.as_micros() as u64,
        });
    }
    let sending = Arc::new(AtomicBool::new(true));
    let senders = start_notifiers(a, &transport, &topic, &ledger, &sending)?;
    obs.ready_when({
        let (transport, sending) = (transport.clone(), sending.clone());
        move || match sending.load(Ordering::Relaxed) {
            true => observe::transport_ready(&transport),
            false => Err("draining".to_owned()),
        }
    });
    let sampler = tokio::spawn(sample(
        ledger.clone(),
        members.clone(),
        a.window,
        sending.clone(),
    ));
    let faults = tokio::spawn(fault_schedule(
        a.faults.clone(),
        a.fault_every,
        a.pause,
        ledger.clone(),
        members.clone(),
        own.map(|b| b.servers.clone()),
        a.tansu_script.clone(),
        format!("soak-{soak_id}"),
        sending.clone(),
    ));
    let progress = tokio::spawn(progress(ledger.clone(), a.duration, sending.clone()));
    tokio::select! {
        () = tokio::time::sleep(a.duration) => {}
        _ = tokio::signal::ctrl_c() => tracing::warn!("soak: interrupted; draining"),
    }
    sending.store(false, Ordering::SeqCst);
    for s in senders {
        let _ = s.await;
    }
    let fault_result = faults.await;
    let sent_secs = lock(&ledger).elapsed();
    drain(&ledger, a.drain_timeout).await;
    members
        .lock()
        .await
        .stop_all(Duration::from_secs(30))
        .await?;
    let _ = sampler.await;
    progress.abort();
    transport.close(Duration::from_secs(10)).await?;
    if let Ok(Err(e)) = fault_result {
        return Err(e);
    }
    let report = report(a, url, &ledger, sent_secs, &log_dir);
    // Next to the members' logs, so a failed run can be read after its output is gone.
    let path = log_dir.join("report.json");
    if let Err(e) = serde_json::to_vec_pretty(&report)
        .map_err(std::io::Error::from)
        .and_then(|json| std::fs::write(&path, json))
    {
        tracing::warn!(path = %path.display(), error = %e, "soak: cannot write the report");
    }
    Ok(report)
}

/// Start the notifiers: each sends at its share of the rate until `sending` ends.
fn start_notifiers(
    a: &SoakArgs,
    transport: &Transport,
    topic: &str,
    ledger: &Arc<Mutex<Ledger>>,
    sending: &Arc<AtomicBool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let count = a.notifiers.max(1);
    let gap = (a.rate > 0.0).then(|| Duration::from_secs_f64(count as f64 / a.rate));
    let pad = "x".repeat(a.payload_size.saturating_sub(60));
    let mut tasks = Vec::new();
    for k in 0..count {
        let notifier = Notifier::builder()
            .publisher_id(format!("soak.notifier-{k}"))
            .topic(topic)
            .retry(Retry::Forever)
            .transport(transport)
            .build()?;
        let (ledger, sending, pad) = (ledger.clone(), sending.clone(), pad.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = gap.map(|g| {
                let mut i = tokio::time::interval(g);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            while sending.load(Ordering::Relaxed) {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                send_one(&notifier, k, &ledger, &pad).await;
            }
        }));
    }
    Ok(tasks)
}

/// Send the next message of notifier `k`; its receipt is recorded when it resolves.
async fn send_one(notifier: &Notifier, k: usize, ledger: &Arc<Mutex<Ledger>>, pad: &str) {
    let seq = lock(ledger).sent(k);
    let payload = serde_json::json!({"n": k, "s": seq, "t": now_us(), "pad": pad});
    let outcome = |r: &Result<()>| match r {
        Ok(()) => Receipt::Accepted,
        Err(e) if e.kind() == &ErrorKind::OutcomeUnknown => Receipt::Unknown,
        Err(_) => Receipt::Failed,
    };
    match notifier
        .info(&Context::new(), "soak.message", &payload)
        .await
    {
        Ok(receipt) => {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let r = receipt.delivered().await.map(drop);
                if let Err(e) = &r {
                    tracing::warn!(error = %e, notifier = k, seq, "soak: a notification was not accepted");
                }
                lock(&ledger).receipt(k, seq, outcome(&r));
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, notifier = k, seq, "soak: notify failed");
            lock(ledger).receipt(k, seq, outcome(&Err(e)));
        }
    }
}

/// Close a window of figures every `window`, with every process's resident memory.
async fn sample(
    ledger: Arc<Mutex<Ledger>>,
    members: Arc<tokio::sync::Mutex<Members>>,
    window: Duration,
    sending: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(window.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut rss = BTreeMap::new();
        if let Some(m) = cluster::rss_mib(std::process::id()) {
            rss.insert("soak".to_owned(), m);
        }
        for (label, pid) in members.lock().await.pids() {
            if let Some(m) = cluster::rss_mib(pid) {
                rss.insert(label, m);
            }
        }
        lock(&ledger).close_window(rss);
        let done = !sending.load(Ordering::Relaxed) && lock(&ledger).missing_total() == 0;
        if done {
            return;
        }
    }
}

/// A progress line on a terminal, every second.
async fn progress(ledger: Arc<Mutex<Ledger>>, duration: Duration, sending: Arc<AtomicBool>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let l = lock(&ledger);
        let phase = if sending.load(Ordering::Relaxed) {
            "sending"
        } else {
            "draining"
        };
        let dups: u64 = l.duplicates().values().sum();
        eprint!(
            "\r{phase} {:>6.0}/{:.0} s  sent {}  handled {:?}  missing {}  duplicates {}  faults {}   ",
            l.elapsed(),
            duration.as_secs_f64(),
            l.sent_total(),
            l.handled_per_pool(),
            l.missing_total(),
            dups,
            l.faults().len()
        );
    }
}

/// Wait until every accepted message was handled in every pool (and no receipt is
/// pending), or `timeout`.
async fn drain(ledger: &Arc<Mutex<Ledger>>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        {
            let l = lock(ledger);
            let pending = l.receipts().get("pending").copied().unwrap_or(0);
            if pending == 0 && l.missing_total() == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Duplicates that are on their way still count.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Cause one fault after another until the sending ends.
#[allow(clippy::too_many_arguments)]
async fn fault_schedule(
    kinds: Vec<FaultKind>,
    every: Duration,
    pause: Duration,
    ledger: Arc<Mutex<Ledger>>,
    members: Arc<tokio::sync::Mutex<Members>>,
    own_broker: Option<String>,
    script: PathBuf,
    broker_name: String,
    sending: Arc<AtomicBool>,
) -> Result<()> {
    let kinds: Vec<FaultKind> = kinds
        .into_iter()
        .filter(|k| *k != FaultKind::BrokerRestart || own_broker.is_some())
        .collect();
    if kinds.is_empty() || every.is_zero() {
        return Ok(());
    }
    let broker = own_broker.map(|servers| OwnBroker::attach(script, broker_name, servers));
    for turn in 0.. {
        tokio::time::sleep(every).await;
        if !sending.load(Ordering::Relaxed) {
            return Ok(());
        }
        let kind = kinds[turn % kinds.len()];
        let pool = turn / kinds.len() % 2;
        let touched = (kind != FaultKind::BrokerRestart).then_some(pool);
        // On the books from its start: what it causes while it lasts is its doing.
        {
            let mut l = lock(&ledger);
            let at_secs = l.elapsed();
            l.fault(FaultEvent {
                kind: kind.name(),
                pool: touched,
                at_secs,
                at_us: now_us(),
                until_us: u64::MAX,
            });
        }
        match kind {
            FaultKind::BrokerRestart => {
                if let Some(b) = &broker {
                    b.kill_and_restart().await?;
                }
            }
            FaultKind::MemberKill => {
                let mut m = members.lock().await;
                m.kill(pool).await?;
                drop(m);
                tokio::time::sleep(Duration::from_secs(2)).await;
                members.lock().await.spawn(pool)?;
            }
            FaultKind::MemberPause => {
                let pid = members.lock().await.pick_pid(pool);
                if let Some(pid) = pid {
                    cluster::pause(pid, pause).await?;
                }
            }
            FaultKind::Rebalance => {
                members.lock().await.spawn(pool)?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                let mut m = members.lock().await;
                if m.count(pool) > 1 {
                    m.leave(pool, Duration::from_secs(30)).await?;
                }
            }
        }
        lock(&ledger).fault_until(now_us() + SETTLE.as_micros() as u64);
        tracing::info!(fault = kind.name(), ?touched, "soak: fault done");
    }
    Ok(())
}

/// The growth of each process's resident memory after its warm-up, and its peak.
///
/// A process's warm-up starts when it is first seen or, for a member, when it first
/// handled a message (`active_since`), whichever is later: a member that waited idle
/// (more members than partitions) and took over partitions later fills its fetch
/// queues then, which is its working set, not growth.
fn memory_figures(
    windows: &[Window],
    warm_up_secs: f64,
    active_since: &BTreeMap<String, f64>,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut first_seen: BTreeMap<&str, f64> = BTreeMap::new();
    let mut baseline: BTreeMap<String, f64> = BTreeMap::new();
    let mut growth: BTreeMap<String, f64> = BTreeMap::new();
    let mut peak: BTreeMap<String, f64> = BTreeMap::new();
    for w in windows {
        for (label, mib) in &w.rss_mib {
            let seen = *first_seen.entry(label.as_str()).or_insert(w.end_secs);
            let since = active_since.get(label).map_or(seen, |a| a.max(seen));
            let p = peak.entry(label.clone()).or_insert(0.0);
            *p = p.max(*mib);
            if w.end_secs - since < warm_up_secs {
                continue;
            }
            let base = *baseline.entry(label.clone()).or_insert(*mib);
            let g = growth.entry(label.clone()).or_insert(0.0);
            *g = g.max(mib - base);
        }
    }
    (growth, peak)
}

fn report(
    a: &SoakArgs,
    url: &str,
    ledger: &Arc<Mutex<Ledger>>,
    sent_secs: f64,
    log_dir: &std::path::Path,
) -> SoakReport {
    let l = lock(ledger);
    let receipts = l.receipts();
    let get = |k: &str| receipts.get(k).copied().unwrap_or(0);
    let per_pool: BTreeMap<String, u64> = ["single", "batch"]
        .iter()
        .zip(l.handled_per_pool())
        .map(|(name, n)| (name.to_string(), *n))
        .collect();
    let duplicates = l.duplicates().clone();
    let unattributed = duplicates.get("unattributed").copied().unwrap_or(0);
    let lost = l.missing_total();
    let (p50, p99) = l.latency_ms();
    let warm_up = (a.duration.as_secs_f64() / 5.0).min(60.0);
    let (growth, peak) = memory_figures(l.windows(), warm_up, &l.active_since());
    let mut r = SoakReport {
        url: messaging_core::TransportUrl::parse(url)
            .map_or_else(|_| "?".to_owned(), |u| u.to_string()),
        duration_secs: sent_secs,
        sent: l.sent_total(),
        accepted: get("accepted"),
        send_failed: get("failed"),
        send_unknown: get("unknown") + get("pending"),
        received: per_pool.values().sum(),
        received_per_pool: per_pool,
        lost,
        duplicates: duplicates.values().sum(),
        duplicates_by_cause: duplicates,
        unattributed_duplicates: unattributed,
        unattributed_samples: l.unattributed().to_vec(),
        strays: l.strays(),
        sent_per_sec: l.sent_total() as f64 / sent_secs.max(0.001),
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        rss_growth_limit_mib: a.rss_growth_limit_mib,
        rss_growth_mib: growth,
        rss_peak_mib: peak,
        faults: l.faults().to_vec(),
        windows: l.windows().to_vec(),
        member_logs: log_dir.display().to_string(),
        ok: false,
    };
    r.ok = r.lost == 0 && r.unattributed_duplicates == 0 && within_bound(&r);
    r
}

fn print_summary(r: &SoakReport) {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    println!("soak on {} for {:.0} s", r.url, r.duration_secs);
    println!(
        "  sent {} ({:.0}/s), accepted {}, failed {}, unknown {}",
        r.sent, r.sent_per_sec, r.accepted, r.send_failed, r.send_unknown
    );
    println!(
        "  received per pool {:?}; lost {}",
        r.received_per_pool, r.lost
    );
    println!(
        "  duplicates {} {:?}; unattributed {}",
        r.duplicates, r.duplicates_by_cause, r.unattributed_duplicates
    );
    println!(
        "  latency p50 {:.1} ms, p99 {:.1} ms",
        r.latency_p50_ms, r.latency_p99_ms
    );
    println!(
        "  faults {}: {}",
        r.faults.len(),
        r.faults
            .iter()
            .map(|f| format!("{}@{:.0}s", f.kind, f.at_secs))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  resident memory growth after warm-up (MiB, limit {}): {:?}",
        r.rss_growth_limit_mib, r.rss_growth_mib
    );
    println!("  member logs in {}", r.member_logs);
    println!("  {}", if r.ok { "OK" } else { "FAILED" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(end_secs: f64, rss: &[(&str, f64)]) -> Window {
        Window {
            end_secs,
            sent: 0,
            handled: 0,
            latency_p50_ms: 0.0,
            latency_p99_ms: 0.0,
            rss_mib: rss.iter().map(|(l, m)| ((*l).to_owned(), *m)).collect(),
        }
    }

    /// Regression: a standby member idle for its first windows (25 MiB) that took over
    /// partitions later (104 MiB) was reported as 79 MiB of growth and failed the CI soak.
    #[test]
    fn memory_growth_counts_from_when_a_member_became_active() {
        let windows: Vec<Window> = [25.0, 25.4, 25.4, 104.0, 102.0, 103.0, 102.5]
            .iter()
            .enumerate()
            .map(|(i, mib)| {
                let t = 10.0 * (i + 1) as f64;
                window(
                    t,
                    &[("member-3", *mib), ("member-1", 100.0 + 5.0 * i as f64)],
                )
            })
            .collect();
        let active: BTreeMap<String, f64> =
            [("member-3".to_owned(), 35.0), ("member-1".to_owned(), 1.0)].into();
        let (growth, peak) = memory_figures(&windows, 12.0, &active);
        assert!(growth["member-3"] < 2.0, "{growth:?}");
        assert_eq!(peak["member-3"], 104.0);
        // A member that keeps growing while active still shows its growth.
        assert_eq!(growth["member-1"], 20.0, "{growth:?}");
        let (idle_counted, _) = memory_figures(&windows, 12.0, &BTreeMap::new());
        assert!(
            idle_counted["member-3"] > 64.0,
            "without it: {idle_counted:?}"
        );
    }
}
