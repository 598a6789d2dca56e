//! Connections: the hosts of a URL tried in turn, and the declarations every
//! connection makes (oslo's topology).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{FieldTable, LongString};
use lapin::uri::AMQPScheme;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use messaging_core::observability::{ConnectionState, ConnectionTracker, ErrorReport};
use messaging_core::{Error, ErrorKind, Result};

use crate::options::RabbitConfig;

/// A lapin error as the core's: a transport error, retryable unless the broker
/// refused the operation itself (a protocol error such as `PRECONDITION_FAILED` for
/// a declaration that does not match the existing one, or `ACCESS_REFUSED`), which
/// trying again cannot change.
pub(crate) fn transport_error(what: &str, e: lapin::Error) -> Error {
    let refused = matches!(e.kind(), lapin::ErrorKind::ProtocolError(_));
    Error::new(ErrorKind::Transport, format!("RabbitMQ: {what}: {e}"))
        .with_source(e)
        .with_retryable(!refused)
}

/// Whether connecting failed because the broker refused the credentials: a
/// connection closed with `ACCESS_REFUSED` (403) during the handshake (lapin asks for
/// that close with the `authentication_failure_close` capability).
fn refused_credentials(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 403)
}

/// Why a TLS connection may have failed, when lapin can only say that the socket
/// broke: a broker that requires client certificates checks them after TLS 1.3's
/// handshake has finished on the client's side, so a client without one often sees
/// its first write fail (broken pipe, reset) instead of the broker's alert.
fn tls_hint(tls_on: bool, has_identity: bool, e: &lapin::Error) -> Option<&'static str> {
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return None;
    };
    let closed = matches!(
        io.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::UnexpectedEof
    );
    match (tls_on && closed, has_identity) {
        (false, _) => None,
        (true, false) => Some(
            "the broker closed the TLS connection: if it requires a client certificate, \
             set ssl_cert_file and ssl_key_file",
        ),
        (true, true) => Some(
            "the broker closed the TLS connection: check that it trusts the CA of the \
             client certificate in ssl_cert_file",
        ),
    }
}

/// Opens connections to the URL's hosts, starting with the one that last worked.
#[derive(Debug)]
pub(crate) struct Connector {
    pub(crate) config: Arc<RabbitConfig>,
    next: AtomicUsize,
    tls: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Whether the last connection attempt (of any client of the driver) worked,
    /// and whether a consumer lost its connection since: the driver's health.
    pub(crate) health: ConnectionTracker,
}

impl Connector {
    pub(crate) fn new(config: Arc<RabbitConfig>) -> Result<Self> {
        let read = |option: &str, path: &str| {
            std::fs::read(path).map_err(|e| {
                Error::invalid_option(option, format!("cannot read {option} {path}: {e}"))
            })
        };
        let tls = match &config.ca_file {
            None => None,
            Some(path) => Some(String::from_utf8_lossy(&read("ssl_ca_file", path)?).into_owned()),
        };
        let identity = match &config.client_cert {
            None => None,
            Some((cert, key)) => Some((read("ssl_cert_file", cert)?, read("ssl_key_file", key)?)),
        };
        Ok(Connector {
            config,
            next: AtomicUsize::new(0),
            tls,
            identity,
            health: ConnectionTracker::new(ConnectionState::Unknown),
        })
    }

    /// The PEM of the CAs read from `ssl_ca_file`, if any.
    pub(crate) fn ca_pem(&self) -> Option<String> {
        self.tls.clone()
    }

    /// One connection, for `purpose` (it names the connection on the broker): each
    /// host is tried once, in turn; the error of the last one when none answers, or
    /// [`ErrorKind::Authentication`] (not retryable) when one refused the credentials.
    pub(crate) async fn connect(&self, purpose: &str) -> Result<Connection> {
        let uris = &self.config.uris;
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        let mut refused = None;
        for i in 0..uris.len() {
            let at = (start + i) % uris.len();
            let uri = uris[at].clone();
            let where_ = RabbitConfig::describe(&uri);
            let tls_on = uri.scheme == AMQPScheme::AMQPS;
            let props = ConnectionProperties::default()
                .with_connection_name(LongString::from(connection_name(purpose)));
            let tls = OwnedTLSConfig {
                identity: self
                    .identity
                    .as_ref()
                    .map(|(pem, key)| OwnedIdentity::PKCS8 {
                        pem: pem.clone(),
                        key: key.clone(),
                    }),
                cert_chain: self.tls.clone(),
            };
            let runtime = lapin::runtime::default_runtime()
                .map_err(|e| transport_error("no async runtime", e))?;
            match Connection::connect_uri_with_config(uri, props, tls, runtime).await {
                Ok(c) => {
                    self.next.store(at, Ordering::Relaxed);
                    tracing::debug!(broker = %where_, purpose, "connected to RabbitMQ");
                    self.health.connected();
                    return Ok(c);
                }
                Err(e) if refused_credentials(&e) => {
                    tracing::error!(broker = %where_, error = %e, "RabbitMQ refused the credentials");
                    refused = Some(
                        Error::authentication(format!(
                            "RabbitMQ at {where_} refused the credentials (check the user name and password)"
                        ))
                        .with_source(e),
                    );
                }
                Err(e) => {
                    tracing::warn!(broker = %where_, error = %e, "cannot connect to RabbitMQ");
                    let what = match tls_hint(tls_on, self.identity.is_some(), &e) {
                        Some(hint) => format!("cannot connect to {where_} ({hint})"),
                        None => format!("cannot connect to {where_}"),
                    };
                    last = Some(transport_error(&what, e));
                }
            }
        }
        // A refusal says more than another host's silence: the credentials are wrong.
        let e = refused
            .or(last)
            .unwrap_or_else(|| Error::new(ErrorKind::Transport, "RabbitMQ: no host"));
        self.health.disconnected(ErrorReport::of(&e));
        Err(e)
    }

