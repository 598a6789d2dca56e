//! # driver-rabbit: RabbitMQ (`rabbit://`, `amqp://`)
//!
//! ```text
//! rabbit://[user[:pass]@]host[:port][,[user[:pass]@]host2[:port2]]...[/vhost][?option=value...]
//! rabbit+ssl://...           TLS (same as ?ssl=true)
//! amqp://...                 an alias of rabbit://
//! ```
//!
//! Notifications and RPC over AMQP 0-9-1 (RabbitMQ), in oslo.messaging's rabbit
//! topology and wire format, so Python services using oslo.messaging and Rust
//! services using this crate exchange notifications and answer each other's calls.
//! A bare `rabbit://` is `guest:guest@localhost:5672` on the vhost `/`; the default
//! port is 5672 (also with TLS); a vhost of `/`, `//`, `/%2F` or none is `/`.
//! Several hosts are tried in turn, on connect and on every reconnect.
//!
//! **Topology** (X is `control_exchange`, default `openstack`, a topic exchange):
//! a notification goes to X with routing key `<topic>.<priority>`, and the sender
//! declares the queue of that name (as oslo's notifier does, so notifications wait
//! for their first listener); a listener without a pool consumes `<topic>.<priority>`,
//! a pool P consumes one queue named P bound with each `<topic>.<priority>` it
//! handles. An RPC server consumes `<topic>`, `<topic>.<server>` (both bound to X)
//! and its own `<topic>_fanout_<hex>` queue bound to the fanout exchange
//! `<topic>_fanout`; a caller gets one `reply_<hex>` queue, replies come through the
//! default exchange.
//!
//! **Guarantees.** Publisher confirms on every publish: a delivery receipt means
//! the broker has the notification, a notification no queue takes is an error (it
//! is published mandatory), and one whose connection was lost before the confirm is
//! reported as an unknown outcome, never resent by the core. Listeners acknowledge
//! after the handler (at least once); a requeue is a reject with requeue; what a
//! stopped or lost listener did not acknowledge is delivered again. A lost
//! connection, a channel closed by the broker or a consumer the broker cancelled:
//! the consumer reconnects with the reconnect waits, declares again and resumes; the
//! publisher reconnects on its next send. RPC requests are acknowledged when a
//! server takes them (at most once, as oslo); a call's timeout is its request's TTL.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `control_exchange` | `openstack` | the topic exchange for notifications and RPC |
//! | `amqp_durable_queues` | false | the exchange and the topic, server and notification queues are durable |
//! | `amqp_auto_delete` | false | ... and auto-delete |
//! | `rabbit_qos_prefetch_count` | 0 | most unacknowledged deliveries per consumer (0: 1000) |
//! | `heartbeat_timeout_threshold` | 60 | AMQP heartbeat in seconds (0: off) |
//! | `rabbit_quorum_queue` | false | topic, server and notification queues are quorum queues |
//! | `rabbit_transient_quorum_queue` | false | reply and fanout queues are quorum queues |
//! | `rabbit_quorum_delivery_limit`, `rabbit_quorum_max_memory_length`, `rabbit_quorum_max_memory_bytes` | 0 | quorum queue arguments (0: not set) |
//! | `rabbit_transient_queues_ttl` | 1800 | `x-expires` of reply and fanout queues, seconds (0: none) |
//! | `rabbit_retry_interval`, `rabbit_retry_backoff`, `rabbit_interval_max` | 1, 2, 30 | reconnect waits: first, step, most (seconds) |
//! | `kombu_reconnect_delay` | 1.0 | added to every reconnect wait (seconds) |
//! | `rabbit_login_method` | `AMQPLAIN` | or `PLAIN` |
//! | `ssl` | false | TLS; the broker's host name is checked |
//! | `ssl_ca_file` | (system CAs) | PEM file of the CAs for the broker's certificate |
//! | `ssl_cert_file`, `ssl_key_file` | none | a client certificate and its key (PEM), both or neither |
//! | `kombu_compression` | unset | `gzip`: compress bodies as kombu (zlib); received ones are decompressed by their header |
//! | `connection_timeout` | 10 | one connection attempt to one host (seconds) |
//! | `max_record_bytes` | 134217728 | largest record accepted (the broker's `max_message_size`); 0: no limit |
//! | `rpc_response_timeout` | 60 | the default call timeout of an RPC client on this URL |
//! | `heartbeat_rate` | 3 | accepted for oslo configs; see docs/rabbit.md |

