//! The RPC wire format: oslo's (AMQP) request and reply objects inside the same v2
//! envelope as notifications, on every transport (oslo's RPC only exists on its AMQP
//! drivers, so there is no other form to follow; this does not depend on the
//! driver's [`crate::driver::Dialect`]).
//!
//! Request: `{"method": "add", "args": {...}, "namespace": "calc", "version": "1.2",
//! "_msg_id": "...", "_reply_q": "...", "_timeout": null, "_unique_id": "...",
//! "_context_user": "u", "_context_request_id": "req-1"}`: `namespace` and `version`
//! only when set; `_msg_id`, `_reply_q` and `_timeout` only on a call (`_timeout` is
//! oslo's call-monitor timeout, which the core does not use: always `null`);
//! `_unique_id` a new uuid4 hex for every message; one `_context_<key>` for each
//! top-level key of the context.
//!
//! Reply: `{"result": ..., "failure": null, "ending": true, "_msg_id": "...",
//! "_unique_id": "..."}`; on failure `result` is `null` and `failure` a JSON *string*
//! (oslo's Python client calls `json.loads` on it) holding `{"class": ...,
//! "module": ..., "message": ..., "tb": [], "args": [...], "kwargs": {}}`.
//!
//! Decoding also accepts a failure as a JSON object, a bare (v1) message without
//! the envelope, a reply without `_unique_id`, and a request whose context is a
//! `_context` object (what this crate wrote before), flat `_context_<key>` keys, or
//! both (the object's keys win).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::envelope::{check_version, to_python_json};
use crate::error::{Error, Result};
use crate::notification::Context;

/// The version a request without one asks for (oslo's default).
pub(crate) const DEFAULT_VERSION: &str = "1.0";

/// Wrap an inner message object in the v2 envelope, with Python's separators.
fn wrap<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    let inner = to_python_json(message)?;
    let mut out = Vec::with_capacity(inner.len() + inner.len() / 4 + 48);
    out.extend_from_slice(b"{\"oslo.version\": \"2.0\", \"oslo.message\": ");
    serde_json::to_writer(&mut out, inner.as_str())?;
    out.push(b'}');
    Ok(out)
}

/// The message object of a v2 envelope, or a bare (v1) message object.
fn unwrap(body: &[u8]) -> Result<Map<String, Value>> {
    let mut outer: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| Error::decode("record is not a JSON object").with_source(e))?;
    match (outer.remove("oslo.version"), outer.remove("oslo.message")) {
        (Some(Value::String(version)), Some(Value::String(message))) => {
            check_version(&version)?;
            serde_json::from_str(&message)
                .map_err(|e| Error::decode("oslo.message is not a JSON object").with_source(e))
        }
        (None, None) => Ok(outer),
        _ => Err(Error::decode("malformed oslo envelope")),
    }
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Where the reply to a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    pub(crate) msg_id: String,
    pub(crate) reply_queue: String,
}

/// A request as a client sends it.
#[derive(Debug)]
pub(crate) struct OutgoingRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) args: &'a Map<String, Value>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) reply: Option<(&'a str, &'a str)>,
    pub(crate) unique_id: &'a str,
    pub(crate) context: &'a Context,
}

/// The inner request object, in oslo's key order, the context flattened.
struct WireRequest<'r, 'a>(&'r OutgoingRequest<'a>);

impl Serialize for WireRequest<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("method", r.method)?;
        m.serialize_entry("args", r.args)?;
        if let Some(namespace) = r.namespace {
            m.serialize_entry("namespace", namespace)?;
        }
        if let Some(version) = r.version {
            m.serialize_entry("version", version)?;
        }
        if let Some((msg_id, reply_queue)) = r.reply {
            m.serialize_entry("_msg_id", msg_id)?;
            m.serialize_entry("_reply_q", reply_queue)?;
            // No call monitor: oslo's server then sends no heartbeats.
            m.serialize_entry("_timeout", &Value::Null)?;
        }
        m.serialize_entry("_unique_id", r.unique_id)?;
        for (key, value) in r.context {
            m.serialize_entry(&format!("{FLAT_CONTEXT_PREFIX}{key}"), value)?;
        }
        m.end()
    }
}

