//! # driver-kafka
//!
//! The Kafka driver of the notification bus (librdkafka through rust-rdkafka),
//! wire-compatible with oslo.messaging's Kafka driver. See `docs/kafka.md` for the
//! user-facing reference.
//!
//! ```text
//! kafka://[user:pass@]host[:port][,host2[:port2]]...[/vhost][?option=value...]
//! kafka+ssl://...  kafka+sasl://...  kafka+sasl+ssl://...  kafka+mock://
//! ```
//!
//! Hosts become `bootstrap.servers` (default port 9092); SASL credentials come from
//! the first host that has them; the options are in [`options::SPECS`], and any
//! `rdkafka.KEY=VALUE` reaches librdkafka (`rdkafka.producer.KEY`,
//! `rdkafka.consumer.KEY`, `rdkafka.admin.KEY` reach only that kind of client).
//!
//! **Guarantees.** Sends are asynchronous and batched; a send's receipt resolves with
//! the broker's acknowledgement or a typed error (the core retries as `retry` allows).
//! Consumption is at-least-once: an offset is committed only once its record and
//! every earlier record of its partition were handled. Requeued records come back
//! (by rewinding the partition). RPC is not supported.
//!
//! ```no_run
//! # async fn demo() -> messaging_core::Result<()> {
//! driver_kafka::register();
//! let transport = messaging_core::Transport::open("kafka://broker1,broker2:9093?create_topics=true")?;
//! # let _ = transport; Ok(()) }
//! ```
//!
//! Layout: [`options`] (declared options), [`config`] (URL and options to librdkafka
//! settings), `producer`, `consumer` and `offsets` (the commit tracker), `admin`
//! (topic creation), [`mock`] (the embedded mock cluster).

use std::sync::Arc;

use messaging_core::{
    Driver, DriverFactory, DriverOptions, DriverRegistry, OptionSpec, Result, TransportUrl,
};

mod admin;
pub mod config;
mod consumer;
mod driver;
mod errors;
mod logging;
pub mod mock;
mod offsets;
pub mod options;
mod producer;
mod stats;

pub use config::{client_config, Brokers, ClientRole, KafkaConfig, DEFAULT_PORT};
pub use driver::KafkaDriver;
pub use mock::MockKafka;

/// The driver's name and URL scheme.
pub const SCHEME: &str = "kafka";

/// Creates Kafka drivers for `kafka://` (and `kafka+SUFFIX://`) URLs.
#[derive(Debug, Default, Clone, Copy)]
pub struct KafkaFactory;

impl DriverFactory for KafkaFactory {
    fn scheme(&self) -> &'static str {
        SCHEME
    }

    fn option_specs(&self) -> &'static [OptionSpec] {
        options::SPECS
    }

    fn passthrough_prefixes(&self) -> &'static [&'static str] {
        &[options::PASSTHROUGH_PREFIX]
    }

    fn open(&self, url: &TransportUrl, options: DriverOptions) -> Result<Arc<dyn Driver>> {
        Ok(KafkaDriver::open(url, &options)?)
    }
}

/// The Kafka driver factory.
pub fn factory() -> Arc<dyn DriverFactory> {
    Arc::new(KafkaFactory)
}

/// Add the Kafka driver to the process-wide [`DriverRegistry`].
pub fn register() {
    DriverRegistry::global().register(factory());
}

/// Validate `config_options` then the URL's query (which wins) like the registry does,
/// and open a Kafka driver, keeping its concrete type (for [`KafkaDriver::mock_cluster`]
/// and [`KafkaDriver::client_config`]).
pub fn open(url: &TransportUrl, config_options: &[(String, String)]) -> Result<Arc<KafkaDriver>> {
    let options = config::resolve_options(url, config_options)?;
    KafkaDriver::open(url, &options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_core::ErrorKind;

    #[test]
    fn registers_for_kafka_and_suffixes() {
        let registry = DriverRegistry::new();
        registry.register(factory());
        assert_eq!(registry.schemes(), vec!["kafka".to_owned()]);
        let url = TransportUrl::parse("kafka+ssl://h").unwrap();
        assert_eq!(registry.factory(&url).unwrap().scheme(), "kafka");
    }

    #[test]
    fn unknown_option_is_a_typed_error_naming_it() {
        let registry = DriverRegistry::new();
        registry.register(factory());
        let url = TransportUrl::parse("kafka://h?consumer_grup=x").unwrap();
        let e = registry.open(&url, &[]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "consumer_grup".into()
            }
        );
        assert!(e.to_string().contains("consumer_group"), "{e}");
        let url = TransportUrl::parse("kafka://h?topic_partitions=0").unwrap();
        let e = registry.open(&url, &[]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "topic_partitions".into()
            }
        );
        let url = TransportUrl::parse("kafka://h?compression_codec=lzma").unwrap();
        assert!(registry.open(&url, &[]).is_err());
    }

    #[test]
    fn bad_passthrough_is_refused_at_open() {
        let url = TransportUrl::parse("kafka://h?rdkafka.no.such.setting=1").unwrap();
        let e = open(&url, &[]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "rdkafka.no.such.setting".into()
            }
        );
        let url = TransportUrl::parse("kafka://h?rdkafka.linger.ms=abc").unwrap();
        assert!(open(&url, &[]).is_err());
        let url =
            TransportUrl::parse("kafka://h?rdkafka.queue.buffering.max.messages=500000").unwrap();
        open(&url, &[]).unwrap();
    }

    #[tokio::test]
    async fn rpc_is_refused_without_touching_the_network() {
        // Port 9 (discard) on a reserved address: nothing is ever contacted.
        let url = TransportUrl::parse("kafka://192.0.2.1:9").unwrap();
        let driver: Arc<dyn Driver> = open(&url, &[]).unwrap();
        assert_eq!(driver.name(), "kafka");
        assert!(!driver.capabilities().rpc);
        for operation in messaging_core::rpc::RpcOperation::ALL {
            let e = driver.rpc(operation).unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::Unsupported {
                    driver: "kafka".into(),
                    operation: operation.as_str().into()
                }
            );
            assert!(!e.is_retryable());
        }
        // Closing a driver that never connected reports nothing undelivered.
        let report = driver
            .close(std::time::Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(report.undelivered, 0);
        let batch = [
            messaging_core::OutgoingRecord::new("t.info", bytes::Bytes::from_static(b"{}")),
            messaging_core::OutgoingRecord::new("t.warn", bytes::Bytes::from_static(b"{}")),
        ];
        let outcomes = driver.send_batch(&batch).await;
        assert_eq!(outcomes.len(), 2);
        for outcome in outcomes {
            assert_eq!(outcome.unwrap_err().kind(), &ErrorKind::Closed);
        }
    }
}
