//! Ceilometer-compatible message signing (`ceilometer.publisher.utils`).
//!
//! # The algorithm
//!
//! A signature is the lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of
//! the shared secret, of the following byte stream:
//!
//! * The message (a JSON object) is flattened into `(name, value)` pairs. Keys
//!   are visited in sorted order (Unicode code point order) at every level. A
//!   value that is an object is not emitted itself: its entries are, with
//!   names `outer:inner` (an empty object therefore contributes nothing).
//! * The pair whose flattened name is exactly `message_signature` is skipped.
//!   Only the exact name is skipped: a nested `x:message_signature`, or the
//!   entries of a top-level `message_signature` *object*, are signed.
//! * For every other pair, the name text and then the value text are fed into
//!   the MAC, with no separator.
//!
//! The value text is what Python's `str()` gives for the object `json.loads`
//! produces, after Ceilometer's `decode_unicode` conversion of lists:
//!
//! | JSON value | text |
//! |---|---|
//! | `true` / `false` / `null` | `True` / `False` / `None` |
//! | integer | decimal digits (`-0` is the integer `0`) |
//! | number with a fraction or exponent | Python `repr(float)`: `1.0`, `0.1`, `1e+16`, `1.5e-07`, `-0.0`, `inf` |
//! | string | the string itself |
//! | array | a Python list repr in which strings became UTF-8 `bytes`: `[b'a', 1, None]`; objects inside render as `{b'k': b'v'}` with sorted keys; arrays nest |
//!
//! `bytes` render as Python's `repr(bytes)`: `b'...'`, or `b"..."` when the
//! text contains `'` but no `"`; a backslash, the chosen quote, tab, newline
//! and carriage return are escaped (`\\`, `\'`, `\t`, `\n`, `\r`), and every
//! other byte below `0x20` or from `0x7f` up (so every byte of a non-ASCII
//! character) is written `\xhh`.
//!
//! Two weaknesses of Ceilometer's scheme are kept for compatibility: the
//! stream has no separators, so `{"a": "bc"}` and `{"ab": "c"}` sign alike,
//! and only the text of a value is signed, so `null` and `"None"` (or `true`
//! and `"True"`) sign alike.
//!
//! # Two entry points: parsed values and raw JSON text
//!
//! [`compute_signature`] works on a parsed [`serde_json::Map`]. This crate does
//! not enable serde_json's `arbitrary_precision` feature, so a parsed value has
//! lost some distinctions that Python keeps, and for such messages the result
//! differs from Ceilometer's:
//!
//! * an integer outside the `i64`/`u64` range is parsed by serde_json as an
//!   `f64` and rendered as a float (`1e+20`), where Python keeps an exact
//!   integer (`100000000000000000000`);
//! * the JSON integer `-0` is parsed by serde_json as the float `-0.0`, where
//!   Python reads the integer `0`;
//! * a number too large for `f64` (`1e400`) is rejected by serde_json, where
//!   Python reads `inf`.
//!
//! [`compute_signature_json`] and [`verify_signature_json`] read the raw JSON
//! text instead and keep every number's text, so they match Ceilometer for all
//! of these as well. Use them when the received text is at hand. The JSON
//! extensions Python accepts but JSON forbids (`NaN`, `Infinity`) are rejected
//! by both entry points, and Python's limit of 4300 digits for converting a
//! string to an integer is not reproduced (Ceilometer fails on such a message).
//!
//! Floats are exact on both entry points: this crate turns on serde_json's
//! `float_roundtrip` feature (its default float parser can be one ulp off,
//! e.g. for `0.9999999999999999`, where Python's `float()` is exact), and the
//! repr is Python's shortest round-trip text, including its round-half-even
//! choice between two equally near shortest candidates.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

mod float_repr;

/// The message key that holds the signature; it is left out of the signed data.
pub const SIGNATURE_KEY: &str = "message_signature";

/// An error from the raw-JSON entry points [`compute_signature_json`] and
/// [`verify_signature_json`].
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The text is not valid JSON.
    #[error("message is not valid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// The text is valid JSON, but its top-level value is not an object.
    #[error("message is not a JSON object")]
    NotAnObject,
}

