//! Telemetry helpers compatible with OpenStack Ceilometer.
//!
//! Ceilometer publishers sign every metering sample and event with an
//! HMAC-SHA256 over a flattened rendering of the message, keyed by a shared
//! secret (`[publisher] telemetry_secret`). Consumers recompute the signature
//! and drop messages whose `message_signature` does not match.
//!
//! The [`signing`] module reproduces that algorithm byte for byte, including
//! the Python `str()` / `repr()` text that Ceilometer feeds into the MAC, so
//! that messages signed here verify in Ceilometer and vice versa.
//!
//! ```
//! use messaging_telemetry::signing::{sign, verify_signature};
//! use serde_json::json;
//!
//! let mut sample = json!({
//!     "counter_name": "cpu",
//!     "counter_volume": 1.5,
//!     "resource_metadata": {"host": "compute-1"},
//! })
//! .as_object()
//! .cloned()
//! .unwrap();
//! sign(&mut sample, "s3cr3t");
//! assert!(verify_signature(&sample, "s3cr3t"));
//! assert!(!verify_signature(&sample, "other"));
//! ```

pub mod signing;
