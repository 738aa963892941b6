//! Object store tests on the real file system (tempdirs). Owner checks need root, as in CI.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use osbuild_rs::store::{ObjectStore, StoreError, WorkDir};
use serde_json::{json, Map, Value};

const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const ID_D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

/// Env var that turns `child_process_holds_workdir` into the helper run by another process.
const CHILD_ENV: &str = "OSBUILD_RS_STORE_TEST_CHILD";

fn meta(stage: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(stage.to_string(), json!({"packages": ["bash"]}));
    m
}

fn tmp_entries(store: &ObjectStore) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn object_entries(store: &ObjectStore) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(store.root().join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A work dir whose tree holds one file of `len` bytes.
fn work_with_file(store: &ObjectStore, len: usize) -> WorkDir {
    let work = store.new_workdir().unwrap();
    fs::write(work.tree().join("data"), vec![b'x'; len]).unwrap();
    work
}

fn set_last_used(store: &ObjectStore, id: &str, secs_ago: u64) {
    let f = File::options().write(true).open(store.root().join("objects").join(id).join("last-used")).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago)).unwrap();
}

#[test]
fn open_creates_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/store");
    let store = ObjectStore::open(&root).unwrap();
    assert_eq!(store.root(), fs::canonicalize(&root).unwrap());
    for sub in ["objects", "sources", "tmp"] {
        assert!(root.join(sub).is_dir(), "{sub}");
    }
    assert!(root.join("lock").is_file());
    assert_eq!(store.max_size(), None);
}

#[test]
fn two_opens_of_one_root_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let a = ObjectStore::open(dir.path()).unwrap();
    let b = ObjectStore::open(dir.path()).unwrap();
    // Both are usable, and see each other's objects.
    a.commit(work_with_file(&a, 3), ID_A, &meta("s1")).unwrap();
    assert!(b.contains(ID_A));
    b.commit(work_with_file(&b, 3), ID_B, &meta("s2")).unwrap();
    assert!(a.get(ID_B).is_some());
}

#[test]
fn new_workdir_has_empty_tree_0755_and_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = store.new_workdir().unwrap();
    assert_eq!(work.path().parent().unwrap(), store.root().join("tmp"));
    assert_eq!(work.tree(), work.path().join("tree"));
    let meta = fs::metadata(work.tree()).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(fs::read_dir(work.tree()).unwrap().count(), 0);
    assert!(work.path().join("lock").is_file());
    let other = store.new_workdir().unwrap();
    assert_ne!(work.path(), other.path());
}

#[test]
fn commit_renames_without_copying() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = work_with_file(&store, 10);
    let tree_ino = fs::metadata(work.tree()).unwrap().ino();
    let file_ino = fs::metadata(work.tree().join("data")).unwrap().ino();
    let dir_ino = fs::metadata(work.path()).unwrap().ino();

    assert!(!store.contains(ID_A));
    assert!(store.get(ID_A).is_none());
    store.commit(work, ID_A, &meta("stage-1")).unwrap();

    let obj = store.get(ID_A).unwrap();
    assert_eq!(obj, store.root().join("objects").join(ID_A));
    assert_eq!(store.tree_path(ID_A), obj.join("tree"));
    assert_eq!(fs::metadata(&obj).unwrap().ino(), dir_ino);
    assert_eq!(fs::metadata(obj.join("tree")).unwrap().ino(), tree_ino);
    assert_eq!(fs::metadata(obj.join("tree/data")).unwrap().ino(), file_ino);
    assert!(store.contains(ID_A));
    assert_eq!(store.read_meta(ID_A).unwrap(), meta("stage-1"));
    assert!(obj.join("meta.json").is_file());
    assert!(obj.join("last-used").is_file());
    assert!(!obj.join("lock").exists(), "the work dir lock file must not end up in the object");
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn get_updates_last_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    store.commit(work_with_file(&store, 1), ID_A, &Map::new()).unwrap();
    set_last_used(&store, ID_A, 3600);
    let last_used = store.root().join("objects").join(ID_A).join("last-used");
    let before = fs::metadata(&last_used).unwrap().modified().unwrap();
    store.get(ID_A).unwrap();
    let after = fs::metadata(&last_used).unwrap().modified().unwrap();
    assert!(after > before + Duration::from_secs(3000));
}

