//! Ceilometer publisher URLs, translated into a transport URL and a notifier topic.
//!
//! ```text
//! notifier://[user:pass@]host[:port][,host2...][/vhost]?driver=<scheme>[&topic=<name>]...
//! kafka://host[:port][,host2...][/vhost][?topic=<name>]...
//! <scheme>://...[?topic=<name>]...                      (memory://, any registered driver)
//! ```
//!
//! * `notifier://` is Ceilometer's notifier publisher: `driver` names the transport's
//!   scheme (`kafka`, `memory`, `kafka+ssl`...) and is required (Ceilometer's default,
//!   `rabbit`, is not a driver here). Default topic: `metering`.
//! * `kafka://` is the original Ceilometer Kafka publisher's form. Default topic
//!   `ceilometer`; a host without a port gets 9092.
//! * Any other scheme is taken as the transport's own scheme. Default topic `metering`.
//!
//! The topic is the *notifier's* topic: a batch of samples is a `sample`
//! notification, so it goes to `<topic>.sample` (plus `.<vhost>` with a virtual
//! host). `topic` may repeat: the batch then goes to every one of them.
//!
//! The publisher's own query keys never reach the transport:
//!
//! | key | value | default |
//! |---|---|---|
//! | `topic` | notifier topic (repeatable) | see above |
//! | `driver` | transport scheme (`notifier://` only) | required |
//! | `policy` | `default`, `queue` or `drop` ([`PublishPolicy`]) | `default` |
//! | `max_retry` | retries of a failed batch under `default` (non-negative integer) | 100 |
//! | `max_queue_length` | batches kept under `queue` (positive integer) | 1024 |
//! | `per_meter_topic` | also send one batch per meter, event type `<event_type>.<meter>` (`0`/`1`, `true`/`false`) | off |
//!
//! Every other key goes to the transport, which rejects the keys it does not know
//! when the publisher opens it (so `?create_topics=true` reaches the Kafka driver,
//! and a typo is an error, not silently ignored). A publisher key given more than
//! once takes its last value, as in Ceilometer; a bad value is an
//! [`ErrorKind::InvalidOption`](messaging_core::ErrorKind::InvalidOption) naming the key.

use messaging_core::options::parse_bool;
use messaging_core::{Error, Result, TransportUrl};

use crate::policy::{PublishPolicy, DEFAULT_MAX_QUEUE_LENGTH, DEFAULT_MAX_RETRY};

/// The default topic of `notifier://` and plain transport URLs (Ceilometer's `metering_topic`).
pub const DEFAULT_METERING_TOPIC: &str = "metering";

/// The default topic of `kafka://` publisher URLs (the original Kafka publisher's).
pub const DEFAULT_KAFKA_TOPIC: &str = "ceilometer";

/// The port a `kafka://` publisher URL's host gets when it names none.
pub const DEFAULT_KAFKA_PORT: u16 = 9092;

/// The query keys that belong to the publisher, not to the transport.
pub const PUBLISHER_KEYS: &[&str] = &[
    "topic",
    "driver",
    "policy",
    "max_retry",
    "max_queue_length",
    "per_meter_topic",
];

/// A parsed publisher URL: where to send, and the publisher's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherUrl {
    transport_url: TransportUrl,
    topics: Vec<String>,
    policy: PublishPolicy,
    max_retry: u32,
    max_queue_length: usize,
    per_meter_topic: bool,
}

