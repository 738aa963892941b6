//! `org.osbuild.curl`: files fetched from URLs. `file://` URLs are copied natively; every other
//! URL is handed to the host `curl` binary, many transfers in one `curl --parallel` process, as
//! upstream does (same config options, proxy and client-certificate environment).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::checksum::{self, Checksum};
use super::rhsm::Subscriptions;
use super::staging::TempFile;
use super::{FetchOptions, SourceError};

/// Environment variables upstream reads for the `org.osbuild.mtls` secrets and the proxy.
pub const ENV_CLIENT_KEY: &str = "OSBUILD_SOURCES_CURL_SSL_CLIENT_KEY";
pub const ENV_CLIENT_CERT: &str = "OSBUILD_SOURCES_CURL_SSL_CLIENT_CERT";
pub const ENV_CA_CERT: &str = "OSBUILD_SOURCES_CURL_SSL_CA_CERT";
pub const ENV_PROXY: &str = "OSBUILD_SOURCES_CURL_PROXY";

/// One curl item: a bare URL string or `{"url", "insecure"?, "secrets"?: {"name"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlItem {
    pub url: String,
    pub insecure: bool,
    /// Name of the secrets provider, if any.
    pub secrets: Option<String>,
}

impl CurlItem {
    pub fn parse(checksum: &str, desc: &Value) -> Result<CurlItem, SourceError> {
        let invalid =
            |reason: &str| SourceError::InvalidItem { item: checksum.to_string(), reason: reason.to_string() };
        let obj = match desc {
            Value::String(url) => return Ok(CurlItem { url: url.clone(), insecure: false, secrets: None }),
            Value::Object(obj) => obj,
            _ => return Err(invalid("a curl item must be a url string or an object with \"url\"")),
        };
        let url = match obj.get("url") {
            Some(Value::String(url)) => url.clone(),
            Some(_) => return Err(invalid("\"url\" must be a string")),
            None => return Err(invalid("\"url\" is missing")),
        };
        let insecure = match obj.get("insecure") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("\"insecure\" must be a boolean")),
        };
        let secrets = match obj.get("secrets") {
            None | Some(Value::Null) => None,
            Some(Value::Object(s)) => match s.get("name") {
                Some(Value::String(name)) => Some(name.clone()),
                _ => return Err(invalid("\"secrets\" needs a string \"name\"")),
            },
            Some(_) => return Err(invalid("\"secrets\" must be an object")),
        };
        Ok(CurlItem { url, insecure, secrets })
    }
}

/// Client TLS files for a transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca_cert: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// Resolves an item's secrets provider as upstream does: `org.osbuild.mtls` reads the key and
/// cert (and optional CA) from the environment; `org.osbuild.rhsm` takes the host's
/// subscription certificates (`rhsm`, loaded by the caller when any item needs them); other
/// names add nothing.
pub fn resolve_secrets(
    item: &CurlItem,
    env: impl Fn(&str) -> Option<String>,
    rhsm: Option<&Result<Subscriptions, String>>,
) -> Result<Option<Tls>, SourceError> {
    match item.secrets.as_deref() {
        Some("org.osbuild.mtls") => {
            let key = env(ENV_CLIENT_KEY).filter(|v| !v.is_empty());
            let cert = env(ENV_CLIENT_CERT).filter(|v| !v.is_empty());
            match (key, cert) {
                (Some(key), Some(cert)) => Ok(Some(Tls {
                    ca_cert: env(ENV_CA_CERT).filter(|v| !v.is_empty()),
                    client_cert: Some(cert),
                    client_key: Some(key),
                })),
                _ => Err(SourceError::MissingMtlsEnv { url: item.url.clone() }),
            }
        }
        Some("org.osbuild.rhsm") => {
            let rhsm_error = |reason: String| SourceError::Rhsm { url: item.url.clone(), reason };
            match rhsm {
                Some(Ok(subs)) => match subs.secrets_for(&item.url) {
                    Some(tls) => Ok(Some(tls)),
                    None => Err(rhsm_error("no subscription matches it".into())),
                },
                Some(Err(e)) => Err(rhsm_error(e.clone())),
                None => Err(rhsm_error("subscriptions were not loaded".into())),
            }
        }
        _ => Ok(None),
    }
}