/// Computes the Ceilometer signature of `message` with `secret`.
///
/// Returns the lowercase hex HMAC-SHA256, or an empty string when `secret` is
/// empty (Ceilometer's "signing disabled"). Any `message_signature` entry is
/// ignored. See the [module documentation](self) for the exact rendering and
/// for the numbers where a parsed [`Value`] cannot match Ceilometer (use
/// [`compute_signature_json`] for those).
#[must_use]
pub fn compute_signature(message: &Map<String, Value>, secret: &str) -> String {
    signature_of(sorted_entries(message), secret)
}

/// Checks the `message_signature` of `message` against the one computed with
/// `secret`, in constant time.
///
/// Always `true` when `secret` is empty (signing disabled). Otherwise `false`
/// when the signature is missing, is not a string, or differs.
#[must_use]
pub fn verify_signature(message: &Map<String, Value>, secret: &str) -> bool {
    if secret.is_empty() {
        return true;
    }
    let claimed = match message.get(SIGNATURE_KEY) {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return false,
        None => "",
    };
    constant_time_eq(&compute_signature(message, secret), claimed)
}

/// Signs `message`: sets its `message_signature` to the signature of the message
/// as it is then sent, replacing any previous one, so that it verifies.
///
/// That is [`compute_signature`]`(message, secret)`, except when the previous
/// `message_signature` is an object: its entries are signed (as Ceilometer does),
/// so they are dropped before signing. (Ceilometer's publisher signs them and then
/// replaces them, and its message does not verify.)
///
/// As in Ceilometer's publishers, an empty `secret` stores an empty signature.
pub fn sign(message: &mut Map<String, Value>, secret: &str) {
    if let Some(previous) = message.get_mut(SIGNATURE_KEY) {
        // A string is skipped by the signature, whatever it says; the key keeps
        // its place.
        *previous = Value::String(String::new());
    }
    let signature = compute_signature(message, secret);
    message.insert(SIGNATURE_KEY.to_owned(), Value::String(signature));
}

/// Computes the Ceilometer signature of the JSON object in `json`, keeping the
/// exact text of every number (see the [module documentation](self)).
///
/// Returns an empty string when `secret` is empty (the text must still be a
/// JSON object).
///
/// # Errors
///
/// [`SigningError::InvalidJson`] when `json` is not valid JSON, and
/// [`SigningError::NotAnObject`] when it is not a JSON object.
pub fn compute_signature_json(json: &str, secret: &str) -> Result<String, SigningError> {
    let message = parse_object(json)?;
    Ok(signature_of(
        message.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        secret,
    ))
}

/// Checks the `message_signature` of the JSON object in `json` against the one
/// computed with `secret`, in constant time, keeping the exact text of every
/// number (see the [module documentation](self)).
///
/// `Ok(true)` when `secret` is empty (the text must still be a JSON object).
/// Otherwise `Ok(false)` when the signature is missing, is not a string, or
/// differs.
///
/// # Errors
///
/// [`SigningError::InvalidJson`] when `json` is not valid JSON, and
/// [`SigningError::NotAnObject`] when it is not a JSON object.
pub fn verify_signature_json(json: &str, secret: &str) -> Result<bool, SigningError> {
    let message = parse_object(json)?;
    if secret.is_empty() {
        return Ok(true);
    }
    let claimed = match message.get(SIGNATURE_KEY) {
        Some(Node::Str(s)) => s.as_str(),
        Some(_) => return Ok(false),
        None => "",
    };
    let computed = signature_of(
        message.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        secret,
    );
    Ok(constant_time_eq(&computed, claimed))
}

fn constant_time_eq(computed: &str, claimed: &str) -> bool {
    bool::from(computed.as_bytes().ct_eq(claimed.as_bytes()))
}

// ---------------------------------------------------------------------------
// A view of a JSON value as the Python object `json.loads` would produce.

/// An integer, either native or as canonical decimal text.
enum Int<'a> {
    I64(i64),
    U64(u64),
    Text(&'a str),
}

