//! From a transport URL and validated options to librdkafka client configurations.
//!
//! [`KafkaConfig`] is parsed once when a driver opens; [`KafkaConfig::client_config`]
//! then builds the [`ClientConfig`] of each client the driver creates (the shared
//! producer, one consumer per listener, the admin client). The same function serves
//! tools that want identical settings without the driver (the raw benchmark).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use messaging_core::{
    DriverOptions, DriverRegistry, Error, ErrorKind, Result, StartPosition, TransportUrl,
};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;

use crate::options::{names::*, PASSTHROUGH_PREFIX};

/// The Kafka port used when a URL's host has none.
pub const DEFAULT_PORT: u16 = 9092;

/// Passthrough keys the driver refuses: they would break its delivery guarantees or
/// contradict the URL.
const RESERVED_PASSTHROUGH: &[(&str, &str)] = &[
    (
        "enable.auto.offset.store",
        "the driver stores offsets itself, only for handled records",
    ),
    (
        "enable.auto.commit",
        "use the enable_auto_commit option (commits stay limited to handled records)",
    ),
    (
        "group.id",
        "the group is the listener's pool, or consumer_group",
    ),
    ("bootstrap.servers", "the brokers are the URL's hosts"),
];

/// librdkafka's limit on unanswered requests per broker connection.
const MAX_IN_FLIGHT: &str = "max.in.flight.requests.per.connection";

/// Which client a configuration is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRole {
    /// The driver's shared producer.
    Producer,
    /// A listener's consumer.
    Consumer {
        /// The consumer group (the pool's name, or `consumer_group`).
        group: String,
        /// Where the group starts without a committed position.
        start: StartPosition,
    },
    /// The admin client (topic creation).
    Admin,
}

impl ClientRole {
    fn passthrough_scope(&self) -> &'static str {
        match self {
            ClientRole::Producer => "producer.",
            ClientRole::Consumer { .. } => "consumer.",
            ClientRole::Admin => "admin.",
        }
    }
}

/// How the driver reaches the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brokers {
    /// `bootstrap.servers`, from the URL's hosts.
    Servers(String),
    /// The embedded mock cluster (`kafka+mock://`): started by the driver when it opens.
    Mock {
        /// How many mock brokers to start.
        brokers: i32,
    },
}

/// The Kafka driver's settings, parsed from a URL and validated options.
#[derive(Clone)]
pub struct KafkaConfig {
    pub(crate) brokers: Brokers,
    /// Settings shared by every client (security, client id, passthrough).
    common: BTreeMap<String, String>,
    /// Passthrough settings per role scope (`producer.`, `consumer.`, `admin.`), prefix removed.
    scoped: BTreeMap<&'static str, BTreeMap<String, String>>,
    pub(crate) acks: &'static str,
    pub(crate) idempotence: bool,
    pub(crate) linger: Duration,
    pub(crate) batch_size: i64,
    pub(crate) compression: String,
    pub(crate) delivery_timeout: Duration,
    pub(crate) statistics_interval: Duration,
    pub(crate) max_fetch_bytes: i64,
    pub(crate) consumer_poll: Duration,
    pub(crate) consumer_group: String,
    pub(crate) enable_auto_commit: bool,
    pub(crate) max_poll_records: usize,
    pub(crate) auto_offset_reset: &'static str,
    pub(crate) create_topics: bool,
    pub(crate) topic_partitions: i32,
    pub(crate) topic_replication_factor: i32,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .map(|(k, v)| {
                    let v = if is_sensitive(k) { "***" } else { v.as_str() };
                    (k.clone(), v.to_owned())
                })
                .collect()
        };
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("common", &redacted(&self.common))
            .field(
                "scoped",
                &self
                    .scoped
                    .iter()
                    .map(|(s, m)| (*s, redacted(m)))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("acks", &self.acks)
            .field("idempotence", &self.idempotence)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("compression", &self.compression)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("statistics_interval", &self.statistics_interval)
            .field("consumer_group", &self.consumer_group)
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("max_poll_records", &self.max_poll_records)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .finish_non_exhaustive()
    }
}