/// Percent-encodes a URL's path the way upstream does before handing it to curl
/// (`urllib.parse.quote` of the parsed path, `/` kept; params, query and fragment untouched).
/// Like upstream this also encodes `%`, so an already encoded path is encoded again.
pub fn quote_url(url: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return quote_path(url);
    };
    let (netloc, after) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let (path_params, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let uses_params = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ftp" | "sftp" | "imap" | "rtsp" | "sip" | "sips" | "mms" | "tel"
    );
    let (path, params) = if uses_params {
        let from = path_params.rfind('/').unwrap_or(0);
        match path_params[from..].find(';') {
            Some(i) => (&path_params[..from + i], Some(&path_params[from + i + 1..])),
            None => (path_params, None),
        }
    } else {
        (path_params, None)
    };
    let mut out = format!("{scheme}:");
    if let Some(netloc) = netloc {
        out.push_str("//");
        out.push_str(netloc);
    }
    out.push_str(&quote_path(path));
    for (sep, part) in [(';', params), ('?', query), ('#', fragment)] {
        if let Some(part) = part {
            out.push(sep);
            out.push_str(part);
        }
    }
    out
}

fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).then_some((scheme, rest))
}

fn quote_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The local path of a `file:` URL, or `None` for other schemes. Upstream quotes the path and
/// curl decodes it again, so the path is taken literally (no percent-decoding); the host must be
/// empty or `localhost`, as curl requires.
pub fn file_path(url: &str) -> Option<Result<PathBuf, SourceError>> {
    let (scheme, rest) = split_scheme(url)?;
    if !scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find('/').unwrap_or(r.len());
            let host = &r[..end];
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Some(Err(SourceError::RemoteFileUrl { url: url.to_string() }));
            }
            &r[end..]
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Some(Err(SourceError::InvalidUrl { url: url.to_string(), reason: "no absolute path".into() }));
    }
    Some(Ok(PathBuf::from(path)))
}

/// Copies a local file into `dest_dir` as `<checksum>`, hashing it on the way.
pub fn fetch_file(url: &str, path: &Path, checksum: &Checksum, dest_dir: &Path) -> Result<(), SourceError> {
    let read_error = |e| SourceError::File { url: url.to_string(), path: path.to_path_buf(), error: e };
    let src = File::open(path).map_err(read_error)?;
    let (temp, mut out) = TempFile::create(dest_dir)?;
    let mut hasher = checksum.algorithm.hasher();
    let mut buf = vec![0u8; checksum::BUF_SIZE];
    let mut reader = &src;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| SourceError::io("write", temp.path(), e))?;
    }
    temp.check_and_commit(out, &hasher.finish(), dest_dir, checksum, url)
}

/// A transfer for the curl binary.
pub struct Transfer {
    /// Index of the item in the caller's list.
    pub index: usize,
    pub url: String,
    pub checksum: Checksum,
    pub insecure: bool,
    pub tls: Option<Tls>,
}

/// The `platform.machine()` spelling of the host architecture, for the user agent.
fn machine() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        arch => arch,
    }
}

/// Quotes a value for a curl config file.
fn config_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Marker that starts each of our `--write-out` lines.
const WRITE_OUT_TAG: &str = "osbuild-rs-transfer";

