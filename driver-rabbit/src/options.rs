//! The driver's options (oslo's names and defaults) and the configuration read
//! from a URL and its validated options.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use messaging_core::options::{DriverOptions, OptionKind, OptionSpec};
use messaging_core::{Error, Result, TransportUrl};

/// The default AMQP port (also with TLS, as oslo).
pub const DEFAULT_PORT: u16 = 5672;

/// RabbitMQ's default `max_message_size` (128 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 134_217_728;

const fn int(min: i64, max: i64) -> OptionKind {
    OptionKind::Int { min, max }
}

/// Every option `rabbit://` understands, declared once.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "control_exchange",
        OptionKind::Text,
        Some("openstack"),
        "the topic exchange for notifications and RPC ([DEFAULT] control_exchange)",
    ),
    OptionSpec::new(
        "rpc_response_timeout",
        OptionKind::Seconds,
        Some("60"),
        "the default call timeout of an RPC client on this URL (its with_timeout wins), in seconds",
    ),
    OptionSpec::new(
        "amqp_durable_queues",
        OptionKind::Bool,
        Some("false"),
        "declare the exchange and the topic, server and notification queues durable",
    ),
    OptionSpec::new(
        "amqp_auto_delete",
        OptionKind::Bool,
        Some("false"),
        "declare the exchange and the topic, server and notification queues auto-delete",
    ),
    OptionSpec::new(
        "rabbit_qos_prefetch_count",
        int(0, 65_535),
        Some("0"),
        "most unacknowledged deliveries per consumer (0: 1000; oslo: no limit)",
    ),
    OptionSpec::new(
        "heartbeat_timeout_threshold",
        int(0, 3_600),
        Some("60"),
        "AMQP heartbeat in seconds (0: off)",
    ),
    OptionSpec::new(
        "heartbeat_rate",
        int(1, 100),
        Some("3"),
        "accepted for oslo configs (the client library checks heartbeats itself)",
    ),
    OptionSpec::new(
        "rabbit_quorum_queue",
        OptionKind::Bool,
        Some("false"),
        "declare the topic, server and notification queues as quorum queues",
    ),
    OptionSpec::new(
        "rabbit_transient_quorum_queue",
        OptionKind::Bool,
        Some("false"),
        "declare reply and fanout queues as quorum queues",
    ),
    OptionSpec::new(
        "rabbit_quorum_delivery_limit",
        int(0, 2_147_483_647),
        Some("0"),
        "x-delivery-limit of quorum queues (0: not set)",
    ),
    OptionSpec::new(
        "rabbit_quorum_max_memory_length",
        int(0, 2_147_483_647),
        Some("0"),
        "x-max-in-memory-length of quorum queues (0: not set)",
    ),
    OptionSpec::new(
        "rabbit_quorum_max_memory_bytes",
        int(0, 2_147_483_647),
        Some("0"),
        "x-max-in-memory-bytes of quorum queues (0: not set)",
    ),
    OptionSpec::new(
        "rabbit_transient_queues_ttl",
        int(0, 2_147_483),
        Some("1800"),
        "x-expires of reply and fanout queues, in seconds (0: none)",
    ),
    OptionSpec::new(
        "rabbit_retry_interval",
        OptionKind::Seconds,
        Some("1"),
        "first wait before reconnecting, in seconds",
    ),
    OptionSpec::new(
        "rabbit_retry_backoff",
        OptionKind::Seconds,
        Some("2"),
        "added to the wait after each failed reconnect, in seconds",
    ),
    OptionSpec::new(
        "rabbit_interval_max",
        OptionKind::Seconds,
        Some("30"),
        "longest wait between reconnects, in seconds",
    ),
    OptionSpec::new(
        "kombu_reconnect_delay",
        OptionKind::Seconds,
        Some("1.0"),
        "added to every reconnect wait, in seconds",
    ),
    OptionSpec::new(
        "rabbit_login_method",
        OptionKind::Choice(&["AMQPLAIN", "PLAIN"]),
        Some("AMQPLAIN"),
        "SASL mechanism",
    ),
    OptionSpec::new(
        "ssl",
        OptionKind::Bool,
        Some("false"),
        "connect with TLS (also a `+ssl` scheme suffix); the host name is checked",
    ),
    OptionSpec::new(
        "ssl_ca_file",
        OptionKind::Text,
        None,
        "PEM file of the CAs that sign the broker's certificate (default: the system's)",
    ),
    OptionSpec::new(
        "ssl_cert_file",
        OptionKind::Text,
        None,
        "PEM file of the client certificate (with ssl_key_file), for brokers that ask for one",
    ),
    OptionSpec::new(
        "ssl_key_file",
        OptionKind::Text,
        None,
        "PEM file of the client certificate's private key (with ssl_cert_file)",
    ),
    OptionSpec::new(
        "connection_timeout",
        OptionKind::Seconds,
        Some("10"),
        "how long one connection attempt to one host may take, in seconds",
    ),
    OptionSpec::new(
        "kombu_compression",
        OptionKind::Choice(&["gzip"]),
        None,
        "compress bodies as kombu does for gzip (zlib, header compression: application/x-gzip); received bodies are decompressed by their header either way",
    ),
    OptionSpec::new(
        "max_record_bytes",
        int(0, 2_147_483_647),
        Some("134217728"),
        "largest record accepted, in bytes, as the broker's max_message_size (0: no limit)",
    ),
    OptionSpec::new(
        "max_unconfirmed",
        int(1, 1_000_000),
        Some("10000"),
        "most messages handed to the connection and not yet confirmed by the broker; at that many, a send waits for confirms (notifications and requests: the core's backpressure, up to the send timeout)",
    ),
];

