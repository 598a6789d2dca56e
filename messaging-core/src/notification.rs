//! Notifications: what a notifier sends and what a listener's handler receives.

use std::fmt;

use chrono::{DateTime, Timelike, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::priority::Priority;

/// The request context that travels with a notification (a JSON object).
pub type Context = Map<String, Value>;

/// A notification ready to be encoded: every field as it goes on the wire.
#[derive(Debug, Clone)]
pub struct OutgoingNotification {
    /// Random UUID v4.
    pub message_id: String,
    /// Who sent it, e.g. `compute.host1`.
    pub publisher_id: String,
    /// What happened, e.g. `compute.instance.create.end`.
    pub event_type: String,
    /// Its priority.
    pub priority: Priority,
    /// The payload, already serialized to JSON.
    pub payload: Payload,
    /// UTC time in oslo's format (see [`format_timestamp`]).
    pub timestamp: String,
    /// The sanitized context.
    pub context: Context,
}

impl OutgoingNotification {
    /// The payload as a JSON value (for inspection; not used on the hot path).
    pub fn payload_value(&self) -> Value {
        self.payload.to_value().unwrap_or(Value::Null)
    }
}

/// The metadata a handler receives besides the payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// The notification's id.
    pub message_id: String,
    /// When it was sent, in oslo's format (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
    pub timestamp: String,
}

/// A payload: JSON text, known to be exactly one JSON value, parsed only when
/// asked. A received one was checked once, when its record was decoded; one a
/// notifier serialized is valid as serde_json wrote it, and is not parsed again.
///
/// [`deserialize`](Payload::deserialize) reads your own type straight from the text
/// (borrowing strings from it where your type allows);
/// [`to_value`](Payload::to_value) gives a [`serde_json::Value`]. Two payloads are
/// equal when their texts are; a payload equals a `Value` when it parses to it.
#[derive(Clone)]
pub struct Payload(String);

impl Payload {
    /// A payload from JSON text (a [`crate::ErrorKind::Decode`] error when it is not one
    /// JSON value).
    pub fn from_json(text: impl Into<String>) -> Result<Payload> {
        RawValue::from_string(text.into())
            .map(Payload::from)
            .map_err(|e| Error::decode("payload is not a JSON value").with_source(e))
    }

    /// The payload of any serializable value (written with Python's separators, as
    /// oslo's `json.dumps` does).
    pub fn from_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Payload> {
        crate::envelope::payload_text(value).map(Payload::trusted)
    }

    /// A payload of text known to be exactly one JSON value (serde_json wrote it, or
    /// the decoder checked it): not checked again.
    pub(crate) fn trusted(text: String) -> Payload {
        Payload(text)
    }

    /// The JSON text, exactly as it arrived (or was written).
    pub fn json(&self) -> &str {
        &self.0
    }

    /// Deserialize the payload into a type of your own, straight from its text.
    ///
    /// `T` may borrow from the payload (`&'a str` fields, `Cow<'a, str>` with
    /// `#[serde(borrow)]`). A payload that does not fit is a
    /// [`crate::ErrorKind::Decode`] error naming the type.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        serde_json::from_str(self.json()).map_err(|e| {
            Error::decode(format!(
                "payload does not fit {}",
                std::any::type_name::<T>()
            ))
            .with_source(e)
        })
    }

    /// The payload as a JSON value (parsed now, on every call). It fails only for
    /// payloads a `Value` cannot hold: nesting deeper than serde_json's limit, or a
    /// number out of `f64`'s range.
    pub fn to_value(&self) -> Result<Value> {
        self.deserialize()
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Payload(Box::<str>::from(raw).into_string())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Payload {}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.to_value().is_ok_and(|v| &v == other)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({})", self.json())
    }
}

/// The JSON text.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

/// Written as the JSON value it is (its text, unchanged). serde only takes raw JSON
/// as a [`RawValue`], which checks the text again: this is for the rare caller that
/// serializes a payload, never on the send or receive path.
impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let raw: &RawValue =
            serde_json::from_str(self.json()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// A received notification, as a listener's handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The request context sent with it (`{}` when none).
    pub context: Context,
    /// Who sent it.
    pub publisher_id: String,
    /// What happened.
    pub event_type: String,
    /// Its priority (which selected the handler).
    pub priority: Priority,
    /// The payload, as the JSON text it arrived as.
    pub payload: Payload,
    /// `message_id` and `timestamp`.
    pub metadata: Metadata,
}

