//! [`Target`]: where messages go, or what a listener or server listens to
//! (oslo's `Target`, shared by notifications and RPC).

/// Where messages go (a notifier, an RPC client) or what is listened to (a
/// notification listener, an RPC server).
///
/// Notification listeners use `topic` (and keep `exchange` for oslo parity). RPC
/// uses every field: an RPC client's target says where a request goes and which
/// interface version it needs; an RPC server's target names the topic and the
/// server it listens as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The topic, e.g. `notifications` or `compute`.
    pub topic: String,
    /// The exchange, if any (RPC: the default is [`crate::rpc::DEFAULT_EXCHANGE`]).
    pub exchange: Option<String>,
    /// RPC: one named server (a client's directed call or cast; a server's own name).
    pub server: Option<String>,
    /// RPC: a cast to every server listening on the topic.
    pub fanout: bool,
    /// RPC: the endpoint namespace a request is for (`None`: the default namespace).
    pub namespace: Option<String>,
    /// RPC: the interface version a request needs, `major.minor` (`None`: `1.0`).
    pub version: Option<String>,
}

impl Target {
    /// A target for a topic.
    pub fn new(topic: impl Into<String>) -> Self {
        Target {
            topic: topic.into(),
            exchange: None,
            server: None,
            fanout: false,
            namespace: None,
            version: None,
        }
    }

    /// With an exchange.
    pub fn with_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// With a server name (RPC).
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// With fanout on or off (RPC casts).
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }

    /// With an endpoint namespace (RPC).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// With a requested interface version, `major.minor` (RPC).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
}
