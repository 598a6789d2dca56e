//! Decoding through serde: any spacing, v1 and v2, typed errors; the fast path first.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::fast_decode::*;
use super::*;
use crate::error::{Error, Result};
use crate::notification::{Context, Metadata, Notification};
use crate::priority::Priority;

pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Every key either form may carry; unknown keys are ignored.
#[derive(Deserialize)]
pub(super) struct WireRecord<'a> {
    #[serde(rename = "oslo.version", borrow, default)]
    pub(super) version: Option<Cow<'a, str>>,
    #[serde(rename = "oslo.message", borrow, default)]
    pub(super) message: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) message_id: Option<String>,
    #[serde(default)]
    pub(super) publisher_id: Option<String>,
    #[serde(default)]
    pub(super) event_type: Option<String>,
    #[serde(borrow, default)]
    pub(super) priority: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) payload: Option<Value>,
    #[serde(default)]
    pub(super) timestamp: Option<String>,
    #[serde(rename = "_context", default)]
    pub(super) context: Option<Value>,
}

/// Decode one record value (v2 envelope or bare v1 message).
pub fn decode(body: &[u8]) -> Result<Notification> {
    if let Some(decoded) = canonical_contents(body).and_then(canonical_direct) {
        return decoded;
    }
    if let Some(message) = canonical_message(body) {
        if let Some(decoded) = canonical_inner(&message) {
            return decoded;
        }
        // Exactly what the general path below does with this record, minus the
        // outer parse.
        let inner: WireRecord<'_> = serde_json::from_str(&message)
            .map_err(|e| Error::decode("oslo.message is not a JSON object").with_source(e))?;
        return into_notification(inner);
    }
    decode_general(body)
}

/// Decode any accepted form: parse the outer object, then the inner message.
pub(super) fn decode_general(body: &[u8]) -> Result<Notification> {
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

pub(super) fn into_notification(r: WireRecord<'_>) -> Result<Notification> {
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
