//! A TCP proxy on loopback in front of a real server (an object store), which a test turns
//! into a faulty one: it passes traffic, answers every request with a 500, or accepts
//! connections and never answers (a hung store). Switching closes every open connection, so a
//! client's pooled connections see the new behaviour at their next request.

use anyhow::Result;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Passes it to the server.
    Pass = 0,
    /// Reads each request and answers `500 Internal Server Error` (an S3 error document).
    Error500 = 1,
    /// Accepts it and never reads or answers.
    Hang = 2,
}

/// The proxy (stopped when dropped).
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream`, passing traffic.
    pub fn start(upstream: u16) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (mode, open, stop) = (Arc::new(AtomicU8::new(Fault::Pass as u8)), Arc::default(), Arc::default());
        let p = FaultProxy { port, mode, open, stop };
        let (mode, open, stop) = (p.mode.clone(), p.open.clone(), p.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
                    open.retain(|s: &TcpStream| s.peer_addr().is_ok());
                    open.push(c);
                }
                match mode.load(Ordering::Relaxed) {
                    0 => pass(conn, upstream, &open),
                    1 => {
                        std::thread::spawn(move || answer_500(conn));
                    }
                    _ => {} // Held in `open` until the mode changes.
                }
            }
        });
        Ok(p)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Behaves as `f` from now on, for new connections; every open one is closed.
    pub fn set(&self, f: Fault) {
        self.mode.store(f as u8, Ordering::Relaxed);
        for s in self.open.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set(Fault::Pass);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies both ways between `conn` and a new connection to the server.
fn pass(conn: TcpStream, upstream: u16, open: &Arc<Mutex<Vec<TcpStream>>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = conn.shutdown(Shutdown::Both);
        return;
    };
    if let Ok(s) = server.try_clone() {
        open.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }
    for (mut from, mut to) in [(conn.try_clone(), server.try_clone()), (server.try_clone(), conn.try_clone())]
        .into_iter()
        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
    {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

/// Reads one request (head and `Content-Length` body), answers 500, closes.
fn answer_500(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut (&mut conn).take(length), &mut std::io::sink());
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
                <Message>injected by the test's fault proxy</Message></Error>";
    let reply = format!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes());
    let _ = conn.shutdown(Shutdown::Both);
}
