//! The options the Kafka driver understands (URL query keys and configuration values).
//!
//! oslo.messaging's `[oslo_messaging_kafka]` options keep their names and defaults;
//! the driver adds a few of its own. The core validates every value against these
//! specs before the driver sees it; keys starting with [`PASSTHROUGH_PREFIX`] go to
//! librdkafka unchanged (`?rdkafka.queue.buffering.max.messages=500000`).

use messaging_core::{OptionKind, OptionSpec};

/// Keys starting with this prefix are handed to librdkafka with the prefix removed.
pub const PASSTHROUGH_PREFIX: &str = "rdkafka.";

/// Compression codecs (oslo's list).
const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

/// Every option name, as a constant, so that a typo is a compile error.
pub mod names {
    /// oslo: largest fetch per partition, in bytes.
    pub const KAFKA_MAX_FETCH_BYTES: &str = "kafka_max_fetch_bytes";
    /// oslo: longest single wait of the consumer for records, in seconds.
    pub const KAFKA_CONSUMER_TIMEOUT: &str = "kafka_consumer_timeout";
    /// oslo: the consumer group of listeners without a pool.
    pub const CONSUMER_GROUP: &str = "consumer_group";
    /// oslo: how long the producer waits to fill a batch, in seconds.
    pub const PRODUCER_BATCH_TIMEOUT: &str = "producer_batch_timeout";
    /// oslo: most records in one produce batch.
    pub const PRODUCER_BATCH_SIZE: &str = "producer_batch_size";
    /// oslo: compression of produced batches.
    pub const COMPRESSION_CODEC: &str = "compression_codec";
    /// oslo: periodic offset commits instead of prompt ones.
    pub const ENABLE_AUTO_COMMIT: &str = "enable_auto_commit";
    /// oslo: most records fetched but not yet handed to the listener.
    pub const MAX_POLL_RECORDS: &str = "max_poll_records";
    /// oslo: PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL.
    pub const SECURITY_PROTOCOL: &str = "security_protocol";
    /// oslo: SASL mechanism.
    pub const SASL_MECHANISM: &str = "sasl_mechanism";
    /// oslo: CA certificate file.
    pub const SSL_CAFILE: &str = "ssl_cafile";
    /// oslo: client certificate file.
    pub const SSL_CLIENT_CERT_FILE: &str = "ssl_client_cert_file";
    /// oslo: client private key file.
    pub const SSL_CLIENT_KEY_FILE: &str = "ssl_client_key_file";
    /// oslo: password of the client private key.
    pub const SSL_CLIENT_KEY_PASSWORD: &str = "ssl_client_key_password";
    /// Producer acknowledgements: all, 1 or 0.
    pub const ACKS: &str = "acks";
    /// Idempotent producer.
    pub const IDEMPOTENCE: &str = "idempotence";
    /// Alias of `producer_batch_timeout` that wins over it.
    pub const LINGER: &str = "linger";
    /// Alias of `compression_codec` that wins over it.
    pub const COMPRESSION: &str = "compression";
    /// Where a pool without a committed position starts.
    pub const AUTO_OFFSET_RESET: &str = "auto_offset_reset";
    /// How long librdkafka tries to deliver one record, in seconds.
    pub const DELIVERY_TIMEOUT: &str = "delivery_timeout";
    /// Create missing topics through the admin API.
    pub const CREATE_TOPICS: &str = "create_topics";
    /// Partitions of created topics.
    pub const TOPIC_PARTITIONS: &str = "topic_partitions";
    /// Replication factor of created topics.
    pub const TOPIC_REPLICATION_FACTOR: &str = "topic_replication_factor";
    /// Kafka `client.id`.
    pub const CLIENT_ID: &str = "client_id";
    /// Brokers of the embedded mock cluster (`kafka+mock://`).
    pub const MOCK_BROKERS: &str = "mock_brokers";
    /// How often librdkafka reports its statistics, in seconds (0: never).
    pub const STATISTICS_INTERVAL: &str = "statistics_interval";
}

use names::*;

