//! Publishing with publisher confirms, on one connection shared by a driver's
//! notifications, requests and replies (reconnected on the next send after a loss).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use messaging_core::{Error, ErrorKind, Result};

use crate::compression;
use crate::connection::{transport_error, Connector, Topology};

/// What must exist before a message is published (declared once per connection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Needs {
    /// Nothing (replies go to the default exchange).
    Nothing,
    /// The topic exchange and a lasting queue named like the key, bound with it
    /// (oslo's notifier and this driver's requests: a message waits for its consumer).
    QueueFor { exchange: String, key: String },
    /// A fanout exchange.
    FanoutExchange(String),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Publication<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) body: &'a [u8],
    /// Return it (an error) when no queue takes it.
    pub(crate) mandatory: bool,
    /// The message's time to live in the queue.
    pub(crate) expiration: Option<Duration>,
    pub(crate) needs: Needs,
}

/// oslo's message properties (seen on the wire): JSON, UTF-8, persistent,
/// priority 0, an empty header table.
pub(crate) fn properties(expiration: Option<Duration>) -> BasicProperties {
    let p = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(FieldTable::default());
    match expiration {
        Some(ttl) => p.with_expiration(ttl.as_millis().max(1).to_string().into()),
        None => p,
    }
}

/// What one connection declared; shared with its confirms, so that a returned
/// message forgets its declaration (someone deleted the queue) and its resend
/// declares it again.
type Declared = Arc<std::sync::Mutex<HashSet<Needs>>>;

fn lock(declared: &Declared) -> std::sync::MutexGuard<'_, HashSet<Needs>> {
    declared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A message handed to the broker: its confirm still to come.
#[derive(Debug)]
pub(crate) struct Sent {
    confirm: PublisherConfirm,
    needs: Needs,
    declared: Declared,
}

#[derive(Debug)]
struct Link {
    connection: Connection,
    channel: Channel,
    declared: Declared,
    /// Which connection this is (counted from 1), to forget only this one.
    generation: u64,
}

/// The driver's publishing connection.
#[derive(Debug)]
pub(crate) struct Publisher {
    connector: Arc<Connector>,
    link: tokio::sync::Mutex<Option<Link>>,
    opened: std::sync::atomic::AtomicU64,
}

