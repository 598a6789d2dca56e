//! kombu's body compression: `kombu_compression=gzip` writes a zlib stream (not gzip,
//! despite the name) and the header `compression: application/x-gzip`; a receiver
//! decompresses by that header.

use std::io::{Read, Write};

use bytes::Bytes;
use lapin::types::{AMQPValue, FieldTable, ShortString};

/// The header kombu writes, and its value for zlib.
pub(crate) const HEADER: &str = "compression";
pub(crate) const ZLIB: &str = "application/x-gzip";

/// Compress `body` as kombu does for `gzip`.
pub(crate) fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(body)?;
    z.finish()
}

/// The header table of a compressed message.
pub(crate) fn headers() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        ShortString::from(HEADER),
        AMQPValue::LongString(ZLIB.into()),
    );
    t
}

/// The body as the sender meant it: inflated when its headers say zlib. `Err` names
/// what cannot be read (another compression, or a broken stream); the caller hands
/// the raw body on, where it is skipped and counted as a foreign record.
pub(crate) fn decompressed(
    headers: Option<&FieldTable>,
    body: Vec<u8>,
) -> Result<Bytes, (String, Bytes)> {
    let value = headers.and_then(|h| h.inner().get(HEADER));
    let kind = match value {
        None => return Ok(Bytes::from(body)),
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        Some(other) => format!("{other:?}"),
    };
    if kind != ZLIB {
        return Err((
            format!("unsupported compression {kind:?}"),
            Bytes::from(body),
        ));
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    match flate2::read::ZlibDecoder::new(body.as_slice()).read_to_end(&mut out) {
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err((format!("a broken zlib body: {e}"), Bytes::from(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_body_comes_back_and_starts_like_kombus() {
        let body = br#"{"oslo.version": "2.0", "oslo.message": "{}"}"#.repeat(20);
        let z = compress(&body).unwrap();
        assert_eq!(&z[..2], &[0x78, 0x9c], "zlib, as kombu writes for gzip");
        assert!(z.len() < body.len());
        let back = decompressed(Some(&headers()), z).unwrap();
        assert_eq!(&back[..], &body[..]);
    }

    #[test]
    fn no_header_is_no_compression_and_others_are_named() {
        assert_eq!(&decompressed(None, b"x".to_vec()).unwrap()[..], b"x");
        let mut bz = FieldTable::default();
        bz.insert(
            ShortString::from(HEADER),
            AMQPValue::LongString("application/x-bz2".into()),
        );
        let (why, raw) = decompressed(Some(&bz), b"BZh".to_vec()).unwrap_err();
        assert!(why.contains("application/x-bz2"), "{why}");
        assert_eq!(&raw[..], b"BZh");
        let (why, _) = decompressed(Some(&headers()), b"not zlib".to_vec()).unwrap_err();
        assert!(why.contains("zlib"), "{why}");
    }
}