impl Notification {
    /// Deserialize the payload into a type of your own (see [`Payload::deserialize`]).
    pub fn payload_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        self.payload.deserialize()
    }

    /// The notification's fields as one JSON object (the CLI's output line).
    ///
    /// A payload a `Value` cannot hold (see [`Payload::to_value`]: nesting deeper
    /// than serde_json's limit, a number beyond `f64`) appears as a JSON string
    /// holding its exact text, so that this never fails.
    pub fn to_json(&self) -> Value {
        let payload = self
            .payload
            .to_value()
            .unwrap_or_else(|_| Value::String(self.payload.json().to_owned()));
        serde_json::json!({
            "priority": self.priority.as_str(),
            "publisher_id": self.publisher_id,
            "event_type": self.event_type,
            "payload": payload,
            "context": self.context,
            "metadata": {"message_id": self.metadata.message_id, "timestamp": self.metadata.timestamp},
        })
    }
}

/// Format a time as oslo does: `YYYY-MM-DD HH:MM:SS.ffffff`, without the fraction
/// when the microseconds are 0.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    // Fields of the naive time: `DateTime`'s own accessors apply the (zero)
    // offset again on every call.
    let naive = time.naive_utc();
    match prefix_of(&naive) {
        Some(prefix) => timestamp_with(&prefix, (naive.nanosecond() % 1_000_000_000) / 1000),
        None => format_timestamp_slow(time),
    }
}

