//! Shared stage helpers: confined path resolution, upstream's location URLs, writing files
//! in the tree, mtime clamping and small serde helpers for options.
//!
//! Confinement: a path named by a manifest is resolved component by component below a root
//! (the tree, a mount or an input). Symlinks met on the way are followed *inside that root*:
//! an absolute target starts again at the root, and `..` never climbs above it. The result is
//! a host path whose directories are all real directories inside the root, so neither an
//! option nor a hostile symlink in the tree can make a stage write on the host.

use crate::{StageArgs, StageError};
use osbuild_sys::Root;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Resolve `path` (absolute or relative, both taken from `root`) inside `root`, with the
/// project's one confinement rule ([`osbuild_sys::Root`]: `openat2(RESOLVE_IN_ROOT)`).
///
/// Symlinks in directory components are always followed within `root`; the final component
/// is followed only when `follow_final` is set (use `false` to act on a link itself, e.g. to
/// create or remove it). Components need not exist: missing ones are kept verbatim.
pub fn resolve_in_root(root: &Path, path: impl AsRef<Path>, follow_final: bool) -> Result<PathBuf, StageError> {
    let path = path.as_ref();
    let r = match Root::open(root) {
        Ok(r) => r,
        // Nothing below a root that does not exist can be a symlink: spell the path out.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lexical_join(root, path)),
        Err(e) => return Err(e.into()),
    };
    r.resolve(path, follow_final).map_err(|e| {
        if e.errno() == Some(libc::ELOOP) {
            StageError::SymlinkLoop { root: root.to_owned(), path: path.to_string_lossy().into_owned() }
        } else {
            e.into()
        }
    })
}

/// `root` joined with `path`'s normal components, `..` never climbing above `root`.
fn lexical_join(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut out = root.to_owned();
    out.extend(parts);
    out
}

/// Resolve a path inside the stage's tree (see [`resolve_in_root`]).
pub fn tree_path(args: &StageArgs, path: impl AsRef<Path>, follow_final: bool) -> Result<PathBuf, StageError> {
    resolve_in_root(&args.tree, path, follow_final)
}

/// Split one of upstream's location URLs (`tree:///p`, `mount://NAME/p`, `input://NAME/p`;
/// no scheme means `tree://`) into its root on the host and its path below that root.
pub fn location_parts(location: &str, args: &StageArgs) -> Result<(PathBuf, String), StageError> {
    let full = if location.contains("://") { location.to_owned() } else { format!("tree://{location}") };
    let (scheme, rest) = full.split_once("://").expect("has a scheme");
    let (netloc, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let root = match scheme {
        "tree" => args.tree.clone(),
        "mount" => args.mount_path(netloc)?,
        "input" => args.input_path(netloc)?,
        other => return Err(StageError::Invalid(format!("unsupported scheme '{other}' in location {location}"))),
    };
    if !path.starts_with('/') {
        return Err(StageError::Invalid(format!("the path of location {location} must start with '/'")));
    }
    Ok((root, path.to_owned()))
}

/// Resolve one of upstream's location URLs to a confined host path. A trailing `/` is kept as
/// a trailing `/.` (as upstream does), so `cp` copies a directory's contents.
pub fn location(location: &str, args: &StageArgs, follow_final: bool) -> Result<PathBuf, StageError> {
    let (root, path) = location_parts(location, args)?;
    let mut resolved = resolve_in_root(&root, &path, follow_final || path.ends_with('/'))?;
    if path.ends_with('/') {
        resolved.push(".");
    }
    Ok(resolved)
}

/// Create (or truncate) the file at the already-resolved `path` and write `data`, refusing
/// to follow a symlink in the final component.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), StageError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(StageError::io("cannot write", path))?;
    f.write_all(data).map_err(StageError::io("cannot write", path))
}

/// [`write_file`], then set `mode` exactly: an existing file keeps its mode on open and a new
/// one is masked by the umask, where upstream chmods the file after writing it.
pub fn write_file_chmod(path: &Path, data: &[u8], mode: u32) -> Result<(), StageError> {
    write_file(path, data, mode)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(StageError::io("cannot chmod", path))
}