/// The prefix of a flattened context key.
const FLAT_CONTEXT_PREFIX: &str = "_context_";

/// Encode a request in the v2 envelope.
pub(crate) fn encode_request(r: &OutgoingRequest<'_>) -> Result<Vec<u8>> {
    wrap(&WireRequest(r))
}

/// A request as a server receives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncomingRequest {
    pub(crate) method: String,
    pub(crate) args: Map<String, Value>,
    pub(crate) namespace: Option<String>,
    pub(crate) version: String,
    pub(crate) context: Context,
    /// `Some` for a call, `None` for a cast.
    pub(crate) reply: Option<ReplyTo>,
    /// The sender's `_unique_id` (a string), for dropping duplicates.
    pub(crate) unique_id: Option<String>,
    /// The caller's call monitor (`_timeout`, seconds): it wants a heartbeat while
    /// the method runs. `None` when null, absent, not a positive number, or a cast.
    pub(crate) call_monitor: Option<f64>,
}

/// A request that could not be decoded, and where to say so if it was a call.
#[derive(Debug)]
pub(crate) struct BadRequest {
    pub(crate) error: Error,
    pub(crate) reply: Option<ReplyTo>,
}

/// Decode a request (v2 envelope or bare v1 message).
pub(crate) fn decode_request(body: &[u8]) -> Result<IncomingRequest, Box<BadRequest>> {
    let mut m = unwrap(body).map_err(|error| Box::new(BadRequest { error, reply: None }))?;
    let reply = match (
        take_string(&mut m, "_msg_id"),
        take_string(&mut m, "_reply_q"),
    ) {
        (Some(msg_id), Some(reply_queue)) => Some(ReplyTo {
            msg_id,
            reply_queue,
        }),
        _ => None,
    };
    let bad = |message: &str, reply: Option<ReplyTo>| {
        Box::new(BadRequest {
            error: Error::decode(message.to_owned()),
            reply,
        })
    };
    let Some(method) = take_string(&mut m, "method") else {
        return Err(bad("request has no method", reply));
    };
    let args = match m.remove("args") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(bad("request args are not a JSON object", reply)),
    };
    let mut context = match m.remove("_context") {
        None | Some(Value::Null) => Context::new(),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(bad("request _context is not a JSON object", reply)),
    };
    for (key, value) in m.iter() {
        if let Some(name) = key.strip_prefix(FLAT_CONTEXT_PREFIX) {
            context
                .entry(name.to_owned())
                .or_insert_with(|| value.clone());
        }
    }
    let version = match m.remove("version") {
        None | Some(Value::Null) => DEFAULT_VERSION.to_owned(),
        Some(Value::String(v)) => v,
        Some(other) => other.to_string(),
    };
    Ok(IncomingRequest {
        method,
        args,
        namespace: take_string(&mut m, "namespace"),
        version,
        call_monitor: m
            .get("_timeout")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0 && reply.is_some()),
        context,
        reply,
        unique_id: take_string(&mut m, "_unique_id"),
    })
}

/// A remote failure as it travels in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct WireFailure {
    pub(crate) class: String,
    pub(crate) module: String,
    pub(crate) message: String,
    pub(crate) tb: Vec<String>,
    pub(crate) args: Vec<String>,
    pub(crate) kwargs: Map<String, Value>,
}

