//! OSTree revisions resolved in a repository directory the way libostree's
//! `ostree_repo_resolve_rev` does it (`src/libostree/ostree-repo-refs.c`), so a ref that
//! `ostree rev-parse` finds is found here too, and the same commit comes back:
//!
//! 1. a full checksum (64 lowercase hex digits) is the answer as it is, without a look in
//!    the repository;
//! 2. a shorter lowercase hex string (the empty one included) that starts exactly one commit
//!    object's checksum names that commit; more than one is an error ("not unique"), none
//!    goes on to 3;
//! 3. `REV^` is the parent of the commit `REV` resolves to (with the remote fallback of 5
//!    whatever was asked for), an error if it has none;
//! 4. `remote:ref` is `refs/remotes/<remote>/<ref>`;
//! 5. `ref` is `refs/heads/<ref>`; failing that, with [`Lookup::WithRemotes`],
//!    `refs/remotes/<ref>` (its first component taken as the remote), then `<ref>` under each
//!    remote in `refs/remotes/` in the order the directory lists them: the first one that
//!    has it wins, as in libostree (no ambiguity error between remotes).
//!
//! `refs/mirrors/<collection-id>/<ref>` belongs to collection refs
//! (`ostree_repo_resolve_collection_ref`), which `resolve_rev` never consults; neither do we.
//! Not supported: a parent repository (`parent=` in the repo config) and refs written in an
//! open transaction, neither of which exists in the repositories osbuild works with.
//!
//! Every file is read through [`Root`] (`openat2(RESOLVE_IN_ROOT)`, regular files only,
//! bounded), so a repository inside a tree being built cannot make the host read anything
//! outside it, and a FIFO in `refs/` fails at once instead of blocking.

use osbuild_sys::{EntryKind, PathError, Root};
use std::io::ErrorKind;
use std::path::PathBuf;

/// Length of a commit checksum in hex.
pub const CHECKSUM_LEN: usize = 64;
/// A ref file holds a checksum and a newline; anything much larger is not a ref.
const MAX_REF_FILE: u64 = 4096;
/// Commit objects are small (metadata, a few checksums); this only stops a runaway read.
const MAX_COMMIT_OBJECT: u64 = 64 << 20;

/// Whether libostree calls `s` a checksum: exactly 64 lowercase hex digits.
pub fn is_checksum(s: &str) -> bool {
    s.len() == CHECKSUM_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A ref, optionally qualified by a remote (`remote:ref`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refspec<'a> {
    pub remote: Option<&'a str>,
    pub name: &'a str,
}

/// `ostree_parse_refspec`: `[remote:]fragment(/fragment)*`, each fragment a word character
/// followed by word characters, `-`, `.` or `_`. `None` when `s` is not one.
pub fn parse_refspec(s: &str) -> Option<Refspec<'_>> {
    let (remote, name) = match s.split_once(':') {
        Some((remote, name)) => (Some(remote), name),
        None => (None, s),
    };
    if remote.is_some_and(|r| !is_fragment(r)) || !name.split('/').all(is_fragment) {
        return None;
    }
    Some(Refspec { remote, name })
}

/// libostree's `[\w\d][-._\w\d]*` (GLib regexes match Unicode word characters).
fn is_fragment(f: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut chars = f.chars();
    chars.next().is_some_and(word) && chars.all(|c| word(c) || matches!(c, '-' | '.'))
}

/// Where a ref without a remote may be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `ostree_repo_resolve_rev` (and `ostree rev-parse`): local branches first, then remotes.
    WithRemotes,
    /// `ostree_repo_resolve_rev_ext`: local branches only.
    LocalOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("'{rev}' is neither a commit checksum nor a valid ref ([remote:]name)")]
    Invalid { rev: String },
    #[error("ref '{rev}' not found in the ostree repository {}", repo.display())]
    NotFound { rev: String, repo: PathBuf },
    #[error("'{prefix}' is the start of more than one commit in the ostree repository {}", repo.display())]
    NotUnique { prefix: String, repo: PathBuf },
    #[error("commit {commit} has no parent")]
    NoParent { commit: String },
    #[error("{file} in the ostree repository {} holds no commit checksum", repo.display())]
    BadRefFile { file: String, repo: PathBuf },
    #[error("commit object {commit} in the ostree repository {} is malformed", repo.display())]
    BadCommit { commit: String, repo: PathBuf },
    #[error(transparent)]
    Path(#[from] PathError),
}

