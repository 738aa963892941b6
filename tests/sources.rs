//! Sources against real things: a loopback HTTP server, local files, the host curl.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use osbuild_rs::manifest::Source;
use osbuild_rs::sources::{self, FetchOptions, ItemResult, SourceError};
use serde_json::{json, Map, Value};
use sha2::Digest;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn source(kind: &str, items: Value) -> Source {
    Source { kind: kind.into(), items, options: Value::Null }
}

fn quick() -> FetchOptions {
    FetchOptions { parallel: 4, retries: 3, timeout: Duration::from_secs(30), ..FetchOptions::builtin() }
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn failed_results(err: SourceError) -> (String, Vec<ItemResult>) {
    let msg = err.to_string();
    match err {
        SourceError::Failed { results, .. } => (msg, results),
        other => panic!("expected per-item failure, got {other:?}"),
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1: serves `files`, answers 503 (paths with "busy" in
/// their name, as an overloaded mirror) or 500 to the first `failures[path]` requests of a
/// path, counts requests and remembers user agents.
struct Server {
    addr: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
    hits: Arc<Mutex<HashMap<String, u32>>>,
    agents: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let server = Server {
            addr,
            files: Default::default(),
            failures: Default::default(),
            hits: Default::default(),
            agents: Default::default(),
            stop: Default::default(),
        };
        let (files, failures, hits, agents, stop) = (
            server.files.clone(),
            server.failures.clone(),
            server.hits.clone(),
            server.agents.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (files, failures, hits, agents) = (files.clone(), failures.clone(), hits.clone(), agents.clone());
                std::thread::spawn(move || serve(conn, &files, &failures, &hits, &agents));
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    fn add(&self, path: &str, data: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), data);
    }

    fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Stops accepting: later connections are refused.
    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
    }
}

fn serve(
    mut conn: TcpStream,
    files: &Mutex<HashMap<String, Vec<u8>>>,
    failures: &Mutex<HashMap<String, u32>>,
    hits: &Mutex<HashMap<String, u32>>,
    agents: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if let Some(agent) = header.strip_prefix("User-Agent: ") {
                agents.lock().unwrap().push(agent.trim().to_string());
            }
            if header == "\r\n" {
                break;
            }
        }
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if path == "/slow" {
            std::thread::sleep(Duration::from_secs(3));
        }
        let fail = {
            let mut f = failures.lock().unwrap();
            match f.get_mut(&path) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        let body = files.lock().unwrap().get(&path).cloned();
        let (status, body) = match (fail, body) {
            (true, _) if path.contains("busy") => ("503 Service Unavailable", b"try later".to_vec()),
            (true, _) => ("500 Internal Server Error", b"boom".to_vec()),
            (false, Some(b)) => ("200 OK", b),
            (false, None) => ("404 Not Found", b"nope".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(&body)).is_err() {
            return;
        }
    }
}

/// Distinct data per `i`: a fixed pattern with `i` in front.
fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|j| (j % 251) as u8).collect();
    let tag = (i as u64).to_le_bytes();
    let n = tag.len().min(len);
    data[..n].copy_from_slice(&tag[..n]);
    data
}

#[test]
fn inline_base64_and_lzma_items_are_stored() {
    let dest = tempfile::tempdir().unwrap();
    let plain = b"hello inline".to_vec();
    let packed = b"compress me ".repeat(100);
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &packed[..], &mut xz).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let items = json!({
        sha256(&plain): {"encoding": "base64", "data": b64.encode(&plain)},
        sha256(&packed): {"encoding": "lzma+base64", "data": b64.encode(&xz)},
    });
    let results = sources::fetch(&source("org.osbuild.inline", items.clone()), None, dest.path(), &quick()).unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| !r.cached && r.error.is_none()));
    assert_eq!(fs::read(dest.path().join(sha256(&plain))).unwrap(), plain);
    assert_eq!(fs::read(dest.path().join(sha256(&packed))).unwrap(), packed);
    assert_eq!(listing(dest.path()).len(), 2);

    let again = sources::fetch(&source("org.osbuild.inline", items), None, dest.path(), &quick()).unwrap();
    assert!(again.iter().all(|r| r.cached));
}

