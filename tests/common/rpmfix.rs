//! RPM fixtures made at test time: `rpmbuild` builds small packages from generated spec files,
//! some are signed with a GPG key generated for the test (`gpg`, `rpmsign`). No network.
//!
//! Needs the Debian packages `rpm` (rpmbuild, rpmsign, rpmkeys) and `gnupg`; a missing tool
//! fails the test loudly.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tool the fixtures cannot do without: fail loudly, naming the Debian package.
pub fn need(tool: &str, package: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    assert!(found, "{tool} is missing: install {package} (apt-get install {package})");
}

/// One package to build.
pub struct Spec {
    pub name: &'static str,
    pub version: &'static str,
    pub release: &'static str,
    pub epoch: Option<u32>,
    /// `None` for the host's architecture.
    pub noarch: bool,
    pub requires: &'static [&'static str],
    /// Shell lines of `%install`, with `$RPM_BUILD_ROOT` as the root.
    pub install: &'static str,
    /// The `%files` section.
    pub files: &'static str,
    /// Extra sections (scriptlets).
    pub extra: &'static str,
    pub sign: bool,
}

impl Spec {
    pub fn new(name: &'static str) -> Self {
        Spec {
            name,
            version: "1.0",
            release: "1",
            epoch: None,
            noarch: true,
            requires: &[],
            install: "",
            files: "",
            extra: "",
            sign: false,
        }
    }

    fn text(&self) -> String {
        let mut s = format!(
            "Name: {}\nVersion: {}\nRelease: {}\nSummary: osbuild-rs test fixture {}\nLicense: MIT\nAutoReq: no\n",
            self.name, self.version, self.release, self.name
        );
        if let Some(e) = self.epoch {
            s.push_str(&format!("Epoch: {e}\n"));
        }
        if self.noarch {
            s.push_str("BuildArch: noarch\n");
        }
        for r in self.requires {
            s.push_str(&format!("Requires: {r}\n"));
        }
        s.push_str(&format!(
            "%description\nA package built by the osbuild-rs tests.\n%install\n{}\n%files\n{}\n{}\n",
            self.install, self.files, self.extra
        ));
        s
    }
}

/// Built packages and the key that signed some of them.
pub struct Fixtures {
    pub dir: PathBuf,
    /// Package name -> its .rpm file.
    pub rpms: BTreeMap<String, PathBuf>,
    /// The signing key's public part, armored.
    pub public_key: String,
}

