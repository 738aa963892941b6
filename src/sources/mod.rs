//! Sources: fetch the content-addressed files a manifest's inputs refer to.
//!
//! Supported: `org.osbuild.inline` (data in the manifest) and `org.osbuild.curl` (`file://`
//! copied natively, other URLs through the host `curl`). Every item lands in a destination
//! directory as a file named by its checksum (`sha256:<hex>`): written to a temp file in a
//! private staging directory of this fetch beside it (`.tmp-*`, locked while we live, removed by
//! the store's next open if we are killed), verified, fsync'ed (in a durable store, see
//! [`FetchOptions::durable`]) and renamed, so a stored file is always complete and correct. `org.osbuild.ostree` commits go into an OSTree repository
//! instead (see [`ostree`]).
//!
//! Helper processes (curl, ostree) are tied to the build (`sandbox::run_helper`): stop signals
//! reach them, they die with osbuild-rs, and each has a deadline.

pub mod checksum;
pub mod curl;
pub mod file;
pub mod inline;
pub mod ostree;
pub mod rhsm;
pub mod staging;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::manifest;
use crate::store::StagingDir;
use checksum::Checksum;
use curl::{CurlItem, Transfer};
use inline::InlineItem;

/// Everything that can go wrong while fetching sources. Each message is complete on its own
/// (causes are part of it, and also kept as the `source`), so it can stand in an item result.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("unsupported source type {0}")]
    UnsupportedSource(String),
    #[error("items of source {source_type} must be an object keyed by checksum")]
    InvalidItems { source_type: String },
    #[error("invalid checksum {item}: {reason}")]
    InvalidChecksum { item: String, reason: String },
    #[error("invalid item {item}: {reason}")]
    InvalidItem { item: String, reason: String },
    #[error("unknown encoding {encoding} for inline item {item}")]
    UnknownEncoding { item: String, encoding: String },
    #[error("cannot decode inline item {item}: {reason}")]
    Decode { item: String, reason: String },
    #[error("invalid url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("file url {url} names a remote host: only local files can be read")]
    RemoteFileUrl { url: String },
    #[error("cannot read {path} for {url}: {error}")]
    File {
        url: String,
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("file url {url} is outside the directories {} allows ({dirs})", file::ENV_FILE_URL_DIRS)]
    OutsideFileDirs { url: String, dirs: String },
    #[error("no rhsm secrets for {url}: {reason}")]
    Rhsm { url: String, reason: String },
    #[error(
        "mtls secrets required for {url} but OSBUILD_SOURCES_CURL_SSL_CLIENT_KEY or \
         OSBUILD_SOURCES_CURL_SSL_CLIENT_CERT is not set"
    )]
    MissingMtlsEnv { url: String },
    #[error("http error {status} downloading {url}")]
    Http { url: String, status: u32 },
    #[error("curl: error downloading {url}: {message} (exit code {exit_code})")]
    Download { url: String, exit_code: i32, message: String },
    #[error("{0}")]
    Curl(String),
    /// The content's own hash is left out: it would tell a manifest the hash of any file it
    /// can name (`file:///etc/shadow`, an internal URL), and upstream leaves it out too.
    #[error("checksum mismatch for {origin}: the content does not match {expected}")]
    ChecksumMismatch { origin: String, expected: String },
    #[error("download of {url} stopped: osbuild-rs was interrupted by signal {signal}")]
    Interrupted { url: String, signal: i32 },
    #[error("reading {url} took longer than the download timeout of {secs} s")]
    TimedOut { url: String, secs: u64 },
    #[error("invalid {name}={value}: {reason}")]
    Setting { name: &'static str, value: String, reason: String },
    #[error("cannot {op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    /// Some items failed; `results` holds every item's outcome (failed ones with `error` set).
    #[error("{first}{}", more_failed(*.failed))]
    Failed { source_type: String, first: String, failed: usize, results: Vec<ItemResult> },
}