#[test]
fn inline_mismatch_stores_nothing() {
    let dest = tempfile::tempdir().unwrap();
    let wrong = sha256(b"other");
    let items = json!({ &wrong: {"encoding": "base64", "data": "aGVsbG8="} });
    let err = sources::fetch(&source("org.osbuild.inline", items), None, dest.path(), &quick()).unwrap_err();
    let (msg, results) = failed_results(err);
    assert_eq!(msg, format!("checksum mismatch for inline item {wrong}: the content does not match {wrong}"));
    assert_eq!(results[0].error.as_deref(), Some(msg.as_str()));
    assert!(listing(dest.path()).is_empty(), "{:?}", listing(dest.path()));
}

#[test]
fn file_urls_with_md5_sha256_sha512() {
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let data = [b"one".to_vec(), b"two".to_vec(), payload(3, 300_000)];
    let paths: Vec<PathBuf> = (0..3).map(|i| src.path().join(format!("f {i}.bin"))).collect();
    for (p, d) in paths.iter().zip(&data) {
        fs::write(p, d).unwrap();
    }
    let md5 = format!("md5:{}", hex::encode(md5::Md5::digest(&data[0])));
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&data[2])));
    let items = json!({
        &md5: format!("file://{}", paths[0].display()),
        sha256(&data[1]): {"url": format!("file://{}", paths[1].display())},
        &sha512: format!("file://{}", paths[2].display()),
    });
    let results = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap();
    assert_eq!(
        results.iter().map(|r| r.checksum.clone()).collect::<Vec<_>>(),
        vec![md5.clone(), sha256(&data[1]), sha512.clone()]
    );
    assert_eq!(fs::read(dest.path().join(&md5)).unwrap(), data[0]);
    assert_eq!(fs::read(dest.path().join(&sha512)).unwrap(), data[2]);
    assert_eq!(listing(dest.path()).len(), 3);
}

#[test]
fn file_url_errors_name_the_url() {
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let present = src.path().join("present");
    fs::write(&present, b"actual").unwrap();
    let expected = sha256(b"expected");
    let missing_sum = sha256(b"missing");
    let present_url = format!("file://{}", present.display());
    let missing_url = format!("file://{}/missing", src.path().display());
    let items = json!({ &expected: &present_url, &missing_sum: &missing_url });
    let err = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap_err();
    let (msg, results) = failed_results(err);
    // The content's real hash is never shown: it would tell a manifest the hash of any host file.
    let mismatch = format!("checksum mismatch for {present_url}: the content does not match {expected}");
    assert_eq!(msg, format!("{mismatch} (and 1 more failed item)"));
    assert!(!msg.contains(&sha256(b"actual")[7..]), "{msg}");
    assert_eq!(results[0].error.as_deref(), Some(mismatch.as_str()));
    let missing = results[1].error.as_deref().unwrap();
    assert!(missing.contains(&missing_url) && missing.contains("No such file"), "{missing}");
    assert!(listing(dest.path()).is_empty(), "{:?}", listing(dest.path()));
}

#[test]
fn http_download_then_cached_without_server() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let a = payload(1, 70_000);
    let b = payload(2, 10);
    server.add("/repo/a.rpm", a.clone());
    server.add("/repo/b%2Bc.rpm", b.clone());
    let items = json!({
        sha256(&a): server.url("/repo/a.rpm"),
        sha256(&b): {"url": server.url("/repo/b+c.rpm"), "insecure": false},
    });
    let results = sources::fetch(&source("org.osbuild.curl", items.clone()), None, dest.path(), &quick()).unwrap();
    assert!(results.iter().all(|r| !r.cached && r.error.is_none()), "{results:?}");
    assert_eq!(fs::read(dest.path().join(sha256(&a))).unwrap(), a);
    assert_eq!(fs::read(dest.path().join(sha256(&b))).unwrap(), b);
    assert_eq!(listing(dest.path()).len(), 2);
    let agents = server.agents.lock().unwrap().clone();
    assert!(agents.iter().all(|a| a.starts_with("osbuild (Linux.")), "{agents:?}");

    server.stop();
    let again = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap();
    assert!(again.iter().all(|r| r.cached && r.error.is_none()), "{again:?}");
}

#[test]
fn http_checksum_mismatch_is_final_and_clean() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    server.add("/x.rpm", b"served".to_vec());
    let expected = sha256(b"wanted");
    let url = server.url("/x.rpm");
    let err = sources::fetch(&source("org.osbuild.curl", json!({ &expected: &url })), None, dest.path(), &quick())
        .unwrap_err();
    let (msg, _) = failed_results(err);
    assert_eq!(msg, format!("checksum mismatch for {url}: the content does not match {expected}"));
    assert_eq!(server.hits("/x.rpm"), 1, "a mismatch must not be retried");
    assert!(listing(dest.path()).is_empty(), "{:?}", listing(dest.path()));
}