#[test]
fn commit_race_same_id_both_ok_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let first = work_with_file(&store, 1);
    let second = work_with_file(&store, 2);
    store.commit(first, ID_A, &meta("first")).unwrap();
    store.commit(second, ID_A, &meta("second")).unwrap();
    assert_eq!(object_entries(&store), vec![ID_A.to_string()]);
    assert_eq!(store.read_meta(ID_A).unwrap(), meta("first"));
    assert_eq!(fs::read(store.tree_path(ID_A).join("data")).unwrap().len(), 1);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn commit_race_concurrent_stores_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<_> = (0..4).map(|_| ObjectStore::open(dir.path()).unwrap()).collect();
    std::thread::scope(|s| {
        for (i, store) in stores.iter().enumerate() {
            s.spawn(move || {
                for id in [ID_A, ID_B, ID_C] {
                    let work = work_with_file(store, i + 1);
                    store.commit(work, id, &meta(&format!("writer-{i}"))).unwrap();
                }
            });
        }
    });
    assert_eq!(object_entries(&stores[0]), vec![ID_A.to_string(), ID_B.to_string(), ID_C.to_string()]);
    for id in [ID_A, ID_B, ID_C] {
        // Exactly one writer's complete object: tree and metadata from the same writer.
        let len = fs::read(stores[0].tree_path(id).join("data")).unwrap().len();
        assert_eq!(stores[0].read_meta(id).unwrap(), meta(&format!("writer-{}", len - 1)));
    }
    assert!(tmp_entries(&stores[0]).is_empty());
}

#[test]
fn dropped_workdir_leaves_nothing_in_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = store.new_workdir().unwrap();
    fs::create_dir_all(work.tree().join("usr/bin")).unwrap();
    fs::write(work.tree().join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
    // A read-only directory must not stop the cleanup.
    fs::set_permissions(work.tree().join("usr"), fs::Permissions::from_mode(0o555)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.tree().join("link")).unwrap();
    let path = work.path().to_path_buf();
    assert!(path.exists());
    drop(work);
    assert!(!path.exists());
    assert!(tmp_entries(&store).is_empty());
    assert!(Path::new("/etc/passwd").exists(), "symlinks are not followed when removing");
    assert!(object_entries(&store).is_empty());
}

#[test]
fn stale_tmp_entries_removed_on_open_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let tmp = store.root().join("tmp");

    // Left by a killed run: a lock file nobody holds.
    let stale = tmp.join("work-stale");
    fs::create_dir_all(stale.join("tree/etc")).unwrap();
    fs::write(stale.join("tree/etc/hostname"), b"x").unwrap();
    File::create(stale.join("lock")).unwrap();
    // Without a lock file and fresh: could be a work dir being created right now.
    let fresh = tmp.join("work-fresh");
    fs::create_dir(&fresh).unwrap();
    // Without a lock file and old: its creator died long ago.
    let old = tmp.join("work-old");
    fs::create_dir(&old).unwrap();
    File::open(&old).unwrap().set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    // A live work dir of this process.
    let live = store.new_workdir().unwrap();
    fs::write(live.tree().join("file"), b"x").unwrap();

    let again = ObjectStore::open(dir.path()).unwrap();
    assert!(!stale.exists());
    assert!(!old.exists());
    assert!(fresh.exists());
    assert!(live.tree().join("file").exists());
    assert_eq!(tmp_entries(&again), {
        let mut v = vec![fresh, live.path().to_path_buf()];
        v.sort();
        v
    });
}

/// Runs as the helper process when `CHILD_ENV` is set: holds a work dir until stdin closes.
#[test]
fn child_process_holds_workdir() {
    let Some(root) = std::env::var_os(CHILD_ENV) else { return };
    let store = ObjectStore::open(Path::new(&root)).unwrap();
    let work = store.new_workdir().unwrap();
    fs::write(work.tree().join("file"), b"child").unwrap();
    println!("WORKDIR={}", work.path().display());
    std::io::stdout().flush().unwrap();
    // Wait for stdin to close (or the parent to kill us); give up after a while so a failed parent
    // never leaves us behind.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(120));
}

