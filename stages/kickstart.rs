//! `org.osbuild.kickstart`: write an Anaconda kickstart file into the tree: the payload
//! (`ostreesetup`, e.g. with `--url` at a repository inside the ISO, `ostreecontainer`,
//! `bootc`, `liveimg`), groups, users with their SSH keys, `rootpw`, `lang`, `keyboard`,
//! `timezone`, `zerombr`, `clearpart`, the display mode, `autopart`, `reboot`, `network`,
//! `bootloader --append` and `%post` scripts, one command a line in that order: the same
//! text, byte for byte, as upstream writes for the same options (values formatted as
//! Python's `str()` formats them).

use super::configparser::py_str;
use super::util::{create_parents, tree_path, truthy, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The top-level options, each checked by the schema and read here as upstream reads them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The kickstart file, in the tree.
    pub path: String,
    pub ostree: Option<Value>,
    pub ostreecontainer: Option<Value>,
    pub bootc: Option<Value>,
    pub liveimg: Option<Value>,
    pub groups: Option<Map<String, Value>>,
    pub users: Option<Map<String, Value>>,
    pub rootpw: Option<Map<String, Value>>,
    pub lang: Option<Value>,
    pub keyboard: Option<Value>,
    pub timezone: Option<Value>,
    pub zerombr: Option<Value>,
    pub clearpart: Option<Value>,
    pub reboot: Option<Value>,
    pub display_mode: Option<Value>,
    pub autopart: Option<Map<String, Value>>,
    pub network: Option<Vec<Value>>,
    pub bootloader: Option<Value>,
    #[serde(rename = "%post")]
    pub post: Option<Vec<Value>>,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Kickstart;

impl Stage for Kickstart {
    const NAME: &'static str = "org.osbuild.kickstart";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let text = render(&options)?;
        let path = tree_path(args, options.path.trim_start_matches('/'), true)?;
        create_parents(&path)?;
        write_file(&path, text.as_bytes(), 0o644)?;
        println!("created kickstart at: {}\n\n{text}", options.path);
        Ok(None)
    }
}

/// `v[key]` if present and not null.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// `v[key]` that the schema requires.
fn required<'a>(v: &'a Value, what: &str, key: &str) -> Result<&'a Value, StageError> {
    v.get(key).ok_or_else(|| StageError::Invalid(format!("{what} needs {key}")))
}

/// A list of strings joined with `sep`.
fn joined(v: &Value, sep: &str) -> Result<String, StageError> {
    let items = v.as_array().ok_or_else(|| StageError::Invalid(format!("{v} is not a list")))?;
    Ok(items.iter().map(py_str).collect::<Vec<_>>().join(sep))
}

