//! `org.osbuild-rs.installer` (osbuild-rs' own): make a live root an unattended OSTree
//! installer, for installer ISOs of distributions without Anaconda (Debian). The stage puts
//! this very osbuild-rs binary (static, so it runs on any root) at
//! `/usr/libexec/osbuild-rs/osbuild-rs` and a systemd unit, enabled for `multi-user.target`,
//! that runs `osbuild-rs __install` when the kernel command line has `inst.ks=`: the
//! installer reads that kickstart and installs (see the main crate's `installer` module).
//!
//! With `console_shell`, root is logged in on the serial and first virtual consoles once the
//! installer has finished, to look into a failed installation (Anaconda has its shell on
//! tty2); a successful one reboots or powers off before that matters.

use super::util::{create_parents, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub console_shell: bool,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Installer;

pub const BINARY: &str = "usr/libexec/osbuild-rs/osbuild-rs";
const UNIT: &str = "usr/lib/systemd/system/osbuild-rs-installer.service";
const WANTS: &str = "etc/systemd/system/multi-user.target.wants/osbuild-rs-installer.service";

impl Stage for Installer {
    const NAME: &'static str = "org.osbuild-rs.installer";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let exe = std::env::current_exe().map_err(StageError::io("find our executable", "/proc/self/exe"))?;
        let binary = tree_path(args, BINARY, false)?;
        create_parents(&binary)?;
        let _ = std::fs::remove_file(&binary);
        std::fs::copy(&exe, &binary).map_err(StageError::io("copy", &binary))?;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .map_err(StageError::io("chmod", &binary))?;
        let unit_path = tree_path(args, UNIT, false)?;
        create_parents(&unit_path)?;
        write_file(&unit_path, unit().as_bytes(), 0o644)?;
        let wants = tree_path(args, WANTS, false)?;
        create_parents(&wants)?;
        let _ = std::fs::remove_file(&wants);
        std::os::unix::fs::symlink(format!("/{UNIT}"), &wants).map_err(StageError::io("symlink", &wants))?;
        if options.console_shell {
            for (getty, baud) in [("serial-getty@", "115200,57600,38400,9600"), ("getty@", "38400")] {
                let dropin =
                    tree_path(args, format!("etc/systemd/system/{getty}.service.d/osbuild-rs-installer.conf"), false)?;
                create_parents(&dropin)?;
                write_file(&dropin, console_shell(baud).as_bytes(), 0o644)?;
            }
        }
        Ok(None)
    }
}

fn unit() -> String {
    format!(
        "# written by org.osbuild-rs.installer\n\
         [Unit]\n\
         Description=osbuild-rs unattended installer (the kickstart of inst.ks=)\n\
         ConditionKernelCommandLine=inst.ks\n\
         After=local-fs.target systemd-udev-settle.service\n\
         Wants=systemd-udev-settle.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/{BINARY} __install\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         TimeoutStartSec=infinity\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

fn console_shell(baud: &str) -> String {
    format!(
        "# written by org.osbuild-rs.installer: a root shell once the installer is done\n\
         [Unit]\n\
         After=osbuild-rs-installer.service\n\
         \n\
         [Service]\n\
         ExecStart=\n\
         ExecStart=-/sbin/agetty --autologin root --keep-baud {baud} %I $TERM\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn installs_this_binary_and_an_enabled_unit() {
        let t = tempfile::tempdir().unwrap();
        Installer::execute(&args(t.path(), json!({}))).unwrap();
        let bin = t.path().join(BINARY);
        assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(std::env::current_exe().unwrap()).unwrap());
        assert_eq!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777, 0o755);
        let unit = std::fs::read_to_string(t.path().join(UNIT)).unwrap();
        assert!(unit.contains("ExecStart=/usr/libexec/osbuild-rs/osbuild-rs __install\n"), "{unit}");
        assert!(unit.contains("ConditionKernelCommandLine=inst.ks\n"), "{unit}");
        assert_eq!(std::fs::read_link(t.path().join(WANTS)).unwrap(), std::path::Path::new("/").join(UNIT));
        assert!(!t.path().join("etc/systemd/system/serial-getty@.service.d").exists());
        // again, with the shell: the stage may run on a tree that has it already
        Installer::execute(&args(t.path(), json!({"console_shell": true}))).unwrap();
        let dropin = std::fs::read_to_string(
            t.path().join("etc/systemd/system/serial-getty@.service.d/osbuild-rs-installer.conf"),
        )
        .unwrap();
        assert!(
            dropin.contains("After=osbuild-rs-installer.service") && dropin.contains("--autologin root"),
            "{dropin}"
        );
        assert!(Installer::execute(&args(t.path(), json!({"shell": true}))).is_err());
    }
}