/// What a value is, as Python sees it.
enum Py<'a, T> {
    None,
    Bool(bool),
    Int(Int<'a>),
    Float(f64),
    Str(&'a str),
    List(&'a [T]),
    /// Entries sorted by key.
    Dict(Vec<(&'a str, &'a T)>),
}

trait PyObject: Sized {
    fn py(&self) -> Py<'_, Self>;
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut entries: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // Byte order of UTF-8 is code point order, which is how Python sorts str.
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

impl PyObject for Value {
    fn py(&self) -> Py<'_, Self> {
        match self {
            Value::Null => Py::None,
            Value::Bool(b) => Py::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Py::Int(Int::I64(i))
                } else if let Some(u) = n.as_u64() {
                    Py::Int(Int::U64(u))
                } else {
                    // Without `arbitrary_precision` every other number is an f64.
                    Py::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Py::Str(s),
            Value::Array(items) => Py::List(items),
            Value::Object(map) => Py::Dict(sorted_entries(map)),
        }
    }
}

/// A JSON value parsed from text with every integer's text kept.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    /// Canonical decimal text of an integer of any size.
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    /// Duplicate keys: the last one wins, as in Python's `json.loads`.
    Dict(BTreeMap<String, Node>),
}

impl PyObject for Node {
    fn py(&self) -> Py<'_, Self> {
        match self {
            Node::Null => Py::None,
            Node::Bool(b) => Py::Bool(*b),
            Node::Int(text) => Py::Int(Int::Text(text)),
            Node::Float(f) => Py::Float(*f),
            Node::Str(s) => Py::Str(s),
            Node::List(items) => Py::List(items),
            Node::Dict(map) => Py::Dict(map.iter().map(|(k, v)| (k.as_str(), v)).collect()),
        }
    }
}

fn parse_object(json: &str) -> Result<BTreeMap<String, Node>, SigningError> {
    let raw: Box<RawValue> = serde_json::from_str(json)?;
    match parse_node(&raw, 1)? {
        Node::Dict(map) => Ok(map),
        _ => Err(SigningError::NotAnObject),
    }
}

/// How deeply arrays and objects may nest in a message, the message itself
/// included: serde_json's limit for a parsed value (128 levels are refused), so
/// that both entry points accept the same nesting.
const MAX_NESTING: usize = 127;