/// Whether a librdkafka setting holds a secret (a password, a secret or token, the
/// OAUTHBEARER configuration, an inline private key): the core's
/// [`messaging_core::url::is_secret_key`].
pub(crate) fn is_sensitive(key: &str) -> bool {
    messaging_core::url::is_secret_key(key)
}

/// A librdkafka configuration for `Debug`: every sensitive value (see
/// [`is_sensitive`]) as `***` (rust-rdkafka's own `Debug` hides only a fixed list).
pub(crate) fn redacted(config: &ClientConfig) -> BTreeMap<String, String> {
    config
        .config_map()
        .into_iter()
        .map(|(k, v)| {
            let v = if is_sensitive(k) { "***" } else { v };
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn millis(d: Duration) -> String {
    d.as_millis().min(i32::MAX as u128).to_string()
}

/// What a `kafka+SUFFIX` scheme means.
fn scheme_suffix(url: &TransportUrl) -> Result<(Option<&'static str>, bool)> {
    let suffix = match url.scheme_suffix() {
        None => return Ok((None, false)),
        Some(s) => s.to_ascii_lowercase(),
    };
    Ok(match suffix.as_str() {
        "plaintext" => (Some("PLAINTEXT"), false),
        "ssl" => (Some("SSL"), false),
        "sasl" | "sasl-plaintext" => (Some("SASL_PLAINTEXT"), false),
        "sasl+ssl" | "sasl-ssl" => (Some("SASL_SSL"), false),
        "mock" => (None, true),
        other => {
            return Err(Error::invalid_url(format!(
                "unknown scheme suffix {other:?} in {:?}: expected kafka+ssl, kafka+sasl, \
                 kafka+sasl+ssl (or kafka+sasl-ssl), kafka+plaintext or kafka+mock",
                url.scheme()
            )))
        }
    })
}

/// Option values with the defaults [`crate::options::SPECS`] declares, so that no
/// default is restated here. Values were validated when the options were resolved.
#[derive(Clone, Copy)]
struct Declared<'a>(&'a DriverOptions);

impl Declared<'_> {
    fn text(self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .or_else(|| crate::options::default_of(name))
            .map(str::to_owned)
    }

    /// The value, lowercased; empty when unset and without a default.
    fn lower(self, name: &str) -> String {
        self.text(name).unwrap_or_default().to_ascii_lowercase()
    }

    fn int(self, name: &str) -> i64 {
        self.text(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    fn secs(self, name: &str) -> Option<Duration> {
        self.text(name)
            .as_deref()
            .and_then(messaging_core::options::parse_seconds)
    }

    fn flag(self, name: &str) -> bool {
        self.text(name)
            .as_deref()
            .and_then(messaging_core::options::parse_bool)
            .unwrap_or(false)
    }
}

/// The brokers: the URL's hosts, or the mock cluster's size.
fn brokers(url: &TransportUrl, mock: bool, o: Declared<'_>) -> Result<Brokers> {
    if mock {
        return Ok(Brokers::Mock {
            brokers: o.int(MOCK_BROKERS) as i32,
        });
    }
    if url.hosts().is_empty() {
        return Err(Error::invalid_url(format!(
            "{url} names no broker: expected kafka://host[:port][,host2[:port2]]"
        )));
    }
    let servers: Vec<String> = url
        .hosts()
        .iter()
        .map(|h| h.address(DEFAULT_PORT))
        .collect();
    Ok(Brokers::Servers(servers.join(",")))
}

/// The security protocol: the option, else the scheme's, else SASL_PLAINTEXT when
/// the URL has credentials, else PLAINTEXT.
fn security_protocol(
    url: &TransportUrl,
    o: Declared<'_>,
    implied: Option<&'static str>,
    sasl_by_credentials: bool,
) -> Result<String> {
    let explicit = o.text(SECURITY_PROTOCOL).map(|p| p.to_ascii_uppercase());
    Ok(match (explicit, implied) {
        (Some(e), Some(i)) if e != i => {
            return Err(Error::invalid_option(
                SECURITY_PROTOCOL,
                format!(
                    "security_protocol={e} contradicts the URL scheme {:?}, which implies {i}",
                    url.scheme()
                ),
            ))
        }
        (Some(e), _) => e,
        (None, Some(i)) => i.to_owned(),
        (None, None) if sasl_by_credentials => "SASL_PLAINTEXT".to_owned(),
        (None, None) => "PLAINTEXT".to_owned(),
    })
}

/// Settings every client shares: protocol, SASL credentials (from the first host
/// that has them), SSL files and the client id.
fn security_settings(
    url: &TransportUrl,
    o: Declared<'_>,
    implied: Option<&'static str>,
    mock: bool,
) -> Result<BTreeMap<String, String>> {
    let credentials = url.hosts().iter().find(|h| h.username.is_some()).map(|h| {
        (
            h.username.clone().unwrap_or_default(),
            h.password().unwrap_or_default().to_owned(),
        )
    });
    let protocol = security_protocol(url, o, implied, credentials.is_some() && !mock)?;
    let mut common = BTreeMap::new();
    match (credentials, protocol.starts_with("SASL")) {
        (Some((user, pass)), true) => {
            common.insert(
                "sasl.mechanism".into(),
                o.text(SASL_MECHANISM)
                    .unwrap_or_default()
                    .to_ascii_uppercase(),
            );
            common.insert("sasl.username".into(), user);
            common.insert("sasl.password".into(), pass);
        }
        (None, true) => {
            let why = "needs credentials in the URL: kafka://user:password@host";
            return Err(Error::invalid_url(format!(
                "security protocol {protocol} {why}"
            )));
        }
        (Some(_), false) => tracing::warn!(
            protocol,
            "the URL has credentials but the security protocol uses no SASL: they are ignored"
        ),
        (None, false) => {}
    }
    common.insert("security.protocol".into(), protocol);
    for (option, key) in [
        (SSL_CAFILE, "ssl.ca.location"),
        (SSL_CLIENT_CERT_FILE, "ssl.certificate.location"),
        (SSL_CLIENT_KEY_FILE, "ssl.key.location"),
        (SSL_CLIENT_KEY_PASSWORD, "ssl.key.password"),
        (CLIENT_ID, "client.id"),
    ] {
        if let Some(v) = o.text(option).filter(|v| !v.is_empty()) {
            common.insert(key.into(), v);
        }
    }
    Ok(common)
}

/// Sort `rdkafka.*` keys into `common` (unscoped) and per-role scopes, refusing
/// [`RESERVED_PASSTHROUGH`] keys.
fn passthrough(
    options: &DriverOptions,
    common: &mut BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, BTreeMap<String, String>>> {
    let mut scoped: BTreeMap<&'static str, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in options.passthrough() {
        let Some(rest) = key.strip_prefix(PASSTHROUGH_PREFIX) else {
            continue;
        };
        let (scope, setting) = ["producer.", "consumer.", "admin."]
            .iter()
            .find_map(|s| rest.strip_prefix(s).map(|r| (Some(*s), r)))
            .unwrap_or((None, rest));
        if let Some((_, why)) = RESERVED_PASSTHROUGH.iter().find(|(k, _)| *k == setting) {
            return Err(Error::invalid_option(
                key,
                format!("{key} cannot be passed through: {why}"),
            ));
        }
        let target = match scope {
            Some(s) => scoped.entry(s).or_default(),
            None => &mut *common,
        };
        target.insert(setting.to_owned(), value.clone());
    }
    Ok(scoped)
}

/// `acks` as librdkafka spells it, and whether the producer is idempotent (which
/// needs `acks=all`).
fn acks_and_idempotence(o: Declared<'_>) -> Result<(&'static str, bool)> {
    let acks = match o.lower(ACKS).as_str() {
        "1" => "1",
        "0" => "0",
        _ => "all",
    };
    let idempotence = o.flag(IDEMPOTENCE);
    if idempotence && acks != "all" {
        return Err(Error::invalid_option(
            ACKS,
            format!("acks={acks} needs idempotence=false: an idempotent producer waits for all in-sync replicas"),
        ));
    }
    Ok((acks, idempotence))
}

impl KafkaConfig {
    /// Parse a `kafka://` URL and its validated options.
    pub fn from_url(url: &TransportUrl, options: &DriverOptions) -> Result<Self> {
        let o = Declared(options);
        let (implied_protocol, mock) = scheme_suffix(url)?;
        let brokers = brokers(url, mock, o)?;
        let mut common = security_settings(url, o, implied_protocol, mock)?;
        let scoped = passthrough(options, &mut common)?;
        let (acks, idempotence) = acks_and_idempotence(o)?;
        Ok(KafkaConfig {
            brokers,
            common,
            scoped,
            acks,
            idempotence,
            linger: o
                .secs(LINGER)
                .or_else(|| o.secs(PRODUCER_BATCH_TIMEOUT))
                .unwrap_or_default(),
            batch_size: o.int(PRODUCER_BATCH_SIZE),
            compression: o
                .text(COMPRESSION)
                .or_else(|| o.text(COMPRESSION_CODEC))
                .unwrap_or_default()
                .to_ascii_lowercase(),
            delivery_timeout: o.secs(DELIVERY_TIMEOUT).unwrap_or_default(),
            statistics_interval: o.secs(STATISTICS_INTERVAL).unwrap_or_default(),
            max_fetch_bytes: o.int(KAFKA_MAX_FETCH_BYTES),
            // At most a second between looks at the stop flag; at least 10 ms of waiting.
            consumer_poll: o
                .secs(KAFKA_CONSUMER_TIMEOUT)
                .unwrap_or_default()
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            consumer_group: o
                .text(CONSUMER_GROUP)
                .filter(|g| !g.is_empty())
                .or_else(|| crate::options::default_of(CONSUMER_GROUP).map(str::to_owned))
                .unwrap_or_default(),
            enable_auto_commit: o.flag(ENABLE_AUTO_COMMIT),
            max_poll_records: o.int(MAX_POLL_RECORDS) as usize,
            auto_offset_reset: if o.lower(AUTO_OFFSET_RESET) == "latest" {
                "latest"
            } else {
                "earliest"
            },
            create_topics: o.flag(CREATE_TOPICS),
            topic_partitions: o.int(TOPIC_PARTITIONS) as i32,
            topic_replication_factor: o.int(TOPIC_REPLICATION_FACTOR) as i32,
        })
    }

    /// How the driver reaches its brokers.
    pub fn brokers(&self) -> &Brokers {
        &self.brokers
    }

    /// Point the configuration at a started mock cluster's bootstrap servers.
    ///
    /// The mock cluster does not check the sequence numbers of an idempotent producer
    /// that is not transactional (a real broker refuses a batch that skips one). With
    /// several produce requests in flight, a batch can then be written while the one
    /// before it failed, and librdkafka counts the failed one as delivered (it
    /// "implicitly acks" a batch when a later one succeeds): a record reported
    /// delivered would be missing. So on the mock the producer keeps one request in
    /// flight, unless `rdkafka.producer.max.in.flight.requests.per.connection` (or
    /// the unscoped key) says otherwise.
    pub fn with_mock_cluster(mut self, servers: impl Into<String>) -> Self {
        self.brokers = Brokers::Servers(servers.into());
        let explicit = self.common.contains_key(MAX_IN_FLIGHT)
            || self
                .scoped
                .get(ClientRole::Producer.passthrough_scope())
                .is_some_and(|m| m.contains_key(MAX_IN_FLIGHT));
        if !explicit {
            self.scoped
                .entry(ClientRole::Producer.passthrough_scope())
                .or_default()
                .insert(MAX_IN_FLIGHT.to_owned(), "1".to_owned());
        }
        self
    }

    /// The consumer group of a listener: its pool, else `consumer_group`.
    pub fn group_for(&self, pool: Option<&str>) -> String {
        pool.filter(|p| !p.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| self.consumer_group.clone())
    }

    /// Whether the driver creates missing topics.
    pub fn create_topics(&self) -> bool {
        self.create_topics
    }

    /// The librdkafka configuration of one client.
    ///
    /// Fails for a `kafka+mock://` configuration whose mock cluster has not been
    /// started yet (open the driver and use [`crate::KafkaDriver::client_config`]).
    pub fn client_config(&self, role: &ClientRole) -> Result<ClientConfig> {
        let servers = match &self.brokers {
            Brokers::Servers(s) => s.clone(),
            Brokers::Mock { .. } => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "a kafka+mock:// configuration has no brokers until the driver starts its mock cluster",
                ))
            }
        };
        let mut c = ClientConfig::new();
        c.set_log_level(log_level());
        c.set("bootstrap.servers", servers);
        if !matches!(role, ClientRole::Admin) {
            c.set("statistics.interval.ms", millis(self.statistics_interval));
        }
        match role {
            ClientRole::Producer => {
                c.set("acks", self.acks)
                    .set("enable.idempotence", self.idempotence.to_string())
                    .set("linger.ms", millis(self.linger))
                    .set("batch.num.messages", self.batch_size.to_string())
                    .set("compression.codec", self.compression.as_str())
                    .set("message.timeout.ms", millis(self.delivery_timeout));
            }
            ClientRole::Consumer { group, start } => {
                let reset = match start {
                    StartPosition::Default => self.auto_offset_reset,
                    StartPosition::Latest => "latest",
                    // A timestamp start sets explicit offsets on assignment; where that
                    // lookup fails, starting early loses nothing.
                    StartPosition::Earliest | StartPosition::Timestamp(_) => "earliest",
                };
                let commit_interval = if self.enable_auto_commit { 5000 } else { 250 };
                c.set("group.id", group.as_str())
                    .set("enable.auto.commit", "true")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.commit.interval.ms", commit_interval.to_string())
                    .set("auto.offset.reset", reset)
                    .set("enable.partition.eof", "false")
                    .set(
                        "max.partition.fetch.bytes",
                        self.max_fetch_bytes.to_string(),
                    );
            }
            ClientRole::Admin => {}
        }
        for (k, v) in &self.common {
            c.set(k.as_str(), v.as_str());
        }
        if let Some(scoped) = self.scoped.get(role.passthrough_scope()) {
            for (k, v) in scoped {
                c.set(k.as_str(), v.as_str());
            }
        }
        Ok(c)
    }
}