/// Queue arguments and flags, per kind of queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuePolicy {
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) quorum: bool,
    pub(crate) transient_quorum: bool,
    pub(crate) delivery_limit: i64,
    pub(crate) max_memory_length: i64,
    pub(crate) max_memory_bytes: i64,
    pub(crate) transient_ttl: Duration,
}

impl QueuePolicy {
    /// Arguments of a topic, server or notification queue.
    pub(crate) fn lasting_arguments(&self) -> FieldTable {
        let mut t = FieldTable::default();
        if self.quorum {
            self.quorum_arguments(&mut t);
        }
        t
    }

    /// Whether topic, server and notification queues are durable.
    pub(crate) fn lasting_durable(&self) -> bool {
        self.durable || self.quorum
    }

    /// Arguments of a reply or fanout queue (they expire when unused).
    pub(crate) fn transient_arguments(&self) -> FieldTable {
        let mut t = FieldTable::default();
        if !self.transient_ttl.is_zero() {
            let ms = i64::try_from(self.transient_ttl.as_millis()).unwrap_or(i64::MAX);
            t.insert(ShortString::from("x-expires"), AMQPValue::LongLongInt(ms));
        }
        if self.transient_quorum {
            self.quorum_arguments(&mut t);
        }
        t
    }

    fn quorum_arguments(&self, t: &mut FieldTable) {
        t.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString("quorum".into()),
        );
        for (key, value) in [
            ("x-delivery-limit", self.delivery_limit),
            ("x-max-in-memory-length", self.max_memory_length),
            ("x-max-in-memory-bytes", self.max_memory_bytes),
        ] {
            if value > 0 {
                t.insert(ShortString::from(key), AMQPValue::LongLongInt(value));
            }
        }
    }
}

/// The waits between reconnect attempts (oslo's `rabbit_retry_*` options).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReconnectWaits {
    pub(crate) first: Duration,
    pub(crate) step: Duration,
    pub(crate) max: Duration,
    pub(crate) delay: Duration,
}

impl ReconnectWaits {
    /// The wait before attempt `n` (0-based) of reconnecting.
    pub(crate) fn wait(&self, attempt: u32) -> Duration {
        (self.first + self.step * attempt).min(self.max) + self.delay
    }
}