fn render(o: &Options) -> Result<String, StageError> {
    let mut config: Vec<String> = vec![];
    if let Some(ostree) = o.ostree.as_ref().filter(|v| truthy(v)) {
        let part = |k| required(ostree, "ostree", k).map(py_str);
        let mut cmd = format!("ostreesetup --osname={} --url={} --ref={}", part("osname")?, part("url")?, part("ref")?);
        if let Some(remote) = get(ostree, "remote").filter(|v| truthy(v)) {
            cmd += &format!(" --remote={}", py_str(remote));
        }
        if ostree.get("gpg").is_some_and(|g| !truthy(g)) {
            cmd += " --nogpg";
        }
        config.push(cmd);
    }
    if let Some(c) = o.ostreecontainer.as_ref().filter(|v| truthy(v)) {
        let mut cmd = format!("ostreecontainer --url={}", py_str(required(c, "ostreecontainer", "url")?));
        for name in ["stateroot", "transport", "remote"] {
            if let Some(v) = get(c, name).filter(|v| truthy(v)) {
                cmd += &format!(" --{name}={}", py_str(v));
            }
        }
        config.push(cmd);
    }
    if let Some(b) = o.bootc.as_ref().filter(|v| truthy(v)) {
        let mut cmd = format!("bootc --source-imgref {}", py_str(required(b, "bootc", "source-imgref")?));
        if let Some(t) = get(b, "target-imgref").filter(|v| truthy(v)) {
            cmd += &format!(" --target-imgref {}", py_str(t));
        }
        config.push(cmd);
    }
    if let Some(l) = o.liveimg.as_ref().filter(|v| truthy(v)) {
        config.push(format!("liveimg --url {}", py_str(required(l, "liveimg", "url")?)));
    }
    for (name, opts) in o.groups.iter().flatten() {
        let mut cmd = format!("group --name {name}");
        if let Some(gid) = get(opts, "gid").filter(|v| truthy(v)) {
            cmd += &format!(" --gid {}", py_str(gid));
        }
        config.push(cmd);
    }
    for (name, opts) in o.users.iter().flatten() {
        config.extend(user(name, opts)?);
    }
    if let Some(rootpw) = &o.rootpw {
        let mut parts = vec![];
        for option in ["lock", "plaintext", "iscrypted", "allow_ssh", "password"] {
            match rootpw.get(option) {
                Some(Value::Bool(true)) => parts.push(format!("--{}", option.replace('_', "-"))),
                Some(Value::String(s)) if !s.is_empty() => parts.push(s.clone()),
                _ => {}
            }
        }
        if !parts.is_empty() {
            config.push(format!("rootpw {}", parts.join(" ")));
        }
    }
    for (cmd, value) in [("lang", &o.lang), ("keyboard", &o.keyboard), ("timezone", &o.timezone)] {
        if let Some(v) = value.as_ref().filter(|v| truthy(v)) {
            config.push(format!("{cmd} {}", py_str(v)));
        }
    }
    if o.zerombr.as_ref().is_some_and(truthy) {
        config.push("zerombr".into());
    }
    if let Some(c) = o.clearpart.as_ref().filter(|v| !v.is_null()) {
        config.push(clearpart(c)?);
    }
    if let Some(mode) = o.display_mode.as_ref().filter(|v| truthy(v)) {
        config.push(py_str(mode));
    }
    if let Some(a) = &o.autopart {
        let mut cmd = String::from("autopart");
        for key in [
            "type",
            "fstype",
            "nolvm",
            "encrypted",
            "passphrase",
            "escrowcert",
            "backuppassphrase",
            "cipher",
            "luks-version",
            "pbkdf",
            "pbkdf-memory",
            "pbkdf-time",
            "pbkdf-iterations",
            "nohome",
            "noswap",
        ] {
            match a.get(key) {
                None => {}
                // a boolean is a flag, whatever its value
                Some(Value::Bool(_)) => cmd += &format!(" --{key}"),
                Some(v) => cmd += &format!(" --{key}={}", py_str(v)),
            }
        }
        config.push(cmd);
    }
    if let Some(r) = o.reboot.as_ref().filter(|v| truthy(v)) {
        let mut cmd = String::from("reboot");
        if r.is_object() {
            for flag in ["eject", "kexec"] {
                if get(r, flag).is_some_and(truthy) {
                    cmd += &format!(" --{flag}");
                }
            }
        }
        config.push(cmd);
    }
    for net in o.network.iter().flatten() {
        config.push(network(net)?);
    }
    if let Some(append) = o.bootloader.as_ref().and_then(|b| get(b, "append")).filter(|v| truthy(v)) {
        config.push(format!("bootloader --append='{}'", py_str(append)));
    }
    for post in o.post.iter().flatten() {
        let mut start = vec!["%post".to_owned()];
        for flag in ["erroronfail", "nochroot"] {
            if get(post, flag).is_some_and(truthy) {
                start.push(format!("--{flag}"));
            }
        }
        for (key, flag) in [("log", "--log"), ("interpreter", "--interpreter")] {
            if let Some(v) = get(post, key).filter(|v| truthy(v)) {
                start.push(format!("{flag} \"{}\"", py_str(v)));
            }
        }
        config.push(start.join(" "));
        let commands = required(post, "%post", "commands")?
            .as_array()
            .ok_or_else(|| StageError::Invalid("%post commands must be a list".into()))?;
        config.extend(commands.iter().map(py_str));
        config.push("%end".into());
    }
    let mut text = config.join("\n");
    text.push('\n');
    Ok(text)
}