#[test]
fn http_404_is_not_retried() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let url = server.url("/gone.rpm");
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"x"): &url })), None, dest.path(), &quick())
        .unwrap_err();
    let (msg, _) = failed_results(err);
    assert_eq!(msg, format!("http error 404 downloading {url}"));
    assert_eq!(server.hits("/gone.rpm"), 1);
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn http_500_is_retried_with_backoff() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let data = b"eventually".to_vec();
    server.add("/flaky", data.clone());
    server.add("/broken", b"never".to_vec());
    server.failures.lock().unwrap().insert("/flaky".into(), 2);
    server.failures.lock().unwrap().insert("/broken".into(), 100);
    let start = Instant::now();
    let items = json!({ sha256(&data): server.url("/flaky") });
    let results = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap();
    assert!(!results[0].cached);
    assert_eq!(server.hits("/flaky"), 3);
    assert!(start.elapsed() >= Duration::from_millis(1500), "backoff 0.5 s + 1 s, took {:?}", start.elapsed());
    assert_eq!(fs::read(dest.path().join(sha256(&data))).unwrap(), data);

    let opts = FetchOptions { retries: 1, ..quick() };
    let url = server.url("/broken");
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"never"): &url })), None, dest.path(), &opts)
        .unwrap_err();
    assert_eq!(err.to_string(), format!("http error 500 downloading {url}"));
    assert_eq!(server.hits("/broken"), 2);
    assert_eq!(listing(dest.path()).len(), 1);
}

/// Issue 16: a mirror that answers 503 to the first two requests for a file is retried until
/// the file comes.
#[test]
fn http_503_twice_then_the_file() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let data = b"after two 503s".to_vec();
    server.add("/busy.deb", data.clone());
    server.failures.lock().unwrap().insert("/busy.deb".into(), 2);
    let items = json!({ sha256(&data): server.url("/busy.deb") });
    let results = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap();
    assert!(results[0].error.is_none(), "{:?}", results[0].error);
    assert_eq!(server.hits("/busy.deb"), 3, "two 503s, then 200");
    assert_eq!(fs::read(dest.path().join(sha256(&data))).unwrap(), data);
}

#[test]
fn timeout_limits_a_transfer() {
    let server = Server::start();
    server.add("/slow", b"late".to_vec());
    let dest = tempfile::tempdir().unwrap();
    let url = server.url("/slow");
    let opts = FetchOptions { retries: 0, timeout: Duration::from_millis(700), ..quick() };
    let start = Instant::now();
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"late"): &url })), None, dest.path(), &opts)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("curl: error downloading {url}: ")) && msg.ends_with("(exit code 28)"), "{msg}");
    assert!(start.elapsed() < Duration::from_millis(2500), "took {:?}", start.elapsed());
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn connection_refused_is_a_network_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dest = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/x");
    let opts = FetchOptions { retries: 1, ..quick() };
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"x"): &url })), None, dest.path(), &opts)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("curl: error downloading {url}: ")) && msg.ends_with("(exit code 7)"), "{msg}");
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn wanted_selects_items() {
    let dest = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut items = Map::new();
    for i in 0..5 {
        let d = payload(i, 100);
        items.insert(sha256(&d), json!({"encoding": "base64", "data": b64.encode(&d)}));
    }
    let keys: Vec<String> = items.keys().cloned().collect();
    let wanted: BTreeSet<String> = [keys[1].clone(), keys[3].clone(), sha256(b"not an item")].into();
    let results =
        sources::fetch(&source("org.osbuild.inline", Value::Object(items)), Some(&wanted), dest.path(), &quick())
            .unwrap();
    let got: Vec<String> = results.into_iter().map(|r| r.checksum).collect();
    assert_eq!(got, vec![keys[1].clone(), keys[3].clone()]);
    let mut stored = vec![keys[1].clone(), keys[3].clone()];
    stored.sort();
    assert_eq!(listing(dest.path()), stored);
}

