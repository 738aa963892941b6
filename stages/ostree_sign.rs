//! `org.osbuild.ostree.sign`: sign a commit (by ref or checksum) in a repository of the tree
//! with an ed25519 secret key file from the tree (base64 of seed + public key, as
//! `org.osbuild.ostree.genkey` writes it), as upstream does with `ostree sign --keys-file`.
//!
//! When the build root's `ostree` has no ed25519 support (Debian 12's is built without
//! libsodium: "Requested signature type is not implemented"), we sign natively with the
//! same result: the commit object's bytes are signed (pure ed25519, the build root's
//! `openssl pkeyutl`) and the 64-byte signature is appended to the `ostree.sign.ed25519`
//! (`aay`) entry of the commit's detached metadata (`<commit>.commitmeta`, a GVariant `a{sv}`;
//! other entries are kept), which is what libostree writes and reads.
//! An `ostree` that signs ed25519 but has no `--keys-file` (before 2023.1) gets the key as
//! its KEY-ID argument.

use super::ostree_util::{ostree, ostree_output, repo_arg, repo_in_tree};
use super::util::{tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use base64::Engine;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIG_KEY: &str = "ostree.sign.ed25519";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub repo: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub key: String,
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeSign;

impl Stage for OstreeSign {
    const NAME: &'static str = "org.osbuild.ostree.sign";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let repo = repo_in_tree(args, &options.repo)?;
        let key = tree_path(args, &options.key, true)?;
        let version = ostree_output(OstreeSign::NAME, &["--version".as_ref()])?;
        if !version.lines().any(|l| l.trim() == "- sign-ed25519") {
            println!("ostree: this ostree cannot sign ed25519; signing natively");
            return sign_natively(args, &repo, &options.reference, &key).map(|()| None);
        }
        let help = ostree_output(OstreeSign::NAME, &["sign".as_ref(), "--help".as_ref()])?;
        let mut keys = std::ffi::OsString::new();
        if help.contains("--keys-file") {
            keys.push("--keys-file=");
            keys.push(&key);
        } else {
            let text = std::fs::read_to_string(&key).map_err(StageError::io("cannot read", &key))?;
            keys.push(text.trim());
        }
        ostree(
            OstreeSign::NAME,
            &["sign".as_ref(), options.reference.as_ref(), repo_arg(&repo).as_os_str(), keys.as_os_str()],
        )?;
        Ok(None)
    }
}

/// `objects/xx/rest.<ext>` of `checksum` in `repo`.
fn object_path(repo: &Path, checksum: &str, ext: &str) -> PathBuf {
    repo.join("objects").join(&checksum[..2]).join(format!("{}.{ext}", &checksum[2..]))
}

fn sign_natively(args: &StageArgs, repo: &Path, reference: &str, key: &Path) -> Result<(), StageError> {
    let commit =
        ostree_output(OstreeSign::NAME, &[repo_arg(repo).as_os_str(), "rev-parse".as_ref(), reference.as_ref()])?
            .trim()
            .to_owned();
    let commit_file = object_path(repo, &commit, "commit");
    let text = std::fs::read_to_string(key).map_err(StageError::io("cannot read", key))?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| StageError::Invalid(format!("the key {} is not base64: {e}", key.display())))?;
    if secret.len() != 64 {
        return Err(StageError::Invalid(format!(
            "the key {} is not an ed25519 secret key (64 bytes, seed and public key)",
            key.display()
        )));
    }
    // PKCS#8 wrapping of the seed, for openssl
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(&secret[..32]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    // the secret key only ever in a directory of ours, removed however the signing ends
    let tmp = tempfile::Builder::new()
        .prefix(".ostree-sign-")
        .tempdir_in(&args.tree)
        .map_err(StageError::io("cannot create a scratch directory in", &args.tree))?;
    let (key, sig) = (tmp.path().join("key.pem"), tmp.path().join("sig"));
    write_file(&key, pem.as_bytes(), 0o600)?;
    Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&commit_file)
        .arg("-out")
        .arg(&sig)
        .run(OstreeSign::NAME)?;
    let signature = std::fs::read(&sig).map_err(StageError::io("cannot read", &sig))?;
    drop(tmp);
    if signature.len() != 64 {
        return Err(StageError::ToolUnexpected {
            tool: "openssl pkeyutl".into(),
            what: format!("made a {}-byte ed25519 signature", signature.len()),
        });
    }
    let meta_path = object_path(repo, &commit, "commitmeta");
    let old = match std::fs::read(&meta_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StageError::Io { op: "cannot read", path: meta_path, source: e }),
    };
    let meta =
        add_signature(&old, &signature).map_err(|e| StageError::Invalid(format!("{}: {e}", meta_path.display())))?;
    let tmp_meta = meta_path.with_extension("commitmeta.tmp");
    write_file(&tmp_meta, &meta, 0o644)?;
    std::fs::rename(&tmp_meta, &meta_path).map_err(StageError::io("cannot write", &meta_path))?;
    println!("ostree: signed {commit} (ed25519)");
    Ok(())
}