#[test]
fn workdir_of_other_live_process_kept_killed_one_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_process_holds_workdir", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let path = loop {
        let line = lines.next().expect("child exited before creating its work dir").unwrap();
        // libtest prints "test <name> ... " on the same line before our output.
        if let Some((_, p)) = line.split_once("WORKDIR=") {
            break PathBuf::from(p);
        }
    };

    // The child is alive and holds its lock: opening the store keeps its work dir.
    let store = ObjectStore::open(&root).unwrap();
    assert!(path.join("tree/file").exists());
    assert_eq!(tmp_entries(&store), vec![path.clone()]);

    // Killed (no chance to clean up): its work dir is stale now and goes at the next open.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(path.exists());
    let store = ObjectStore::open(&root).unwrap();
    assert!(!path.exists());
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn clone_into_preserves_modes_owners_links_and_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = store.new_workdir().unwrap();
    let t = work.tree();
    fs::create_dir(t.join("dir")).unwrap();
    fs::set_permissions(t.join("dir"), fs::Permissions::from_mode(0o1750)).unwrap();
    fs::write(t.join("dir/suid"), b"binary").unwrap();
    fs::set_permissions(t.join("dir/suid"), fs::Permissions::from_mode(0o4711)).unwrap();
    fs::write(t.join("secret"), b"s").unwrap();
    fs::set_permissions(t.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(t.join("secret"), t.join("secret-link")).unwrap();
    std::os::unix::fs::symlink("dir/suid", t.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", t.join("dangling")).unwrap();
    let status = Command::new("mkfifo").arg(t.join("fifo")).status().unwrap();
    assert!(status.success());
    if is_root() {
        std::os::unix::fs::chown(t.join("secret"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(t.join("rel-link"), Some(42), Some(43)).unwrap();
        std::os::unix::fs::chown(t.join("dir"), Some(7), Some(8)).unwrap();
    }
    fs::set_permissions(&t, fs::Permissions::from_mode(0o700)).unwrap();
    store.commit(work, ID_A, &meta("base")).unwrap();

    let copy = store.new_workdir().unwrap();
    store.clone_into(ID_A, &copy).unwrap();
    let c = copy.tree();
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&c), 0o700, "mode of the tree root itself is kept");
    assert_eq!(mode(&c.join("dir")), 0o1750);
    assert_eq!(mode(&c.join("dir/suid")), 0o4711);
    assert_eq!(mode(&c.join("secret")), 0o600);
    assert_eq!(fs::read(c.join("dir/suid")).unwrap(), b"binary");
    let secret = fs::metadata(c.join("secret")).unwrap();
    let secret_link = fs::metadata(c.join("secret-link")).unwrap();
    assert_eq!(secret.ino(), secret_link.ino(), "hardlinks stay hardlinks");
    assert_ne!(secret.ino(), fs::metadata(store.tree_path(ID_A).join("secret")).unwrap().ino(), "a copy");
    assert_eq!(fs::read_link(c.join("rel-link")).unwrap(), PathBuf::from("dir/suid"));
    assert_eq!(fs::read_link(c.join("dangling")).unwrap(), PathBuf::from("/nonexistent/target"));
    assert!(fs::symlink_metadata(c.join("fifo")).unwrap().file_type().is_fifo());
    if is_root() {
        assert_eq!((secret.uid(), secret.gid()), (1234, 5678));
        let link = fs::symlink_metadata(c.join("rel-link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (42, 43));
        let d = fs::metadata(c.join("dir")).unwrap();
        assert_eq!((d.uid(), d.gid()), (7, 8));
    } else {
        eprintln!("not root: owners not checked");
    }
    // The committed object is untouched by work on the clone.
    fs::write(c.join("new"), b"n").unwrap();
    assert!(!store.tree_path(ID_A).join("new").exists());
}

#[test]
fn clone_into_missing_object_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = store.new_workdir().unwrap();
    let err = store.clone_into(ID_A, &work).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(ID_A));
}

#[test]
fn commit_copy_leaves_work_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let work = store.new_workdir().unwrap();
    fs::write(work.tree().join("one"), b"1").unwrap();
    let ino = fs::metadata(work.tree().join("one")).unwrap().ino();
    store.commit_copy(&work, ID_A, &meta("stage-1")).unwrap();

    // The work dir is untouched and still ours.
    assert_eq!(fs::metadata(work.tree().join("one")).unwrap().ino(), ino);
    assert!(work.path().join("lock").exists());
    fs::write(work.tree().join("two"), b"2").unwrap();
    // Committing the same id again is a no-op.
    store.commit_copy(&work, ID_A, &meta("stage-1")).unwrap();
    store.commit(work, ID_B, &meta("stage-2")).unwrap();

    assert!(store.tree_path(ID_A).join("one").exists());
    assert!(!store.tree_path(ID_A).join("two").exists(), "the checkpoint is a snapshot");
    assert!(store.tree_path(ID_B).join("two").exists());
    assert_eq!(store.read_meta(ID_A).unwrap(), meta("stage-1"));
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn sources_dir_created_on_demand_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let files = store.sources_dir("org.osbuild.files").unwrap();
    assert_eq!(files, store.root().join("sources/org.osbuild.files"));
    assert!(files.is_dir());
    assert_eq!(store.sources_dir("org.osbuild.files").unwrap(), files);
    for bad in ["", ".", "..", "../x", "a/b"] {
        assert!(matches!(store.sources_dir(bad), Err(StoreError::InvalidSourceKind { .. })), "{bad:?}");
    }
}