/// Converts validated raw JSON into a [`Node`], `depth` being the nesting of
/// `raw` (the message is 1). Reading a raw value has no recursion limit in
/// serde_json, so the limit is enforced here: deeper input would overflow the
/// stack (a process abort), not fail.
fn parse_node(raw: &RawValue, depth: usize) -> Result<Node, serde_json::Error> {
    let text = raw
        .get()
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let first = text.as_bytes().first();
    if matches!(first, Some(b'{' | b'[')) && depth > MAX_NESTING {
        return Err(serde::de::Error::custom(format!(
            "recursion limit exceeded: more than {MAX_NESTING} levels of arrays and objects"
        )));
    }
    Ok(match first {
        Some(b'{') => {
            let entries: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)?;
            let mut map = BTreeMap::new();
            for (key, value) in entries {
                map.insert(key, parse_node(&value, depth + 1)?);
            }
            Node::Dict(map)
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text)?;
            Node::List(
                items
                    .iter()
                    .map(|item| parse_node(item, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(b'"') => Node::Str(serde_json::from_str(text)?),
        Some(b't') => Node::Bool(true),
        Some(b'f') => Node::Bool(false),
        Some(b'n') => Node::Null,
        _ => number_node(text),
    })
}

/// Reads a JSON number (already validated by serde_json) as Python does: a
/// fraction or exponent makes a float (out-of-range magnitudes become `inf` or
/// `0.0`, as `float()` does), anything else an exact integer.
fn number_node(text: &str) -> Node {
    if text.contains(['.', 'e', 'E']) {
        // Validated JSON number syntax is always accepted by Rust's parser.
        Node::Float(text.parse().unwrap_or(f64::NAN))
    } else if text == "-0" {
        Node::Int("0".to_owned())
    } else {
        Node::Int(text.to_owned())
    }
}

// ---------------------------------------------------------------------------
// Feeding the MAC.

/// Lets the renderers write straight into the MAC.
struct MacSink<'a>(&'a mut Hmac<Sha256>);

impl fmt::Write for MacSink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

fn signature_of<T: PyObject>(entries: Vec<(&str, &T)>, secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    let mut name = String::new();
    // Writing into a MAC never fails, so neither does this.
    let _ = feed_pairs(&mut MacSink(&mut mac), &mut name, entries, false);
    hex::encode(mac.finalize().into_bytes())
}

/// Feeds the pairs of `recursive_keypairs` for one (sorted) mapping. `name`
/// holds the flattened name of the enclosing mapping when `nested`.
fn feed_pairs<T: PyObject, W: fmt::Write>(
    out: &mut W,
    name: &mut String,
    entries: Vec<(&str, &T)>,
    nested: bool,
) -> fmt::Result {
    for (key, value) in entries {
        let outer_len = name.len();
        if nested {
            name.push(':');
        }
        name.push_str(key);
        match value.py() {
            Py::Dict(inner) => feed_pairs(out, name, inner, true)?,
            py if name.as_str() != SIGNATURE_KEY => {
                out.write_str(name)?;
                write_value_text(out, py)?;
            }
            _ => {}
        }
        name.truncate(outer_len);
    }
    Ok(())
}

/// Writes `str(value)` for a non-mapping value of a pair.
fn write_value_text<T: PyObject, W: fmt::Write>(out: &mut W, py: Py<'_, T>) -> fmt::Result {
    match py {
        // Top-level strings stay `str`: their text is the string itself.
        Py::Str(s) => out.write_str(s),
        // Lists went through `decode_unicode`; `str(list)` is its repr.
        other => write_decoded_repr(out, other),
    }
}

/// Writes `repr(decode_unicode(value))`: strings (including mapping keys)
/// become UTF-8 `bytes`, mappings get sorted keys, lists recurse.
fn write_decoded_repr<T: PyObject, W: fmt::Write>(out: &mut W, py: Py<'_, T>) -> fmt::Result {
    match py {
        Py::None => out.write_str("None"),
        Py::Bool(true) => out.write_str("True"),
        Py::Bool(false) => out.write_str("False"),
        Py::Int(Int::I64(i)) => write!(out, "{i}"),
        Py::Int(Int::U64(u)) => write!(out, "{u}"),
        Py::Int(Int::Text(t)) => out.write_str(t),
        Py::Float(f) => float_repr::write_float_repr(out, f),
        Py::Str(s) => write_bytes_repr(out, s.as_bytes()),
        Py::List(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_decoded_repr(out, item.py())?;
            }
            out.write_char(']')
        }
        Py::Dict(entries) => {
            out.write_char('{')?;
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_bytes_repr(out, key.as_bytes())?;
                out.write_str(": ")?;
                write_decoded_repr(out, value.py())?;
            }
            out.write_char('}')
        }
    }
}

