//! Connections are bounded, so no number of clients can take the host's file descriptors,
//! threads or memory from recording (docs/api.md, "Connections"):
//!
//! - a cap on open connections, and a smaller one per client address; a connection over
//!   either is closed as soon as it is accepted (so it holds a descriptor for microseconds);
//! - a header-read timeout, which also closes a keep-alive connection idle between requests
//!   (hyper starts it whenever the connection waits for a request) and a slowloris that sends
//!   its headers a byte at a time;
//! - a write timeout: a client that reads nothing for that long is dropped, whatever the
//!   response (a media download, an event stream);
//! - the caps are sized from the open-file limit, which `main` raises to the hard limit: at
//!   most half of it goes to clients, the rest stays for recording.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which the host does not terminate.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Raises the soft limit of open files to the hard one (at start, before anything is
/// opened): an export opens every segment of its range before copying (a day of 30 s segments
/// is 2 880 files), and the host serves many cameras and clients at once. The usual default
/// soft limit (1 024) is a relic; [`ConnLimits::default`] then gives clients half of it.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// How many connections, and for how long.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Open connections at once.
    pub max: usize,
    /// Open connections at once from one client address.
    pub per_client: usize,
    /// Time to send a request's headers, and to start the next request on a kept-alive
    /// connection.
    pub header_timeout: Duration,
    /// Time a write to the client may stay blocked.
    pub write_timeout: Duration,
}

impl Default for ConnLimits {
    /// Sized from the open-file limit (half of it for clients, at most 4096), 10 s for
    /// headers, 60 s for a stalled write.
    fn default() -> Self {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024);
        let max = usize::try_from(nofile / 2).unwrap_or(4096).clamp(32, 4096);
        ConnLimits {
            max,
            per_client: (max / 4).max(16),
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// Open connections per client address; a slot is given back when dropped.
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Slot {
    of: PerClient,
    ip: IpAddr,
}

impl PerClient {
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { of: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.of.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Logs a refusal at most every 10 s (a flood must not flood the log too).
struct Quiet(Option<Instant>, u64);

impl Quiet {
    fn refused(&mut self, why: &str) {
        self.1 += 1;
        if self.0.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(refused = self.1, "HTTP connections refused: {why}");
            self.0 = Some(Instant::now());
            self.1 = 0;
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then stops
/// accepting and waits for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max));
    let per_client = PerClient::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut quiet = Quiet(None, 0);
    tokio::pin!(shutdown);
    tracing::debug!(?limits, "serving HTTP");
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept: wait a
                    // moment instead of spinning, and go on.
                    quiet.refused(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            quiet.refused(&format!("{} connections are open, the most this host serves", limits.max));
            continue;
        };
        let Some(slot) = per_client.take(peer.ip(), limits.per_client) else {
            quiet.refused(&format!(
                "{} has {} connections open, the most one client gets",
                peer.ip(),
                limits.per_client
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut io = tokio_io_timeout::TimeoutStream::new(stream);
        io.set_write_timeout(Some(limits.write_timeout));
        let io = TokioIo::new(Box::pin(io));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, TowerToHyperService::new(router.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A timeout or a client gone is the end of the connection, not an error of ours.
            let _ = conn.await;
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_slots_are_counted_and_given_back() {
        let p = PerClient::default();
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = p.take(ip, 2).expect("first");
        let _b = p.take(ip, 2).expect("second");
        assert!(p.take(ip, 2).is_none(), "over the cap");
        assert!(p.take("::1".parse().expect("ip"), 2).is_some(), "another client");
        drop(a);
        assert!(p.take(ip, 2).is_some(), "a slot came back");
    }
}