impl Fixtures {
    pub fn rpm(&self, name: &str) -> &Path {
        self.rpms.get(name).unwrap_or_else(|| panic!("no fixture package {name}"))
    }
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Build `specs` under `dir` (rpmbuild's top dir is `dir/rpmbuild`), signing those marked so.
pub fn build(dir: &Path, specs: &[Spec]) -> Fixtures {
    for (tool, pkg) in [("rpmbuild", "rpm"), ("rpmsign", "rpm"), ("rpmkeys", "rpm"), ("gpg", "gnupg")] {
        need(tool, pkg);
    }
    // First a signing key without passphrase, in a GNUPGHOME of our own; packages may ship it
    // (`%{fixture_key}` names the armored public key file).
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| run(Command::new("gpg").env("GNUPGHOME", &home).arg("--batch").args(args));
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "osbuild-rs fixtures <fixtures@osbuild-rs.test>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let public_key = gpg(&["--armor", "--export", "fixtures@osbuild-rs.test"]);
    assert!(public_key.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{public_key}");
    let key_file = dir.join("RPM-GPG-KEY-fixtures");
    std::fs::write(&key_file, &public_key).unwrap();
    let top = dir.join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let mut rpms = BTreeMap::new();
    for spec in specs {
        let path = top.join("SPECS").join(format!("{}.spec", spec.name));
        std::fs::write(&path, spec.text()).unwrap();
        run(Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "_build_id_links none", "--quiet", "-bb"])
            .arg("--define")
            .arg(format!("fixture_key {}", key_file.display()))
            .arg(&path));
        let arch = if spec.noarch { "noarch".to_owned() } else { host_arch() };
        let file =
            top.join("RPMS").join(&arch).join(format!("{}-{}-{}.{arch}.rpm", spec.name, spec.version, spec.release));
        assert!(file.is_file(), "rpmbuild made no {}", file.display());
        rpms.insert(spec.name.to_owned(), file);
    }

    for spec in specs.iter().filter(|s| s.sign) {
        // --rpmv3 adds the header+payload signature (SIGPGP) next to the header-only one.
        run(Command::new("rpmsign")
            .env("GNUPGHOME", &home)
            .args(["--define", "_gpg_name fixtures@osbuild-rs.test", "--define", "__gpg /usr/bin/gpg"])
            .args(["--addsign", "--rpmv3"])
            .arg(&rpms[spec.name]));
    }
    let _ = Command::new("gpgconf").env("GNUPGHOME", &home).args(["--kill", "all"]).status();
    Fixtures { dir: dir.to_owned(), rpms, public_key }
}

pub fn host_arch() -> String {
    run(Command::new("rpm").args(["--eval", "%{_arch}"])).trim().to_owned()
}

/// The fixture set most tests use.
///
/// - `fixture-setup`: `/etc/passwd` and `/etc/group` with user/group `fixuser` (1234), the
///   signing key as `/etc/pki/rpm-gpg/RPM-GPG-KEY-fixtures`, and a Lua `%post` that writes what
///   it sees (`$FISH_TEST`, `$BOOT_ROOT`, whether `/run/ostree-booted` exists, the first line of
///   `/etc/machine-id`) to `/etc/fixture-env`;
/// - `fixture-lib` (signed): a data file and a doc file;
/// - `fish` (signed, epoch 2, requires both): `/usr/bin/fish`, a symlink to it, a file with a
///   capability, a directory and a file owned by `fixuser`, a `%config` and a `%ghost` file, a
///   doc file, German and French translations, and a Lua `%post` that writes `/var/lib/fish/post-ran`;
/// - `kernel-core` (host architecture): `/lib/modules/6.1.0-fix/vmlinuz`.
pub fn standard() -> Vec<Spec> {
    let mut setup = Spec::new("fixture-setup");
    setup.install = "mkdir -p $RPM_BUILD_ROOT/etc/pki/rpm-gpg\n\
        cp %{fixture_key} $RPM_BUILD_ROOT/etc/pki/rpm-gpg/RPM-GPG-KEY-fixtures\n\
        printf 'root:x:0:0:root:/root:/bin/sh\\nfixuser:x:1234:1234::/home/fixuser:/bin/sh\\n' > $RPM_BUILD_ROOT/etc/passwd\n\
        printf 'root:x:0:\\nfixgroup:x:1234:\\n' > $RPM_BUILD_ROOT/etc/group";
    setup.files = "%config(noreplace) /etc/passwd\n%config(noreplace) /etc/group\n/etc/pki/rpm-gpg";
    setup.extra = "%post -p <lua>\n\
        local booted = io.open(\"/run/ostree-booted\") ~= nil\n\
        local id = io.open(\"/etc/machine-id\")\n\
        local mid = id and id:read(\"l\") or \"none\"\n\
        local f = io.open(\"/etc/fixture-env\", \"w\")\n\
        f:write(tostring(os.getenv(\"FISH_TEST\")) .. \" \" .. tostring(os.getenv(\"BOOT_ROOT\")) .. \" \" ..\n\
                tostring(booted) .. \" \" .. mid .. \"\\n\")\n\
        f:close()";

    let mut lib = Spec::new("fixture-lib");
    lib.version = "2.5";
    lib.release = "3.fix";
    lib.sign = true;
    lib.install = "mkdir -p $RPM_BUILD_ROOT/usr/lib/fixture $RPM_BUILD_ROOT/usr/share/doc/fixture-lib\n\
        echo 'fixture data' > $RPM_BUILD_ROOT/usr/lib/fixture/data.txt\n\
        echo 'lib readme' > $RPM_BUILD_ROOT/usr/share/doc/fixture-lib/README";
    lib.files = "/usr/lib/fixture\n%doc /usr/share/doc/fixture-lib/README";

    let mut fish = Spec::new("fish");
    fish.version = "3.7.1";
    fish.release = "1.fix";
    fish.epoch = Some(2);
    fish.sign = true;
    fish.requires = &["fixture-lib >= 2.5", "fixture-setup"];
    fish.install = "mkdir -p $RPM_BUILD_ROOT/usr/bin $RPM_BUILD_ROOT/etc/fish $RPM_BUILD_ROOT/usr/share/fish \
        $RPM_BUILD_ROOT/usr/share/doc/fish $RPM_BUILD_ROOT/var/lib/fish $RPM_BUILD_ROOT/var/log\n\
        printf '#!/bin/sh\\necho fish\\n' > $RPM_BUILD_ROOT/usr/bin/fish\n\
        chmod 0755 $RPM_BUILD_ROOT/usr/bin/fish\n\
        printf 'ping\\n' > $RPM_BUILD_ROOT/usr/bin/fish-ping\n\
        ln -s fish $RPM_BUILD_ROOT/usr/bin/fish-link\n\
        echo 'set -g x 1' > $RPM_BUILD_ROOT/etc/fish/config.fish\n\
        echo 'owned' > $RPM_BUILD_ROOT/usr/share/fish/owned.txt\n\
        echo 'fish docs' > $RPM_BUILD_ROOT/usr/share/doc/fish/README\n\
        mkdir -p $RPM_BUILD_ROOT/usr/share/locale/de $RPM_BUILD_ROOT/usr/share/locale/fr\n\
        echo de > $RPM_BUILD_ROOT/usr/share/locale/de/fish.mo\n\
        echo fr > $RPM_BUILD_ROOT/usr/share/locale/fr/fish.mo";
    fish.files = "/usr/bin/fish\n/usr/bin/fish-link\n\
        %caps(cap_net_raw=ep) %attr(0711, root, root) /usr/bin/fish-ping\n\
        %dir /etc/fish\n%config(noreplace) /etc/fish/config.fish\n\
        %dir %attr(0750, fixuser, fixgroup) /usr/share/fish\n\
        %attr(0640, fixuser, fixgroup) /usr/share/fish/owned.txt\n\
        %dir /var/lib/fish\n%ghost /var/log/fish.log\n\
        %doc /usr/share/doc/fish/README\n\
        %lang(de) /usr/share/locale/de/fish.mo\n%lang(fr) /usr/share/locale/fr/fish.mo";
    fish.extra = "%post -p <lua>\n\
        local f = io.open(\"/var/lib/fish/post-ran\", \"w\")\n\
        f:write(\"post of fish ran\\n\")\n\
        f:close()";

    let mut kernel = Spec::new("kernel-core");
    kernel.version = "6.1.0";
    kernel.release = "1.fix";
    kernel.noarch = false;
    kernel.install = "mkdir -p $RPM_BUILD_ROOT/lib/modules/6.1.0-fix/\n\
        echo 'not really a kernel' > $RPM_BUILD_ROOT/lib/modules/6.1.0-fix/vmlinuz";
    kernel.files = "/lib/modules/6.1.0-fix";

    vec![setup, lib, fish, kernel]
}

/// Packages whose `%pre` or `%post` (Lua) fails.
pub fn failing_scriptlets() -> Vec<Spec> {
    let mut pre = Spec::new("failing-pre");
    pre.extra = "%pre -p <lua>\nerror(\"the fixture's %pre fails on purpose\")";
    let mut post = Spec::new("failing-post");
    post.install = "mkdir -p $RPM_BUILD_ROOT/usr/share/failing-post\n\
        echo x > $RPM_BUILD_ROOT/usr/share/failing-post/file";
    post.files = "/usr/share/failing-post";
    post.extra = "%post -p <lua>\nerror(\"the fixture's %post fails on purpose\")";
    vec![pre, post]
}
