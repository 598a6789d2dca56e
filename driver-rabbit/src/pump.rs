//! Consuming: a task per subscription (or RPC server, or reply queue) that owns a
//! connection, declares its queues, consumes them and hands each delivery to an
//! inbox; when the connection or channel is lost, or the broker cancels the
//! consumer, it waits (the reconnect waits), reconnects, declares again and goes on.
//! Deliveries not acknowledged on a lost channel are delivered again by the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use messaging_core::observability::metrics::{self, Gauge};
use messaging_core::observability::ErrorReport;
use messaging_core::{Error, Result};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::compression;
use crate::connection::{transport_error, Connector, Topology};

/// Prefetch when `rabbit_qos_prefetch_count` is 0 (oslo: unlimited); bounds what a
/// consumer holds unacknowledged.
pub(crate) const DEFAULT_PREFETCH: u16 = 1000;

/// One declaration a consumer makes before consuming.
#[derive(Debug, Clone)]
pub(crate) enum Declaration {
    /// A topic exchange.
    TopicExchange(String),
    /// A fanout exchange.
    FanoutExchange(String),
    /// A lasting queue bound to an exchange with each key.
    Lasting {
        queue: String,
        exchange: String,
        keys: Vec<String>,
    },
    /// A transient (expiring) queue, bound to an exchange with a key when given.
    Transient {
        queue: String,
        binding: Option<(String, String)>,
    },
}

/// What a consumer declares and consumes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Names its connection on the broker.
    pub(crate) purpose: &'static str,
    pub(crate) declarations: Vec<Declaration>,
    pub(crate) queues: Vec<String>,
    /// Queues deleted on a clean close (a server's fanout queue).
    pub(crate) delete_on_close: Vec<String>,
    pub(crate) prefetch: u16,
}

/// One delivery, with the tag the inbox gave it.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) tag: u64,
    pub(crate) routing_key: Arc<str>,
    pub(crate) body: Bytes,
}

/// Where a delivery can be settled: the channel it came on and its tag there.
///
/// Settled with the channel's own `basic_ack` / `basic_reject`, not lapin's
/// per-delivery `Acker`, which hands each one to lapin's internal RPC task first (a
/// wake-up of another task per settlement, on the path of every RPC call). On a
/// channel lost meanwhile, settling fails (logged): the broker delivers it again.
#[derive(Debug)]
struct Unsettled {
    channel: Channel,
    tag: u64,
}

/// The deliveries handed out and not yet settled, by the tag the inbox gave them.
type UnsettledMap = Arc<Mutex<HashMap<u64, Unsettled, foldhash::fast::RandomState>>>;

/// What to do with taken deliveries: handed to the consumer task, which settles
/// them on its channel without holding up whoever asked.
#[derive(Debug)]
enum Settle {
    Ack(Vec<Unsettled>),
    Requeue(Vec<Unsettled>),
}

/// The receiving end of a consumer task.
#[derive(Debug)]
pub(crate) struct Inbox {
    deliveries: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivered>>,
    unsettled: UnsettledMap,
    settle: mpsc::UnboundedSender<Settle>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The messages ready in its queues, as last looked up.
    depth: Arc<QueueDepth>,
}