#[test]
fn size_counts_objects_and_sources_hardlinks_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let base = store.size().unwrap();
    assert_eq!(base, 0);

    let work = work_with_file(&store, 1000);
    fs::hard_link(work.tree().join("data"), work.tree().join("data-link")).unwrap();
    std::os::unix::fs::symlink("data", work.tree().join("sym")).unwrap();
    store.commit(work, ID_A, &Map::new()).unwrap();
    let meta_len = fs::metadata(store.root().join("objects").join(ID_A).join("meta.json")).unwrap().len();
    assert_eq!(store.size().unwrap(), 1000 + meta_len);
    assert_eq!(store.objects_size().unwrap(), 1000 + meta_len);

    let sources = store.sources_dir("org.osbuild.files").unwrap();
    fs::write(sources.join("sha256:0000"), vec![0u8; 500]).unwrap();
    assert_eq!(store.size().unwrap(), 1500 + meta_len);
    assert_eq!(store.objects_size().unwrap(), 1000 + meta_len, "sources are not objects");
    // Work in progress is not counted.
    let _work = work_with_file(&store, 7000);
    assert_eq!(store.size().unwrap(), 1500 + meta_len);
}

/// Three objects of 1000 bytes of data each plus `{}` metadata, used from oldest A to newest C.
fn store_with_three_objects(dir: &Path) -> ObjectStore {
    let store = ObjectStore::open(dir).unwrap();
    for (id, age) in [(ID_A, 300), (ID_B, 200), (ID_C, 100)] {
        store.commit(work_with_file(&store, 1000), id, &Map::new()).unwrap();
        set_last_used(&store, id, age);
    }
    store
}

#[test]
fn evict_without_max_size_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_three_objects(dir.path());
    assert_eq!(store.evict(&[]).unwrap(), 0);
    assert_eq!(object_entries(&store).len(), 3);
    store.set_max_size(Some(1_000_000));
    assert_eq!(store.evict(&[]).unwrap(), 0);
    assert_eq!(object_entries(&store).len(), 3);
}

#[test]
fn evict_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_three_objects(dir.path());
    let per_object = store.objects_size().unwrap() / 3;
    assert!(per_object >= 1000);
    // Room for two objects: the least recently used (A) goes.
    store.set_max_size(Some(2 * per_object + 10));
    assert_eq!(store.evict(&[]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_B.to_string(), ID_C.to_string()]);
    assert!(!store.contains(ID_A));
    assert!(store.get(ID_A).is_none());
    assert!(store.objects_size().unwrap() <= 2 * per_object + 10);
    assert!(tmp_entries(&store).is_empty(), "evicted objects are deleted, not parked in tmp");

    // Using B makes C the least recently used.
    store.get(ID_B).unwrap();
    store.set_max_size(Some(per_object + 10));
    assert_eq!(store.evict(&[]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_B.to_string()]);
}

#[test]
fn evict_respects_keep() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_three_objects(dir.path());
    let per_object = store.objects_size().unwrap() / 3;
    store.set_max_size(Some(2 * per_object + 10));
    // A is the oldest but kept: B goes instead.
    assert_eq!(store.evict(&[ID_A]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_A.to_string(), ID_C.to_string()]);

    // Limit below what the kept objects need: everything else goes, the kept ones stay.
    store.set_max_size(Some(0));
    assert_eq!(store.evict(&[ID_A, ID_C]).unwrap(), 0);
    assert_eq!(object_entries(&store), vec![ID_A.to_string(), ID_C.to_string()]);
    assert_eq!(store.evict(&[ID_C]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_C.to_string()]);
}