mod compression;
mod connection;
mod options;
mod publisher;
mod pump;
mod rpc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::driver::{
    Capabilities, CloseReport, DeliveryTag, Driver, DriverFactory, OutgoingRecord, PendingDelivery,
    ReceivedRecord, Subscription, SubscriptionSpec,
};
use messaging_core::options::{DriverOptions, OptionSpec};
use messaging_core::rpc::{RpcDriver, RpcOperation};
use messaging_core::{Dialect, DriverRegistry, Error, Result, TransportUrl};

use crate::connection::Connector;
use crate::options::{RabbitConfig, OPTIONS};
use crate::publisher::{confirmed, Needs, Publication, Publisher, WhenFull};
use crate::pump::{Declaration, Inbox, Plan, DEFAULT_PREFETCH};

pub use crate::options::{DEFAULT_MAX_RECORD_BYTES, DEFAULT_PORT};

/// Entry points for the fuzz targets (`fuzz/` at the top of the repository). Not
/// part of the API: no stability promise, hidden from the docs.
#[doc(hidden)]
pub mod __private {
    use messaging_core::options::DriverOptions;
    use messaging_core::{Result, TransportUrl};

    /// Resolve `url`'s query and `config_options` as [`super::client_settings`]
    /// does and read the driver's configuration from them, without reading any
    /// file it names and without connecting.
    pub fn parse_config(url: &TransportUrl, config_options: &[(String, String)]) -> Result<()> {
        let query = url.query_map();
        let options =
            DriverOptions::resolve(super::OPTIONS, &[], [config_options, query.as_slice()])?;
        super::RabbitConfig::from_url(url, &options).map(drop)
    }
}

/// The AMQP settings the driver uses for a URL, for tools that talk AMQP directly
/// with the same settings (such as the raw baseline of `messaging bench`). Its
/// `Debug` never shows the password.
#[derive(Clone)]
pub struct ClientSettings {
    /// The URL's first host, with its credentials, vhost, heartbeat, connection
    /// timeout and login method.
    pub uri: lapin::uri::AMQPUri,
    /// PEM of the CAs for TLS (`ssl_ca_file`), when set.
    pub ca_pem: Option<String>,
    /// `control_exchange`: the topic exchange notifications are published to.
    pub exchange: String,
    /// Whether the driver declares that exchange durable (`amqp_durable_queues`).
    pub exchange_durable: bool,
    /// ... and auto-delete (`amqp_auto_delete`).
    pub exchange_auto_delete: bool,
    /// Whether a notification queue is declared durable (durable or quorum).
    pub queue_durable: bool,
    /// ... and auto-delete.
    pub queue_auto_delete: bool,
    /// ... and its arguments (the quorum queue's, when `rabbit_quorum_queue`).
    pub queue_arguments: lapin::types::FieldTable,
    /// A listener's prefetch (`rabbit_qos_prefetch_count`, 0 meaning 1000).
    pub prefetch: u16,
    /// The properties of every message the driver publishes (oslo's: JSON, UTF-8,
    /// persistent, priority 0, empty headers).
    pub properties: lapin::BasicProperties,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("uri", &RabbitConfig::describe_with_user(&self.uri))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "..."))
            .field("exchange", &self.exchange)
            .field("exchange_durable", &self.exchange_durable)
            .field("exchange_auto_delete", &self.exchange_auto_delete)
            .field("queue_durable", &self.queue_durable)
            .field("queue_auto_delete", &self.queue_auto_delete)
            .field("queue_arguments", &self.queue_arguments)
            .field("prefetch", &self.prefetch)
            .field("properties", &self.properties)
            .finish()
    }
}

