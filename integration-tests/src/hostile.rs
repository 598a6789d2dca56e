//! The hostile records of the user guide's table ("Hostile records"), and the run
//! that feeds them to a listener between valid notifications and checks what it
//! made of each: the memory test and the real-broker test share both.
//!
//! The run writes through a raw sender (a closure given by the test: the memory
//! driver's `Transport::send`, or an rdkafka producer of its own), so the records
//! reach the listener exactly as written, key, headers and null value included.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use messaging_core::{
    envelope, Context, NotificationListener, Notifier, Priority, Retry, StartPosition, Target,
    Transport,
};
use serde_json::value::RawValue;

use crate::support::{index_of, unique, Collector};

/// One record as a producer writes it.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The value; `None` is a Kafka null value (no value at all). Drivers without
    /// null values send an empty body instead.
    pub value: Option<Vec<u8>>,
    /// A Kafka record key (ignored by drivers without keys).
    pub key: Option<Vec<u8>>,
    /// Kafka record headers (ignored by drivers without headers).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    /// A record with only a value.
    pub fn value(value: Vec<u8>) -> Self {
        RawRecord {
            value: Some(value),
            key: None,
            headers: Vec::new(),
        }
    }
}

/// A hostile record and what the listener must do with it.
#[derive(Debug, Clone)]
pub struct HostileRecord {
    /// Which row of the table it stands for.
    pub kind: String,
    /// The record.
    pub record: RawRecord,
    /// `Some(event type)`: valid oslo, delivered as that event type with exactly
    /// this payload text; `None`: skipped (counted, logged).
    pub delivered: Option<(String, String)>,
}

/// Ten MiB: the "10 MB value" of the table.
pub const TEN_MB: usize = 10 * 1024 * 1024;

/// The size of the "large value" rows on a real broker: Tansu 0.6 never serves a
/// record larger than 5 MiB (it caps every fetch response there and has no
/// "at least one record" rule), so a larger one would stall the partition. Still
/// four times librdkafka's default `message.max.bytes` and the driver's default
/// `kafka_max_fetch_bytes`.
pub const LARGE_ON_A_BROKER: usize = 4 * 1024 * 1024;

/// A v2 record around an inner message given as JSON text.
pub fn enveloped(inner: &str) -> Vec<u8> {
    let mut out = br#"{"oslo.version": "2.0", "oslo.message": "#.to_vec();
    serde_json::to_writer(&mut out, inner).expect("a string serializes");
    out.push(b'}');
    out
}

