//! The envelope decoder: no input panics, and the fast path agrees with the serde
//! path on every input (equal notifications, or errors of the same kind and text);
//! the fast path's in-place reading agrees with its reading of the unescaped message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use messaging_core::__private::{
    envelope_decode_in_place, envelope_decode_serde, envelope_decode_unescaped,
};
use messaging_core::{envelope, Notification, Result};

fn same(what: &str, a: &Result<Notification>, b: &Result<Notification>, body: &[u8]) {
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "{what} for {:?}", String::from_utf8_lossy(body)),
        (Err(x), Err(y)) => {
            assert_eq!(x.kind(), y.kind(), "{what}: {x} vs {y}");
            assert_eq!(x.to_string(), y.to_string(), "{what}");
        }
        _ => panic!(
            "{what} disagree: {a:?} vs {b:?} for {:?}",
            String::from_utf8_lossy(body)
        ),
    }
}

fuzz_target!(|body: &[u8]| {
    let decoded = envelope::decode(body);
    let serde = envelope_decode_serde(body);
    same("decode and the serde path", &decoded, &serde, body);
    if let Some(in_place) = envelope_decode_in_place(body) {
        let unescaped = envelope_decode_unescaped(body)
            .expect("the in-place reading took a record the unescaped reading refuses");
        same(
            "in-place and unescaped readings",
            &in_place,
            &unescaped,
            body,
        );
        same(
            "the in-place reading and the serde path",
            &in_place,
            &serde,
            body,
        );
    }
    if let Ok(n) = &decoded {
        let _ = n.payload.to_value();
    }
});
