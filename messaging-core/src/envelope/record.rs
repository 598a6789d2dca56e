//! The fields of a record as serde reads them, and the checks that turn them into
//! a [`Notification`]: shared by the serde path and the fast path.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::notification::{Context, Metadata, Notification};
use crate::priority::Priority;

/// Deserialize a field that is present, `null` included (`Some(null)`, where
/// `Option`'s own handling would give `None`).
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
    pub(super) payload: Option<Box<RawValue>>,
    #[serde(default)]
    pub(super) timestamp: Option<String>,
    #[serde(rename = "_context", default)]
    pub(super) context: Option<Value>,
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
        payload: r.payload.ok_or_else(|| missing("payload"))?.into(),
        metadata: Metadata {
            message_id: r.message_id.unwrap_or_default(),
            timestamp: r.timestamp.unwrap_or_default(),
        },
    })
}
