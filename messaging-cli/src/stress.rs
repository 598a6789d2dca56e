//! `messaging stress`: the stress scenarios, each reported with its time and the
//! process's peak resident memory, and each checked: every notification the
//! broker accepted is received, exactly once per id unless the report says
//! otherwise.
//!
//! * `backlog`: `--backlog` notifications sent in bulks while nobody listens, then
//!   drained by a new pool reading from the earliest offset.
//! * `topics`: one listener on `--topics` topics, a few notifications on each.
//! * `notifiers`: `--notifiers` notifiers sending at once over one transport.
//! * `payloads`: payloads from 0 bytes up to the driver's record size limit (found
//!   by bisection: the largest that fits is delivered intact, one byte more is
//!   refused with a typed error naming the limit's setting).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use messaging_core::{
    Context, Error, ErrorKind, HandlerOutcome, NotificationEndpoint, NotificationListener,
    Notifier, Priority, Result, Retry, StartPosition, Target, Transport,
};
use serde::{Deserialize, Serialize};

/// Arguments of `messaging stress`.
#[derive(Debug, Args)]
pub(crate) struct StressArgs {
    /// The broker (any transport URL).
    #[arg(long, default_value = "memory://")]
    url: String,
    /// The scenarios to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "backlog,topics,notifiers,payloads"
    )]
    scenarios: Vec<Scenario>,
    /// Notifications in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// Notifications per bulk send (backlog).
    #[arg(long, default_value_t = 1000)]
    bulk: usize,
    /// Topics of the one listener (topics).
    #[arg(long, default_value_t = 200)]
    topics: u64,
    /// Notifications per topic (topics).
    #[arg(long, default_value_t = 10)]
    per_topic: u64,
    /// Concurrent notifiers (notifiers).
    #[arg(long, default_value_t = 1000)]
    notifiers: u64,
    /// Notifications per notifier (notifiers).
    #[arg(long, default_value_t = 20)]
    per_notifier: u64,
    /// The largest payload tried when the driver states no record size limit.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_payload: usize,
    /// Give up waiting for a scenario's notifications after this long.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object (every scenario's report) as the last line.
    #[arg(long)]
    json: bool,
}

/// One stress scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Scenario {
    Backlog,
    Topics,
    Notifiers,
    Payloads,
}

/// What one scenario did.
#[derive(Debug, Serialize)]
struct ScenarioReport {
    scenario: Scenario,
    /// Notifications the broker accepted.
    sent: u64,
    /// Distinct ids received.
    received: u64,
    lost: u64,
    duplicates: u64,
    /// From the first send to the last acknowledgement.
    send_secs: f64,
    /// From the listener's start (backlog) or the first send to the last receipt.
    receive_secs: f64,
    /// Peak resident memory of this process during the scenario.
    peak_rss_mib: f64,
    /// Resident memory when the scenario began.
    start_rss_mib: f64,
    /// What else the scenario measured (payload sizes, the refusal).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    details: serde_json::Map<String, serde_json::Value>,
}

/// The payload of every stress notification: its id and padding.
#[derive(Serialize, Deserialize)]
struct Payload {
    i: u64,
    #[serde(default)]
    p: String,
}

/// How often each id was received (saturating), and how many distinct ids.
struct Tally {
    seen: Vec<AtomicU8>,
    distinct: AtomicU64,
    duplicates: AtomicU64,
    strays: AtomicU64,
}

impl Tally {
    fn new(ids: u64) -> Arc<Tally> {
        Arc::new(Tally {
            seen: (0..ids).map(|_| AtomicU8::new(0)).collect(),
            distinct: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            strays: AtomicU64::new(0),
        })
    }

    fn record(&self, id: u64) {
        let Some(slot) = self.seen.get(id as usize) else {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            Some(c.saturating_add(1))
        }) {
            Ok(0) => self.distinct.fetch_add(1, Ordering::Relaxed),
            _ => self.duplicates.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn distinct(&self) -> u64 {
        self.distinct.load(Ordering::Relaxed)
    }
}

/// Resident memory of this process and its peak since the last reset, in MiB.
fn rss_and_peak_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Start measuring a new peak: Linux resets the process's peak resident memory
/// (`VmHWM`) when `5` is written to `/proc/self/clear_refs`.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(error = %e, "stress: cannot reset the peak resident memory; peaks are since the start");
    }
}