#[test]
fn evict_skips_objects_another_store_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_three_objects(dir.path());
    let per_object = store.objects_size().unwrap() / 3;
    // Another user (its own lock, like another process) is using A, the least recently used.
    let other = ObjectStore::open(dir.path()).unwrap();
    let other_dir = other.get(ID_A).unwrap();
    set_last_used(&store, ID_A, 300);
    store.set_max_size(Some(2 * per_object + 10));
    assert_eq!(store.evict(&[]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_A.to_string(), ID_C.to_string()]);
    assert!(other_dir.join("tree/data").exists());
    // Once the other user is gone, A can go.
    drop(other);
    store.set_max_size(Some(per_object + 10));
    assert_eq!(store.evict(&[ID_C]).unwrap(), per_object);
    assert_eq!(object_entries(&store), vec![ID_C.to_string()]);
}

#[test]
fn evict_then_commit_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_with_three_objects(dir.path());
    store.set_max_size(Some(0));
    store.evict(&[]).unwrap();
    assert!(object_entries(&store).is_empty());
    store.commit(work_with_file(&store, 5), ID_A, &meta("again")).unwrap();
    assert_eq!(store.read_meta(ID_A).unwrap(), meta("again"));
    assert_eq!(fs::read(store.get(ID_A).unwrap().join("tree/data")).unwrap().len(), 5);
}

#[test]
fn invalid_ids_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let bad_ids = [
        "",
        "..",
        "../../etc",
        "/etc",
        "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",
        "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for id in bad_ids {
        let work = work_with_file(&store, 1);
        assert!(matches!(store.commit(work, id, &Map::new()), Err(StoreError::InvalidId { .. })), "{id:?}");
        let work = work_with_file(&store, 1);
        assert!(matches!(store.commit_copy(&work, id, &Map::new()), Err(StoreError::InvalidId { .. })));
        assert!(matches!(store.clone_into(id, &work), Err(StoreError::InvalidId { .. })));
        assert!(matches!(store.read_meta(id), Err(StoreError::InvalidId { .. })));
        assert!(!store.contains(id));
        assert!(store.get(id).is_none());
        assert!(store.tree_path(id).starts_with(store.root().join("objects")));
        assert!(!store.tree_path(id).exists());
    }
    assert!(object_entries(&store).is_empty());
    assert!(tmp_entries(&store).is_empty());
    let err = store.read_meta("../x").unwrap_err().to_string();
    assert!(err.starts_with("invalid object id"), "{err}");
}

#[test]
fn read_meta_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let err = store.read_meta(ID_D).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    store.commit(work_with_file(&store, 1), ID_D, &Map::new()).unwrap();
    let meta_path = store.root().join("objects").join(ID_D).join("meta.json");
    assert_eq!(store.read_meta(ID_D).unwrap(), Map::new());
    // Simulate corruption (committed objects are otherwise never written).
    fs::write(&meta_path, b"[1, 2]").unwrap();
    let err = store.read_meta(ID_D).unwrap_err();
    assert!(matches!(err, StoreError::ParseMeta { .. }), "{err:?}");
    assert!(err.to_string().contains(&meta_path.display().to_string()), "{err}");
    fs::remove_file(&meta_path).unwrap();
    assert!(matches!(store.read_meta(ID_D), Err(StoreError::ReadMeta { .. })));
}

#[test]
fn commit_refuses_workdir_of_another_store() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = ObjectStore::open(a_dir.path()).unwrap();
    let b = ObjectStore::open(b_dir.path()).unwrap();
    let work = work_with_file(&a, 1);
    let err = b.commit(work, ID_A, &Map::new()).unwrap_err();
    assert!(matches!(err, StoreError::ForeignWorkDir { .. }), "{err:?}");
    assert!(!b.contains(ID_A) && !a.contains(ID_A));
    assert!(tmp_entries(&a).is_empty());
}

/// Unmounts (lazily) when dropped, so a failing test does not leave the mount behind.
struct BindMount(PathBuf);

