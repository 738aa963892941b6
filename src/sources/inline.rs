//! `org.osbuild.inline`: data carried in the manifest, `{"encoding": .., "data": ..}` per item.
//! Upstream knows the encodings `base64` and `lzma+base64` (xz or legacy lzma, detected).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use serde_json::Value;

use super::checksum::{self, Checksum};
use super::staging::TempFile;
use super::{FetchOptions, SourceError};

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

    /// Writes the raw bytes the item stands for to `out`, streaming: a small compressed item
    /// may stand for gigabytes, which must never all sit in memory. `lzma+base64` goes through
    /// the host's `xz` (xz and legacy lzma streams, as Python's `lzma.decompress`), a helper
    /// tied to the build and killed at `deadline`. When `out` fails, the error it kept is the one
    /// to report (see [`Sink`]).
    fn decode_into(&self, checksum: &str, out: &mut dyn Write, deadline: Instant) -> Result<(), SourceError> {
        let decode_error = |reason: String| SourceError::Decode { item: checksum.to_string(), reason };
        let raw = decode_base64(&self.data).map_err(|e| decode_error(format!("invalid base64: {e}")))?;
        match self.encoding {
            Encoding::Base64 => out.write_all(&raw).map_err(|e| decode_error(e.to_string())),
            Encoding::LzmaBase64 => {
                let mut xz = Command::new("xz");
                xz.args(["--decompress", "--stdout", "--format=auto", "--quiet"]);
                let run = crate::sandbox::run_helper_into(&mut xz, raw, Some(deadline), out).map_err(|e| {
                    decode_error(match e.kind() {
                        io::ErrorKind::NotFound => "xz is not installed on the host (package xz-utils or xz)".into(),
                        _ => format!("cannot decompress: {e}"),
                    })
                })?;
                if let Some(signal) = run.interrupted {
                    return Err(SourceError::Interrupted { url: format!("inline item {checksum}"), signal });
                }
                if !run.success() {
                    return Err(decode_error(format!(
                        "invalid lzma data: xz {}: {}",
                        run.describe(),
                        run.stderr_tail(3)
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The temp file an item is decoded into, hashed on the way; it refuses more data once a stop
/// signal arrived or the deadline passed, keeping the reason.
struct Sink<'a> {
    file: &'a mut File,
    hasher: checksum::Hasher,
    deadline: Instant,
    failed: Option<SourceError>,
    origin: String,
    path: &'a Path,
    timeout: Duration,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_none() {
            if let Some(signal) = crate::sandbox::interrupted() {
                self.failed = Some(SourceError::Interrupted { url: self.origin.clone(), signal });
            } else if Instant::now() >= self.deadline {
                self.failed = Some(SourceError::TimedOut { url: self.origin.clone(), secs: self.timeout.as_secs() });
            } else if let Err(e) = self.file.write_all(buf) {
                self.failed = Some(SourceError::io("write", self.path, e));
            }
        }
        if self.failed.is_some() {
            return Err(io::Error::other("the item's temp file refused more data"));
        }
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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

/// Decodes `item` into a temp file in `staging`, verifies it and stores it as
/// `dest_dir/<checksum>`; bounded by the download timeout and stop signals like a transfer.
pub fn fetch_one(
    checksum: &Checksum,
    item: &InlineItem,
    staging: &Path,
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Result<(), SourceError> {
    let name = checksum.to_string();
    let origin = format!("inline item {name}");
    let (temp, mut file) = TempFile::create(staging)?;
    let deadline = opts.deadline();
    let mut sink = Sink {
        file: &mut file,
        hasher: checksum.algorithm.hasher(),
        deadline,
        failed: None,
        origin: origin.clone(),
        path: temp.path(),
        timeout: opts.timeout,
    };
    let decoded = item.decode_into(&name, &mut sink, deadline);
    if let Some(e) = sink.failed.take() {
        return Err(e);
    }
    decoded?;
    let actual = sink.hasher.finish();
    temp.check_and_commit(file, &actual, dest_dir, checksum, &origin, opts.durable)
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
        let decode = |data: &[u8]| {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD.encode(data);
            let item = InlineItem { encoding: Encoding::LzmaBase64, data };
            let mut out = Vec::new();
            item.decode_into("c", &mut out, Instant::now() + Duration::from_secs(60)).map(|()| out)
        };
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &payload[..], &mut xz).unwrap();
        assert_eq!(decode(&xz).unwrap(), payload);
        let mut alone = Vec::new();
        lzma_rs::lzma_compress(&mut &payload[..], &mut alone).unwrap();
        assert_eq!(decode(&alone).unwrap(), payload);
        let e = decode(b"garbage").unwrap_err().to_string();
        assert!(e.starts_with("cannot decode inline item c: invalid lzma data: xz exit code 1"), "{e}");
    }
}
