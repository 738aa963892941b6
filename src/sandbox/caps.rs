//! Capability names and numbers, and the host's bounding set.

use super::SandboxError;

/// Capability names in upstream's default set (`osbuild/pipeline.py` `DEFAULT_CAPABILITIES`):
/// every stage keeps these, plus the ones it declares; all others are dropped.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_CHROOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
];

/// Linux capability names, indexed by their number (`linux/capability.h`).
const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability given as `CAP_SYS_ADMIN` (any case; the `CAP_` prefix may be left off).
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = normalize(name);
    NAMES.iter().position(|n| *n == upper).map(|i| i as u32)
}

/// `sys_admin` / `CAP_SYS_ADMIN` / `cap_sys_admin` -> `CAP_SYS_ADMIN`.
pub(crate) fn normalize(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability set as a bit mask (bit n = capability number n); an unknown name is an error.
pub fn capability_mask<S: AsRef<str>>(names: &[S]) -> Result<u64, SandboxError> {
    names.iter().try_fold(0u64, |mask, name| {
        let n = capability_number(name.as_ref())
            .ok_or_else(|| SandboxError::UnknownCapability(name.as_ref().to_owned()))?;
        Ok(mask | (1u64 << n))
    })
}

/// The capability bounding set of this process (`CapBnd` in `/proc/self/status`). bubblewrap can only
/// keep capabilities that are in it; asking it for one outside it misbehaves, so `run` leaves those out.
pub fn host_bounding_set() -> Result<u64, SandboxError> {
    // Read once: nothing in osbuild-rs shrinks its bounding set while it runs.
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if let Some(mask) = BOUNDING.get() {
        return Ok(*mask);
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|source| SandboxError::ReadCapabilities { source: Some(source) })?;
    let mask = parse_status_mask(&status, "CapBnd").ok_or(SandboxError::ReadCapabilities { source: None })?;
    Ok(*BOUNDING.get_or_init(|| mask))
}

/// The hex mask of a `Cap*:` line of a `/proc/<pid>/status` text.
pub fn parse_status_mask(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        u64::from_str_radix(value.trim(), 16).ok()
    })
}

/// The environment variable naming capabilities to take from every stage (comma-separated), for
/// sites whose manifests use only stages that need none of them (see the README's threat model).
pub const ENV_DROP_CAPABILITIES: &str = "OSBUILD_RS_DROP_CAPABILITIES";

/// The capabilities `OSBUILD_RS_DROP_CAPABILITIES` names, normalized; an unknown name is an error.
pub fn dropped_capabilities() -> Result<Vec<String>, SandboxError> {
    let value = std::env::var(ENV_DROP_CAPABILITIES).unwrap_or_default();
    let names: Vec<String> = value.split(',').map(str::trim).filter(|n| !n.is_empty()).map(normalize).collect();
    capability_mask(&names)?;
    Ok(names)
}

/// Sorted, de-duplicated, normalized union of the default set and `declared`, less the
/// capabilities dropped by `OSBUILD_RS_DROP_CAPABILITIES`.
pub(crate) fn requested(declared: &[String]) -> Vec<String> {
    requested_without(declared, &dropped_capabilities().unwrap_or_default())
}

fn requested_without(declared: &[String], dropped: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .chain(declared.iter().map(|c| normalize(c)))
        .filter(|c| !dropped.contains(c))
        .collect();
    caps.sort();
    caps.dedup();
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("sys_resource"), Some(24));
        assert_eq!(capability_number("cap_checkpoint_restore"), Some(40));
        assert_eq!(capability_number("CAP_NOPE"), None);
    }

    #[test]
    fn default_set_is_known_and_sorted() {
        let mut sorted = DEFAULT_CAPABILITIES.to_vec();
        sorted.sort();
        assert_eq!(sorted, DEFAULT_CAPABILITIES);
        assert_eq!(DEFAULT_CAPABILITIES.len(), 19);
        capability_mask(DEFAULT_CAPABILITIES).unwrap();
    }

    #[test]
    fn unknown_capability_is_named() {
        let err = capability_mask(&["CAP_CHOWN", "CAP_BOGUS"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability CAP_BOGUS");
    }

    #[test]
    fn requested_adds_declared_once() {
        let caps = requested(&["mac_admin".into(), "CAP_SYS_ADMIN".into()]);
        assert_eq!(caps.len(), 20);
        assert!(caps.contains(&"CAP_MAC_ADMIN".to_string()));
    }

    #[test]
    fn dropped_capabilities_are_left_out_even_when_declared() {
        let dropped = [normalize("sys_admin"), normalize("CAP_MKNOD")];
        let caps = requested_without(&["CAP_SYS_ADMIN".into(), "mac_admin".into()], &dropped);
        assert_eq!(caps.len(), 18);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()) && !caps.contains(&"CAP_MKNOD".to_string()));
        assert!(caps.contains(&"CAP_MAC_ADMIN".to_string()));
    }

    #[test]
    fn parses_status_masks() {
        let status = "Name:\tx\nCapEff:\t0000000000200000\nCapBnd:\t000001fffeffffff\n";
        assert_eq!(parse_status_mask(status, "CapEff"), Some(1 << 21));
        assert_eq!(parse_status_mask(status, "CapBnd"), Some(0x1fffeffffff));
        assert_eq!(parse_status_mask(status, "CapAmb"), None);
    }
}
