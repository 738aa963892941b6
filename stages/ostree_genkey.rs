//! `org.osbuild.ostree.genkey`: make an ed25519 key pair for signing OSTree commits, written
//! in the form `ostree sign` reads: the public key (32 bytes) and the secret key (the 32-byte
//! seed followed by the public key) each base64 encoded on one line without a newline, as
//! upstream (which takes them from `openssl genpkey`; so do we, from the build root). The
//! secret key file is mode 0600. Unlike upstream, missing parent directories are created.

use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use base64::Engine;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub publickey: String,
    pub secretkey: String,
}

fn openssl_der(args: &[&str], pem: &std::path::Path) -> Result<Vec<u8>, StageError> {
    let der = Command::new("openssl").args(args).arg("-in").arg(pem).run_get_output(OstreeGenkey::NAME)?;
    if der.len() < 32 {
        return Err(StageError::ToolUnexpected {
            tool: format!("openssl {}", args.join(" ")),
            what: format!("gave a {}-byte key", der.len()),
        });
    }
    Ok(der[der.len() - 32..].to_vec())
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeGenkey;

impl Stage for OstreeGenkey {
    const NAME: &'static str = "org.osbuild.ostree.genkey";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let public = tree_path(args, &options.publickey, false)?;
        let secret = tree_path(args, &options.secretkey, false)?;
        // the private key only ever in a directory of ours, removed however the stage ends
        let dir = tempfile::Builder::new()
            .prefix(".genkey-")
            .tempdir_in(&args.tree)
            .map_err(StageError::io("cannot create a scratch directory in", &args.tree))?;
        let pem = dir.path().join("key.pem");
        let result = (|| {
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "ed25519", "-outform", "PEM", "-out"])
                .arg(&pem)
                .run(OstreeGenkey::NAME)?;
            let pubkey = openssl_der(&["pkey", "-outform", "DER", "-pubout"], &pem)?;
            let seed = openssl_der(&["pkey", "-outform", "DER"], &pem)?;
            Ok::<_, StageError>((pubkey, seed))
        })();
        drop(dir);
        let (pubkey, seed) = result?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut sec = seed;
        sec.extend_from_slice(&pubkey);
        create_parents(&public)?;
        create_parents(&secret)?;
        write_file(&public, b64.encode(&pubkey).as_bytes(), 0o644)?;
        write_file(&secret, b64.encode(&sec).as_bytes(), 0o600)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn key_pair_halves_match() {
        let t = tempfile::tempdir().unwrap();
        OstreeGenkey::execute(&args(t.path(), json!({"publickey": "/keys/pub", "secretkey": "/keys/sec"}))).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let public = b64.decode(std::fs::read(t.path().join("keys/pub")).unwrap()).unwrap();
        let secret = b64.decode(std::fs::read(t.path().join("keys/sec")).unwrap()).unwrap();
        assert_eq!(public.len(), 32);
        assert_eq!(secret.len(), 64);
        assert_eq!(&secret[32..], &public[..]);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1, "no temporary files left");
    }
}
