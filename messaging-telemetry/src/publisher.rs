//! [`TelemetryPublisher`]: publishes signed metering samples as Ceilometer's
//! notifier publisher does.
//!
//! Every [`TelemetryPublisher::publish`] call makes one batch: a `sample`
//! notification with publisher id `telemetry.publisher.<host>`, event type
//! `metering` (configurable), an empty context and, as payload, the list of the
//! samples, each signed with the shared secret. The notification goes to
//! `<topic>.sample` for every topic of the publisher URL (see [`crate::url`]).
//! With `per_meter_topic` each meter also gets a batch of its own, event type
//! `metering.<meter>`.
//!
//! The publisher waits for the broker's acknowledgement of every batch, so it
//! knows when one failed, and then applies its [`PublishPolicy`]:
//!
//! * `default`: the transport sends each of the batch's records again, up to
//!   `max_retry` times (its one retry budget per record, with its backoff; transient
//!   failures only, never a record whose outcome is unknown), then the error is
//!   returned; the batch is not kept.
//! * `queue`: keep the batch in a local queue (at most `max_queue_length` batches;
//!   the oldest are dropped and counted beyond that). Queued batches go first, in
//!   order, on the next `publish` (or [`TelemetryPublisher::flush`]); the first
//!   one that fails again stops the round and stays queued.
//! * `drop`: log it, count it, carry on.
//!
//! Under every policy a failure that no retry can fix (a payload the transport
//! refuses, a closed transport) is not retried: `default` returns it, `queue` and
//! `drop` drop the batch and count it. A batch resent after a failure keeps its
//! `message_id`, so consumers can tell the copies apart; a batch sent to several
//! topics is resent to all of them (at-least-once).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use messaging_core::url::Secret;
use messaging_core::{
    Context, DriverRegistry, Error, ErrorKind, Notifier, OutgoingNotification, Priority, Result,
    Retry, Transport,
};
use serde_json::Value;

use crate::policy::PublishPolicy;
use crate::sample::Sample;
use crate::url::PublisherUrl;

/// The event type of sample batches (Ceilometer's `metering_topic`).
pub const DEFAULT_EVENT_TYPE: &str = "metering";

/// The prefix of the publisher id; the host name follows.
pub const PUBLISHER_ID_PREFIX: &str = "telemetry.publisher.";

/// What one [`TelemetryPublisher::publish`] or [`TelemetryPublisher::flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishReport {
    /// Batches the broker acknowledged (queued ones included).
    pub sent_batches: usize,
    /// Samples in those batches.
    pub sent_samples: usize,
    /// Batches waiting in the local queue afterwards (`queue` policy).
    pub queued_batches: usize,
    /// Batches discarded (`drop` policy, queue overflow, or a failure no retry can fix).
    pub dropped_batches: usize,
    /// Samples in those batches.
    pub dropped_samples: usize,
}

/// A snapshot of a publisher's counters since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherCounters {
    /// Batches the broker acknowledged.
    pub published_batches: u64,
    /// Samples in those batches.
    pub published_samples: u64,
    /// Send attempts that failed (each one was logged; under `default` the
    /// transport's retried attempts of the batches' records included).
    pub failed_attempts: u64,
    /// Batches (under `default`: records of batches) sent again after a failure.
    pub retries: u64,
    /// Batches whose error was returned to the caller (`default` policy).
    pub failed_batches: u64,
    /// Batches discarded.
    pub dropped_batches: u64,
    /// Samples in those batches.
    pub dropped_samples: u64,
    /// Batches in the local queue now.
    pub queued_batches: u64,
}

#[derive(Debug, Default)]
struct Stats {
    published_batches: AtomicU64,
    published_samples: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    failed_batches: AtomicU64,
    dropped_batches: AtomicU64,
    dropped_samples: AtomicU64,
    queued_batches: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// One notification's worth of samples.
#[derive(Debug)]
struct Batch {
    notification: OutgoingNotification,
    samples: usize,
    /// Attempts so far (a queued batch sent again counts as a retry).
    attempts: u32,
}

/// What closing a publisher left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherCloseReport {
    /// Records the transport could not deliver before the deadline.
    pub undelivered: u64,
    /// Batches still in the local queue (`queue` policy) after a last flush: lost.
    pub abandoned_batches: usize,
}