impl BindMount {
    fn new(from: &Path, to: &Path) -> BindMount {
        let status = Command::new("mount").arg("--bind").arg(from).arg(to).status().expect("mount(8) is needed");
        assert!(status.success(), "mount --bind {} {} failed (needs root)", from.display(), to.display());
        BindMount(to.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn privileged_drop_never_removes_through_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("precious"), b"keep me").unwrap();
    let store = ObjectStore::open(&dir.path().join("store")).unwrap();
    let work = store.new_workdir().unwrap();
    let path = work.path().to_path_buf();
    fs::create_dir(work.tree().join("mnt")).unwrap();
    let mount = BindMount::new(&host, &work.tree().join("mnt"));
    assert!(work.tree().join("mnt/precious").exists());

    drop(work);
    assert_eq!(fs::read(host.join("precious")).unwrap(), b"keep me");
    assert!(path.exists(), "a work dir with a mount inside is left alone");

    // Once unmounted, it is stale and the next open removes it.
    drop(mount);
    let store = ObjectStore::open(store.root()).unwrap();
    assert!(!path.exists());
    assert!(tmp_entries(&store).is_empty());
    assert!(host.join("precious").exists());
}

/// `mount ARGS SOURCE TARGET`, unmounted (lazily) when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn new(args: &[&str], source: &Path, target: &Path) -> Mounted {
        let status = Command::new("mount").args(args).arg(source).arg(target).status().expect("mount(8) is needed");
        assert!(status.success(), "mount {args:?} {} {} failed (needs root)", source.display(), target.display());
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The store on an ext4 image whose backing file lives on a full tmpfs: writes succeed into the
/// page cache and are lost when the kernel writes them back ("lost async page write"), as on a
/// full thin volume or a failing disk. Before commits synced, such a tree became an object.
#[test]
fn lost_writes_fail_the_commit() {
    let dir = tempfile::Builder::new().tempdir_in("/var/tmp").unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("fs");
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    let _tmpfs = Mounted::new(&["-t", "tmpfs", "-o", "size=24m"], Path::new("tmpfs"), &backing);
    let image = backing.join("image");
    File::create(&image).unwrap().set_len(64 << 20).unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-O", "^has_journal", "-E", "lazy_itable_init=1"])
        .arg(&image)
        .status()
        .expect("mkfs.ext4 is needed");
    assert!(mkfs.success());
    // Fill the tmpfs: the image cannot grow any more.
    let mut filler = File::create(backing.join("filler")).unwrap();
    while filler.write_all(&[0u8; 1 << 16]).is_ok() {}
    let _ext4 = Mounted::new(&["-o", "loop"], &image, &mnt);

    let mut store = ObjectStore::open(&mnt.join("store")).unwrap();
    store.set_durable(true);
    let work = store.new_workdir().unwrap();
    fs::write(work.tree().join("data"), vec![7u8; 16 << 20]).expect("the write itself succeeds (page cache)");
    // Someone else syncs first and gets the error; the store must still see it.
    let _ = Command::new("sync").arg("-f").arg(&mnt).status();
    let err = store.commit(work, ID_A, &meta("s")).unwrap_err();
    let chain = osbuild_sys::error_chain(&err);
    assert!(matches!(err, StoreError::Sync { .. }), "{chain}");
    assert!(chain.contains("(os error 5)") || chain.contains("(os error 28)"), "errno lost: {chain}");
    assert!(!store.contains(ID_A), "a tree with lost writes became an object");
}

#[test]
fn store_errors_keep_their_errno() {
    let err = ObjectStore::open(Path::new("/dev/null/store")).unwrap_err();
    let io =
        std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>()).expect("an io::Error source");
    assert_eq!(io.raw_os_error(), Some(20));
    assert_eq!(
        osbuild_sys::error_chain(&err),
        "cannot create store directory /dev/null/store: Not a directory (os error 20)"
    );
}

