//! The driver's one shared producer: created on first send, asynchronous and batched.
//!
//! `send_batch` hands each record straight to librdkafka (no task per record) and
//! returns as soon as librdkafka queued them; each returned [`PendingDelivery`]
//! resolves with the broker's acknowledgement or, once librdkafka gives up (after
//! `delivery_timeout`, retrying internally; with idempotence those retries never
//! duplicate or reorder), a typed error: [`ErrorKind::DeliveryFailed`] when the
//! record is known not to be persisted (the core retries it if retryable, as its
//! `retry` allows), [`ErrorKind::OutcomeUnknown`] when it may be (never resent;
//! see [`errors::delivery_failed`]).
//!
//! `close` flushes within the deadline, counts what is still undelivered, then purges
//! it explicitly: the driver never relies on librdkafka's drop, which purges silently.
//!
//! **Refused credentials.** librdkafka reports a failed SASL handshake to the error
//! callback only, then reconnects and fails again, forever, while the records wait
//! for `delivery_timeout`. Here the first refusal ends that client: a watcher task
//! purges its records that were never transmitted (their receipts resolve with
//! [`ErrorKind::Authentication`], not retryable) and retires it; the next send
//! creates a fresh client, which tries the credentials once more.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{CloseReport, Error, ErrorKind, OutgoingRecord, PendingDelivery, Result};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use crate::admin::TopicAdmin;
use crate::errors;
use crate::logging::{AuthWatch, LogContext};

type Client = FutureProducer<LogContext>;

/// A client and what tells when the broker refused its credentials.
#[derive(Clone)]
struct Open {
    client: Client,
    auth: Arc<AuthWatch>,
}

enum State {
    Idle,
    Open(Open),
    Closed,
}

/// The lazily created, shared producer of one driver.
pub(crate) struct KafkaProducer {
    config: ClientConfig,
    admin: Arc<TopicAdmin>,
    state: Arc<Mutex<State>>,
    stats: Arc<crate::stats::ClientStats>,
}

impl fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Idle => "idle",
            State::Open(_) => "open",
            State::Closed => "closed",
        };
        f.debug_struct("KafkaProducer")
            .field("config", &crate::config::redacted(&self.config))
            .field("state", &state)
            .finish()
    }
}

/// The outcome of one record: the broker's acknowledgement, or why not. When the
/// broker refuses the client's credentials first, the record is purged from the
/// local queue (by the client's watcher) unless it was transmitted already: purged,
/// it fails with [`ErrorKind::Authentication`]; transmitted, it gets its real outcome.
///
/// The refusal is read when the delivery report comes, not waited for beside it: it
/// is recorded before the watcher purges, so a record purged because of it always
/// finds it, and waiting on the watch per record cost a registration in the watch's
/// waiter list (and its removal) for every record sent.
async fn delivered(
    delivery: rdkafka::producer::DeliveryFuture,
    auth: Arc<AuthWatch>,
) -> Result<()> {
    let outcome = delivery.await;
    outcome_of(outcome, auth.refused())
}

/// `Canceled`: the client dropped the record's delivery report.
fn outcome_of<Canceled>(
    outcome: std::result::Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Canceled>,
    refusal: Option<Error>,
) -> Result<()> {
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _record))) => match refusal {
            Some(refusal)
                if error.rdkafka_error_code()
                    == Some(rdkafka::types::RDKafkaErrorCode::PurgeQueue) =>
            {
                Err(refusal.with_source(error))
            }
            _ => Err(errors::delivery_failed(error)),
        },
        Err(_) => Err(errors::outcome_unknown(
            "the producer was dropped before the broker acknowledged the record",
        )),
    }
}

/// Drop a producer off the async runtime: its drop joins a thread and waits.
fn retire(producer: Client) {
    let drop_it = move || drop(producer);
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(drop_it);
        }
        Err(_) => drop_it(),
    }
}

impl KafkaProducer {
    pub(crate) fn new(
        config: ClientConfig,
        admin: Arc<TopicAdmin>,
        stats: Arc<crate::stats::ClientStats>,
    ) -> Self {
        KafkaProducer {
            config,
            admin,
            stats,
            state: Arc::new(Mutex::new(State::Idle)),
        }
    }

    fn create(&self) -> Result<Open> {
        let auth = Arc::new(AuthWatch::default());
        let client = self
            .config
            .create_with_context(
                LogContext::with_auth("producer", auth.clone()).with_stats(self.stats.clone()),
            )
            .map_err(|e| errors::transport("could not create the Kafka producer", e))?;
        Ok(Open { client, auth })
    }