/// Builds a [`TelemetryPublisher`] from a publisher URL.
#[derive(Debug)]
pub struct TelemetryPublisherBuilder<'a> {
    url: String,
    registry: Option<&'a DriverRegistry>,
    transport_options: Vec<(String, String)>,
    secret: Secret,
    host: Option<String>,
    event_type: String,
    policy: Option<PublishPolicy>,
    max_retry: Option<u32>,
    max_queue_length: Option<usize>,
}

impl<'a> TelemetryPublisherBuilder<'a> {
    /// The shared secret samples are signed with (Ceilometer's `telemetry_secret`).
    /// Default: empty, which sends an empty `message_signature`, as Ceilometer does.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Secret::new(secret.into());
        self
    }

    /// The host name in the publisher id (default: this machine's, see [`local_hostname`]).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The event type of the batches (default `metering`).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = event_type.into();
        self
    }

    /// Override the URL's `policy`.
    pub fn policy(mut self, policy: PublishPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Override the URL's `max_retry`.
    pub fn max_retry(mut self, max_retry: u32) -> Self {
        self.max_retry = Some(max_retry);
        self
    }

    /// Override the URL's `max_queue_length` (at least 1).
    pub fn max_queue_length(mut self, max_queue_length: usize) -> Self {
        self.max_queue_length = Some(max_queue_length);
        self
    }

    /// Open the transport with this registry instead of the process-wide one.
    pub fn registry(mut self, registry: &'a DriverRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Driver options from configuration (the URL's query wins over them).
    pub fn transport_options(mut self, options: Vec<(String, String)>) -> Self {
        self.transport_options = options;
        self
    }

    /// Parse the URL, open its transport and build the publisher.
    pub fn build(self) -> Result<TelemetryPublisher> {
        let mut url = PublisherUrl::parse(&self.url)?;
        if let Some(p) = self.policy {
            url = url.with_policy(p);
        }
        if let Some(n) = self.max_retry {
            url = url.with_max_retry(n);
        }
        if let Some(n) = self.max_queue_length {
            url = url.with_max_queue_length(n);
        }
        if self.event_type.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a telemetry publisher needs a non-empty event type",
            ));
        }
        let host = self.host.unwrap_or_else(local_hostname);
        let registry = self.registry.unwrap_or_else(|| DriverRegistry::global());
        let transport =
            Transport::open_with(registry, url.transport_url(), &self.transport_options)?;
        let notifier = Notifier::builder()
            .publisher_id(format!("{PUBLISHER_ID_PREFIX}{host}"))
            .topics(url.topics().iter().cloned())
            // Under `default` the transport retries (one budget per record); the
            // other policies deal with a failed batch themselves.
            .retry(match url.policy() {
                PublishPolicy::Default => Retry::Limited(url.max_retry()),
                PublishPolicy::Queue | PublishPolicy::Drop => Retry::Limited(0),
            })
            .transport(&transport)
            .build()?;
        Ok(TelemetryPublisher {
            url,
            transport,
            notifier,
            secret: self.secret,
            event_type: self.event_type,
            queue: tokio::sync::Mutex::new(VecDeque::new()),
            stats: Stats::default(),
        })
    }
}

/// Publishes signed metering samples as `sample` notifications (see the module docs).
#[derive(Debug)]
pub struct TelemetryPublisher {
    url: PublisherUrl,
    transport: Transport,
    notifier: Notifier,
    secret: Secret,
    event_type: String,
    queue: tokio::sync::Mutex<VecDeque<Batch>>,
    stats: Stats,
}

impl TelemetryPublisher {
    /// Start building a publisher for a publisher URL (see [`crate::url`]).
    pub fn builder<'a>(url: impl Into<String>) -> TelemetryPublisherBuilder<'a> {
        TelemetryPublisherBuilder {
            url: url.into(),
            registry: None,
            transport_options: Vec::new(),
            secret: Secret::new(String::new()),
            host: None,
            event_type: DEFAULT_EVENT_TYPE.to_owned(),
            policy: None,
            max_retry: None,
            max_queue_length: None,
        }
    }

    /// The parsed publisher URL (with any builder overrides applied).
    pub fn url(&self) -> &PublisherUrl {
        &self.url
    }

    /// The transport the samples go out on.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The publisher id, `telemetry.publisher.<host>`.
    pub fn publisher_id(&self) -> &str {
        self.notifier.publisher_id()
    }