/// Create the file at the already-resolved `path`, which must not exist yet (as Python's
/// `open(path, "x")`), and write `data`.
pub fn write_new_file(path: &Path, data: &[u8], mode: u32) -> Result<(), StageError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(StageError::io("cannot create", path))?;
    f.write_all(data).map_err(StageError::io("cannot write", path))
}

/// Remove the file or symlink at the already-resolved `path`; `Ok(true)` if it existed.
pub fn remove_if_exists(path: &Path) -> Result<bool, StageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StageError::Io { op: "cannot remove", path: path.to_owned(), source: e }),
    }
}

/// Create `/etc`-style parent directories of the resolved `path` (mode 0755) if missing.
pub fn create_parents(path: &Path) -> Result<(), StageError> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(StageError::io("cannot create directory", parent))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Remove a leftover `/etc/.pwd.lock` from the tree. Current `systemd-firstboot` (which
/// upstream's hostname, timezone and locale stages run) takes that lock and removes it when
/// done, so the tree ends up without it; we do the same to match upstream's result.
pub fn drop_pwd_lock(args: &StageArgs) -> Result<(), StageError> {
    let lock = tree_path(args, "/etc/.pwd.lock", false)?;
    if std::fs::symlink_metadata(&lock).is_ok_and(|m| m.is_file()) {
        remove_if_exists(&lock)?;
    }
    Ok(())
}

/// A JSON object kept in document order (upstream iterates its dicts in that order).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry()? {
                    out.push(kv);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// An object with at least one key, then read as `T`.
#[derive(Debug)]
pub struct NonEmptyObject<T>(pub T);

impl<T: serde::Serialize> serde::Serialize for NonEmptyObject<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Options read as `T` (names, types and required keys checked by `T`'s `Deserialize`) that
/// a stage writes out in the order the manifest gives them, as upstream does (Python dicts
/// keep their order; a struct does not). [`InOrder::value`] is `T` serialized again, its
/// keys put back in the manifest's order.
#[derive(Debug)]
pub struct InOrder<T> {
    typed: T,
    given: serde_json::Value,
}

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for InOrder<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = serde_json::Value::deserialize(d)?;
        let typed = T::deserialize(&given).map_err(serde::de::Error::custom)?;
        Ok(InOrder { typed, given })
    }
}

impl<T: serde::Serialize> InOrder<T> {
    /// The typed options.
    pub fn get(&self) -> &T {
        &self.typed
    }

    /// The typed options as JSON, objects' keys in the manifest's order (keys the manifest
    /// does not give are left out).
    pub fn value(&self) -> serde_json::Value {
        let typed = serde_json::to_value(&self.typed).expect("options serialise");
        in_order(typed, &self.given)
    }
}

/// The object `given` read as `T`, and `T` serialized again with `given`'s order: for option
/// writers that walk JSON (see [`InOrder`]).
pub fn typed_in_order<T>(
    given: serde_json::Value,
) -> Result<(T, serde_json::Map<String, serde_json::Value>), serde_json::Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed = T::deserialize(&given)?;
    match in_order(serde_json::to_value(&typed)?, &given) {
        serde_json::Value::Object(m) => Ok((typed, m)),
        _ => Err(serde::de::Error::custom("expected an object")),
    }
}