fn more_failed(failed: usize) -> String {
    match failed {
        0 | 1 => String::new(),
        2 => " (and 1 more failed item)".to_string(),
        n => format!(" (and {} more failed items)", n - 1),
    }
}

impl SourceError {
    pub(crate) fn io(op: &'static str, path: &Path, error: io::Error) -> SourceError {
        SourceError::Io { op, path: path.to_path_buf(), error }
    }
}

/// Outcome of one item, in the shape of upstream's per-item metadata.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemResult {
    pub checksum: String,
    /// Already stored before this fetch.
    pub cached: bool,
    /// Why the item failed (only in `SourceError::Failed::results`).
    pub error: Option<String>,
}

/// The overall limit of one download attempt (curl `--max-time`), unless
/// `OSBUILD_RS_DOWNLOAD_TIMEOUT` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a transfer may stay below [`MIN_SPEED`] before it is given up (curl `--speed-time`),
/// unless `OSBUILD_RS_DOWNLOAD_STALL_TIME` says otherwise.
pub const DEFAULT_STALL_TIME: Duration = Duration::from_secs(30);
/// Bytes per second below which a transfer counts as stalled (curl `--speed-limit`, upstream's).
pub const MIN_SPEED: u32 = 1000;
/// The longest a connection may take to set up (curl `--connect-timeout`, upstream's).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const ENV_TIMEOUT: &str = "OSBUILD_RS_DOWNLOAD_TIMEOUT";
pub const ENV_STALL_TIME: &str = "OSBUILD_RS_DOWNLOAD_STALL_TIME";
/// The largest value either setting takes: a week.
const MAX_SETTING_SECS: u64 = 7 * 24 * 3600;

/// How to fetch, and the bounds of every download (see the README's threat model).
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Concurrent transfers (worker threads for local work, `--parallel-max` for curl).
    pub parallel: usize,
    /// Extra tries after a network error or HTTP 5xx, waiting 0.5 s, 1 s, 2 s, ... between;
    /// an attempt that hit a time limit is tried again once only.
    pub retries: u32,
    /// The overall limit of one attempt at one item (and of a `file://` copy).
    pub timeout: Duration,
    /// A transfer slower than `min_speed` bytes/s for this long is given up.
    pub stall_time: Duration,
    pub min_speed: u32,
    pub connect_timeout: Duration,
    /// Where `file://` items may read: `None` anywhere (only regular files, content imported only
    /// when it matches), `Some(dirs)` only below these directories.
    pub file_url_dirs: Option<Vec<PathBuf>>,
    /// Whether each stored file (and the directory's renames) is fsync'ed before it counts as
    /// stored. On by default; a build follows the store's `--durable`, as commits do: waiting
    /// for the disk to write 300 MiB of `file://` sources was a third of such a build's time.
    pub durable: bool,
}

impl FetchOptions {
    /// The built-in bounds, ignoring the environment.
    pub fn builtin() -> FetchOptions {
        FetchOptions {
            parallel: 4,
            retries: 3,
            timeout: DEFAULT_TIMEOUT,
            stall_time: DEFAULT_STALL_TIME,
            min_speed: MIN_SPEED,
            connect_timeout: CONNECT_TIMEOUT,
            file_url_dirs: None,
            durable: true,
        }
    }

    /// The built-in bounds with the settings of `OSBUILD_RS_DOWNLOAD_TIMEOUT`,
    /// `OSBUILD_RS_DOWNLOAD_STALL_TIME` (whole seconds, 1 to a week) and
    /// `OSBUILD_RS_FILE_URL_DIRS` read through `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<OsString>) -> Result<FetchOptions, SourceError> {
        let mut opts = FetchOptions::builtin();
        if let Some(t) = seconds_setting(ENV_TIMEOUT, env(ENV_TIMEOUT))? {
            opts.timeout = t;
        }
        if let Some(t) = seconds_setting(ENV_STALL_TIME, env(ENV_STALL_TIME))? {
            opts.stall_time = t;
        }
        opts.connect_timeout = opts.connect_timeout.min(opts.timeout);
        opts.file_url_dirs = file::parse_dirs(env(file::ENV_FILE_URL_DIRS))?;
        Ok(opts)
    }
}

