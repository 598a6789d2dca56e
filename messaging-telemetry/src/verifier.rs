//! [`SignatureVerifier`]: a listener-side handler wrapper that lets through only
//! notifications whose Ceilometer signatures are valid.
//!
//! The core knows nothing of telemetry, so verification is a wrapper around your
//! handler rather than a listener option:
//!
//! ```
//! # fn demo(transport: &messaging_core::Transport) -> messaging_core::Result<()> {
//! use messaging_core::{HandlerOutcome, NotificationEndpoint, NotificationListener, Priority, Target};
//! use messaging_telemetry::SignatureVerifier;
//!
//! let verifier = SignatureVerifier::from_fn("s3cr3t", |n| async move {
//!     let samples = n.payload_as::<Vec<serde_json::Value>>().map_or(0, |s| s.len());
//!     println!("{samples} verified samples");
//!     Ok(HandlerOutcome::Handled)
//! });
//! let stats = verifier.stats(); // read the counters later
//! let listener = NotificationListener::builder(transport)
//!     .target(Target::new("metering"))
//!     .endpoint(NotificationEndpoint::new(verifier).priorities([Priority::Sample]))
//!     .build()?;
//! # let _ = (listener, stats); Ok(()) }
//! ```
//!
//! What is checked: a payload that is a list (a batch of samples, as the telemetry
//! publisher sends) must hold only JSON objects, each with a valid
//! `message_signature`; a payload that is an object must itself carry a valid one.
//! Any other payload has no signature and is rejected. An empty list passes (there
//! is nothing to forge). A rejected notification is logged, counted and
//! acknowledged without calling the wrapped handler; the rest reach it unchanged.
//! A batch handler gets the batch without the rejected notifications (and is not
//! called when none is left).
//!
//! With an empty secret signing is disabled and everything passes, as in
//! Ceilometer. Signatures are checked on the payload as the listener decoded it;
//! see [`crate::signing`] for the rare numbers (integers beyond 64 bits, `-0`)
//! where that differs from Python.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use messaging_core::listener::FnHandler;
use messaging_core::url::Secret;
use messaging_core::{
    BatchNotificationHandler, HandlerOutcome, HandlerResult, Notification, NotificationHandler,
};
use serde_json::Value;

use crate::signing::{verify_signature, SIGNATURE_KEY};

/// Why a payload failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The payload is neither an object nor a list of objects.
    NotSigned,
    /// A message has no `message_signature`, or an empty one (`index` in the list;
    /// `None` for an object payload).
    Missing {
        /// Position in the list payload, if the payload is a list.
        index: Option<usize>,
    },
    /// A message's signature does not match.
    Invalid {
        /// Position in the list payload, if the payload is a list.
        index: Option<usize>,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |index: &Option<usize>| match index {
            Some(i) => format!("sample {i}"),
            None => "the payload".to_owned(),
        };
        match self {
            Rejection::NotSigned => {
                f.write_str("the payload is not a signed object or list of them")
            }
            Rejection::Missing { index } => write!(f, "{} has no {SIGNATURE_KEY}", at(index)),
            Rejection::Invalid { index } => {
                write!(f, "{} has an invalid {SIGNATURE_KEY}", at(index))
            }
        }
    }
}

/// Check the signatures in a notification payload (see the module docs).
pub fn verify_payload(payload: &Value, secret: &str) -> Result<(), Rejection> {
    if secret.is_empty() {
        return Ok(());
    }
    let check = |v: &Value, index: Option<usize>| match v {
        Value::Object(m) => {
            let unsigned = match m.get(SIGNATURE_KEY) {
                None => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if unsigned {
                Err(Rejection::Missing { index })
            } else if verify_signature(m, secret) {
                Ok(())
            } else {
                Err(Rejection::Invalid { index })
            }
        }
        _ => Err(Rejection::NotSigned),
    };
    match payload {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check(v, Some(i))),
        Value::Object(_) => check(payload, None),
        _ => Err(Rejection::NotSigned),
    }
}

/// A snapshot of a verifier's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifierCounters {
    /// Notifications passed to the wrapped handler.
    pub passed: u64,
    /// Notifications rejected because a signature was missing (or the payload unsigned).
    pub rejected_missing: u64,
    /// Notifications rejected because a signature did not match.
    pub rejected_invalid: u64,
}

impl VerifierCounters {
    /// Every rejected notification.
    pub fn rejected(&self) -> u64 {
        self.rejected_missing + self.rejected_invalid
    }
}

/// A handle on a verifier's counters that stays usable after the verifier was
/// moved into an endpoint.
#[derive(Debug, Clone, Default)]
pub struct VerifierStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    passed: AtomicU64,
    rejected_missing: AtomicU64,
    rejected_invalid: AtomicU64,
}

impl VerifierStats {
    /// The counters now.
    pub fn snapshot(&self) -> VerifierCounters {
        VerifierCounters {
            passed: self.inner.passed.load(Ordering::Relaxed),
            rejected_missing: self.inner.rejected_missing.load(Ordering::Relaxed),
            rejected_invalid: self.inner.rejected_invalid.load(Ordering::Relaxed),
        }
    }
}

