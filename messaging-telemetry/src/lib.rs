//! Telemetry compatible with OpenStack Ceilometer.
//!
//! - [`Sample`]: a metering sample, serializing exactly as Ceilometer's sample dicts.
//! - [`signing`]: Ceilometer's HMAC-SHA256 message signatures, byte for byte.
//! - [`TelemetryPublisher`]: publishes signed samples as `sample` notifications from a
//!   Ceilometer publisher URL (`notifier://broker:9092?driver=kafka&topic=metering`,
//!   `kafka://broker:9092?topic=metering`, `memory://?topic=metering`; see [`url`]),
//!   with Ceilometer's failure policies ([`PublishPolicy`]).
//! - [`SignatureVerifier`]: a listener-side wrapper that hands only correctly signed
//!   notifications to your handler.
//!
//! ```
//! # async fn demo() -> messaging_core::Result<()> {
//! use messaging_telemetry::{CounterType, Sample, TelemetryPublisher};
//! driver_memory::register();
//! let publisher = TelemetryPublisher::builder("memory://doc?topic=metering")
//!     .secret("s3cr3t")
//!     .build()?;
//! let sample = Sample::builder("cpu", CounterType::Cumulative, "ns", 123_456_789u64, "instance-1")
//!     .project_id("p-1")
//!     .build();
//! let report = publisher.publish(&[sample]).await?; // returns once the broker acknowledged
//! assert_eq!(report.sent_samples, 1);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Signing
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

pub mod policy;
pub mod publisher;
pub mod sample;
pub mod signing;
pub mod url;
pub mod verifier;

pub use policy::PublishPolicy;
pub use publisher::{
    PublishReport, PublisherCloseReport, PublisherCounters, TelemetryPublisher,
    TelemetryPublisherBuilder,
};
pub use sample::{CounterType, Sample, SampleBuilder, Volume};
pub use url::PublisherUrl;
pub use verifier::{verify_payload, Rejection, SignatureVerifier, VerifierCounters, VerifierStats};
