//! Metering samples, as Ceilometer writes them.
//!
//! A [`Sample`] serializes to exactly the dictionary Ceilometer's
//! `meter_message_from_counter` builds (Ceilometer 27), in the same key order:
//!
//! ```json
//! {"source": "openstack", "counter_name": "cpu", "counter_type": "cumulative",
//!  "counter_unit": "ns", "counter_volume": 1234, "user_id": "u", "user_name": null,
//!  "project_id": "p", "project_name": null, "resource_id": "r",
//!  "timestamp": "2026-05-01T12:00:00.123456", "resource_metadata": {},
//!  "message_id": "…", "monotonic_time": null, "message_signature": "…"}
//! ```
//!
//! `user_name`, `project_name` and `monotonic_time` are newer Ceilometer keys: they
//! are always written (`null` when unset, as Ceilometer does) and may be absent when
//! reading. `publisher_id` is written only when set (Ceilometer adds it only when it
//! is given one).
//!
//! Verify a received sample on the JSON object it arrived as
//! ([`crate::signing::verify_signature`]), not on a `Sample` parsed from it: the
//! signature covers the exact keys that were sent, and a parsed `Sample` writes the
//! newer keys back even when the sender left them out.

use std::fmt;
use std::str::FromStr;

use messaging_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::signing;

/// The default `source` of a sample (Ceilometer's `Sample.SOURCE_DEFAULT`).
pub const DEFAULT_SOURCE: &str = "openstack";

/// How a meter's volume is to be read (`counter_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CounterType {
    /// A value at a point in time (`gauge`).
    Gauge,
    /// A change since the previous sample (`delta`).
    Delta,
    /// A running total (`cumulative`).
    Cumulative,
}

impl CounterType {
    /// The name on the wire: `gauge`, `delta` or `cumulative`.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterType::Gauge => "gauge",
            CounterType::Delta => "delta",
            CounterType::Cumulative => "cumulative",
        }
    }
}

impl fmt::Display for CounterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CounterType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gauge" => Ok(CounterType::Gauge),
            "delta" => Ok(CounterType::Delta),
            "cumulative" => Ok(CounterType::Cumulative),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown counter type {other:?}; expected gauge, delta or cumulative"),
            )),
        }
    }
}

/// One metering sample, serializing exactly as Ceilometer's sample dictionaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Where the sample comes from (default `openstack`).
    pub source: String,
    /// The meter's name, e.g. `cpu`.
    pub counter_name: String,
    /// `gauge`, `delta` or `cumulative`.
    pub counter_type: CounterType,
    /// The unit, e.g. `ns`, `B`, `instance`.
    pub counter_unit: String,
    /// The value. A JSON number keeps the difference between `1` and `1.0`, which
    /// the signature sees (Python renders them differently).
    pub counter_volume: Number,
    /// The user the resource belongs to, if any.
    pub user_id: Option<String>,
    /// The user's name (newer Ceilometer; `null` when unset).
    #[serde(default)]
    pub user_name: Option<String>,
    /// The project the resource belongs to, if any.
    pub project_id: Option<String>,
    /// The project's name (newer Ceilometer; `null` when unset).
    #[serde(default)]
    pub project_name: Option<String>,
    /// The metered resource.
    pub resource_id: String,
    /// When it was measured (ISO 8601, as Ceilometer writes it).
    pub timestamp: Option<String>,
    /// Free-form metadata about the resource.
    #[serde(default)]
    pub resource_metadata: Map<String, Value>,
    /// The sample's unique id.
    pub message_id: String,
    /// A monotonic clock reading of the measurement (newer Ceilometer; `null` when unset).
    #[serde(default)]
    pub monotonic_time: Option<Number>,
    /// Who published it; written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_id: Option<String>,
    /// The HMAC-SHA256 signature (lowercase hex; empty when unsigned or signed with an
    /// empty secret).
    #[serde(default)]
    pub message_signature: String,
}