impl Publisher {
    pub(crate) fn new(connector: Arc<Connector>) -> Self {
        Publisher {
            connector,
            link: tokio::sync::Mutex::new(None),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn open(&self) -> Result<Link> {
        let (connection, channel) = self.connector.channel("publisher").await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| transport_error("cannot turn on publisher confirms", e))?;
        Ok(Link {
            connection,
            channel,
            declared: Declared::default(),
            generation: self
                .opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        })
    }

    /// The channel to publish `p` on, and its connection's generation: the link
    /// (opened when there is none or it was lost) with what `p` needs declared.
    async fn ready(&self, p: &Publication<'_>) -> Result<(Channel, u64, Declared)> {
        let mut guard = self.link.lock().await;
        if guard
            .as_ref()
            .is_some_and(|l| !l.connection.status().connected())
        {
            *guard = None;
        }
        let link = match guard.as_mut() {
            Some(link) => link,
            None => guard.insert(self.open().await?),
        };
        if let Err(e) = declare_needs(&self.connector, link, p).await {
            *guard = None;
            return Err(e);
        }
        Ok((link.channel.clone(), link.generation, link.declared.clone()))
    }

    /// Drop the link of `generation` (if it is still the current one): the next
    /// publish opens another.
    async fn forget(&self, generation: u64) {
        let mut guard = self.link.lock().await;
        if guard.as_ref().is_some_and(|l| l.generation == generation) {
            *guard = None;
        }
    }

    /// Publish each message, in order, on one channel: per message, the broker's
    /// confirm still to come, or why it was not sent. After a failure to hand a
    /// message over, the connection is dropped (the next call opens another); when
    /// the connection cannot be opened or a declaration fails, that message and the
    /// rest of the batch are refused with the same error: none of them was sent.
    ///
    /// The link's lock is held to open the connection and declare, not while a
    /// message is handed to the connection's I/O loop: concurrent publishers (RPC
    /// requests and replies, notifications) do not wait for each other's hand-off.
    /// The messages of a batch are handed over together: lapin queues a message's
    /// frames when its publish is first polled and resolves the publish once its I/O
    /// loop wrote them, so publishing one after the other would wait for that thread
    /// once per message; polled together (in order, so the frames stay in order)
    /// they are written in one go.
    pub(crate) async fn publish(&self, batch: &[Publication<'_>]) -> Vec<Result<Sent>> {
        let mut links = Vec::with_capacity(batch.len());
        let mut refused = None;
        for p in batch {
            match self.ready(p).await {
                Ok(link) => links.push(link),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let compress = self.connector.config.compress;
        let handed = futures::future::join_all(
            links
                .iter()
                .zip(batch)
                .map(|((channel, _, _), p)| publish_one(channel, p, compress)),
        )
        .await;
        // Each handed message has its own outcome (one that failed does not make
        // those handed with it unsent); what could not be readied is refused.
        let mut out = Vec::with_capacity(batch.len());
        let mut forgotten = None;
        for ((handed, (_, generation, declared)), p) in handed.into_iter().zip(links).zip(batch) {
            match handed {
                Ok(confirm) => out.push(Ok(Sent {
                    confirm,
                    needs: p.needs.clone(),
                    declared,
                })),
                Err(e) => {
                    if forgotten != Some(generation) {
                        self.forget(generation).await;
                        forgotten = Some(generation);
                    }
                    out.push(Err(e));
                }
            }
        }
        if let Some(e) = refused {
            out.extend(refuse_all(batch.len() - out.len(), &e));
        }
        out
    }

    /// Wait (up to `timeout`) for the confirms still outstanding, then close.
    pub(crate) async fn close(&self, timeout: Duration) {
        if let Some(link) = self.link.lock().await.take() {
            let _ = tokio::time::timeout(timeout, link.channel.wait_for_confirms()).await;
            let _ = link.channel.close(200, "closing".into()).await;
            let _ = link.connection.close(200, "closing".into()).await;
        }
    }
}

fn refuse_all(n: usize, e: &Error) -> Vec<Result<Sent>> {
    (0..n)
        .map(|_| Err(Error::new(e.kind().clone(), e.message()).with_retryable(e.is_retryable())))
        .collect()
}

/// Declare what `p` needs, once per connection.
async fn declare_needs(connector: &Connector, link: &mut Link, p: &Publication<'_>) -> Result<()> {
    if p.needs != Needs::Nothing && !lock(&link.declared).contains(&p.needs) {
        let t = Topology {
            config: &connector.config,
            channel: &link.channel,
        };
        match &p.needs {
            Needs::Nothing => {}
            Needs::QueueFor { exchange, key } => {
                t.topic_exchange(exchange).await?;
                t.lasting_queue(key, exchange, &[key]).await?;
            }
            Needs::FanoutExchange(x) => t.fanout_exchange(x).await?,
        }
        lock(&link.declared).insert(p.needs.clone());
    }
    Ok(())
}

async fn publish_one(
    channel: &Channel,
    p: &Publication<'_>,
    compress: bool,
) -> Result<PublisherConfirm> {
    let options = BasicPublishOptions {
        mandatory: p.mandatory,
        ..BasicPublishOptions::default()
    };
    let (exchange, key) = (p.exchange.into(), p.routing_key.into());
    let sent = if compress {
        let body = compression::compress(p.body).map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot compress a message").with_source(e)
        })?;
        let props = properties(p.expiration).with_headers(compression::headers());
        channel
            .basic_publish(exchange, key, options, &body, props)
            .await
    } else {
        channel
            .basic_publish(exchange, key, options, p.body, properties(p.expiration))
            .await
    };
    sent.map_err(|e| transport_error("cannot publish", e))
}

/// How a confirm ended, in the core's terms: a return (no queue took it) or a nack
/// is a known failure; a lost connection before the confirm may or may not have
/// left the message with the broker. `what` names the message in an error (built
/// only then).
///
/// A returned message whose queue this connection had declared (a notification, a
/// request) means someone deleted the queue: the declaration is forgotten and the
/// failure is retryable, so the core's resend declares the queue again (nothing was
/// queued, so a resend cannot duplicate). A returned reply is not retryable: its
/// caller's queue is gone.
pub(crate) async fn confirmed(sent: Sent, what: impl FnOnce() -> String) -> Result<()> {
    match sent.confirm.await {
        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) => {
            let redeclare = sent.needs != Needs::Nothing;
            if redeclare {
                lock(&sent.declared).remove(&sent.needs);
            }
            Err(Error::new(
                ErrorKind::DeliveryFailed,
                format!(
                    "RabbitMQ returned {}: no queue is bound for it ({} {})",
                    what(),
                    returned.reply_code,
                    returned.reply_text
                ),
            )
            .with_retryable(redeclare))
        }
        Ok(Confirmation::Nack(_)) => Err(Error::new(
            ErrorKind::DeliveryFailed,
            format!("RabbitMQ refused {} (nack)", what()),
        )
        .with_retryable(true)),
        Err(e) => Err(Error::new(
            ErrorKind::OutcomeUnknown,
            format!(
                "the connection was lost before RabbitMQ confirmed {}; it may be queued",
                what()
            ),
        )
        .with_source(e)),
    }
}