/// What the driver needs from the URL and its options. Its `Debug` shows each URI
/// as [`RabbitConfig::describe`] does: never the password (lapin's `AMQPUri` would).
#[derive(Clone)]
pub(crate) struct RabbitConfig {
    /// One URI per host, tried in turn.
    pub(crate) uris: Vec<AMQPUri>,
    pub(crate) exchange: String,
    pub(crate) queues: QueuePolicy,
    pub(crate) prefetch: u16,
    pub(crate) reconnect: ReconnectWaits,
    pub(crate) ca_file: Option<String>,
    /// The client certificate and its key (PEM files), when the broker asks for one.
    pub(crate) client_cert: Option<(String, String)>,
    pub(crate) max_record_bytes: Option<usize>,
    /// Compress published bodies (kombu's `gzip`: zlib).
    pub(crate) compress: bool,
    /// Most published messages awaiting their confirm.
    pub(crate) max_unconfirmed: usize,
}

impl std::fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uris: Vec<String> = self.uris.iter().map(Self::describe_with_user).collect();
        f.debug_struct("RabbitConfig")
            .field("uris", &uris)
            .field("exchange", &self.exchange)
            .field("queues", &self.queues)
            .field("prefetch", &self.prefetch)
            .field("reconnect", &self.reconnect)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("compress", &self.compress)
            .field("max_unconfirmed", &self.max_unconfirmed)
            .finish()
    }
}

/// The AMQP virtual host of a URL: `/`, empty or none is `/`; `//` and `/%2F` are
/// `/` too (the URL parser leaves `/` or `%2F`); anything else is taken as is.
fn vhost_of(url: &TransportUrl) -> String {
    match url.virtual_host() {
        None | Some("") | Some("/") => "/".to_owned(),
        Some(v) if v.eq_ignore_ascii_case("%2f") => "/".to_owned(),
        Some(v) => v.to_owned(),
    }
}

fn secs(o: &DriverOptions, name: &str) -> Duration {
    o.seconds(name).unwrap_or_default()
}

