//! Endpoint filters, with oslo's semantics.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::{Notification, Payload};

/// Selects which notifications an endpoint receives.
///
/// Each given field is a regular expression anchored at the start only (like
/// Python's `re.match`); every given field must match; a missing or non-string
/// value does not match. Context, metadata and payload filters look at top-level
/// keys.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    publisher_id: Option<Regex>,
    event_type: Option<Regex>,
    context: Vec<(String, Regex)>,
    metadata: Vec<(String, Regex)>,
    payload: Vec<(String, Regex)>,
}

fn anchored(pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})")).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("bad filter pattern {pattern:?}"),
        )
        .with_source(e)
    })
}

fn matches_text(re: &Regex, value: Option<&Value>) -> bool {
    matches!(value, Some(Value::String(s)) if re.is_match(s))
}

fn matches_map(filters: &[(String, Regex)], map: Option<&Map<String, Value>>) -> bool {
    filters
        .iter()
        .all(|(k, re)| matches_text(re, map.and_then(|m| m.get(k))))
}

/// Whether every payload filter matches, parsing only the keys they test: the
/// payload's other values are skipped, not built.
fn matches_payload(filters: &[(String, Regex)], payload: &Payload) -> bool {
    if filters.is_empty() {
        return true;
    }
    let mut de = serde_json::Deserializer::from_str(payload.json());
    let found =
        serde::Deserializer::deserialize_any(&mut de, TopLevelStrings(filters)).unwrap_or_default();
    found.len() == filters.len()
        && filters
            .iter()
            .zip(&found)
            .all(|((_, re), value)| matches!(value, Some(s) if re.is_match(s)))
}

/// Reads a JSON value and gives, for each filter, the string at its top-level key
/// (`None` when missing or not a string; an empty list when the value is not an
/// object). A repeated key counts as its last occurrence, as in a parsed `Value`.
struct TopLevelStrings<'f>(&'f [(String, Regex)]);

impl<'de> Visitor<'de> for TopLevelStrings<'_> {
    type Value = Vec<Option<Cow<'de, str>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut found = vec![None; self.0.len()];
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let slots: Vec<usize> = (0..self.0.len()).filter(|&i| self.0[i].0 == key).collect();
            if slots.is_empty() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value_seed(StringOrNone)?;
            for i in slots {
                found[i].clone_from(&value);
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Vec::new())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// One value: its text when it is a string, `None` (after skipping it) otherwise.
struct StringOrNone;