impl PublisherUrl {
    /// Parse and translate a publisher URL (see the module docs).
    pub fn parse(input: &str) -> Result<Self> {
        let url = TransportUrl::parse(input)?;
        let scheme = url.scheme().to_owned();
        let (transport_scheme, default_topic, kafka_form) = if scheme == "notifier" {
            let driver = last(&url, "driver").ok_or_else(|| {
                Error::invalid_option(
                    "driver",
                    "a notifier:// publisher URL needs driver=<transport scheme>, e.g. driver=kafka \
                     (Ceilometer's default, rabbit, is not available here)",
                )
            })?;
            validate_scheme(&driver)?;
            (driver.to_ascii_lowercase(), DEFAULT_METERING_TOPIC, false)
        } else {
            if url.query("driver").is_some() {
                return Err(Error::invalid_option(
                    "driver",
                    format!("driver= applies to notifier:// publisher URLs only, not {scheme}://"),
                ));
            }
            if url.driver() == "kafka" {
                (scheme.clone(), DEFAULT_KAFKA_TOPIC, true)
            } else {
                (scheme.clone(), DEFAULT_METERING_TOPIC, false)
            }
        };

        let mut topics = Vec::new();
        for (k, v) in url.query_pairs() {
            if k == "topic" {
                if v.trim().is_empty() {
                    return Err(Error::invalid_option("topic", "topic= must not be empty"));
                }
                topics.push(v.clone());
            }
        }
        if topics.is_empty() {
            topics.push(default_topic.to_owned());
        }

        let policy = match last(&url, "policy") {
            Some(p) => p.parse()?,
            None => PublishPolicy::default(),
        };
        let max_retry = match last(&url, "max_retry") {
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                Error::invalid_option(
                    "max_retry",
                    format!("max_retry={v:?} is not a non-negative integer"),
                )
            })?,
            None => DEFAULT_MAX_RETRY,
        };
        let max_queue_length = match last(&url, "max_queue_length") {
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(Error::invalid_option(
                        "max_queue_length",
                        format!(
                            "max_queue_length={v:?} is not a positive integer \
                             (Ceilometer's 0 = unbounded is not supported)"
                        ),
                    ))
                }
            },
            None => DEFAULT_MAX_QUEUE_LENGTH,
        };
        let per_meter_topic = match last(&url, "per_meter_topic") {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                Error::invalid_option(
                    "per_meter_topic",
                    format!("per_meter_topic={v:?} is not a boolean (0, 1, true, false)"),
                )
            })?,
            None => false,
        };

        let mut transport_url = TransportUrl::new(transport_scheme)
            .with_virtual_host(url.virtual_host().map(str::to_owned));
        for host in url.hosts() {
            let mut host = host.clone();
            if kafka_form && host.port.is_none() {
                host.port = Some(DEFAULT_KAFKA_PORT);
            }
            transport_url = transport_url.with_host(host);
        }
        for (k, v) in url.query_pairs() {
            if !PUBLISHER_KEYS.contains(&k.as_str()) {
                transport_url = transport_url.with_query(k.clone(), v.clone());
            }
        }

        Ok(PublisherUrl {
            transport_url,
            topics,
            policy,
            max_retry,
            max_queue_length,
            per_meter_topic,
        })
    }

    /// The transport URL the samples are sent on (the publisher's keys removed).
    pub fn transport_url(&self) -> &TransportUrl {
        &self.transport_url
    }

    /// The notifier topics (at least one).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The failure policy.
    pub fn policy(&self) -> PublishPolicy {
        self.policy
    }

    /// Retries of a failed batch under [`PublishPolicy::Default`].
    pub fn max_retry(&self) -> u32 {
        self.max_retry
    }

    /// Most batches kept under [`PublishPolicy::Queue`].
    pub fn max_queue_length(&self) -> usize {
        self.max_queue_length
    }

    /// Whether every meter also gets a batch of its own.
    pub fn per_meter_topic(&self) -> bool {
        self.per_meter_topic
    }

    /// Replace the failure policy.
    pub fn with_policy(mut self, policy: PublishPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replace `max_retry`.
    pub fn with_max_retry(mut self, max_retry: u32) -> Self {
        self.max_retry = max_retry;
        self
    }

    /// Replace `max_queue_length` (at least 1).
    pub fn with_max_queue_length(mut self, max_queue_length: usize) -> Self {
        self.max_queue_length = max_queue_length.max(1);
        self
    }
}

impl std::str::FromStr for PublisherUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PublisherUrl::parse(s)
    }
}

