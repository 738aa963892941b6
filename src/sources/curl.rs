//! `org.osbuild.curl`: files fetched from URLs. `file://` URLs are copied natively (see
//! `file`); http, https, ftp and ftps URLs are handed to the host `curl` binary, many transfers
//! in one `curl --parallel` process, as upstream does (same config options, proxy and
//! client-certificate environment), within documented bounds (see [`curl_config`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::checksum::Checksum;
use super::rhsm::Subscriptions;
use super::staging::TempFile;
use super::{FetchOptions, SourceError};
use crate::sandbox::{run_helper, HelperOutput};

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

pub(super) fn split_scheme(url: &str) -> Option<(&str, &str)> {
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

/// The URL schemes handed to curl (`file://` is read natively, see `file`).
pub const PROTOCOLS: &str = "http,https,ftp,ftps";

/// Whether curl may fetch `url`: an allowed scheme, or none (curl then guesses http).
pub fn check_scheme(url: &str) -> Result<(), SourceError> {
    match split_scheme(url) {
        Some((scheme, _)) if !PROTOCOLS.split(',').any(|p| p.eq_ignore_ascii_case(scheme)) => {
            Err(SourceError::InvalidUrl {
                url: url.to_string(),
                reason: format!("scheme {scheme:?} is not fetched: only {PROTOCOLS} and file URLs are"),
            })
        }
        _ => Ok(()),
    }
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
        // The download bounds (README, threat model): a connect timeout, a minimum speed over a
        // window (a stalled or dripping server ends), an overall limit per attempt, and only
        // these protocols, also for redirects (never file:// or an internal service's).
        let _ = writeln!(
            c,
            "silent\nspeed-limit = {}\nspeed-time = {}\nconnect-timeout = {:.3}\nmax-time = {:.3}\nfail\nlocation",
            opts.min_speed,
            opts.stall_time.as_secs().max(1),
            opts.connect_timeout.as_secs_f64().max(0.001),
            opts.timeout.as_secs_f64().max(0.001),
        );
        let _ = writeln!(c, "proto = \"={PROTOCOLS}\"\nproto-redir = \"={PROTOCOLS}\"");
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
            let deadline = Instant::now() + Duration::from_secs(30);
            let out = run_helper(Command::new("curl").arg("--version"), None, Some(deadline))
                .map_err(|e| format!("cannot run curl: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text.split_whitespace().nth(1).unwrap_or("");
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            Ok(if (major, minor) >= (7, 75) { CurlMode::Parallel } else { CurlMode::Single })
        })
        .clone()
}

/// Downloads `transfers` with the host curl into temp files in `staging`, verifies each and
/// stores it in `dest_dir`; retries network errors and server errors with backoff. Returns one
/// result per transfer, by `Transfer::index`.
pub fn fetch_with_curl(
    transfers: &[Transfer],
    staging: &Path,
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Vec<(usize, Result<(), SourceError>)> {
    let mode = match check_curl() {
        Ok(mode) => mode,
        Err(e) => return transfers.iter().map(|t| (t.index, Err(SourceError::Curl(e.clone())))).collect(),
    };
    download(transfers, staging, dest_dir, opts, mode)
}

/// curl's exit code for a transfer ended by a time limit (`max-time`, or too slow for
/// `speed-time`).
const EXIT_TIMED_OUT: i32 = 28;

fn download(
    transfers: &[Transfer],
    staging: &Path,
    dest_dir: &Path,
    opts: &FetchOptions,
    mode: CurlMode,
) -> Vec<(usize, Result<(), SourceError>)> {
    let proxy = std::env::var(ENV_PROXY).ok();
    let mut results = Vec::with_capacity(transfers.len());
    // Transfers still to try, with how often each already hit a time limit.
    let mut pending: Vec<(&Transfer, u32)> = transfers.iter().map(|t| (t, 0)).collect();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        if attempt > 0 {
            backoff(Duration::from_millis(500u64.saturating_mul(1 << (attempt - 1).min(16))));
        }
        if let Some(signal) = crate::sandbox::interrupted() {
            results.extend(pending.iter().map(|(t, _)| (t.index, Err(interrupted(&t.url, signal)))));
            break;
        }
        let last_attempt = attempt >= opts.retries;
        // Empty files for curl to write (its -o truncates them).
        let temps: Vec<TempFile> =
            match pending.iter().map(|_| TempFile::create(staging).map(|(t, _)| t)).collect::<Result<_, _>>() {
                Ok(temps) => temps,
                Err(e) => {
                    let message = e.to_string();
                    results.extend(pending.iter().map(|(t, _)| {
                        (t.index, Err(SourceError::Curl(format!("cannot download {}: {message}", t.url))))
                    }));
                    break;
                }
            };
        let batch: Vec<(&Transfer, &Path)> =
            pending.iter().map(|(t, _)| *t).zip(temps.iter().map(|t| t.path())).collect();
        let reports = match mode {
            CurlMode::Parallel => {
                run_curl(&curl_config(&batch, opts, proxy.as_deref(), mode), watchdog(opts, batch.len())).and_then(
                    |run| {
                        if run.reports.is_empty() && !run.output.success() {
                            Err(RunError::Failed(format!(
                                "curl ended with {} and reported no transfers: {}",
                                run.output.describe(),
                                run.output.stderr_tail(5)
                            )))
                        } else {
                            Ok(run.reports)
                        }
                    },
                )
            }
            CurlMode::Single => run_single_transfers(&batch, opts, proxy.as_deref()),
        };
        let reports = match reports {
            Ok(r) => r,
            Err(e) => {
                results.extend(pending.iter().map(|(t, _)| (t.index, Err(e.for_url(&t.url)))));
                break;
            }
        };
        let mut retry = Vec::new();
        let mut downloaded = Vec::new();
        for ((t, timeouts), temp) in pending.iter().zip(temps) {
            let report = reports.get(&temp.path().to_string_lossy().into_owned()).cloned().unwrap_or(TransferReport {
                exit_code: -1,
                http_status: 0,
                output: String::new(),
                message: "curl reported no result for this transfer".into(),
            });
            let timed_out = report.exit_code == EXIT_TIMED_OUT;
            if report.exit_code == 0 {
                downloaded.push((*t, temp));
            } else if let Some(signal) = crate::sandbox::interrupted() {
                results.push((t.index, Err(interrupted(&t.url, signal))));
            } else if is_retryable(&report) && !last_attempt && !(timed_out && *timeouts >= 1) {
                // A time limit is retried once only: a server that stalls twice keeps stalling.
                retry.push((*t, timeouts + u32::from(timed_out)));
            } else {
                results.push((t.index, Err(transfer_error(&t.url, &report))));
            }
        }
        results.extend(super::run_parallel(&downloaded, opts.parallel, |(t, temp)| {
            (t.index, temp.verify_and_commit(dest_dir, &t.checksum, &t.url, opts.durable))
        }));
        pending = retry;
        attempt += 1;
    }
    results
}

fn interrupted(url: &str, signal: i32) -> SourceError {
    SourceError::Interrupted { url: url.to_string(), signal }
}

/// Sleeps `total`, in short naps so that a stop signal ends the wait at once.
fn backoff(total: Duration) {
    let until = super::after(total);
    while crate::sandbox::interrupted().is_none() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The backstop for one curl process running `n` transfers: what the longest legitimate run
/// takes (`n` transfers `parallel` at a time, each within `max-time`), plus a grace period.
/// curl enforces the per-transfer limits itself; this only ends a curl that hangs regardless.
fn watchdog(opts: &FetchOptions, n: usize) -> Instant {
    let rounds = n.div_ceil(opts.parallel.clamp(1, 300)).max(1) as u32;
    super::after(opts.timeout.saturating_mul(rounds).saturating_add(Duration::from_secs(30)))
}

/// Why a curl process gave no per-transfer results.
#[derive(Debug, Clone)]
enum RunError {
    Interrupted(i32),
    Failed(String),
}

impl RunError {
    fn for_url(&self, url: &str) -> SourceError {
        match self {
            RunError::Interrupted(signal) => interrupted(url, *signal),
            RunError::Failed(message) => SourceError::Curl(message.clone()),
        }
    }
}

/// Old curl: one process per transfer, `parallel` at a time; the exit status and the last
/// stderr line stand in for `%{exitcode}` and `%{errormsg}`.
fn run_single_transfers(
    batch: &[(&Transfer, &Path)],
    opts: &FetchOptions,
    proxy: Option<&str>,
) -> Result<HashMap<String, TransferReport>, RunError> {
    let runs = super::run_parallel(batch, opts.parallel, |&(t, output)| {
        let run = run_curl(&curl_config(&[(t, output)], opts, proxy, CurlMode::Single), watchdog(opts, 1))?;
        let output = output.to_string_lossy().into_owned();
        let mut report = run.reports.get(&output).cloned().unwrap_or(TransferReport {
            exit_code: -1,
            http_status: 0,
            output: output.clone(),
            message: String::new(),
        });
        report.exit_code = run.output.status.code().unwrap_or(-1);
        report.message = run.output.stderr_tail(5).rsplit("; ").next().unwrap_or("").to_string();
        Ok((output, report))
    });
    runs.into_iter().collect()
}

/// What one curl process reported.
struct CurlRun {
    reports: HashMap<String, TransferReport>,
    output: HelperOutput,
}

/// Runs curl with `config` on stdin, tied to the build (see `sandbox::run_helper`) and killed at
/// `deadline`; returns its reports by output path.
fn run_curl(config: &str, deadline: Instant) -> Result<CurlRun, RunError> {
    let mut cmd = Command::new("curl");
    cmd.args(["--config", "-"]);
    let output = run_helper(&mut cmd, Some(config.as_bytes().to_vec()), Some(deadline)).map_err(|e| {
        match crate::sandbox::interrupted() {
            Some(signal) => RunError::Interrupted(signal),
            None => RunError::Failed(format!("cannot run curl: {e}")),
        }
    })?;
    if let Some(signal) = output.interrupted {
        return Err(RunError::Interrupted(signal));
    }
    let reports = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(parse_report)
        .map(|r| (r.output.clone(), r))
        .collect();
    Ok(CurlRun { reports, output })
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
    fn config_has_upstream_options() {
        let t = Transfer {
            index: 0,
            url: "https://h/a \"b\".rpm".into(),
            checksum: Checksum::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            insecure: true,
            tls: Some(Tls { ca_cert: None, client_cert: Some("/c".into()), client_key: Some("/k".into()) }),
        };
        let opts = FetchOptions {
            parallel: 8,
            retries: 0,
            timeout: Duration::from_secs(5),
            stall_time: Duration::from_secs(7),
            ..FetchOptions::builtin()
        };
        let outputs = [(&t, Path::new("/d/.tmp-1")), (&t, Path::new("/d/.tmp-2"))];
        let c = curl_config(&outputs, &opts, Some("http://p:3128"), CurlMode::Parallel);
        assert!(c.starts_with("parallel\nparallel-max = 8\n"), "{c}");
        assert!(c.contains("url = \"https://h/a%20%22b%22.rpm\"\n"), "{c}");
        assert!(c.contains("output = \"/d/.tmp-2\"\n"));
        assert!(c.contains("proxy = \"http://p:3128\"\n") && c.contains("cert = \"/c\"\nkey = \"/k\"\ninsecure\n"));
        assert!(
            c.contains(
                "speed-limit = 1000\nspeed-time = 7\nconnect-timeout = 30.000\nmax-time = 5.000\nfail\nlocation\n"
            ),
            "{c}"
        );
        assert!(c.contains("proto = \"=http,https,ftp,ftps\"\nproto-redir = \"=http,https,ftp,ftps\"\n"), "{c}");
        assert_eq!(c.matches("next\n").count(), 1);
        let single = curl_config(&outputs[..1], &opts, None, CurlMode::Single);
        assert!(!single.contains("parallel") && single.contains("show-error\n") && !single.contains("exitcode"));
    }

    /// An HTTP/1.0 server on 127.0.0.1 serving `alpha` at `/a` and 404 elsewhere.
    fn tiny_server() -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                let reply: &[u8] = if line.starts_with("GET /a ") {
                    b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nalpha"
                } else {
                    b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = conn.write_all(reply);
            }
        });
        addr
    }

    /// Old-curl mode: one process per transfer.
    #[test]
    fn single_transfer_mode_downloads_and_reports() {
        let server = tiny_server();
        let staging = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let sum =
            |d: &[u8]| crate::sources::checksum::hash_reader(d, crate::sources::checksum::Algorithm::Sha256).unwrap();
        let transfer = |index, name: &str, data: &[u8]| Transfer {
            index,
            url: format!("{server}/{name}"),
            checksum: sum(data),
            insecure: false,
            tls: None,
        };
        let transfers = [transfer(0, "a", b"alpha"), transfer(1, "a", b"beta"), transfer(2, "missing", b"x")];
        let opts = FetchOptions { parallel: 2, retries: 2, ..FetchOptions::builtin() };
        let mut results = download(&transfers, staging.path(), dest.path(), &opts, CurlMode::Single);
        results.sort_by_key(|r| r.0);
        assert!(results[0].1.is_ok(), "{:?}", results[0]);
        let mismatch = results[1].1.as_ref().unwrap_err().to_string();
        assert_eq!(mismatch, format!("checksum mismatch for {server}/a: the content does not match {}", sum(b"beta")));
        let missing = results[2].1.as_ref().unwrap_err().to_string();
        assert_eq!(missing, format!("http error 404 downloading {server}/missing"));
        let names: Vec<_> = std::fs::read_dir(dest.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(sum(b"alpha").to_string())]);
    }

    #[test]
    fn only_http_and_ftp_schemes_reach_curl() {
        for ok in ["http://h/x", "HTTPS://h/x", "ftp://h/x", "ftps://h/x", "h/x"] {
            assert!(check_scheme(ok).is_ok(), "{ok}");
        }
        for bad in ["gopher://h/x", "dict://h:11211/stats", "scp://h/x", "ldap://h", "telnet://h"] {
            let e = check_scheme(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid url {bad}: scheme")), "{e}");
        }
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