    /// The event type of the batches.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The counters.
    pub fn counters(&self) -> PublisherCounters {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // The transport is this publisher's own: its retries are the batches'.
        let transport_retries = self.transport.counters().retried;
        PublisherCounters {
            published_batches: get(&s.published_batches),
            published_samples: get(&s.published_samples),
            failed_attempts: get(&s.failed_attempts) + transport_retries,
            retries: get(&s.retries) + transport_retries,
            failed_batches: get(&s.failed_batches),
            dropped_batches: get(&s.dropped_batches),
            dropped_samples: get(&s.dropped_samples),
            queued_batches: get(&s.queued_batches),
        }
    }

    /// Sign `samples` and publish them as one batch (plus one per meter with
    /// `per_meter_topic`), after any queued batches. Returns once the broker
    /// acknowledged them or the policy dealt with the failure.
    ///
    /// Under `default`, the error of a batch that failed after every retry is
    /// returned; under `queue` and `drop` failures show in the [`PublishReport`].
    /// An empty `samples` sends nothing new (under `queue` it is a flush).
    pub async fn publish(&self, samples: &[Sample]) -> Result<PublishReport> {
        if self.transport.is_closed() {
            return Err(Error::closed("telemetry publisher"));
        }
        let batches = self.batches(samples)?;
        match self.url.policy() {
            PublishPolicy::Default => {
                let mut report = PublishReport::default();
                for batch in batches {
                    if let Err(e) = self.send_once(&batch).await {
                        add(&self.stats.failed_batches, 1);
                        tracing::error!(
                            error = %e,
                            samples = batch.samples,
                            "failed to publish samples after every retry (policy default)"
                        );
                        return Err(e);
                    }
                    report.sent_batches += 1;
                    report.sent_samples += batch.samples;
                }
                Ok(report)
            }
            PublishPolicy::Drop => {
                let mut report = PublishReport::default();
                for batch in batches {
                    match self.send_once(&batch).await {
                        Ok(()) => {
                            report.sent_batches += 1;
                            report.sent_samples += batch.samples;
                        }
                        Err(e) => {
                            tracing::warn!(
                                error = %e,
                                samples = batch.samples,
                                "failed to publish samples: dropping them (policy drop)"
                            );
                            self.count_dropped(&mut report, batch.samples);
                        }
                    }
                }
                Ok(report)
            }
            PublishPolicy::Queue => {
                let mut queue = self.queue.lock().await;
                queue.extend(batches);
                Ok(self.process_queue(&mut queue).await)
            }
        }
    }

    /// Send the queued batches (`queue` policy) without adding new ones.
    pub async fn flush(&self) -> Result<PublishReport> {
        if self.transport.is_closed() {
            return Err(Error::closed("telemetry publisher"));
        }
        let mut queue = self.queue.lock().await;
        Ok(self.process_queue(&mut queue).await)
    }

    /// Batches waiting in the local queue.
    pub async fn queued_batches(&self) -> usize {
        self.queue.lock().await.len()
    }

    /// Flush the local queue once more, refuse further publishing and close the
    /// transport, delivering what it holds within `timeout`.
    pub async fn close(&self, timeout: Duration) -> Result<PublisherCloseReport> {
        let mut abandoned = 0;
        if !self.transport.is_closed() {
            let mut queue = self.queue.lock().await;
            if !queue.is_empty() {
                self.process_queue(&mut queue).await;
            }
            abandoned = queue.len();
            if abandoned > 0 {
                let samples: usize = queue.iter().map(|b| b.samples).sum();
                tracing::error!(
                    batches = abandoned,
                    samples,
                    "telemetry publisher closed with undelivered queued batches: they are lost"
                );
                add(&self.stats.dropped_batches, abandoned);
                add(&self.stats.dropped_samples, samples);
                queue.clear();
                self.stats.queued_batches.store(0, Ordering::Relaxed);
            }
        }
        self.notifier.close();
        let report = self.transport.close(timeout).await?;
        Ok(PublisherCloseReport {
            undelivered: report.undelivered,
            abandoned_batches: abandoned,
        })
    }