/// Resolve `url` and configuration options as the core's registry does
/// (configuration first, the URL's query wins) into the driver's AMQP settings.
pub fn client_settings(
    url: &TransportUrl,
    config_options: &[(String, String)],
) -> Result<ClientSettings> {
    let registry = DriverRegistry::new();
    registry.register(factory());
    registry.register(amqp_factory());
    let f = registry.factory(url)?;
    let query = url.query_map();
    let options = DriverOptions::resolve(
        f.option_specs(),
        f.passthrough_prefixes(),
        [config_options, query.as_slice()],
    )?;
    let config = RabbitConfig::from_url(url, &options)?;
    let ca_pem = Connector::new(Arc::new(config.clone()))?.ca_pem();
    let uri = config
        .uris
        .first()
        .cloned()
        .ok_or_else(|| Error::new(messaging_core::ErrorKind::Transport, "RabbitMQ: no host"))?;
    Ok(ClientSettings {
        uri,
        ca_pem,
        exchange: config.exchange.clone(),
        exchange_durable: config.queues.durable,
        exchange_auto_delete: config.queues.auto_delete,
        queue_durable: config.queues.lasting_durable(),
        queue_auto_delete: config.queues.auto_delete,
        queue_arguments: config.queues.lasting_arguments(),
        prefetch: match config.prefetch {
            0 => DEFAULT_PREFETCH,
            n => n,
        },
        properties: publisher::properties(None),
    })
}

/// Opens `rabbit://` (or, registered under that scheme, `amqp://`) drivers.
#[derive(Debug, Clone, Copy)]
pub struct RabbitDriverFactory {
    scheme: &'static str,
}

impl DriverFactory for RabbitDriverFactory {
    fn scheme(&self) -> &'static str {
        self.scheme
    }

    fn option_specs(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn open(&self, url: &TransportUrl, options: DriverOptions) -> Result<Arc<dyn Driver>> {
        let config = Arc::new(RabbitConfig::from_url(url, &options)?);
        let connector = Arc::new(Connector::new(config.clone())?);
        let publisher = Arc::new(Publisher::new(connector.clone()));
        let prefetch = match config.prefetch {
            0 => DEFAULT_PREFETCH,
            n => n,
        };
        Ok(Arc::new(RabbitDriver {
            exchange: Arc::from(config.exchange.as_str()),
            rpc: Arc::new(rpc::RabbitRpc {
                connector: connector.clone(),
                publisher: publisher.clone(),
                prefetch,
            }),
            config,
            connector,
            publisher,
            prefetch,
            closed: AtomicBool::new(false),
        }))
    }
}

/// The factory for `rabbit://`.
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(RabbitDriverFactory { scheme: "rabbit" })
}

/// The factory for `amqp://`, the alias.
pub fn amqp_factory() -> Arc<dyn DriverFactory> {
    Arc::new(RabbitDriverFactory { scheme: "amqp" })
}

/// Add `rabbit://` and `amqp://` to the process-wide registry.
pub fn register() {
    DriverRegistry::global().register(factory());
    DriverRegistry::global().register(amqp_factory());
}

/// A driver on one RabbitMQ cluster (one virtual host).
#[derive(Debug)]
pub struct RabbitDriver {
    config: Arc<RabbitConfig>,
    /// The notifications' exchange (`control_exchange`), shared by every message.
    exchange: Arc<str>,
    connector: Arc<Connector>,
    publisher: Arc<Publisher>,
    rpc: Arc<rpc::RabbitRpc>,
    prefetch: u16,
    closed: AtomicBool,
}

impl RabbitDriver {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("RabbitMQ transport"));
        }
        Ok(())
    }
}