/// The commit checksum `rev` names in the repository `repo` (see the module documentation).
pub fn resolve_rev(repo: &Root, rev: &str, lookup: Lookup) -> Result<String, RefError> {
    if is_checksum(rev) {
        return Ok(rev.to_owned());
    }
    if let Some(commit) = partial_checksum(repo, rev)? {
        return Ok(commit);
    }
    if let Some(child) = rev.strip_suffix('^') {
        let commit = resolve_rev(repo, child, Lookup::WithRemotes)?;
        return commit_parent(repo, &commit)?.ok_or(RefError::NoParent { commit });
    }
    let spec = parse_refspec(rev).ok_or_else(|| RefError::Invalid { rev: rev.to_owned() })?;
    let not_found = || RefError::NotFound { rev: rev.to_owned(), repo: repo.path().to_owned() };
    if let Some(remote) = spec.remote {
        return read_ref(repo, &format!("refs/remotes/{remote}/{}", spec.name))?.ok_or_else(not_found);
    }
    if let Some(commit) = read_ref(repo, &format!("refs/heads/{}", spec.name))? {
        return Ok(commit);
    }
    if lookup == Lookup::LocalOnly {
        return Err(not_found());
    }
    if let Some(commit) = read_ref(repo, &format!("refs/remotes/{}", spec.name))? {
        return Ok(commit);
    }
    let remotes = match repo.read_dir("refs/remotes") {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    for remote in remotes.iter().filter(|e| e.kind == EntryKind::Dir) {
        let file = format!("refs/remotes/{}/{}", remote.name.to_string_lossy(), spec.name);
        if let Some(commit) = read_ref(repo, &file)? {
            return Ok(commit);
        }
    }
    Err(not_found())
}

/// The checksum in the ref file `rel`; `None` when there is no such file.
fn read_ref(repo: &Root, rel: &str) -> Result<Option<String>, RefError> {
    let bytes = match repo.read_bounded(rel, MAX_REF_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = || RefError::BadRefFile { file: rel.to_owned(), repo: repo.path().to_owned() };
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    // g_strchomp: trailing whitespace only.
    let commit = text.trim_end_matches(|c: char| c.is_ascii_whitespace());
    if !is_checksum(commit) {
        return Err(bad());
    }
    Ok(Some(commit.to_owned()))
}

/// `ostree_repo_resolve_partial_checksum`: the one commit object whose checksum starts with
/// `prefix` (lowercase hex, at most 64 digits, possibly empty).
fn partial_checksum(repo: &Root, prefix: &str) -> Result<Option<String>, RefError> {
    if prefix.len() > CHECKSUM_LEN || !prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Ok(None);
    }
    // libostree looks in all 256 object directories; only those that can match matter.
    let dirs: Vec<String> = (0..=255u8).map(|b| format!("{b:02x}")).filter(|d| prefix_matches(d, prefix)).collect();
    let mut found = Vec::new();
    for dir in dirs {
        let entries = match repo.read_dir(format!("objects/{dir}")) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for e in entries {
            let name = e.name.to_string_lossy();
            let Some((stem, "commit")) = name.rsplit_once('.') else { continue };
            if stem.len() != CHECKSUM_LEN - 2 {
                continue;
            }
            let checksum = format!("{dir}{stem}");
            if checksum.starts_with(prefix) {
                found.push(checksum);
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(RefError::NotUnique { prefix: prefix.to_owned(), repo: repo.path().to_owned() }),
    }
}

/// Whether a two-digit object directory can hold checksums starting with `prefix`.
fn prefix_matches(dir: &str, prefix: &str) -> bool {
    let n = prefix.len().min(2);
    dir[..n] == prefix[..n]
}

/// Whether the repository holds the commit object `commit` (a full checksum).
pub fn has_commit(repo: &Root, commit: &str) -> Result<bool, RefError> {
    if !is_checksum(commit) {
        return Err(RefError::Invalid { rev: commit.to_owned() });
    }
    let st = repo.stat(commit_path(commit), true)?;
    Ok(st.is_some_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile))
}

fn commit_path(commit: &str) -> String {
    format!("objects/{}/{}.commit", &commit[..2], &commit[2..])
}

/// The parent of the commit `commit`, read from its commit object; `None` for a root commit.
pub fn commit_parent(repo: &Root, commit: &str) -> Result<Option<String>, RefError> {
    if !is_checksum(commit) {
        return Err(RefError::Invalid { rev: commit.to_owned() });
    }
    let bytes = repo.read_bounded(commit_path(commit), MAX_COMMIT_OBJECT)?;
    let bad = || RefError::BadCommit { commit: commit.to_owned(), repo: repo.path().to_owned() };
    let parent = commit_parent_field(&bytes).ok_or_else(bad)?;
    match parent.len() {
        0 => Ok(None),
        32 => Ok(Some(hex::encode(parent))),
        _ => Err(bad()),
    }
}

/// The second member (`ay`, the parent's binary checksum) of a serialized commit, a GVariant
/// `(a{sv}aya(say)sstayay)`. The members before the fixed-size `t` and all but the last after
/// it are variable-sized, so the tuple ends with six framing offsets, little-endian, the
/// first member's end last; the parent starts where the first member ends (byte-aligned).
fn commit_parent_field(bytes: &[u8]) -> Option<&[u8]> {
    let len = bytes.len();
    let size = match len {
        0 => return None,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    let offsets_start = len.checked_sub(6 * size)?;
    let offset = |i: usize| -> Option<usize> {
        let at = len - (i + 1) * size;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(&bytes[at..at + size]);
        usize::try_from(u64::from_le_bytes(v)).ok()
    };
    let (start, end) = (offset(0)?, offset(1)?);
    (start <= end && end <= offsets_start).then(|| &bytes[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn ostree(repo: &Path, args: &[&str]) -> std::process::Output {
        Command::new("ostree")
            .args(args)
            .arg(format!("--repo={}", repo.display()))
            .output()
            .expect("ostree is needed for these tests: run `make deps`")
    }

    fn ok(repo: &Path, args: &[&str]) -> String {
        let o = ostree(repo, args);
        assert!(o.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// A repository with: two commits on `os/x86_64/iot` (the second's parent is the first),
    /// one more on `other`; remote refs: `r1:os/x86_64/iot` (the second commit),
    /// `r1:only-remote`, `r2:only-remote` (different commits), `r2:osbuild-rs/x86_64/iot`
    /// (the ref under a remote of the same name as its first component, as `ostree.deploy`
    /// with `"remote": "osbuild-rs"` leaves it); a mirror ref.
    fn repo(dir: &Path) -> (PathBuf, Vec<String>) {
        let repo = dir.join("repo");
        ok(&repo, &["init", "--mode=archive"]);
        let mut commits = Vec::new();
        for (i, branch) in ["os/x86_64/iot", "os/x86_64/iot", "other", "loose"].into_iter().enumerate() {
            let tree = dir.join(format!("tree{i}"));
            std::fs::create_dir_all(&tree).unwrap();
            std::fs::write(tree.join("f"), format!("{i}")).unwrap();
            let c = ok(
                &repo,
                &["commit", &format!("--branch={branch}"), "--subject=t", &format!("--tree=dir={}", tree.display())],
            );
            commits.push(c);
        }
        for (spec, c) in [
            ("r1:os/x86_64/iot", 1),
            ("r1:only-remote", 2),
            ("r2:only-remote", 3),
            ("osbuild-rs:osbuild-rs/x86_64/iot", 0),
        ] {
            ok(&repo, &["refs", &format!("--create={spec}"), &commits[c]]);
        }
        std::fs::create_dir_all(repo.join("refs/mirrors/org.example.Os")).unwrap();
        std::fs::write(repo.join("refs/mirrors/org.example.Os/mirrored"), format!("{}\n", commits[2])).unwrap();
        (repo, commits)
    }

    #[test]
    fn answers_as_ostree_rev_parse_does() {
        let t = tempfile::tempdir().unwrap();
        let (repo, commits) = repo(t.path());
        let root = Root::open(&repo).unwrap();
        let mut revs: Vec<String> = [
            "os/x86_64/iot",
            "os/x86_64/iot^",
            "os/x86_64/iot^^",
            "r1:os/x86_64/iot",
            "r1:os/x86_64/iot^",
            "r2:os/x86_64/iot",
            "only-remote",
            "r2:only-remote",
            "osbuild-rs/x86_64/iot",
            "osbuild-rs:osbuild-rs/x86_64/iot",
            "x86_64/iot",
            "mirrored",
            "org.example.Os/mirrored",
            "other",
            "nope",
            "nope:other",
            ".bad",
            "a//b",
            "bad:",
            "",
            "0",
            "f",
            "OS/X86_64/IOT",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for c in &commits {
            revs.extend([c.clone(), c[..7].to_owned(), c[..1].to_owned(), c.to_uppercase(), format!("{c}^")]);
        }
        revs.push("0".repeat(64));
        for rev in &revs {
            let ours = resolve_rev(&root, rev, Lookup::WithRemotes);
            let o = ostree(&repo, &["rev-parse", rev]);
            let theirs = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            match (&ours, o.status.success()) {
                (Ok(c), true) => assert_eq!(c, &theirs, "{rev:?}"),
                (Err(_), false) => {}
                _ => {
                    panic!("{rev:?}: ours {ours:?}, ostree rev-parse {theirs:?} {}", String::from_utf8_lossy(&o.stderr))
                }
            }
        }
        // The behaviours the list above pins, spelled out.
        let r = |rev: &str| resolve_rev(&root, rev, Lookup::WithRemotes);
        assert_eq!(r("osbuild-rs/x86_64/iot").unwrap(), commits[0], "a ref found under a remote without naming it");
        assert_eq!(r("os/x86_64/iot^").unwrap(), commits[0]);
        assert!(matches!(r("loose^"), Err(RefError::NoParent { .. })));
        assert!(matches!(r("nope"), Err(RefError::NotFound { .. })));
        assert!(matches!(r("mirrored"), Err(RefError::NotFound { .. })), "mirrors are for collection refs");
        assert_eq!(r(&"0".repeat(64)).unwrap(), "0".repeat(64), "a full checksum is not looked up");
        let e = resolve_rev(&root, "osbuild-rs/x86_64/iot", Lookup::LocalOnly).unwrap_err();
        assert!(e.to_string().contains("ref 'osbuild-rs/x86_64/iot' not found"), "{e}");
        assert!(has_commit(&root, &commits[1]).unwrap() && !has_commit(&root, &"0".repeat(64)).unwrap());
    }

    #[test]
    fn ambiguous_prefixes_and_remotes() {
        let t = tempfile::tempdir().unwrap();
        let (repo, commits) = repo(t.path());
        let root = Root::open(&repo).unwrap();
        // The empty prefix starts every commit: ambiguous here, as for libostree.
        assert!(matches!(resolve_rev(&root, "", Lookup::WithRemotes), Err(RefError::NotUnique { .. })));
        assert!(!ostree(&repo, &["rev-parse", ""]).status.success());
        // Two remotes with the same ref: the first the directory lists wins, as in libostree.
        let got = resolve_rev(&root, "only-remote", Lookup::WithRemotes).unwrap();
        assert!(got == commits[2] || got == commits[3]);
        assert_eq!(got, ok(&repo, &["rev-parse", "only-remote"]));
    }

    #[test]
    fn ref_files_are_read_confined_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        let (repo, commits) = repo(t.path());
        let secret = t.path().join("secret");
        std::fs::write(&secret, format!("{}\n", commits[3])).unwrap();
        std::os::unix::fs::symlink(&secret, repo.join("refs/heads/escape")).unwrap();
        assert!(Command::new("mkfifo").arg(repo.join("refs/heads/fifo")).status().unwrap().success());
        std::fs::write(repo.join("refs/heads/garbage"), "not a checksum\n").unwrap();
        let root = Root::open(&repo).unwrap();
        // The absolute link is followed inside the repository, where there is no such file.
        assert!(matches!(resolve_rev(&root, "escape", Lookup::LocalOnly), Err(RefError::NotFound { .. })));
        let started = std::time::Instant::now();
        let e = resolve_rev(&root, "fifo", Lookup::LocalOnly).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "a FIFO must not block");
        assert!(osbuild_sys::error_chain(&e).contains("not a regular file"), "{e}");
        assert!(matches!(resolve_rev(&root, "garbage", Lookup::LocalOnly), Err(RefError::BadRefFile { .. })));
    }

    #[test]
    fn refspecs() {
        assert_eq!(parse_refspec("a/b"), Some(Refspec { remote: None, name: "a/b" }));
        assert_eq!(parse_refspec("r:a/b.c-d_e"), Some(Refspec { remote: Some("r"), name: "a/b.c-d_e" }));
        for bad in ["", ":a", "r:", "a:b:c", ".a", "a/", "/a", "a//b", "a b", "-r:a"] {
            assert_eq!(parse_refspec(bad), None, "{bad:?}");
        }
        assert!(is_checksum(&"a".repeat(64)) && !is_checksum(&"A".repeat(64)) && !is_checksum("ab"));
    }
}
