//! The fields of a record as serde reads them, and the checks that turn them into
//! a [`Notification`]: shared by the serde path and the fast path.

use std::borrow::Cow;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::notification::{Context, Metadata, Notification, Payload};
use crate::priority::Priority;

/// Every key either form may carry; unknown keys (`_unique_id` among them) are
/// ignored.
///
/// Deserialized by hand (a map visitor, not a derive) for the one thing a derive
/// cannot do: collect the `_context_<key>` keys of oslo's AMQP form, whatever
/// their names, alongside the payload read as a raw value. Like a derive it
/// refuses a known key given twice (`duplicate field`); a `_context_<key>` given
/// twice keeps the last value.
pub(super) struct WireRecord<'a> {
    pub(super) version: Option<Cow<'a, str>>,
    pub(super) message: Option<Cow<'a, str>>,
    pub(super) message_id: Option<String>,
    pub(super) publisher_id: Option<String>,
    pub(super) event_type: Option<String>,
    pub(super) priority: Option<Cow<'a, str>>,
    /// `Some(null)` for a `null` payload: only a missing one is `None`.
    pub(super) payload: Option<Payload>,
    pub(super) timestamp: Option<String>,
    /// The `_context` object (the Kafka form).
    pub(super) context: Option<Value>,
    /// The `_context_<key>` keys, without the prefix (the AMQP form).
    pub(super) flat_context: Map<String, Value>,
}

/// The prefix of a flat context key (oslo's AMQP form).
pub(crate) const FLAT_CONTEXT_PREFIX: &str = "_context_";

/// A string borrowed from the input where it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Set `slot` from the next value, refusing a second one as a derive does (for
/// an `Option<T>` field, `Some(None)` is a `null` that was there).
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> std::result::Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for WireRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireRecord<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an oslo message object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut version: Option<Option<CowStr<'de>>> = None;
                let mut message: Option<Option<CowStr<'de>>> = None;
                let mut message_id: Option<Option<String>> = None;
                let mut publisher_id: Option<Option<String>> = None;
                let mut event_type: Option<Option<String>> = None;
                let mut priority: Option<Option<CowStr<'de>>> = None;
                let mut payload: Option<Box<RawValue>> = None;
                let mut timestamp: Option<Option<String>> = None;
                let mut context: Option<Option<Value>> = None;
                let mut flat_context = Map::new();
                while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
                    match key.as_ref() {
                        "oslo.version" => once(&mut map, &mut version, "oslo.version")?,
                        "oslo.message" => once(&mut map, &mut message, "oslo.message")?,
                        "message_id" => once(&mut map, &mut message_id, "message_id")?,
                        "publisher_id" => once(&mut map, &mut publisher_id, "publisher_id")?,
                        "event_type" => once(&mut map, &mut event_type, "event_type")?,
                        "priority" => once(&mut map, &mut priority, "priority")?,
                        "payload" => once(&mut map, &mut payload, "payload")?,
                        "timestamp" => once(&mut map, &mut timestamp, "timestamp")?,
                        "_context" => once(&mut map, &mut context, "_context")?,
                        other => match other.strip_prefix(FLAT_CONTEXT_PREFIX) {
                            Some(name) => {
                                let value: Value = map.next_value()?;
                                flat_context.insert(name.to_owned(), value);
                            }
                            None => {
                                map.next_value::<de::IgnoredAny>()?;
                            }
                        },
                    }
                }
                let cow = |v: Option<Option<CowStr<'de>>>| v.flatten().map(|CowStr(s)| s);
                Ok(WireRecord {
                    version: cow(version),
                    message: cow(message),
                    message_id: message_id.flatten(),
                    publisher_id: publisher_id.flatten(),
                    event_type: event_type.flatten(),
                    priority: cow(priority),
                    payload: payload.map(Payload::from),
                    timestamp: timestamp.flatten(),
                    context: context.flatten(),
                    flat_context,
                })
            }
        }
        d.deserialize_map(V)
    }
}

pub(super) fn into_notification(r: WireRecord<'_>) -> Result<Notification> {
    let missing = |field: &str| Error::decode(format!("message has no {field}"));
    let priority_text = r.priority.ok_or_else(|| missing("priority"))?;
    let priority: Priority = priority_text
        .parse()
        .map_err(|_| Error::decode(format!("message has unknown priority {priority_text:?}")))?;
    let mut context = match r.context {
        None | Some(Value::Null) => Context::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::decode("_context is not a JSON object")),
    };
    // oslo's AMQP form: flat `_context_<key>` keys. With a `_context` object as
    // well (no oslo driver writes both), the object's keys win.
    for (key, value) in r.flat_context {
        context.entry(key).or_insert(value);
    }
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