#[async_trait]
impl Driver for RabbitDriver {
    fn name(&self) -> &str {
        "rabbit"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            requeue: true,
            replays_history: false,
            rpc: true,
            ordered_per_partition: true,
            max_record_bytes: self.config.max_record_bytes,
            max_record_bytes_option: Some("max_record_bytes"),
            // oslo's AMQP form: flat `_context_<key>` keys and `_unique_id`; the
            // vhost is the broker's own, not a topic suffix.
            dialect: Dialect::Amqp,
        }
    }

    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        if let Err(e) = self.check_open() {
            return batch
                .iter()
                .map(|_| Err(Error::closed(e.message())))
                .collect();
        }
        let exchange = &self.exchange;
        let publications: Vec<Publication<'_>> = batch
            .iter()
            .map(|r| Publication {
                exchange,
                routing_key: &r.topic,
                body: &r.body,
                mandatory: true,
                expiration: None,
                needs: Needs::QueueFor {
                    exchange: exchange.clone(),
                    key: r.topic.clone(),
                },
            })
            .collect();
        self.publisher
            .publish(&publications, WhenFull::Refuse)
            .await
            .into_iter()
            .zip(batch)
            .map(|(sent, record)| {
                sent.map(|confirm| {
                    // Named (formatted) only in an error: not per notification.
                    let topic = record.topic.clone();
                    PendingDelivery::Pending(Box::pin(async move {
                        confirmed(confirm, || format!("the notification to {topic}")).await
                    }))
                })
            })
            .collect()
    }

    async fn subscribe(&self, spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        self.check_open()?;
        let exchange = self.config.exchange.clone();
        let mut declarations = vec![Declaration::TopicExchange(exchange.clone())];
        let queues = match &spec.pool {
            Some(pool) => {
                declarations.push(Declaration::Lasting {
                    queue: pool.clone(),
                    exchange,
                    keys: spec.topics.clone(),
                });
                vec![pool.clone()]
            }
            None => {
                for topic in &spec.topics {
                    declarations.push(Declaration::Lasting {
                        queue: topic.clone(),
                        exchange: exchange.clone(),
                        keys: vec![topic.clone()],
                    });
                }
                spec.topics.clone()
            }
        };
        let plan = Plan {
            purpose: "listener",
            declarations,
            queues,
            delete_on_close: Vec::new(),
            prefetch: self.prefetch,
        };
        let inbox = Inbox::start(self.connector.clone(), plan).await?;
        Ok(Box::new(RabbitSubscription { inbox }))
    }

    async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        self.closed.store(true, Ordering::Release);
        self.publisher.close(timeout).await;
        Ok(CloseReport::default())
    }

    fn rpc(&self, _operation: RpcOperation) -> Result<Arc<dyn RpcDriver>> {
        Ok(self.rpc.clone())
    }

    fn health(&self) -> messaging_core::observability::TransportHealth {
        self.connector.health.health()
    }
}

/// One listener's consumer.
#[derive(Debug)]
struct RabbitSubscription {
    inbox: Inbox,
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedRecord>> {
        Ok(self
            .inbox
            .take(max, wait)
            .await?
            .into_iter()
            .map(|d| ReceivedRecord {
                tag: DeliveryTag(d.tag),
                topic: d.routing_key,
                body: d.body,
            })
            .collect())
    }

    async fn ack(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.inbox.ack(tags.iter().map(|t| t.0).collect());
        Ok(())
    }

    async fn requeue(&self, tags: &[DeliveryTag]) -> Result<()> {
        self.inbox.requeue(tags.iter().map(|t| t.0).collect());
        Ok(())
    }

    async fn close(&self, timeout: Duration) -> Result<()> {
        self.inbox.close(timeout).await
    }

    /// The messages ready in its queues (a passive declare every few seconds).
    fn lag(&self) -> Option<u64> {
        self.inbox.depth()
    }
}