/// The curl config for one batch: global `parallel`, then per transfer the options upstream
/// sets (repeated because `next` resets them), output to the transfer's temp file.
/// In `Single` mode (curl older than 7.75) there is no `parallel` and no `%{exitcode}`: one
/// transfer per process, its exit status and stderr tell the outcome.
pub fn curl_config(
    transfers: &[(&Transfer, &Path)],
    opts: &FetchOptions,
    proxy: Option<&str>,
    mode: CurlMode,
) -> String {
    let mut c = String::new();
    if mode == CurlMode::Parallel {
        let _ = writeln!(c, "parallel\nparallel-max = {}\n", opts.parallel.clamp(1, 300));
    }
    for (i, (t, output)) in transfers.iter().enumerate() {
        let _ = writeln!(c, "url = {}", config_quote(&quote_url(&t.url)));
        let _ = writeln!(c, "output = {}", config_quote(&output.to_string_lossy()));
        let _ = writeln!(c, "user-agent = \"osbuild (Linux.{}; https://osbuild.org/)\"", machine());
        c.push_str("silent\nspeed-limit = 1000\nconnect-timeout = 30\nfail\nlocation\n");
        match mode {
            CurlMode::Parallel => {
                let _ = writeln!(
                    c,
                    "write-out = \"{WRITE_OUT_TAG}\\t%{{exitcode}}\\t%{{response_code}}\\t%{{filename_effective}}\\t%{{errormsg}}\\n\""
                );
            }
            CurlMode::Single => {
                let _ = writeln!(
                    c,
                    "show-error\nwrite-out = \"{WRITE_OUT_TAG}\\t0\\t%{{response_code}}\\t%{{filename_effective}}\\t\\n\""
                );
            }
        }
        if let Some(timeout) = opts.timeout {
            let _ = writeln!(c, "max-time = {:.3}", timeout.as_secs_f64());
        }
        if let Some(proxy) = proxy.filter(|p| !p.is_empty()) {
            let _ = writeln!(c, "proxy = {}", config_quote(proxy));
        }
        if let Some(tls) = &t.tls {
            for (key, value) in [("cacert", &tls.ca_cert), ("cert", &tls.client_cert), ("key", &tls.client_key)] {
                if let Some(v) = value {
                    let _ = writeln!(c, "{key} = {}", config_quote(v));
                }
            }
        }
        c.push_str(if t.insecure { "insecure\n" } else { "no-insecure\n" });
        if i + 1 < transfers.len() {
            c.push_str("next\n\n");
        }
    }
    c
}

/// What curl said about one transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    pub exit_code: i32,
    pub http_status: u32,
    pub output: String,
    pub message: String,
}

/// Parses one `--write-out` line of ours.
pub fn parse_report(line: &str) -> Option<TransferReport> {
    let mut fields = line.trim_end_matches(['\n', '\r']).splitn(5, '\t');
    if fields.next()? != WRITE_OUT_TAG {
        return None;
    }
    Some(TransferReport {
        exit_code: fields.next()?.parse().ok()?,
        http_status: fields.next()?.parse().ok()?,
        output: fields.next()?.to_string(),
        message: fields.next().unwrap_or("").to_string(),
    })
}

/// Whether a failed transfer is worth another try: network trouble and server errors are,
/// client errors (4xx), bad URLs, local file or certificate problems are not.
pub fn is_retryable(report: &TransferReport) -> bool {
    match report.exit_code {
        0 => false,
        22 => report.http_status >= 500 || matches!(report.http_status, 408 | 429) || report.http_status == 0,
        // unsupported protocol, init failure, bad url, write/read/local file errors, out of
        // memory, unknown option, certificate and auth problems, bad content encoding
        1 | 2 | 3 | 4 | 23 | 26 | 27 | 37 | 43 | 48 | 51 | 53 | 54 | 58 | 59 | 60 | 61 | 67 | 77 | 80 | 83 | 90
        | 91 => false,
        _ => true,
    }
}

/// The error for a transfer that failed for good.
fn transfer_error(url: &str, report: &TransferReport) -> SourceError {
    if report.exit_code == 22 && report.http_status >= 400 {
        SourceError::Http { url: url.to_string(), status: report.http_status }
    } else {
        SourceError::Download { url: url.to_string(), exit_code: report.exit_code, message: report.message.clone() }
    }
}

/// How the host curl is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurlMode {
    /// One process, many transfers (`--parallel`, `%{exitcode}`: curl 7.75 or newer).
    Parallel,
    /// One process per transfer, for older curl (as upstream falls back to).
    Single,
}

static CURL_CHECK: OnceLock<Result<CurlMode, String>> = OnceLock::new();

