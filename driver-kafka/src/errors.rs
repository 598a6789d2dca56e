//! librdkafka errors as the framework's portable errors.

use messaging_core::{Error, ErrorKind};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Delivery failures that sending the same record again cannot fix.
fn permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        MessageSizeTooLarge
            | InvalidMessageSize
            | InvalidMessage
            | InvalidRecord
            | InvalidRequiredAcks
            | InvalidTopic
            | MessageBatchTooLarge
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | SaslAuthenticationFailed
            | Authentication
            | UnsupportedVersion
            | UnsupportedForMessageFormat
            | InvalidArgument
            | BadCompression
            | UnsupportedCompressionType
            | PurgeQueue
    )
}

/// Delivery failures after which the record may be persisted: it was (or may have
/// been) transmitted and no acknowledgement says either way.
///
/// librdkafka knows whether a timed-out record was ever transmitted
/// (`rd_kafka_message_status`), but rust-rdkafka does not expose it (and this
/// workspace forbids `unsafe`), so every timeout counts as possibly persisted.
fn possibly_persisted(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        MessageTimedOut
            | RequestTimedOut
            | OperationTimedOut
            | NetworkException
            | BrokerTransportFailure
            | PurgeInflight
            | NotEnoughReplicasAfterAppend
            | Fatal
    )
}

/// The error of a delivery whose outcome may be persisted, or unknown.
pub(crate) fn outcome_unknown(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::OutcomeUnknown, what)
}

/// The broker (or librdkafka) finally rejected a record that was accepted earlier.
///
/// * [`ErrorKind::OutcomeUnknown`] when the record may be persisted anyway (a
///   timeout, a connection lost while it was in flight, a purge of in-flight
///   records, a fatal idempotence error): the core never sends it again.
/// * Otherwise [`ErrorKind::DeliveryFailed`], the record known not to be persisted:
///   retryable (a broker error such as not enough replicas, leader unavailable)
///   unless resending cannot help (too large, not authorized, purged from the local
///   queue because the driver closed).
pub(crate) fn delivery_failed(error: KafkaError) -> Error {
    let code = error.rdkafka_error_code();
    if code.is_some_and(possibly_persisted) {
        return outcome_unknown(
            "the broker did not acknowledge the record in time; it may be persisted",
        )
        .with_source(error);
    }
    let retryable = code.is_some_and(|c| !permanent(c));
    Error::new(ErrorKind::DeliveryFailed, "the record was not delivered")
        .with_retryable(retryable)
        .with_source(error)
}

/// librdkafka refused to accept a record for sending.
pub(crate) fn send_refused(topic: &str, error: KafkaError) -> Error {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => Error::new(
            ErrorKind::ResourceExhausted,
            "the producer's local queue is full (queue.buffering.max.messages/kbytes)",
        )
        .with_source(error),
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => Error::new(
            ErrorKind::InvalidArgument,
            format!("the record for {topic} is larger than message.max.bytes"),
        )
        .with_source(error),
        Some(code) if permanent(code) || code == RDKafkaErrorCode::Fatal => Error::new(
            ErrorKind::Transport,
            format!("the producer refused the record for {topic}"),
        )
        .with_retryable(false)
        .with_source(error),
        _ => Error::new(
            ErrorKind::Transport,
            format!("the producer refused the record for {topic}"),
        )
        .with_source(error),
    }
}

/// `error` for each of `n` records refused together (the first one keeps its source).
pub(crate) fn for_each<T>(n: usize, error: Error) -> Vec<Result<T, Error>> {
    let copy =
        |e: &Error| Error::new(e.kind().clone(), e.to_string()).with_retryable(e.is_retryable());
    let mut out: Vec<Result<T, Error>> = (1..n).map(|_| Err(copy(&error))).collect();
    if n > 0 {
        out.insert(0, Err(error));
    }
    out
}

/// Any other client failure (creating a client, the admin API, the consumer).
pub(crate) fn transport(what: impl Into<String>, error: KafkaError) -> Error {
    let invalid_config = matches!(
        error,
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
    );
    let kind = if invalid_config {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Transport
    };
    Error::new(kind, what).with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_failures_are_retryable_failed_or_unknown() {
        let broker_said_no = delivery_failed(KafkaError::MessageProduction(
            RDKafkaErrorCode::NotEnoughReplicas,
        ));
        assert_eq!(broker_said_no.kind(), &ErrorKind::DeliveryFailed);
        assert!(broker_said_no.is_retryable());
        assert!(broker_said_no.source_as::<KafkaError>().is_some());
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::PurgeQueue,
        ] {
            let e = delivery_failed(KafkaError::MessageProduction(code));
            assert_eq!(e.kind(), &ErrorKind::DeliveryFailed, "{code:?}");
            assert!(!e.is_retryable(), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NetworkException,
            RDKafkaErrorCode::PurgeInflight,
            RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
        ] {
            let e = delivery_failed(KafkaError::MessageProduction(code));
            assert_eq!(e.kind(), &ErrorKind::OutcomeUnknown, "{code:?}");
            assert!(!e.is_retryable(), "{code:?}");
            assert!(e.source_as::<KafkaError>().is_some());
        }
        let e = delivery_failed(KafkaError::Canceled);
        assert!(!e.is_retryable());
    }

    #[test]
    fn queue_full_is_backpressure() {
        let e = send_refused(
            "t",
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
        );
        assert_eq!(e.kind(), &ErrorKind::ResourceExhausted);
        let e = send_refused(
            "t",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        );
        assert_eq!(e.kind(), &ErrorKind::InvalidArgument);
        assert!(!e.is_retryable());
        let e = send_refused("t", KafkaError::MessageProduction(RDKafkaErrorCode::Fatal));
        assert!(!e.is_retryable());
    }
}
