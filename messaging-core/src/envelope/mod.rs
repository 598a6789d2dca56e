//! The wire format: oslo.messaging's v2 envelope.
//!
//! A record's value is a JSON object with exactly two keys, `oslo.version` (`"2.0"`)
//! and `oslo.message`, a JSON *string* holding the message object. Encoding writes
//! Python's separators (`", "`, `": "`) so that records are byte-for-byte what
//! oslo.messaging writes (except that non-ASCII characters are written as UTF-8,
//! which every JSON reader accepts). Decoding accepts any spacing, the v2 envelope,
//! and a bare (v1) message object; another major version or a version newer than
//! 2.0 is a [`crate::ErrorKind::Decode`] error.
//!
//! The message object comes in two forms, one per [`crate::driver::Dialect`]:
//! oslo's Kafka driver writes the context as one `_context` object ([`encode`]);
//! its rabbit driver writes a `_unique_id` and one flat `_context_<key>` key per
//! context key instead ([`encode_as`] with [`crate::driver::Dialect::Amqp`]).
//! [`decode`] reads both on every transport: the flat keys become the context,
//! merged under a `_context` object's keys when a record has both (no oslo driver
//! writes both; oslo's rabbit reader would ignore the object, its Kafka reader the
//! flat keys). `_unique_id` is accepted and not kept.

use std::io::Write;

use serde::Serialize;
use serde_json::ser::Formatter;

use crate::error::{Error, Result};

mod decode;
mod encode;
mod fast_decode;
mod record;
#[cfg(test)]
mod tests;

pub(crate) use decode::check_version;
pub use decode::decode;
pub(crate) use decode::decode_general;
pub use encode::{encode, encode_as};
pub(crate) use fast_decode::{
    canonical_contents, canonical_message, read_canonical_escaped, read_canonical_message,
};

/// The envelope version this crate writes.
pub const ENVELOPE_VERSION: &str = "2.0";

/// A serde_json formatter that writes Python's `json.dumps` separators.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

/// Python's item separator, written before every item but the first.
fn item_separator<W: ?Sized + Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
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

/// A payload's JSON text with Python's separators, as serde_json writes it (so it is
/// one valid JSON value: [`crate::Payload::from_serialize`] keeps it unchecked).
pub(crate) fn payload_text<T: Serialize + ?Sized>(payload: &T) -> Result<String> {
    thread_local! {
        // Serializing into a growing Vec reallocates on the way for every payload;
        // this buffer keeps its size, and the text is then copied out exactly once.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    const KEEP_AT_MOST: usize = 64 * 1024;
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
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
    })
}