fn user(name: &str, opts: &Value) -> Result<Vec<String>, StageError> {
    let mut cmd = format!("user --name {name}");
    if let Some(password) = get(opts, "password") {
        let p = py_str(password);
        cmd += &format!(" --password {} --iscrypted", if p.is_empty() { "\"\"".to_owned() } else { p });
    }
    if let Some(shell) = get(opts, "shell").filter(|v| truthy(v)) {
        cmd += &format!(" --shell {}", py_str(shell));
    }
    for (key, flag) in [("uid", "--uid"), ("gid", "--gid")] {
        if let Some(v) = get(opts, key) {
            cmd += &format!(" {flag} {}", py_str(v));
        }
    }
    if let Some(groups) = get(opts, "groups").filter(|v| truthy(v)) {
        cmd += &format!(" --groups {}", joined(groups, ",")?);
    }
    if let Some(home) = get(opts, "home").filter(|v| truthy(v)) {
        cmd += &format!(" --homedir {}", py_str(home));
    }
    let mut lines = vec![cmd];
    if let Some(key) = get(opts, "key").filter(|v| truthy(v)) {
        lines.push(format!("sshkey --username {name} \"{}\"", py_str(key)));
    }
    Ok(lines)
}

fn clearpart(c: &Value) -> Result<String, StageError> {
    let mut cmd = String::from("clearpart");
    if get(c, "all").is_some_and(truthy) {
        cmd += " --all";
    }
    for (key, flag) in [("drives", "--drives"), ("list", "--list")] {
        if let Some(v) = get(c, key).filter(|v| truthy(v)) {
            cmd += &format!(" {flag}={}", joined(v, ",")?);
        }
    }
    if let Some(label) = get(c, "disklabel").filter(|v| truthy(v)) {
        cmd += &format!(" --disklabel={}", py_str(label));
    }
    for flag in ["linux", "initlabel"] {
        if get(c, flag).is_some_and(truthy) {
            cmd += &format!(" --{flag}");
        }
    }
    Ok(cmd)
}