/// Checks once that curl runs and whether it supports `--parallel` with `%{exitcode}`.
fn check_curl() -> Result<CurlMode, String> {
    CURL_CHECK
        .get_or_init(|| {
            let out = Command::new("curl").arg("--version").output().map_err(|e| format!("cannot run curl: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text.split_whitespace().nth(1).unwrap_or("");
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            Ok(if (major, minor) >= (7, 75) { CurlMode::Parallel } else { CurlMode::Single })
        })
        .clone()
}

/// Downloads `transfers` with the host curl into temp files in `dest_dir`, verifies each and
/// stores it; retries network errors and server errors with backoff. Returns one result per
/// transfer, by `Transfer::index`.
pub fn fetch_with_curl(
    transfers: &[Transfer],
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Vec<(usize, Result<(), SourceError>)> {
    let mode = match check_curl() {
        Ok(mode) => mode,
        Err(e) => return transfers.iter().map(|t| (t.index, Err(SourceError::Curl(e.clone())))).collect(),
    };
    download(transfers, dest_dir, opts, mode)
}

fn download(
    transfers: &[Transfer],
    dest_dir: &Path,
    opts: &FetchOptions,
    mode: CurlMode,
) -> Vec<(usize, Result<(), SourceError>)> {
    let proxy = std::env::var(ENV_PROXY).ok();
    let mut results = Vec::with_capacity(transfers.len());
    let mut pending: Vec<&Transfer> = transfers.iter().collect();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500u64.saturating_mul(1 << (attempt - 1).min(16))));
        }
        let last_attempt = attempt >= opts.retries;
        let temps: Vec<TempFile> = pending.iter().map(|_| TempFile::reserve(dest_dir)).collect();
        let batch: Vec<(&Transfer, &Path)> = pending.iter().copied().zip(temps.iter().map(|t| t.path())).collect();
        let reports = match mode {
            CurlMode::Parallel => run_curl(&curl_config(&batch, opts, proxy.as_deref(), mode)).and_then(|run| {
                if run.reports.is_empty() && run.exit_code != Some(0) {
                    Err(format!("curl exited with {:?} and reported no transfers: {}", run.exit_code, run.stderr_tail))
                } else {
                    Ok(run.reports)
                }
            }),
            CurlMode::Single => run_single_transfers(&batch, opts, proxy.as_deref()),
        };
        let reports = match reports {
            Ok(r) => r,
            Err(e) => {
                results.extend(pending.iter().map(|t| (t.index, Err(SourceError::Curl(e.clone())))));
                break;
            }
        };
        let mut retry = Vec::new();
        let mut downloaded = Vec::new();
        for (t, temp) in pending.iter().zip(temps) {
            let report = reports.get(&temp.path().to_string_lossy().into_owned()).cloned().unwrap_or(TransferReport {
                exit_code: -1,
                http_status: 0,
                output: String::new(),
                message: "curl reported no result for this transfer".into(),
            });
            if report.exit_code == 0 {
                downloaded.push((*t, temp));
            } else if is_retryable(&report) && !last_attempt {
                retry.push(*t);
            } else {
                results.push((t.index, Err(transfer_error(&t.url, &report))));
            }
        }
        results.extend(super::run_parallel(&downloaded, opts.parallel, |(t, temp)| {
            (t.index, temp.verify_and_commit(dest_dir, &t.checksum, &t.url))
        }));
        pending = retry;
        attempt += 1;
    }
    results
}

/// Old curl: one process per transfer, `parallel` at a time; the exit status and the last
/// stderr line stand in for `%{exitcode}` and `%{errormsg}`.
fn run_single_transfers(
    batch: &[(&Transfer, &Path)],
    opts: &FetchOptions,
    proxy: Option<&str>,
) -> Result<HashMap<String, TransferReport>, String> {
    let runs = super::run_parallel(batch, opts.parallel, |&(t, output)| {
        let run = run_curl(&curl_config(&[(t, output)], opts, proxy, CurlMode::Single))?;
        let output = output.to_string_lossy().into_owned();
        let mut report = run.reports.get(&output).cloned().unwrap_or(TransferReport {
            exit_code: -1,
            http_status: 0,
            output: output.clone(),
            message: String::new(),
        });
        report.exit_code = run.exit_code.unwrap_or(-1);
        report.message = run.stderr_tail.rsplit("; ").next().unwrap_or("").to_string();
        Ok((output, report))
    });
    runs.into_iter().collect()
}

/// What one curl process reported.
struct CurlRun {
    reports: HashMap<String, TransferReport>,
    exit_code: Option<i32>,
    /// The last few stderr lines, joined by "; ".
    stderr_tail: String,
}

