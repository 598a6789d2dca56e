//! Configuration an application loads from its own TOML, YAML, environment...
//!
//! ```
//! let text = r#"
//! transport_url = "memory://"
//! [notifications]
//! driver = ["messagingv2"]
//! topics = ["notifications"]
//! retry = 3
//! [listener]
//! pool = "billing"
//! allow_requeue = true
//! [options]
//! send_timeout = "5"
//! "#;
//! let config: messaging_core::MessagingConfig = toml::from_str(text).unwrap();
//! assert_eq!(config.notifications.retry, Some(3));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Result;
use crate::listener::{NotificationListenerBuilder, DEFAULT_MAX_CONCURRENCY};
use crate::notification::ContextSanitizer;
use crate::notifier::{NotifierBuilder, RoutingSink};
use crate::registry::DriverRegistry;
use crate::retry::Retry;
use crate::transport::Transport;
use crate::url::TransportUrl;

/// Everything the framework reads from configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MessagingConfig {
    /// The transport URL (default `memory://`).
    #[serde(default = "default_url")]
    pub transport_url: String,
    /// Driver options (the URL's query overrides them).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Notifier settings (oslo's `[oslo_messaging_notifications]`).
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// Listener settings.
    #[serde(default)]
    pub listener: ListenerConfig,
    /// How long an RPC call waits for its reply, in seconds (oslo's `[DEFAULT]
    /// rpc_response_timeout`; default 60); see [`MessagingConfig::rpc_client`].
    #[serde(default)]
    pub rpc_response_timeout: Option<f64>,
}

fn default_url() -> String {
    "memory://".to_owned()
}

/// Notifier settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Notifier drivers by oslo's names (`messagingv2`, `log`, `noop`, `test`, `routing`).
    #[serde(default = "default_drivers")]
    pub driver: Vec<String>,
    /// Topics (default `notifications`).
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Retries: none or -1 forever, 0 none, N at most N.
    #[serde(default)]
    pub retry: Option<i64>,
    /// Rules file for the `routing` driver.
    #[serde(default)]
    pub routing_config: Option<PathBuf>,
    /// Context keys removed before sending (default: the usual secrets).
    #[serde(default)]
    pub secret_keys: Option<Vec<String>>,
    /// A transport of their own for notifications (oslo's
    /// `[oslo_messaging_notifications] transport_url`), e.g. Kafka while RPC runs on
    /// RabbitMQ; unset: the main `transport_url`. See
    /// [`MessagingConfig::open_notification_transport`].
    #[serde(default)]
    pub transport_url: Option<String>,
    /// Driver options of that transport (its URL's query overrides them); the
    /// top-level `[options]` belong to the main transport.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            driver: default_drivers(),
            topics: default_topics(),
            retry: None,
            routing_config: None,
            secret_keys: None,
            transport_url: None,
            options: BTreeMap::new(),
        }
    }
}

fn default_drivers() -> Vec<String> {
    vec!["messagingv2".to_owned()]
}

fn default_topics() -> Vec<String> {
    vec![crate::notifier::DEFAULT_TOPIC.to_owned()]
}

/// Listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The pool (consumer group).
    #[serde(default)]
    pub pool: Option<String>,
    /// Allow requeue.
    #[serde(default)]
    pub allow_requeue: bool,
    /// Bound on handlers running at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Batch size (batch listeners).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Batch timeout in seconds (batch listeners).
    #[serde(default)]
    pub batch_timeout: Option<f64>,
    /// Seconds `stop` lets handlers finish.
    #[serde(default)]
    pub stop_timeout: Option<f64>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            pool: None,
            allow_requeue: false,
            max_concurrency: default_concurrency(),
            batch_size: None,
            batch_timeout: None,
            stop_timeout: None,
        }
    }
}

fn default_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}

/// The longest timeout a configuration file sets (a century): deadlines are
/// computed as `now + timeout`, which overflows for anything near `Duration::MAX`.
const MAX_CONFIG_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// A timeout in seconds from a configuration file: negative and NaN are 0, more
/// than [`MAX_CONFIG_TIMEOUT`] (infinity included) is that. (`from_secs_f64`
/// panics on a value beyond `u64::MAX` seconds, such as 1e300 or `inf`.)
fn seconds(value: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(value.max(0.0))
        .unwrap_or(MAX_CONFIG_TIMEOUT)
        .min(MAX_CONFIG_TIMEOUT)
}

fn open(
    registry: &DriverRegistry,
    url: &str,
    options: &BTreeMap<String, String>,
) -> Result<Transport> {
    let url = TransportUrl::parse(url)?;
    let options: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Transport::open_with(registry, &url, &options)
}

impl MessagingConfig {
    /// Open the transport with the process-wide registry; options from `options`,
    /// overridden by the URL's query.
    pub fn open_transport(&self) -> Result<Transport> {
        self.open_transport_with(DriverRegistry::global())
    }

    /// Open the transport with a given registry.
    pub fn open_transport_with(&self, registry: &DriverRegistry) -> Result<Transport> {
        open(registry, &self.transport_url, &self.options)
    }

    /// Open the notifications' transport with the process-wide registry:
    /// `[notifications] transport_url` with `[notifications.options]` when set,
    /// otherwise the main transport's URL and options (as oslo falls back to
    /// `[DEFAULT] transport_url`).
    pub fn open_notification_transport(&self) -> Result<Transport> {
        self.open_notification_transport_with(DriverRegistry::global())
    }

