//! Built-in stages: one module per stage, plus the registry.
//!
//! A stage runs inside the build sandbox: the osbuild-rs binary is re-executed there as
//! `osbuild-rs __stage <name>`, reads upstream's arguments document from
//! `/run/osbuild/api/arguments`, changes the tree at `/run/osbuild/tree` and may write a
//! metadata document to `/run/osbuild/meta`.
//!
//! Every stage module holds its typed `Options`, its `run` function and its unit tests. All
//! paths a stage writes to are resolved through [`util`], which keeps them inside the tree (or
//! the mount / input they name) even when the tree holds hostile symlinks.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub mod util;

mod apt_config;
mod apt_sources;
pub mod assemblers;
mod btrfs_subvol;
mod chmod;
mod chown;
mod chrony;
mod cloud_init;
mod configparser;
mod containers_storage_conf;
mod copy;
mod cron_script;
mod deb_util;
mod debconf;
mod disk_util;
mod dmverity;
mod dnf_automatic_config;
mod dnf_config;
mod dpkg;
mod dracut;
mod dracut_conf;
mod first_boot;
mod fix_bls;
mod fstab;
mod greenboot;
mod groups;
mod grub2;
mod grub2_inst;
mod grub2_legacy;
mod grub_util;
mod gzip;
mod hostname;
mod ignition;
mod ini;
mod kernel_cmdline;
mod keymap;
mod ln;
mod locale;
mod machine_id;
mod mkdir;
mod mkfs_btrfs;
mod mkfs_ext4;
mod mkfs_fat;
mod mkfs_xfs;
mod mkswap;
mod modprobe;
mod nm_conf;
mod nm_conn;
mod noop;
mod ostree_aleph;
mod ostree_commit;
mod ostree_config;
mod ostree_deploy;
mod ostree_fillvar;
mod ostree_genkey;
mod ostree_init;
mod ostree_init_fs;
mod ostree_os_init;
mod ostree_passwd;
pub(crate) mod ostree_preptree;
mod ostree_pull;
mod ostree_remotes;
mod ostree_selinux;
mod ostree_sign;
mod ostree_util;
mod pam_limits_conf;
mod parted;
mod pwquality_conf;
mod pyfmt;
mod pyyaml;
mod qemu;
mod resolv_conf;
mod rhsm;
mod rhsm_facts;
mod rpm;
mod rpm_macros;
mod rpmkeys_import;
mod selinux;
mod selinux_config;
mod sfdisk;
mod sgdisk;
mod sshd_config;
mod sysconfig;
mod sysctld;
mod systemd;
mod systemd_journald;
mod systemd_logind;
mod systemd_preset;
mod systemd_sysusers;
mod systemd_sysusers_d;
mod systemd_unit;
mod systemd_unit_create;
pub(crate) mod tar;
mod timezone;
mod tmpfilesd;
mod truncate;
mod tuned;
mod udev_rules;
mod untar;
mod update_crypto_policies;
mod users;
mod xz;
mod yum_repos;
mod zstd;

/// Where the sandbox puts the arguments document.
pub const ARGUMENTS_PATH: &str = "/run/osbuild/api/arguments";
/// Where the sandbox expects the stage's metadata document.
pub const META_PATH: &str = "/run/osbuild/meta";

/// The arguments document upstream osbuild hands to a stage (`osbuild/api.py`).
#[derive(Debug, Clone, Deserialize)]
pub struct StageArgs {
    /// The tree being built, `/run/osbuild/tree` inside the sandbox.
    pub tree: PathBuf,
    #[serde(default)]
    pub options: Value,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub devices: Map<String, Value>,
    #[serde(default)]
    pub mounts: Map<String, Value>,
    #[serde(default)]
    pub meta: Map<String, Value>,
    #[serde(default)]
    pub paths: Map<String, Value>,
}

impl StageArgs {
    /// The stage's options, parsed into its typed `Options`.
    pub(crate) fn parse_options<T: serde::de::DeserializeOwned>(&self, stage: &'static str) -> Result<T, StageError> {
        let options = if self.options.is_null() { Value::Object(Map::new()) } else { self.options.clone() };
        serde_json::from_value(options).map_err(|source| StageError::Options { stage, source })
    }

