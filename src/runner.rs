//! Runner names. Upstream picks, for a requested `org.osbuild.<distro><version>`, the
//! known runner of the same distro with the highest version not above the request; the
//! host's runner comes from os-release. `--inspect` shows that name, so we mirror it.

/// Runners upstream osbuild 191 ships (names only: they select per-distro setup).
const KNOWN: &[&str] = &[
    "org.osbuild.AutoSD9",
    "org.osbuild.almalinux8",
    "org.osbuild.almalinux9",
    "org.osbuild.arch",
    "org.osbuild.asahi-fedora-remix",
    "org.osbuild.autosd",
    "org.osbuild.centos8",
    "org.osbuild.centos9",
    "org.osbuild.debian",
    "org.osbuild.eln11",
    "org.osbuild.fedora-asahi-remix",
    "org.osbuild.fedora30",
    "org.osbuild.fedora38",
    "org.osbuild.linux",
    "org.osbuild.ol9",
    "org.osbuild.rhel7",
    "org.osbuild.rhel81",
    "org.osbuild.rhel82",
    "org.osbuild.rhivos",
    "org.osbuild.ubuntu1804",
];

/// Split `org.osbuild.fedora38` into (`org.osbuild.fedora`, 38); no digits means 0.
fn parse_name(name: &str) -> (&str, u64) {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let base = if base.is_empty() { &name[..1] } else { base };
    let version = name[base.len()..].parse().unwrap_or(0);
    (base, version)
}

/// The best known runner for `name`, or `None` when the distro has none.
pub fn detect(name: &str) -> Option<&'static str> {
    detect_among(name, KNOWN.iter().copied())
}

/// The best of `candidates` for `name`: same distro, highest version not above the request.
pub fn detect_among<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let (distro, version) = parse_name(name);
    candidates
        .map(|k| (k, parse_name(k)))
        .filter(|(_, (d, v))| *d == distro && *v <= version)
        .max_by_key(|(_, (_, v))| *v)
        .map(|(k, _)| k)
}

/// The runner name that pipeline `p` runs with, as upstream loads it: v2 declares it on the build
/// pipeline, v1 beside the build pipeline it uses; the host's when it builds on the host or
/// none is declared.
pub fn of_pipeline(m: &crate::manifest::Manifest, p: &crate::manifest::Pipeline) -> String {
    let declared = match m.format {
        crate::manifest::Format::V1 => p.runner.clone(),
        crate::manifest::Format::V2 => p
            .build
            .as_deref()
            .and_then(|build| m.pipelines.iter().find(|q| q.id() == Some(build)))
            .and_then(|q| q.runner.clone()),
    };
    declared.filter(|_| p.build.is_some()).unwrap_or_else(|| host().to_owned())
}

/// `${ID}${VERSION_ID}` without dots, from os-release text.
pub fn describe_os(os_release: &str) -> String {
    let get = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
    };
    let id = get("ID").unwrap_or_else(|| "linux".into());
    let version = get("VERSION_ID").unwrap_or_default().replace('.', "");
    format!("{id}{version}")
}

/// The host's runner, as upstream would name it; `org.osbuild.linux` if none fits.
pub fn host() -> &'static str {
    static HOST: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let text = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        detect(&format!("org.osbuild.{}", describe_os(&text))).unwrap_or("org.osbuild.linux")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_version_not_above_request() {
        assert_eq!(detect("org.osbuild.fedora43"), Some("org.osbuild.fedora38"));
        assert_eq!(detect("org.osbuild.fedora37"), Some("org.osbuild.fedora30"));
        assert_eq!(detect("org.osbuild.debian12"), Some("org.osbuild.debian"));
        assert_eq!(detect("org.osbuild.rhel85"), Some("org.osbuild.rhel82"));
        assert_eq!(detect("org.osbuild.plan9"), None);
    }

    #[test]
    fn os_release_description() {
        assert_eq!(describe_os("NAME=\"Debian\"\nID=debian\nVERSION_ID=\"12\"\n"), "debian12");
        assert_eq!(describe_os("ID=rhel\nVERSION_ID=\"9.4\""), "rhel94");
        assert_eq!(describe_os(""), "linux");
    }
}