fn in_order(typed: serde_json::Value, given: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (typed, given) {
        (Value::Object(mut t), Value::Object(g)) => {
            let mut out = serde_json::Map::new();
            for (k, gv) in g {
                if let Some(tv) = t.remove(k) {
                    out.insert(k.clone(), in_order(tv, gv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(t), Value::Array(g)) => {
            Value::Array(t.into_iter().zip(g).map(|(tv, gv)| in_order(tv, gv)).collect())
        }
        (typed, _) => typed,
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for NonEmptyObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::{Map, Value};
        let v = Map::<String, Value>::deserialize(d)?;
        if v.is_empty() {
            return Err(serde::de::Error::custom("the object must not be empty"));
        }
        T::deserialize(Value::Object(v)).map(NonEmptyObject).map_err(serde::de::Error::custom)
    }
}

/// A scratch directory in the sandbox's `/tmp` (`<prefix>.XXXXXX`), removed when dropped
/// (also when the stage fails).
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir, StageError> {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}."))
        .tempdir()
        .map_err(StageError::io("cannot create a scratch directory in", std::env::temp_dir()))
}

/// `true`: the serde default of options that upstream turns on unless told otherwise
/// (`#[serde(default = "yes")]`).
pub fn yes() -> bool {
    true
}

/// Set the mtime of every entry below `root` (and `root` itself) that is newer than `epoch`
/// to `epoch`, without following symlinks or leaving the file system of `root`. Access times
/// are left as they are, and so are immutable entries (ostree marks deployments so).
pub fn clamp_mtimes(root: &Path, epoch: i64) -> Result<(), StageError> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_OMIT};
    use std::os::unix::fs::MetadataExt;
    let times = Timestamps {
        last_access: Timespec { tv_sec: 0, tv_nsec: UTIME_OMIT },
        last_modification: Timespec { tv_sec: epoch, tv_nsec: 0 },
    };
    for entry in walkdir::WalkDir::new(root).same_file_system(true) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let meta = entry.metadata().map_err(|e| walk_error(root, e))?;
        if meta.mtime() <= epoch {
            continue;
        }
        match utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(()) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => {
                return Err(StageError::Io { op: "cannot set the times of", path: entry.into_path(), source: e.into() })
            }
        }
    }
    Ok(())
}

/// [`StageError::Io`] for a failed step of a `walkdir` walk below `root`, naming the path
/// where it failed.
pub fn walk_error(root: &Path, e: walkdir::Error) -> StageError {
    let path = e.path().unwrap_or(root).to_owned();
    let source = e.into_io_error().unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::ELOOP));
    StageError::Io { op: "cannot walk", path, source }
}