impl FetchOptions {
    /// When an attempt started now must end. Saturates: a `timeout` of `Duration::MAX` (these
    /// fields are public) means "no deadline", never a panic in clock arithmetic.
    pub fn deadline(&self) -> Instant {
        after(self.timeout)
    }
}

/// `now + d`, saturating at a point about a century away.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))).unwrap_or(now)
}

/// Whole seconds from 1 to a week, or nothing when unset or empty.
fn seconds_setting(name: &'static str, value: Option<OsString>) -> Result<Option<Duration>, SourceError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let text = value.to_string_lossy();
    match text.trim().parse::<u64>() {
        Ok(secs @ 1..=MAX_SETTING_SECS) => Ok(Some(Duration::from_secs(secs))),
        _ => Err(SourceError::Setting {
            name,
            value: text.into_owned(),
            reason: format!("expected whole seconds from 1 to {MAX_SETTING_SECS}"),
        }),
    }
}

impl Default for FetchOptions {
    /// [`FetchOptions::from_env`] with the process environment; the built-in bounds if a
    /// setting is invalid (the CLI refuses those before any build starts).
    fn default() -> Self {
        FetchOptions::from_env(|name| std::env::var_os(name)).unwrap_or_else(|_| FetchOptions::builtin())
    }
}

/// Which store sub-directory a source type uses (as upstream's `content_type`).
pub fn store_kind(source_type: &str) -> Option<&'static str> {
    match source_type {
        "org.osbuild.curl" | "org.osbuild.inline" => Some("org.osbuild.files"),
        "org.osbuild.ostree" => Some("org.osbuild.ostree"),
        _ => None,
    }
}

pub fn is_supported(source_type: &str) -> bool {
    store_kind(source_type).is_some()
}

/// What to do for one item that is not stored yet.
#[derive(Debug)]
enum Job {
    Inline(InlineItem),
    File { url: String, path: PathBuf },
    Curl(CurlItem),
}