impl RabbitConfig {
    /// Read the URL and its validated options.
    pub(crate) fn from_url(url: &TransportUrl, o: &DriverOptions) -> Result<Self> {
        let tls = o.bool("ssl").unwrap_or(false) || url.scheme_suffix() == Some("ssl");
        let vhost = vhost_of(url);
        let heartbeat = o.int("heartbeat_timeout_threshold").unwrap_or(60);
        let timeout = secs(o, "connection_timeout");
        let mechanism = match o.get("rabbit_login_method") {
            Some(m) if m.eq_ignore_ascii_case("PLAIN") => SASLMechanism::Plain,
            _ => SASLMechanism::AMQPlain,
        };
        let query = AMQPQueryString {
            heartbeat: u16::try_from(heartbeat).ok(),
            connection_timeout: u64::try_from(timeout.as_millis()).ok(),
            auth_mechanism: Some(mechanism),
            ..AMQPQueryString::default()
        };
        let hosts = url.hosts();
        let uris = if hosts.is_empty() {
            vec![uri(
                tls,
                "guest",
                "guest",
                "localhost",
                DEFAULT_PORT,
                &vhost,
                &query,
            )]
        } else {
            hosts
                .iter()
                .map(|h| {
                    let user = h.username.as_deref().unwrap_or("guest");
                    let password =
                        h.password()
                            .unwrap_or(if h.username.is_some() { "" } else { "guest" });
                    let host = if h.hostname.is_empty() {
                        "localhost"
                    } else {
                        &h.hostname
                    };
                    uri(
                        tls,
                        user,
                        password,
                        host,
                        h.port.unwrap_or(DEFAULT_PORT),
                        &vhost,
                        &query,
                    )
                })
                .collect()
        };
        let exchange = o.get("control_exchange").unwrap_or("openstack").to_owned();
        if exchange.is_empty() {
            return Err(Error::invalid_option(
                "control_exchange",
                "control_exchange must not be empty",
            ));
        }
        let limit = |name: &str| o.int(name).unwrap_or(0);
        Ok(RabbitConfig {
            uris,
            exchange,
            queues: QueuePolicy {
                durable: o.bool("amqp_durable_queues").unwrap_or(false),
                auto_delete: o.bool("amqp_auto_delete").unwrap_or(false),
                quorum: o.bool("rabbit_quorum_queue").unwrap_or(false),
                transient_quorum: o.bool("rabbit_transient_quorum_queue").unwrap_or(false),
                delivery_limit: limit("rabbit_quorum_delivery_limit"),
                max_memory_length: limit("rabbit_quorum_max_memory_length"),
                max_memory_bytes: limit("rabbit_quorum_max_memory_bytes"),
                transient_ttl: Duration::from_secs(
                    u64::try_from(limit("rabbit_transient_queues_ttl")).unwrap_or(0),
                ),
            },
            prefetch: u16::try_from(limit("rabbit_qos_prefetch_count")).unwrap_or(0),
            reconnect: ReconnectWaits {
                first: secs(o, "rabbit_retry_interval"),
                step: secs(o, "rabbit_retry_backoff"),
                max: secs(o, "rabbit_interval_max"),
                delay: secs(o, "kombu_reconnect_delay"),
            },
            ca_file: o.get("ssl_ca_file").map(str::to_owned),
            client_cert: match (o.get("ssl_cert_file"), o.get("ssl_key_file")) {
                (Some(cert), Some(key)) => Some((cert.to_owned(), key.to_owned())),
                (None, None) => None,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(Error::invalid_option(
                        "ssl_cert_file",
                        "ssl_cert_file and ssl_key_file go together: set both or neither",
                    ))
                }
            },
            compress: o.get("kombu_compression").is_some(),
            max_unconfirmed: usize::try_from(limit("max_unconfirmed"))
                .unwrap_or(1)
                .max(1),
            max_record_bytes: match limit("max_record_bytes") {
                0 => None,
                n => usize::try_from(n).ok(),
            },
        })
    }

    /// Where a host's URI points, for logs (no credentials).
    /// [`RabbitConfig::describe`] with the user name: `user@host:port vhost "v"`,
    /// never the password.
    pub(crate) fn describe_with_user(uri: &AMQPUri) -> String {
        format!(
            "{}@{}",
            uri.authority.userinfo.username,
            Self::describe(uri)
        )
    }

    pub(crate) fn describe(uri: &AMQPUri) -> String {
        format!(
            "{}:{} vhost {:?}",
            uri.authority.host, uri.authority.port, uri.vhost
        )
    }
}

