//! Content checksums of the form `algo:hex`, as osbuild names source items.

use std::fmt;
use std::io::{self, Read, Write};

use sha1::Digest;

/// Hash algorithms osbuild accepts in item checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex digest.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A parsed `algo:hex` checksum; `Display` gives back the canonical string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lowercase hex digest.
    pub hex: String,
}

impl Checksum {
    /// Parses `algo:hex`; the digest must be lowercase hex of the algorithm's length
    /// (upstream compares lowercase hex digests, so anything else could never match).
    pub fn parse(s: &str) -> Result<Checksum, String> {
        let (algo, hex) = s.split_once(':').ok_or("expected <algorithm>:<hex digest>")?;
        let algorithm = Algorithm::from_name(algo).ok_or_else(|| format!("unsupported checksum algorithm {algo:?}"))?;
        if hex.len() != algorithm.hex_len() {
            return Err(format!("a {algo} digest has {} hex digits, got {}", algorithm.hex_len(), hex.len()));
        }
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err("the digest must be lowercase hex".into());
        }
        Ok(Checksum { algorithm, hex: hex.to_string() })
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// A running digest of one of the supported algorithms.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The finished digest as a checksum of the same algorithm.
    pub fn finish(self) -> Checksum {
        let (algorithm, hex) = match self {
            Hasher::Md5(h) => (Algorithm::Md5, hex::encode(h.finalize())),
            Hasher::Sha1(h) => (Algorithm::Sha1, hex::encode(h.finalize())),
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha384(h) => (Algorithm::Sha384, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Checksum { algorithm, hex }
    }
}

/// Size of the buffer data is streamed through.
pub const BUF_SIZE: usize = 256 * 1024;

/// Streams `reader` through a hasher of `algorithm`.
pub fn hash_reader(mut reader: impl Read, algorithm: Algorithm) -> io::Result<Checksum> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Streams `reader` into `writer`, hashing what is written; returns the digest.
pub fn copy_hashed(mut reader: impl Read, mut writer: impl Write, algorithm: Algorithm) -> io::Result<Checksum> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                writer.write_all(&buf[..n])?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let s = format!("sha256:{}", "ab".repeat(32));
        let c = Checksum::parse(&s).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.to_string(), s);
        assert!(Checksum::parse(&format!("md5:{}", "0".repeat(32))).is_ok());
        assert!(Checksum::parse(&format!("sha512:{}", "f".repeat(128))).is_ok());
    }

    #[test]
    fn rejects_bad_checksums() {
        assert!(Checksum::parse("sha256").is_err());
        assert!(Checksum::parse(&format!("sha3:{}", "a".repeat(64))).is_err());
        assert!(Checksum::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(Checksum::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Checksum::parse(&format!("md5:{}", "g".repeat(32))).is_err());
    }

    #[test]
    fn known_digests() {
        let cases = [
            (Algorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Algorithm::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Algorithm::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ];
        for (algo, want) in cases {
            assert_eq!(hash_reader(&b"abc"[..], algo).unwrap().hex, want);
        }
        let mut out = Vec::new();
        let c = copy_hashed(&b"abc"[..], &mut out, Algorithm::Sha512).unwrap();
        assert_eq!(out, b"abc");
        assert!(c.hex.starts_with("ddaf35a193617aba"));
    }
}
