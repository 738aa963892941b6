//! Helpers shared by the Debian stages (`org.osbuild.dpkg`, `org.osbuild.apt.*`,
//! `org.osbuild.debconf`): control paragraphs, dependency fields, dpkg's path filters and
//! deb822 apt sources.

use super::StageError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One deb822 paragraph (`Field: value`, continuation lines start with a blank), field names
/// as written. Values of multi-line fields keep their newlines.
pub fn parse_paragraph(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_owned();
            out.insert(k.clone(), v.trim().to_owned());
            last = Some(k);
        }
    }
    out
}

/// A dependency field (`Depends`, `Pre-Depends`) as groups of alternatives, each a bare
/// package name: versions, architecture qualifiers, arch lists and build profiles dropped.
pub fn parse_relations(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let alt = alt.trim();
                    let end = alt.find([' ', '(', '[', '<', '\n', '\t']).unwrap_or(alt.len());
                    let name = alt[..end].split(':').next().unwrap_or("").trim();
                    (!name.is_empty()).then(|| name.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// dpkg's `--path-exclude` / `--path-include` filters, applied in order; the last one that
/// matches decides (fnmatch(3) without FNM_PATHNAME: `*` also matches `/`).
#[derive(Debug, Clone, PartialEq)]
pub enum PathFilter {
    Exclude(String),
    Include(String),
}

impl PathFilter {
    pub fn pattern(&self) -> &str {
        match self {
            PathFilter::Exclude(p) | PathFilter::Include(p) => p,
        }
    }
    /// The `path-exclude=…` line of dpkg's configuration.
    pub fn config_line(&self) -> String {
        match self {
            PathFilter::Exclude(p) => format!("path-exclude={p}"),
            PathFilter::Include(p) => format!("path-include={p}"),
        }
    }
}

/// Whether dpkg would leave `path` (absolute, as in the package) out.
pub fn path_is_excluded(filters: &[PathFilter], path: &str) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let mut excluded = false;
    for f in filters {
        if glob::Pattern::new(f.pattern()).is_ok_and(|p| p.matches_with(path, opts)) {
            excluded = matches!(f, PathFilter::Exclude(_));
        }
    }
    excluded
}

/// Check a filter pattern: absolute and a valid glob.
pub fn check_pattern(p: &str) -> Result<(), StageError> {
    if !p.starts_with('/') {
        return Err(StageError::Invalid(format!("path filter '{p}' must be an absolute path")));
    }
    if p.contains('\n') {
        return Err(StageError::Invalid(format!("path filter {p:?} must be one line")));
    }
    glob::Pattern::new(p).map_err(|e| StageError::Invalid(format!("path filter '{p}' is not a valid pattern: {e}")))?;
    Ok(())
}

/// One deb822 source entry (`sources.list(5)`, "DEB822-STYLE FORMAT").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub signed_by: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Further fields, written as given (e.g. `"Check-Valid-Until": "no"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_types() -> Vec<String> {
    vec!["deb".to_owned()]
}

fn one_line(what: &str, v: &str) -> Result<(), StageError> {
    if v.is_empty() || v.contains(['\n', '\r']) || v.contains(char::is_whitespace) {
        return Err(StageError::Invalid(format!("apt source {what} '{v}' must be one word")));
    }
    Ok(())
}