impl<'de> DeserializeSeed<'de> for StringOrNone {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringOrNone {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
        Ok(Some(Cow::Owned(s.to_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
}

impl NotificationFilter {
    /// A filter that lets everything through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the filter has no criteria.
    pub fn is_empty(&self) -> bool {
        self.publisher_id.is_none()
            && self.event_type.is_none()
            && self.context.is_empty()
            && self.metadata.is_empty()
            && self.payload.is_empty()
    }

    /// Match the publisher id.
    pub fn publisher_id(mut self, pattern: &str) -> Result<Self> {
        self.publisher_id = Some(anchored(pattern)?);
        Ok(self)
    }

    /// Match the event type.
    pub fn event_type(mut self, pattern: &str) -> Result<Self> {
        self.event_type = Some(anchored(pattern)?);
        Ok(self)
    }

    /// Match a top-level context key.
    pub fn context(mut self, key: &str, pattern: &str) -> Result<Self> {
        self.context.push((key.to_owned(), anchored(pattern)?));
        Ok(self)
    }

    /// Match a metadata key (`message_id` or `timestamp`).
    pub fn metadata(mut self, key: &str, pattern: &str) -> Result<Self> {
        self.metadata.push((key.to_owned(), anchored(pattern)?));
        Ok(self)
    }

    /// Match a top-level payload key (a payload that is not an object never matches).
    pub fn payload(mut self, key: &str, pattern: &str) -> Result<Self> {
        self.payload.push((key.to_owned(), anchored(pattern)?));
        Ok(self)
    }

    /// Whether a notification passes.
    pub fn matches(&self, n: &Notification) -> bool {
        if let Some(re) = &self.publisher_id {
            if !re.is_match(&n.publisher_id) {
                return false;
            }
        }
        if let Some(re) = &self.event_type {
            if !re.is_match(&n.event_type) {
                return false;
            }
        }
        if !matches_map(&self.context, Some(&n.context))
            || !matches_payload(&self.payload, &n.payload)
        {
            return false;
        }
        self.metadata.iter().all(|(k, re)| match k.as_str() {
            "message_id" => re.is_match(&n.metadata.message_id),
            "timestamp" => re.is_match(&n.metadata.timestamp),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metadata, Priority};
    use serde_json::json;

    fn n() -> Notification {
        Notification {
            context: json!({"user": "alice", "n": 1})
                .as_object()
                .unwrap()
                .clone(),
            publisher_id: "compute.host1".into(),
            event_type: "compute.instance.create.end".into(),
            priority: Priority::Info,
            payload: Payload::from_json(r#"{"state": "active", "size": 3, "state2": {"state": "x"}, "esc\u0061ped": "yes\n"}"#)
                .unwrap(),
            metadata: Metadata {
                message_id: "abc-1".into(),
                timestamp: "2026-01-01 00:00:00".into(),
            },
        }
    }

    #[test]
    fn every_field_anchored_at_start() {
        let n = n();
        assert!(NotificationFilter::new().matches(&n));
        assert!(NotificationFilter::new()
            .publisher_id("compute")
            .unwrap()
            .matches(&n));
        assert!(!NotificationFilter::new()
            .publisher_id("host1")
            .unwrap()
            .matches(&n));
        assert!(NotificationFilter::new()
            .publisher_id(".*host1")
            .unwrap()
            .matches(&n));
        assert!(NotificationFilter::new()
            .event_type(r"compute\.instance\..*\.end")
            .unwrap()
            .matches(&n));
        assert!(!NotificationFilter::new()
            .event_type("instance")
            .unwrap()
            .matches(&n));
        assert!(NotificationFilter::new()
            .context("user", "ali")
            .unwrap()
            .matches(&n));
        assert!(
            !NotificationFilter::new()
                .context("n", "1")
                .unwrap()
                .matches(&n),
            "non-string never matches"
        );
        assert!(!NotificationFilter::new()
            .context("missing", ".*")
            .unwrap()
            .matches(&n));
        assert!(NotificationFilter::new()
            .metadata("message_id", "abc")
            .unwrap()
            .matches(&n));
        assert!(!NotificationFilter::new()
            .metadata("other", ".*")
            .unwrap()
            .matches(&n));
        assert!(NotificationFilter::new()
            .payload("state", "act")
            .unwrap()
            .matches(&n));
        assert!(!NotificationFilter::new()
            .payload("size", "3")
            .unwrap()
            .matches(&n));
        assert!(
            !NotificationFilter::new()
                .payload("state2", ".*")
                .unwrap()
                .matches(&n),
            "an object is not a string"
        );
        assert!(
            NotificationFilter::new()
                .payload("escaped", "yes\n")
                .unwrap()
                .payload("state", "active")
                .unwrap()
                .payload("state", "a")
                .unwrap()
                .matches(&n),
            "escaped keys and values, and one key tested twice"
        );
        assert!(!NotificationFilter::new()
            .payload("missing", ".*")
            .unwrap()
            .matches(&n));
        let mut other = n.clone();
        for (text, passes) in [
            (r#"["state", "active"]"#, false),
            (r#""active""#, false),
            ("null", false),
            (r#"{"state": "idle", "state": "active"}"#, true),
            (r#"{"state": "active", "state": 1}"#, false),
        ] {
            other.payload = Payload::from_json(text).unwrap();
            let filter = NotificationFilter::new().payload("state", "act").unwrap();
            assert_eq!(filter.matches(&other), passes, "{text}");
            let parsed = other.payload.to_value().unwrap();
            assert_eq!(
                passes,
                matches!(parsed.get("state"), Some(Value::String(s)) if s.starts_with("act")),
                "the same as reading the parsed value: {text}"
            );
        }
        let both = NotificationFilter::new()
            .publisher_id("compute")
            .unwrap()
            .event_type("image")
            .unwrap();
        assert!(!both.matches(&n), "every given field must match");
        assert!(NotificationFilter::new().event_type("(").is_err());
    }
}
