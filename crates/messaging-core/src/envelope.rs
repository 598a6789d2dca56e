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
    thread_local! {
        // Serializing into a growing Vec reallocates on the way for every payload;
        // this buffer keeps its size, and the text is then copied out exactly once.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    const KEEP_AT_MOST: usize = 64 * 1024;
    let text = SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let mut ser = serde_json::Serializer::with_formatter(&mut *buf, PythonFormatter);
            let written = payload
                .serialize(&mut ser)
                .map_err(Error::from)
                .and_then(|()| {
                    String::from_utf8(buf.to_vec()).map_err(|e| {
                        Error::new(crate::ErrorKind::Internal, "non-UTF-8 JSON").with_source(e)
                    })
                });
            if buf.capacity() > KEEP_AT_MOST {
                *buf = Vec::new();
            }
            written
        }
        // A payload whose serialization serializes another payload.
        Err(_) => to_python_json(payload),
    })?;
    RawValue::from_string(text).map_err(Error::from)
}

/// The inner message as serde would write it (the tests' reference for [`encode`]).
#[cfg(test)]
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
///
/// The inner message is written straight into the outer string, escaped on the
/// way, without building it first: the result is byte for byte what serializing
/// the message with Python's separators and then writing that text as a JSON
/// string gives (see the tests, which compare against exactly that).
pub fn encode(n: &OutgoingNotification) -> Result<Vec<u8>> {
    let payload = n.payload.get().as_bytes();
    let mut out = Vec::with_capacity(
        OUTER_PREFIX.len()
            + payload.len()
            + payload.len() / 4
            + n.message_id.len()
            + n.publisher_id.len()
            + n.event_type.len()
            + n.timestamp.len()
            + 200,
    );
    out.extend_from_slice(OUTER_PREFIX);
    out.extend_from_slice(br#"{\"message_id\": "#);
    write_string_twice_escaped(&mut out, &n.message_id)?;
    out.extend_from_slice(br#", \"publisher_id\": "#);
    write_string_twice_escaped(&mut out, &n.publisher_id)?;
    out.extend_from_slice(br#", \"event_type\": "#);
    write_string_twice_escaped(&mut out, &n.event_type)?;
    out.extend_from_slice(br#", \"priority\": "#);
    write_string_twice_escaped(&mut out, n.priority.as_wire())?;
    out.extend_from_slice(br#", \"payload\": "#);
    escape_str_contents(&mut out, payload);
    out.extend_from_slice(br#", \"timestamp\": "#);
    write_string_twice_escaped(&mut out, &n.timestamp)?;
    out.extend_from_slice(br#", \"_context\": "#);
    if n.context.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        escape_str_contents(&mut out, to_python_json(&n.context)?.as_bytes());
    }
    out.extend_from_slice(b"}\"}");
    Ok(out)
}

/// The start of every record this crate writes, up to the opening quote of `oslo.message`.
const OUTER_PREFIX: &[u8] = br#"{"oslo.version": "2.0", "oslo.message": ""#;

/// Write `s` as a JSON string (quotes included), itself escaped as the contents
/// of another JSON string: what a string field of the inner message becomes.
fn write_string_twice_escaped(out: &mut Vec<u8>, s: &str) -> Result<()> {
    if first_escape(s.as_bytes(), 0) == s.len() {
        // Nothing to escape at either level: `\"text\"`.
        out.extend_from_slice(b"\\\"");
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\\\"");
        return Ok(());
    }
    let once = serde_json::to_string(s)?;
    escape_str_contents(out, once.as_bytes());
    Ok(())
}

/// The SWAR constant 0x0101..01.
const ONES: u64 = u64::MAX / 255;
/// The high bit of every byte.
const HIGHS: u64 = ONES << 7;

/// The high bit set in bytes of `chunk` that are `"`, `\\` or below 0x20 (what a
/// JSON string must escape); 0 when there are none. The lowest flagged byte is
/// always a real one; bytes above it may be flagged wrongly.
#[inline(always)]
fn escape_mask(chunk: u64) -> u64 {
    let ctrl = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    let q = chunk ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = chunk ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (ctrl | quote | backslash) & HIGHS
}

/// Whether any byte of `chunk` is one a JSON string must escape.
#[inline(always)]
fn chunk_needs_escape(chunk: u64) -> bool {
    escape_mask(chunk) != 0
}

#[inline(always)]
fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The index of the first byte at or after `from` that a JSON string must escape
/// (`bytes.len()` when none).
#[inline]
fn first_escape(bytes: &[u8], mut from: usize) -> usize {
    while from + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[from..from + 8]);
        if chunk_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        from += 8;
    }
    while from < bytes.len() && !byte_needs_escape(bytes[from]) {
        from += 1;
    }
    from
}

/// Append `text` escaped as the contents of a JSON string, exactly as serde_json
/// escapes a `str` (`\\"`, `\\\\`, the short escapes, `\\u00XX` for other control
/// characters; everything else, UTF-8 included, as is).
fn escape_str_contents(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    loop {
        let i = first_escape(text, start);
        out.extend_from_slice(&text[start..i]);
        let Some(&b) = text.get(i) else {
            return;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
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
    #[serde(borrow, default)]
    priority: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(rename = "_context", default)]
    context: Option<Value>,
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
fn decode_general(body: &[u8]) -> Result<Notification> {
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

/// The unescaped `oslo.message` of a record laid out exactly as [`encode`] (and
/// oslo.messaging) writes it: `OUTER_PREFIX`, a string using only the short
/// escapes, `"}` and nothing after. `None` sends the record down the general path
/// (other spacing or key order, `\\u` escapes, anything malformed), which then
/// gives the same result or the same error as always.
fn canonical_message(body: &[u8]) -> Option<String> {
    unescape_contents(canonical_contents(body)?)
}

/// The still escaped contents of `oslo.message` in a record laid out as [`encode`]
/// writes it.
fn canonical_contents(body: &[u8]) -> Option<&[u8]> {
    body.strip_prefix(OUTER_PREFIX)?.strip_suffix(b"\"}")
}

/// The text a JSON string with these contents stands for, when it uses only the
/// short escapes (`None` otherwise, or when the contents are not valid UTF-8 or
/// have an unescaped quote or control character).
fn unescape_contents(contents: &[u8]) -> Option<String> {
    let len = contents.len();
    // Eight bytes of slack: words are copied whole and the tail overwritten later.
    let mut out = vec![0u8; len + 8];
    let (mut i, mut j) = (0, 0);
    loop {
        if i + 8 <= len {
            let mut word = [0u8; 8];
            word.copy_from_slice(&contents[i..i + 8]);
            out[j..j + 8].copy_from_slice(&word);
            let mask = escape_mask(u64::from_le_bytes(word));
            if mask == 0 {
                i += 8;
                j += 8;
                continue;
            }
            // The lowest flagged byte is exact (only higher ones can be false hits).
            let k = (mask.trailing_zeros() / 8) as usize;
            i += k;
            j += k;
        } else {
            while i < len && !byte_needs_escape(contents[i]) {
                out[j] = contents[i];
                i += 1;
                j += 1;
            }
            if i == len {
                break;
            }
        }
        if contents[i] != b'\\' {
            // An unescaped quote (the string ended early) or a control character.
            return None;
        }
        out[j] = match contents.get(i + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => return None,
        };
        i += 2;
        j += 1;
    }
    out.truncate(j);
    // Escapes only stand for ASCII, so this is valid exactly when `contents` is.
    String::from_utf8(out).ok()
}

/// The notification in an inner message laid out exactly as [`encode`] writes it
/// (keys in that order, Python's separators, strings without escapes), read
/// without serde's per-key machinery. `None` for anything else, and whenever a
/// value does not parse: the caller then parses the message with serde, which
/// gives the same result or the error.
fn canonical_inner(message: &str) -> Option<Result<Notification>> {
    let mut at = 0;
    let message_id = simple_string_after(message, &mut at, br#"{"message_id": "#)?;
    let publisher_id = simple_string_after(message, &mut at, br#", "publisher_id": "#)?;
    let event_type = simple_string_after(message, &mut at, br#", "event_type": "#)?;
    let priority = simple_string_after(message, &mut at, br#", "priority": "#)?;
    let payload = value_after(message, &mut at, br#", "payload": "#)?;
    let timestamp = simple_string_after(message, &mut at, br#", "timestamp": "#)?;
    let context = value_after(message, &mut at, br#", "_context": "#)?;
    if &message.as_bytes()[at..] != b"}" {
        return None;
    }
    Some(into_notification(WireRecord {
        version: None,
        message: None,
        message_id: Some(message_id.to_owned()),
        publisher_id: Some(publisher_id.to_owned()),
        event_type: Some(event_type.to_owned()),
        priority: Some(Cow::Borrowed(priority)),
        payload: Some(payload),
        timestamp: Some(timestamp.to_owned()),
        context: Some(context),
    }))
}

/// [`canonical_inner`] of the escaped `oslo.message` contents, reading the
/// fields before the payload in place and unescaping only from the payload on
/// (what `canonical_inner(unescape_contents(contents))` gives, or `None`).
fn canonical_direct(contents: &[u8]) -> Option<Result<Notification>> {
    let mut at = 0;
    let message_id = escaped_simple_string_after(contents, &mut at, br#"{\"message_id\": \""#)?;
    let publisher_id =
        escaped_simple_string_after(contents, &mut at, br#", \"publisher_id\": \""#)?;
    let event_type = escaped_simple_string_after(contents, &mut at, br#", \"event_type\": \""#)?;
    let priority = escaped_simple_string_after(contents, &mut at, br#", \"priority\": \""#)?;
    const PAYLOAD: &[u8] = br#", \"payload\": "#;
    if contents.get(at..at + PAYLOAD.len()) != Some(PAYLOAD) {
        return None;
    }
    // Split after a whole escape sequence, so unescaping the rest alone is exact.
    let rest = unescape_contents(&contents[at + PAYLOAD.len()..])?;
    let mut at = 0;
    let payload = value_after(&rest, &mut at, b"")?;
    let timestamp = simple_string_after(&rest, &mut at, br#", "timestamp": "#)?;
    let context = value_after(&rest, &mut at, br#", "_context": "#)?;
    if &rest.as_bytes()[at..] != b"}" {
        return None;
    }
    Some(into_notification(WireRecord {
        version: None,
        message: None,
        message_id: Some(message_id.to_owned()),
        publisher_id: Some(publisher_id.to_owned()),
        event_type: Some(event_type.to_owned()),
        priority: Some(Cow::Borrowed(priority)),
        payload: Some(payload),
        timestamp: Some(timestamp.to_owned()),
        context: Some(context),
    }))
}

/// `key` at `*at` in escaped contents, then the rest of a string that needed no
/// escaping at either level, up to its escaped closing quote: its text.
fn escaped_simple_string_after<'a, const N: usize>(
    contents: &'a [u8],
    at: &mut usize,
    key: &[u8; N],
) -> Option<&'a str> {
    if contents.get(*at..*at + N) != Some(key.as_slice()) {
        return None;
    }
    let start = *at + N;
    let end = first_escape(contents, start);
    if contents.get(end..end + 2) != Some(b"\\\"".as_slice()) {
        return None;
    }
    let text = std::str::from_utf8(&contents[start..end]).ok()?;
    *at = end + 2;
    Some(text)
}

/// `key` at `*at`, then a JSON string with no escapes in it: its contents.
fn simple_string_after<'a, const N: usize>(
    message: &'a str,
    at: &mut usize,
    key: &[u8; N],
) -> Option<&'a str> {
    let bytes = message.as_bytes();
    let start = *at + key.len() + 1;
    if bytes.get(*at..*at + N) != Some(key.as_slice()) || bytes.get(start - 1) != Some(&b'"') {
        return None;
    }
    let end = first_escape(bytes, start);
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    *at = end + 1;
    // Both ends are ASCII quotes, so these are character boundaries.
    message.get(start..end)
}

/// `key` at `*at`, then one JSON value.
fn value_after<const N: usize>(message: &str, at: &mut usize, key: &[u8; N]) -> Option<Value> {
    if message.as_bytes().get(*at..*at + N) != Some(key.as_slice()) {
        return None;
    }
    let rest = message.get(*at + key.len()..)?;
    if rest.starts_with("{}") {
        // The usual context: nothing to hand to serde.
        *at += key.len() + 2;
        return Some(Value::Object(serde_json::Map::new()));
    }
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    let value = values.next()?.ok()?;
    // serde's recursion limit counts the message object too: leave values nested
    // anywhere near it to serde, so that both paths accept exactly the same.
    if nesting(&value, 0) >= 100 {
        return None;
    }
    *at += key.len() + values.byte_offset();
    Some(value)
}

/// How deeply arrays and objects nest in `value` (stops counting at 100).
fn nesting(value: &Value, depth: usize) -> usize {
    if depth >= 100 {
        return depth;
    }
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| nesting(v, depth + 1))
            .max()
            .unwrap_or(depth + 1),
        Value::Object(map) => map
            .values()
            .map(|v| nesting(v, depth + 1))
            .max()
            .unwrap_or(depth + 1),
        _ => depth,
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

    /// The encoder before it wrote the inner message straight into the outer string.
    fn reference_encode(n: &OutgoingNotification) -> Vec<u8> {
        let message = WireMessage {
            message_id: &n.message_id,
            publisher_id: &n.publisher_id,
            event_type: &n.event_type,
            priority: n.priority.as_wire(),
            payload: &n.payload,
            timestamp: &n.timestamp,
            _context: &n.context,
        };
        let inner = to_python_json(&message).unwrap();
        let mut out = b"{\"oslo.version\": \"2.0\", \"oslo.message\": ".to_vec();
        serde_json::to_writer(&mut out, inner.as_str()).unwrap();
        out.push(b'}');
        out
    }

    fn same_outcome(body: &[u8]) {
        // The in-place reading agrees with unescaping everything first.
        if let Some(direct) = canonical_contents(body).and_then(canonical_direct) {
            let message = canonical_message(body).expect("direct implies canonical");
            let whole = canonical_inner(&message).expect("direct implies canonical_inner");
            match (&direct, &whole) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("direct {direct:?} vs whole {whole:?}"),
            }
        }
        let fast = decode(body);
        let general = decode_general(body);
        match (&fast, &general) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => {
                assert_eq!(a.kind(), b.kind());
                assert_eq!(a.to_string(), b.to_string());
            }
            _ => panic!(
                "fast {fast:?} vs general {general:?} for {}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    const AWKWARD: &[&str] = &[
        "",
        "plain",
        "quote\" and back\\slash",
        "\\\\\"\"",
        "ctl \u{0}\u{1}\u{7}\u{8}\u{b}\u{c}\u{1f}\u{7f} \n\r\t end",
        "é ü 日本 🎉",
        "/ slash \\/ \\u00e9",
        "exactly8",
        "sixteen bytes!!!",
        "0123456\"",
    ];

    #[test]
    fn encodes_like_the_two_step_reference() {
        for (i, text) in AWKWARD.iter().enumerate() {
            let mut n = sample();
            n.message_id = (*text).into();
            n.publisher_id = format!("{text}{i}");
            n.event_type = text.repeat(i);
            n.timestamp = text.chars().rev().collect();
            n.payload =
                payload_to_raw(&serde_json::json!({"s": text, "n": [i, 1.5, null]})).unwrap();
            if i % 2 == 0 {
                n.context.insert((*text).into(), Value::from(*text));
                n.context
                    .insert("nested".into(), serde_json::json!({"k": [text]}));
            }
            let encoded = encode(&n).unwrap();
            assert_eq!(
                String::from_utf8(encoded.clone()).unwrap(),
                String::from_utf8(reference_encode(&n)).unwrap()
            );
            same_outcome(&encoded);
            let back = decode(&encoded).unwrap();
            assert_eq!(back.metadata.message_id, n.message_id);
            assert_eq!(back.payload, n.payload_value());
        }
        // A raw payload with whitespace (tabs and newlines) of its own.
        let mut n = sample();
        n.payload = RawValue::from_string("{\n\t\"a\" :\r [1 , 2]\n}".into()).unwrap();
        assert_eq!(encode(&n).unwrap(), reference_encode(&n));
        same_outcome(&encode(&n).unwrap());
    }

    #[test]
    fn fast_decode_agrees_with_the_general_path() {
        let good = encode(&sample()).unwrap();
        let text = String::from_utf8(good.clone()).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![good.clone()];
        // Every truncation and a few corruptions of a good record.
        for cut in 0..good.len() {
            cases.push(good[..cut].to_vec());
            let mut bad = good.clone();
            bad[cut] = b'"';
            cases.push(bad.clone());
            bad[cut] = b'\\';
            cases.push(bad.clone());
            bad[cut] = b'\n';
            cases.push(bad.clone());
            bad[cut] = 0xff;
            cases.push(bad);
        }
        for extra in [
            text.replace("\\\"payload\\\"", "\\u0022payload\\\""),
            text.replace(", \\\"_context\\\": {}", ", \\\"_context\\\": {}, \\\"x\\\": \\\"\\\\u00e9\\t\\\""),
            text.replace("\"oslo.message\": \"{", "\"oslo.message\": \"{\\\"message_id\\\": 1, "),
            format!("{text} "),
            format!("{text}}}"),
            text.replace("}\"}", "}\\\"}"),
            text.replace("}\"}", "} \"}"),
            text.replace("}\"}", "}\\\\\"}"),
            text.replace("\\\"timestamp\\\"", "\\\"\\/timestamp\\\""),
            r#"{"oslo.version": "2.0", "oslo.message": ""}"#.to_owned(),
            r#"{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"e\", \"priority\": \"info\", \"payload\": \"\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}"}"#.to_owned(),
            r#"{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"e\", \"priority\": \"info\", \"payload\": 1, \"payload\": 2}"}"#.to_owned(),
            r#"{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"e\", \"priority\": \"info\", \"payload\": 1, \"_context\": []}"}"#.to_owned(),
            r#"{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"e\", \"priority\": \"info\", \"payload\": 1, \"zz\": \"\u00ff\"}"}"#.to_owned(),
        ] {
            cases.push(extra.into_bytes());
        }
        for depth in [98, 99, 100, 125, 126, 127, 128] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let mut n = sample();
            n.payload = RawValue::from_string(deep.clone())
                .unwrap_or_else(|_| RawValue::from_string("1".into()).unwrap());
            cases.push(encode(&n).unwrap());
            n.payload = RawValue::from_string("1".into()).unwrap();
            n.context = Context::new();
            let text = String::from_utf8(encode(&n).unwrap()).unwrap();
            let nested = text
                .replace(
                    r#"\"_context\": {}"#,
                    &format!(r#"\"_context\": {{\"d\": {deep}}}"#),
                )
                .into_bytes();
            // The message object, the context and `depth` arrays: serde allows 127.
            assert_eq!(decode_general(&nested).is_ok(), depth + 2 <= 127, "{depth}");
            cases.push(nested);
        }
        let mut invalid_utf8 = good.clone();
        let at = invalid_utf8.len() - 6;
        invalid_utf8.splice(at..at, [0xc3, b'(']);
        cases.push(invalid_utf8);
        for case in &cases {
            same_outcome(case);
        }
        assert!(canonical_message(&good).is_some());
        assert!(matches!(
            canonical_contents(&good).and_then(canonical_direct),
            Some(Ok(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn encode_and_fast_decode_match_the_references(
            id in "\\PC*",
            event in "[\\x00-\\x7f]{0,40}",
            text in proptest::collection::vec(proptest::prelude::any::<char>(), 0..80),
            mangle in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..3),
        ) {
            let text: String = text.into_iter().collect();
            let mut n = sample();
            n.message_id = id;
            n.event_type = event;
            n.payload = payload_to_raw(&serde_json::json!({"t": text, "e": n.event_type})).unwrap();
            n.context.insert("k".into(), Value::from(text.clone()));
            let encoded = encode(&n).unwrap();
            proptest::prop_assert_eq!(&encoded, &reference_encode(&n));
            let back = decode(&encoded).unwrap();
            proptest::prop_assert_eq!(&back.metadata.message_id, &n.message_id);
            proptest::prop_assert_eq!(&back.payload, &n.payload_value());
            let mut bad = encoded;
            for (at, byte) in mangle {
                let at = at % bad.len();
                bad[at] = byte;
            }
            same_outcome(&bad);
        }
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