    /// The producer, created on first use (and re-created after a fatal error).
    fn producer(&self) -> Result<Open> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Closed => return Err(Error::closed("kafka producer")),
            State::Open(p) => match p.client.client().fatal_error() {
                None => return Ok(p.clone()),
                Some((code, reason)) => {
                    // An idempotent producer that lost its guarantees (e.g. out-of-order
                    // sequence) is unusable: start a fresh one. Its unacknowledged records
                    // fail with an unknown outcome (they may be persisted): not resent.
                    tracing::error!(error = %code, reason, "the Kafka producer hit a fatal error; replacing it");
                }
            },
            State::Idle => {}
        }
        let fresh = self.create()?;
        self.watch_credentials(&fresh);
        if let State::Open(old) = std::mem::replace(&mut *state, State::Open(fresh.clone())) {
            retire(old.client);
        }
        Ok(fresh)
    }

    /// Once the broker refuses `client`'s credentials: purge its records that were
    /// never transmitted (their receipts then say so) and retire it, so that it stops
    /// reconnecting; the next send creates a fresh client.
    fn watch_credentials(&self, open: &Open) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut refused = open.auth.subscribe();
        let state = Arc::downgrade(&self.state);
        runtime.spawn(async move {
            // None: the client went away (closed, replaced) without a refusal.
            let Some(error) = refused.refused().await else {
                return;
            };
            let Some(state) = state.upgrade() else { return };
            let client = {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                match &*st {
                    State::Open(p) if refused.watches(&p.auth) => {
                        match std::mem::replace(&mut *st, State::Idle) {
                            State::Open(p) => p.client,
                            _ => return,
                        }
                    }
                    _ => return,
                }
            };
            tracing::error!(error = %error, "retiring the Kafka producer: the broker refused its credentials");
            client.purge(PurgeConfig::default().queue());
            retire(client);
        });
    }

    /// Queue a batch of records, one outcome per record; see the module docs.
    pub(crate) async fn send_batch(
        &self,
        batch: &[OutgoingRecord],
    ) -> Vec<Result<PendingDelivery>> {
        let Open {
            client: producer,
            auth,
        } = match self.ready_for(batch).await {
            Ok(p) => p,
            Err(e) => return errors::for_each(batch.len(), e),
        };
        batch
            .iter()
            .map(|r| {
                let record = FutureRecord::<(), [u8]>::to(&r.topic).payload(&r.body[..]);
                match producer.send_result(record) {
                    Ok(delivery) => Ok(PendingDelivery::Pending(Box::pin(delivered(
                        delivery,
                        auth.clone(),
                    )))),
                    Err((error, _record)) => Err(errors::send_refused(&r.topic, error)),
                }
            })
            .collect()
    }

    /// The producer, once the batch's topics exist (where the driver creates them).
    /// A producer whose credentials the broker refused is not handed out again.
    async fn ready_for(&self, batch: &[OutgoingRecord]) -> Result<Open> {
        // A closed producer is refused there.
        let open = self.producer()?;
        if self.admin.enabled() {
            if let [one] = batch {
                // The usual single send: no list of topics to build.
                self.admin
                    .ensure_unless_refused(std::slice::from_ref(&one.topic), &open.auth)
                    .await?;
            } else {
                let topics: Vec<&str> = batch.iter().map(|r| &*r.topic).collect();
                self.admin
                    .ensure_unless_refused(&topics, &open.auth)
                    .await?;
            }
        }
        Ok(open)
    }

    /// What tells when the broker refuses the producer's credentials (the producer is
    /// created now if need be: it connects at once, so a refusal comes within a round
    /// trip). The driver's admin requests use the same credentials.
    pub(crate) fn credentials(&self) -> Result<Arc<AuthWatch>> {
        Ok(self.producer()?.auth)
    }

    /// Refuse new sends, flush within `timeout`, purge and count what is left.
    pub(crate) async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        let producer = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *state, State::Closed) {
                State::Open(p) => p.client,
                State::Idle | State::Closed => return Ok(CloseReport::default()),
            }
        };
        tokio::task::spawn_blocking(move || {
            if let Err(e) = producer.flush(Timeout::After(timeout)) {
                tracing::warn!(error = %e, ?timeout, "the Kafka producer could not flush before the deadline");
            }
            let undelivered = u64::try_from(producer.in_flight_count()).unwrap_or(0);
            if undelivered > 0 {
                tracing::error!(
                    undelivered,
                    "closing the Kafka producer with records the broker never acknowledged; they are lost"
                );
                // Fail their deliveries now (as not retryable) rather than in drop.
                producer.purge(PurgeConfig::default().queue().inflight());
                let _ = producer.flush(Timeout::After(Duration::from_millis(100)));
            }
            drop(producer);
            CloseReport { undelivered }
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("producer close task failed: {e}")))
    }
}
