//! librdkafka's logs and client errors, through `tracing`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messaging_core::Error;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use tokio::sync::watch;

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

/// Whether `error` says the broker refused the client's credentials: librdkafka's
/// `_AUTHENTICATION` (a SASL handshake that failed, e.g. SCRAM's invalid proof) or the
/// broker's `SASL_AUTHENTICATION_FAILED`.
pub(crate) fn is_authentication(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    )
}

/// The typed error of refused credentials; `reason` is librdkafka's text (it names
/// the broker and the mechanism's complaint, never the password).
pub(crate) fn authentication_error(reason: &str) -> Error {
    Error::authentication(format!(
        "the Kafka broker refused the credentials (check the user name, password and \
         sasl_mechanism): {reason}"
    ))
}

/// Tells whoever waits on a client (its deliveries, an admin request, the client's
/// owner) that the broker refused the client's credentials. librdkafka itself only
/// reports it to the error callback and then reconnects and fails again, forever:
/// without this a send would wait for `delivery_timeout` and an admin request for its
/// timeout. Dropped with the client's context, which ends every wait.
#[derive(Debug)]
pub(crate) struct AuthWatch {
    refused: watch::Sender<Option<String>>,
}

impl Default for AuthWatch {
    fn default() -> Self {
        AuthWatch {
            refused: watch::channel(None).0,
        }
    }
}

impl AuthWatch {
    /// Record a refusal; true the first time.
    pub(crate) fn report(&self, reason: &str) -> bool {
        self.refused.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason.to_owned());
            true
        })
    }

    /// The refusal, if the broker refused the credentials.
    pub(crate) fn refused(&self) -> Option<Error> {
        self.refused.borrow().as_deref().map(authentication_error)
    }

    /// A handle that can wait for a refusal without keeping the client alive.
    pub(crate) fn subscribe(&self) -> AuthWait {
        AuthWait(self.refused.subscribe())
    }
}

/// Waits for the refusal of an [`AuthWatch`].
#[derive(Debug, Clone)]
pub(crate) struct AuthWait(watch::Receiver<Option<String>>);

impl AuthWait {
    /// The refusal once it happens (at once if it already did); `None` when the client
    /// went away without one.
    pub(crate) async fn refused(&mut self) -> Option<Error> {
        match self.0.wait_for(Option::is_some).await {
            Ok(reason) => reason.as_deref().map(authentication_error),
            Err(_) => None,
        }
    }

    /// Whether this waits on `watch`.
    pub(crate) fn watches(&self, watch: &AuthWatch) -> bool {
        self.0.same_channel(&watch.refused.subscribe())
    }
}

/// A client-level error: librdkafka keeps retrying on its own (brokers down,
/// connection refused...), so these are logged (rate-limited by `repeats`) and
/// nothing else. Refused credentials are also reported to `auth`, whose waiters stop
/// the client.
///
/// A failed broker connection is also a librdkafka log line (facility `FAIL`) with the
/// same text, so it is logged here at debug level only. "All brokers down" has no log
/// line and stays a warning.
pub(crate) fn client_error(
    client: &str,
    error: &KafkaError,
    reason: &str,
    repeats: &RepeatFilter,
    auth: &AuthWatch,
) {
    if is_authentication(error) {
        if auth.report(reason) {
            tracing::error!(target: "librdkafka", client, error = %error, "the broker refused the credentials: {reason}");
        }
        return;
    }
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
    pub(crate) auth: Arc<AuthWatch>,
    /// Where the producer's statistics and errors go (metrics, health).
    stats: Option<Arc<crate::stats::ClientStats>>,
}

impl LogContext {
    pub(crate) fn new(client: &'static str) -> Self {
        Self::with_auth(client, Arc::default())
    }

    /// A context reporting refused credentials to `auth` (which its owner keeps, as
    /// librdkafka hides the context of some clients).
    pub(crate) fn with_auth(client: &'static str, auth: Arc<AuthWatch>) -> Self {
        LogContext {
            client,
            repeats: RepeatFilter::default(),
            auth,
            stats: None,
        }
    }

    /// This context, reporting statistics and errors to `stats`.
    pub(crate) fn with_stats(mut self, stats: Arc<crate::stats::ClientStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_unless_refused(self.client, &self.auth, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(self.client, &error, reason, &self.repeats, &self.auth);
        if let Some(stats) = &self.stats {
            stats.on_error(&error, reason);
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(stats) = &self.stats {
            stats.on_stats(&statistics);
        }
    }
}

/// [`log`], except that once the broker refused the credentials, librdkafka's
/// repetitions of that refusal (it reconnects until the client is stopped) go to
/// debug level: the refusal was logged once, as an error.
pub(crate) fn log_unless_refused(
    client: &str,
    auth: &AuthWatch,
    level: RDKafkaLogLevel,
    facility: &str,
    message: &str,
) {
    let repeated_refusal = (level as i32) <= (RDKafkaLogLevel::Warning as i32)
        && message.contains("uthentication")
        && auth.refused.borrow().is_some();
    if repeated_refusal {
        tracing::debug!(target: "librdkafka", client, facility, "{message}");
    } else {
        log(client, level, facility, message);
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

    #[tokio::test]
    async fn a_refusal_is_reported_once_and_wakes_every_waiter() {
        let watch = AuthWatch::default();
        assert!(watch.refused().is_none());
        let mut early = watch.subscribe();
        assert!(early.watches(&watch));
        assert!(!early.watches(&AuthWatch::default()));
        let waiter = tokio::spawn(async move { early.refused().await });
        assert!(watch.report("sasl_plaintext://h:1/bootstrap: SASL authentication error"));
        assert!(!watch.report("again"), "only the first refusal counts");
        let e = waiter.await.unwrap().expect("the waiter sees the refusal");
        assert_eq!(e.kind(), &messaging_core::ErrorKind::Authentication);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("SASL authentication error"), "{e}");
        // A late waiter sees it at once; a waiter of a client gone sees none.
        assert!(watch.subscribe().refused().await.is_some());
        let mut orphan = AuthWatch::default().subscribe();
        assert!(orphan.refused().await.is_none());
        assert!(is_authentication(&KafkaError::Global(
            RDKafkaErrorCode::Authentication
        )));
        assert!(!is_authentication(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
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
