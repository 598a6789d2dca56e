//! The fast path for records laid out exactly as `encode` (and oslo) write them;
//! anything else goes down the serde path, and both agree (tested).

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::encode::{byte_needs_escape, escape_mask, first_escape, OUTER_PREFIX};
use super::record::{into_notification, WireRecord, FLAT_CONTEXT_PREFIX};
use crate::error::Result;
use crate::notification::{Notification, Payload};

/// The unescaped `oslo.message` of a record laid out exactly as [`encode`] (and
/// oslo.messaging) writes it: `OUTER_PREFIX`, a string using only the short
/// escapes, `"}` and nothing after. `None` sends the record down the general path
/// (other spacing or key order, `\\u` escapes, anything malformed), which then
/// gives the same result or the same error as always.
pub(crate) fn canonical_message(body: &[u8]) -> Option<String> {
    unescape_contents(canonical_contents(body)?)
}

/// The still escaped contents of `oslo.message` in a record laid out as [`encode`]
/// writes it.
pub(crate) fn canonical_contents(body: &[u8]) -> Option<&[u8]> {
    body.strip_prefix(OUTER_PREFIX)?.strip_suffix(b"\"}")
}

/// The text a JSON string with these contents stands for, when it uses only the
/// short escapes (`None` otherwise, or when the contents are not valid UTF-8 or
/// have an unescaped quote or control character).
pub(super) fn unescape_contents(contents: &[u8]) -> Option<String> {
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

/// Build the notification from the fields read in place before the payload
/// (`[message_id, publisher_id, event_type, priority]`), the payload and what
/// follows it, with the checks of the serde path.
fn fields_to_notification(
    head: [&str; 4],
    payload: Payload,
    after: AfterPayload,
) -> Result<Notification> {
    let [message_id, publisher_id, event_type, priority] = head;
    into_notification(WireRecord {
        version: None,
        message: None,
        message_id: Some(message_id.to_owned()),
        publisher_id: Some(publisher_id.to_owned()),
        event_type: Some(event_type.to_owned()),
        priority: Some(Cow::Borrowed(priority)),
        payload: Some(payload),
        timestamp: Some(after.timestamp),
        context: after.context,
        flat_context: after.flat_context,
    })
}

/// The notification in an inner message laid out exactly as [`encode`] writes it
/// (keys in that order, Python's separators, strings without escapes), read
/// without serde's per-key machinery. `None` for anything else, and whenever a
/// value does not parse: the caller then parses the message with serde, which
/// gives the same result or the error.
pub(crate) fn read_canonical_message(message: &str) -> Option<Result<Notification>> {
    let mut at = 0;
    let message_id = simple_string_after(message, &mut at, br#"{"message_id": "#)?;
    let publisher_id = simple_string_after(message, &mut at, br#", "publisher_id": "#)?;
    let event_type = simple_string_after(message, &mut at, br#", "event_type": "#)?;
    let priority = simple_string_after(message, &mut at, br#", "priority": "#)?;
    const PAYLOAD: &[u8] = br#", "payload": "#;
    if message.as_bytes().get(at..at + PAYLOAD.len()) != Some(PAYLOAD) {
        return None;
    }
    at += PAYLOAD.len();
    let payload = &message[at..];
    let payload = &payload[..raw_value_end(payload)?];
    let after = read_after_payload(message, at + payload.len())?;
    Some(fields_to_notification(
        [message_id, publisher_id, event_type, priority],
        Payload::trusted(payload.to_owned()),
        after,
    ))
}

/// [`read_canonical_message`] of the still escaped `oslo.message` contents,
/// reading the fields before the payload in place and unescaping only from the
/// payload on (what `read_canonical_message(unescape_contents(contents))` gives,
/// or `None`).
pub(crate) fn read_canonical_escaped(contents: &[u8]) -> Option<Result<Notification>> {
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
    let payload_end = raw_value_end(&rest)?;
    // The payload is the start of `rest`: it keeps that buffer (cut to its length)
    // once the fields after it are read, instead of being copied out.
    let after = read_after_payload(&rest, payload_end)?;
    let mut payload = rest;
    payload.truncate(payload_end);
    Some(fields_to_notification(
        [message_id, publisher_id, event_type, priority],
        Payload::trusted(payload),
        after,
    ))
}

/// What follows the payload (see [`read_after_payload`]).
struct AfterPayload {
    timestamp: String,
    /// The `_context` object, if there is one.
    context: Option<Value>,
    /// The `_context_<key>` keys.
    flat_context: Map<String, Value>,
}

/// The end both canonical readers share: after the payload, which ends at `at` of
/// `message`, the timestamp, the context and the closing brace.
///
/// The context is either form, or both: after the timestamp come, in any order,
/// `_context` (once: a second one is left to serde, which refuses it),
/// `_unique_id` (a string without escapes, ignored) and `_context_<key>` keys
/// (keys without escapes; the last of the same name wins, as on the serde path).
/// Any other key sends the message down the serde path.
fn read_after_payload(message: &str, mut at: usize) -> Option<AfterPayload> {
    let timestamp = simple_string_after(message, &mut at, br#", "timestamp": "#)?;
    let mut context = None;
    let mut flat_context = Map::new();
    while &message.as_bytes()[at..] != b"}" {
        let key = simple_string_after(message, &mut at, b", ")?;
        if key == "_context" {
            if context.is_some() {
                return None;
            }
            context = Some(value_after(message, &mut at, b": ")?);
        } else if key == "_unique_id" {
            simple_string_after(message, &mut at, b": ")?;
        } else {
            let name = key.strip_prefix(FLAT_CONTEXT_PREFIX)?;
            let value = value_after(message, &mut at, b": ")?;
            flat_context.insert(name.to_owned(), value);
        }
    }
    Some(AfterPayload {
        timestamp: timestamp.to_owned(),
        context,
        flat_context,
    })
}

/// `key` at `*at` in escaped contents, then the rest of a string that needed no
/// escaping at either level, up to its escaped closing quote: its text.
pub(super) fn escaped_simple_string_after<'a, const N: usize>(
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
pub(super) fn simple_string_after<'a, const N: usize>(
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

/// Where the one JSON value that `text` starts with ends (checked, not built):
/// `None` when `text` does not start with a JSON value (whitespace first included).
///
/// serde reads a raw value without a nesting limit, on this path as on the serde
/// path, so both accept the same payloads.
pub(super) fn raw_value_end(text: &str) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let value = values.next()?.ok()?;
    // The value starts the text (no whitespace before it): what the caller keeps
    // as the payload is exactly the value's text.
    (value.get().as_ptr() == text.as_ptr()).then_some(values.byte_offset())
}

/// `key` at `*at`, then one JSON value.
pub(super) fn value_after<const N: usize>(
    message: &str,
    at: &mut usize,
    key: &[u8; N],
) -> Option<Value> {
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
pub(super) fn nesting(value: &Value, depth: usize) -> usize {
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