fn network(net: &Value) -> Result<String, StageError> {
    let mut cmd = String::from("network");
    for key in [
        "device",
        "bootproto",
        "onboot",
        "ip",
        "ipv6",
        "gateway",
        "ipv6gateway",
        "netmask",
        "hostname",
        "essid",
        "wpakey",
    ] {
        // present means written, even as null (Python's `None`)
        if let Some(v) = net.get(key) {
            cmd += &format!(" --{key}={}", py_str(v));
        }
    }
    if let Some(ns) = get(net, "nameservers").filter(|v| truthy(v)) {
        let items = ns.as_array().ok_or_else(|| StageError::Invalid("nameservers must be a list".into()))?;
        cmd += " ";
        cmd += &items.iter().map(|n| format!("--nameserver={}", py_str(n))).collect::<Vec<_>>().join(" ");
    }
    match net.get("activate") {
        Some(Value::Bool(true)) => cmd += " --activate",
        Some(Value::Bool(false)) => cmd += " --no-activate",
        _ => {}
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    fn text(options: Value) -> String {
        render(&serde_json::from_value(options).unwrap()).unwrap()
    }

    #[test]
    fn upstream_bootiso_manifest() {
        // the options of upstream's fedora-ostree-bootiso test manifest: an OSTree repository
        // inside the ISO; the text is what upstream writes for them
        let t = tempfile::tempdir().unwrap();
        let a = args(
            t.path(),
            json!({"path": "install.ks", "ostree": {"osname": "fedora", "url": "file:///run/install/repo/ostree",
                "ref": "fedora/x86_64/osbuild", "gpg": false}, "users": {"core": {"password": "edge", "groups": ["wheel"]}}}),
        );
        Kickstart::execute(&a).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("install.ks")).unwrap(),
            "ostreesetup --osname=fedora --url=file:///run/install/repo/ostree --ref=fedora/x86_64/osbuild --nogpg\n\
             user --name core --password edge --iscrypted --groups wheel\n"
        );
    }

    #[test]
    fn every_command_in_upstreams_order() {
        let all = text(json!({"path": "/ks/a.ks",
            "ostree": {"osname": "debian", "url": "file:///run/install/repo/ostree", "ref": "r", "remote": "origin"},
            "ostreecontainer": {"url": "quay.io/x/y:latest", "transport": "registry", "stateroot": "", "remote": "r"},
            "bootc": {"source-imgref": "registry:quay.io/x", "target-imgref": "quay.io/y"},
            "liveimg": {"url": "file:///x.tar"},
            "groups": {"g1": {"gid": 1200}, "g2": {}, "g3": {"gid": 0}},
            "users": {"alice": {"uid": 1200, "gid": 1200.0, "shell": "/bin/bash", "home": "/home/a", "key": "ssh-ed25519 AAA a@b",
                                "groups": ["wheel", "adm"], "password": ""}, "bob": {}},
            "rootpw": {"lock": true, "allow_ssh": false, "iscrypted": true, "password": "$6$x"},
            "lang": "en_US.UTF-8", "keyboard": "us", "timezone": "Europe/Prague", "zerombr": true,
            "clearpart": {"all": true, "drives": ["sda", "sdb"], "list": ["sda2"], "disklabel": "gpt", "linux": true,
                          "initlabel": true},
            "display_mode": "text",
            "autopart": {"noswap": false, "type": "lvm", "encrypted": true, "pbkdf-time": 5, "passphrase": "p"},
            "reboot": {"eject": true, "kexec": false},
            "network": [{"device": "eth0", "bootproto": "dhcp", "onboot": "on", "nameservers": ["1.1.1.1", "::1"],
                         "activate": false}, {"hostname": "h", "activate": true}],
            "bootloader": {"append": "console=ttyS0 quiet"},
            "%post": [{"erroronfail": true, "nochroot": true, "log": "/tmp/p.log", "interpreter": "/bin/sh",
                       "commands": ["echo a", "echo b"]}, {"commands": []}]}));
        assert_eq!(
            all,
            "ostreesetup --osname=debian --url=file:///run/install/repo/ostree --ref=r --remote=origin\n\
             ostreecontainer --url=quay.io/x/y:latest --transport=registry --remote=r\n\
             bootc --source-imgref registry:quay.io/x --target-imgref quay.io/y\n\
             liveimg --url file:///x.tar\n\
             group --name g1 --gid 1200\ngroup --name g2\ngroup --name g3\n\
             user --name alice --password \"\" --iscrypted --shell /bin/bash --uid 1200 --gid 1200.0 --groups wheel,adm --homedir /home/a\n\
             sshkey --username alice \"ssh-ed25519 AAA a@b\"\n\
             user --name bob\n\
             rootpw --lock --iscrypted $6$x\n\
             lang en_US.UTF-8\nkeyboard us\ntimezone Europe/Prague\nzerombr\n\
             clearpart --all --drives=sda,sdb --list=sda2 --disklabel=gpt --linux --initlabel\n\
             text\n\
             autopart --type=lvm --encrypted --passphrase=p --pbkdf-time=5 --noswap\n\
             reboot --eject\n\
             network --device=eth0 --bootproto=dhcp --onboot=on --nameserver=1.1.1.1 --nameserver=::1 --no-activate\n\
             network --hostname=h --activate\n\
             bootloader --append='console=ttyS0 quiet'\n\
             %post --erroronfail --nochroot --log \"/tmp/p.log\" --interpreter \"/bin/sh\"\necho a\necho b\n%end\n\
             %post\n%end\n"
        );
        assert_eq!(text(json!({"path": "x"})), "\n");
        assert_eq!(
            text(json!({"path": "x", "reboot": true, "clearpart": {}, "zerombr": false})),
            "clearpart\nreboot\n"
        );
    }

    #[test]
    fn the_file_stays_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        // an absolute link in the tree leads to the tree's /real, never to the host's /real
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", t.path().join("etc")).unwrap();
        Kickstart::execute(&args(t.path(), json!({"path": "/etc/osbuild-rs-ks/x.ks", "lang": "C"}))).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("real/osbuild-rs-ks/x.ks")).unwrap(), "lang C\n");
    }
}
