//! Verification behaviour: tampering, missing signatures, empty secrets, and
//! sign → verify round trips.

use messaging_telemetry::signing::{
    compute_signature, compute_signature_json, sign, verify_signature, verify_signature_json,
    SIGNATURE_KEY,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const SECRET: &str = "s3cr3t";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn sample() -> Map<String, Value> {
    object(json!({
        "source": "openstack",
        "counter_name": "cpu",
        "counter_type": "cumulative",
        "counter_unit": "ns",
        "counter_volume": 123_456_789_000_u64,
        "user_id": "u-1",
        "project_id": "p-1",
        "resource_id": "r-1",
        "timestamp": "2026-05-01T12:00:00.123456+00:00",
        "monotonic_time": null,
        "resource_metadata": {
            "host": "compute-1",
            "cpu_util": 12.5,
            "active": true,
            "flavor": {"vcpus": 1, "name": "m1.small"},
            "security_groups": ["default", "web"],
            "devices": [{"name": "vda", "size": 20}],
        },
        "message_id": "6f1c8a2e-3b4d-11ef-9a5b-0242ac120002",
    }))
}

/// Every way of changing one leaf of `value`, as (path, changed copy of root).
fn leaf_mutations(root: &Value) -> Vec<(String, Value)> {
    fn walk(
        root: &Value,
        path: &mut Vec<PathStep>,
        current: &Value,
        out: &mut Vec<(String, Value)>,
    ) {
        match current {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(PathStep::Key(k.clone()));
                    walk(root, path, v, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(root, path, v, out);
                    path.pop();
                }
                // Growing a list changes it too.
                let mut copy = root.clone();
                if let Value::Array(items) = at(&mut copy, path) {
                    items.push(json!("extra"));
                }
                out.push((format!("{path:?}+push"), copy));
            }
            leaf => {
                let changed = match leaf {
                    Value::Null => json!(0),
                    Value::Bool(b) => json!(!b),
                    Value::Number(n) if n.is_f64() => json!(n.as_f64().unwrap() + 0.5),
                    Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1),
                    Value::String(s) => json!(format!("{s}x")),
                    _ => unreachable!(),
                };
                let mut copy = root.clone();
                *at(&mut copy, path) = changed;
                out.push((format!("{path:?}"), copy));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), root, &mut out);
    out
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at<'a>(root: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(root, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

#[test]
fn signed_sample_verifies() {
    let mut msg = sample();
    sign(&mut msg, SECRET);
    let signature = msg[SIGNATURE_KEY].as_str().unwrap().to_owned();
    assert_eq!(signature.len(), 64);
    assert!(signature
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(verify_signature(&msg, SECRET));
    let text = serde_json::to_string(&msg).unwrap();
    assert!(verify_signature_json(&text, SECRET).unwrap());
}

#[test]
fn changing_any_field_breaks_verification() {
    let mut msg = sample();
    sign(&mut msg, SECRET);
    let root = Value::Object(msg);
    let mutations = leaf_mutations(&root);
    assert!(mutations.len() > 20);
    for (path, changed) in mutations {
        if path.contains(SIGNATURE_KEY) {
            continue;
        }
        let changed = object(changed);
        assert!(
            !verify_signature(&changed, SECRET),
            "change at {path} not detected"
        );
        let text = serde_json::to_string(&changed).unwrap();
        assert!(
            !verify_signature_json(&text, SECRET).unwrap(),
            "change at {path} not detected"
        );
    }
}

#[test]
fn removing_renaming_or_adding_a_field_breaks_verification() {
    let mut msg = sample();
    sign(&mut msg, SECRET);
    for key in msg.keys().filter(|k| *k != SIGNATURE_KEY) {
        let mut removed = msg.clone();
        removed.remove(key);
        assert!(
            !verify_signature(&removed, SECRET),
            "removing {key} not detected"
        );

        let mut renamed = msg.clone();
        let value = renamed.remove(key).unwrap();
        renamed.insert(format!("{key}_"), value);
        assert!(
            !verify_signature(&renamed, SECRET),
            "renaming {key} not detected"
        );
    }
    let mut added = msg.clone();
    added.insert("extra".into(), json!(""));
    assert!(!verify_signature(&added, SECRET));
}

#[test]
fn key_order_does_not_matter() {
    let mut msg = sample();
    sign(&mut msg, SECRET);
    let mut reversed: Map<String, Value> = Map::new();
    for (k, v) in msg.iter().rev() {
        reversed.insert(k.clone(), v.clone());
    }
    assert!(verify_signature(&reversed, SECRET));
}

#[test]
fn wrong_secret_fails() {
    let mut msg = sample();
    sign(&mut msg, SECRET);
    assert!(!verify_signature(&msg, "s3cr3T"));
    assert!(!verify_signature(&msg, "s3cr3t "));
}

#[test]
fn missing_or_malformed_signature_fails() {
    let msg = sample();
    assert!(!verify_signature(&msg, SECRET));
    let text = serde_json::to_string(&msg).unwrap();
    assert!(!verify_signature_json(&text, SECRET).unwrap());

    let good = compute_signature(&msg, SECRET);
    for bad in [
        json!(""),
        json!(null),
        json!(42),
        json!([good.clone()]),
        json!({"sig": good.clone()}),
        json!(good.to_uppercase()),
        json!(&good[..63]),
        json!(format!("{good}0")),
    ] {
        let mut tampered = msg.clone();
        tampered.insert(SIGNATURE_KEY.into(), bad.clone());
        assert!(!verify_signature(&tampered, SECRET), "accepted {bad}");
        let text = serde_json::to_string(&tampered).unwrap();
        assert!(
            !verify_signature_json(&text, SECRET).unwrap(),
            "accepted {bad}"
        );
    }
}

#[test]
fn empty_secret_disables_signing() {
    let mut msg = sample();
    assert_eq!(compute_signature(&msg, ""), "");
    // Verification passes whatever the signature, even a missing one.
    assert!(verify_signature(&msg, ""));
    msg.insert(SIGNATURE_KEY.into(), json!("garbage"));
    assert!(verify_signature(&msg, ""));
    assert!(verify_signature_json(&serde_json::to_string(&msg).unwrap(), "").unwrap());
    // Like Ceilometer's publishers, signing stores an empty signature.
    sign(&mut msg, "");
    assert_eq!(msg[SIGNATURE_KEY], json!(""));
}

#[test]
fn resigning_replaces_the_old_signature() {
    let mut msg = sample();
    sign(&mut msg, "old");
    sign(&mut msg, SECRET);
    assert!(verify_signature(&msg, SECRET));
    assert!(!verify_signature(&msg, "old"));
}

#[test]
fn text_equal_values_sign_alike() {
    // Another Ceilometer property kept for compatibility: only the Python
    // text of a value is signed, so `null` and "None" (or `true` and "True",
    // or `1.5` and "1.5") are indistinguishable.
    for (a, b) in [
        (json!(null), json!("None")),
        (json!(true), json!("True")),
        (json!(1.5), json!("1.5")),
        (json!(["a"]), json!("[b'a']")),
    ] {
        let ma = object(json!({ "k": a }));
        let mb = object(json!({ "k": b }));
        assert_eq!(
            compute_signature(&ma, SECRET),
            compute_signature(&mb, SECRET)
        );
    }
}

#[test]
fn empty_maps_are_invisible_to_the_signature() {
    // A Ceilometer property kept for compatibility: flattening emits nothing
    // for an empty map.
    let mut msg = sample();
    sign(&mut msg, SECRET);
    msg.insert("raw".into(), json!({}));
    assert!(verify_signature(&msg, SECRET));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Whether `value` feeds anything into the MAC (a map with nothing but empty
/// maps inside does not).
fn contributes(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.values().any(contributes),
        _ => true,
    }
}

fn json_message() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_:]{0,6}|\\PC{0,6}", json_value(), 0..8)
        .prop_map(|m| m.into_iter().filter(|(k, _)| k != SIGNATURE_KEY).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(mut msg in json_message(), secret in "\\PC{1,24}") {
        sign(&mut msg, &secret);
        prop_assert!(verify_signature(&msg, &secret));
        // Through the wire and back, with both entry points.
        let text = serde_json::to_string(&msg).unwrap();
        prop_assert!(verify_signature_json(&text, &secret).unwrap());
        let reparsed: Map<String, Value> = serde_json::from_str(&text).unwrap();
        prop_assert!(verify_signature(&reparsed, &secret));
    }

    #[test]
    fn both_entry_points_agree(msg in json_message(), secret in "\\PC{0,24}") {
        let text = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(compute_signature(&msg, &secret), compute_signature_json(&text, &secret).unwrap());
    }

    #[test]
    fn adding_a_field_breaks_verification(
        mut msg in json_message(),
        secret in "\\PC{1,24}",
        extra in json_value().prop_filter("signs something", contributes),
    ) {
        sign(&mut msg, &secret);
        let key = "zz-added-field";
        prop_assume!(!msg.contains_key(key));
        msg.insert(key.to_owned(), extra);
        prop_assert!(!verify_signature(&msg, &secret));
    }

    #[test]
    fn other_secret_fails(mut msg in json_message(), a in "\\PC{1,12}", b in "\\PC{1,12}") {
        prop_assume!(a != b);
        sign(&mut msg, &a);
        prop_assert!(!verify_signature(&msg, &b));
    }
}
