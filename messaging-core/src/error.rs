//! The one error type of the framework.
//!
//! Every fallible call returns [`Error`], which carries a portable [`ErrorKind`]
//! (what went wrong, independent of the driver), a human message, whether a retry
//! may help, and the underlying error (reachable through
//! [`std::error::Error::source`]).

use std::fmt;

/// A boxed error from a lower layer (a driver, serde, I/O...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the framework.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, independent of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A transport URL that does not follow the grammar.
    InvalidUrl,
    /// The URL's scheme names no registered driver.
    UnknownDriver {
        /// The scheme that was asked for (after stripping any `+suffix`).
        scheme: String,
        /// The schemes that are registered.
        known: Vec<String>,
    },
    /// An option (URL query key or config value) that is unknown or has a bad value.
    InvalidOption {
        /// The option's name.
        key: String,
    },
    /// Invalid configuration or argument outside of the URL.
    InvalidArgument,
    /// The driver does not implement this operation.
    Unsupported {
        /// The driver's name, e.g. `kafka`.
        driver: String,
        /// The operation, e.g. `rpc.call`.
        operation: String,
    },
    /// A deadline passed.
    Timeout,
    /// The transport accepted a notification but could not deliver it; it is known
    /// not to be persisted, so sending it again cannot duplicate it.
    DeliveryFailed,
    /// The record may or may not be persisted (e.g. a delivery timeout after it was
    /// transmitted, with no acknowledgement): sending it again could duplicate it, so
    /// the core never does. Never retryable.
    OutcomeUnknown,
    /// A local queue is full (backpressure did not clear in time).
    ResourceExhausted,
    /// A record could not be decoded (not JSON, not an oslo message, bad version).
    Decode,
    /// A value could not be serialized.
    Serialization,
    /// The notifier, listener or transport is closed.
    Closed,
    /// The broker or connection failed.
    Transport,
    /// The broker refused the client's credentials (a wrong user name or password, a
    /// SASL mechanism it does not offer for that user). Never retryable: the same
    /// credentials are refused again. A send's receipt reports it for a record known
    /// not to be persisted; a listener whose subscription reports it stops, and its
    /// `wait` returns it.
    Authentication,
    /// A notification handler failed or panicked.
    Handler,
    /// The remote side of an RPC call raised an error.
    Remote {
        /// The remote error's type name.
        type_name: String,
    },
    /// An RPC call named a method no endpoint has.
    NoSuchMethod,
    /// An RPC call asked for a version no endpoint supports.
    UnsupportedVersion,
    /// A bug or an unexpected state.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::InvalidUrl => "invalid transport URL",
            ErrorKind::UnknownDriver { .. } => "unknown driver",
            ErrorKind::InvalidOption { .. } => "invalid option",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Unsupported { .. } => "unsupported operation",
            ErrorKind::Timeout => "timed out",
            ErrorKind::DeliveryFailed => "delivery failed",
            ErrorKind::OutcomeUnknown => "delivery outcome unknown",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::Decode => "decode failure",
            ErrorKind::Serialization => "serialization failure",
            ErrorKind::Closed => "closed",
            ErrorKind::Transport => "transport failure",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Handler => "handler failure",
            ErrorKind::Remote { .. } => "remote error",
            ErrorKind::NoSuchMethod => "no such method",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(text)
    }
}

/// The framework's error: a portable kind, a message, and the underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Timeout
                | ErrorKind::ResourceExhausted
                | ErrorKind::Transport
                | ErrorKind::DeliveryFailed
        );
        Error {
            kind,
            message: message.into(),
            retryable,
            source: None,
        }
    }

    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Override whether retrying may help (the default depends on the kind).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The error's portable kind.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the operation may succeed (a transient failure).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The underlying error, if any, downcast to a concrete type.
    pub fn source_as<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.source.as_deref().and_then(|e| e.downcast_ref::<E>())
    }

    /// An [`ErrorKind::Unsupported`] error naming the driver and the operation.
    pub fn unsupported(driver: &str, operation: &str) -> Self {
        Error::new(
            ErrorKind::Unsupported {
                driver: driver.to_owned(),
                operation: operation.to_owned(),
            },
            format!("the {driver} driver does not support {operation}"),
        )
    }

    /// An [`ErrorKind::InvalidOption`] error naming the key.
    pub fn invalid_option(key: &str, message: impl Into<String>) -> Self {
        Error::new(
            ErrorKind::InvalidOption {
                key: key.to_owned(),
            },
            message,
        )
    }

    /// An [`ErrorKind::InvalidUrl`] error.
    pub fn invalid_url(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidUrl, message)
    }

    /// An [`ErrorKind::Closed`] error.
    pub fn closed(what: &str) -> Self {
        Error::new(ErrorKind::Closed, format!("the {what} is closed"))
    }

    /// An [`ErrorKind::Timeout`] error.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// An [`ErrorKind::Decode`] error.
    pub fn decode(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Decode, message)
    }

    /// An [`ErrorKind::Authentication`] error (never retryable). The message must not
    /// contain the credentials.
    pub fn authentication(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Authentication, message)
    }

    /// A copy of this error (kind, message, retryability) without its source, which
    /// may not be clonable; the source's text is kept in the message.
    pub fn detached(&self) -> Self {
        let message = match &self.source {
            Some(source) => format!("{}: {source}", self.message),
            None => self.message.clone(),
        };
        Error::new(self.kind.clone(), message).with_retryable(self.retryable)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(ErrorKind::Serialization, "JSON serialization failed").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_names_driver_and_operation() {
        let e = Error::unsupported("kafka", "rpc.call");
        assert_eq!(
            e.kind(),
            &ErrorKind::Unsupported {
                driver: "kafka".into(),
                operation: "rpc.call".into()
            }
        );
        assert!(e.to_string().contains("kafka"));
        assert!(e.to_string().contains("rpc.call"));
        assert!(!e.is_retryable());
    }

    #[test]
    fn authentication_is_never_retryable_and_detaches_with_its_text() {
        let e = Error::authentication("the broker refused the credentials of user bob")
            .with_source(std::io::Error::other("invalid-proof"));
        assert_eq!(e.kind(), &ErrorKind::Authentication);
        assert!(!e.is_retryable());
        assert!(e.to_string().starts_with("authentication failed: "), "{e}");
        let copy = e.detached();
        assert_eq!(copy.kind(), &ErrorKind::Authentication);
        assert!(!copy.is_retryable());
        assert!(copy.to_string().ends_with("invalid-proof"), "{copy}");
    }

    #[test]
    fn source_is_reachable() {
        let io = std::io::Error::other("boom");
        let e = Error::new(ErrorKind::Transport, "send").with_source(io);
        assert!(e.is_retryable());
        assert!(e.source_as::<std::io::Error>().is_some());
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().ends_with("boom"));
    }
}