// ---- GVariant (normal form) for the two types needed here: a{sv} and aay

fn offset_size(body_and_offsets: impl Fn(usize) -> usize) -> usize {
    for size in [0usize, 1, 2, 4, 8] {
        let total = body_and_offsets(size);
        let fits = match size {
            0 => total == 0,
            8 => true,
            s => total < (1usize << (8 * s)),
        };
        if fits {
            return size;
        }
    }
    8
}

fn read_offset(b: &[u8], size: usize) -> usize {
    let mut v = 0usize;
    for (i, byte) in b[..size].iter().enumerate() {
        v |= (*byte as usize) << (8 * i);
    }
    v
}

fn push_offset(out: &mut Vec<u8>, v: usize, size: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..size]);
}

/// Split an array of variable-size elements (alignment `align`) into its elements.
fn split_array(data: &[u8], align: usize) -> Result<Vec<&[u8]>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let size = offset_size(|s| if s == 0 { usize::MAX } else { data.len() });
    let last = read_offset(&data[data.len() - size..], size);
    if last > data.len() || !(data.len() - last).is_multiple_of(size) {
        return Err("malformed variant array".into());
    }
    let n = (data.len() - last) / size;
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..n {
        let end = read_offset(&data[last + i * size..], size);
        if end < start || end > last {
            return Err("malformed variant array offsets".into());
        }
        out.push(&data[start..end]);
        start = end.div_ceil(align) * align;
    }
    Ok(out)
}

/// Serialise an array of variable-size elements (each already serialised) with alignment `align`.
fn join_array(elems: &[Vec<u8>], align: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut ends = Vec::new();
    for e in elems {
        while !body.len().is_multiple_of(align) {
            body.push(0);
        }
        body.extend_from_slice(e);
        ends.push(body.len());
    }
    if elems.is_empty() {
        return body;
    }
    let size = offset_size(|s| body.len() + s * ends.len());
    for e in ends {
        push_offset(&mut body, e, size);
    }
    body
}

/// The key of a serialised `{sv}` entry and its variant bytes.
fn split_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let size = offset_size(|s| if s == 0 { usize::MAX } else { entry.len() });
    if entry.len() < size + 1 {
        return Err("malformed dictionary entry".into());
    }
    let key_end = read_offset(&entry[entry.len() - size..], size);
    if key_end == 0 || key_end > entry.len() - size {
        return Err("malformed dictionary entry key".into());
    }
    let key = &entry[..key_end - 1];
    let value_start = key_end.div_ceil(8) * 8;
    Ok((key, &entry[value_start.min(entry.len() - size)..entry.len() - size]))
}

fn make_entry(key: &str, variant: &[u8]) -> Vec<u8> {
    let mut e = key.as_bytes().to_vec();
    e.push(0);
    let key_end = e.len();
    while !e.len().is_multiple_of(8) {
        e.push(0);
    }
    e.extend_from_slice(variant);
    let size = offset_size(|s| e.len() + s);
    push_offset(&mut e, key_end, size);
    e
}

/// `a{sv}` detached metadata `old` (may be empty) with `signature` appended to its
/// `ostree.sign.ed25519` list.
pub(crate) fn add_signature(old: &[u8], signature: &[u8]) -> Result<Vec<u8>, String> {
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for entry in split_array(old, 8)? {
        let (key, variant) = split_entry(entry)?;
        if key == SIG_KEY.as_bytes() {
            let sep = variant.iter().rposition(|&b| b == 0).ok_or("malformed variant")?;
            if &variant[sep + 1..] != b"aay" {
                return Err(format!("{SIG_KEY} is not of type aay"));
            }
            sigs.extend(split_array(&variant[..sep], 1)?.into_iter().map(<[u8]>::to_vec));
        } else {
            entries.push(entry.to_vec());
        }
    }
    sigs.push(signature.to_vec());
    let mut variant = join_array(&sigs, 1);
    variant.push(0);
    variant.extend_from_slice(b"aay");
    entries.push(make_entry(SIG_KEY, &variant));
    Ok(join_array(&entries, 8))
}

