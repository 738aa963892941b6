//! `org.osbuild.users`: add or modify users in the tree with the build root's `useradd` /
//! `usermod --root <tree>`, expire passwords with `passwd --root`, and install SSH keys.
//!
//! As upstream: an existing user is modified (its uid cannot change) and gets its home
//! directory created with `mkhomedir_helper` (chrooted into the tree) if it is missing; a
//! new user is added.

use super::util::{resolve_in_root, tree_path, Ordered};
use super::{StageArgs, StageError, StageResult};
use crate::chroot::{ApiFs, Chroot};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use serde_json::Number;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// User name -> settings, applied in document order.
    #[serde(default)]
    pub users: Ordered<User>,
}

/// Upstream allows further keys here, so unknown keys are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct User {
    pub uid: Option<Number>,
    pub gid: Option<Number>,
    pub groups: Option<Vec<String>>,
    pub description: Option<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    /// Already hashed, as crypt(3) returns it.
    pub password: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    pub expiredate: Option<i64>,
    #[serde(default)]
    pub force_password_reset: bool,
}

/// One `/etc/passwd` entry: the fields we use.
struct Passwd {
    uid: String,
    gid: String,
    home: String,
}

fn getpwnam(tree: &Path, name: &str) -> Result<Option<Passwd>, StageError> {
    let file = resolve_in_root(tree, "/etc/passwd", true)?;
    let text = std::fs::read_to_string(&file).map_err(StageError::io("cannot read", &file))?;
    Ok(text.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f[0] == name).map(|f| Passwd {
        uid: f.get(2).unwrap_or(&"").to_string(),
        gid: f.get(3).unwrap_or(&"").to_string(),
        home: f.get(5).unwrap_or(&"").to_string(),
    }))
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Users;

impl Stage for Users {
    const NAME: &'static str = "org.osbuild.users";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let tree = &args.tree;
        for (name, user) in &options.users.0 {
            match getpwnam(tree, name)? {
                Some(existing) => {
                    if let Some(uid) = &user.uid {
                        if existing.uid != uid.to_string() {
                            return Err(StageError::Invalid(format!("can't set uid of existing user '{name}'")));
                        }
                    }
                    usermod(tree, name, user)?;
                    if let Some(now) = getpwnam(tree, name)? {
                        ensure_homedir(args, name, &now.home)?;
                    }
                }
                None => useradd(tree, name, user)?,
            }
            if user.force_password_reset {
                Command::new("passwd").arg("--root").arg(tree).args(["--expire", name]).run(Users::NAME)?;
            }
            let mut keys = user.keys.clone();
            if let Some(key) = user.key.as_ref().filter(|k| !k.is_empty()) {
                keys.push(key.clone());
            }
            if !keys.is_empty() {
                add_ssh_keys(args, name, &keys)?;
            }
        }
        Ok(None)
    }
}

fn useradd(tree: &Path, name: &str, u: &User) -> Result<(), StageError> {
    let mut cmd = Command::new("useradd");
    cmd.arg("--root").arg(tree);
    if let Some(uid) = &u.uid {
        cmd.args(["--uid", &uid.to_string(), "-o"]);
    }
    if let Some(gid) = &u.gid {
        cmd.args(["--gid", &gid.to_string()]);
    }
    if let Some(groups) = u.groups.as_ref().filter(|g| !g.is_empty()) {
        cmd.args(["--groups", &groups.join(",")]);
    }
    if let Some(d) = &u.description {
        cmd.args(["--comment", d]);
    }
    match u.home.as_deref() {
        Some("") => {
            cmd.arg("--no-create-home");
        }
        Some(home) => {
            cmd.args(["--home-dir", home, "--create-home"]);
        }
        None => {}
    }
    if let Some(shell) = u.shell.as_ref().filter(|s| !s.is_empty()) {
        cmd.args(["--shell", shell]);
    }
    if let Some(p) = &u.password {
        cmd.args(["--password", p]);
    }
    if let Some(e) = u.expiredate {
        cmd.args(["--expiredate", &e.to_string()]);
    }
    cmd.arg(name);
    cmd.run(Users::NAME)
}