/// librdkafka's log level, following the most verbose level `tracing` enables.
fn log_level() -> RDKafkaLogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF | LevelFilter::ERROR => RDKafkaLogLevel::Error,
        LevelFilter::WARN => RDKafkaLogLevel::Warning,
        LevelFilter::INFO => RDKafkaLogLevel::Notice,
        _ => RDKafkaLogLevel::Debug,
    }
}

/// Validate configuration options, then the URL's query (which wins), against the
/// Kafka driver's specs, exactly as the core's registry does.
pub(crate) fn resolve_options(
    url: &TransportUrl,
    config_options: &[(String, String)],
) -> Result<DriverOptions> {
    let registry = DriverRegistry::new();
    registry.register(crate::factory());
    let factory = registry.factory(url)?;
    let query = url.query_map();
    DriverOptions::resolve(
        factory.option_specs(),
        factory.passthrough_prefixes(),
        [config_options, query.as_slice()],
    )
}

/// Resolve `url` and configuration options the way the core's registry does
/// (configuration first, the URL's query wins) and build one client's configuration.
///
/// For tools that talk to Kafka directly with the driver's settings, such as the raw
/// benchmark. `kafka+mock://` is refused here: open the driver
/// ([`crate::open`]) and use [`crate::KafkaDriver::client_config`].
pub fn client_config(
    url: &TransportUrl,
    config_options: &[(String, String)],
    role: &ClientRole,
) -> Result<ClientConfig> {
    let options = resolve_options(url, config_options)?;
    KafkaConfig::from_url(url, &options)?.client_config(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<KafkaConfig> {
        let url = TransportUrl::parse(url)?;
        let options = DriverOptions::resolve(
            crate::options::SPECS,
            &[PASSTHROUGH_PREFIX],
            [url.query_map().as_slice()],
        )?;
        KafkaConfig::from_url(&url, &options)
    }

    fn producer(url: &str) -> ClientConfig {
        parse(url)
            .unwrap()
            .client_config(&ClientRole::Producer)
            .unwrap()
    }

    fn consumer(url: &str, start: StartPosition) -> ClientConfig {
        parse(url)
            .unwrap()
            .client_config(&ClientRole::Consumer {
                group: "g".into(),
                start,
            })
            .unwrap()
    }

    #[test]
    fn unresolved_options_read_the_declared_defaults() {
        let url = TransportUrl::parse("kafka://h").unwrap();
        let bare = KafkaConfig::from_url(&url, &DriverOptions::default()).unwrap();
        let resolved = parse("kafka://h").unwrap();
        assert_eq!(format!("{bare:?}"), format!("{resolved:?}"));
        assert_eq!(bare.consumer_group, "oslo_messaging_consumer");
        assert_eq!(bare.delivery_timeout, Duration::from_secs(30));
        assert_eq!(bare.max_poll_records, 500);
    }

    #[test]
    fn statistics_interval_defaults_to_5_s_is_validated_and_skips_the_admin_client() {
        let c = producer("kafka://h");
        assert_eq!(c.get("statistics.interval.ms"), Some("5000"));
        let c = consumer("kafka://h?statistics_interval=0.25", StartPosition::Default);
        assert_eq!(c.get("statistics.interval.ms"), Some("250"));
        let off = producer("kafka://h?statistics_interval=0");
        assert_eq!(off.get("statistics.interval.ms"), Some("0"));
        let admin = parse("kafka://h")
            .unwrap()
            .client_config(&ClientRole::Admin)
            .unwrap();
        assert_eq!(admin.get("statistics.interval.ms"), None);
        let bad = parse("kafka://h?statistics_interval=soon").unwrap_err();
        assert_eq!(
            bad.kind(),
            &ErrorKind::InvalidOption {
                key: "statistics_interval".into()
            }
        );
    }

    #[test]
    fn hosts_become_bootstrap_servers_with_default_port() {
        let c = producer("kafka://a,b:9093,[::1]:9094,[fe80::1]");
        assert_eq!(
            c.get("bootstrap.servers"),
            Some("a:9092,b:9093,[::1]:9094,[fe80::1]:9092")
        );
        assert_eq!(c.get("security.protocol"), Some("PLAINTEXT"));
    }

    #[test]
    fn producer_defaults() {
        let c = producer("kafka://h");
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("linger.ms"), Some("0"));
        assert_eq!(c.get("batch.num.messages"), Some("16384"));
        assert_eq!(c.get("compression.codec"), Some("none"));
        assert_eq!(c.get("message.timeout.ms"), Some("30000"));
        assert_eq!(c.get("group.id"), None);
    }

    #[test]
    fn aliases_win_over_oslo_names() {
        let c = producer(
            "kafka://h?producer_batch_timeout=0.5&linger=0.02&compression_codec=gzip&compression=ZSTD&delivery_timeout=2.5",
        );
        assert_eq!(c.get("linger.ms"), Some("20"));
        assert_eq!(c.get("compression.codec"), Some("zstd"));
        assert_eq!(c.get("message.timeout.ms"), Some("2500"));
        let c = producer("kafka://h?producer_batch_timeout=0.5&compression_codec=lz4");
        assert_eq!(c.get("linger.ms"), Some("500"));
        assert_eq!(c.get("compression.codec"), Some("lz4"));
    }

    #[test]
    fn consumer_settings_keep_commits_behind_handling() {
        let c = consumer(
            "kafka://h?kafka_max_fetch_bytes=2048",
            StartPosition::Default,
        );
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("enable.auto.commit"), Some("true"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("auto.commit.interval.ms"), Some("250"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("max.partition.fetch.bytes"), Some("2048"));
        let c = consumer(
            "kafka://h?auto_offset_reset=latest&enable_auto_commit=true",
            StartPosition::Default,
        );
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
        assert_eq!(c.get("auto.commit.interval.ms"), Some("5000"));
        let c = consumer(
            "kafka://h?auto_offset_reset=latest",
            StartPosition::Earliest,
        );
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        let c = consumer("kafka://h", StartPosition::Latest);
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
    }

    #[test]
    fn group_is_pool_else_consumer_group() {
        let k = parse("kafka://h").unwrap();
        assert_eq!(k.group_for(None), "oslo_messaging_consumer");
        assert_eq!(k.group_for(Some("pool1")), "pool1");
        let k = parse("kafka://h?consumer_group=mine").unwrap();
        assert_eq!(k.group_for(None), "mine");
    }

    #[test]
    fn credentials_and_security() {
        // Credentials come from the first host that has them and imply SASL.
        let c = producer("kafka://h1,us%40er:p%3Ass@h2,other:x@h3");
        assert_eq!(c.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(c.get("sasl.username"), Some("us@er"));
        assert_eq!(c.get("sasl.password"), Some("p:ss"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        let c = producer("kafka+sasl+ssl://u:p@h?sasl_mechanism=scram-sha-512&ssl_cafile=/ca.pem");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
        let c = producer("kafka+sasl-ssl://u:p@h");
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        let c = producer(
            "kafka+ssl://h?ssl_client_cert_file=/c.pem&ssl_client_key_file=/k.pem&ssl_client_key_password=pw",
        );
        assert_eq!(c.get("security.protocol"), Some("SSL"));
        assert_eq!(c.get("ssl.certificate.location"), Some("/c.pem"));
        assert_eq!(c.get("ssl.key.location"), Some("/k.pem"));
        assert_eq!(c.get("ssl.key.password"), Some("pw"));
        assert_eq!(c.get("sasl.username"), None);
        let c = producer("kafka://u:p@h?security_protocol=ssl");
        assert_eq!(c.get("security.protocol"), Some("SSL"));
        assert_eq!(c.get("sasl.password"), None);
    }

    #[test]
    fn no_secret_shows_in_the_debug_of_the_driver() {
        let url = TransportUrl::parse(
            "kafka://u:hunter2@192.0.2.1:9?create_topics=true&rdkafka.sasl.oauthbearer.config=secret42\
&rdkafka.ssl.key.pem=PRIVATEKEY7&ssl_client_key_password=keypw9",
        )
        .unwrap();
        let driver = crate::open(&url, &[]).unwrap();
        let text = format!("{driver:?} {url} {url:?}");
        for secret in ["hunter2", "secret42", "PRIVATEKEY7", "keypw9"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("sasl.username"), "{text}");
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let k = parse("kafka://u:hunter2@h?rdkafka.sasl.oauthbearer.config=secret42").unwrap();
        let text = format!("{k:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("secret42"), "{text}");
    }

    #[test]
    fn typed_errors() {
        let kind = |url: &str| parse(url).unwrap_err().kind().clone();
        assert_eq!(kind("kafka://"), ErrorKind::InvalidUrl);
        assert_eq!(kind("kafka+tls://h"), ErrorKind::InvalidUrl);
        assert_eq!(kind("kafka+sasl://h"), ErrorKind::InvalidUrl);
        assert_eq!(
            kind("kafka+ssl://h?security_protocol=PLAINTEXT"),
            ErrorKind::InvalidOption {
                key: "security_protocol".into()
            }
        );
        assert_eq!(
            kind("kafka://h?acks=1"),
            ErrorKind::InvalidOption { key: "acks".into() }
        );
        assert_eq!(
            kind("kafka://h?rdkafka.enable.auto.offset.store=true"),
            ErrorKind::InvalidOption {
                key: "rdkafka.enable.auto.offset.store".into()
            }
        );
        assert_eq!(
            kind("kafka://h?rdkafka.consumer.group.id=x"),
            ErrorKind::InvalidOption {
                key: "rdkafka.consumer.group.id".into()
            }
        );
        // acks=1 is fine without idempotence.
        let c = producer("kafka://h?acks=1&idempotence=false");
        assert_eq!(c.get("acks"), Some("1"));
        assert_eq!(c.get("enable.idempotence"), Some("false"));
    }

    #[test]
    fn passthrough_reaches_librdkafka_per_role() {
        let url = "kafka://h?rdkafka.queue.buffering.max.messages=500000&rdkafka.consumer.session.timeout.ms=6000&rdkafka.producer.linger.ms=7&rdkafka.admin.socket.timeout.ms=1000";
        let p = producer(url);
        assert_eq!(p.get("queue.buffering.max.messages"), Some("500000"));
        assert_eq!(p.get("linger.ms"), Some("7"));
        assert_eq!(p.get("session.timeout.ms"), None);
        let c = consumer(url, StartPosition::Default);
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("queue.buffering.max.messages"), Some("500000"));
        assert_eq!(c.get("linger.ms"), None);
        let a = parse(url)
            .unwrap()
            .client_config(&ClientRole::Admin)
            .unwrap();
        assert_eq!(a.get("socket.timeout.ms"), Some("1000"));
    }

    #[test]
    fn mock_needs_a_started_cluster() {
        let k = parse("kafka+mock://?mock_brokers=3").unwrap();
        assert_eq!(k.brokers(), &Brokers::Mock { brokers: 3 });
        assert!(k.client_config(&ClientRole::Producer).is_err());
        let k = k.with_mock_cluster("127.0.0.1:1");
        assert_eq!(
            k.client_config(&ClientRole::Admin)
                .unwrap()
                .get("bootstrap.servers"),
            Some("127.0.0.1:1")
        );
    }

    #[test]
    fn mock_producer_keeps_one_request_in_flight_unless_told_otherwise() {
        let in_flight = |url: &str| {
            parse(url)
                .unwrap()
                .with_mock_cluster("127.0.0.1:1")
                .client_config(&ClientRole::Producer)
                .unwrap()
                .get(MAX_IN_FLIGHT)
                .map(str::to_owned)
        };
        assert_eq!(in_flight("kafka+mock://").as_deref(), Some("1"));
        assert_eq!(
            in_flight("kafka+mock://?rdkafka.producer.max.in.flight.requests.per.connection=5")
                .as_deref(),
            Some("5")
        );
        assert_eq!(
            in_flight("kafka+mock://?rdkafka.max.in.flight.requests.per.connection=3").as_deref(),
            Some("3")
        );
        // Consumers are untouched, and a real broker keeps librdkafka's default.
        let mock = parse("kafka+mock://")
            .unwrap()
            .with_mock_cluster("127.0.0.1:1");
        let consumer = mock
            .client_config(&ClientRole::Consumer {
                group: "g".into(),
                start: StartPosition::Default,
            })
            .unwrap();
        assert_eq!(consumer.get(MAX_IN_FLIGHT), None);
        assert_eq!(producer("kafka://h").get(MAX_IN_FLIGHT), None);
    }

    #[test]
    fn public_client_config_validates_like_the_registry() {
        let url = TransportUrl::parse("kafka://h?colour=red").unwrap();
        let e = client_config(&url, &[], &ClientRole::Producer).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::InvalidOption {
                key: "colour".into()
            }
        );
        let url = TransportUrl::parse("kafka://h?linger=0.1").unwrap();
        let config = vec![("linger".to_owned(), "0.5".to_owned())];
        let c = client_config(&url, &config, &ClientRole::Producer).unwrap();
        assert_eq!(c.get("linger.ms"), Some("100"));
    }
}
