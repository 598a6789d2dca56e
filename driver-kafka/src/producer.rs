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

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{CloseReport, Error, ErrorKind, OutgoingRecord, PendingDelivery, Result};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

use crate::admin::TopicAdmin;
use crate::errors;
use crate::logging::LogContext;

type Client = FutureProducer<LogContext>;

enum State {
    Idle,
    Open(Client),
    Closed,
}

/// The lazily created, shared producer of one driver.
pub(crate) struct KafkaProducer {
    config: ClientConfig,
    admin: Arc<TopicAdmin>,
    state: Mutex<State>,
}

impl fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Idle => "idle",
            State::Open(_) => "open",
            State::Closed => "closed",
        };
        f.debug_struct("KafkaProducer")
            .field("config", &self.config)
            .field("state", &state)
            .finish()
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
    pub(crate) fn new(config: ClientConfig, admin: Arc<TopicAdmin>) -> Self {
        KafkaProducer {
            config,
            admin,
            state: Mutex::new(State::Idle),
        }
    }

    fn create(&self) -> Result<Client> {
        self.config
            .create_with_context(LogContext::new("producer"))
            .map_err(|e| errors::transport("could not create the Kafka producer", e))
    }

    /// The producer, created on first use (and re-created after a fatal error).
    fn producer(&self) -> Result<Client> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &*state {
            State::Closed => return Err(Error::closed("kafka producer")),
            State::Open(p) => match p.client().fatal_error() {
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
        if let State::Open(old) = std::mem::replace(&mut *state, State::Open(fresh.clone())) {
            retire(old);
        }
        Ok(fresh)
    }

    /// Queue a batch of records, one outcome per record; see the module docs.
    pub(crate) async fn send_batch(
        &self,
        batch: &[OutgoingRecord],
    ) -> Vec<Result<PendingDelivery>> {
        let producer = match self.ready_for(batch).await {
            Ok(p) => p,
            Err(e) => return errors::for_each(batch.len(), e),
        };
        batch
            .iter()
            .map(|r| {
                let record = FutureRecord::<(), [u8]>::to(&r.topic).payload(&r.body[..]);
                match producer.send_result(record) {
                    Ok(delivery) => Ok(PendingDelivery::Pending(Box::pin(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((error, _record))) => Err(errors::delivery_failed(error)),
                            Err(_) => Err(errors::outcome_unknown(
                                "the producer was dropped before the broker acknowledged the record",
                            )),
                        }
                    }))),
                    Err((error, _record)) => Err(errors::send_refused(&r.topic, error)),
                }
            })
            .collect()
    }

    /// The producer, once the batch's topics exist (where the driver creates them).
    async fn ready_for(&self, batch: &[OutgoingRecord]) -> Result<Client> {
        if matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            State::Closed
        ) {
            return Err(Error::closed("kafka producer"));
        }
        if self.admin.enabled() {
            if let [one] = batch {
                // The usual single send: no list of topics to build.
                self.admin.ensure(std::slice::from_ref(&one.topic)).await?;
            } else {
                let topics: Vec<&str> = batch.iter().map(|r| r.topic.as_str()).collect();
                self.admin.ensure(&topics).await?;
            }
        }
        self.producer()
    }

    /// Refuse new sends, flush within `timeout`, purge and count what is left.
    pub(crate) async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        let producer = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *state, State::Closed) {
                State::Open(p) => p,
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