/// Write `value` into `out` as decimal digits, zero-padded to its length.
///
/// Digit by digit: chrono's strftime parses its pattern on every call, `write!`
/// goes through the formatting machinery, and timestamps are written once per
/// notification.
fn write_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DD HH:MM:SS` of `naive` (`None` for a year that does not have four
/// digits: [`format_timestamp_slow`] writes those).
fn prefix_of(naive: &chrono::NaiveDateTime) -> Option<[u8; 19]> {
    use chrono::Datelike;
    let year = u32::try_from(naive.year()).ok().filter(|y| *y <= 9999)?;
    let mut buf = *b"0000-00-00 00:00:00";
    write_digits(&mut buf[0..4], year);
    write_digits(&mut buf[5..7], naive.month());
    write_digits(&mut buf[8..10], naive.day());
    write_digits(&mut buf[11..13], naive.hour());
    write_digits(&mut buf[14..16], naive.minute());
    write_digits(&mut buf[17..19], naive.second());
    Some(buf)
}

/// The current UTC time as [`format_timestamp`] writes it, for every notification
/// sent: the date and time of day are formatted once per second (per thread) and
/// only the microseconds each time.
pub(crate) fn timestamp_now() -> String {
    thread_local! {
        static SECOND: std::cell::Cell<Option<(u64, [u8; 19])>> = const { std::cell::Cell::new(None) };
    }
    let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
        return format_timestamp(chrono::Utc::now());
    };
    let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
    let prefix = match SECOND.get() {
        Some((cached, prefix)) if cached == secs => prefix,
        _ => {
            let Some(prefix) = second_prefix(secs) else {
                return format_timestamp(chrono::Utc::now());
            };
            SECOND.set(Some((secs, prefix)));
            prefix
        }
    };
    timestamp_with(&prefix, micros)
}

/// `YYYY-MM-DD HH:MM:SS` of `secs` since the epoch (`None` for a year that does not
/// have four digits: [`format_timestamp`] writes those).
fn second_prefix(secs: u64) -> Option<[u8; 19]> {
    let time = DateTime::<Utc>::from_timestamp(i64::try_from(secs).ok()?, 0)?;
    prefix_of(&time.naive_utc())
}

/// A timestamp from its whole-second part and microseconds, as [`format_timestamp`]
/// writes it (no fraction when the microseconds are 0).
fn timestamp_with(prefix: &[u8; 19], micros: u32) -> String {
    let mut buf = [0u8; 26];
    buf[..19].copy_from_slice(prefix);
    let len = if micros == 0 {
        19
    } else {
        buf[19] = b'.';
        write_digits(&mut buf[20..26], micros);
        26
    };
    // Only ASCII digits and separators were written.
    String::from_utf8(buf[..len].to_vec()).unwrap_or_default()
}

/// Read a time written by [`format_timestamp`] (`YYYY-MM-DD HH:MM:SS[.ffffff]`,
/// UTC), for the end-to-end latency metric: by hand, as it runs once per
/// notification received. `None` for anything else.
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let micros = match b.len() {
        19 => 0,
        26 if b[19] == b'.' => num(20..26)?,
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, micros)?;
    Some(time.and_utc())
}

/// [`format_timestamp`] for years outside 0..=9999 (as `{:04}` writes them).
fn format_timestamp_slow(time: DateTime<Utc>) -> String {
    use chrono::Datelike;
    use std::fmt::Write;
    let mut out = String::with_capacity(26);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    let micros = (time.nanosecond() % 1_000_000_000) / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// The keys removed from a context before it is sent, unless configured otherwise.
pub const DEFAULT_SECRET_KEYS: &[&str] = &[
    "auth_token",
    "password",
    "secret",
    "token",
    "admin_password",
    "service_token",
    "auth_token_info",
    "passwd",
];

/// Removes secrets from contexts before they are sent.
///
/// Keys are compared case-insensitively and removed at every nesting level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSanitizer {
    secret_keys: Vec<String>,
}

impl Default for ContextSanitizer {
    fn default() -> Self {
        ContextSanitizer::new(DEFAULT_SECRET_KEYS.iter().copied())
    }
}

impl ContextSanitizer {
    /// A sanitizer removing exactly these keys.
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        ContextSanitizer {
            secret_keys: keys
                .into_iter()
                .map(|k| k.as_ref().to_ascii_lowercase())
                .collect(),
        }
    }

    /// A copy of `context` without the secret keys.
    pub fn sanitize(&self, context: &Context) -> Context {
        let mut out = context.clone();
        self.strip(&mut out);
        out
    }

    fn strip(&self, map: &mut Context) {
        map.retain(|k, _| !self.secret_keys.iter().any(|s| s.eq_ignore_ascii_case(k)));
        for value in map.values_mut() {
            self.strip_value(value);
        }
    }

    fn strip_value(&self, value: &mut Value) {
        match value {
            Value::Object(m) => self.strip(m),
            Value::Array(items) => items.iter_mut().for_each(|v| self.strip_value(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_read_back_what_format_wrote() {
        let t = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        let whole = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(parse_timestamp(&format_timestamp(whole)), Some(whole));
        assert_eq!(parse_timestamp("2024-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("not a time"), None);
        assert_eq!(parse_timestamp("2024-01-01 00:00:00.12"), None);
    }

    #[test]
    fn timestamp_format_matches_oslo() {
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        assert_eq!(format_timestamp(t), "2026-05-01 12:00:00");
        let t = t + chrono::Duration::microseconds(123456);
        assert_eq!(format_timestamp(t), "2026-05-01 12:00:00.123456");
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(500);
        assert_eq!(format_timestamp(t), "2026-05-01 12:00:00");
        // Leap second, small year, and agreement with the formatting machinery.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_000_007)
            .unwrap()
            .and_utc();
        assert_eq!(format_timestamp(leap), "2016-12-31 23:59:59.000007");
        let small = Utc.with_ymd_and_hms(7, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(small), "0007-01-02 03:04:05");
        for micros in [0i64, 1, 999_999, 123_456_789_012, 9_876_543_210_987] {
            let t = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 58).unwrap()
                + chrono::Duration::microseconds(micros);
            assert_eq!(format_timestamp(t), format_timestamp_slow(t));
        }
    }

    #[test]
    fn the_per_second_timestamp_writes_what_format_timestamp_writes() {
        for (secs, micros) in [
            (1_780_000_000u64, 0u32),
            (1_780_000_000, 1),
            (1_780_000_000, 999_999),
            (1_780_000_059, 123_456),
            (951_782_399, 500_000), // 2000-02-28 23:59:59
            (0, 7),
        ] {
            let expected = format_timestamp(
                DateTime::<Utc>::from_timestamp(secs as i64, micros * 1000).unwrap(),
            );
            let prefix = second_prefix(secs).unwrap();
            assert_eq!(timestamp_with(&prefix, micros), expected, "{secs} {micros}");
        }
        let now = timestamp_now();
        assert!(parse_timestamp(&now).is_some(), "{now}");
    }

    /// Regression: `to_json` built its object with `json!`, which panicked on a
    /// payload a `Value` cannot hold (a listener delivers such payloads as text;
    /// `messaging listen` printed every notification through `to_json`).
    #[test]
    fn to_json_never_panics_on_a_payload_a_value_cannot_hold() {
        let with_payload = |text: &str| Notification {
            context: Context::new(),
            publisher_id: "p".into(),
            event_type: "e".into(),
            priority: Priority::Info,
            payload: Payload::from_json(text).unwrap(),
            metadata: Metadata {
                message_id: "m".into(),
                timestamp: "t".into(),
            },
        };
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for text in [deep.as_str(), r#"{"huge": 1e400}"#] {
            let n = with_payload(text);
            assert!(n.payload.to_value().is_err());
            let json = n.to_json();
            assert_eq!(json["payload"], Value::String(text.to_owned()));
            assert_eq!(json["event_type"], "e");
        }
        let fine = with_payload(r#"{"a": [1, 2]}"#).to_json();
        assert_eq!(fine["payload"], serde_json::json!({"a": [1, 2]}));
    }

    #[test]
    fn sanitizer_removes_secrets_at_every_level() {
        let ctx: Context = serde_json::from_str(
            r#"{"user":"u","auth_token":"t","Password":"p","nested":{"secret":"s","keep":1},"list":[{"token":"x","k":2}]}"#,
        )
        .unwrap();
        let clean = ContextSanitizer::default().sanitize(&ctx);
        let text = serde_json::to_string(&clean).unwrap();
        assert_eq!(text, r#"{"user":"u","nested":{"keep":1},"list":[{"k":2}]}"#);
    }
}
