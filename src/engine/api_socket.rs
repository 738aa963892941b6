//! The host end of upstream's stage API socket (`/run/osbuild/api/osbuild` inside the sandbox).
//!
//! An external stage (or its runner) that fails with an exception connects to it and sends one
//! message, `{"method": "exception", "exception": {"type", "value", "traceback"}}`, then exits.
//! The transport is upstream's: a Unix `SOCK_SEQPACKET` socket, one JSON document per packet; a
//! document too large for one packet arrives as the marker `<args-via-fd>` with a memfd holding
//! it (SCM_RIGHTS). We record the last exception: it becomes the stage's `error` in the result,
//! as upstream's `{"type": "exception", "data": …}`.

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use serde_json::{json, Value};
use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

const FD_MARKER: &[u8] = b"<args-via-fd>";
/// Sent by `finish` on a connection of its own: connections are accepted in order, so every
/// client that connected before it has been read when it arrives.
const STOP: &[u8] = b"\0osbuild-rs: stop";
/// Bigger than any packet upstream sends inline (it switches to a memfd above `wmem_max`).
const PACKET_MAX: usize = 1 << 20;
/// A document passed through a memfd is read up to this size.
const DOCUMENT_MAX: u64 = 16 << 20;

/// A listening API socket and the thread that serves it, for one stage run.
pub struct ApiSocket {
    /// The socket's directory under `/run/osbuild-rs` (a short path: Unix socket paths are at
    /// most 107 bytes, store paths can be longer). Removed on drop.
    dir: tempfile::TempDir,
    thread: Option<JoinHandle<Option<Value>>>,
}

impl ApiSocket {
    /// Listen on a fresh socket; [`ApiSocket::path`] is what the sandbox binds.
    pub fn start() -> std::io::Result<ApiSocket> {
        let parent = Path::new("/run/osbuild-rs");
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new().prefix("api-").tempdir_in(parent)?;
        let path = dir.path().join("osbuild");
        let listener =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
        rustix::net::bind(&listener, &SocketAddrUnix::new(&path)?)?;
        rustix::net::listen(&listener, 8)?;
        let thread = std::thread::Builder::new().name("stage-api".into()).spawn(move || serve(listener))?;
        Ok(ApiSocket { dir, thread: Some(thread) })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("osbuild")
    }

    /// Stop serving (call once the sandbox is gone, so no client is left) and return the
    /// exception the stage reported, as upstream shows it in the result.
    pub fn finish(mut self) -> Option<Value> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Option<Value> {
        let thread = self.thread.take()?;
        if let Ok(s) = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        {
            if let Ok(addr) = SocketAddrUnix::new(self.path()) {
                let _ = rustix::net::connect(&s, &addr)
                    .and_then(|()| rustix::net::send(&s, STOP, rustix::net::SendFlags::empty()));
            }
        }
        thread.join().ok().flatten()
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

enum Packet {
    Doc(Value),
    Stop,
}

fn serve(listener: OwnedFd) -> Option<Value> {
    let mut error = None;
    loop {
        let conn = match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return error,
        };
        // One client at a time: the stage sends its exception and exits, and the sandbox (a
        // PID namespace) is gone before `finish`, so no client can hold the loop.
        while let Some(packet) = receive(&conn) {
            match packet {
                Packet::Stop => return error,
                Packet::Doc(doc) => {
                    if let Some(e) = exception(&doc) {
                        error = Some(e);
                    }
                }
            }
        }
    }
}

/// The next packet on `conn`; `None` at the end of the connection. Packets that are not JSON
/// (or truncated) are skipped, as upstream drops them.
fn receive(conn: &OwnedFd) -> Option<Packet> {
    loop {
        let mut buf = vec![0u8; PACKET_MAX];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg =
            match rustix::net::recvmsg(conn, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(m) => m,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return None,
            };
        if msg.bytes == 0 {
            return None;
        }
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if msg.bytes > buf.len() {
            continue;
        }
        let payload = &buf[..msg.bytes];
        if payload == STOP {
            return Some(Packet::Stop);
        }
        let text = if payload == FD_MARKER {
            let Some(fd) = fds.into_iter().next() else { continue };
            let mut doc = Vec::new();
            if std::fs::File::from(fd).take(DOCUMENT_MAX).read_to_end(&mut doc).is_err() {
                continue;
            }
            doc
        } else {
            payload.to_vec()
        };
        if let Ok(doc) = serde_json::from_slice(&text) {
            return Some(Packet::Doc(doc));
        }
    }
}

/// Upstream's stage error for an `exception` message.
fn exception(doc: &Value) -> Option<Value> {
    if doc.get("method").and_then(Value::as_str) != Some("exception") {
        return None;
    }
    Some(json!({"type": "exception", "data": doc.get("exception").cloned().unwrap_or(Value::Null)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(path: &Path, payload: &[u8]) {
        let s =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
        rustix::net::connect(&s, &SocketAddrUnix::new(path).unwrap()).unwrap();
        rustix::net::send(&s, payload, rustix::net::SendFlags::empty()).unwrap();
    }

    #[test]
    fn records_the_last_exception_and_ignores_the_rest() {
        let api = ApiSocket::start().unwrap();
        let path = api.path();
        send(&path, b"not json");
        send(&path, br#"{"method": "log", "message": "x"}"#);
        send(
            &path,
            br#"{"method": "exception", "exception": {"type": "ValueError", "value": "bad", "traceback": "t"}}"#,
        );
        let dir = path.parent().unwrap().to_owned();
        let e = api.finish().expect("an exception");
        assert_eq!(e["type"], "exception");
        assert_eq!(e["data"]["type"], "ValueError");
        assert_eq!(e["data"]["value"], "bad");
        assert!(!dir.exists(), "the socket directory is removed");
    }

    #[test]
    fn no_message_no_error() {
        let api = ApiSocket::start().unwrap();
        assert!(api.finish().is_none());
    }
}
