//! `org.osbuild.ostree.selinux`: label a deployment for SELinux, as upstream: the policy is
//! the `SELINUXTYPE` of the first enabled (`enforcing`/`permissive`) config among the
//! deployment's `etc/selinux/config` and `usr/etc/selinux/config`; its `file_contexts` then
//! labels `/boot` of the sysroot, `/etc` of the deployment and `/var` of the stateroot with
//! the build root's `setfiles -F -r <root>`.

use super::ostree_util::{find_deployment, DeploymentOption};
use super::{StageArgs, StageError, StageResult};
use crate::tool::CommandRunExt;
use crate::Stage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub deployment: DeploymentOption,
}

/// The policy an SELinux config enables, if any.
fn config_policy(text: &str) -> Option<String> {
    let mut enabled = "disabled".to_owned();
    let mut policy = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        match k.trim() {
            "SELINUX" => enabled = v.trim().to_owned(),
            "SELINUXTYPE" => policy = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    if matches!(enabled.as_str(), "enforcing" | "permissive") {
        policy
    } else {
        None
    }
}

fn setfiles(spec: &Path, root: &Path, path: &str) -> Result<(), StageError> {
    let mut cmd = Command::new("setfiles");
    cmd.arg("-F").arg("-r").arg(root).arg(spec).arg(format!("{}{path}", root.display()));
    cmd.run(OstreeSelinux::NAME)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct OstreeSelinux;

impl Stage for OstreeSelinux {
    const NAME: &'static str = "org.osbuild.ostree.selinux";
    const CAPABILITIES: &'static [&'static str] = &["CAP_MAC_ADMIN"];
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let dep = find_deployment(&args.tree, &options.deployment)?;
        let mut found = None;
        for p in ["etc/selinux", "usr/etc/selinux"] {
            let home = dep.path.join(p);
            if let Ok(text) = std::fs::read_to_string(home.join("config")) {
                if let Some(policy) = config_policy(&text) {
                    found = Some((home, policy));
                    break;
                }
            }
        }
        let (home, policy) = found.ok_or_else(|| StageError::Invalid("could not find an SELinux policy".into()))?;
        let spec = home.join(&policy).join("contexts/files/file_contexts");
        setfiles(&spec, &args.tree, "/boot")?;
        setfiles(&spec, &dep.path, "/etc")?;
        setfiles(&spec, &dep.stateroot(&args.tree), "/var")?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_boot_etc_and_var_of_the_deployment() {
        use crate::testutil::args;
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let dep = root.join("ostree/deploy/os/deploy/abc.0");
        let se = dep.join("usr/etc/selinux");
        std::fs::create_dir_all(se.join("targeted/contexts/files")).unwrap();
        std::fs::write(se.join("config"), "SELINUX=enforcing\nSELINUXTYPE=targeted\n").unwrap();
        std::fs::write(
            se.join("targeted/contexts/files/file_contexts"),
            "/.*\tsystem_u:object_r:default_t:s0\n/etc/.*\tsystem_u:object_r:etc_t:s0\n/var/.*\tsystem_u:object_r:var_t:s0\n/boot/.*\tsystem_u:object_r:boot_t:s0\n",
        )
        .unwrap();
        for d in ["boot/loader", "ostree/deploy/os/var/lib"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(dep.join("etc")).unwrap();
        std::fs::write(dep.join("etc/hostname"), "x\n").unwrap();
        let label = |p: &Path| {
            let mut buf = vec![0u8; 256];
            let n = rustix::fs::lgetxattr(p, "security.selinux", &mut buf[..]).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).trim_end_matches('\0').to_owned()
        };
        OstreeSelinux::execute(&args(root, serde_json::json!({"deployment": {"default": true}}))).unwrap();
        assert_eq!(label(&root.join("boot/loader")), "system_u:object_r:boot_t:s0");
        assert_eq!(label(&dep.join("etc/hostname")), "system_u:object_r:etc_t:s0");
        assert_eq!(label(&root.join("ostree/deploy/os/var/lib")), "system_u:object_r:var_t:s0");
        // a disabled policy is an error naming it
        std::fs::write(se.join("config"), "SELINUX=disabled\nSELINUXTYPE=targeted\n").unwrap();
        let e = OstreeSelinux::execute(&args(root, serde_json::json!({"deployment": {"default": true}}))).unwrap_err();
        assert_eq!(e.to_string(), "could not find an SELinux policy");
    }

    #[test]
    fn policy_only_when_enabled() {
        assert_eq!(config_policy("# x\nSELINUX=enforcing\nSELINUXTYPE=targeted\n").as_deref(), Some("targeted"));
        assert_eq!(config_policy("SELINUX=disabled\nSELINUXTYPE=targeted\n"), None);
        assert_eq!(config_policy("SELINUXTYPE=mls\nSELINUX = permissive\n").as_deref(), Some("mls"));
    }
}
