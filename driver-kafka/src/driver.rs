//! [`KafkaDriver`]: the [`Driver`] implementation tying the producer, the consumers,
//! topic creation and the embedded mock together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::{
    Capabilities, CloseReport, Dialect, Driver, DriverOptions, Error, ErrorKind, OutgoingRecord,
    PendingDelivery, Result, StartPosition, Subscription, SubscriptionSpec, TransportUrl,
};
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::admin::TopicAdmin;
use crate::config::{Brokers, ClientRole, KafkaConfig};
use crate::consumer::{ConsumerSettings, KafkaSubscription};
use crate::mock::MockKafka;
use crate::options::PASSTHROUGH_PREFIX;
use crate::producer::KafkaProducer;
use crate::stats::KafkaHealth;
use crate::SCHEME;
use messaging_core::observability::TransportHealth;

/// An open Kafka driver: one shared producer, one consumer per subscription.
#[derive(Debug)]
pub struct KafkaDriver {
    config: KafkaConfig,
    producer: KafkaProducer,
    admin: Arc<TopicAdmin>,
    mock: Option<Arc<MockKafka>>,
    closed: AtomicBool,
    max_record_bytes: usize,
    /// The connection state all clients report to (statistics, error events).
    health: KafkaHealth,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// What librdkafka adds to a record's value when it checks `message.max.bytes` (the
/// largest v2 record framing: length, attributes, timestamp and offset deltas, key
/// and value lengths, header count).
const RECORD_FRAMING_BYTES: usize = 36;

/// The largest record body the producer accepts under `config`.
fn max_record_bytes(config: &ClientConfig) -> usize {
    config
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
        .saturating_sub(RECORD_FRAMING_BYTES)
}

/// Check a librdkafka configuration now rather than at the first send or subscribe:
/// a bad passthrough key is an [`ErrorKind::InvalidOption`] naming it.
fn validate(config: &ClientConfig) -> Result<()> {
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(_, description, key, _)) => Err(Error::invalid_option(
            &format!("{PASSTHROUGH_PREFIX}{key}"),
            format!("librdkafka refused {key:?}: {description}"),
        )),
        Err(e) => Err(crate::errors::transport(
            "invalid Kafka client configuration",
            e,
        )),
    }
}

impl KafkaDriver {
    /// Open a driver for `url` with options already validated against [`crate::options::SPECS`].
    ///
    /// Connects to nothing yet: the producer is created on the first send, consumers on
    /// subscribe. A `kafka+mock://` URL starts an embedded mock cluster now.
    pub fn open(url: &TransportUrl, options: &DriverOptions) -> Result<Arc<Self>> {
        let mut config = KafkaConfig::from_url(url, options)?;
        let mock = match config.brokers() {
            Brokers::Mock { brokers } => {
                let mock = Arc::new(MockKafka::start(*brokers)?);
                config = config.with_mock_cluster(mock.bootstrap_servers());
                Some(mock)
            }
            Brokers::Servers(_) => None,
        };
        let producer_config = config.client_config(&ClientRole::Producer)?;
        validate(&producer_config)?;
        validate(&config.client_config(&ClientRole::Consumer {
            group: config.group_for(None),
            start: StartPosition::Default,
        })?)?;
        let admin = Arc::new(match &mock {
            Some(m) => TopicAdmin::mock(m.clone(), config.topic_partitions),
            None if config.create_topics => {
                let admin_config = config.client_config(&ClientRole::Admin)?;
                validate(&admin_config)?;
                TopicAdmin::brokers(
                    admin_config,
                    config.topic_partitions,
                    config.topic_replication_factor,
                )
            }
            None => TopicAdmin::disabled(),
        });
        let health = KafkaHealth::new();
        Ok(Arc::new(KafkaDriver {
            max_record_bytes: max_record_bytes(&producer_config),
            producer: KafkaProducer::new(
                producer_config,
                admin.clone(),
                health.client("producer", None),
            ),
            health,
            config,
            admin,
            mock,
            closed: AtomicBool::new(false),
        }))
    }

    /// The embedded mock cluster of a `kafka+mock://` driver, for fault injection.
    pub fn mock_cluster(&self) -> Option<&Arc<MockKafka>> {
        self.mock.as_ref()
    }

    /// The parsed settings (bootstrap servers resolved, also for the mock).
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The librdkafka configuration this driver gives one of its clients.
    pub fn client_config(&self, role: &ClientRole) -> Result<ClientConfig> {
        self.config.client_config(role)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::closed("kafka driver"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Driver for KafkaDriver {
    fn name(&self) -> &str {
        SCHEME
    }

    fn health(&self) -> TransportHealth {
        self.health.tracker().health()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            requeue: true,
            replays_history: true,
            rpc: false,
            ordered_per_partition: true,
            max_record_bytes: Some(self.max_record_bytes),
            dialect: Dialect::Kafka,
            max_record_bytes_option: Some("message.max.bytes"),
        }
    }

    async fn send_batch(&self, batch: &[OutgoingRecord]) -> Vec<Result<PendingDelivery>> {
        self.producer.send_batch(batch).await
    }

    async fn subscribe(&self, spec: SubscriptionSpec) -> Result<Box<dyn Subscription>> {
        self.ensure_open()?;
        if spec.topics.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a subscription needs at least one topic",
            ));
        }
        let group = self.config.group_for(spec.pool.as_deref());
        let client_config = self.config.client_config(&ClientRole::Consumer {
            group: group.clone(),
            start: spec.start,
        })?;
        let settings = ConsumerSettings {
            group,
            topics: spec.topics,
            start: spec.start,
            max_buffered: self.config.max_poll_records,
            poll: self.config.consumer_poll,
        };
        let stats = self.health.client("consumer", Some(&settings.group));
        let subscription =
            KafkaSubscription::start(client_config, settings, self.mock.clone(), stats)?;
        Ok(Box::new(subscription))
    }

    async fn ensure_topics(&self, topics: &[String]) -> Result<()> {
        self.ensure_open()?;
        if !self.admin.enabled() || self.mock.is_some() {
            // Nothing to create, or the embedded mock (no credentials to refuse).
            return self.admin.ensure(topics).await;
        }
        // The producer's connection tells when the broker refuses the credentials
        // (the admin client's own errors are never reported).
        let auth = self.producer.credentials()?;
        self.admin.ensure_unless_refused(topics, &auth).await
    }

    async fn close(&self, timeout: Duration) -> Result<CloseReport> {
        self.closed.store(true, Ordering::Release);
        self.producer.close(timeout).await
    }
}