impl WireFailure {
    fn from_value(value: Value) -> WireFailure {
        let mut m = match value {
            Value::Object(m) => m,
            // oslo's Python sends the failure as a JSON string.
            Value::String(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                _ => {
                    let mut m = Map::new();
                    m.insert("message".into(), Value::String(text));
                    m
                }
            },
            other => {
                let mut m = Map::new();
                m.insert("message".into(), Value::String(other.to_string()));
                m
            }
        };
        let strings = |v: Option<Value>| match v {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        WireFailure {
            class: take_string(&mut m, "class").unwrap_or_else(|| "RemoteError".to_owned()),
            module: take_string(&mut m, "module").unwrap_or_default(),
            message: take_string(&mut m, "message").unwrap_or_default(),
            tb: strings(m.remove("tb")),
            args: strings(m.remove("args")),
            kwargs: match m.remove("kwargs") {
                Some(Value::Object(k)) => k,
                _ => Map::new(),
            },
        }
    }
}

#[derive(Serialize)]
struct WireReply<'a> {
    result: &'a Value,
    /// The failure as JSON text (oslo's Python client `json.loads` it), or `null`.
    failure: Option<String>,
    ending: bool,
    _msg_id: &'a str,
    _unique_id: &'a str,
}

/// Encode the one reply to a call in the v2 envelope: `result`, `failure` (a JSON
/// string, or `null`), `ending: true`, `_msg_id`, and `_unique_id`.
pub(crate) fn encode_reply(
    msg_id: &str,
    unique_id: &str,
    outcome: &std::result::Result<Value, WireFailure>,
) -> Result<Vec<u8>> {
    let (result, failure) = match outcome {
        Ok(v) => (v, None),
        Err(f) => (&Value::Null, Some(to_python_json(f)?)),
    };
    wrap(&WireReply {
        result,
        failure,
        ending: true,
        _msg_id: msg_id,
        _unique_id: unique_id,
    })
}

/// Encode a heartbeat to a caller's call monitor: `result` and `failure` null,
/// `ending: false` (oslo's caller resets its monitor's timer on it).
pub(crate) fn encode_heartbeat(msg_id: &str, unique_id: &str) -> Result<Vec<u8>> {
    wrap(&WireReply {
        result: &Value::Null,
        failure: None,
        ending: false,
        _msg_id: msg_id,
        _unique_id: unique_id,
    })
}

/// A reply as a client receives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncomingReply {
    pub(crate) msg_id: String,
    /// `None` for a bare end-of-reply marker (older oslo senders split replies) and
    /// for a heartbeat.
    pub(crate) outcome: Option<std::result::Result<Value, WireFailure>>,
}

