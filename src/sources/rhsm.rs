//! `org.osbuild.rhsm` secrets: the client certificate of the host's Red Hat subscription that
//! belongs to a URL, found as upstream finds it — by matching the URL against the `baseurl`s of
//! `redhat.repo`, else any entitlement key/cert pair.

use std::fs;
use std::path::{Path, PathBuf};

use super::curl::Tls;

/// Where the subscription files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RhsmPaths {
    pub repo_file: PathBuf,
    pub entitlement_dir: PathBuf,
    pub ca_cert: PathBuf,
}

impl RhsmPaths {
    /// The host's paths; inside a podman container with RHSM secrets, the secrets' paths.
    /// A Satellite (katello) CA next to the default CA is preferred, as upstream does.
    pub fn host() -> RhsmPaths {
        let in_container = Path::new("/run/.containerenv").exists() && Path::new("/run/secrets").exists();
        let (ca, ent, repo) = if in_container {
            ("/run/secrets/rhsm/ca/redhat-uep.pem", "/run/secrets/etc-pki-entitlement", "/run/secrets/redhat.repo")
        } else {
            ("/etc/rhsm/ca/redhat-uep.pem", "/etc/pki/entitlement", "/etc/yum.repos.d/redhat.repo")
        };
        let mut ca_cert = PathBuf::from(ca);
        let katello = ca_cert.with_file_name("katello-server-ca.pem");
        if katello.exists() {
            ca_cert = katello;
        }
        RhsmPaths { repo_file: repo.into(), entitlement_dir: ent.into(), ca_cert }
    }
}

/// One `redhat.repo` section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Repository {
    baseurl: Vec<Token>,
    tls: Tls,
}

/// A `baseurl` as a pattern: yum variables match any run of non-`/` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Variable,
}