#[test]
fn stale_download_staging_removed_on_open_live_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    let files = store.sources_dir("org.osbuild.files").unwrap();
    // A killed download: its staging dir with a partial file, lock not held by anyone.
    let dead = files.join(".tmp-dead");
    fs::create_dir(&dead).unwrap();
    File::create(dead.join("lock")).unwrap();
    fs::write(dead.join("part-1"), b"partial").unwrap();
    // A temp file an earlier version left beside the sources, long ago and just now.
    let old = files.join(".tmp-123-abc-0");
    File::create(&old).unwrap().set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    let fresh = files.join(".tmp-456-def-0");
    File::create(&fresh).unwrap();
    // A download running right now, and a stored source.
    let live = osbuild_rs::store::StagingDir::create(&files).unwrap();
    fs::write(live.path().join("part-2"), b"in progress").unwrap();
    fs::write(files.join(format!("sha256:{}", "0".repeat(64))), b"stored").unwrap();

    let _again = ObjectStore::open(dir.path()).unwrap();
    assert!(!dead.exists() && !old.exists());
    assert!(fresh.exists() && live.path().join("part-2").exists());
    assert!(files.join(format!("sha256:{}", "0".repeat(64))).exists());
    let live_path = live.path().to_path_buf();
    drop(live);
    assert!(!live_path.exists(), "a finished download leaves no staging directory");
}

#[test]
fn take_tree_moves_an_object_this_store_made_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("export");
    let store = ObjectStore::open(&dir.path().join("store")).unwrap();
    store.commit(work_with_file(&store, 7), ID_A, &meta("s1")).unwrap();
    let ino = fs::metadata(store.get(ID_A).unwrap().join("tree/data")).unwrap().ino();
    let mut seen = None;
    let taken = store
        .take_tree(ID_A, |tree| {
            seen = Some(tree.to_path_buf());
            assert!(!store.root().join("objects").join(ID_A).exists(), "the object left objects/ first");
            fs::rename(tree, &dest)
        })
        .unwrap();
    assert!(taken);
    assert!(!seen.unwrap().starts_with(store.root().join("objects")));
    assert_eq!(fs::metadata(dest.join("data")).unwrap().ino(), ino, "moved, not copied");
    assert!(!store.contains(ID_A) && store.get(ID_A).is_none());
    assert!(object_entries(&store).is_empty());
    assert!(tmp_entries(&store).is_empty(), "the metadata was left: {:?}", tmp_entries(&store));
    // Gone for good: taking it again is refused, and a new commit makes it again.
    assert!(!store.take_tree(ID_A, |_| panic!("nothing to take")).unwrap());
    store.commit(work_with_file(&store, 3), ID_A, &meta("again")).unwrap();
    assert_eq!(store.read_meta(ID_A).unwrap(), meta("again"));
}

#[test]
fn take_tree_refuses_what_others_use_or_made_and_puts_back_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).unwrap();
    store.commit(work_with_file(&store, 7), ID_A, &meta("s1")).unwrap();
    let whole = |store: &ObjectStore| {
        fs::read(store.get(ID_A).unwrap().join("tree/data")).unwrap().len() == 7
            && store.read_meta(ID_A).unwrap() == meta("s1")
    };

    // `place` fails (say EXDEV): the object is back in the store as it was, and still leased
    // (before any `get` could lease it again, another store's eviction cannot remove it).
    let taken = store.take_tree(ID_A, |_| Err(std::io::Error::from_raw_os_error(libc::EXDEV))).unwrap();
    assert!(!taken);
    let mut evicting = ObjectStore::open(dir.path()).unwrap();
    evicting.set_max_size(Some(0));
    assert_eq!(evicting.evict(&[]).unwrap(), 0);
    drop(evicting);
    assert!(whole(&store));
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));

    // Another user of the object (its own lock, like another process): never taken.
    let other = ObjectStore::open(dir.path()).unwrap();
    assert!(other.get(ID_A).is_some());
    assert!(!store.take_tree(ID_A, |_| panic!("taken from under another user")).unwrap());
    assert!(whole(&store) && whole(&other));
    // ... which may not take it either: it did not make it (an earlier run's checkpoint, say).
    assert!(!other.take_tree(ID_A, |_| panic!("taken by a store that did not make it")).unwrap());
    // Another process evicting (holding evict.lock): not taken, no waiting.
    drop(other);
    let evicting =
        File::options().read(true).write(true).create(true).truncate(false).open(dir.path().join("evict.lock"));
    let evicting = evicting.unwrap();
    evicting.lock().unwrap();
    assert!(!store.take_tree(ID_A, |_| panic!("taken while another process evicts")).unwrap());
    evicting.unlock().unwrap();
    assert!(whole(&store));

    // With nobody else using it, the store that made it can take it.
    assert!(store.take_tree(ID_A, |tree| fs::remove_dir_all(tree)).unwrap());
    assert!(object_entries(&store).is_empty());
}
