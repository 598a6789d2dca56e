//! Encoding and decoding against references.

use super::decode::*;
use super::encode::*;
use super::fast_decode::*;
use super::*;
use crate::notification::{Context, OutgoingNotification};
use crate::priority::Priority;
use crate::ErrorKind;
use serde_json::Value;

fn sample() -> OutgoingNotification {
    OutgoingNotification {
        message_id: "6f1c0000-0000-4000-8000-000000000001".into(),
        publisher_id: "compute.host1".into(),
        event_type: "compute.instance.create.end".into(),
        priority: Priority::Info,
        payload: crate::Payload::from_serialize(&serde_json::json!({"instance_id": "abc"}))
            .unwrap(),
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
    if let Some(direct) = canonical_contents(body).and_then(read_canonical_escaped) {
        let message = canonical_message(body).expect("escaped implies canonical");
        let whole = read_canonical_message(&message).expect("escaped implies unescaped");
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
            crate::Payload::from_serialize(&serde_json::json!({"s": text, "n": [i, 1.5, null]}))
                .unwrap();
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
    n.payload = crate::Payload::from_json("{\n\t\"a\" :\r [1 , 2]\n}").unwrap();
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
        n.payload = crate::Payload::from_json(deep.clone())
            .unwrap_or_else(|_| crate::Payload::from_json("1").unwrap());
        cases.push(encode(&n).unwrap());
        n.payload = crate::Payload::from_json("1").unwrap();
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
    // A payload is kept as text, so nesting a `Value` cannot hold is accepted on
    // both paths; asking for a `Value` is then the error.
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let mut n = sample();
    n.payload = crate::Payload::from_json(deep.clone()).unwrap();
    let decoded = decode(&encode(&n).unwrap()).unwrap();
    assert_eq!(decoded.payload.json(), deep);
    assert_eq!(
        decoded.payload.to_value().unwrap_err().kind(),
        &ErrorKind::Decode
    );
    let mut invalid_utf8 = good.clone();
    let at = invalid_utf8.len() - 6;
    invalid_utf8.splice(at..at, [0xc3, b'(']);
    cases.push(invalid_utf8);
    for case in &cases {
        same_outcome(case);
    }
    assert!(canonical_message(&good).is_some());
    assert!(matches!(
        canonical_contents(&good).and_then(read_canonical_escaped),
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
        n.payload = crate::Payload::from_serialize(&serde_json::json!({"t": text, "e": n.event_type})).unwrap();
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
    n.payload = crate::Payload::from_serialize(
        &serde_json::json!({"x": [1, 2.5, null, "é\"\\\n"], "y": null}),
    )
    .unwrap();
    n.context.insert("user".into(), "u".into());
    let back = decode(&encode(&n).unwrap()).unwrap();
    assert_eq!(back.payload, n.payload_value());
    assert_eq!(back.payload.json(), n.payload.json(), "the text as sent");
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

/// `first_escape` (a word at a time, the last word padded) finds exactly the
/// byte a byte-by-byte scan finds, for every start and at every position of
/// every kind of byte to escape, including in the last, partial word.
#[test]
fn first_escape_agrees_with_a_byte_scan() {
    for len in 0..20 {
        for at in 0..=len {
            for special in [b'"', b'\\', b'\n', 0u8, 0x1f, 0xe9] {
                let mut bytes = vec![b'x'; len];
                if at < len {
                    bytes[at] = special;
                }
                for from in 0..=len {
                    let expected = (from..len)
                        .find(|&i| byte_needs_escape(bytes[i]))
                        .unwrap_or(len);
                    assert_eq!(
                        first_escape(&bytes, from),
                        expected,
                        "{bytes:?} from {from}"
                    );
                }
            }
        }
    }
}

/// The AMQP form as serde would write it: the tests' reference for the encoder.
struct AmqpReference<'a>(&'a OutgoingNotification, &'a str);

impl serde::Serialize for AmqpReference<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (n, unique_id) = (self.0, self.1);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("message_id", &n.message_id)?;
        m.serialize_entry("publisher_id", &n.publisher_id)?;
        m.serialize_entry("event_type", &n.event_type)?;
        m.serialize_entry("priority", n.priority.as_wire())?;
        m.serialize_entry("payload", &n.payload)?;
        m.serialize_entry("timestamp", &n.timestamp)?;
        m.serialize_entry("_unique_id", unique_id)?;
        for (k, v) in &n.context {
            m.serialize_entry(&format!("_context_{k}"), v)?;
        }
        m.end()
    }
}

fn reference_encode_amqp(n: &OutgoingNotification, unique_id: &str) -> Vec<u8> {
    let inner = to_python_json(&AmqpReference(n, unique_id)).unwrap();
    let mut out = b"{\"oslo.version\": \"2.0\", \"oslo.message\": ".to_vec();
    serde_json::to_writer(&mut out, inner.as_str()).unwrap();
    out.push(b'}');
    out
}

/// A notification exactly as oslo's rabbit driver writes it (oslo-rabbit.md,
/// "Notifications on RabbitMQ"): flat `_context_<key>` keys after `_unique_id`, a
/// RequestContext's redacted `auth_token` as `null`, no `_context` object.
const OSLO_RABBIT: &str = r#"{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"0b8c6fd2-1c3e-4a5a-9d47-3b1c5f0e9a11\", \"publisher_id\": \"compute.host1\", \"event_type\": \"compute.instance.create.end\", \"priority\": \"INFO\", \"payload\": {\"instance_id\": \"abc\"}, \"timestamp\": \"2026-05-01 12:00:00.123456\", \"_unique_id\": \"9f5e0c8a3b2d4e1f8a7b6c5d4e3f2a1b\", \"_context_user\": \"u1\", \"_context_request_id\": \"req-1\", \"_context_auth_token\": null, \"_context_roles\": [\"admin\", \"member\"]}"}"#;

#[test]
fn decodes_a_notification_as_oslo_rabbit_writes_it() {
    let n = decode(OSLO_RABBIT.as_bytes()).unwrap();
    assert_eq!(
        Value::Object(n.context.clone()),
        serde_json::json!({
            "user": "u1",
            "request_id": "req-1",
            "auth_token": null,
            "roles": ["admin", "member"],
        })
    );
    assert_eq!(
        n.metadata.message_id,
        "0b8c6fd2-1c3e-4a5a-9d47-3b1c5f0e9a11"
    );
    assert_eq!(n.metadata.timestamp, "2026-05-01 12:00:00.123456");
    assert_eq!(n.priority, Priority::Info);
    assert_eq!(n.payload, serde_json::json!({"instance_id": "abc"}));
    // The fast path takes it (in place, and unescaped first), and agrees with serde.
    let body = OSLO_RABBIT.as_bytes();
    assert!(matches!(
        canonical_contents(body).and_then(read_canonical_escaped),
        Some(Ok(_))
    ));
    assert!(matches!(
        read_canonical_message(&canonical_message(body).unwrap()),
        Some(Ok(_))
    ));
    same_outcome(body);
    // The same as the v1 bare object (oslo's `messaging` notifier) and with other spacing.
    let inner = canonical_message(body).unwrap();
    assert_eq!(decode(inner.as_bytes()).unwrap(), n);
    let compact = serde_json::to_vec(&serde_json::from_str::<Value>(&inner).unwrap()).unwrap();
    let spaced = decode(&compact).unwrap();
    assert_eq!(spaced.context, n.context);
    assert_eq!(spaced.payload, serde_json::json!({"instance_id": "abc"}));
    same_outcome(&compact);
}

#[test]
fn encodes_the_amqp_form_like_oslo_rabbit() {
    let mut n = sample();
    n.message_id = "0b8c6fd2-1c3e-4a5a-9d47-3b1c5f0e9a11".into();
    for (k, v) in [
        ("user", serde_json::json!("u1")),
        ("request_id", serde_json::json!("req-1")),
        ("auth_token", Value::Null),
        ("roles", serde_json::json!(["admin", "member"])),
    ] {
        n.context.insert(k.into(), v);
    }
    let encoded = encode_with(&n, Some("9f5e0c8a3b2d4e1f8a7b6c5d4e3f2a1b")).unwrap();
    assert_eq!(String::from_utf8(encoded.clone()).unwrap(), OSLO_RABBIT);
    assert_eq!(
        encoded,
        reference_encode_amqp(&n, "9f5e0c8a3b2d4e1f8a7b6c5d4e3f2a1b")
    );
    // The Kafka form is unchanged, and is what the Kafka dialect writes.
    assert_eq!(
        encode_as(&n, crate::driver::Dialect::Kafka).unwrap(),
        encode(&n).unwrap()
    );
    assert_eq!(encode(&n).unwrap(), reference_encode(&n));
    // Both decode to the same notification.
    assert_eq!(
        decode(&encoded).unwrap(),
        decode(&encode(&n).unwrap()).unwrap()
    );
    // A new `_unique_id` (uuid4 hex) every time; an empty context adds no keys.
    let a = String::from_utf8(encode_as(&n, crate::driver::Dialect::Amqp).unwrap()).unwrap();
    let b = String::from_utf8(encode_as(&n, crate::driver::Dialect::Amqp).unwrap()).unwrap();
    assert_ne!(a, b);
    let id = |text: &str| {
        let inner: Value =
            serde_json::from_str(decode_general_inner(text.as_bytes()).as_str()).unwrap();
        inner["_unique_id"].as_str().unwrap().to_owned()
    };
    let id_a = id(&a);
    assert_eq!(id_a.len(), 32);
    assert!(id_a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(uuid::Uuid::parse_str(&id_a).unwrap().get_version_num(), 4);
    let empty = String::from_utf8(encode_with(&sample(), Some("u")).unwrap()).unwrap();
    assert!(empty.ends_with(r#"\"_unique_id\": \"u\"}"}"#), "{empty}");
    assert!(!empty.contains("_context"));
    assert!(decode(empty.as_bytes()).unwrap().context.is_empty());
}

/// The `oslo.message` text of a v2 record.
fn decode_general_inner(body: &[u8]) -> String {
    let outer: Value = serde_json::from_slice(body).unwrap();
    outer["oslo.message"].as_str().unwrap().to_owned()
}

#[test]
fn both_context_forms_merge_the_object_winning() {
    let body = r#"{"oslo.version": "2.0", "oslo.message": "{\"message_id\": \"m\", \"publisher_id\": \"p\", \"event_type\": \"e\", \"priority\": \"INFO\", \"payload\": 1, \"timestamp\": \"t\", \"_context_user\": \"flat\", \"_context\": {\"user\": \"object\", \"project\": \"p1\"}, \"_unique_id\": \"u\", \"_context_x\": 1, \"_context_x\": 2}"}"#;
    let n = decode(body.as_bytes()).unwrap();
    assert_eq!(
        Value::Object(n.context),
        serde_json::json!({"user": "object", "project": "p1", "x": 2})
    );
    same_outcome(body.as_bytes());
    // A second `_context` object is refused on both paths, as before.
    let twice = body.replace(r#"\"_unique_id\""#, r#"\"_context\": {}, \"_unique_id\""#);
    assert_eq!(
        decode(twice.as_bytes()).unwrap_err().kind(),
        &ErrorKind::Decode
    );
    same_outcome(twice.as_bytes());
}

#[test]
fn fast_decode_agrees_with_the_general_path_on_the_amqp_form() {
    let mut n = sample();
    n.context.insert("user".into(), "u1".into());
    n.context
        .insert("deep".into(), serde_json::json!({"k": [1, {"z": null}]}));
    let good = encode_with(&n, Some("0123456789abcdef0123456789abcdef")).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![good.clone()];
    for cut in 0..good.len() {
        cases.push(good[..cut].to_vec());
        let mut bad = good.clone();
        bad[cut] = b'"';
        cases.push(bad.clone());
        bad[cut] = b'\\';
        cases.push(bad.clone());
        bad[cut] = b'}';
        cases.push(bad.clone());
        bad[cut] = 0xff;
        cases.push(bad);
    }
    for extra in [
        // `_unique_id` not a simple string, or not a string: ignored by serde.
        text.replace(r#"\"0123456789abcdef0123456789abcdef\""#, "1"),
        text.replace(r#"0123456789abcdef"#, r#"\\\"q"#),
        text.replace(
            r#"\"_unique_id\""#,
            r#"\"_unique_id\": null, \"_unique_id\""#,
        ),
        // A key with an escape, an unknown key, a known key twice.
        text.replace(r#"\"_context_user\""#, r#"\"_context_\\\\u0075ser\""#),
        text.replace(r#"\"_context_user\""#, r#"\"other\": 1, \"_context_user\""#),
        text.replace(
            r#"\"_context_user\""#,
            r#"\"payload\": 2, \"_context_user\""#,
        ),
        text.replace(r#"\"_context_user\""#, r#"\"_context_\""#),
        text.replace(r#"\"_context_user\": \"u1\""#, r#"\"_context_user\": {}"#),
        text.replace(
            r#"\"_context_user\": \"u1\""#,
            r#"\"_context_user\":\"u1\""#,
        ),
        text.replace(r#"\"_context_user\": \"u1\""#, r#"\"_context\": null"#),
        text.replace(r#"\"_context_user\": \"u1\""#, r#"\"_context\": 3"#),
    ] {
        cases.push(extra.into_bytes());
    }
    for depth in [97, 98, 99, 100, 125, 126, 127] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        cases.push(text.replace(r#"\"u1\""#, &deep).into_bytes());
    }
    for case in &cases {
        same_outcome(case);
    }
}

proptest::proptest! {
    #[test]
    fn amqp_encode_matches_its_reference_and_decodes_back(
        id in "\\PC*",
        unique in "[0-9a-f\\\\\"]{0,32}",
        key in "\\PC{0,12}",
        text in proptest::collection::vec(proptest::prelude::any::<char>(), 0..60),
        mangle in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..3),
    ) {
        let text: String = text.into_iter().collect();
        let mut n = sample();
        n.message_id = id;
        n.payload = crate::Payload::from_serialize(&serde_json::json!({"t": text})).unwrap();
        n.context.insert(key.clone(), Value::from(text.clone()));
        n.context.insert("n".into(), serde_json::json!([1, {"k": text}]));
        let encoded = encode_with(&n, Some(&unique)).unwrap();
        proptest::prop_assert_eq!(&encoded, &reference_encode_amqp(&n, &unique));
        let back = decode(&encoded).unwrap();
        proptest::prop_assert_eq!(&back.metadata.message_id, &n.message_id);
        proptest::prop_assert_eq!(&back.context, &n.context);
        same_outcome(&encoded);
        let mut bad = encoded;
        for (at, byte) in mangle {
            let at = at % bad.len();
            bad[at] = byte;
        }
        same_outcome(&bad);
    }
}

/// A v2 record around an inner message given as JSON text.
fn enveloped(inner: &str) -> Vec<u8> {
    let mut out = br#"{"oslo.version": "2.0", "oslo.message": "#.to_vec();
    serde_json::to_writer(&mut out, inner).unwrap();
    out.push(b'}');
    out
}

/// An inner message with every field valid, `field` replaced by `value` (JSON text)
/// or left out (`None`).
fn inner_with(field: &str, value: Option<&str>) -> String {
    let fields = [
        ("message_id", r#""m-1""#),
        ("publisher_id", r#""hostile.test""#),
        ("event_type", r#""hostile.event""#),
        ("priority", r#""INFO""#),
        ("payload", r#"{"i": 1}"#),
        ("timestamp", r#""2026-05-01 12:00:00""#),
        ("_context", "{}"),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| {
            let v = if *k == field { value? } else { v };
            Some(format!("\"{k}\": {v}"))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Every kind of hostile record of the user guide's table (the Kafka-only rows
/// aside: a null value arrives as an empty body, a key and headers are not part of
/// the body), with what `decode` must make of it: never a panic or a stack
/// overflow, the same outcome on the fast and the serde path, a `Decode` error
/// (the listener skips and counts it) or a notification (valid oslo).
#[test]
fn hostile_records_are_refused_or_decoded_as_the_table_says() {
    let good = encode(&sample()).unwrap();
    let good_text = String::from_utf8(good.clone()).unwrap();
    let deep = nested(100_000);
    let mut refused: Vec<(&str, Vec<u8>)> = vec![
        ("not UTF-8", b"\xff\xfe\x00\x01 binary".to_vec()),
        ("not UTF-8 inside a string of a canonical record", {
            let mut b = good.clone();
            let at = good_text.find("compute.host1").unwrap();
            b[at] = 0xff;
            b
        }),
        (
            "UTF-8 BOM before the object",
            [b"\xef\xbb\xbf".as_slice(), &good].concat(),
        ),
        ("not JSON", b"hello, world".to_vec()),
        ("trailing garbage", [good.as_slice(), b" trailing"].concat()),
        ("JSON array", b"[1, 2, 3]".to_vec()),
        ("JSON string", br#""oslo""#.to_vec()),
        ("JSON number", b"42".to_vec()),
        ("JSON null", b"null".to_vec()),
        ("JSON true", b"true".to_vec()),
        ("empty value", Vec::new()),
        ("only whitespace", b"  \n ".to_vec()),
        ("empty object", b"{}".to_vec()),
        (
            "missing oslo.message",
            br#"{"oslo.version": "2.0"}"#.to_vec(),
        ),
        (
            "missing oslo.version",
            good_text
                .replace(r#""oslo.version": "2.0", "#, "")
                .into_bytes(),
        ),
        (
            "oslo.version a number",
            good_text.replace(r#""2.0""#, "2.0").into_bytes(),
        ),
        (
            "oslo.version an array",
            good_text.replace(r#""2.0""#, r#"["2.0"]"#).into_bytes(),
        ),
        (
            "oslo.version 3.0",
            good_text.replace(r#""2.0""#, r#""3.0""#).into_bytes(),
        ),
        (
            "oslo.message an object",
            format!(
                r#"{{"oslo.version": "2.0", "oslo.message": {}}}"#,
                inner_with("", None)
            )
            .into_bytes(),
        ),
        (
            "oslo.message a number",
            br#"{"oslo.version": "2.0", "oslo.message": 1}"#.to_vec(),
        ),
        (
            "oslo.message null",
            br#"{"oslo.version": "2.0", "oslo.message": null}"#.to_vec(),
        ),
        ("inner message not JSON", enveloped("not json")),
        ("inner message empty", enveloped("")),
        ("inner message a JSON array", enveloped("[1]")),
        ("inner message JSON null", enveloped("null")),
        (
            "duplicate oslo.message",
            good_text
                .replacen(
                    r#""oslo.message""#,
                    &format!(
                        r#""oslo.message": {}, "oslo.message""#,
                        serde_json::to_string(&inner_with("", None)).unwrap()
                    ),
                    1,
                )
                .into_bytes(),
        ),
        (
            "duplicate oslo.version",
            good_text
                .replacen(
                    r#""oslo.version": "2.0""#,
                    r#""oslo.version": "2.0", "oslo.version": "2.0""#,
                    1,
                )
                .into_bytes(),
        ),
        (
            "duplicate event_type",
            enveloped(&inner_with("event_type", Some(r#""a", "event_type": "b""#))),
        ),
        (
            "duplicate payload",
            enveloped(&inner_with("payload", Some(r#"1, "payload": 2"#))),
        ),
        (
            "duplicate _context",
            enveloped(&inner_with("_context", Some(r#"{}, "_context": {}"#))),
        ),
        ("100,000 levels: the whole value", deep.clone().into_bytes()),
        (
            "100,000 levels: the whole value as objects",
            format!("{}{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000)).into_bytes(),
        ),
        ("100,000 levels: the inner message", enveloped(&deep)),
        (
            "100,000 levels: in _context",
            enveloped(&inner_with(
                "_context",
                Some(&format!(r#"{{"d": {deep}}}"#)),
            )),
        ),
        (
            "100,000 levels: a flat _context_ key",
            enveloped(&inner_with(
                "_context",
                Some(&format!(r#"{{}}, "_context_d": {deep}"#)),
            )),
        ),
        (
            "number beyond f64 in _context",
            enveloped(&inner_with("_context", Some(r#"{"n": 1e400}"#))),
        ),
        ("10 MB value, not JSON", vec![b'x'; 10 * 1024 * 1024]),
        (
            "10 MB value, a JSON string",
            format!("\"{}\"", "x".repeat(10 * 1024 * 1024)).into_bytes(),
        ),
    ];
    for (field, wrong) in [
        ("message_id", "1"),
        ("publisher_id", "[]"),
        ("event_type", "{}"),
        ("event_type", "null"),
        ("priority", "3"),
        ("priority", r#""LOUD""#),
        ("timestamp", "true"),
        ("_context", r#""text""#),
        ("_context", "[]"),
    ] {
        let name: &'static str = Box::leak(format!("{field} is {wrong}").into_boxed_str());
        refused.push((name, enveloped(&inner_with(field, Some(wrong)))));
        // The same in a bare (v1) message.
        let name: &'static str = Box::leak(format!("v1: {field} is {wrong}").into_boxed_str());
        refused.push((name, inner_with(field, Some(wrong)).into_bytes()));
    }
    for field in ["event_type", "priority", "payload"] {
        let name: &'static str = Box::leak(format!("no {field}").into_boxed_str());
        refused.push((name, enveloped(&inner_with(field, None))));
    }
    for (what, body) in &refused {
        same_outcome(body);
        let err = decode(body).expect_err(what);
        assert_eq!(err.kind(), &ErrorKind::Decode, "{what}: {err}");
    }

    let big_numbers = r#"{"u128": 340282366920938463463374607431768211456, "neg": -99999999999999999999999, "huge": 1e400, "tiny": 1e-400, "precise": 0.1000000000000000000000000001}"#;
    let ten_mb = format!("\"{}\"", "x".repeat(10 * 1024 * 1024));
    let delivered: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "numbers beyond 64 bits in the payload",
            enveloped(&inner_with("payload", Some(big_numbers))),
            big_numbers,
        ),
        (
            "duplicate keys inside the payload",
            enveloped(&inner_with("payload", Some(r#"{"i": 1, "i": 2}"#))),
            r#"{"i": 1, "i": 2}"#,
        ),
        (
            "100,000 levels in the payload",
            enveloped(&inner_with("payload", Some(&deep))),
            &deep,
        ),
        (
            "10 MB payload",
            enveloped(&inner_with("payload", Some(&ten_mb))),
            &ten_mb,
        ),
        (
            "payload a string",
            enveloped(&inner_with("payload", Some(r#""text""#))),
            r#""text""#,
        ),
        (
            "payload null",
            enveloped(&inner_with("payload", Some("null"))),
            "null",
        ),
        (
            "unknown keys in the envelope and message",
            good_text
                .replacen("{", r#"{"extra": [1, {"a": null}], "#, 1)
                .replace(
                    r#"\"_context\": {}"#,
                    r#"\"_context\": {}, \"_unique_id\": 5, \"x\": {}"#,
                )
                .into_bytes(),
            r#"{"instance_id": "abc"}"#,
        ),
        // Unknown keys are skipped over without being built, at any depth.
        (
            "100,000 levels under an unknown envelope key",
            good_text
                .replacen("{", &format!(r#"{{"x": {deep}, "#), 1)
                .into_bytes(),
            r#"{"instance_id": "abc"}"#,
        ),
        (
            "null message_id, publisher_id, timestamp, _context",
            enveloped(
                r#"{"message_id": null, "publisher_id": null, "event_type": "e", "priority": "info", "payload": 2, "timestamp": null, "_context": null}"#,
            ),
            "2",
        ),
        (
            "no _context, message_id, publisher_id, timestamp",
            enveloped(r#"{"event_type": "e", "priority": "info", "payload": 1}"#),
            "1",
        ),
    ];
    for (what, body, payload) in &delivered {
        same_outcome(body);
        let n = decode(body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(n.payload.json(), *payload, "{what}");
    }
    // A payload a `Value` cannot hold is delivered as its text; reading it as a
    // `Value` (or a type of your own) is then a `Decode` error, not a panic.
    let deep_payload = decode(&delivered[2].1).unwrap().payload;
    assert_eq!(
        deep_payload.to_value().unwrap_err().kind(),
        &ErrorKind::Decode
    );
    // Duplicate keys in the context: the last one wins (as in Python).
    let n = decode(&enveloped(&inner_with(
        "_context",
        Some(r#"{"k": 1, "k": 2}"#),
    )))
    .unwrap();
    assert_eq!(n.context["k"], 2);
    // An integer beyond 64 bits in the context becomes the nearest f64.
    let n = decode(&enveloped(&inner_with(
        "_context",
        Some(r#"{"n": 123456789012345678901234567890}"#),
    )))
    .unwrap();
    assert_eq!(n.context["n"].as_f64(), Some(1.2345678901234568e29));
}