/// The items of `source` that `wanted` selects (all if `None`), in manifest order.
fn selected_items<'a>(
    source: &'a manifest::Source,
    wanted: Option<&BTreeSet<String>>,
) -> Result<Vec<(&'a String, &'a Value)>, SourceError> {
    match &source.items {
        Value::Object(map) => Ok(map.iter().filter(|(key, _)| wanted.is_none_or(|w| w.contains(*key))).collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err(SourceError::InvalidItems { source_type: source.kind.clone() }),
    }
}

/// `dest_dir`, created if missing, with this fetch's staging directory in it.
fn staging_in(dest_dir: &Path) -> Result<StagingDir, SourceError> {
    fs::create_dir_all(dest_dir).map_err(|e| SourceError::io("create directory", dest_dir, e))?;
    StagingDir::create(dest_dir).map_err(|e| SourceError::io("create a staging directory in", dest_dir, e))
}

/// Parses every selected item (no I/O): checksum, then the item form of the source type.
fn parse_items(
    source: &manifest::Source,
    wanted: Option<&BTreeSet<String>>,
) -> Result<Vec<(Checksum, Job)>, SourceError> {
    let mut out = Vec::new();
    for (key, desc) in selected_items(source, wanted)? {
        let checksum =
            Checksum::parse(key).map_err(|reason| SourceError::InvalidChecksum { item: key.clone(), reason })?;
        let job = match source.kind.as_str() {
            "org.osbuild.inline" => Job::Inline(InlineItem::parse(key, desc)?),
            "org.osbuild.curl" => {
                let item = CurlItem::parse(key, desc)?;
                match file::file_path(&item.url) {
                    Some(path) => Job::File { path: path?, url: item.url },
                    None => {
                        curl::check_scheme(&item.url)?;
                        Job::Curl(item)
                    }
                }
            }
            other => return Err(SourceError::UnsupportedSource(other.to_string())),
        };
        out.push((checksum, job));
    }
    Ok(out)
}

/// Runs `f` over `jobs` on up to `threads` threads; results in job order.
fn run_parallel<T: Sync, R: Send>(jobs: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        return jobs.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let r = f(job);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

/// Fetch every item of `source` whose checksum is in `wanted` (None = all) into `dest_dir`,
/// file name = the checksum string. Items already present are not fetched again
/// (`cached: true`). Each item goes through a temp file in a staging directory of this call in
/// `dest_dir` (`.tmp-*`), is verified against its checksum, fsync'ed (if `opts.durable`) and renamed; on any failure
/// nothing is stored for it, and the staging directory goes when the call returns.
///
/// Manifest problems (unsupported type, malformed item or checksum) fail before anything is
/// fetched. Otherwise every item is attempted; if any failed, `SourceError::Failed` carries the
/// first error's message and all results.
pub fn fetch(
    source: &manifest::Source,
    wanted: Option<&BTreeSet<String>>,
    dest_dir: &Path,
    opts: &FetchOptions,
) -> Result<Vec<ItemResult>, SourceError> {
    if !is_supported(&source.kind) {
        return Err(SourceError::UnsupportedSource(source.kind.clone()));
    }
    if source.kind == "org.osbuild.ostree" {
        return ostree::fetch(source, wanted, dest_dir, opts);
    }
    let jobs = parse_items(source, wanted)?;
    let staging = staging_in(dest_dir)?;

    let needs_rhsm =
        jobs.iter().any(|(_, job)| matches!(job, Job::Curl(i) if i.secrets.as_deref() == Some("org.osbuild.rhsm")));
    let subscriptions = needs_rhsm.then(rhsm::Subscriptions::from_host_system);
    let mut outcomes: Vec<Option<Result<bool, SourceError>>> = Vec::with_capacity(jobs.len());
    let mut local = Vec::new();
    let mut transfers = Vec::new();
    for (index, (checksum, job)) in jobs.iter().enumerate() {
        if staging::is_stored(dest_dir, &checksum.to_string()) {
            outcomes.push(Some(Ok(true)));
            continue;
        }
        outcomes.push(None);
        match job {
            Job::Curl(item) => match curl::resolve_secrets(item, |k| std::env::var(k).ok(), subscriptions.as_ref()) {
                Ok(tls) => transfers.push(Transfer {
                    index,
                    url: item.url.clone(),
                    checksum: checksum.clone(),
                    insecure: item.insecure,
                    tls,
                }),
                Err(e) => outcomes[index] = Some(Err(e)),
            },
            _ => local.push(index),
        }
    }

    let (local_results, curl_results) = std::thread::scope(|s| {
        let downloads = (!transfers.is_empty())
            .then(|| s.spawn(|| curl::fetch_with_curl(&transfers, staging.path(), dest_dir, opts)));
        let local_results = run_parallel(&local, opts.parallel, |&i| {
            let (checksum, job) = &jobs[i];
            let r = match job {
                Job::Inline(item) => inline::fetch_one(checksum, item, staging.path(), dest_dir, opts),
                Job::File { url, path } => file::fetch_file(url, path, checksum, staging.path(), dest_dir, opts),
                Job::Curl(_) => unreachable!("curl jobs are batched"),
            };
            (i, r)
        });
        let curl_results = match downloads {
            Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => Vec::new(),
        };
        (local_results, curl_results)
    });
    let mut stored_any = false;
    for (i, r) in local_results.into_iter().chain(curl_results) {
        stored_any |= r.is_ok();
        outcomes[i] = Some(r.map(|()| false));
    }
    if stored_any && opts.durable {
        staging::sync_dir(dest_dir)?;
    }

    let mut first = None;
    let mut failed = 0;
    let results: Vec<ItemResult> = jobs
        .iter()
        .zip(outcomes)
        .map(|((checksum, _), outcome)| {
            let checksum = checksum.to_string();
            match outcome.unwrap_or_else(|| Err(SourceError::Curl(format!("no result for {checksum}")))) {
                Ok(cached) => ItemResult { checksum, cached, error: None },
                Err(e) => {
                    failed += 1;
                    let msg = e.to_string();
                    first.get_or_insert_with(|| msg.clone());
                    ItemResult { checksum, cached: false, error: Some(msg) }
                }
            }
        })
        .collect();
    match first {
        Some(first) => Err(SourceError::Failed { source_type: source.kind.clone(), first, failed, results }),
        None => Ok(results),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(kind: &str, items: Value) -> manifest::Source {
        manifest::Source { kind: kind.into(), items, options: Value::Null }
    }

    #[test]
    fn store_kinds_follow_upstream() {
        assert_eq!(store_kind("org.osbuild.curl"), Some("org.osbuild.files"));
        assert_eq!(store_kind("org.osbuild.inline"), Some("org.osbuild.files"));
        assert_eq!(store_kind("org.osbuild.ostree"), Some("org.osbuild.ostree"));
        assert!(is_supported("org.osbuild.inline") && !is_supported("org.osbuild.skopeo"));
    }

    #[test]
    fn parses_items_and_filters_wanted() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("md5:{}", "b".repeat(32));
        let src = source("org.osbuild.curl", json!({ &a: "file:///x", &b: {"url": "https://h/y"} }));
        let jobs = parse_items(&src, None).unwrap();
        assert!(matches!(&jobs[0].1, Job::File { path, .. } if path == Path::new("/x")));
        assert!(matches!(&jobs[1].1, Job::Curl(item) if item.url == "https://h/y"));
        let wanted: BTreeSet<String> = [b.clone()].into();
        let jobs = parse_items(&src, Some(&wanted)).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].0.to_string(), b);
    }

    #[test]
    fn rejects_bad_items_before_fetching() {
        let err = parse_items(&source("org.osbuild.curl", json!({"sha256:xyz": "file:///x"})), None).unwrap_err();
        assert!(err.to_string().starts_with("invalid checksum sha256:xyz"), "{err}");
        let err = parse_items(&source("org.osbuild.curl", json!(["x"])), None).unwrap_err();
        assert!(err.to_string().contains("org.osbuild.curl"), "{err}");
        let dir = std::env::temp_dir();
        let err = fetch(&source("org.osbuild.skopeo", json!({})), None, &dir, &FetchOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "unsupported source type org.osbuild.skopeo");
    }

    /// Durable or not (the store's `--durable`), a fetched file is stored complete under its
    /// checksum and the staging directory is gone; only the fsyncs differ. The default is durable.
    #[test]
    fn file_items_are_stored_with_and_without_fsync() {
        assert!(FetchOptions::builtin().durable);
        for durable in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let data = t.path().join("data");
            std::fs::write(&data, b"payload").unwrap();
            let sum = checksum::hash_reader(&std::fs::File::open(&data).unwrap(), checksum::Algorithm::Sha256).unwrap();
            let dest = t.path().join("dest");
            std::fs::create_dir(&dest).unwrap();
            let src = source("org.osbuild.curl", json!({ sum.to_string(): format!("file://{}", data.display()) }));
            let opts = FetchOptions { durable, ..FetchOptions::builtin() };
            let results = fetch(&src, None, &dest, &opts).unwrap();
            assert!(results[0].error.is_none() && !results[0].cached, "durable={durable}");
            assert_eq!(std::fs::read(dest.join(sum.to_string())).unwrap(), b"payload");
            let names: Vec<_> = std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names.len(), 1, "durable={durable}: {names:?}");
        }
    }

    #[test]
    fn runs_jobs_in_parallel_keeping_order() {
        let jobs: Vec<usize> = (0..100).collect();
        assert_eq!(run_parallel(&jobs, 7, |&i| i * 2), (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert!(run_parallel(&Vec::<usize>::new(), 4, |&i| i).is_empty());
    }
}
