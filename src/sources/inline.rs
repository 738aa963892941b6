//! `org.osbuild.inline`: data carried in the manifest, `{"encoding": .., "data": ..}` per item.
//! Upstream knows the encodings `base64` and `lzma+base64` (xz or legacy lzma, detected).

use std::io::BufReader;
use std::path::Path;

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use serde_json::Value;

use super::checksum::{self, Checksum};
use super::staging::TempFile;
use super::SourceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    LzmaBase64,
}

/// One inline item, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineItem {
    pub encoding: Encoding,
    pub data: String,
}

impl InlineItem {
    pub fn parse(checksum: &str, desc: &Value) -> Result<InlineItem, SourceError> {
        let invalid =
            |reason: &str| SourceError::InvalidItem { item: checksum.to_string(), reason: reason.to_string() };
        let obj = desc.as_object().ok_or_else(|| invalid("an inline item must be an object"))?;
        let encoding = match obj.get("encoding") {
            Some(Value::String(e)) => match e.as_str() {
                "base64" => Encoding::Base64,
                "lzma+base64" => Encoding::LzmaBase64,
                other => {
                    return Err(SourceError::UnknownEncoding {
                        item: checksum.to_string(),
                        encoding: other.to_string(),
                    })
                }
            },
            Some(_) => return Err(invalid("\"encoding\" must be a string")),
            None => return Err(invalid("\"encoding\" is missing")),
        };
        let data = match obj.get("data") {
            Some(Value::String(d)) => d.clone(),
            Some(_) => return Err(invalid("\"data\" must be a string")),
            None => return Err(invalid("\"data\" is missing")),
        };
        Ok(InlineItem { encoding, data })
    }

    /// The raw bytes the item stands for.
    pub fn decode(&self, checksum: &str) -> Result<Vec<u8>, SourceError> {
        let decode_error = |reason: String| SourceError::Decode { item: checksum.to_string(), reason };
        let raw = decode_base64(&self.data).map_err(|e| decode_error(format!("invalid base64: {e}")))?;
        match self.encoding {
            Encoding::Base64 => Ok(raw),
            Encoding::LzmaBase64 => decompress_lzma(&raw).map_err(|e| decode_error(format!("invalid lzma data: {e}"))),
        }
    }
}

/// Decodes base64 as Python's `base64.b64decode` does by default: characters outside the
/// alphabet (line breaks, spaces) are skipped and decoding stops at the padding.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let cleaned: Vec<u8> =
        text.bytes().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')).collect();
    let end = cleaned.iter().position(|&b| b == b'=').unwrap_or(cleaned.len());
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    engine.decode(&cleaned[..end])
}

/// Decompresses an xz stream or a legacy `.lzma` stream (what Python's `lzma.decompress` accepts).
fn decompress_lzma(data: &[u8]) -> Result<Vec<u8>, lzma_rs::error::Error> {
    const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
    let mut out = Vec::new();
    let mut input = BufReader::new(data);
    if data.starts_with(XZ_MAGIC) {
        lzma_rs::xz_decompress(&mut input, &mut out)?;
    } else {
        lzma_rs::lzma_decompress(&mut input, &mut out)?;
    }
    Ok(out)
}

/// Decodes `item` into a temp file in `dest_dir`, verifies it and stores it as `<checksum>`.
pub fn fetch_one(checksum: &Checksum, item: &InlineItem, staging: &Path, dest_dir: &Path) -> Result<(), SourceError> {
    let name = checksum.to_string();
    let data = item.decode(&name)?;
    let (temp, mut file) = TempFile::create(staging)?;
    let actual = checksum::copy_hashed(&data[..], &mut file, checksum.algorithm)
        .map_err(|e| SourceError::io("write", temp.path(), e))?;
    temp.check_and_commit(file, &actual, dest_dir, checksum, &format!("inline item {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_item_forms() {
        let item = InlineItem::parse("c", &json!({"encoding": "base64", "data": "aGk="})).unwrap();
        assert_eq!(item.encoding, Encoding::Base64);
        let item = InlineItem::parse("c", &json!({"encoding": "lzma+base64", "data": ""})).unwrap();
        assert_eq!(item.encoding, Encoding::LzmaBase64);
        for bad in [json!("aGk="), json!({"data": "x"}), json!({"encoding": "base64"}), json!({"encoding": 1})] {
            let err = InlineItem::parse("sha256:c", &bad).unwrap_err().to_string();
            assert!(err.contains("sha256:c"), "{err}");
        }
        let err = InlineItem::parse("c", &json!({"encoding": "zstd", "data": ""})).unwrap_err();
        assert!(err.to_string().contains("unknown encoding zstd"), "{err}");
    }

    #[test]
    fn base64_is_lenient_like_python() {
        assert_eq!(decode_base64("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_err());
    }

    #[test]
    fn decompresses_xz_and_legacy_lzma() {
        let payload = b"hello hello hello hello".repeat(10);
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &payload[..], &mut xz).unwrap();
        assert_eq!(decompress_lzma(&xz).unwrap(), payload);
        let mut alone = Vec::new();
        lzma_rs::lzma_compress(&mut &payload[..], &mut alone).unwrap();
        assert_eq!(decompress_lzma(&alone).unwrap(), payload);
        assert!(decompress_lzma(b"garbage").is_err());
    }
}
