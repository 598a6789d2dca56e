//! Encoding: the v2 envelope written in one pass, escaped once.

#[cfg(test)]
use serde::Serialize;

use super::to_python_json;
use crate::driver::Dialect;
use crate::error::Result;
#[cfg(test)]
use crate::notification::Context;
use crate::notification::OutgoingNotification;

/// The inner message as serde would write it (the tests' reference for [`encode`]).
#[cfg(test)]
#[derive(Serialize)]
pub(super) struct WireMessage<'a> {
    pub(super) message_id: &'a str,
    pub(super) publisher_id: &'a str,
    pub(super) event_type: &'a str,
    pub(super) priority: &'a str,
    pub(super) payload: &'a crate::Payload,
    pub(super) timestamp: &'a str,
    pub(super) _context: &'a Context,
}

/// Encode a notification as one record value in the v2 envelope, in the
/// [`Dialect::Kafka`] form (the context as one `_context` object):
/// [`encode_as`]`(n, Dialect::Kafka)`.
///
/// The inner message is written straight into the outer string, escaped on the
/// way, without building it first: the result is byte for byte what serializing
/// the message with Python's separators and then writing that text as a JSON
/// string gives (see the tests, which compare against exactly that).
pub fn encode(n: &OutgoingNotification) -> Result<Vec<u8>> {
    encode_with(n, None)
}

/// Encode a notification as one record value in the v2 envelope, in `dialect`'s
/// form. [`Dialect::Kafka`]: what [`encode`] writes. [`Dialect::Amqp`] (oslo's
/// rabbit driver): `message_id`, `publisher_id`, `event_type`, `priority`,
/// `payload`, `timestamp`, then `_unique_id` (a new uuid4 hex on every call, so
/// encode once per message sent), then one `_context_<key>` per top-level key of
/// the context, and no `_context` object.
pub fn encode_as(n: &OutgoingNotification, dialect: Dialect) -> Result<Vec<u8>> {
    match dialect {
        Dialect::Kafka => encode_with(n, None),
        Dialect::Amqp => encode_with(n, Some(&uuid::Uuid::new_v4().simple().to_string())),
    }
}

/// The Kafka form without `unique_id`, the AMQP form with this `_unique_id`.
pub(super) fn encode_with(n: &OutgoingNotification, unique_id: Option<&str>) -> Result<Vec<u8>> {
    let payload = n.payload.json().as_bytes();
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
    match unique_id {
        None => {
            out.extend_from_slice(br#", \"_context\": "#);
            if n.context.is_empty() {
                out.extend_from_slice(b"{}");
            } else {
                escape_str_contents(&mut out, to_python_json(&n.context)?.as_bytes());
            }
        }
        Some(unique_id) => {
            out.extend_from_slice(br#", \"_unique_id\": "#);
            write_string_twice_escaped(&mut out, unique_id)?;
            for (key, value) in &n.context {
                out.extend_from_slice(b", ");
                write_string_twice_escaped(&mut out, &format!("_context_{key}"))?;
                out.extend_from_slice(b": ");
                escape_str_contents(&mut out, to_python_json(value)?.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"}\"}");
    Ok(out)
}

/// The start of every record this crate writes, up to the opening quote of `oslo.message`.
pub(super) const OUTER_PREFIX: &[u8] = br#"{"oslo.version": "2.0", "oslo.message": ""#;

/// Write `s` as a JSON string (quotes included), itself escaped as the contents
/// of another JSON string: what a string field of the inner message becomes.
pub(super) fn write_string_twice_escaped(out: &mut Vec<u8>, s: &str) -> Result<()> {
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
pub(super) const ONES: u64 = u64::MAX / 255;
/// The high bit of every byte.
pub(super) const HIGHS: u64 = ONES << 7;

/// The high bit set in bytes of `chunk` that are `"`, `\\` or below 0x20 (what a
/// JSON string must escape); 0 when there are none. The lowest flagged byte is
/// always a real one; bytes above it may be flagged wrongly.
#[inline(always)]
pub(super) fn escape_mask(chunk: u64) -> u64 {
    let ctrl = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    let q = chunk ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = chunk ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (ctrl | quote | backslash) & HIGHS
}

/// Whether a JSON string must escape `b`.
#[inline(always)]
pub(super) fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The index of the first byte at or after `from` that a JSON string must escape
/// (`bytes.len()` when none).
///
/// A word at a time, the flagged byte found from the mask (its lowest flag is
/// always a real one); the last, partial word is padded with a byte that needs
/// no escape, so no byte is ever looked at one by one.
#[inline]
pub(super) fn first_escape(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for word in words.by_ref() {
        let mask = escape_mask(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        if mask != 0 {
            return at + (mask.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = words.remainder();
    let mut word = [b'a'; 8];
    word[..tail.len()].copy_from_slice(tail);
    let mask = escape_mask(u64::from_le_bytes(word));
    if mask != 0 {
        return at + (mask.trailing_zeros() / 8) as usize;
    }
    bytes.len()
}

/// Append `text` escaped as the contents of a JSON string, exactly as serde_json
/// escapes a `str` (`\\"`, `\\\\`, the short escapes, `\\u00XX` for other control
/// characters; everything else, UTF-8 included, as is).
pub(super) fn escape_str_contents(out: &mut Vec<u8>, text: &[u8]) {
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
