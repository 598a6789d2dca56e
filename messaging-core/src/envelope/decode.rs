//! Decoding through serde: any spacing, v1 and v2, typed errors; the fast path first.

use super::fast_decode::{
    canonical_contents, canonical_message, read_canonical_escaped, read_canonical_message,
};
use super::record::{into_notification, WireRecord};
use super::ENVELOPE_VERSION;
use crate::error::{Error, Result};
use crate::notification::Notification;

/// Decode one record value (v2 envelope or bare v1 message).
pub fn decode(body: &[u8]) -> Result<Notification> {
    if let Some(decoded) = canonical_contents(body).and_then(read_canonical_escaped) {
        return decoded;
    }
    if let Some(message) = canonical_message(body) {
        if let Some(decoded) = read_canonical_message(&message) {
            return decoded;
        }
        // Exactly what the general path below does with this record, minus the
        // outer parse.
        let inner: WireRecord<'_> = serde_json::from_str(&message)
            .map_err(|e| Error::decode("oslo.message is not a JSON object").with_source(e))?;
        return into_notification(inner);
    }
    decode_general(body)
}

/// Decode any accepted form: parse the outer object, then the inner message.
pub(crate) fn decode_general(body: &[u8]) -> Result<Notification> {
    let record: WireRecord<'_> = serde_json::from_slice(body)
        .map_err(|e| Error::decode("record is not a JSON object").with_source(e))?;
    match (&record.version, &record.message) {
        (Some(version), Some(message)) => {
            check_version(version)?;
            let inner: WireRecord<'_> = serde_json::from_str(message)
                .map_err(|e| Error::decode("oslo.message is not a JSON object").with_source(e))?;
            into_notification(inner)
        }
        (Some(_), None) => Err(Error::decode(
            "envelope has oslo.version but no oslo.message",
        )),
        (None, Some(_)) => Err(Error::decode(
            "envelope has oslo.message but no oslo.version",
        )),
        (None, None) => into_notification(record),
    }
}

pub(crate) fn check_version(version: &str) -> Result<()> {
    let mut parts = version.split('.');
    let major: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    let minor: Option<u32> = match parts.next() {
        None => Some(0),
        Some(p) => p.parse().ok(),
    };
    match (major, minor, parts.next()) {
        (Some(2), Some(0), None) => Ok(()),
        (Some(2), Some(_), None) => Err(Error::decode(format!(
            "envelope version {version} is newer than {ENVELOPE_VERSION}"
        ))),
        (Some(_), Some(_), None) => Err(Error::decode(format!(
            "incompatible envelope version {version}: this reader supports {ENVELOPE_VERSION}"
        ))),
        _ => Err(Error::decode(format!(
            "malformed envelope version {version:?}"
        ))),
    }
}