#[test]
fn parallel_http_downloads() {
    let server = Server::start();
    let dest = tempfile::tempdir().unwrap();
    let mut items = Map::new();
    for i in 0..50 {
        let data = payload(i, 20_000 + i * 1000);
        let path = format!("/pkgs/p{i}.rpm");
        items.insert(sha256(&data), json!(server.url(&path)));
        server.add(&path, data);
    }
    let opts = FetchOptions { parallel: 8, ..quick() };
    let results = sources::fetch(&source("org.osbuild.curl", Value::Object(items)), None, dest.path(), &opts).unwrap();
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(|r| r.error.is_none() && !r.cached));
    let names = listing(dest.path());
    assert_eq!(names.len(), 50, "{names:?}");
    for name in names {
        assert_eq!(sha256(&fs::read(dest.path().join(&name)).unwrap()), name);
    }
}

#[test]
fn mixed_sources_in_one_directory() {
    let server = Server::start();
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (h, f) = (b"over http".to_vec(), b"from a file".to_vec());
    server.add("/h", h.clone());
    fs::write(src.path().join("f"), &f).unwrap();
    let items = json!({
        sha256(&h): server.url("/h"),
        sha256(&f): format!("file://{}/f", src.path().display()),
    });
    let results = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &quick()).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(listing(dest.path()).len(), 2);
}

/// The benchmark's shape: 300 x 1 MiB file:// sources.
#[test]
fn file_urls_300_x_1mib() {
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let mut items = Map::new();
    let base = payload(0, 1 << 20);
    for i in 0..300 {
        let mut data = base.clone();
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let path = src.path().join(format!("{i}.bin"));
        fs::write(&path, &data).unwrap();
        items.insert(sha256(&data), json!(format!("file://{}", path.display())));
    }
    let start = Instant::now();
    let results =
        sources::fetch(&source("org.osbuild.curl", Value::Object(items)), None, dest.path(), &FetchOptions::default())
            .unwrap();
    let took = start.elapsed();
    eprintln!("300 x 1 MiB file:// fetch took {took:?}");
    assert_eq!(results.len(), 300);
    assert_eq!(listing(dest.path()).len(), 300);
}

/// An HTTPS server (python's http.server behind ssl) with a fresh self-signed certificate for
/// 127.0.0.1, serving `root`; with `client_ca`, clients must present a certificate it signed.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(root: &Path, cert: &Path, key: &Path, client_ca: Option<&Path>) -> TlsServer {
        let script = r#"
import http.server, ssl, sys
cert, key, client_ca = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(client_ca)
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(cert)
            .arg(key)
            .arg(client_ca.map(|p| p.as_os_str()).unwrap_or_default())
            .current_dir(root)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed for the https tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("https server did not start: {line:?}"));
        TlsServer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate and key in `dir` named `<name>.crt` / `<name>.key`.
fn self_signed(dir: &Path, name: &str, subject: &str, san: Option<&str>) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt);
    if let Some(san) = san {
        cmd.args(["-addext", &format!("subjectAltName={san}")]);
    }
    let out = cmd.output().expect("openssl is needed for the https tests");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (crt, key)
}

