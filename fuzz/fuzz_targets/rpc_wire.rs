//! The RPC wire decoders (requests and replies): no input panics, and what decodes
//! survives being encoded and decoded again (the same request or reply).
#![no_main]

use libfuzzer_sys::fuzz_target;
use messaging_core::__private::{rpc_reply_round_trip, rpc_request_round_trip};

fuzz_target!(|body: &[u8]| {
    if let Some(Err(why)) = rpc_request_round_trip(body) {
        panic!("request round trip: {why}");
    }
    if let Some(Err(why)) = rpc_reply_round_trip(body) {
        panic!("reply round trip: {why}");
    }
});