/// The ed25519 signatures in detached metadata.
#[cfg(test)]
pub(crate) fn signatures(meta: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in split_array(meta, 8).unwrap() {
        let (key, variant) = split_entry(entry).unwrap();
        if key == SIG_KEY.as_bytes() {
            let sep = variant.iter().rposition(|&b| b == 0).unwrap();
            out.extend(split_array(&variant[..sep], 1).unwrap().into_iter().map(<[u8]>::to_vec));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn gvariant_layout_of_one_signature() {
        let sig = [7u8; 64];
        let meta = add_signature(&[], &sig).unwrap();
        // entry: key (19 + NUL), pad to 24, aay (64 + 1 offset), NUL, "aay", key offset; array offset
        assert_eq!(meta.len(), 95);
        assert_eq!(&meta[..20], b"ostree.sign.ed25519\0");
        assert_eq!(&meta[24..88], &sig[..]);
        assert_eq!(meta[88], 64);
        assert_eq!(&meta[89..93], b"\0aay");
        assert_eq!(meta[93], 20);
        assert_eq!(meta[94], 94);
        let two = add_signature(&meta, &[9u8; 64]).unwrap();
        assert_eq!(signatures(&two), vec![sig.to_vec(), vec![9u8; 64]]);
    }

    #[test]
    fn signs_so_that_openssl_verifies_and_ostree_reads_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        <super::super::ostree_genkey::OstreeGenkey as Stage>::execute(&args(
            root,
            json!({"publickey": "/k/pub", "secretkey": "/k/sec"}),
        ))
        .unwrap();
        std::fs::create_dir_all(root.join("repo")).unwrap();
        std::fs::create_dir_all(root.join("content/usr")).unwrap();
        let repo = repo_arg(&root.join("repo"));
        assert!(Command::new("ostree").args(["init", "--mode=archive"]).arg(&repo).status().unwrap().success());
        let c = Command::new("ostree")
            .arg(&repo)
            .args(["commit", "-b", "os/ref"])
            .arg(format!("--tree=dir={}", root.join("content").display()))
            .output()
            .unwrap();
        assert!(c.status.success());
        let commit = String::from_utf8_lossy(&c.stdout).trim().to_owned();
        OstreeSign::execute(&args(root, json!({"repo": "/repo", "ref": "os/ref", "key": "/k/sec"}))).unwrap();
        OstreeSign::execute(&args(root, json!({"repo": "/repo", "ref": "os/ref", "key": "/k/sec"}))).unwrap();
        // libostree parses what we wrote
        let shown = Command::new("ostree")
            .arg(&repo)
            .args(["show", "--print-detached-metadata-key=ostree.sign.ed25519", "os/ref"])
            .output()
            .unwrap();
        assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
        let meta = std::fs::read(object_path(&root.join("repo"), &commit, "commitmeta")).unwrap();
        let sigs = signatures(&meta);
        assert_eq!(sigs.len(), 2);
        // ed25519 is deterministic: signing twice gives the same signature
        assert_eq!(sigs[0], sigs[1]);
        // openssl verifies it with the public key
        let public = base64::engine::general_purpose::STANDARD
            .decode(std::fs::read_to_string(root.join("k/pub")).unwrap())
            .unwrap();
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(&public);
        std::fs::write(root.join("pub.der"), &der).unwrap();
        std::fs::write(root.join("sig"), &sigs[0]).unwrap();
        let verify = |file: &Path| {
            Command::new("openssl")
                .args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-rawin", "-inkey"])
                .arg(root.join("pub.der"))
                .arg("-in")
                .arg(file)
                .arg("-sigfile")
                .arg(root.join("sig"))
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify(&object_path(&root.join("repo"), &commit, "commit")));
        std::fs::write(root.join("other"), b"not the commit").unwrap();
        assert!(!verify(&root.join("other")));
    }
}
