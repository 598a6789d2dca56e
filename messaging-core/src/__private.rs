//! Entry points for the fuzz targets (`fuzz/` at the top of the repository): the
//! decoders' internal paths, called one by one. Not part of the API: no stability
//! promise, hidden from the docs.

use crate::envelope;
use crate::error::Result;
use crate::notification::Notification;
use crate::rpc::wire;

/// The envelope decoder's serde path alone (what [`envelope::decode`] falls back to).
pub fn envelope_decode_serde(body: &[u8]) -> Result<Notification> {
    envelope::decode_general(body)
}

/// The fast path reading the still escaped `oslo.message` in place; `None` when it
/// does not take the record.
pub fn envelope_decode_in_place(body: &[u8]) -> Option<Result<Notification>> {
    envelope::canonical_contents(body).and_then(envelope::read_canonical_escaped)
}

/// The fast path reading the unescaped `oslo.message`; `None` when it does not take
/// the record.
pub fn envelope_decode_unescaped(body: &[u8]) -> Option<Result<Notification>> {
    envelope::read_canonical_message(&envelope::canonical_message(body)?)
}

/// Decode an RPC request (and work out the heartbeat interval its call monitor asks
/// for, as the server does); when it decodes, encode it again and decode that.
/// `None`: it does not decode; `Some(Err(why))`: the second decoding differs, other
/// than in what the encoding does not carry (the call monitor; a missing
/// `_unique_id` comes back empty). Key order is not compared (JSON objects have
/// none; decoding does not keep it).
pub fn rpc_request_round_trip(body: &[u8]) -> Option<std::result::Result<(), String>> {
    let r = wire::decode_request(body).ok()?;
    // What the server then makes of the caller's call monitor.
    if let Some(timeout) = r.call_monitor {
        let _ = crate::rpc::server::heartbeat_interval(timeout);
    }
    let reply = r
        .reply
        .as_ref()
        .map(|to| (to.msg_id.as_str(), to.reply_queue.as_str()));
    let encoded = match wire::encode_request(&wire::OutgoingRequest {
        method: &r.method,
        args: &r.args,
        namespace: r.namespace.as_deref(),
        version: Some(&r.version),
        reply,
        unique_id: r.unique_id.as_deref().unwrap_or(""),
        context: &r.context,
    }) {
        Ok(e) => e,
        Err(e) => return Some(Err(format!("re-encoding {r:?} failed: {e}"))),
    };
    let back = match wire::decode_request(&encoded) {
        Ok(b) => b,
        Err(bad) => {
            return Some(Err(format!(
                "re-encoded {r:?} does not decode: {}",
                bad.error
            )))
        }
    };
    let expected = wire::IncomingRequest {
        unique_id: Some(r.unique_id.clone().unwrap_or_default()),
        call_monitor: None,
        ..r
    };
    Some(if back == expected {
        Ok(())
    } else {
        Err(format!(
            "decoded {expected:?}, re-encoded and decoded {back:?}"
        ))
    })
}

/// Decode an RPC reply; when it decodes and has an outcome, encode it again and
/// decode that. `None`: it does not decode, or is an end marker; `Some(Err(why))`:
/// the second decoding differs.
pub fn rpc_reply_round_trip(body: &[u8]) -> Option<std::result::Result<(), String>> {
    let r = wire::decode_reply(body).ok()?;
    let outcome = r.outcome.as_ref()?;
    let encoded = match wire::encode_reply(&r.msg_id, "", outcome) {
        Ok(e) => e,
        Err(e) => return Some(Err(format!("re-encoding {r:?} failed: {e}"))),
    };
    Some(match wire::decode_reply(&encoded) {
        Ok(back) if back == r => Ok(()),
        Ok(back) => Err(format!("decoded {r:?}, re-encoded and decoded {back:?}")),
        Err(e) => Err(format!("re-encoded {r:?} does not decode: {e}")),
    })
}