#[test]
fn https_insecure_and_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let data = b"over tls".to_vec();
    fs::write(root.path().join("f.rpm"), &data).unwrap();
    let (server_crt, server_key) = self_signed(certs.path(), "server", "/CN=127.0.0.1", Some("IP:127.0.0.1"));
    let (client_crt, client_key) = self_signed(certs.path(), "client", "/CN=client", None);

    // A self-signed server: refused unless the item says insecure; not retried.
    let server = TlsServer::start(root.path(), &server_crt, &server_key, None);
    let url = server.url("/f.rpm");
    let dest = tempfile::tempdir().unwrap();
    let opts = FetchOptions { retries: 3, ..quick() };
    let start = Instant::now();
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(&data): &url })), None, dest.path(), &opts)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("curl: error downloading {url}")) && msg.ends_with("(exit code 60)"), "{msg}");
    assert!(start.elapsed() < Duration::from_millis(500), "a certificate problem must not be retried");
    let items = json!({ sha256(&data): {"url": &url, "insecure": true} });
    sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &opts).unwrap();
    assert_eq!(fs::read(dest.path().join(sha256(&data))).unwrap(), data);
    drop(server);

    // Client certificates and the CA come from the environment for org.osbuild.mtls.
    let server = TlsServer::start(root.path(), &server_crt, &server_key, Some(&client_crt));
    let url = server.url("/f.rpm");
    let dest = tempfile::tempdir().unwrap();
    let items = json!({ sha256(&data): {"url": &url, "secrets": {"name": "org.osbuild.mtls"}} });
    std::env::set_var("OSBUILD_SOURCES_CURL_SSL_CLIENT_KEY", &client_key);
    std::env::set_var("OSBUILD_SOURCES_CURL_SSL_CLIENT_CERT", &client_crt);
    std::env::set_var("OSBUILD_SOURCES_CURL_SSL_CA_CERT", &server_crt);
    let results = sources::fetch(&source("org.osbuild.curl", items.clone()), None, dest.path(), &opts).unwrap();
    assert!(!results[0].cached);
    assert_eq!(fs::read(dest.path().join(sha256(&data))).unwrap(), data);

    // Without a client certificate the server refuses the handshake.
    let plain = json!({ sha256(&data): {"url": &url, "insecure": true} });
    let dest = tempfile::tempdir().unwrap();
    let opts = FetchOptions { retries: 0, ..quick() };
    let err = sources::fetch(&source("org.osbuild.curl", plain), None, dest.path(), &opts).unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    std::env::remove_var("OSBUILD_SOURCES_CURL_SSL_CLIENT_KEY");
    let err = sources::fetch(&source("org.osbuild.curl", items), None, dest.path(), &opts).unwrap_err();
    assert!(err.to_string().starts_with(&format!("mtls secrets required for {url}")), "{err}");
    assert!(listing(dest.path()).is_empty());
}

/// A server on 127.0.0.1 that reads each request and hands the connection to `behave`;
/// counts connections.
fn misbehaving_server(behave: fn(TcpStream)) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                behave(conn)
            });
        }
    });
    (addr, connections)
}

/// Bounds short enough for a test: stalled after 2 s, 20 s per attempt.
fn bounded() -> FetchOptions {
    FetchOptions {
        retries: 3,
        timeout: Duration::from_secs(20),
        stall_time: Duration::from_secs(2),
        ..FetchOptions::builtin()
    }
}

/// Fetches one item from `url` with `opts`; the error text and how long it took.
fn fetch_failing(url: &str, opts: &FetchOptions) -> (String, Duration, Vec<String>) {
    let dest = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"never"): url })), None, dest.path(), opts)
        .unwrap_err();
    (err.to_string(), started.elapsed(), listing(dest.path()))
}

