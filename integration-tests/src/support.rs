//! Helpers shared by the conformance cases and the real-broker tests: unique
//! names, the test log subscriber, collecting endpoints and waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{
    HandlerOutcome, Notification, NotificationEndpoint, NotificationListener, ReceivedRecord,
    Subscription, Target, Transport,
};
use tokio::sync::Notify;

/// A short unique name for a topic, pool or group: `what-` and 10 hex digits.
pub fn unique(what: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{what}-{}", &id[..10])
}

/// Receive from a driver's subscription until `n` records arrived or `timeout`
/// passed; returns what arrived (fewer than `n` on timeout).
pub async fn receive_n(sub: &dyn Subscription, n: usize, timeout: Duration) -> Vec<ReceivedRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let batch = sub
            .receive(n - out.len(), Duration::from_millis(200))
            .await
            .expect("receive");
        out.extend(batch);
    }
    out
}

/// Whether a missing broker (or interpreter) must fail the real-broker tests instead
/// of skipping them: `MESSAGING_REQUIRE_BROKER=1`, as the README's test command sets.
pub fn broker_required() -> bool {
    std::env::var("MESSAGING_REQUIRE_BROKER").is_ok_and(|v| v == "1")
}

/// Install the test log subscriber (`RUST_LOG`, default `warn`) once per process.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Wait until `check` holds, polling, for at most `timeout`; whether it held.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Collects every notification an endpoint receives.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    seen: Arc<Mutex<Vec<Arc<Notification>>>>,
    changed: Arc<Notify>,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one notification.
    pub fn push(&self, n: Arc<Notification>) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(n);
        self.changed.notify_waiters();
    }

    /// An endpoint (all priorities) that records and returns `Handled`.
    pub fn endpoint(&self) -> NotificationEndpoint {
        let me = self.clone();
        NotificationEndpoint::from_fn(move |n| {
            let me = me.clone();
            async move {
                me.push(n);
                Ok(HandlerOutcome::Handled)
            }
        })
    }

    /// Everything collected so far.
    pub fn all(&self) -> Vec<Arc<Notification>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many were collected.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until at least `n` were collected, or `timeout` passed; returns the count.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiter = self.changed.notified();
            tokio::pin!(waiter);
            waiter.as_mut().enable();
            let len = self.len();
            if len >= n {
                return len;
            }
            if tokio::time::timeout_at(deadline, waiter).await.is_err() {
                return self.len();
            }
        }
    }

    /// Wait for `n`, then a little longer to catch any extra (duplicate) deliveries.
    pub async fn settle(&self, n: usize, timeout: Duration, quiet: Duration) -> usize {
        self.wait_for(n, timeout).await;
        tokio::time::sleep(quiet).await;
        self.len()
    }

    /// Payload values of the collected notifications (`payload["i"]` as integers).
    pub fn indexes(&self) -> Vec<i64> {
        self.all().iter().filter_map(|n| index_of(n)).collect()
    }
}

/// The integer at the payload's key `"i"`, read straight from the payload's text
/// (`None` when the payload has no integer `i`).
pub fn index_of(n: &Notification) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Indexed {
        i: i64,
    }
    n.payload_as::<Indexed>().ok().map(|p| p.i)
}

/// Assert that `indexes` holds every number in `0..n` exactly once.
pub fn assert_exactly_once(indexes: &[i64], n: i64, what: &str) {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for i in indexes {
        *counts.entry(*i).or_default() += 1;
    }
    let missing: Vec<i64> = (0..n).filter(|i| !counts.contains_key(i)).collect();
    let dups: Vec<i64> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(i, _)| *i)
        .collect();
    assert!(
        missing.is_empty() && dups.is_empty() && indexes.len() == n as usize,
        "{what}: expected 0..{n} exactly once; got {} records, missing {:?}, duplicated {:?}",
        indexes.len(),
        &missing[..missing.len().min(20)],
        &dups[..dups.len().min(20)]
    );
}

/// Everything logged in this test process, at trace level and without colours: the
/// one subscriber of the process (installed by the first call; a test binary using
/// it must not call [`init_tracing`]). For searching what was printed, e.g. that no
/// password ever is.
pub fn captured_logs() -> &'static CapturedLogs {
    static LOG: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLogs::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("captured_logs installs the only subscriber of the process");
        log
    })
}

/// The log lines [`captured_logs`] gathered.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::fmt::Debug for CapturedLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("CapturedLogs").field("bytes", &len).finish()
    }
}

impl CapturedLogs {
    /// Everything so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The last `n` lines at info level or above, with `hide` replaced (for failure
    /// messages that must not print a secret).
    pub fn tail(&self, n: usize, hide: &[&str]) -> String {
        let text = self.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                [" INFO ", " WARN ", " ERROR "]
                    .iter()
                    .any(|lvl| l.contains(lvl))
            })
            .collect();
        let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
        for secret in hide {
            tail = tail.replace(secret, "<SECRET>");
        }
        tail
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Panics if any of `secrets` appears in `text` (what: where it was found); the
/// message shows the line with the secret masked.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        if let Some(at) = text.find(secret) {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!(
                "a secret appears in {what}: {}",
                text[from..to].replace(secret, "<SECRET>")
            );
        }
    }
}

/// The tests' tokio runtime: multi-threaded with two workers (the machines have two
/// cores), timers and I/O enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A member of `pool` on `topic` whose one handler never finishes: what reaches the
/// pool after it took its first notification stays a backlog (lag, queue depth).
pub fn stuck_member(t: &Transport, topic: &str, pool: &str) -> NotificationListener {
    NotificationListener::builder(t)
        .target(Target::new(topic))
        .pool(pool)
        .max_concurrency(1)
        .stop_timeout(Duration::from_millis(200))
        .endpoint(NotificationEndpoint::from_fn(|_| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(HandlerOutcome::Handled)
        }))
        .build()
        .unwrap()
}
