//! Built-in stages: one module per stage, plus the registry. This crate depends only on the
//! stage API (`osbuild-stage-api`), never on the engine, store or sandbox; see that crate for
//! how a stage runs.
//!
//! Every stage module holds its typed `Options`, its `run` function and its unit tests. All
//! paths a stage writes to are resolved through [`util`], which keeps them inside the tree (or
//! the mount / input they name) even when the tree holds hostile symlinks.

pub use osbuild_stage_api::{
    canonical_json, chroot, entry, error_chain, ostree_ref, run_info, sys, tool, util, Stage, StageArgs, StageError,
    StageInfo, StageResult, ARGUMENTS_PATH, META_PATH, UPSTREAM_VERSION,
};
use std::path::Path;

mod anaconda;
mod apt_config;
mod apt_sources;
pub mod assemblers;
mod bootiso_mono;
mod btrfs_subvol;
mod buildstamp;
mod chmod;
mod chown;
mod chrony;
mod cloud_init;
mod configparser;
mod containers_storage_conf;
mod copy;
mod cpio_out;
mod cron_script;
mod deb_util;
mod debconf;
mod discinfo;
mod disk_util;
mod dmverity;
mod dnf_automatic_config;
mod dnf_config;
mod dpkg;
mod dracut;
mod dracut_conf;
mod erofs;
mod ext4_times;
mod first_boot;
mod fix_bls;
mod fs_image;
mod fstab;
mod greenboot;
mod groups;
mod grub2;
mod grub2_inst;
mod grub2_iso;
mod grub2_iso_legacy;
mod grub2_legacy;
mod grub2_syslinux_menu;
mod grub_util;
mod gzip;
mod hostname;
mod ignition;
mod implantisomd5;
mod ini;
mod installer;
mod isolinux;
mod kernel_cmdline;
mod keymap;
mod kickstart;
mod ln;
mod locale;
mod machine_id;
mod mkdir;
mod mkfs_btrfs;
mod mkfs_ext4;
mod mkfs_ext4_tree;
mod mkfs_fat;
mod mkfs_fat_tree;
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
mod squashfs;
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
mod treeinfo;
mod truncate;
mod tuned;
mod udev_rules;
mod untar;
mod update_crypto_policies;
mod users;
mod xorrisofs;
mod xz;
mod yum_repos;
mod zstd;