/// Wraps a [`NotificationHandler`] (or a [`BatchNotificationHandler`]) and calls it
/// only for notifications whose signatures verify (see the module docs).
pub struct SignatureVerifier<H> {
    inner: H,
    secret: Secret,
    stats: VerifierStats,
}

impl<H> fmt::Debug for SignatureVerifier<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secret", &self.secret)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl<H> SignatureVerifier<H> {
    /// Verify with `secret`, then hand what passes to `inner`.
    pub fn new(secret: impl Into<String>, inner: H) -> Self {
        SignatureVerifier {
            inner,
            secret: Secret::new(secret.into()),
            stats: VerifierStats::default(),
        }
    }

    /// A handle on the counters.
    pub fn stats(&self) -> VerifierStats {
        self.stats.clone()
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Whether `n` passes; counts and logs a rejection.
    fn admit(&self, n: &Notification) -> bool {
        let verdict = n
            .payload
            .to_value()
            .map_err(|_| Rejection::NotSigned)
            .and_then(|payload| verify_payload(&payload, self.secret.expose()));
        match verdict {
            Ok(()) => {
                self.stats.inner.passed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(why) => {
                let counter = match why {
                    Rejection::Invalid { .. } => &self.stats.inner.rejected_invalid,
                    _ => &self.stats.inner.rejected_missing,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    message_id = %n.metadata.message_id,
                    publisher_id = %n.publisher_id,
                    event_type = %n.event_type,
                    reason = %why,
                    "notification rejected: bad signature (acknowledged, not handled)"
                );
                false
            }
        }
    }
}

impl<F> SignatureVerifier<FnHandler<F>> {
    /// Verify, then call an async closure.
    pub fn from_fn<Fut>(secret: impl Into<String>, f: F) -> Self
    where
        F: Fn(Arc<Notification>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        SignatureVerifier::new(secret, FnHandler(f))
    }

    /// Verify each notification of a batch, then call an async closure with the rest.
    pub fn from_batch_fn<Fut>(secret: impl Into<String>, f: F) -> Self
    where
        F: Fn(Vec<Arc<Notification>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        SignatureVerifier::new(secret, FnHandler(f))
    }
}

#[async_trait]
impl<H: NotificationHandler> NotificationHandler for SignatureVerifier<H> {
    async fn handle(&self, notification: Arc<Notification>) -> HandlerResult {
        if self.admit(&notification) {
            self.inner.handle(notification).await
        } else {
            Ok(HandlerOutcome::Handled)
        }
    }
}

#[async_trait]
impl<H: BatchNotificationHandler> BatchNotificationHandler for SignatureVerifier<H> {
    async fn handle_batch(&self, notifications: Vec<Arc<Notification>>) -> HandlerResult {
        let admitted: Vec<Arc<Notification>> = notifications
            .into_iter()
            .filter(|n| self.admit(n))
            .collect();
        if admitted.is_empty() {
            Ok(HandlerOutcome::Handled)
        } else {
            self.inner.handle_batch(admitted).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::sign;
    use serde_json::json;

    fn signed(v: Value, secret: &str) -> Value {
        let mut m = v.as_object().unwrap().clone();
        sign(&mut m, secret);
        Value::Object(m)
    }

    #[test]
    fn payload_shapes() {
        let a = signed(json!({"counter_name": "cpu", "counter_volume": 1}), "k");
        let b = signed(json!({"counter_name": "mem", "counter_volume": 2.5}), "k");
        assert_eq!(verify_payload(&json!([a, b]), "k"), Ok(()));
        assert_eq!(verify_payload(&a, "k"), Ok(()));
        assert_eq!(verify_payload(&json!([]), "k"), Ok(()));
        assert_eq!(
            verify_payload(&json!([a, b]), "other"),
            Err(Rejection::Invalid { index: Some(0) })
        );
        let mut tampered = b.clone();
        tampered["counter_volume"] = json!(3);
        assert_eq!(
            verify_payload(&json!([a, tampered]), "k"),
            Err(Rejection::Invalid { index: Some(1) })
        );
        assert_eq!(
            verify_payload(&json!([a, {"counter_name": "x"}]), "k"),
            Err(Rejection::Missing { index: Some(1) })
        );
        assert_eq!(
            verify_payload(&json!({"x": 1}), "k"),
            Err(Rejection::Missing { index: None })
        );
        assert_eq!(
            verify_payload(&json!({"x": 1, "message_signature": ""}), "k"),
            Err(Rejection::Missing { index: None })
        );
        assert_eq!(
            verify_payload(&json!([a, 1]), "k"),
            Err(Rejection::NotSigned)
        );
        assert_eq!(
            verify_payload(&json!("text"), "k"),
            Err(Rejection::NotSigned)
        );
        assert_eq!(verify_payload(&json!("text"), ""), Ok(()));
    }
}