/// The last value of a query key (Ceilometer reads `options[key][-1]`).
fn last(url: &TransportUrl, key: &str) -> Option<String> {
    url.query_pairs()
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn validate_scheme(driver: &str) -> Result<()> {
    let ok = driver.starts_with(|c: char| c.is_ascii_alphabetic())
        && driver
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if ok && driver != "notifier" {
        Ok(())
    } else {
        Err(Error::invalid_option(
            "driver",
            format!("driver={driver:?} is not a transport scheme (e.g. kafka, memory)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_core::ErrorKind;

    fn key_of(e: &Error) -> String {
        match e.kind() {
            ErrorKind::InvalidOption { key } => key.clone(),
            other => panic!("expected InvalidOption, got {other:?}: {e}"),
        }
    }

    #[test]
    fn original_kafka_form() {
        let p = PublisherUrl::parse("kafka://broker?topic=metering").unwrap();
        assert_eq!(p.transport_url().to_string(), "kafka://broker:9092");
        assert_eq!(p.topics(), ["metering"]);
        let p = PublisherUrl::parse("kafka://b1:9093,b2").unwrap();
        assert_eq!(p.transport_url().to_string(), "kafka://b1:9093,b2:9092");
        assert_eq!(p.topics(), ["ceilometer"]);
        assert_eq!(p.policy(), PublishPolicy::Default);
        assert_eq!(p.max_retry(), 100);
        assert_eq!(p.max_queue_length(), 1024);
        assert!(!p.per_meter_topic());
    }

    #[test]
    fn notifier_form() {
        let p = PublisherUrl::parse(
            "notifier://u:pw@broker:9092/vh?driver=kafka&topic=metering&policy=queue&max_queue_length=5&max_retry=3&create_topics=true",
        )
        .unwrap();
        let t = p.transport_url();
        assert_eq!(t.scheme(), "kafka");
        assert_eq!(
            t.to_string(),
            "kafka://u:***@broker:9092/vh?create_topics=true"
        );
        assert_eq!(t.hosts()[0].password(), Some("pw"));
        assert_eq!(t.virtual_host(), Some("vh"));
        assert_eq!(p.topics(), ["metering"]);
        assert_eq!(p.policy(), PublishPolicy::Queue);
        assert_eq!(p.max_queue_length(), 5);
        assert_eq!(p.max_retry(), 3);
        let p = PublisherUrl::parse("notifier://?driver=memory").unwrap();
        assert_eq!(p.transport_url().to_string(), "memory://");
        assert_eq!(p.topics(), ["metering"]);
    }

    #[test]
    fn plain_transport_form_and_repeats() {
        let p = PublisherUrl::parse(
            "memory://m?topic=a&topic=b&policy=queue&policy=drop&per_meter_topic=1&queue_capacity=10",
        )
        .unwrap();
        assert_eq!(
            p.transport_url().to_string(),
            "memory://m?queue_capacity=10"
        );
        assert_eq!(p.topics(), ["a", "b"]);
        assert_eq!(p.policy(), PublishPolicy::Drop);
        assert!(p.per_meter_topic());
    }

    #[test]
    fn bad_values_are_typed_errors() {
        for (url, key) in [
            ("notifier://broker:9092?topic=x", "driver"),
            ("notifier://broker?driver=&topic=x", "driver"),
            ("notifier://broker?driver=not%20a%20scheme", "driver"),
            ("kafka://broker?driver=kafka", "driver"),
            ("kafka://broker?policy=retry", "policy"),
            ("kafka://broker?max_retry=-1", "max_retry"),
            ("kafka://broker?max_retry=lots", "max_retry"),
            ("kafka://broker?max_queue_length=0", "max_queue_length"),
            ("kafka://broker?max_queue_length=x", "max_queue_length"),
            ("kafka://broker?per_meter_topic=maybe", "per_meter_topic"),
            ("kafka://broker?topic=", "topic"),
        ] {
            let e = PublisherUrl::parse(url).unwrap_err();
            assert_eq!(key_of(&e), key, "{url}: {e}");
        }
        let e = PublisherUrl::parse("no-scheme").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidUrl);
        let e = PublisherUrl::parse("kafka://broker:notaport").unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidUrl);
    }

    #[test]
    fn overrides() {
        let p = PublisherUrl::parse("memory://")
            .unwrap()
            .with_policy(PublishPolicy::Drop)
            .with_max_retry(2)
            .with_max_queue_length(0);
        assert_eq!(p.policy(), PublishPolicy::Drop);
        assert_eq!(p.max_retry(), 2);
        assert_eq!(p.max_queue_length(), 1);
    }
}