impl Sample {
    /// A builder for a sample of `counter_name`; see [`SampleBuilder`] for the defaults.
    pub fn builder(
        counter_name: impl Into<String>,
        counter_type: CounterType,
        counter_unit: impl Into<String>,
        counter_volume: impl Into<Volume>,
        resource_id: impl Into<String>,
    ) -> SampleBuilder {
        SampleBuilder {
            sample: Sample {
                source: DEFAULT_SOURCE.to_owned(),
                counter_name: counter_name.into(),
                counter_type,
                counter_unit: counter_unit.into(),
                counter_volume: counter_volume.into().0,
                user_id: None,
                user_name: None,
                project_id: None,
                project_name: None,
                resource_id: resource_id.into(),
                timestamp: Some(now_iso8601()),
                resource_metadata: Map::new(),
                message_id: uuid::Uuid::new_v4().to_string(),
                monotonic_time: None,
                publisher_id: None,
                message_signature: String::new(),
            },
        }
    }

    /// The sample as the JSON object that goes on the wire.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A Sample is a struct of strings, numbers and maps: always an object.
            _ => unreachable!("a Sample always serializes to a JSON object"),
        }
    }

    /// Read a sample from a JSON object (a Ceilometer sample dictionary).
    pub fn from_map(map: Map<String, Value>) -> Result<Self> {
        serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::new(ErrorKind::Decode, "not a Ceilometer sample").with_source(e))
    }

    /// Set `message_signature` to the Ceilometer signature with `secret`
    /// (an empty secret stores an empty signature, as Ceilometer does).
    pub fn sign(&mut self, secret: &str) {
        self.message_signature = self.signature(secret);
    }

    /// The Ceilometer signature of this sample with `secret`.
    pub fn signature(&self, secret: &str) -> String {
        signing::compute_signature(&self.to_map(), secret)
    }

    /// Whether `message_signature` is valid for `secret` (always true for an empty
    /// secret). See the module docs: prefer verifying the received JSON object.
    pub fn verify(&self, secret: &str) -> bool {
        signing::verify_signature(&self.to_map(), secret)
    }
}

/// A sample's volume: an integer or a finite float, kept apart (`1` is not `1.0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume(pub Number);

impl Volume {
    /// A float volume; `None` for NaN and infinities, which JSON cannot carry.
    pub fn float(value: f64) -> Option<Self> {
        Number::from_f64(value).map(Volume)
    }
}

impl FromStr for Volume {
    type Err = Error;

    /// Parse a JSON number (`12`, `-3`, `1.5`, `2e3`).
    fn from_str(s: &str) -> Result<Self> {
        match serde_json::from_str::<Value>(s.trim()) {
            Ok(Value::Number(n)) => Ok(Volume(n)),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {s:?} is not a JSON number"),
            )),
        }
    }
}

macro_rules! volume_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Volume {
            fn from(v: $t) -> Self {
                Volume(Number::from(v))
            }
        }
    )*};
}
volume_from_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl TryFrom<f64> for Volume {
    type Error = Error;

    /// A float volume; NaN and infinities (which JSON cannot carry) are refused.
    fn try_from(v: f64) -> Result<Self> {
        Volume::float(v).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("volume {v} is not a finite number"),
            )
        })
    }
}

impl From<Number> for Volume {
    fn from(n: Number) -> Self {
        Volume(n)
    }
}

/// Builds a [`Sample`]. Defaults: source `openstack`, no user or project,
/// timestamp = now (UTC, `YYYY-MM-DDTHH:MM:SS.ffffff`, as Ceilometer's pollsters
/// write it), empty metadata, a random UUID v4 as `message_id`, unsigned.
#[derive(Debug, Clone)]
pub struct SampleBuilder {
    sample: Sample,
}

