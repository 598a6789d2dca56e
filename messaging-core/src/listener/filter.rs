//! Endpoint filters, with oslo's semantics.

use regex::Regex;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::notification::Notification;

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
            || !matches_map(&self.payload, n.payload.as_object())
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
            payload: json!({"state": "active", "size": 3}),
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
        let both = NotificationFilter::new()
            .publisher_id("compute")
            .unwrap()
            .event_type("image")
            .unwrap();
        assert!(!both.matches(&n), "every given field must match");
        assert!(NotificationFilter::new().event_type("(").is_err());
    }
}
