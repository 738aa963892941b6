//! Issue acceptance: test-manifests/os-tree.json builds, from RPMs made at test time only, a
//! tree with a user, an enabled service, locale, timezone, hostname, kernel command line
//! and SELinux labels; each is checked in the exported tree. The RPMs are served over HTTP. The manifest in the repository
//! carries everything but the package checksums, which exist only once the RPMs are built.

mod common;
#[path = "common/rpmfix.rs"]
mod rpmfix;

use common::{ok, sha256, Env, HttpServer};
use rpmfix::Spec;
use serde_json::{json, Map, Value};

/// What a real distribution's packages would bring: shadow files, /home, a unit with an
/// [Install] section, and an SELinux file_contexts.
fn os_base() -> Spec {
    let mut base = Spec::new("os-base");
    base.install = "mkdir -p $RPM_BUILD_ROOT/etc $RPM_BUILD_ROOT/home $RPM_BUILD_ROOT/usr/lib/systemd/system \
        $RPM_BUILD_ROOT/etc/selinux/targeted/contexts/files $RPM_BUILD_ROOT/usr/share/zoneinfo/Europe\n\
        printf 'root:*:19000:0:99999:7:::\\nfixuser:!:19000::::::\\n' > $RPM_BUILD_ROOT/etc/shadow\n\
        printf 'root:::\\nfixgroup:!::\\n' > $RPM_BUILD_ROOT/etc/gshadow\n\
        printf 'TZif2 fake zone\\n' > $RPM_BUILD_ROOT/usr/share/zoneinfo/Europe/Berlin\n\
        printf '[Unit]\\nDescription=demo\\n[Service]\\nExecStart=/usr/bin/fish\\n[Install]\\nWantedBy=multi-user.target\\n' \
            > $RPM_BUILD_ROOT/usr/lib/systemd/system/demo.service\n\
        printf '[Unit]\\nDescription=Multi-User System\\n' > $RPM_BUILD_ROOT/usr/lib/systemd/system/multi-user.target\n\
        printf '/.*\\tsystem_u:object_r:default_t:s0\\n/usr/bin/fish\\tsystem_u:object_r:shell_exec_t:s0\\n/etc/hostname\\tsystem_u:object_r:hostname_etc_t:s0\\n' \
            > $RPM_BUILD_ROOT/etc/selinux/targeted/contexts/files/file_contexts";
    base.files = "%attr(0000,root,root) /etc/shadow\n%attr(0000,root,root) /etc/gshadow\n%dir /home\n\
        /usr/lib/systemd/system/demo.service\n/usr/lib/systemd/system/multi-user.target\n/etc/selinux\n/usr/share/zoneinfo";
    base.requires = &["fixture-setup"];
    base
}

#[test]
fn os_tree_manifest_builds_a_configured_tree_from_test_rpms() {
    let env = Env::new();
    let mut specs = rpmfix::standard();
    specs.push(os_base());
    let fx = rpmfix::build(&env.path("fixtures"), &specs);

    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-manifests/os-tree.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    // The packages come from a real HTTP server on loopback (file:// is covered in stage_rpm.rs).
    let served = env.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = HttpServer::start(&served);
    let mut items = Map::new();
    let mut refs = Map::new();
    for name in ["fixture-setup", "fixture-lib", "fish", "kernel-core", "os-base"] {
        let path = fx.rpm(name);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(path, served.join(&file)).unwrap();
        let sum = sha256(&std::fs::read(path).unwrap());
        items.insert(sum.clone(), json!(format!("http://127.0.0.1:{}/{file}", server.port)));
        let signed = matches!(name, "fish" | "fixture-lib");
        refs.insert(sum, if signed { json!({"metadata": {"rpm.check_gpg": true}}) } else { json!({}) });
    }
    m["sources"] = json!({"org.osbuild.curl": {"items": items}});
    let rpm = &mut m["pipelines"][0]["stages"][0];
    rpm["inputs"]["packages"]["references"] = Value::Object(refs);
    rpm["options"]["gpgkeys"] = json!([fx.public_key]);
    let manifest = env.write_manifest("os-tree.json", &m);

    let o = env.run(&manifest, &["--export", "tree"]);
    ok(&o);
    let tree = env.out().join("tree");
    let read = |p: &str| std::fs::read_to_string(tree.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // packages
    assert_eq!(read("usr/bin/fish"), "#!/bin/sh\necho fish\n");
    // user with its hashed password, home and shell
    let passwd = read("etc/passwd");
    let user = passwd.lines().find(|l| l.starts_with("test:")).unwrap_or_else(|| panic!("no user test in {passwd}"));
    assert!(user.contains(":1000:") && user.ends_with(":/home/test:/usr/bin/fish"), "{user}");
    let shadow = read("etc/shadow");
    assert!(shadow.lines().any(|l| l.starts_with("test:$6$osbuildrs$lKOk")), "{shadow}");
    // enabled service and default target
    let wants = tree.join("etc/systemd/system/multi-user.target.wants/demo.service");
    assert_eq!(std::fs::read_link(&wants).unwrap(), std::path::Path::new("/usr/lib/systemd/system/demo.service"));
    assert!(std::fs::read_link(tree.join("etc/systemd/system/default.target")).unwrap().ends_with("multi-user.target"));
    // locale, timezone, hostname, kernel command line
    assert_eq!(read("etc/locale.conf"), "LANG=en_US.UTF-8\n");
    assert_eq!(
        std::fs::read_link(tree.join("etc/localtime")).unwrap(),
        std::path::Path::new("../usr/share/zoneinfo/Europe/Berlin")
    );
    assert_eq!(read("etc/hostname"), "osbuild-rs\n");
    assert_eq!(read("etc/kernel/cmdline"), "root=UUID=6e4ff95f-f662-45ee-a82a-bdf44a2d0b75 console=ttyS0 ro");
    // SELinux labels from the tree's own file_contexts
    let label = |p: &str| {
        let v = xattr::get(tree.join(p), "security.selinux").unwrap().unwrap_or_else(|| panic!("{p} has no label"));
        String::from_utf8_lossy(&v).trim_end_matches('\0').to_owned()
    };
    assert_eq!(label("usr/bin/fish"), "system_u:object_r:shell_exec_t:s0");
    assert_eq!(label("etc/hostname"), "system_u:object_r:hostname_etc_t:s0");
    assert_eq!(label("etc/passwd"), "system_u:object_r:default_t:s0");
}