    /// The host path of input `name` (its `path` field).
    pub(crate) fn input_path(&self, name: &str) -> Result<PathBuf, StageError> {
        self.inputs
            .get(name)
            .and_then(|i| i.get("path"))
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| StageError::Invalid(format!("unknown input '{name}'")))
    }

    /// The directory of files input `name` and its files (`data.files`: file name -> metadata),
    /// each name checked to be a plain file name in that directory.
    pub(crate) fn input_files(&self, name: &str) -> Result<(PathBuf, &Map<String, Value>), StageError> {
        let base = self.input_path(name)?;
        let files = self
            .inputs
            .get(name)
            .and_then(|p| p.pointer("/data/files"))
            .and_then(Value::as_object)
            .ok_or_else(|| StageError::Invalid(format!("input '{name}' lists no files")))?;
        if let Some(bad) = files.keys().find(|f| f.is_empty() || f.contains('/') || *f == "." || *f == "..") {
            return Err(StageError::Invalid(format!("input '{name}' has a bad file name '{bad}'")));
        }
        Ok((base, files))
    }

    /// The path of device `name`'s node (upstream: `paths.devices` joined with the device's
    /// `path`, e.g. `/dev/loop3`).
    pub(crate) fn device_path(&self, name: &str) -> Result<PathBuf, StageError> {
        let dev = self
            .devices
            .get(name)
            .and_then(|d| d.get("path"))
            .and_then(Value::as_str)
            .ok_or_else(|| StageError::Invalid(format!("unknown device '{name}'")))?;
        let root = self.paths.get("devices").and_then(Value::as_str).unwrap_or("/dev");
        Ok(Path::new(root).join(dev))
    }

    /// The host path of mount `name`, or the mounts directory when `name` is empty.
    pub(crate) fn mount_path(&self, name: &str) -> Result<PathBuf, StageError> {
        let found = if name.is_empty() {
            self.paths.get("mounts").and_then(Value::as_str)
        } else {
            self.mounts.get(name).and_then(|m| m.get("path")).and_then(Value::as_str)
        };
        found.map(PathBuf::from).ok_or_else(|| StageError::Invalid(format!("unknown mount '{name}'")))
    }
}

/// Everything that can make a stage fail. Messages are lowercase and name the thing that
/// failed; the cause is kept as `source` so the whole chain can be printed on one line.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot read arguments file {path}")]
    ReadArguments {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid arguments file {path}")]
    ParseArguments {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid options")]
    Options {
        stage: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("too many levels of symbolic links resolving {path} in {root}")]
    SymlinkLoop { root: PathBuf, path: String },
    #[error("{tool} not found {place}, but {stage} needs it")]
    ToolMissing { tool: String, stage: &'static str, place: &'static str },
    #[error("cannot run {tool}")]
    ToolSpawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed ({status}){stderr}")]
    ToolFailed { argv: String, status: std::process::ExitStatus, stderr: String },
    #[error("cannot write metadata {path}")]
    WriteMeta {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StageError {
        let path = path.into();
        move |source| StageError::Io { op, path, source }
    }
}

/// What a stage returns on success: an optional metadata document.
pub type StageResult = Result<Option<Value>, StageError>;

/// One built-in stage.
pub struct StageInfo {
    /// Upstream's name, e.g. `org.osbuild.mkdir`.
    pub name: &'static str,
    /// Capabilities the sandbox must grant on top of the default set.
    pub capabilities: &'static [&'static str],
    pub run: fn(&StageArgs) -> StageResult,
    /// Parse options into the stage's typed `Options` without running it (see
    /// [`StageInfo::check_options`]).
    pub parse: fn(&Value) -> Result<(), serde_json::Error>,
}

impl StageInfo {
    /// Whether `options` (as in a manifest; `null` counts as `{}`) fit this stage's typed
    /// options. Complements the JSON schema check, which the engine does on the manifest.
    pub fn check_options(&self, options: &Value) -> Result<(), StageError> {
        let options = if options.is_null() { &Value::Object(Map::new()) } else { options };
        (self.parse)(options).map_err(|source| StageError::Options { stage: self.name, source })
    }
}

fn parse_as<T: serde::de::DeserializeOwned>(options: &Value) -> Result<(), serde_json::Error> {
    T::deserialize(options).map(drop)
}

impl std::fmt::Debug for StageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageInfo").field("name", &self.name).field("capabilities", &self.capabilities).finish()
    }
}

/// One registry entry: upstream name, module, extra capabilities.
macro_rules! stage {
    ($name:literal, $module:ident $(, $cap:literal)*) => {
        StageInfo { name: $name, capabilities: &[$($cap),*], run: $module::run, parse: parse_as::<$module::Options> }
    };
}

