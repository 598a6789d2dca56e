//! Publishing with publisher confirms, on one connection shared by a driver's
//! notifications, requests and replies (reconnected on the next send after a loss).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use messaging_core::{Error, ErrorKind, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::compression;
use crate::connection::{transport_error, Connector, Topology};

/// What must exist before a message is published (declared once per connection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Needs {
    /// Nothing (replies go to the default exchange).
    Nothing,
    /// The topic exchange and a lasting queue named like the key, bound with it
    /// (oslo's notifier and this driver's requests: a message waits for its consumer).
    /// Shared names: a notification's are those of its record and its driver, not
    /// copied per message.
    QueueFor { exchange: Arc<str>, key: Arc<str> },
    /// A fanout exchange.
    FanoutExchange(String),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct Publication<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) body: &'a Bytes,
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

/// A message whose frames lapin queued for its connection: its write by lapin's
/// I/O loop, then the broker's confirm, still to come. Holds one of the publisher's
/// [`Publisher::unconfirmed`] permits until then.
pub(crate) struct Sent {
    handed: BoxFuture<'static, lapin::Result<PublisherConfirm>>,
    needs: Needs,
    declared: Declared,
    _unconfirmed: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sent").field("needs", &self.needs).finish()
    }
}

/// How a publish waits when [`Publisher::unconfirmed`] has no permit left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Refuse at once with `ResourceExhausted` (records and requests: the core
    /// waits and sends again, up to its send timeout).
    Refuse,
    /// Wait for a confirm to free a permit (replies: a server has nobody to hand
    /// the wait to).
    Wait,
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
    /// One permit per message handed over and not yet confirmed (`max_unconfirmed`):
    /// publishing does not wait for lapin's I/O loop to write each message, so this
    /// bounds what waits in memory for a slow broker.
    unconfirmed: Arc<Semaphore>,
}

impl Publisher {
    pub(crate) fn new(connector: Arc<Connector>) -> Self {
        let unconfirmed = Arc::new(Semaphore::new(connector.config.max_unconfirmed));
        Publisher {
            connector,
            link: tokio::sync::Mutex::new(None),
            opened: std::sync::atomic::AtomicU64::new(0),
            unconfirmed,
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

    /// Publish each message, in order, on one channel: per message, its write and
    /// the broker's confirm still to come ([`confirmed`]), or why it was not sent.
    /// When the connection cannot be opened or a declaration fails, that message
    /// and the rest of the batch are refused with the same error: none of them was
    /// sent.
    ///
    /// Returns once lapin queued every message's frames, not once its I/O loop wrote
    /// them: lapin queues a message's frames when its publish is first polled and
    /// resolves the publish after the write, and waiting for that thread once per
    /// message made a sender as slow as a round trip through it. The write is
    /// awaited with the confirm instead; a failed write is a failed delivery (the
    /// message never reached the broker). Messages awaiting their confirm are
    /// bounded by `max_unconfirmed` (see [`WhenFull`]). The link's lock is held to
    /// open the connection and declare, not while messages are handed over.
    pub(crate) async fn publish(
        &self,
        batch: &[Publication<'_>],
        when_full: WhenFull,
    ) -> Vec<Result<Sent>> {
        let mut out = Vec::with_capacity(batch.len());
        for (i, p) in batch.iter().enumerate() {
            let permit = match when_full {
                WhenFull::Refuse => self.unconfirmed.clone().try_acquire_owned().ok(),
                WhenFull::Wait => self.unconfirmed.clone().acquire_owned().await.ok(),
            };
            let Some(permit) = permit else {
                out.push(Err(self.full()));
                continue;
            };
            let (channel, generation, declared) = match self.ready(p).await {
                Ok(link) => link,
                Err(e) => {
                    out.extend(refuse_all(batch.len() - i, &e));
                    break;
                }
            };
            let (body, props) = match body_and_properties(p, self.connector.config.compress) {
                Ok(prepared) => prepared,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            // The frames are queued now (in the batch's order); a message refused at
            // once (the channel is not connected) is not sent.
            let handed = match queue_frames(hand_over(channel, p, body, props)) {
                Ok(handed) => handed,
                Err(e) => {
                    self.forget(generation).await;
                    out.push(Err(transport_error("cannot publish", e)));
                    continue;
                }
            };
            out.push(Ok(Sent {
                handed,
                needs: p.needs.clone(),
                declared,
                _unconfirmed: permit,
            }));
        }
        out
    }

    /// The refusal of a message while `max_unconfirmed` are awaiting their confirm.
    fn full(&self) -> Error {
        Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "{} messages are waiting for RabbitMQ's confirm (max_unconfirmed)",
                self.connector.config.max_unconfirmed
            ),
        )
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
                t.lasting_queue(key, exchange, &[&**key]).await?;
            }
            Needs::FanoutExchange(x) => t.fanout_exchange(x).await?,
        }
        lock(&link.declared).insert(p.needs.clone());
    }
    Ok(())
}

/// Poll `handed` once, which queues its frames: the rest of it (the write), or the
/// error it failed with at once.
fn queue_frames(
    mut handed: BoxFuture<'static, lapin::Result<PublisherConfirm>>,
) -> lapin::Result<BoxFuture<'static, lapin::Result<PublisherConfirm>>> {
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match handed.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => Err(e),
        std::task::Poll::Ready(Ok(confirm)) => Ok(Box::pin(std::future::ready(Ok(confirm)))),
        std::task::Poll::Pending => Ok(handed),
    }
}

/// The body to publish for `p` (compressed, with its header, when `compress`) and
/// its properties. A message that cannot be compressed is refused on its own: the
/// connection is not at fault.
fn body_and_properties(p: &Publication<'_>, compress: bool) -> Result<(Bytes, BasicProperties)> {
    let props = properties(p.expiration);
    if !compress {
        return Ok((p.body.clone(), props));
    }
    let body = compression::compress(p.body)
        .map_err(|e| Error::new(ErrorKind::Internal, "cannot compress a message").with_source(e))?;
    Ok((
        Bytes::from(body),
        props.with_headers(compression::headers()),
    ))
}

/// The publish of `p` (its `body` and `props`) on `channel`, owning what it needs:
/// its frames are queued when it is first polled, and it resolves once lapin's I/O
/// loop wrote them.
fn hand_over(
    channel: Channel,
    p: &Publication<'_>,
    body: Bytes,
    props: BasicProperties,
) -> BoxFuture<'static, lapin::Result<PublisherConfirm>> {
    let options = BasicPublishOptions {
        mandatory: p.mandatory,
        ..BasicPublishOptions::default()
    };
    let (exchange, key): (ShortString, ShortString) = (p.exchange.into(), p.routing_key.into());
    Box::pin(async move {
        channel
            .basic_publish(exchange, key, options, &body, props)
            .await
    })
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
    let confirm = match sent.handed.await {
        Ok(confirm) => confirm,
        // Not written: the broker never had it, so sending it again cannot duplicate it.
        Err(e) => {
            return Err(Error::new(
                ErrorKind::DeliveryFailed,
                format!("could not write {} to RabbitMQ", what()),
            )
            .with_retryable(true)
            .with_source(e))
        }
    };
    match confirm.await {
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