/// Run the scenarios.
pub(crate) async fn run(a: StressArgs) -> Result<()> {
    let transport = Transport::open(&a.url)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut reports = Vec::new();
    for scenario in &a.scenarios {
        reset_peak();
        let start_rss = rss_and_peak_mib().0;
        let name = format!("stress-{run_id}-{scenario:?}").to_lowercase();
        let mut r = match scenario {
            Scenario::Backlog => backlog(&a, &transport, &name).await?,
            Scenario::Topics => topics(&a, &transport, &name).await?,
            Scenario::Notifiers => notifiers(&a, &transport, &name).await?,
            Scenario::Payloads => payloads(&a, &transport, &name).await?,
        };
        r.start_rss_mib = start_rss;
        r.peak_rss_mib = rss_and_peak_mib().1;
        eprintln!(
            "stress {:?}: sent {}, received {}, lost {}, duplicates {}; send {:.1} s, receive {:.1} s; \
             resident memory {:.0} MiB at start, peak {:.0} MiB",
            r.scenario, r.sent, r.received, r.lost, r.duplicates, r.send_secs, r.receive_secs,
            r.start_rss_mib, r.peak_rss_mib
        );
        reports.push(r);
    }
    transport.close(Duration::from_secs(30)).await?;
    let lost: u64 = reports.iter().map(|r| r.lost).sum();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"url": a.url, "scenarios": reports, "ok": lost == 0})
        );
    }
    if lost > 0 {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("stress: {lost} accepted notifications were never received"),
        ));
    }
    Ok(())
}

/// A notifier on `topics` that retries for good (a stress run measures, it does
/// not give up on a busy broker).
fn notifier(transport: &Transport, publisher: &str, topics: &[String]) -> Result<Notifier> {
    Notifier::builder()
        .publisher_id(publisher)
        .topics(topics.iter().cloned())
        .retry(Retry::Forever)
        .transport(transport)
        .build()
}

/// A started listener in a new pool on `topics`, counting ids in `tally` (and
/// checking each payload's padding with `check`).
async fn listener(
    transport: &Transport,
    pool: &str,
    topics: &[String],
    tally: &Arc<Tally>,
    check: impl Fn(&Payload) -> bool + Send + Sync + 'static,
) -> Result<NotificationListener> {
    let tally = tally.clone();
    let check = Arc::new(check);
    let mut builder = NotificationListener::builder(transport)
        .pool(pool)
        .start_position(StartPosition::Earliest)
        .max_concurrency(256)
        .endpoint(NotificationEndpoint::from_fn(move |n| {
            let (tally, check) = (tally.clone(), check.clone());
            async move {
                let payload: Payload = n.payload_as()?;
                if !check(&payload) {
                    return Err(format!("payload {} arrived altered", payload.i).into());
                }
                tally.record(payload.i);
                Ok(HandlerOutcome::Handled)
            }
        }));
    for t in topics {
        builder = builder.target(Target::new(t));
    }
    let listener = builder.build()?;
    listener.start().await?;
    Ok(listener)
}

/// Wait until `tally` has `expected` distinct ids (or the timeout); the seconds it
/// took from `since`.
async fn await_all(tally: &Tally, expected: u64, since: Instant, timeout: Duration) -> f64 {
    let deadline = since + timeout;
    while tally.distinct() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = since.elapsed().as_secs_f64();
    // Let late duplicates show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    took
}

fn report(scenario: Scenario, sent: u64, tally: &Tally, send: f64, recv: f64) -> ScenarioReport {
    let received = tally.distinct();
    ScenarioReport {
        scenario,
        sent,
        received,
        lost: sent.saturating_sub(received),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        send_secs: send,
        receive_secs: recv,
        peak_rss_mib: 0.0,
        start_rss_mib: 0.0,
        details: serde_json::Map::new(),
    }
}