    fn batches(&self, samples: &[Sample]) -> Result<Vec<Batch>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let secret = self.secret.expose();
        let signed: Vec<(String, Value)> = samples
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.sign(secret);
                (s.counter_name.clone(), Value::Object(s.to_map()))
            })
            .collect();
        let mut out = Vec::new();
        let all: Vec<&Value> = signed.iter().map(|(_, v)| v).collect();
        out.push(self.batch(&self.event_type, &all)?);
        if self.url.per_meter_topic() {
            let mut by_meter: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
            for (name, v) in &signed {
                by_meter.entry(name).or_default().push(v);
            }
            for (name, group) in by_meter {
                out.push(self.batch(&format!("{}.{name}", self.event_type), &group)?);
            }
        }
        Ok(out)
    }

    fn batch(&self, event_type: &str, samples: &[&Value]) -> Result<Batch> {
        let notification = self.notifier.build_notification(
            Priority::Sample,
            &Context::new(),
            event_type,
            samples,
        )?;
        Ok(Batch {
            notification,
            samples: samples.len(),
            attempts: 0,
        })
    }

    /// One attempt: hand the batch over and wait for the broker's acknowledgement.
    async fn send_once(&self, batch: &Batch) -> Result<()> {
        let outcome = match self.notifier.emit(&batch.notification).await {
            Ok(receipt) => receipt.delivered().await,
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(()) => {
                add(&self.stats.published_batches, 1);
                add(&self.stats.published_samples, batch.samples);
            }
            Err(e) => {
                add(&self.stats.failed_attempts, 1);
                tracing::warn!(
                    error = %e,
                    event_type = %batch.notification.event_type,
                    message_id = %batch.notification.message_id,
                    samples = batch.samples,
                    "failed to publish a batch of samples"
                );
            }
        }
        outcome
    }

    /// Send queued batches in order until one fails transiently; then cap the queue.
    async fn process_queue(&self, queue: &mut VecDeque<Batch>) -> PublishReport {
        let mut report = PublishReport::default();
        while let Some(batch) = queue.front_mut() {
            if batch.attempts > 0 {
                add(&self.stats.retries, 1);
            }
            batch.attempts += 1;
            match self.send_once(batch).await {
                Ok(()) => {
                    report.sent_batches += 1;
                    report.sent_samples += batch.samples;
                    queue.pop_front();
                }
                Err(e) if is_transient(&e) => {
                    let samples: usize = queue.iter().map(|b| b.samples).sum();
                    tracing::warn!(
                        batches = queue.len(),
                        samples,
                        "failed to publish samples: keeping them queued (policy queue)"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        samples = batch.samples,
                        "a batch of samples cannot be sent (no retry can fix this): dropping it"
                    );
                    let samples = batch.samples;
                    queue.pop_front();
                    self.count_dropped(&mut report, samples);
                }
            }
        }
        let max = self.url.max_queue_length();
        if queue.len() > max {
            let excess = queue.len() - max;
            let mut samples = 0;
            for batch in queue.drain(..excess) {
                samples += batch.samples;
                report.dropped_batches += 1;
            }
            report.dropped_samples += samples;
            add(&self.stats.dropped_batches, excess);
            add(&self.stats.dropped_samples, samples);
            tracing::warn!(
                batches = excess,
                samples,
                max_queue_length = max,
                "the publisher's local queue is full: dropped the oldest batches"
            );
        }
        report.queued_batches = queue.len();
        self.stats
            .queued_batches
            .store(queue.len() as u64, Ordering::Relaxed);
        report
    }

    fn count_dropped(&self, report: &mut PublishReport, samples: usize) {
        report.dropped_batches += 1;
        report.dropped_samples += samples;
        add(&self.stats.dropped_batches, 1);
        add(&self.stats.dropped_samples, samples);
    }
}

/// Whether sending again may help: the underlying cause of a final delivery
/// failure decides.
fn is_transient(e: &Error) -> bool {
    if e.kind() == &ErrorKind::DeliveryFailed {
        if let Some(inner) = e.source_as::<Error>() {
            return is_transient(inner);
        }
    }
    e.is_retryable()
}

/// This machine's host name (Ceilometer's default `host`): `/proc/sys/kernel/hostname`,
/// else `/etc/hostname`, else `$HOSTNAME`, else the `hostname` command, else `localhost`.
pub fn local_hostname() -> String {
    let clean = |s: String| {
        let t = s.trim().to_owned();
        (!t.is_empty()).then_some(t)
    };
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(clean)
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .and_then(clean)
        })
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(clean))
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(clean)
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