/// Decode a reply (v2 envelope or bare v1 message).
pub(crate) fn decode_reply(body: &[u8]) -> Result<IncomingReply> {
    let mut m = unwrap(body)?;
    let msg_id =
        take_string(&mut m, "_msg_id").ok_or_else(|| Error::decode("reply has no _msg_id"))?;
    let ending = m.get("ending").and_then(Value::as_bool);
    let outcome = match (m.remove("failure"), m.remove("result")) {
        (Some(f), _) if !f.is_null() => Some(Err(WireFailure::from_value(f))),
        // A heartbeat (`encode_heartbeat`): a null result that does not end the
        // reply. oslo's caller keeps the last non-null result until `ending`.
        (_, Some(Value::Null)) if ending == Some(false) => None,
        (_, Some(result)) => Some(Ok(result)),
        _ => None,
    };
    Ok(IncomingReply { msg_id, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    /// The call request oslo's rabbit driver sends (oslo-rabbit.md, "A complete
    /// call request as seen on the wire"), byte for byte.
    #[test]
    fn request_encodes_exactly_like_oslo() {
        let args = obj(json!({"x": 1}));
        let ctx = obj(json!({"user": "u1", "request_id": "req-1"}));
        let body = encode_request(&OutgoingRequest {
            method: "echo",
            args: &args,
            namespace: None,
            version: None,
            reply: Some((
                "b3522016a5e843019a6129ee6e792599",
                "reply_f7eee2d91b704ceaad439d4f07c93a5f",
            )),
            unique_id: "84dcfc6b374a4872b84d2f6237d91410",
            context: &ctx,
        })
        .unwrap();
        let oslo = r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"x\": 1}, \"_msg_id\": \"b3522016a5e843019a6129ee6e792599\", \"_reply_q\": \"reply_f7eee2d91b704ceaad439d4f07c93a5f\", \"_timeout\": null, \"_unique_id\": \"84dcfc6b374a4872b84d2f6237d91410\", \"_context_user\": \"u1\", \"_context_request_id\": \"req-1\"}"}"#;
        // The `_context_*` keys follow the context's own order (serde_json keeps
        // insertion order in this workspace).
        assert_eq!(String::from_utf8(body.clone()).unwrap(), oslo);
        let back = decode_request(&body).unwrap();
        assert_eq!(back.context, ctx);
        assert_eq!(
            back.unique_id.as_deref(),
            Some("84dcfc6b374a4872b84d2f6237d91410")
        );
        assert_eq!(back, decode_request(oslo.as_bytes()).unwrap());
    }

    #[test]
    fn request_encodes_in_the_oslo_style() {
        let args = obj(json!({"a": 1, "b": 2}));
        let ctx = obj(json!({"user": "u"}));
        let body = encode_request(&OutgoingRequest {
            method: "add",
            args: &args,
            namespace: Some("calc"),
            version: Some("1.2"),
            reply: Some(("m1", "reply_q1")),
            unique_id: "u1",
            context: &ctx,
        })
        .unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        let expected = r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"add\", \"args\": {\"a\": 1, \"b\": 2}, \"namespace\": \"calc\", \"version\": \"1.2\", \"_msg_id\": \"m1\", \"_reply_q\": \"reply_q1\", \"_timeout\": null, \"_unique_id\": \"u1\", \"_context_user\": \"u\"}"}"#;
        assert_eq!(text, expected);
        let back = decode_request(&body).unwrap();
        assert_eq!(back.method, "add");
        assert_eq!(back.args, args);
        assert_eq!(back.namespace.as_deref(), Some("calc"));
        assert_eq!(back.version, "1.2");
        assert_eq!(back.context, ctx);
        assert_eq!(
            back.reply,
            Some(ReplyTo {
                msg_id: "m1".into(),
                reply_queue: "reply_q1".into()
            })
        );
    }

    #[test]
    fn cast_has_no_reply_fields_and_defaults_apply() {
        let args = Map::new();
        let ctx = Context::new();
        let body = encode_request(&OutgoingRequest {
            method: "ping",
            args: &args,
            namespace: None,
            version: None,
            reply: None,
            unique_id: "u",
            context: &ctx,
        })
        .unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(!text.contains("_msg_id") && !text.contains("namespace"));
        assert!(!text.contains("_timeout") && !text.contains("_context"));
        assert!(text.contains(r#"\"_unique_id\": \"u\""#));
        let back = decode_request(&body).unwrap();
        assert_eq!(back.reply, None);
        assert_eq!(back.version, DEFAULT_VERSION);
        assert_eq!(back.namespace, None);
    }

    #[test]
    fn accepts_bare_messages_and_flattened_context() {
        let back = decode_request(
            br#"{"method":"m","_context_user":"u","_context":{"project":"p"},"_msg_id":"1","_reply_q":"q"}"#,
        )
        .unwrap();
        assert_eq!(back.context.get("user"), Some(&json!("u")));
        assert_eq!(back.context.get("project"), Some(&json!("p")));
        assert!(back.args.is_empty());
        assert_eq!(back.unique_id, None);
        // What this crate wrote before: one `_context` object; the object wins.
        let back = decode_request(
            br#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"m\", \"args\": {}, \"_unique_id\": \"u\", \"_context\": {\"user\": \"obj\"}, \"_context_user\": \"flat\", \"_context_x\": 1}"}"#,
        )
        .unwrap();
        assert_eq!(back.context, obj(json!({"user": "obj", "x": 1})));
        assert_eq!(back.unique_id.as_deref(), Some("u"));
    }

    #[test]
    fn bad_requests_keep_the_reply_address() {
        let e = decode_request(br#"{"args":{},"_msg_id":"1","_reply_q":"q"}"#).unwrap_err();
        assert_eq!(e.reply.unwrap().msg_id, "1");
        assert!(decode_request(b"nope").unwrap_err().reply.is_none());
        assert!(decode_request(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#).is_err());
        assert!(decode_request(br#"{"method":"m","args":[1]}"#).is_err());
    }

    #[test]
    fn replies_round_trip() {
        let body = encode_reply("m1", "u1", &Ok(json!({"x": 1}))).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": {\"x\": 1}, \"failure\": null, \"ending\": true, \"_msg_id\": \"m1\", \"_unique_id\": \"u1\"}"}"#
        );
        let back = decode_reply(&body).unwrap();
        assert_eq!(back.msg_id, "m1");
        assert_eq!(back.outcome, Some(Ok(json!({"x": 1}))));

        let failure = WireFailure {
            class: "ValueError".into(),
            module: "builtins".into(),
            message: "bad".into(),
            tb: vec![],
            args: vec!["bad".into()],
            kwargs: Map::new(),
        };
        let body = encode_reply("m2", "u2", &Err(failure.clone())).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": null, \"failure\": \"{\\\"class\\\": \\\"ValueError\\\", \\\"module\\\": \\\"builtins\\\", \\\"message\\\": \\\"bad\\\", \\\"tb\\\": [], \\\"args\\\": [\\\"bad\\\"], \\\"kwargs\\\": {}}\", \"ending\": true, \"_msg_id\": \"m2\", \"_unique_id\": \"u2\"}"}"#
        );
        // What oslo's client does with it: `failure` is a string holding the object.
        let inner = unwrap(&body).unwrap();
        let Some(Value::String(failure_text)) = inner.get("failure") else {
            panic!("failure is not a string: {inner:?}");
        };
        let parsed: Value = serde_json::from_str(failure_text).unwrap();
        assert_eq!(parsed["class"], json!("ValueError"));
        assert_eq!(parsed["kwargs"], json!({}));
        let back = decode_reply(&body).unwrap();
        assert_eq!(back.outcome, Some(Err(failure.clone())));
        // A failure as an object (what this crate wrote before) is still read.
        let object = br#"{"oslo.version": "2.0", "oslo.message": "{\"result\": null, \"failure\": {\"class\": \"ValueError\", \"module\": \"builtins\", \"message\": \"bad\", \"tb\": [], \"args\": [\"bad\"], \"kwargs\": {}}, \"ending\": true, \"_msg_id\": \"m2\"}"}"#;
        assert_eq!(decode_reply(object).unwrap().outcome, Some(Err(failure)));
    }

    #[test]
    fn accepts_oslo_string_failures_and_end_markers() {
        let back = decode_reply(
            br#"{"_msg_id":"m","result":null,"failure":"{\"class\": \"KeyError\", \"module\": \"builtins\", \"message\": \"'x'\", \"tb\": [\"line\"], \"args\": [\"x\"], \"kwargs\": {}}","ending":true}"#,
        )
        .unwrap();
        let f = back.outcome.unwrap().unwrap_err();
        assert_eq!((f.class.as_str(), f.message.as_str()), ("KeyError", "'x'"));
        assert_eq!(f.tb, vec!["line".to_owned()]);
        let end = decode_reply(br#"{"_msg_id":"m","ending":true}"#).unwrap();
        assert_eq!(end.outcome, None);
        assert!(decode_reply(br#"{"result":1}"#).is_err());
    }

    /// A heartbeat is not the outcome of the call: decoding it as a `null` result
    /// would end a call that set a call monitor before the method returned.
    #[test]
    fn a_heartbeat_is_no_outcome() {
        let beat = encode_heartbeat("m1", "u1").unwrap();
        let back = decode_reply(&beat).unwrap();
        assert_eq!(back.msg_id, "m1");
        assert_eq!(back.outcome, None);
        // A null result that ends the reply is a null result.
        let null = encode_reply("m1", "u1", &Ok(Value::Null)).unwrap();
        assert_eq!(decode_reply(&null).unwrap().outcome, Some(Ok(Value::Null)));
        // A result sent before a separate end marker (older senders) still counts.
        let split = br#"{"_msg_id":"m","result":1,"failure":null,"ending":false}"#;
        assert_eq!(decode_reply(split).unwrap().outcome, Some(Ok(json!(1))));
    }
}