/// Send the ids `ids` as bulks of `bulk` and wait for every acknowledgement; a
/// failed part of a bulk is resent (only that part). Returns how many were sent.
async fn send_bulks(notifier: &Notifier, ids: std::ops::Range<u64>, bulk: usize) -> Result<u64> {
    let ctx = Context::new();
    let mut sent = 0;
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + bulk.max(1) as u64).min(ids.end);
        let items = (start..end).map(|i| {
            (
                "stress.backlog",
                Payload {
                    i,
                    p: String::new(),
                },
            )
        });
        let mut outcome = notifier
            .notify_many(Priority::Info, &ctx, items)
            .await?
            .outcome()
            .await;
        while !outcome.is_delivered() {
            let unknown = outcome.unknown_count();
            if unknown > 0 {
                return Err(Error::new(
                    ErrorKind::OutcomeUnknown,
                    format!("stress: {unknown} notifications of a bulk have an unknown outcome"),
                ));
            }
            outcome = notifier.resend(outcome.resend()).await?.outcome().await;
        }
        sent += end - start;
        start = end;
    }
    Ok(sent)
}

async fn backlog(a: &StressArgs, transport: &Transport, name: &str) -> Result<ScenarioReport> {
    let topics = vec![name.to_owned()];
    ensure(transport, &topics).await?;
    let notifier = notifier(transport, "stress.backlog", &topics)?;
    let started = Instant::now();
    let sent = send_bulks(&notifier, 0..a.backlog, a.bulk).await?;
    let send_secs = started.elapsed().as_secs_f64();
    eprintln!("stress backlog: {sent} notifications in {send_secs:.1} s; draining with a new pool");
    let tally = Tally::new(a.backlog);
    let draining = Instant::now();
    let listener = listener(transport, &format!("{name}-pool"), &topics, &tally, |_| {
        true
    })
    .await?;
    let recv = await_all(&tally, sent, draining, a.timeout).await;
    listener.stop_and_wait().await?;
    let mut r = report(Scenario::Backlog, sent, &tally, send_secs, recv);
    r.details
        .insert("drain_per_sec".into(), (sent as f64 / recv).into());
    Ok(r)
}