fn usermod(tree: &Path, name: &str, u: &User) -> Result<(), StageError> {
    let mut cmd = Command::new("usermod");
    cmd.arg("--root").arg(tree);
    let mut any = false;
    let mut add = |cmd: &mut Command, flag: &str, value: &str| {
        cmd.args([flag, value]);
        any = true;
    };
    if let Some(gid) = &u.gid {
        add(&mut cmd, "--gid", &gid.to_string());
    }
    if let Some(groups) = u.groups.as_ref().filter(|g| !g.is_empty()) {
        add(&mut cmd, "--groups", &groups.join(","));
    }
    if let Some(d) = &u.description {
        add(&mut cmd, "--comment", d);
    }
    if let Some(home) = u.home.as_ref().filter(|h| !h.is_empty()) {
        add(&mut cmd, "--home", home);
    }
    if let Some(shell) = u.shell.as_ref().filter(|s| !s.is_empty()) {
        add(&mut cmd, "--shell", shell);
    }
    if let Some(p) = &u.password {
        add(&mut cmd, "--password", p);
    }
    if let Some(e) = u.expiredate {
        add(&mut cmd, "--expiredate", &e.to_string());
    }
    if !any {
        return Ok(());
    }
    cmd.arg(name);
    cmd.run(Users::NAME)
}

/// Create a missing home directory of an existing user with `mkhomedir_helper` in the tree.
fn ensure_homedir(args: &StageArgs, name: &str, home: &str) -> Result<(), StageError> {
    if home.is_empty() || std::fs::symlink_metadata(tree_path(args, home, true)?).is_ok() {
        return Ok(());
    }
    // As upstream: in a chroot with the kernel's file systems (the helper may need /proc).
    let chroot = Chroot::enter(&args.tree, ApiFs::Fresh)?;
    let ran = chroot.command("mkhomedir_helper").arg(name).run(Users::NAME);
    chroot.close()?;
    match ran {
        // chroot's "command not found"
        Err(StageError::ToolFailed { status, .. }) if status.code() == Some(127) => {
            Err(StageError::ToolMissing { tool: "mkhomedir_helper".into(), stage: Users::NAME, place: "in the tree" })
        }
        other => other,
    }
}