#[test]
fn hanging_server_is_given_up_after_two_stalls() {
    let (addr, connections) = misbehaving_server(|conn| {
        std::thread::sleep(Duration::from_secs(120));
        drop(conn);
    });
    let url = format!("{addr}/hang.rpm");
    let (msg, took, left) = fetch_failing(&url, &bounded());
    assert!(msg.starts_with(&format!("curl: error downloading {url}: ")) && msg.ends_with("(exit code 28)"), "{msg}");
    // Two attempts of 2 s each and a 0.5 s pause; never the 4 attempts other errors get.
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(9), "took {took:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dripping_server_is_given_up_by_the_minimum_speed() {
    let (addr, connections) = misbehaving_server(|mut conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        // 50 bytes/s, well below the 1000 bytes/s minimum, for longer than any test runs.
        for _ in 0..1200 {
            if conn.write_all(b"0123456789").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let url = format!("{addr}/drip.rpm");
    let (msg, took, left) = fetch_failing(&url, &bounded());
    assert!(msg.contains(&url) && msg.ends_with("(exit code 28)"), "{msg}");
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn endless_fast_stream_ends_at_the_overall_limit() {
    let (addr, _) = misbehaving_server(|mut conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        // About 1.6 MB/s, fast enough for the minimum speed, and it never ends.
        let chunk = vec![b'x'; 16 * 1024];
        while conn.write_all(&chunk).is_ok() {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let url = format!("{addr}/endless.rpm");
    let opts = FetchOptions { timeout: Duration::from_secs(2), ..bounded() };
    let (msg, took, left) = fetch_failing(&url, &opts);
    assert!(msg.contains(&url) && msg.ends_with("(exit code 28)"), "{msg}");
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn redirects_never_reach_local_files() {
    // If curl followed this, the item would be imported: its checksum is the target's.
    let (addr, _) = misbehaving_server(|mut conn| {
        let _ = conn.write_all(b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n");
    });
    let dest = tempfile::tempdir().unwrap();
    let passwd = sha256(&fs::read("/etc/passwd").unwrap());
    let url = format!("{addr}/redirect");
    let err = sources::fetch(&source("org.osbuild.curl", json!({ &passwd: &url })), None, dest.path(), &bounded())
        .unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn other_url_schemes_are_refused_before_fetching() {
    let dest = tempfile::tempdir().unwrap();
    for url in ["gopher://127.0.0.1:70/x", "dict://127.0.0.1:11211/stats", "scp://h/etc/passwd"] {
        let err =
            sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"x"): url })), None, dest.path(), &quick())
                .unwrap_err();
        assert!(err.to_string().starts_with(&format!("invalid url {url}: scheme")), "{err}");
    }
    assert!(listing(dest.path()).is_empty());
}

#[test]
fn file_urls_read_only_regular_files_and_only_allowed_dirs() {
    let dest = tempfile::tempdir().unwrap();
    let t = tempfile::tempdir().unwrap();
    let allowed = t.path().join("allowed");
    fs::create_dir(&allowed).unwrap();
    fs::write(allowed.join("ok"), b"allowed data").unwrap();
    fs::write(t.path().join("outside"), b"outside data").unwrap();
    std::os::unix::fs::symlink(t.path().join("outside"), allowed.join("link")).unwrap();

    // Endless or blocking files end at once, whatever checksum the item names.
    let fifo = t.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let started = Instant::now();
    for path in [Path::new("/dev/zero"), Path::new("/dev/urandom"), fifo.as_path(), Path::new("/proc/kmsg")] {
        let url = format!("file://{}", path.display());
        let err =
            sources::fetch(&source("org.osbuild.curl", json!({ sha256(b"x"): &url })), None, dest.path(), &quick())
                .unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot read {} for {url}: ", path.display())), "{err}");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    // With allowed directories, even a matching checksum does not import a file outside them,
    // by its own path or through a symlink in an allowed directory.
    let opts = FetchOptions { file_url_dirs: Some(vec![allowed.clone()]), ..quick() };
    let outside = sha256(b"outside data");
    for path in [t.path().join("outside"), allowed.join("link"), allowed.join("../outside")] {
        let url = format!("file://{}", path.display());
        let err = sources::fetch(&source("org.osbuild.curl", json!({ &outside: &url })), None, dest.path(), &opts)
            .unwrap_err();
        assert!(err.to_string().contains(&url), "{err}");
    }
    assert!(listing(dest.path()).is_empty());
    let inside = sha256(b"allowed data");
    let url = format!("file://{}", allowed.join("ok").display());
    sources::fetch(&source("org.osbuild.curl", json!({ &inside: &url })), None, dest.path(), &opts).unwrap();
    assert_eq!(listing(dest.path()), vec![inside]);
}

/// An environment of `pairs`, for `FetchOptions::from_env`.
fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<std::ffi::OsString> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
}

#[test]
fn download_settings_are_range_checked() {
    let opts = FetchOptions::from_env(env_of(vec![
        ("OSBUILD_RS_DOWNLOAD_TIMEOUT", "5".into()),
        ("OSBUILD_RS_DOWNLOAD_STALL_TIME", "3".into()),
        ("OSBUILD_RS_FILE_URL_DIRS", "/srv/a:/srv/b".into()),
    ]))
    .unwrap();
    assert_eq!((opts.timeout, opts.stall_time), (Duration::from_secs(5), Duration::from_secs(3)));
    assert_eq!(opts.connect_timeout, Duration::from_secs(5), "never longer than the whole attempt");
    assert_eq!(opts.file_url_dirs, Some(vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]));
    let builtin = FetchOptions::from_env(env_of(vec![])).unwrap();
    assert_eq!((builtin.timeout.as_secs(), builtin.stall_time.as_secs(), builtin.min_speed), (3600, 30, 1000));
    assert_eq!(builtin.file_url_dirs, None);
    for name in ["OSBUILD_RS_DOWNLOAD_TIMEOUT", "OSBUILD_RS_DOWNLOAD_STALL_TIME"] {
        for bad in ["0", "-1", "1.5", "18446744073709551616", "604801", "soon"] {
            let err = FetchOptions::from_env(env_of(vec![(name, bad.into())])).unwrap_err().to_string();
            assert_eq!(err, format!("invalid {name}={bad}: expected whole seconds from 1 to 604800"));
        }
    }
}
