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
            | PurgeInflight
    )
}

/// The broker (or librdkafka) finally rejected a record that was accepted earlier.
///
/// Retryable unless resending cannot help: a timed-out record (broker unreachable,
/// topic missing, leader unavailable...) is retryable; a record too large, not
/// authorized, or purged because the driver closed is not.
pub(crate) fn delivery_failed(topic: &str, error: KafkaError) -> Error {
    let retryable = error.rdkafka_error_code().is_some_and(|c| !permanent(c));
    Error::new(
        ErrorKind::DeliveryFailed,
        format!("the record for {topic} was not delivered"),
    )
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
    fn retryable_delivery_failures() {
        let timed_out = delivery_failed(
            "t",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        );
        assert_eq!(timed_out.kind(), &ErrorKind::DeliveryFailed);
        assert!(timed_out.is_retryable());
        assert!(timed_out.source_as::<KafkaError>().is_some());
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::PurgeQueue,
        ] {
            let e = delivery_failed("t", KafkaError::MessageProduction(code));
            assert!(!e.is_retryable(), "{code:?}");
        }
        let e = delivery_failed("t", KafkaError::Canceled);
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