    /// A connection and one channel on it.
    pub(crate) async fn channel(&self, purpose: &str) -> Result<(Connection, Channel)> {
        let connection = self.connect(purpose).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| transport_error("cannot open a channel", e))?;
        Ok((connection, channel))
    }
}

/// oslo's connection name: `<program>:<pid>:<uuid4>`, plus what it is for.
fn connection_name(purpose: &str) -> String {
    let program = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "messaging".to_owned());
    format!(
        "{program}:{}:{}:{purpose}",
        std::process::id(),
        uuid::Uuid::new_v4()
    )
}

/// The declarations of oslo's topology on one channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topology<'a> {
    pub(crate) config: &'a RabbitConfig,
    pub(crate) channel: &'a Channel,
}

impl Topology<'_> {
    /// The topic exchange `name` (the control exchange or a target's).
    pub(crate) async fn topic_exchange(&self, name: &str) -> Result<()> {
        let q = &self.config.queues;
        self.channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| transport_error(&format!("cannot declare exchange {name}"), e))
    }

    /// The fanout exchange `name` (`<topic>_fanout`).
    pub(crate) async fn fanout_exchange(&self, name: &str) -> Result<()> {
        self.channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: self.config.queues.transient_quorum,
                    auto_delete: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| transport_error(&format!("cannot declare exchange {name}"), e))
    }

    /// A topic, server or notification queue, bound to `exchange` with each key.
    pub(crate) async fn lasting_queue(
        &self,
        queue: &str,
        exchange: &str,
        keys: &[&str],
    ) -> Result<()> {
        let q = &self.config.queues;
        let options = QueueDeclareOptions {
            durable: q.lasting_durable(),
            auto_delete: q.auto_delete,
            ..QueueDeclareOptions::default()
        };
        self.declare(queue, options, q.lasting_arguments()).await?;
        for key in keys {
            self.bind(queue, exchange, key).await?;
        }
        Ok(())
    }

    /// A reply or fanout queue: it expires when unused (`rabbit_transient_queues_ttl`).
    pub(crate) async fn transient_queue(&self, queue: &str) -> Result<()> {
        let q = &self.config.queues;
        let options = QueueDeclareOptions {
            durable: q.transient_quorum,
            ..QueueDeclareOptions::default()
        };
        self.declare(queue, options, q.transient_arguments()).await
    }

    async fn declare(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
        arguments: FieldTable,
    ) -> Result<()> {
        self.channel
            .queue_declare(queue.into(), options, arguments)
            .await
            .map(|_| ())
            .map_err(|e| transport_error(&format!("cannot declare queue {queue}"), e))
    }

    pub(crate) async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                transport_error(&format!("cannot bind queue {queue} to {exchange}/{key}"), e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::tls_hint;
    use std::io;

    fn io_error(kind: io::ErrorKind) -> lapin::Error {
        io::Error::new(kind, "socket").into()
    }

    #[test]
    fn a_broken_tls_connection_without_a_client_certificate_names_the_options() {
        let hint = tls_hint(true, false, &io_error(io::ErrorKind::BrokenPipe)).unwrap();
        assert!(
            hint.contains("ssl_cert_file") && hint.contains("ssl_key_file"),
            "{hint}"
        );
        let hint = tls_hint(true, true, &io_error(io::ErrorKind::ConnectionReset)).unwrap();
        assert!(hint.contains("client certificate"), "{hint}");
    }

    #[test]
    fn other_failures_get_no_tls_hint() {
        assert_eq!(
            tls_hint(false, false, &io_error(io::ErrorKind::BrokenPipe)),
            None
        );
        assert_eq!(
            tls_hint(true, false, &io_error(io::ErrorKind::ConnectionRefused)),
            None
        );
        assert_eq!(
            tls_hint(
                true,
                false,
                &lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()
            ),
            None
        );
    }
}