fn uri(
    tls: bool,
    user: &str,
    password: &str,
    host: &str,
    port: u16,
    vhost: &str,
    query: &AMQPQueryString,
) -> AMQPUri {
    AMQPUri {
        scheme: if tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: user.to_owned(),
                password: password.to_owned(),
            },
            host: host.to_owned(),
            port,
        },
        vhost: vhost.to_owned(),
        query: query.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Result<RabbitConfig> {
        let url = TransportUrl::parse(url)?;
        let o = DriverOptions::resolve(OPTIONS, &[], [url.query_pairs()])?;
        RabbitConfig::from_url(&url, &o)
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let config = config("rabbit://bob:hunter2@h1:5672,alice:s3cret@h2/").unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("bob@h1:5672") && shown.contains("alice@h2:5672"),
            "{shown}"
        );
    }

    #[test]
    fn a_bare_url_is_guest_on_localhost_and_the_root_vhost() {
        let c = config("rabbit://").unwrap();
        assert_eq!(c.uris.len(), 1);
        let u = &c.uris[0];
        assert_eq!(u.authority.host, "localhost");
        assert_eq!(u.authority.port, 5672);
        assert_eq!(u.authority.userinfo.username, "guest");
        assert_eq!(u.authority.userinfo.password, "guest");
        assert_eq!(u.vhost, "/");
        assert_eq!(c.exchange, "openstack");
        assert_eq!(c.queues.transient_ttl, Duration::from_secs(1800));
    }

    #[test]
    fn several_hosts_keep_their_credentials_and_share_the_vhost() {
        let c = config("rabbit://u:p@h1:5673,u2:p2@h2/v1?heartbeat_timeout_threshold=30").unwrap();
        let hosts: Vec<_> = c
            .uris
            .iter()
            .map(|u| {
                (
                    u.authority.userinfo.username.as_str(),
                    u.authority.userinfo.password.as_str(),
                    u.authority.host.as_str(),
                    u.authority.port,
                    u.vhost.as_str(),
                    u.query.heartbeat,
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("u", "p", "h1", 5673, "v1", Some(30)),
                ("u2", "p2", "h2", 5672, "v1", Some(30)),
            ]
        );
    }

    #[test]
    fn tls_comes_from_the_option_or_the_scheme_suffix_on_the_same_port() {
        for url in ["rabbit://h?ssl=true", "rabbit+ssl://h"] {
            let c = config(url).unwrap();
            assert_eq!(c.uris[0].scheme, AMQPScheme::AMQPS, "{url}");
            assert_eq!(c.uris[0].authority.port, 5672, "{url}");
        }
    }

    #[test]
    fn a_client_certificate_needs_both_files() {
        let c = config("rabbit+ssl://h?ssl_cert_file=/c.pem&ssl_key_file=/k.pem").unwrap();
        assert_eq!(
            c.client_cert,
            Some(("/c.pem".to_owned(), "/k.pem".to_owned()))
        );
        let e = config("rabbit+ssl://h?ssl_cert_file=/c.pem").unwrap_err();
        assert!(e.to_string().contains("ssl_key_file"), "{e}");
    }

    #[test]
    fn unknown_and_bad_options_are_refused_by_name() {
        let e = config("rabbit://h?rabit_qos_prefetch_count=3").unwrap_err();
        assert!(e.to_string().contains("rabit_qos_prefetch_count"), "{e}");
        let e = config("rabbit://h?rabbit_qos_prefetch_count=-1").unwrap_err();
        assert!(e.to_string().contains("rabbit_qos_prefetch_count"), "{e}");
        let e = config("rabbit://h?control_exchange=").unwrap_err();
        assert!(e.to_string().contains("control_exchange"), "{e}");
        let e = config("rabbit://h?max_unconfirmed=0").unwrap_err();
        assert!(e.to_string().contains("max_unconfirmed"), "{e}");
    }

    #[test]
    fn unconfirmed_messages_are_bounded_by_default_and_by_the_option() {
        assert_eq!(config("rabbit://h").unwrap().max_unconfirmed, 10_000);
        assert_eq!(
            config("rabbit://h?max_unconfirmed=3")
                .unwrap()
                .max_unconfirmed,
            3
        );
    }

    #[test]
    fn reconnect_waits_grow_by_the_backoff_up_to_the_maximum_plus_the_delay() {
        let c = config("rabbit://h?rabbit_retry_interval=1&rabbit_retry_backoff=2&rabbit_interval_max=6&kombu_reconnect_delay=0.5").unwrap();
        let waits: Vec<f64> = (0..5).map(|n| c.reconnect.wait(n).as_secs_f64()).collect();
        assert_eq!(waits, [1.5, 3.5, 5.5, 6.5, 6.5]);
    }

    #[test]
    fn quorum_and_expiry_arguments_follow_the_options() {
        let c = config("rabbit://h?rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=5&rabbit_transient_queues_ttl=60").unwrap();
        let lasting = c.queues.lasting_arguments();
        assert!(c.queues.lasting_durable());
        assert_eq!(
            lasting.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            lasting.inner().get("x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(5))
        );
        let transient = c.queues.transient_arguments();
        assert_eq!(
            transient.inner().get("x-expires"),
            Some(&AMQPValue::LongLongInt(60_000))
        );
        assert!(transient.inner().get("x-queue-type").is_none());
    }
}