async fn topics(a: &StressArgs, transport: &Transport, name: &str) -> Result<ScenarioReport> {
    let topics: Vec<String> = (0..a.topics).map(|k| format!("{name}-{k}")).collect();
    ensure(transport, &topics).await?;
    let tally = Tally::new(a.topics * a.per_topic);
    let joining = Instant::now();
    let listener = listener(transport, &format!("{name}-pool"), &topics, &tally, |_| {
        true
    })
    .await?;
    let join_secs = joining.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut sent = 0;
    for (k, topic) in topics.iter().enumerate() {
        let notifier = notifier(transport, "stress.topics", std::slice::from_ref(topic))?;
        let first = k as u64 * a.per_topic;
        sent += send_bulks(&notifier, first..first + a.per_topic, a.bulk).await?;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let recv = await_all(&tally, sent, started, a.timeout).await;
    listener.stop_and_wait().await?;
    let mut r = report(Scenario::Topics, sent, &tally, send_secs, recv);
    r.details.insert("topics".into(), a.topics.into());
    r.details
        .insert("listener_start_secs".into(), join_secs.into());
    Ok(r)
}

async fn notifiers(a: &StressArgs, transport: &Transport, name: &str) -> Result<ScenarioReport> {
    let topics = vec![name.to_owned()];
    ensure(transport, &topics).await?;
    let tally = Tally::new(a.notifiers * a.per_notifier);
    let listener = listener(transport, &format!("{name}-pool"), &topics, &tally, |_| {
        true
    })
    .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..a.notifiers {
        let notifier = notifier(transport, &format!("stress.notifier-{k}"), &topics)?;
        let per = a.per_notifier;
        tasks.push(tokio::spawn(async move {
            for s in 0..per {
                let payload = Payload {
                    i: k * per + s,
                    p: String::new(),
                };
                let receipt = notifier
                    .info(&Context::new(), "stress.notifiers", &payload)
                    .await?;
                receipt.delivered().await?;
            }
            Ok::<u64, Error>(per)
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.map_err(|e| {
            Error::new(ErrorKind::Internal, "a notifier task died").with_source(e)
        })??;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let recv = await_all(&tally, sent, started, a.timeout).await;
    listener.stop_and_wait().await?;
    let mut r = report(Scenario::Notifiers, sent, &tally, send_secs, recv);
    r.details.insert("notifiers".into(), a.notifiers.into());
    Ok(r)
}

/// The payload sizes tried below the bisection: 0 bytes and each power of ten.
const FIXED_SIZES: [usize; 7] = [0, 1, 10, 100, 1_000, 10_000, 100_000];

async fn payloads(a: &StressArgs, transport: &Transport, name: &str) -> Result<ScenarioReport> {
    let topics = vec![name.to_owned()];
    ensure(transport, &topics).await?;
    let notifier = notifier(transport, "stress.payloads", &topics)?;
    let limit = transport.driver().capabilities().max_record_bytes;
    let top = limit.unwrap_or(a.max_payload);
    // Ids are indexes into `sizes`: the listener checks each padding's length.
    let sizes = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let tally = Tally::new(256);
    let check = {
        let sizes = sizes.clone();
        move |p: &Payload| {
            let sizes = sizes.lock().unwrap_or_else(|e| e.into_inner());
            sizes.get(p.i as usize) == Some(&p.p.len()) && p.p.bytes().all(|b| b == b'x')
        }
    };
    let listener = listener(transport, &format!("{name}-pool"), &topics, &tally, check).await?;
    let started = Instant::now();
    // Send one payload of `size` bytes; Ok(false) when refused as too large.
    let try_size = |size: usize| {
        let (sizes, notifier) = (sizes.clone(), &notifier);
        async move {
            let i = {
                let mut s = sizes.lock().unwrap_or_else(|e| e.into_inner());
                s.push(size);
                s.len() as u64 - 1
            };
            let payload = Payload {
                i,
                p: "x".repeat(size),
            };
            let sent = match notifier
                .info(&Context::new(), "stress.payload", &payload)
                .await
            {
                Ok(receipt) => receipt.delivered().await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => Ok(Ok(())),
                Err(e) if e.kind() == &ErrorKind::InvalidArgument && !e.is_retryable() => {
                    sizes.lock().unwrap_or_else(|e| e.into_inner())[i as usize] = usize::MAX;
                    Ok(Err(e))
                }
                Err(e) => Err(e),
            }
        }
    };
    let mut sent = 0;
    for size in FIXED_SIZES.into_iter().filter(|s| *s <= top) {
        try_size(size).await?.map_err(|e| {
            Error::new(
                e.kind().clone(),
                format!("a payload of {size} bytes: {}", e.message()),
            )
        })?;
        sent += 1;
    }
    // Bisect for the largest payload that fits: `low` fits, `high` does not.
    let (mut low, mut high) = (*FIXED_SIZES.last().unwrap_or(&0), top + 1);
    let mut refusal = None;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        match try_size(mid).await? {
            Ok(()) => {
                sent += 1;
                low = mid;
            }
            Err(e) => {
                refusal = Some(e.to_string());
                high = mid;
            }
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    let recv = await_all(&tally, sent, started, a.timeout).await;
    listener.stop_and_wait().await?;
    let mut r = report(Scenario::Payloads, sent, &tally, send_secs, recv);
    // Refused sizes have no notification: count only the accepted ones as lost.
    let refused = sizes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| **s == usize::MAX)
        .count() as u64;
    r.details.insert("record_limit_bytes".into(), limit.into());
    r.details.insert("largest_payload_bytes".into(), low.into());
    r.details.insert("refused_sizes".into(), refused.into());
    r.details.insert("refusal".into(), refusal.into());
    r.details.insert(
        "altered_payloads".into(),
        listener.counters().handler_failures.into(),
    );
    Ok(r)
}

/// Create the scenario's topics where the driver creates topics.
async fn ensure(transport: &Transport, topics: &[String]) -> Result<()> {
    let wire: Vec<String> = topics
        .iter()
        .map(|t| transport.notification_topic(t, Priority::Info))
        .collect();
    transport.ensure_topics(&wire).await
}
