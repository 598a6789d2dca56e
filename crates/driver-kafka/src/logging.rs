//! librdkafka's logs and client errors, through `tracing`.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

/// Forward one librdkafka log line to `tracing` (target `librdkafka`).
pub(crate) fn log(client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, facility, "{message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", client, facility, "{message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, facility, "{message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", client, facility, "{message}")
        }
    }
}

/// A client-level error: librdkafka keeps retrying on its own (brokers down,
/// connection refused...), so these are logged and nothing else.
pub(crate) fn client_error(client: &str, error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", client, error = %error, "{reason}");
}

/// The context of the producer and the admin client: logs through `tracing`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogContext {
    pub(crate) client: &'static str,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(self.client, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(self.client, &error, reason);
    }
}