fn compile_baseurl(url: &str) -> Vec<Token> {
    const VARIABLES: [&str; 4] = ["$releasever", "$arch", "$basearch", "$uuid"];
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut rest = url;
    while !rest.is_empty() {
        if let Some(var) = VARIABLES.iter().find(|v| rest.starts_with(**v)) {
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(Token::Variable);
            rest = &rest[var.len()..];
        } else {
            let c = rest.chars().next().unwrap_or_default();
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    tokens
}

/// Whether `url` starts with something the pattern matches (Python's `re.match`).
fn matches_prefix(tokens: &[Token], url: &str) -> bool {
    match tokens.split_first() {
        None => true,
        Some((Token::Literal(lit), rest)) => url.strip_prefix(lit.as_str()).is_some_and(|u| matches_prefix(rest, u)),
        Some((Token::Variable, rest)) => {
            let run = url.find('/').unwrap_or(url.len());
            (0..=run).filter(|&i| url.is_char_boundary(i)).any(|i| matches_prefix(rest, &url[i..]))
        }
    }
}

/// The subscriptions of a host.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    repositories: Vec<Repository>,
    fallback: Option<Tls>,
}

impl Subscriptions {
    /// Reads `redhat.repo` (if present) and looks for an entitlement key/cert pair.
    pub fn load(paths: &RhsmPaths) -> Result<Subscriptions, String> {
        let repositories = match fs::read_to_string(&paths.repo_file) {
            Ok(text) => parse_repo_file(&text, &paths.ca_cert)
                .map_err(|e| format!("cannot parse {}: {e}", paths.repo_file.display()))?,
            Err(_) => Vec::new(),
        };
        let fallback = fallback_secrets(paths);
        if repositories.is_empty() && fallback.is_none() {
            return Err("no rhsm secrets found on this host".into());
        }
        Ok(Subscriptions { repositories, fallback })
    }

    pub fn from_host_system() -> Result<Subscriptions, String> {
        Subscriptions::load(&RhsmPaths::host())
    }

    /// The secrets of the first repository whose baseurl matches `url`, else the fallback.
    pub fn secrets_for(&self, url: &str) -> Option<Tls> {
        self.repositories
            .iter()
            .find(|r| matches_prefix(&r.baseurl, url))
            .map(|r| r.tls.clone())
            .or_else(|| self.fallback.clone())
    }
}

/// Any `<serial>-key.pem` in the entitlement directory with its `<serial>.pem` next to it.
fn fallback_secrets(paths: &RhsmPaths) -> Option<Tls> {
    let mut keys: Vec<PathBuf> = fs::read_dir(&paths.entitlement_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-key.pem"))
        .collect();
    keys.sort();
    // Upstream keeps the last pair found; its `rstrip("-key.pem")` strips those characters.
    keys.iter().rev().find_map(|key| {
        let key_str = key.to_string_lossy();
        let cert = format!("{}.pem", key_str.trim_end_matches(|c| "-key.pm".contains(c)));
        Path::new(&cert).exists().then(|| Tls {
            ca_cert: Some(paths.ca_cert.to_string_lossy().into_owned()),
            client_cert: Some(cert),
            client_key: Some(key_str.into_owned()),
        })
    })
}

/// The repositories of a `.repo` (INI) file: `baseurl`, `sslclientkey`, `sslclientcert` and
/// `sslcacert` (default: the subscription CA) of each section.
fn parse_repo_file(text: &str, default_ca: &Path) -> Result<Vec<Repository>, String> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // continuation of the previous value
            if let Some((_, value)) = sections.last_mut().and_then(|s| s.1.last_mut()) {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.to_string(), Vec::new()));
            continue;
        }
        let split = trimmed.find(['=', ':']).ok_or_else(|| format!("cannot parse line {trimmed:?}"))?;
        let (key, value) = (trimmed[..split].trim().to_ascii_lowercase(), trimmed[split + 1..].trim().to_string());
        let section = sections.last_mut().ok_or_else(|| format!("option {key} outside a section"))?;
        section.1.retain(|(k, _)| *k != key);
        section.1.push((key, value));
    }
    sections
        .into_iter()
        .map(|(name, options)| {
            let get = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            let need = |key: &str| get(key).ok_or_else(|| format!("section {name} has no {key}"));
            Ok(Repository {
                baseurl: compile_baseurl(&need("baseurl")?),
                tls: Tls {
                    ca_cert: Some(get("sslcacert").unwrap_or_else(|| default_ca.to_string_lossy().into_owned())),
                    client_key: Some(need("sslclientkey")?),
                    client_cert: Some(need("sslclientcert")?),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseurl_variables_match_one_path_segment() {
        let p = compile_baseurl("https://cdn.example.com/content/dist/rhel9/$releasever/$basearch/baseos/os");
        assert!(matches_prefix(&p, "https://cdn.example.com/content/dist/rhel9/9.4/x86_64/baseos/os/Packages/a.rpm"));
        assert!(!matches_prefix(&p, "https://cdn.example.com/content/dist/rhel9/9.4/x86_64/appstream/os/a.rpm"));
        assert!(!matches_prefix(&p, "https://cdn.example.com/content/dist/rhel9/9/4/x86_64/baseos/os/a.rpm"));
        let q = compile_baseurl("https://h/r-$releasever-x/");
        assert!(matches_prefix(&q, "https://h/r-9-x-x/p"));
        assert!(matches_prefix(&q, "https://h/r--x/p"));
    }

    #[test]
    fn loads_repo_file_and_fallback_pair() {
        let dir = tempfile::tempdir().unwrap();
        let ent = dir.path().join("entitlement");
        fs::create_dir(&ent).unwrap();
        fs::write(ent.join("123-key.pem"), "k").unwrap();
        fs::write(ent.join("123.pem"), "c").unwrap();
        let repo = dir.path().join("redhat.repo");
        fs::write(
            &repo,
            "# managed\n[rhel-baseos]\nname = BaseOS\nbaseurl = https://cdn/rhel9/$releasever/baseos\n\
             sslclientkey = /e/1-key.pem\nsslclientcert = /e/1.pem\nsslcacert: /ca.pem\n\n\
             [rhel-appstream]\nbaseurl=https://cdn/rhel9/$releasever/appstream\nsslclientkey=/e/2-key.pem\n\
             sslclientcert=/e/2.pem\n",
        )
        .unwrap();
        let paths = RhsmPaths { repo_file: repo, entitlement_dir: ent.clone(), ca_cert: "/uep.pem".into() };
        let subs = Subscriptions::load(&paths).unwrap();
        let baseos = subs.secrets_for("https://cdn/rhel9/9.4/baseos/Packages/x.rpm").unwrap();
        assert_eq!(baseos.client_key.as_deref(), Some("/e/1-key.pem"));
        assert_eq!(baseos.ca_cert.as_deref(), Some("/ca.pem"));
        let appstream = subs.secrets_for("https://cdn/rhel9/9.4/appstream/y.rpm").unwrap();
        assert_eq!(appstream.client_cert.as_deref(), Some("/e/2.pem"));
        assert_eq!(appstream.ca_cert.as_deref(), Some("/uep.pem"));
        let other = subs.secrets_for("https://elsewhere/z.rpm").unwrap();
        assert_eq!(other.client_key, Some(ent.join("123-key.pem").to_string_lossy().into_owned()));
        assert_eq!(other.client_cert, Some(ent.join("123.pem").to_string_lossy().into_owned()));

        let none = RhsmPaths {
            repo_file: dir.path().join("missing.repo"),
            entitlement_dir: dir.path().join("missing"),
            ca_cert: "/uep.pem".into(),
        };
        assert_eq!(Subscriptions::load(&none).unwrap_err(), "no rhsm secrets found on this host");
    }
}