/// An inner message with every field valid, `field` given the JSON text `value`.
pub fn inner_with(field: &str, value: &str) -> String {
    let fields = [
        ("message_id", r#""0b5e2a9c-0000-4000-8000-000000000000""#),
        ("publisher_id", r#""hostile.producer""#),
        ("event_type", r#""hostile.event""#),
        ("priority", r#""INFO""#),
        ("payload", r#"{"i": -1}"#),
        ("timestamp", r#""2026-05-01 12:00:00""#),
        ("_context", "{}"),
    ];
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {}", if *k == field { value } else { v }))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `depth` nested arrays.
pub fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The valid notification number `i` (`{"i": i}`, event type `valid`), encoded.
pub fn valid(notifier: &Notifier, i: i64) -> Vec<u8> {
    let n = notifier
        .build_notification(
            Priority::Info,
            &Context::new(),
            "valid",
            &serde_json::json!({ "i": i }),
        )
        .expect("builds");
    envelope::encode(&n).expect("encodes")
}

/// Every kind of record of the table, each with what the listener must do; the
/// "large value" rows are `large` bytes ([`TEN_MB`] where the transport allows).
pub fn hostile_records(notifier: &Notifier, large: usize) -> Vec<HostileRecord> {
    let skipped = |kind: &str, value: Vec<u8>| HostileRecord {
        kind: kind.to_owned(),
        record: RawRecord::value(value),
        delivered: None,
    };
    let delivered = |kind: &str, event_type: &str, payload: &str| {
        let raw = RawValue::from_string(payload.to_owned()).expect("a JSON payload");
        let n = notifier
            .build_notification(Priority::Info, &Context::new(), event_type, &raw)
            .expect("builds");
        HostileRecord {
            kind: kind.to_owned(),
            record: RawRecord::value(envelope::encode(&n).expect("encodes")),
            delivered: Some((event_type.to_owned(), payload.to_owned())),
        }
    };
    let good = valid(notifier, -1);
    let good_text = String::from_utf8(good.clone()).expect("UTF-8");
    let deep = nested(100_000);
    let mut out = vec![
        skipped("not UTF-8", b"\xff\xfe\x00\x01 binary \xc3(".to_vec()),
        skipped("not UTF-8 inside a string of an oslo record", {
            let mut b = good.clone();
            let at = good_text.find("valid").expect("event type");
            b[at] = 0xff;
            b
        }),
        skipped("not JSON", b"hello, world".to_vec()),
        skipped(
            "not JSON: an oslo record and trailing bytes",
            [good.as_slice(), b" trailing"].concat(),
        ),
        skipped("JSON but not an object: array", b"[1, 2, 3]".to_vec()),
        skipped("JSON but not an object: string", br#""oslo""#.to_vec()),
        skipped("JSON but not an object: number", b"42".to_vec()),
        skipped("JSON but not an object: null", b"null".to_vec()),
        skipped("an empty JSON object", b"{}".to_vec()),
        skipped(
            "envelope: oslo.version a number",
            good_text.replacen(r#""2.0""#, "2.0", 1).into_bytes(),
        ),
        skipped(
            "envelope: oslo.message an object",
            format!(
                r#"{{"oslo.version": "2.0", "oslo.message": {}}}"#,
                inner_with("", "")
            )
            .into_bytes(),
        ),
        skipped(
            "envelope: oslo.version 3.0",
            good_text.replacen(r#""2.0""#, r#""3.0""#, 1).into_bytes(),
        ),
        skipped(
            "missing oslo.message",
            br#"{"oslo.version": "2.0"}"#.to_vec(),
        ),
        skipped("inner message not JSON", enveloped("not json")),
        skipped("inner message JSON but not an object", enveloped("[1]")),
        skipped(
            "duplicate key: oslo.message",
            good_text
                .replacen(
                    r#""oslo.message""#,
                    r#""oslo.message": "{}", "oslo.message""#,
                    1,
                )
                .into_bytes(),
        ),
        skipped(
            "duplicate key: event_type",
            enveloped(&inner_with("event_type", r#""a", "event_type": "b""#)),
        ),
        delivered(
            "duplicate key inside the payload",
            "hostile.duplicate_payload_key",
            r#"{"k": 1, "k": 2}"#,
        ),
        skipped(
            "100,000 levels of nesting: the whole value",
            deep.clone().into_bytes(),
        ),
        skipped(
            "100,000 levels of nesting: the inner message",
            enveloped(&deep),
        ),
        skipped(
            "100,000 levels of nesting: in _context",
            enveloped(&inner_with("_context", &format!(r#"{{"d": {deep}}}"#))),
        ),
        delivered(
            "100,000 levels of nesting: in the payload",
            "hostile.deep_payload",
            &deep,
        ),
        delivered(
            "numbers beyond 64 bits in the payload",
            "hostile.big_numbers",
            r#"{"u128": 340282366920938463463374607431768211456, "neg": -99999999999999999999999, "huge": 1e400, "tiny": 1e-400}"#,
        ),
        skipped(
            "a number beyond f64 in _context",
            enveloped(&inner_with("_context", r#"{"n": 1e400}"#)),
        ),
        skipped(&format!("{large} byte value, not JSON"), vec![b'x'; large]),
        delivered(
            &format!("{large} byte value, a valid notification"),
            "hostile.large",
            &format!("\"{}\"", "x".repeat(large)),
        ),
        skipped("empty value", Vec::new()),
        HostileRecord {
            kind: "null value".into(),
            record: RawRecord {
                value: None,
                key: None,
                headers: Vec::new(),
            },
            delivered: None,
        },
        HostileRecord {
            kind: "a key and headers, not oslo".into(),
            record: RawRecord {
                value: Some(b"not oslo".to_vec()),
                key: Some(b"some-key".to_vec()),
                headers: vec![("h1".into(), b"v1".to_vec()), ("h2".into(), Vec::new())],
            },
            delivered: None,
        },
    ];
    let mut keyed = delivered(
        "a key and headers, valid oslo",
        "hostile.key_and_headers",
        r#"{"with": "key and headers"}"#,
    );
    keyed.record.key = Some(b"some-key".to_vec());
    keyed.record.headers = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("binary".into(), vec![0xff, 0x00]),
    ];
    out.push(keyed);
    for (field, wrong) in [
        ("message_id", "1"),
        ("publisher_id", "[]"),
        ("event_type", "{}"),
        ("priority", "3"),
        ("priority", r#""LOUD""#),
        ("timestamp", "true"),
        ("_context", r#""text""#),
    ] {
        out.push(skipped(
            &format!("wrong type: {field} is {wrong}"),
            enveloped(&inner_with(field, wrong)),
        ));
    }
    out
}

/// What [`run_hostile_table`] saw.
#[derive(Debug)]
pub struct HostileReport {
    /// How many records it wrote (valid and hostile).
    pub written: usize,
    /// How many of them the listener had to skip.
    pub skipped: usize,
}

/// Feed every record of `records` to a listener on `topic` of `transport`, each
/// between two valid notifications (`0..=records.len()`), through `send`; then
/// check that every valid notification and every valid-oslo hostile record was
/// delivered exactly once, that the listener counted each of the others as
/// skipped, and that it still handles a notification sent after all of them.
///
/// With `dead_letter`, the listener copies the skipped records there, and the
/// run checks that each was copied.
pub async fn run_hostile_table<F, Fut>(
    transport: &Transport,
    topic: &str,
    records: Vec<HostileRecord>,
    dead_letter: Option<&str>,
    patience: Duration,
    mut send: F,
) -> HostileReport
where
    F: FnMut(String, RawRecord) -> Fut,
    Fut: Future<Output = ()>,
{
    let wire = transport.notification_topic(topic, Priority::Info);
    let notifier = Notifier::builder()
        .publisher_id("hostile.test")
        .topic(topic)
        .retry(Retry::Limited(5))
        .transport(transport)
        .build()
        .expect("notifier");
    let got = Collector::new();
    let mut builder = NotificationListener::builder(transport)
        .target(Target::new(topic))
        .pool(unique("hostile-pool"))
        .start_position(StartPosition::Earliest)
        .endpoint(got.endpoint());
    if let Some(dlq) = dead_letter {
        builder = builder.dead_letter_topic(dlq);
    }
    let listener = builder.build().expect("listener");
    listener.start().await.expect("listener starts");

    let invalid = records.iter().filter(|r| r.delivered.is_none()).count();
    let expected: Vec<(String, String, String)> = records
        .iter()
        .filter_map(|r| {
            r.delivered
                .clone()
                .map(|(event_type, payload)| (r.kind.clone(), event_type, payload))
        })
        .collect();
    let valid_count = records.len() as i64 + 1;
    send(wire.clone(), RawRecord::value(valid(&notifier, 0))).await;
    for (i, r) in records.into_iter().enumerate() {
        send(wire.clone(), r.record).await;
        send(
            wire.clone(),
            RawRecord::value(valid(&notifier, i as i64 + 1)),
        )
        .await;
    }
    let written = 2 * valid_count as usize - 1;

    let want = valid_count as usize + expected.len();
    let arrived = crate::support::eventually(patience, || {
        got.len() >= want && listener.counters().skipped >= invalid as u64
    })
    .await;
    let counters = listener.counters();
    let all = got.all();
    let mut valid_seen: HashMap<i64, usize> = HashMap::new();
    for n in all.iter().filter(|n| n.event_type == "valid") {
        *valid_seen
            .entry(index_of(n).expect("an index"))
            .or_default() += 1;
    }
    let missing: Vec<i64> = (0..valid_count)
        .filter(|i| !valid_seen.contains_key(i))
        .collect();
    let twice: Vec<i64> = valid_seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(i, _)| *i)
        .collect();
    assert!(
        arrived && missing.is_empty() && twice.is_empty(),
        "valid notifications missing: {missing:?}, delivered twice: {twice:?}; \
         {} of {want} delivered, counters {counters:?}",
        all.len()
    );
    for (kind, event_type, payload) in &expected {
        let copies: Vec<_> = all.iter().filter(|n| &n.event_type == event_type).collect();
        assert_eq!(copies.len(), 1, "{kind}: delivered {} times", copies.len());
        assert!(
            copies[0].payload.json() == payload,
            "{kind}: the payload arrived changed ({} bytes, sent {})",
            copies[0].payload.json().len(),
            payload.len()
        );
    }
    assert_eq!(all.len(), want, "nothing else was delivered");
    assert_eq!(counters.skipped, invalid as u64, "{counters:?}");
    assert_eq!(counters.received, written as u64, "{counters:?}");
    assert_eq!(counters.handler_failures, 0, "{counters:?}");
    if dead_letter.is_some() {
        let copied = crate::support::eventually(patience, || {
            listener.counters().dead_lettered >= invalid as u64
        })
        .await;
        assert!(
            copied,
            "not every skipped record was dead-lettered: {:?}",
            listener.counters()
        );
        assert_eq!(listener.counters().dead_letter_failures, 0);
    }

    // The listener survived all of it: one more notification, sent the ordinary way.
    notifier
        .info(
            &Context::new(),
            "final",
            &serde_json::json!({"i": valid_count}),
        )
        .await
        .expect("sent")
        .delivered()
        .await
        .expect("delivered");
    assert!(
        crate::support::eventually(patience, || got
            .all()
            .iter()
            .any(|n| n.event_type == "final"))
        .await,
        "the listener no longer handles notifications: {:?}",
        listener.counters()
    );
    listener.stop_and_wait().await.expect("stops");
    HostileReport {
        written,
        skipped: invalid,
    }
}