/// Writes Python's `repr(bytes)`.
fn write_bytes_repr<W: fmt::Write>(out: &mut W, bytes: &[u8]) -> fmt::Result {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.write_char('b')?;
    out.write_char(char::from(quote))?;
    for &byte in bytes {
        match byte {
            b'\\' => out.write_str("\\\\")?,
            b'\t' => out.write_str("\\t")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            _ if byte == quote => {
                out.write_char('\\')?;
                out.write_char(char::from(byte))?;
            }
            0x20..=0x7e => out.write_char(char::from(byte))?,
            _ => write!(out, "\\x{byte:02x}")?,
        }
    }
    out.write_char(char::from(quote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value_text(v: &Value) -> String {
        let mut s = String::new();
        write_value_text(&mut s, v.py()).unwrap();
        s
    }

    #[test]
    fn value_text_renders_like_python_str() {
        assert_eq!(value_text(&json!(true)), "True");
        assert_eq!(value_text(&json!(false)), "False");
        assert_eq!(value_text(&json!(null)), "None");
        assert_eq!(value_text(&json!(-42)), "-42");
        assert_eq!(value_text(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(value_text(&json!(2.0)), "2.0");
        assert_eq!(value_text(&json!("it's")), "it's");
        assert_eq!(value_text(&json!(["a", "b"])), "[b'a', b'b']");
        assert_eq!(value_text(&json!([])), "[]");
        assert_eq!(
            value_text(&json!([{"z": "1", "a": [1, null, true]}, {}])),
            "[{b'a': [1, None, True], b'z': b'1'}, {}]"
        );
        assert_eq!(value_text(&json!(["héllo"])), "[b'h\\xc3\\xa9llo']");
        assert_eq!(value_text(&json!(["it's"])), "[b\"it's\"]");
        assert_eq!(value_text(&json!(["a\"'b"])), "[b'a\"\\'b']");
        assert_eq!(
            value_text(&json!(["\\\t\n\r\u{0}\u{7f}"])),
            "[b'\\\\\\t\\n\\r\\x00\\x7f']"
        );
        assert_eq!(value_text(&json!([[1.5e-7, [0.1]]])), "[[1.5e-07, [0.1]]]");
    }

    #[test]
    fn raw_numbers_keep_python_semantics() {
        assert!(matches!(number_node("-0"), Node::Int(ref t) if t == "0"));
        assert!(matches!(number_node("123456789012345678901234567890"),
            Node::Int(ref t) if t == "123456789012345678901234567890"));
        assert!(matches!(number_node("1e400"), Node::Float(f) if f == f64::INFINITY));
        assert!(matches!(number_node("1E2"), Node::Float(f) if f == 100.0));
    }

    #[test]
    fn serde_json_reads_minus_zero_as_float() {
        // Documented limitation of the parsed-value entry point.
        let v: Value = serde_json::from_str("-0").unwrap();
        assert!(v.is_f64());
    }

    #[test]
    fn raw_parse_errors() {
        assert!(matches!(
            compute_signature_json("[1]", "k"),
            Err(SigningError::NotAnObject)
        ));
        assert!(matches!(
            compute_signature_json("{", "k"),
            Err(SigningError::InvalidJson(_))
        ));
        assert!(matches!(
            verify_signature_json("\"x\"", ""),
            Err(SigningError::NotAnObject)
        ));
    }

    /// Regression (fuzz target telemetry_signing): a message whose previous
    /// `message_signature` was an object got a signature that covered the object's
    /// entries, which `sign` then replaced: the signed message did not verify.
    #[test]
    fn sign_replaces_a_signature_object_and_the_result_verifies() {
        let mut m = match json!({"message_signature": {"x": "1"}, "b": 2}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        sign(&mut m, "k");
        assert!(verify_signature(&m, "k"));
        let mut plain = match json!({"b": 2}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        assert_eq!(
            m[SIGNATURE_KEY],
            Value::String(compute_signature(&plain, "k"))
        );
        sign(&mut plain, "k");
        assert_eq!(m, plain);
        let text = serde_json::to_string(&m).unwrap();
        assert!(verify_signature_json(&text, "k").unwrap());
    }

    /// Regression: reading raw JSON recursed once per level of nesting with no
    /// limit (serde_json has none for a raw value), so a deeply nested message
    /// overflowed the stack and aborted the process (1,000 levels on a 2 MiB
    /// thread). It is now refused past serde_json's own limit, exactly where the
    /// parsed-value path refuses it.
    #[test]
    fn deep_nesting_is_refused_like_serde_not_a_stack_overflow() {
        let nested = |depth: usize| {
            // The message object is one level; arrays make up the rest.
            format!(
                "{{\"a\": {}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        for depth in (120..136).chain([1_000, 100_000]) {
            let text = nested(depth);
            let serde_ok = serde_json::from_str::<Map<String, Value>>(&text).is_ok();
            let worker = std::thread::Builder::new().stack_size(2 << 20);
            let (computed, verified) = worker
                .spawn(move || {
                    (
                        compute_signature_json(&text, "k").is_ok(),
                        verify_signature_json(&text, "k").is_ok(),
                    )
                })
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(computed, serde_ok, "{depth}");
            assert_eq!(verified, serde_ok, "{depth}");
            assert_eq!(serde_ok, depth <= MAX_NESTING, "{depth}");
        }
        let e = compute_signature_json(&nested(MAX_NESTING + 1), "k").unwrap_err();
        assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
    }
}