/// Python's truth value of a JSON value (`bool(x)`), which upstream uses to decide what to
/// hash, what to describe and which flags are set.
pub fn truthy(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::args;
    use serde_json::json;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_paths_stay_below_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        assert_eq!(resolve_in_root(root, "/etc/x", true).unwrap(), root.join("etc/x"));
        assert_eq!(resolve_in_root(root, "etc/./x", true).unwrap(), root.join("etc/x"));
        assert_eq!(resolve_in_root(root, "/../../../etc/passwd", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_in_root(root, "/", true).unwrap(), root);
    }

    #[test]
    fn absolute_symlink_is_rerooted() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink("/etc/passwd", root.join("etc/x")).unwrap();
        symlink("/etc", root.join("etcdir")).unwrap();
        assert_eq!(resolve_in_root(root, "/etc/x", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_in_root(root, "/etc/x", false).unwrap(), root.join("etc/x"));
        assert_eq!(resolve_in_root(root, "/etcdir/shadow", false).unwrap(), root.join("etc/shadow"));
    }

    #[test]
    fn relative_symlink_cannot_climb_out() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("../../../../../../etc/passwd", root.join("a/b/up")).unwrap();
        symlink("../../../../../../etc", root.join("a/b/updir")).unwrap();
        symlink("../c", root.join("a/b/sib")).unwrap();
        assert_eq!(resolve_in_root(root, "/a/b/up", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_in_root(root, "/a/b/updir/hosts", true).unwrap(), root.join("etc/hosts"));
        assert_eq!(resolve_in_root(root, "/a/b/sib/d", true).unwrap(), root.join("a/c/d"));
        // `..` after a symlink applies to the link's target, as the kernel does it
        assert_eq!(resolve_in_root(root, "/a/b/sib/../e", true).unwrap(), root.join("a/e"));
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        symlink("/loop", root.join("loop")).unwrap();
        let e = resolve_in_root(root, "/loop/x", true).unwrap_err();
        assert!(e.to_string().contains("too many levels of symbolic links"), "{e}");
    }

    #[test]
    fn writing_through_hostile_symlink_stays_in_tree() {
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("passwd");
        std::fs::write(&victim, "host\n").unwrap();
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        // both an absolute link at the host file and a relative one climbing far up
        symlink(&victim, root.join("etc/x")).unwrap();
        let up = format!("../../../../../../../../..{}", victim.display());
        symlink(&up, root.join("etc/y")).unwrap();
        for name in ["/etc/x", "/etc/y"] {
            let p = resolve_in_root(root, name, true).unwrap();
            assert!(p.starts_with(root), "{} escapes", p.display());
            create_parents(&p).unwrap();
            write_file(&p, b"tree\n", 0o644).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
        assert_eq!(std::fs::read_to_string(root.join(victim.strip_prefix("/").unwrap())).unwrap(), "tree\n");
    }

    #[test]
    fn mtimes_are_clamped_without_following_links() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), "x").unwrap();
        std::fs::write(outside.path().join("target"), "y").unwrap();
        symlink(outside.path().join("target"), t.path().join("l")).unwrap();
        symlink("/nonexistent", t.path().join("dangling")).unwrap();
        clamp_mtimes(t.path(), 1_000_000).unwrap();
        for p in ["", "d", "d/f", "l", "dangling"] {
            assert_eq!(std::fs::symlink_metadata(t.path().join(p)).unwrap().mtime(), 1_000_000, "{p}");
        }
        assert!(std::fs::metadata(outside.path().join("target")).unwrap().mtime() > 1_000_000, "target untouched");
        // older than the epoch: left as it is
        clamp_mtimes(t.path(), 2_000_000).unwrap();
        assert_eq!(std::fs::symlink_metadata(t.path().join("d/f")).unwrap().mtime(), 1_000_000);
        let e = clamp_mtimes(&t.path().join("nope"), 1).unwrap_err();
        assert!(
            crate::error_chain(&e).starts_with(&format!("cannot walk {}/nope: No such file", t.path().display())),
            "{e}"
        );
    }

    #[test]
    fn in_order_keeps_the_manifests_order_and_checks_types() {
        #[derive(serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        struct Section {
            #[serde(rename = "A")]
            a: Option<u64>,
            #[serde(rename = "B")]
            b: Option<Vec<String>>,
            #[serde(rename = "C")]
            c: Option<bool>,
        }
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Config {
            z: Option<Section>,
            y: Option<Section>,
        }
        let o: InOrder<Config> =
            serde_json::from_value(json!({"y": {"B": ["x", "w"], "A": 1}, "z": {"C": true}})).unwrap();
        assert_eq!(o.value().to_string(), r#"{"y":{"B":["x","w"],"A":1},"z":{"C":true}}"#);
        assert_eq!(o.get().y.as_ref().unwrap().a, Some(1));
        let e = serde_json::from_value::<InOrder<Config>>(json!({"y": {"A": "one"}})).err().unwrap().to_string();
        assert!(e.contains("invalid type: string \"one\", expected u64"), "{e}");
        let e = serde_json::from_value::<InOrder<Config>>(json!({"y": {"D": 1}})).err().unwrap().to_string();
        assert!(e.contains("unknown field `D`"), "{e}");
    }

    #[test]
    fn locations() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let mut a = args(&tree, json!({}));
        a.inputs.insert("in".into(), json!({"path": "/run/osbuild/inputs/in"}));
        a.mounts.insert("root".into(), json!({"path": "/run/osbuild/mounts/"}));
        a.paths.insert("mounts".into(), json!("/run/osbuild/mounts"));
        assert_eq!(location("tree:///etc/x", &a, true).unwrap(), tree.join("etc/x"));
        assert_eq!(location("/etc/x", &a, true).unwrap(), tree.join("etc/x"));
        assert_eq!(location("tree:///", &a, true).unwrap(), tree.join("."));
        assert_eq!(location("tree:///etc/", &a, true).unwrap(), tree.join("etc/."));
        assert_eq!(location("input://in/f", &a, true).unwrap(), Path::new("/run/osbuild/inputs/in/f"));
        assert_eq!(location("mount://root/boot", &a, true).unwrap(), Path::new("/run/osbuild/mounts/boot"));
        assert_eq!(location("mount:///boot", &a, true).unwrap(), Path::new("/run/osbuild/mounts/boot"));
        assert!(location("input://nope/f", &a, true).unwrap_err().to_string().contains("unknown input 'nope'"));
        assert!(location("mount://nope/f", &a, true).unwrap_err().to_string().contains("unknown mount 'nope'"));
        assert!(location("http://x/f", &a, true).unwrap_err().to_string().contains("unsupported scheme 'http'"));
        assert!(location("tree://x", &a, true).unwrap_err().to_string().contains("must start with '/'"));
    }
}
