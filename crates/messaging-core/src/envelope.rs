//! The wire format: oslo.messaging's v2 envelope.
//!
//! A record's value is a JSON object with exactly two keys, `oslo.version` (`"2.0"`)
//! and `oslo.message`, a JSON *string* holding the message object. Encoding writes
//! Python's separators (`", "`, `": "`) so that records are byte-for-byte what
//! oslo.messaging writes (except that non-ASCII characters are written as UTF-8,
//! which every JSON reader accepts). Decoding accepts any spacing, the v2 envelope,
//! and a bare (v1) message object; another major version or a version newer than
//! 2.0 is a [`crate::ErrorKind::Decode`] error.

use std::borrow::Cow;
use std::io::Write;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::ser::Formatter;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::notification::{Context, Metadata, Notification, OutgoingNotification};
use crate::priority::Priority;

/// The envelope version this crate writes.
pub const ENVELOPE_VERSION: &str = "2.0";

/// A serde_json formatter that writes Python's `json.dumps` separators.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Serialize any value to JSON text with Python's separators.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    // serde_json only ever writes valid UTF-8.
    String::from_utf8(out)
        .map_err(|e| Error::new(crate::ErrorKind::Internal, "non-UTF-8 JSON").with_source(e))
}

/// Serialize a payload into a raw JSON value, ready for [`encode`].
pub fn payload_to_raw<T: Serialize + ?Sized>(payload: &T) -> Result<Box<RawValue>> {
    let text = to_python_json(payload)?;
    RawValue::from_string(text).map_err(Error::from)
}

#[derive(Serialize)]
struct WireMessage<'a> {
    message_id: &'a str,
    publisher_id: &'a str,
    event_type: &'a str,
    priority: &'a str,
    payload: &'a RawValue,
    timestamp: &'a str,
    _context: &'a Context,
}

/// Encode a notification as one record value in the v2 envelope.
pub fn encode(n: &OutgoingNotification) -> Result<Vec<u8>> {
    let message = WireMessage {
        message_id: &n.message_id,
        publisher_id: &n.publisher_id,
        event_type: &n.event_type,
        priority: n.priority.as_wire(),
        payload: &n.payload,
        timestamp: &n.timestamp,
        _context: &n.context,
    };
    let inner = to_python_json(&message)?;
    let mut out = Vec::with_capacity(inner.len() + inner.len() / 4 + 48);
    out.extend_from_slice(b"{\"oslo.version\": \"2.0\", \"oslo.message\": ");
    serde_json::to_writer(&mut out, inner.as_str())?;
    out.push(b'}');
    Ok(out)
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Every key either form may carry; unknown keys are ignored.
#[derive(Deserialize)]
struct WireRecord<'a> {
    #[serde(rename = "oslo.version", borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(rename = "oslo.message", borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    publisher_id: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(rename = "_context", default)]
    context: Option<Value>,
}

/// Decode one record value (v2 envelope or bare v1 message).
pub fn decode(body: &[u8]) -> Result<Notification> {
    let record: WireRecord<'_> = serde_json::from_slice(body)
        .map_err(|e| Error::decode("record is not a JSON object").with_source(e))?;
    match (&record.version, &record.message) {
        (Some(version), Some(message)) => {
            check_version(version)?;
            let inner: WireRecord<'_> = serde_json::from_str(message)
                .map_err(|e| Error::decode("oslo.message is not a JSON object").with_source(e))?;
            into_notification(inner)
        }
        (Some(_), None) => Err(Error::decode(
            "envelope has oslo.version but no oslo.message",
        )),
        (None, Some(_)) => Err(Error::decode(
            "envelope has oslo.message but no oslo.version",
        )),
        (None, None) => into_notification(record),
    }
}

pub(crate) fn check_version(version: &str) -> Result<()> {
    let mut parts = version.split('.');
    let major: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    let minor: Option<u32> = match parts.next() {
        None => Some(0),
        Some(p) => p.parse().ok(),
    };
    match (major, minor, parts.next()) {
        (Some(2), Some(0), None) => Ok(()),
        (Some(2), Some(_), None) => Err(Error::decode(format!(
            "envelope version {version} is newer than {ENVELOPE_VERSION}"
        ))),
        (Some(_), Some(_), None) => Err(Error::decode(format!(
            "incompatible envelope version {version}: this reader supports {ENVELOPE_VERSION}"
        ))),
        _ => Err(Error::decode(format!(
            "malformed envelope version {version:?}"
        ))),
    }
}