fn add_ssh_keys(args: &StageArgs, name: &str, keys: &[String]) -> Result<(), StageError> {
    let pw = getpwnam(&args.tree, name)?
        .ok_or_else(|| StageError::Invalid(format!("user '{name}' not found in the tree's /etc/passwd")))?;
    let parse = |v: &str| v.parse::<u32>().map_err(|_| StageError::Invalid(format!("bad id '{v}' of user '{name}'")));
    let (uid, gid) = (parse(&pw.uid)?, parse(&pw.gid)?);
    let ssh_dir = tree_path(args, format!("{}/.ssh", pw.home), true)?;
    // like upstream, the home directory itself must exist
    if std::fs::symlink_metadata(&ssh_dir).is_err() {
        std::fs::DirBuilder::new().mode(0o700).create(&ssh_dir).map_err(StageError::io("cannot create", &ssh_dir))?;
        std::os::unix::fs::chown(&ssh_dir, Some(uid), Some(gid)).map_err(StageError::io("cannot chown", &ssh_dir))?;
    }
    let auth = tree_path(args, format!("{}/.ssh/authorized_keys", pw.home), true)?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&auth)
        .map_err(StageError::io("cannot write", &auth))?;
    f.write_all(format!("{}\n", keys.join("\n")).as_bytes()).map_err(StageError::io("cannot write", &auth))?;
    std::os::unix::fs::chown(&auth, Some(uid), Some(gid)).map_err(StageError::io("cannot chown", &auth))?;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600))
        .map_err(StageError::io("cannot chmod", &auth))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// A tree with just enough of /etc for the shadow tools.
    pub fn etc_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        fs::write(etc.join("group"), "root:x:0:\nwheel:x:10:\n").unwrap();
        fs::write(etc.join("shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        fs::write(etc.join("gshadow"), "root:*::\nwheel:!::\n").unwrap();
        fs::write(etc.join("login.defs"), "USERGROUPS_ENAB yes\n").unwrap();
        fs::create_dir(t.path().join("root")).unwrap();
        for f in ["shadow", "gshadow"] {
            fs::set_permissions(etc.join(f), fs::Permissions::from_mode(0o600)).unwrap();
        }
        t
    }

    #[test]
    fn adds_user_with_home_groups_and_keys() {
        let t = etc_tree();
        let tree = t.path();
        let a = args(
            tree,
            json!({"users": {"alice": {
                "uid": 1500, "groups": ["wheel"], "description": "Alice", "home": "/home/alice",
                "shell": "/bin/sh", "password": "$6$salt$hash", "key": "ssh-ed25519 AAAA alice@a",
                "keys": ["ssh-rsa BBBB alice@b"], "expiredate": 20000, "force_password_reset": true
            }}}),
        );
        Users::execute(&a).unwrap();
        let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
        assert!(passwd.contains("alice:x:1500:1500:Alice:/home/alice:/bin/sh"), "{passwd}");
        let shadow = fs::read_to_string(tree.join("etc/shadow")).unwrap();
        let line = shadow.lines().find(|l| l.starts_with("alice:")).unwrap();
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(f[1], "$6$salt$hash");
        assert_eq!(f[2], "0", "force_password_reset expires the password: {line}");
        assert_eq!(f[7], "20000");
        assert!(fs::read_to_string(tree.join("etc/group")).unwrap().contains("wheel:x:10:alice"));
        let home = tree.join("home/alice");
        assert_eq!(fs::metadata(&home).unwrap().uid(), 1500);
        let ak = home.join(".ssh/authorized_keys");
        assert_eq!(fs::read_to_string(&ak).unwrap(), "ssh-rsa BBBB alice@b\nssh-ed25519 AAAA alice@a\n");
        let m = fs::metadata(&ak).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o777), (1500, 1500, 0o600));
        assert_eq!(fs::metadata(home.join(".ssh")).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn modifies_existing_user() {
        let t = etc_tree();
        let tree = t.path();
        Users::execute(&args(tree, json!({"users": {"root": {"password": ""}}}))).unwrap();
        let shadow = fs::read_to_string(tree.join("etc/shadow")).unwrap();
        assert!(shadow.starts_with("root::"), "{shadow}");
        let e = Users::execute(&args(tree, json!({"users": {"root": {"uid": 5}}}))).unwrap_err();
        assert_eq!(e.to_string(), "can't set uid of existing user 'root'");
    }

    #[test]
    fn missing_home_of_existing_user_needs_mkhomedir_helper_in_tree() {
        let t = etc_tree();
        fs::remove_dir(t.path().join("root")).unwrap();
        let e = Users::execute(&args(t.path(), json!({"users": {"root": {"password": ""}}}))).unwrap_err();
        assert_eq!(e.to_string(), "mkhomedir_helper not found in the tree, but org.osbuild.users needs it");
    }

    #[test]
    fn uid_zero_alias_user_without_home_creation() {
        let t = etc_tree();
        let tree = t.path();
        let a = args(
            tree,
            json!({"users": {"install": {"uid": 0, "gid": 0, "home": "/root", "shell": "/bin/false", "password": ""}}}),
        );
        Users::execute(&a).unwrap();
        let passwd = fs::read_to_string(tree.join("etc/passwd")).unwrap();
        assert!(passwd.contains("install:x:0:0::/root:/bin/false"), "{passwd}");
    }
}