static REGISTRY: &[StageInfo] = &[
    stage!("org.osbuild.apt.config", apt_config),
    stage!("org.osbuild.apt.sources", apt_sources),
    stage!("org.osbuild.btrfs.subvol", btrfs_subvol),
    stage!("org.osbuild.chmod", chmod),
    stage!("org.osbuild.chown", chown),
    stage!("org.osbuild.chrony", chrony),
    stage!("org.osbuild.cloud-init", cloud_init),
    stage!("org.osbuild.containers.storage.conf", containers_storage_conf),
    stage!("org.osbuild.copy", copy, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.cron.script", cron_script),
    stage!("org.osbuild.debconf", debconf),
    stage!("org.osbuild.dmverity", dmverity),
    stage!("org.osbuild.dnf-automatic.config", dnf_automatic_config),
    stage!("org.osbuild.dnf.config", dnf_config),
    stage!("org.osbuild.dpkg", dpkg),
    stage!("org.osbuild.dracut", dracut),
    stage!("org.osbuild.dracut.conf", dracut_conf),
    stage!("org.osbuild.first-boot", first_boot),
    stage!("org.osbuild.fix-bls", fix_bls),
    stage!("org.osbuild.fstab", fstab),
    stage!("org.osbuild.greenboot", greenboot),
    stage!("org.osbuild.groups", groups),
    stage!("org.osbuild.grub2", grub2),
    stage!("org.osbuild.grub2.inst", grub2_inst),
    stage!("org.osbuild.grub2.legacy", grub2_legacy),
    stage!("org.osbuild.gzip", gzip),
    stage!("org.osbuild.hostname", hostname),
    stage!("org.osbuild.ignition", ignition),
    stage!("org.osbuild.kernel-cmdline", kernel_cmdline),
    stage!("org.osbuild.keymap", keymap),
    stage!("org.osbuild.ln", ln),
    stage!("org.osbuild.locale", locale),
    stage!("org.osbuild.machine-id", machine_id),
    stage!("org.osbuild.mkdir", mkdir),
    stage!("org.osbuild.mkfs.btrfs", mkfs_btrfs),
    stage!("org.osbuild.mkfs.ext4", mkfs_ext4),
    stage!("org.osbuild.mkfs.fat", mkfs_fat),
    stage!("org.osbuild.mkfs.xfs", mkfs_xfs),
    stage!("org.osbuild.mkswap", mkswap),
    stage!("org.osbuild.modprobe", modprobe),
    stage!("org.osbuild.nm.conf", nm_conf),
    stage!("org.osbuild.nm.conn", nm_conn),
    stage!("org.osbuild.noop", noop),
    stage!("org.osbuild.ostree.aleph", ostree_aleph, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.ostree.commit", ostree_commit, "CAP_MAC_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"),
    stage!("org.osbuild.ostree.config", ostree_config),
    stage!("org.osbuild.ostree.deploy", ostree_deploy, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.ostree.fillvar", ostree_fillvar),
    stage!("org.osbuild.ostree.genkey", ostree_genkey),
    stage!("org.osbuild.ostree.init", ostree_init),
    stage!("org.osbuild.ostree.init-fs", ostree_init_fs),
    stage!("org.osbuild.ostree.os-init", ostree_os_init),
    stage!("org.osbuild.ostree.passwd", ostree_passwd),
    stage!("org.osbuild.ostree.preptree", ostree_preptree, "CAP_MAC_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"),
    stage!("org.osbuild.ostree.pull", ostree_pull, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.ostree.remotes", ostree_remotes),
    stage!("org.osbuild.ostree.selinux", ostree_selinux, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.ostree.sign", ostree_sign),
    stage!("org.osbuild.pam.limits.conf", pam_limits_conf),
    stage!("org.osbuild.parted", parted),
    stage!("org.osbuild.pwquality.conf", pwquality_conf),
    stage!("org.osbuild.qemu", qemu),
    stage!("org.osbuild.resolv-conf", resolv_conf),
    stage!("org.osbuild.rhsm", rhsm),
    stage!("org.osbuild.rhsm.facts", rhsm_facts),
    stage!("org.osbuild.rpm", rpm),
    stage!("org.osbuild.rpm.macros", rpm_macros),
    stage!("org.osbuild.rpmkeys.import", rpmkeys_import),
    stage!("org.osbuild.selinux", selinux, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.selinux.config", selinux_config),
    stage!("org.osbuild.sfdisk", sfdisk),
    stage!("org.osbuild.sgdisk", sgdisk),
    stage!("org.osbuild.sshd.config", sshd_config),
    stage!("org.osbuild.sysconfig", sysconfig),
    stage!("org.osbuild.sysctld", sysctld),
    stage!("org.osbuild.systemd", systemd),
    stage!("org.osbuild.systemd-journald", systemd_journald),
    stage!("org.osbuild.systemd-logind", systemd_logind),
    stage!("org.osbuild.systemd-sysusers", systemd_sysusers),
    stage!("org.osbuild.systemd-sysusers.d", systemd_sysusers_d),
    stage!("org.osbuild.systemd.preset", systemd_preset),
    stage!("org.osbuild.systemd.unit", systemd_unit),
    stage!("org.osbuild.systemd.unit.create", systemd_unit_create),
    stage!("org.osbuild.tar", tar, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.timezone", timezone),
    stage!("org.osbuild.tmpfilesd", tmpfilesd),
    stage!("org.osbuild.truncate", truncate),
    stage!("org.osbuild.tuned", tuned),
    stage!("org.osbuild.udev.rules", udev_rules),
    stage!("org.osbuild.untar", untar, "CAP_MAC_ADMIN"),
    stage!("org.osbuild.update-crypto-policies", update_crypto_policies),
    stage!("org.osbuild.users", users),
    stage!("org.osbuild.xz", xz),
    stage!("org.osbuild.yum.repos", yum_repos),
    stage!("org.osbuild.zstd", zstd),
];

/// All built-in stages, sorted by name.
pub fn registry() -> &'static [StageInfo] {
    REGISTRY
}

/// The built-in stage called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static StageInfo> {
    REGISTRY.iter().find(|s| s.name == name)
}

/// Entry point of `osbuild-rs __assembler <name>` inside the sandbox.
pub fn assembler_main(name: &str) -> i32 {
    let Some(info) = assemblers::find(name) else {
        eprintln!("{name}: unknown assembler");
        return 1;
    };
    match run_info(info, Path::new(ARGUMENTS_PATH), Path::new(META_PATH)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: {}", error_chain(&e));
            1
        }
    }
}

/// Entry point of `osbuild-rs __stage <name>` inside the sandbox.
pub fn stage_main(name: &str) -> i32 {
    run_stage_from_file(name, Path::new(ARGUMENTS_PATH), Path::new(META_PATH))
}

/// Run stage `name` with the arguments document at `args_path`, writing its metadata (if
/// any) to `meta_path`. Returns the process exit code; errors are printed to stderr as one
/// line, `<stage name>: <error chain>`.
pub fn run_stage_from_file(name: &str, args_path: &Path, meta_path: &Path) -> i32 {
    match try_run_stage(name, args_path, meta_path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: {}", error_chain(&e));
            1
        }
    }
}

fn try_run_stage(name: &str, args_path: &Path, meta_path: &Path) -> Result<(), StageError> {
    let stage = find(name).ok_or_else(|| StageError::Invalid(format!("unknown stage {name}")))?;
    run_info(stage, args_path, meta_path)
}

fn run_info(stage: &StageInfo, args_path: &Path, meta_path: &Path) -> Result<(), StageError> {
    let text = std::fs::read_to_string(args_path)
        .map_err(|source| StageError::ReadArguments { path: args_path.to_owned(), source })?;
    let args: StageArgs = serde_json::from_str(&text)
        .map_err(|source| StageError::ParseArguments { path: args_path.to_owned(), source })?;
    if let Some(meta) = (stage.run)(&args)? {
        let text = serde_json::to_vec(&meta).expect("metadata serialises");
        std::fs::write(meta_path, text)
            .map_err(|source| StageError::WriteMeta { path: meta_path.to_owned(), source })?;
    }
    Ok(())
}

/// `error: cause: cause…` on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_meta(_: &StageArgs) -> StageResult {
        Ok(Some(json!({"packages": [{"name": "x"}]})))
    }

    #[test]
    fn metadata_is_written_and_arguments_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let info = StageInfo { name: "org.osbuild.test", capabilities: &[], run: with_meta, parse: parse_as::<Value> };
        let args = t.path().join("arguments");
        let meta = t.path().join("meta");
        std::fs::write(&args, r#"{"tree": "/run/osbuild/tree", "api": {"extra": "ignored"}}"#).unwrap();
        run_info(&info, &args, &meta).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        assert_eq!(written, json!({"packages": [{"name": "x"}]}));

        std::fs::write(&args, r#"{"options": {}}"#).unwrap();
        let e = error_chain(&run_info(&info, &args, &meta).unwrap_err());
        assert!(e.starts_with(&format!("invalid arguments file {}: missing field `tree`", args.display())), "{e}");
        let e = error_chain(&run_info(&info, &t.path().join("nope"), &meta).unwrap_err());
        assert!(e.starts_with("cannot read arguments file"), "{e}");
    }

    #[test]
    fn check_options_names_the_problem() {
        let mkdir = find("org.osbuild.mkdir").unwrap();
        assert!(mkdir.check_options(&Value::Null).is_ok());
        let e = mkdir.check_options(&json!({"paths": [{"path": 1}]})).unwrap_err();
        assert!(error_chain(&e).starts_with("invalid options: invalid type: number, expected a string"), "{e:?}");
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use serde_json::json;

    /// Arguments for a stage run on `tree` with `options`.
    pub fn args(tree: &Path, options: Value) -> StageArgs {
        serde_json::from_value(json!({"tree": tree, "options": options, "meta": {"id": "test"}})).unwrap()
    }
}