    /// [`MessagingConfig::open_notification_transport`] with a given registry.
    pub fn open_notification_transport_with(&self, registry: &DriverRegistry) -> Result<Transport> {
        match &self.notifications.transport_url {
            Some(url) => open(registry, url, &self.notifications.options),
            None => self.open_transport_with(registry),
        }
    }

    /// An RPC client on `transport` for `target`, with `rpc_response_timeout` as its
    /// call timeout (60 s when unset).
    pub fn rpc_client(
        &self,
        transport: &Transport,
        target: crate::Target,
    ) -> crate::rpc::RpcClient {
        let client = crate::rpc::RpcClient::new(transport, target);
        match self.rpc_response_timeout {
            Some(secs) if secs.is_finite() && secs > 0.0 => client.with_timeout(seconds(secs)),
            _ => client,
        }
    }

    /// A notifier builder configured from `[notifications]` (add the publisher id).
    pub fn notifier_builder(&self, transport: &Transport) -> Result<NotifierBuilder> {
        let n = &self.notifications;
        let mut builder = crate::Notifier::builder()
            .topics(n.topics.clone())
            .retry(Retry::from_oslo(n.retry));
        for name in &n.driver {
            if name == "routing" {
                let path = n.routing_config.as_ref().ok_or_else(|| {
                    crate::Error::invalid_option(
                        "routing_config",
                        "the routing driver needs routing_config",
                    )
                })?;
                builder = builder.sink(std::sync::Arc::new(RoutingSink::from_file(
                    path,
                    Some(transport),
                )?));
            } else {
                builder = builder.sinks_by_name([name], Some(transport))?;
            }
        }
        if let Some(keys) = &n.secret_keys {
            builder = builder.sanitizer(ContextSanitizer::new(keys));
        }
        Ok(builder)
    }

    /// A listener builder on `transport` for every topic of `[notifications]`, with
    /// `[listener]` applied (add the endpoints).
    pub fn listener_builder(&self, transport: &Transport) -> NotificationListenerBuilder {
        let mut builder = crate::NotificationListener::builder(transport);
        for topic in &self.notifications.topics {
            builder = builder.target(crate::Target::new(topic.clone()));
        }
        self.apply_listener(builder)
    }

    /// Apply `[listener]` to a listener builder (add targets and endpoints).
    pub fn apply_listener(
        &self,
        mut builder: NotificationListenerBuilder,
    ) -> NotificationListenerBuilder {
        let l = &self.listener;
        if let Some(pool) = &l.pool {
            builder = builder.pool(pool.clone());
        }
        builder = builder
            .allow_requeue(l.allow_requeue)
            .max_concurrency(l.max_concurrency);
        if let Some(size) = l.batch_size {
            builder = builder.batch(size, seconds(l.batch_timeout.unwrap_or(1.0)));
        }
        if let Some(t) = l.stop_timeout {
            builder = builder.stop_timeout(seconds(t));
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No driver registered: opening names the scheme it looked for.
    fn registry() -> DriverRegistry {
        DriverRegistry::new()
    }

    #[test]
    fn notifications_fall_back_to_the_main_transport_url_as_in_oslo() {
        let c: MessagingConfig = toml::from_str(
            r#"
transport_url = "nosuch://rpc-host"
"#,
        )
        .unwrap();
        let e = c.open_notification_transport_with(&registry()).unwrap_err();
        assert!(e.to_string().contains("\"nosuch\""), "{e}");
    }

    #[test]
    fn notifications_have_their_own_url_and_options_when_set() {
        let c: MessagingConfig = toml::from_str(
            r#"
transport_url = "nosuch://rpc-host"
rpc_response_timeout = 7.5
[notifications]
transport_url = "other://kafka-host"
[notifications.options]
consumer_group = "g"
"#,
        )
        .unwrap();
        assert_eq!(
            c.notifications.transport_url.as_deref(),
            Some("other://kafka-host")
        );
        assert_eq!(c.notifications.options["consumer_group"], "g");
        let e = c.open_notification_transport_with(&registry()).unwrap_err();
        assert!(e.to_string().contains("\"other\""), "{e}");
        assert_eq!(c.rpc_response_timeout, Some(7.5));
    }

    /// Regression: a timeout of 1e300 or `inf` seconds (TOML has `inf`) panicked in
    /// `Duration::from_secs_f64` when the configuration was applied.
    #[test]
    fn huge_and_infinite_timeouts_are_capped_not_a_panic() {
        assert_eq!(seconds(1e300), MAX_CONFIG_TIMEOUT);
        assert_eq!(seconds(f64::INFINITY), MAX_CONFIG_TIMEOUT);
        assert_eq!(seconds(f64::NAN), std::time::Duration::ZERO);
        assert_eq!(seconds(-1.0), std::time::Duration::ZERO);
        assert_eq!(seconds(1.5), std::time::Duration::from_millis(1500));
        let c: MessagingConfig = toml::from_str(
            "transport_url = \"memory://\"\nrpc_response_timeout = 1e300\n\
             [listener]\nbatch_size = 10\nbatch_timeout = inf\nstop_timeout = 1e300\n",
        )
        .unwrap();
        assert_eq!(c.listener.batch_timeout, Some(f64::INFINITY));
        assert!(std::time::Instant::now()
            .checked_add(seconds(c.rpc_response_timeout.unwrap()))
            .is_some());
    }
}
