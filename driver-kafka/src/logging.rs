//! librdkafka's logs and client errors, through `tracing`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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

/// How often a recurring client error is logged again (with a count).
pub(crate) const REPEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Logs a recurring error once, then at most every [`REPEAT_INTERVAL`] with the
/// number of occurrences: librdkafka reports a broker outage many times a second.
#[derive(Debug, Default)]
pub(crate) struct RepeatFilter {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RepeatFilter {
    /// Whether to log this occurrence of `key` now; if so, how many occurrences
    /// (this one included) it stands for.
    pub(crate) fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(key) {
            None => {
                seen.insert(key.to_owned(), (now, 0));
                Some(1)
            }
            Some((last, skipped)) if now.duration_since(*last) >= REPEAT_INTERVAL => {
                let occurrences = *skipped + 1;
                *last = now;
                *skipped = 0;
                Some(occurrences)
            }
            Some((_, skipped)) => {
                *skipped += 1;
                None
            }
        }
    }
}

/// A client-level error: librdkafka keeps retrying on its own (brokers down,
/// connection refused...), so these are logged (rate-limited by `repeats`) and
/// nothing else.
///
/// A failed broker connection is also a librdkafka log line (facility `FAIL`) with the
/// same text, so it is logged here at debug level only. "All brokers down" has no log
/// line and stays a warning.
pub(crate) fn client_error(client: &str, error: &KafkaError, reason: &str, repeats: &RepeatFilter) {
    if repeats_a_log_line(error) {
        tracing::debug!(target: "librdkafka", client, error = %error, "{reason}");
        return;
    }
    if let Some(occurrences) = repeats.admit(&format!("{error}: {reason}"), Instant::now()) {
        tracing::warn!(target: "librdkafka", client, error = %error, occurrences, "{reason}");
    }
}

fn repeats_a_log_line(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure)
    )
}

/// The context of the producer and the admin client: logs through `tracing`.
#[derive(Debug)]
pub(crate) struct LogContext {
    client: &'static str,
    repeats: RepeatFilter,
}

impl LogContext {
    pub(crate) fn new(client: &'static str) -> Self {
        LogContext {
            client,
            repeats: RepeatFilter::default(),
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(self.client, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(self.client, &error, reason, &self.repeats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_error_is_logged_once_per_interval_with_its_count() {
        let f = RepeatFilter::default();
        let t0 = Instant::now();
        assert_eq!(f.admit("down", t0), Some(1));
        for i in 1..=5 {
            assert_eq!(f.admit("down", t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(f.admit("other", t0), Some(1), "keys are independent");
        assert_eq!(f.admit("down", t0 + REPEAT_INTERVAL), Some(6));
        assert_eq!(f.admit("down", t0 + REPEAT_INTERVAL), None);
    }

    #[test]
    fn only_connection_failures_are_left_to_the_log_line() {
        assert!(repeats_a_log_line(&KafkaError::Global(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!repeats_a_log_line(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!repeats_a_log_line(&KafkaError::Global(
            RDKafkaErrorCode::Authentication
        )));
    }
}