/// Render source entries as a deb822 `.sources` file.
pub fn render_sources(entries: &[SourceEntry]) -> Result<String, StageError> {
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        if e.uris.is_empty() || e.suites.is_empty() || e.types.is_empty() {
            return Err(StageError::Invalid(format!("apt source {} needs types, uris and suites", i + 1)));
        }
        for t in &e.types {
            if t != "deb" && t != "deb-src" {
                return Err(StageError::Invalid(format!("apt source type '{t}' is neither deb nor deb-src")));
            }
        }
        for (what, list) in [("uri", &e.uris), ("suite", &e.suites), ("component", &e.components)] {
            for v in list.iter() {
                one_line(what, v)?;
            }
        }
        if e.suites.iter().any(|s| !s.ends_with('/')) && e.components.is_empty() {
            return Err(StageError::Invalid(format!(
                "apt source {} needs components (only suites ending in '/' go without)",
                i + 1
            )));
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("Types: {}\n", e.types.join(" ")));
        out.push_str(&format!("URIs: {}\n", e.uris.join(" ")));
        out.push_str(&format!("Suites: {}\n", e.suites.join(" ")));
        if !e.components.is_empty() {
            out.push_str(&format!("Components: {}\n", e.components.join(" ")));
        }
        if !e.architectures.is_empty() {
            out.push_str(&format!("Architectures: {}\n", e.architectures.join(" ")));
        }
        if let Some(en) = e.enabled {
            out.push_str(&format!("Enabled: {}\n", if en { "yes" } else { "no" }));
        }
        if let Some(key) = &e.signed_by {
            out.push_str("Signed-By:");
            if key.contains('\n') {
                // an inline ASCII-armoured key: continuation lines, empty lines as " ."
                for l in key.trim_end().lines() {
                    out.push_str("\n ");
                    out.push_str(if l.trim().is_empty() { "." } else { l });
                }
                out.push('\n');
            } else {
                out.push_str(&format!(" {key}\n"));
            }
        }
        for (k, v) in &e.options {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || v.contains('\n') {
                return Err(StageError::Invalid(format!("apt source option '{k}' is not a one-line deb822 field")));
            }
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_relations() {
        let p = parse_paragraph("Package: fish\nVersion: 3.6.0-3\nDepends: fish-common (= 3.6.0-3), libc6 (>= 2.34),\n libpcre2-32-0 | libpcre2-x:any [amd64] <!nocheck>\nEssential: yes\n");
        assert_eq!(p["Package"], "fish");
        assert_eq!(p["Essential"], "yes");
        let r = parse_relations(&p["Depends"]);
        assert_eq!(r, vec![vec!["fish-common"], vec!["libc6"], vec!["libpcre2-32-0", "libpcre2-x"]]);
        assert!(parse_relations("").is_empty());
    }

    #[test]
    fn filters_last_match_wins() {
        let f = vec![
            PathFilter::Exclude("/usr/share/doc/*".into()),
            PathFilter::Include("/usr/share/doc/*/copyright".into()),
        ];
        assert!(path_is_excluded(&f, "/usr/share/doc/fish/changelog.gz"));
        assert!(path_is_excluded(&f, "/usr/share/doc/fish/a/b"));
        assert!(!path_is_excluded(&f, "/usr/share/doc/fish/copyright"));
        assert!(!path_is_excluded(&f, "/usr/bin/fish"));
        assert!(check_pattern("usr/share").is_err());
        assert!(check_pattern("/usr/[").is_err());
    }

    #[test]
    fn sources_render_as_deb822() {
        let e: Vec<SourceEntry> = serde_json::from_value(serde_json::json!([
            {"uris": ["http://mirror.example/debian"], "suites": ["bookworm", "bookworm-updates"],
             "components": ["main"], "signed_by": "/usr/share/keyrings/debian-archive-keyring.gpg"},
            {"types": ["deb-src"], "uris": ["http://x.example/d"], "suites": ["./"], "enabled": false,
             "options": {"Check-Valid-Until": "no"}, "signed_by": "-----BEGIN-----\n\nabc\n-----END-----\n"}
        ]))
        .unwrap();
        assert_eq!(
            render_sources(&e).unwrap(),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb-src\nURIs: http://x.example/d\nSuites: ./\nEnabled: no\nSigned-By:\n -----BEGIN-----\n .\n abc\n -----END-----\n\
             Check-Valid-Until: no\n"
        );
        let bad: Vec<SourceEntry> =
            serde_json::from_value(serde_json::json!([{"uris": ["http://x"], "suites": ["bookworm"]}])).unwrap();
        assert!(render_sources(&bad).unwrap_err().to_string().contains("needs components"));
        let bad: Vec<SourceEntry> = serde_json::from_value(
            serde_json::json!([{"uris": ["http://x y"], "suites": ["b"], "components": ["main"]}]),
        )
        .unwrap();
        assert!(render_sources(&bad).is_err());
    }
}