impl SampleBuilder {
    /// The source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.sample.source = source.into();
        self
    }

    /// The user id.
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.sample.user_id = Some(id.into());
        self
    }

    /// The user name.
    pub fn user_name(mut self, name: impl Into<String>) -> Self {
        self.sample.user_name = Some(name.into());
        self
    }

    /// The project id.
    pub fn project_id(mut self, id: impl Into<String>) -> Self {
        self.sample.project_id = Some(id.into());
        self
    }

    /// The project name.
    pub fn project_name(mut self, name: impl Into<String>) -> Self {
        self.sample.project_name = Some(name.into());
        self
    }

    /// The timestamp text (`None`: no timestamp, written as `null`).
    pub fn timestamp(mut self, timestamp: Option<String>) -> Self {
        self.sample.timestamp = timestamp;
        self
    }

    /// The resource metadata.
    pub fn resource_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.sample.resource_metadata = metadata;
        self
    }

    /// The message id (default: a random UUID v4).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.sample.message_id = id.into();
        self
    }

    /// The monotonic time.
    pub fn monotonic_time(mut self, time: impl Into<Volume>) -> Self {
        self.sample.monotonic_time = Some(time.into().0);
        self
    }

    /// The publisher id written into the sample itself.
    pub fn publisher_id(mut self, id: impl Into<String>) -> Self {
        self.sample.publisher_id = Some(id.into());
        self
    }

    /// The sample, unsigned.
    pub fn build(self) -> Sample {
        self.sample
    }

    /// The sample, signed with `secret`.
    pub fn signed(mut self, secret: &str) -> Sample {
        self.sample.sign(secret);
        self.sample
    }
}

/// Now, UTC, as Ceilometer's pollsters write timestamps (`utcnow().isoformat()`).
pub fn now_iso8601() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_like_ceilometer_in_key_order() {
        let s = Sample::builder("cpu", CounterType::Cumulative, "ns", 1234u64, "r-1")
            .user_id("u")
            .project_id("p")
            .timestamp(Some("2026-05-01T12:00:00.123456".into()))
            .message_id("m-1")
            .build();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"source":"openstack","counter_name":"cpu","counter_type":"cumulative","counter_unit":"ns","counter_volume":1234,"user_id":"u","user_name":null,"project_id":"p","project_name":null,"resource_id":"r-1","timestamp":"2026-05-01T12:00:00.123456","resource_metadata":{},"message_id":"m-1","monotonic_time":null,"message_signature":""}"#
        );
    }

    #[test]
    fn int_and_float_volumes_stay_apart() {
        let a = Sample::builder("x", CounterType::Gauge, "B", 1u32, "r")
            .message_id("m")
            .timestamp(None)
            .build();
        let mut b = a.clone();
        b.counter_volume = Volume::try_from(1.0).unwrap().0;
        assert_eq!(a.to_map()["counter_volume"], json!(1));
        assert_eq!(b.to_map()["counter_volume"], json!(1.0));
        assert_ne!(a.signature("k"), b.signature("k"));
        assert_eq!(
            "2.5".parse::<Volume>().unwrap(),
            Volume::try_from(2.5).unwrap()
        );
        assert!(Volume::try_from(f64::INFINITY).is_err());
        assert!("abc".parse::<Volume>().is_err());
        assert!(Volume::float(f64::NAN).is_none());
    }

    #[test]
    fn sign_verify_and_round_trip() {
        let mut meta = Map::new();
        meta.insert("host".into(), json!("compute-1"));
        meta.insert("flavor".into(), json!({"vcpus": 2}));
        let s = Sample::builder("memory", CounterType::Gauge, "MB", 512, "r")
            .resource_metadata(meta)
            .signed("secret");
        assert_eq!(s.message_signature.len(), 64);
        assert!(s.verify("secret"));
        assert!(!s.verify("other"));
        assert!(signing::verify_signature(&s.to_map(), "secret"));
        let back = Sample::from_map(s.to_map()).unwrap();
        assert_eq!(back, s);
        let mut tampered = s.clone();
        tampered.counter_volume = Number::from(513);
        assert!(!tampered.verify("secret"));
    }

    #[test]
    fn reads_older_dicts_and_rejects_bad_types() {
        let old = json!({"source": "openstack", "counter_name": "cpu", "counter_type": "delta",
            "counter_unit": "ns", "counter_volume": 1.5, "user_id": null, "project_id": null,
            "resource_id": "r", "timestamp": null, "resource_metadata": {}, "message_id": "m",
            "message_signature": "abc"});
        let s = Sample::from_map(old.as_object().unwrap().clone()).unwrap();
        assert_eq!(s.counter_type, CounterType::Delta);
        let bad = json!({"counter_type": "rate"});
        let e = Sample::from_map(bad.as_object().unwrap().clone()).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Decode);
        assert_eq!("gauge".parse::<CounterType>().unwrap(), CounterType::Gauge);
        assert!("Gauge".parse::<CounterType>().is_err());
    }
}