impl Inbox {
    /// Start consuming by `plan`. Fails when the first connection and declarations
    /// fail (a bad URL, credentials or vhost); later failures are retried.
    pub(crate) async fn start(connector: Arc<Connector>, plan: Plan) -> Result<Inbox> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (settle, settlements) = mpsc::unbounded_channel();
        let unsettled = UnsettledMap::default();
        let (stop, stopped) = watch::channel(false);
        let first = Consumer::open(&connector, &plan).await?;
        let depth = Arc::new(QueueDepth::new(&plan.queues));
        let task = tokio::spawn(run(
            connector,
            plan,
            first,
            Channels {
                deliveries: tx,
                settlements,
            },
            unsettled.clone(),
            stopped,
            depth.clone(),
        ));
        Ok(Inbox {
            depth,
            deliveries: tokio::sync::Mutex::new(rx),
            unsettled,
            settle,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// The messages ready in its queues, as last looked up.
    pub(crate) fn depth(&self) -> Option<u64> {
        self.depth.total()
    }

    /// Up to `max` deliveries, waiting up to `wait` for the first. Cancel-safe: the
    /// only wait is the channel's `recv`.
    pub(crate) async fn take(&self, max: usize, wait: Duration) -> Result<Vec<Delivered>> {
        let mut rx = self.deliveries.lock().await;
        let first = match tokio::time::timeout(wait, rx.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(Error::closed("RabbitMQ consumer")),
            Ok(Some(d)) => d,
        };
        let mut out = vec![first];
        while out.len() < max {
            match rx.try_recv() {
                Ok(d) => out.push(d),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The deliveries of `tags` (under one lock); a tag of a lost channel has none.
    fn take_unsettled(&self, tags: Vec<u64>) -> Vec<Unsettled> {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        tags.into_iter()
            .filter_map(|t| unsettled.remove(&t))
            .collect()
    }

    /// Acknowledge: the broker forgets the delivery. Returns at once: the consumer
    /// task sends the acknowledgements (before it closes, if it is closing). One
    /// whose channel was lost meanwhile comes again (at least once); that is
    /// logged, not an error.
    pub(crate) fn ack(&self, tags: Vec<u64>) {
        let taken = self.take_unsettled(tags);
        if !taken.is_empty() {
            // The task is gone only once the inbox closed: its deliveries come again.
            let _ = self.settle.send(Settle::Ack(taken));
        }
    }

    /// Reject with requeue: the broker delivers it again. Returns at once, as
    /// [`Inbox::ack`] does.
    pub(crate) fn requeue(&self, tags: Vec<u64>) {
        let taken = self.take_unsettled(tags);
        if !taken.is_empty() {
            let _ = self.settle.send(Settle::Requeue(taken));
        }
    }

    /// Stop: cancel the consumers, delete the plan's close-time queues, close the
    /// connection (the broker requeues what was not acknowledged). Idempotent.
    pub(crate) async fn close(&self, timeout: Duration) -> Result<()> {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                task.abort();
                return Err(Error::timeout(format!(
                    "RabbitMQ consumer did not close within {timeout:?}"
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One consumer's deliveries, then `None` once the consumer ends (the broker
/// cancelled it, e.g. because its queue was deleted).
type Deliveries =
    futures::stream::BoxStream<'static, Option<lapin::Result<lapin::message::Delivery>>>;

/// Settle every delivery of `settle` at once: all the frames are queued for the
/// connection's I/O loop together (one hand-off, not one per delivery), then the
/// results awaited.
async fn settle_all(settle: Settle) {
    let (deliveries, requeue) = match &settle {
        Settle::Ack(deliveries) => (deliveries, false),
        Settle::Requeue(deliveries) => (deliveries, true),
    };
    let results = futures::future::join_all(deliveries.iter().map(|d| async move {
        if requeue {
            let options = BasicRejectOptions { requeue: true };
            d.channel.basic_reject(d.tag, options).await
        } else {
            d.channel.basic_ack(d.tag, BasicAckOptions::default()).await
        }
    }))
    .await;
    for r in results {
        if let Err(e) = r {
            tracing::debug!(error = %e, requeue, "settling on a lost channel; the broker delivers it again");
        }
    }
}

/// The consumer task's channels: deliveries out, settlements in.
struct Channels {
    deliveries: mpsc::UnboundedSender<Delivered>,
    settlements: mpsc::UnboundedReceiver<Settle>,
}

/// Settlements being sent: polled by the consumer task alongside its deliveries.
type Settling = futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, ()>>;

/// Send what was asked to be settled before the consumer closes its channel.
async fn settle_before_close(channels: &mut Channels, settling: &mut Settling) {
    while let Ok(s) = channels.settlements.try_recv() {
        settling.push(Box::pin(settle_all(s)));
    }
    while settling.next().await.is_some() {}
}

/// A live connection consuming the plan's queues.
struct Consumer {
    connection: Connection,
    channel: Channel,
    tags: Vec<String>,
    stream: futures::stream::SelectAll<Deliveries>,
}

impl Consumer {
    async fn open(connector: &Connector, plan: &Plan) -> Result<Consumer> {
        let (connection, channel) = connector.channel(plan.purpose).await?;
        channel
            .basic_qos(plan.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| transport_error("cannot set the prefetch", e))?;
        let topology = Topology {
            config: &connector.config,
            channel: &channel,
        };
        for d in &plan.declarations {
            declare(&topology, d).await?;
        }
        let mut tags = Vec::new();
        let mut consumers = Vec::new();
        for queue in &plan.queues {
            let tag = format!("{}", consumers.len() + 1);
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| transport_error(&format!("cannot consume {queue}"), e))?;
            tags.push(tag);
            let ended = futures::stream::once(async { None });
            consumers.push(consumer.map(Some).chain(ended).boxed());
        }
        Ok(Consumer {
            connection,
            channel,
            tags,
            stream: futures::stream::select_all(consumers),
        })
    }

    async fn close(self, plan: &Plan) {
        for tag in &self.tags {
            let _ = self
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        for queue in &plan.delete_on_close {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.channel.close(200, "closing".into()).await;
        let _ = self.connection.close(200, "closing".into()).await;
    }
}

async fn declare(t: &Topology<'_>, d: &Declaration) -> Result<()> {
    match d {
        Declaration::TopicExchange(name) => t.topic_exchange(name).await,
        Declaration::FanoutExchange(name) => t.fanout_exchange(name).await,
        Declaration::Lasting {
            queue,
            exchange,
            keys,
        } => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            t.lasting_queue(queue, exchange, &keys).await
        }
        Declaration::Transient { queue, binding } => {
            t.transient_queue(queue).await?;
            match binding {
                Some((exchange, key)) => t.bind(queue, exchange, key).await,
                None => Ok(()),
            }
        }
    }
}

/// How often a consumer looks up how many messages wait in its queues.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// The depth of a consumer's queues: a passive declare of each (it answers with
/// the messages ready, not those delivered and unacknowledged) every
/// [`DEPTH_EVERY`], as a gauge per queue and their sum for the listener's status.
#[derive(Debug)]
pub(crate) struct QueueDepth {
    gauges: Vec<Gauge>,
    /// The sum of the last look-up, `u64::MAX` before the first.
    total: AtomicU64,
}

impl QueueDepth {
    fn new(queues: &[String]) -> Self {
        let gauges = queues
            .iter()
            .map(|q| {
                metrics::gauge(
                    metrics::QUEUE_DEPTH,
                    &metrics::destination_labels("rabbit", q, None),
                )
            })
            .collect();
        QueueDepth {
            gauges,
            total: AtomicU64::new(u64::MAX),
        }
    }

    async fn refresh(&self, channel: &Channel, queues: &[String]) {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut total = 0u64;
        for (queue, gauge) in queues.iter().zip(&self.gauges) {
            match channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
            {
                Ok(q) => {
                    gauge.set(f64::from(q.message_count()));
                    total += u64::from(q.message_count());
                }
                Err(e) => {
                    tracing::debug!(queue, error = %e, "cannot look up the queue's depth");
                    return;
                }
            }
        }
        self.total.store(total, Ordering::Relaxed);
    }

    /// The last sum, if any.
    pub(crate) fn total(&self) -> Option<u64> {
        let t = self.total.load(Ordering::Relaxed);
        (t != u64::MAX).then_some(t)
    }
}

/// Resolves once the inbox asked its task to stop.
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The consumer task: deliveries into the inbox; reconnect when the stream ends.
async fn run(
    connector: Arc<Connector>,
    plan: Plan,
    first: Consumer,
    mut channels: Channels,
    unsettled_map: UnsettledMap,
    mut stopped: watch::Receiver<bool>,
    depth: Arc<QueueDepth>,
) {
    static NEXT_TAG: AtomicU64 = AtomicU64::new(1);
    let mut settling = Settling::new();
    let mut last_key: Option<Arc<str>> = None;
    let mut current = Some(first);
    let mut attempt = 0u32;
    let mut depth_every = tokio::time::interval(DEPTH_EVERY);
    depth_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(mut consumer) = current.take() else {
            let wait = connector.config.reconnect.wait(attempt);
            tokio::select! {
                () = stop_requested(&mut stopped) => return,
                () = tokio::time::sleep(wait) => {}
            }
            // Settlements asked for meanwhile belong to the lost channel: their
            // deliveries come again.
            while channels.settlements.try_recv().is_ok() {}
            match Consumer::open(&connector, &plan).await {
                Ok(c) => {
                    tracing::info!(purpose = plan.purpose, "RabbitMQ consumer reconnected");
                    attempt = 0;
                    current = Some(c);
                }
                Err(e) => {
                    tracing::warn!(purpose = plan.purpose, error = %e, "RabbitMQ consumer cannot reconnect yet");
                    attempt = attempt.saturating_add(1);
                }
            }
            continue;
        };
        loop {
            let next = tokio::select! {
                () = stop_requested(&mut stopped) => {
                    settle_before_close(&mut channels, &mut settling).await;
                    consumer.close(&plan).await;
                    return;
                }
                Some(settle) = channels.settlements.recv() => {
                    settling.push(Box::pin(settle_all(settle)));
                    continue;
                }
                Some(()) = settling.next(), if !settling.is_empty() => continue,
                _ = depth_every.tick() => {
                    depth.refresh(&consumer.channel, &plan.queues).await;
                    continue;
                }
                next = consumer.stream.next() => next,
            };
            match next {
                Some(Some(Ok(d))) => {
                    let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
                    let unsettled = Unsettled {
                        channel: consumer.channel.clone(),
                        tag: d.delivery_tag,
                    };
                    unsettled_map
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(tag, unsettled);
                    let body = match compression::decompressed(
                        d.properties.headers().as_ref(),
                        d.data,
                    ) {
                        Ok(body) => body,
                        Err((why, raw)) => {
                            // Handed on as it is: the core skips and counts it as foreign.
                            tracing::warn!(purpose = plan.purpose, routing_key = %d.routing_key, "cannot read a compressed message: {why}");
                            raw
                        }
                    };
                    // A consumer sees few routing keys: the last one's name is shared.
                    let routing_key = match &last_key {
                        Some(k) if **k == *d.routing_key.as_str() => k.clone(),
                        _ => last_key.insert(Arc::from(d.routing_key.as_str())).clone(),
                    };
                    let delivered = Delivered {
                        tag,
                        routing_key,
                        body,
                    };
                    if channels.deliveries.send(delivered).is_err() {
                        settle_before_close(&mut channels, &mut settling).await;
                        consumer.close(&plan).await;
                        return;
                    }
                }
                Some(Some(Err(e))) => {
                    tracing::warn!(purpose = plan.purpose, error = %e, "RabbitMQ consumer lost its connection; reconnecting");
                    connector
                        .health
                        .disconnected(ErrorReport::of(&transport_error(
                            "the consumer lost its connection",
                            e,
                        )));
                    break;
                }
                // One of the queues' consumers ended: consume them all again, from a
                // new connection, after declaring them again.
                Some(None) | None => {
                    tracing::warn!(
                        purpose = plan.purpose,
                        "RabbitMQ cancelled a consumer (its queue was deleted?); reconnecting"
                    );
                    break;
                }
            }
        }
        // Deliveries of the lost channel cannot be acknowledged any more: the
        // broker delivers them again.
        unsettled_map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let _ = consumer.connection.close(200, "reconnecting".into()).await;
    }
}