fn into_notification(r: WireRecord<'_>) -> Result<Notification> {
    let missing = |field: &str| Error::decode(format!("message has no {field}"));
    let priority_text = r.priority.ok_or_else(|| missing("priority"))?;
    let priority: Priority = priority_text
        .parse()
        .map_err(|_| Error::decode(format!("message has unknown priority {priority_text:?}")))?;
    let context = match r.context {
        None | Some(Value::Null) => Context::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::decode("_context is not a JSON object")),
    };
    Ok(Notification {
        context,
        publisher_id: r.publisher_id.unwrap_or_default(),
        event_type: r.event_type.ok_or_else(|| missing("event_type"))?,
        priority,
        payload: r.payload.ok_or_else(|| missing("payload"))?,
        metadata: Metadata {
            message_id: r.message_id.unwrap_or_default(),
            timestamp: r.timestamp.unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn sample() -> OutgoingNotification {
        OutgoingNotification {
            message_id: "6f1c0000-0000-4000-8000-000000000001".into(),
            publisher_id: "compute.host1".into(),
            event_type: "compute.instance.create.end".into(),
            priority: Priority::Info,
            payload: payload_to_raw(&serde_json::json!({"instance_id": "abc"})).unwrap(),
            timestamp: "2026-05-01 12:00:00.123456".into(),
            context: Context::new(),
        }
    }

    #[test]
    fn encodes_exactly_like_oslo() {
        let encoded = String::from_utf8(encode(&sample()).unwrap()).unwrap();
        let expected = r#"{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"6f1c0000-0000-4000-8000-000000000001\", \"publisher_id\": \"compute.host1\", \"event_type\": \"compute.instance.create.end\", \"priority\": \"INFO\", \"payload\": {\"instance_id\": \"abc\"}, \"timestamp\": \"2026-05-01 12:00:00.123456\", \"_context\": {}}"}"#;
        assert_eq!(encoded, expected);
    }

    #[test]
    fn round_trips() {
        let mut n = sample();
        n.payload = payload_to_raw(&serde_json::json!({"x": [1, 2.5, null, "é\"\\\n"], "y": null}))
            .unwrap();
        n.context.insert("user".into(), "u".into());
        let back = decode(&encode(&n).unwrap()).unwrap();
        assert_eq!(back.payload, n.payload_value());
        assert_eq!(back.metadata.message_id, n.message_id);
        assert_eq!(back.priority, Priority::Info);
        assert_eq!(back.context.get("user"), Some(&Value::from("u")));
    }

    #[test]
    fn accepts_v1_and_any_spacing_and_null_payload() {
        let v1 = br#"{"message_id":"m","publisher_id":"p","event_type":"e","priority":"warn","payload":null,"timestamp":"t"}"#;
        let n = decode(v1).unwrap();
        assert_eq!(n.payload, Value::Null);
        assert_eq!(n.priority, Priority::Warn);
        assert!(n.context.is_empty());
        let compact = br#"{"oslo.version":"2.0","oslo.message":"{\"event_type\":\"e\",\"priority\":\"SAMPLE\",\"payload\":[1],\"_context\":{\"a\":1}}"}"#;
        assert_eq!(decode(compact).unwrap().priority, Priority::Sample);
    }

    #[test]
    fn rejects_foreign_records_with_typed_errors() {
        let cases: &[&[u8]] = &[
            b"not json",
            b"[1,2]",
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#,
            br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#,
            br#"{"oslo.version": "1.0", "oslo.message": "{}"}"#,
            br#"{"oslo.version": "2.0", "oslo.message": "not json"}"#,
            br#"{"oslo.version": "2.0"}"#,
            br#"{"hello": "world"}"#,
            br#"{"event_type":"e","priority":"LOUD","payload":1}"#,
        ];
        for case in cases {
            let err = decode(case).unwrap_err();
            assert_eq!(
                err.kind(),
                &ErrorKind::Decode,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        let newer = decode(br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#).unwrap_err();
        assert!(newer.to_string().contains("newer"));
    }
}