static REGISTRY: &[StageInfo] = &[
    entry::<installer::Installer>(),
    entry::<mkfs_ext4_tree::MkfsExt4Tree>(),
    entry::<mkfs_fat_tree::MkfsFatTree>(),
    entry::<anaconda::Anaconda>(),
    entry::<apt_config::AptConfig>(),
    entry::<apt_sources::AptSources>(),
    entry::<bootiso_mono::BootisoMono>(),
    entry::<btrfs_subvol::BtrfsSubvol>(),
    entry::<buildstamp::Buildstamp>(),
    entry::<chmod::Chmod>(),
    entry::<chown::Chown>(),
    entry::<chrony::Chrony>(),
    entry::<cloud_init::CloudInit>(),
    entry::<containers_storage_conf::ContainersStorageConf>(),
    entry::<copy::Copy>(),
    entry::<cpio_out::CpioOut>(),
    entry::<cron_script::CronScript>(),
    entry::<debconf::Debconf>(),
    entry::<discinfo::Discinfo>(),
    entry::<dmverity::Dmverity>(),
    entry::<dnf_automatic_config::DnfAutomaticConfig>(),
    entry::<dnf_config::DnfConfig>(),
    entry::<dpkg::Dpkg>(),
    entry::<dracut::Dracut>(),
    entry::<dracut_conf::DracutConf>(),
    entry::<erofs::Erofs>(),
    entry::<first_boot::FirstBoot>(),
    entry::<fix_bls::FixBls>(),
    entry::<fstab::Fstab>(),
    entry::<greenboot::Greenboot>(),
    entry::<groups::Groups>(),
    entry::<grub2::Grub2>(),
    entry::<grub2_inst::Grub2Inst>(),
    entry::<grub2_iso::Grub2Iso>(),
    entry::<grub2_iso_legacy::Grub2IsoLegacy>(),
    entry::<grub2_legacy::Grub2Legacy>(),
    entry::<grub2_syslinux_menu::Grub2SyslinuxMenu>(),
    entry::<gzip::Gzip>(),
    entry::<hostname::Hostname>(),
    entry::<ignition::Ignition>(),
    entry::<implantisomd5::Implantisomd5>(),
    entry::<isolinux::Isolinux>(),
    entry::<kernel_cmdline::KernelCmdline>(),
    entry::<keymap::Keymap>(),
    entry::<kickstart::Kickstart>(),
    entry::<ln::Ln>(),
    entry::<locale::Locale>(),
    entry::<machine_id::MachineId>(),
    entry::<mkdir::Mkdir>(),
    entry::<mkfs_btrfs::MkfsBtrfs>(),
    entry::<mkfs_ext4::MkfsExt4>(),
    entry::<mkfs_fat::MkfsFat>(),
    entry::<mkfs_xfs::MkfsXfs>(),
    entry::<mkswap::Mkswap>(),
    entry::<modprobe::Modprobe>(),
    entry::<nm_conf::NmConf>(),
    entry::<nm_conn::NmConn>(),
    entry::<noop::Noop>(),
    entry::<ostree_aleph::OstreeAleph>(),
    entry::<ostree_commit::OstreeCommit>(),
    entry::<ostree_config::OstreeConfig>(),
    entry::<ostree_deploy::OstreeDeploy>(),
    entry::<ostree_fillvar::OstreeFillvar>(),
    entry::<ostree_genkey::OstreeGenkey>(),
    entry::<ostree_init::OstreeInit>(),
    entry::<ostree_init_fs::OstreeInitFs>(),
    entry::<ostree_os_init::OstreeOsInit>(),
    entry::<ostree_passwd::OstreePasswd>(),
    entry::<ostree_preptree::OstreePreptree>(),
    entry::<ostree_pull::OstreePull>(),
    entry::<ostree_remotes::OstreeRemotes>(),
    entry::<ostree_selinux::OstreeSelinux>(),
    entry::<ostree_sign::OstreeSign>(),
    entry::<pam_limits_conf::PamLimitsConf>(),
    entry::<parted::Parted>(),
    entry::<pwquality_conf::PwqualityConf>(),
    entry::<qemu::Qemu>(),
    entry::<resolv_conf::ResolvConf>(),
    entry::<rhsm::Rhsm>(),
    entry::<rhsm_facts::RhsmFacts>(),
    entry::<rpm::Rpm>(),
    entry::<rpm_macros::RpmMacros>(),
    entry::<rpmkeys_import::RpmkeysImport>(),
    entry::<selinux::Selinux>(),
    entry::<selinux_config::SelinuxConfig>(),
    entry::<sfdisk::Sfdisk>(),
    entry::<sgdisk::Sgdisk>(),
    entry::<squashfs::Squashfs>(),
    entry::<sshd_config::SshdConfig>(),
    entry::<sysconfig::Sysconfig>(),
    entry::<sysctld::Sysctld>(),
    entry::<systemd::Systemd>(),
    entry::<systemd_journald::SystemdJournald>(),
    entry::<systemd_logind::SystemdLogind>(),
    entry::<systemd_sysusers::SystemdSysusers>(),
    entry::<systemd_sysusers_d::SystemdSysusersD>(),
    entry::<systemd_preset::SystemdPreset>(),
    entry::<systemd_unit::SystemdUnit>(),
    entry::<systemd_unit_create::SystemdUnitCreate>(),
    entry::<tar::Tar>(),
    entry::<timezone::Timezone>(),
    entry::<tmpfilesd::Tmpfilesd>(),
    entry::<treeinfo::Treeinfo>(),
    entry::<truncate::Truncate>(),
    entry::<tuned::Tuned>(),
    entry::<udev_rules::UdevRules>(),
    entry::<untar::Untar>(),
    entry::<update_crypto_policies::UpdateCryptoPolicies>(),
    entry::<users::Users>(),
    entry::<xorrisofs::Xorrisofs>(),
    entry::<xz::Xz>(),
    entry::<yum_repos::YumRepos>(),
    entry::<zstd::Zstd>(),
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
    osbuild_stage_api::run_main(info, Path::new(ARGUMENTS_PATH), Path::new(META_PATH))
}

/// Entry point of `osbuild-rs __stage <name>` inside the sandbox.
pub fn stage_main(name: &str) -> i32 {
    run_stage_from_file(name, Path::new(ARGUMENTS_PATH), Path::new(META_PATH))
}

/// Run stage `name` with the arguments document at `args_path`, writing its metadata (if
/// any) to `meta_path`. Returns the process exit code; errors are printed to stderr as one
/// line, `<stage name>: <error chain>`.
pub fn run_stage_from_file(name: &str, args_path: &Path, meta_path: &Path) -> i32 {
    let Some(info) = find(name) else {
        eprintln!("{name}: unknown stage {name}");
        return 1;
    };
    osbuild_stage_api::run_main(info, args_path, meta_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
    pub use osbuild_stage_api::testing::*;
}
