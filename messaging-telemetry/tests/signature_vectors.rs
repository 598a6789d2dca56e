//! Golden vectors generated from Ceilometer's own `compute_signature`
//! (`tests/interop/gen_signature_vectors.py`).

use messaging_telemetry::signing::{
    compute_signature, compute_signature_json, sign, verify_signature, verify_signature_json,
    SIGNATURE_KEY,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Corpus {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    secret: String,
    message: Option<Box<RawValue>>,
    message_json: Option<String>,
    signature: String,
    value_path: String,
}

impl Vector {
    /// The exact JSON text Ceilometer's signature was computed from.
    fn text(&self) -> &str {
        match (&self.message, &self.message_json) {
            (Some(raw), None) => raw.get(),
            (None, Some(text)) => text,
            _ => panic!("{}: exactly one of message / message_json", self.name),
        }
    }
}

/// The named corpus (each vector a chosen case).
fn named() -> Vec<Vector> {
    let corpus: Corpus =
        serde_json::from_str(include_str!("data/signature_vectors.json")).expect("corpus parses");
    corpus.vectors
}

/// The named corpus plus 300 random nested messages.
fn corpus() -> Vec<Vector> {
    let random: Corpus = serde_json::from_str(include_str!("data/signature_random_vectors.json"))
        .expect("random corpus parses");
    let mut all = named();
    all.extend(random.vectors);
    all
}

fn with_signature(text: &str, signature: &str) -> String {
    let mut map: Map<String, Value> = serde_json::from_str(text).unwrap();
    map.insert(SIGNATURE_KEY.into(), signature.into());
    serde_json::to_string(&map).unwrap()
}

#[test]
fn corpus_is_large_enough() {
    assert!(named().len() >= 40, "only {} named vectors", named().len());
    assert!(corpus().len() >= 340, "only {} vectors", corpus().len());
}

#[test]
fn raw_json_entry_point_matches_every_vector() {
    for v in corpus() {
        let got = compute_signature_json(v.text(), &v.secret)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(got, v.signature, "vector {:?}", v.name);
    }
}

#[test]
fn parsed_value_entry_point_matches_exact_vectors() {
    let mut exact = 0;
    for v in corpus() {
        let parsed: Result<Map<String, Value>, _> = serde_json::from_str(v.text());
        match v.value_path.as_str() {
            "exact" => {
                let map = parsed.unwrap_or_else(|e| panic!("{}: {e}", v.name));
                assert_eq!(
                    compute_signature(&map, &v.secret),
                    v.signature,
                    "vector {:?}",
                    v.name
                );
                exact += 1;
            }
            // Documented limitation: serde_json without arbitrary_precision
            // loses the distinction Python keeps.
            "differs" => {
                let map = parsed.unwrap_or_else(|e| panic!("{}: {e}", v.name));
                assert_ne!(
                    compute_signature(&map, &v.secret),
                    v.signature,
                    "{}",
                    v.name
                );
            }
            "rejected" => assert!(parsed.is_err(), "{}", v.name),
            other => panic!("{}: unknown value_path {other}", v.name),
        }
    }
    assert!(exact >= 300, "only {exact} exact vectors");
}

#[test]
fn ceilometer_signatures_verify() {
    for v in corpus() {
        let text = v.text();
        let map: Option<Map<String, Value>> = serde_json::from_str(text).ok();
        // Replacing a non-string message_signature changes the signed content.
        if let Some(map) = &map {
            if map.get(SIGNATURE_KEY).is_some_and(|s| !s.is_string()) {
                continue;
            }
        }
        if v.value_path == "rejected" {
            continue;
        }
        let signed = with_signature(text, &v.signature);
        if v.value_path == "exact" {
            assert!(
                verify_signature_json(&signed, &v.secret).unwrap(),
                "{}",
                v.name
            );
            let mut map = map.expect("exact vectors parse");
            map.insert(SIGNATURE_KEY.into(), v.signature.clone().into());
            assert!(verify_signature(&map, &v.secret), "{}", v.name);
            // `sign` produces exactly Ceilometer's signature.
            let mut resigned = map.clone();
            sign(&mut resigned, &v.secret);
            assert_eq!(resigned[SIGNATURE_KEY], Value::String(v.signature.clone()));
        }
        if !v.secret.is_empty() {
            let wrong = format!("{}x", v.secret);
            assert!(
                !verify_signature_json(&signed, &wrong).unwrap(),
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn raw_entry_point_verifies_numbers_serde_json_loses() {
    for v in corpus().into_iter().filter(|v| v.value_path != "exact") {
        let text = v.text();
        // Insert the signature textually: serde_json cannot round-trip these.
        let trimmed = text.trim();
        let signed = format!(
            "{{\"{SIGNATURE_KEY}\": \"{}\", {}",
            v.signature,
            &trimmed[1..]
        );
        assert!(
            verify_signature_json(&signed, &v.secret).unwrap(),
            "{}",
            v.name
        );
        let tampered = format!(
            "{{\"{SIGNATURE_KEY}\": \"{}\", \"extra\": 1, {}",
            v.signature,
            &trimmed[1..]
        );
        assert!(
            !verify_signature_json(&tampered, &v.secret).unwrap(),
            "{}",
            v.name
        );
    }
}

/// Python parses floats exactly, so a consumer must too, or a float in a
/// Ceilometer-signed message can come out one ulp off and fail verification.
/// serde_json's default parser is not exact; this crate turns on its
/// `float_roundtrip` feature, which makes it so.
#[test]
fn serde_json_parses_python_float_reprs_exactly() {
    #[derive(Deserialize)]
    struct Case {
        bits: String,
        repr: String,
    }
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("data/float_repr_vectors.json")).unwrap();
    let mut wrong = Vec::new();
    for case in &cases {
        let bits = u64::from_str_radix(&case.bits, 16).unwrap();
        let text = case.repr.replace("inf", "1e999");
        let parsed: f64 = serde_json::from_str(&text).unwrap();
        if parsed.to_bits() != bits {
            wrong.push(case.repr.clone());
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} misparsed (is serde_json's float_roundtrip feature on?): {:?}",
        wrong.len(),
        cases.len(),
        &wrong[..wrong.len().min(10)]
    );
}