/// Runs curl with `config` on stdin; returns its reports by output path.
fn run_curl(config: &str) -> Result<CurlRun, String> {
    let mut child = Command::new("curl")
        .args(["--config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let stdout = child.stdout.take();
    let feeder = std::thread::spawn({
        let config = config.to_string();
        move || {
            if let Some(mut stdin) = stdin {
                // curl reads the whole config before any transfer; if it dies early the exit
                // status tells why.
                let _ = stdin.write_all(config.as_bytes());
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let mut reports = HashMap::new();
    if let Some(stdout) = stdout {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(report) = parse_report(&line) {
                reports.insert(report.output.clone(), report);
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for curl: {e}"))?;
    let _ = feeder.join();
    let stderr = err_reader.join().unwrap_or_default();
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let stderr_tail = lines[lines.len().saturating_sub(5)..].join("; ");
    Ok(CurlRun { reports, exit_code: status.code(), stderr_tail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_url_string_and_object_forms() {
        let a = CurlItem::parse("c", &json!("https://example.com/a.rpm")).unwrap();
        assert_eq!(a, CurlItem { url: "https://example.com/a.rpm".into(), insecure: false, secrets: None });
        let b = CurlItem::parse("c", &json!({"url": "http://x/b", "insecure": true})).unwrap();
        assert!(b.insecure);
        let c = CurlItem::parse("c", &json!({"url": "http://x/c", "secrets": {"name": "org.osbuild.mtls"}})).unwrap();
        assert_eq!(c.secrets.as_deref(), Some("org.osbuild.mtls"));
        for bad in [
            json!(1),
            json!({}),
            json!({"url": 3}),
            json!({"url": "u", "insecure": "yes"}),
            json!({"url": "u", "secrets": "x"}),
            json!({"url": "u", "secrets": {}}),
        ] {
            let err = CurlItem::parse("sha256:c", &bad).unwrap_err().to_string();
            assert!(err.contains("sha256:c"), "{err}");
        }
    }

    #[test]
    fn resolves_secrets_like_upstream() {
        let item =
            |s: Option<&str>| CurlItem { url: "https://x/y".into(), insecure: false, secrets: s.map(Into::into) };
        assert_eq!(resolve_secrets(&item(None), |_| None, None).unwrap(), None);
        assert_eq!(resolve_secrets(&item(Some("org.example")), |_| None, None).unwrap(), None);
        let env = |k: &str| match k {
            ENV_CLIENT_KEY => Some("/k.pem".to_string()),
            ENV_CLIENT_CERT => Some("/c.pem".to_string()),
            _ => None,
        };
        let tls = resolve_secrets(&item(Some("org.osbuild.mtls")), env, None).unwrap().unwrap();
        assert_eq!(tls.client_key.as_deref(), Some("/k.pem"));
        assert_eq!(tls.ca_cert, None);
        let err = resolve_secrets(&item(Some("org.osbuild.mtls")), |_| None, None).unwrap_err().to_string();
        assert!(err.contains("https://x/y") && err.contains("OSBUILD_SOURCES_CURL_SSL_CLIENT_KEY"), "{err}");
        let none: Result<Subscriptions, String> = Err("no rhsm secrets found on this host".into());
        let err = resolve_secrets(&item(Some("org.osbuild.rhsm")), |_| None, Some(&none)).unwrap_err().to_string();
        assert_eq!(err, "no rhsm secrets for https://x/y: no rhsm secrets found on this host");
    }

    #[test]
    fn quotes_paths_like_urllib() {
        assert_eq!(quote_url("https://h/p/a b+c.rpm"), "https://h/p/a%20b%2Bc.rpm");
        assert_eq!(quote_url("https://h:80/x%20y?q=a b#f"), "https://h:80/x%2520y?q=a b#f");
        assert_eq!(quote_url("http://h/a;b/c;p=1"), "http://h/a%3Bb/c;p=1");
        assert_eq!(quote_url("file:///tmp/ä"), "file:///tmp/%C3%A4");
        assert_eq!(quote_url("http://h"), "http://h");
    }

    #[test]
    fn file_urls_are_literal_local_paths() {
        assert!(file_path("https://h/x").is_none());
        assert_eq!(file_path("file:///tmp/a%20b").unwrap().unwrap(), PathBuf::from("/tmp/a%20b"));
        assert_eq!(file_path("file://localhost/tmp/x?q#f").unwrap().unwrap(), PathBuf::from("/tmp/x"));
        assert_eq!(file_path("FILE:/tmp/x").unwrap().unwrap(), PathBuf::from("/tmp/x"));
        assert!(file_path("file://server/tmp/x").unwrap().is_err());
    }

    #[test]
    fn config_has_upstream_options() {
        let t = Transfer {
            index: 0,
            url: "https://h/a \"b\".rpm".into(),
            checksum: Checksum::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            insecure: true,
            tls: Some(Tls { ca_cert: None, client_cert: Some("/c".into()), client_key: Some("/k".into()) }),
        };
        let opts = FetchOptions { parallel: 8, retries: 0, timeout: Some(Duration::from_secs(5)) };
        let outputs = [(&t, Path::new("/d/.tmp-1")), (&t, Path::new("/d/.tmp-2"))];
        let c = curl_config(&outputs, &opts, Some("http://p:3128"), CurlMode::Parallel);
        assert!(c.starts_with("parallel\nparallel-max = 8\n"), "{c}");
        assert!(c.contains("url = \"https://h/a%20%22b%22.rpm\"\n"), "{c}");
        assert!(c.contains("output = \"/d/.tmp-2\"\n"));
        assert!(c.contains("proxy = \"http://p:3128\"\n") && c.contains("cert = \"/c\"\nkey = \"/k\"\ninsecure\n"));
        assert!(c.contains("max-time = 5.000\n") && c.contains("fail\nlocation\n"));
        assert_eq!(c.matches("next\n").count(), 1);
        let single = curl_config(&outputs[..1], &opts, None, CurlMode::Single);
        assert!(!single.contains("parallel") && single.contains("show-error\n") && !single.contains("exitcode"));
    }

    /// Old-curl mode, exercised with curl's own file:// support (no server needed).
    #[test]
    fn single_transfer_mode_downloads_and_reports() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a"), b"alpha").unwrap();
        let sum = |d: &[u8]| checksum::hash_reader(d, checksum::Algorithm::Sha256).unwrap();
        let transfer = |index, name: &str, data: &[u8]| Transfer {
            index,
            url: format!("file://{}/{name}", src.path().display()),
            checksum: sum(data),
            insecure: false,
            tls: None,
        };
        let transfers = [transfer(0, "a", b"alpha"), transfer(1, "a", b"beta"), transfer(2, "missing", b"x")];
        let opts = FetchOptions { parallel: 2, retries: 2, timeout: None };
        let mut results = download(&transfers, dest.path(), &opts, CurlMode::Single);
        results.sort_by_key(|r| r.0);
        assert!(results[0].1.is_ok(), "{:?}", results[0]);
        let mismatch = results[1].1.as_ref().unwrap_err().to_string();
        assert!(mismatch.starts_with("checksum mismatch for file://"), "{mismatch}");
        let missing = results[2].1.as_ref().unwrap_err().to_string();
        assert!(missing.contains("/missing") && missing.contains("(exit code 37)"), "{missing}");
        let names: Vec<_> = std::fs::read_dir(dest.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(sum(b"alpha").to_string())]);
    }

    #[test]
    fn parses_reports_and_classifies_failures() {
        let r =
            parse_report("osbuild-rs-transfer\t22\t503\t/d/.tmp-1\tThe requested URL returned error: 503\n").unwrap();
        assert_eq!((r.exit_code, r.http_status, r.output.as_str()), (22, 503, "/d/.tmp-1"));
        assert!(is_retryable(&r));
        let not_found = TransferReport { http_status: 404, ..r.clone() };
        assert!(!is_retryable(&not_found));
        assert_eq!(transfer_error("u", &not_found).to_string(), "http error 404 downloading u");
        assert!(is_retryable(&TransferReport { exit_code: 7, http_status: 0, ..r.clone() }));
        assert!(!is_retryable(&TransferReport { exit_code: 60, http_status: 0, ..r }));
        assert!(parse_report("something else").is_none());
    }
}