/// The option specs of the Kafka driver, oslo's first.
pub static SPECS: &[OptionSpec] = &[
    OptionSpec::new(
        KAFKA_MAX_FETCH_BYTES,
        OptionKind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        Some("1048576"),
        "largest amount of data fetched per partition and request, in bytes (max.partition.fetch.bytes)",
    ),
    OptionSpec::new(
        KAFKA_CONSUMER_TIMEOUT,
        OptionKind::Seconds,
        Some("1.0"),
        "longest single wait of the consumer thread for records, in seconds",
    ),
    OptionSpec::new(
        CONSUMER_GROUP,
        OptionKind::Text,
        Some("oslo_messaging_consumer"),
        "consumer group of listeners that have no pool",
    ),
    OptionSpec::new(
        PRODUCER_BATCH_TIMEOUT,
        OptionKind::Seconds,
        Some("0.0"),
        "how long the producer waits for more records to fill a batch, in seconds (linger.ms)",
    ),
    OptionSpec::new(
        PRODUCER_BATCH_SIZE,
        OptionKind::Int {
            min: 1,
            max: 1_000_000,
        },
        Some("16384"),
        "most records in one produce batch (batch.num.messages)",
    ),
    OptionSpec::new(
        COMPRESSION_CODEC,
        OptionKind::Choice(CODECS),
        Some("none"),
        "compression of produced batches",
    ),
    OptionSpec::new(
        ENABLE_AUTO_COMMIT,
        OptionKind::Bool,
        Some("false"),
        "commit handled offsets every 5 s (true) instead of within 250 ms (false); only handled records are ever committed",
    ),
    OptionSpec::new(
        MAX_POLL_RECORDS,
        OptionKind::Int {
            min: 1,
            max: 1_000_000,
        },
        Some("500"),
        "most records fetched ahead of the listener; at that many, fetching waits for the listener",
    ),
    OptionSpec::new(
        SECURITY_PROTOCOL,
        OptionKind::Choice(&["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]),
        None,
        "PLAINTEXT (default), SASL_PLAINTEXT, SSL or SASL_SSL; implied by a kafka+ssl/+sasl/+sasl+ssl scheme, else SASL_PLAINTEXT when the URL has credentials",
    ),
    OptionSpec::new(
        SASL_MECHANISM,
        OptionKind::Choice(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        Some("PLAIN"),
        "SASL mechanism",
    ),
    OptionSpec::new(
        SSL_CAFILE,
        OptionKind::Text,
        None,
        "CA certificate file (PEM) to verify the brokers",
    ),
    OptionSpec::new(
        SSL_CLIENT_CERT_FILE,
        OptionKind::Text,
        None,
        "client certificate file (PEM)",
    ),
    OptionSpec::new(
        SSL_CLIENT_KEY_FILE,
        OptionKind::Text,
        None,
        "client private key file (PEM)",
    ),
    OptionSpec::new(
        SSL_CLIENT_KEY_PASSWORD,
        OptionKind::Text,
        None,
        "password of the client private key",
    ),
    OptionSpec::new(
        ACKS,
        OptionKind::Choice(&["all", "-1", "1", "0"]),
        Some("all"),
        "acknowledgements the producer waits for (all needs every in-sync replica)",
    ),
    OptionSpec::new(
        IDEMPOTENCE,
        OptionKind::Bool,
        Some("true"),
        "idempotent producer: librdkafka's internal retries never duplicate or reorder (needs acks=all)",
    ),
    OptionSpec::new(
        LINGER,
        OptionKind::Seconds,
        None,
        "same as producer_batch_timeout, and wins over it",
    ),
    OptionSpec::new(
        COMPRESSION,
        OptionKind::Choice(CODECS),
        None,
        "same as compression_codec, and wins over it",
    ),
    OptionSpec::new(
        AUTO_OFFSET_RESET,
        OptionKind::Choice(&["earliest", "latest"]),
        Some("earliest"),
        "where a pool without a committed position starts",
    ),
    OptionSpec::new(
        DELIVERY_TIMEOUT,
        OptionKind::Seconds,
        Some("30"),
        "how long librdkafka tries to deliver one record before reporting failure, in seconds (message.timeout.ms; 0 = forever)",
    ),
    OptionSpec::new(
        CREATE_TOPICS,
        OptionKind::Bool,
        Some("false"),
        "create missing topics through the admin API (listeners at start, the producer before its first send to a topic)",
    ),
    OptionSpec::new(
        TOPIC_PARTITIONS,
        OptionKind::Int {
            min: 1,
            max: 100_000,
        },
        Some("1"),
        "partitions of topics the driver creates",
    ),
    OptionSpec::new(
        TOPIC_REPLICATION_FACTOR,
        OptionKind::Int { min: -1, max: 1000 },
        Some("-1"),
        "replication factor of topics the driver creates (-1: the broker's default)",
    ),
    OptionSpec::new(CLIENT_ID, OptionKind::Text, None, "Kafka client.id"),
    OptionSpec::new(
        MOCK_BROKERS,
        OptionKind::Int { min: 1, max: 16 },
        Some("1"),
        "brokers of the embedded mock cluster (kafka+mock:// only)",
    ),
    OptionSpec::new(
        STATISTICS_INTERVAL,
        OptionKind::Seconds,
        Some("5"),
        "how often each client reports librdkafka's statistics (broker round-trip time, queue sizes, consumer lag) to the metrics and the transport's health, in seconds (statistics.interval.ms; 0 = never: no lag, and health from error events only)",
    ),
];

/// The default [`SPECS`] declares for an option (`None`: unset, or no such option).
pub(crate) fn default_of(name: &str) -> Option<&'static str> {
    SPECS.iter().find(|s| s.name == name)?.default
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_defaults_valid() {
        let mut seen = HashSet::new();
        for s in SPECS {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            if let Some(d) = s.default {
                s.validate(d).unwrap();
            }
            assert!(!s.help.is_empty());
        }
    }

    #[test]
    fn oslo_defaults() {
        let d = |n: &str| SPECS.iter().find(|s| s.name == n).unwrap().default;
        assert_eq!(d(KAFKA_MAX_FETCH_BYTES), Some("1048576"));
        assert_eq!(d(KAFKA_CONSUMER_TIMEOUT), Some("1.0"));
        assert_eq!(d(CONSUMER_GROUP), Some("oslo_messaging_consumer"));
        assert_eq!(d(PRODUCER_BATCH_TIMEOUT), Some("0.0"));
        assert_eq!(d(PRODUCER_BATCH_SIZE), Some("16384"));
        assert_eq!(d(COMPRESSION_CODEC), Some("none"));
        assert_eq!(d(ENABLE_AUTO_COMMIT), Some("false"));
        assert_eq!(d(MAX_POLL_RECORDS), Some("500"));
        assert_eq!(d(SASL_MECHANISM), Some("PLAIN"));
    }
}
