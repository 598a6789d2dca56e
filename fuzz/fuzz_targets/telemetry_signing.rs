//! Ceilometer signing of arbitrary JSON: nothing panics, compute and verify refuse
//! the same texts, the raw reader reads all serde_json reads, and a message signed with a secret verifies with it (raw JSON
//! entry points and parsed `Map` ones alike). The first byte picks the secret's
//! length (0-15 bytes of what follows); the rest is the message.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use messaging_telemetry::signing::{
    compute_signature_json, sign, verify_signature, verify_signature_json, SIGNATURE_KEY,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 16).min(rest.len());
    let (Ok(secret), Ok(json)) = (
        std::str::from_utf8(&rest[..n]),
        std::str::from_utf8(&rest[n..]),
    ) else {
        return;
    };
    // What serde_json can parse as a Map, the raw reader reads too (it also reads
    // numbers serde_json refuses, such as 1e400, as Python does).
    let parsed = serde_json::from_str::<Map<String, Value>>(json);
    let signature = match compute_signature_json(json, secret) {
        Ok(s) => s,
        Err(e) => {
            assert!(
                parsed.is_err(),
                "serde_json parses what the signer refuses ({e}): {json:?}"
            );
            assert!(
                verify_signature_json(json, secret).is_err(),
                "verify accepts what compute refuses: {json:?}"
            );
            return;
        }
    };
    if secret.is_empty() {
        assert_eq!(signature, "");
    }
    // Sign the raw text: every value kept as written, the signature key set to a
    // string first (a string there is not signed, an object's entries are), signed,
    // then set to the signature (the last key of a name wins, in Python's
    // json.loads and in the signer alike).
    let mut entries: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(json).expect("a signable message is a JSON object");
    let previous_is_object = entries
        .get(SIGNATURE_KEY)
        .is_some_and(|v| v.get().trim_start().starts_with('{'));
    let placeholder = RawValue::from_string("\"\"".to_owned()).unwrap();
    entries.insert(SIGNATURE_KEY.to_owned(), placeholder);
    let unsigned = serde_json::to_string(&entries).unwrap();
    let signature_unsigned = compute_signature_json(&unsigned, secret).unwrap();
    if !previous_is_object {
        assert_eq!(
            signature, signature_unsigned,
            "the signature depends on a signature string: {json:?}"
        );
    }
    let quoted = serde_json::to_string(&signature_unsigned).unwrap();
    entries.insert(
        SIGNATURE_KEY.to_owned(),
        RawValue::from_string(quoted).unwrap(),
    );
    let signed = serde_json::to_string(&entries).unwrap();
    assert_eq!(
        compute_signature_json(&signed, secret).unwrap(),
        signature_unsigned,
        "the signature changes with the signature: {json:?}"
    );
    assert!(
        verify_signature_json(&signed, secret).unwrap(),
        "a signed message does not verify: {signed:?}"
    );
    // The parsed entry points, where serde_json can hold the message.
    if let Ok(mut map) = parsed {
        sign(&mut map, secret);
        assert!(
            verify_signature(&map, secret),
            "a signed Map does not verify: {map:?}"
        );
    }
});
