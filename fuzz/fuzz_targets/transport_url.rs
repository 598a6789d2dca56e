//! The transport URL parser: no input panics, and a parsed URL written out with its
//! passwords parses back to the same URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use messaging_core::TransportUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = TransportUrl::parse(text) else {
        return;
    };
    // Every accessor and both renderings, for panics.
    let _ = (
        url.scheme(),
        url.driver(),
        url.scheme_suffix(),
        url.virtual_host(),
    );
    for host in url.hosts() {
        let _ = (host.address(5672), host.password(), format!("{host:?}"));
    }
    let _ = url.query_map();
    if let Some((key, _)) = url.query_pairs().first() {
        let _ = url.query(key);
    }
    let shown = url.to_string();
    let _ = format!("{url:?}");
    let written = url.to_string_with_password();
    let back = TransportUrl::parse(&written)
        .unwrap_or_else(|e| panic!("{written:?} (written from {text:?}) does not parse: {e}"));
    assert_eq!(
        back, url,
        "{text:?} written as {written:?} parses differently"
    );
    // The redacted form parses too (passwords become `***`).
    if let Err(e) = TransportUrl::parse(&shown) {
        panic!("{shown:?} (shown for {text:?}) does not parse: {e}");
    }
});
