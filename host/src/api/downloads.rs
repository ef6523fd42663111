//! Memory held by downloads of archive ranges (`content.mp4`) is bounded. A plan holds its
//! file's whole header and a list of byte ranges for as long as the download lasts (a 24-hour
//! range is tens of MB, and planning it briefly several times that), so a few hundred clients
//! asking for long ranges could otherwise take the host's memory. Two plans are built at
//! once; each download then holds a share of a fixed budget (its plan's size plus the chunk
//! in flight) until its body is dropped. A request that cannot get its share within a few
//! seconds is answered `503 ServerBusy` with `Retry-After`, never queued without bound.

use super::error::ApiError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for its share before the 503.
const WAIT: Duration = Duration::from_secs(5);

/// Plans built at once (each uses a core while it is built).
const PLANNING: usize = 2;

/// The budget of one host.
#[derive(Clone)]
pub struct Downloads {
    planning: Arc<Semaphore>,
    /// In KiB.
    held: Arc<Semaphore>,
    budget_kib: u32,
}

/// What a download holds until it ends.
pub struct Share {
    _permit: OwnedSemaphorePermit,
}

impl Downloads {
    /// A budget of `mib` MiB for the plans of downloads in progress.
    pub fn new(mib: u32) -> Self {
        let budget_kib = mib.max(1).saturating_mul(1024);
        Downloads {
            planning: Arc::new(Semaphore::new(PLANNING)),
            held: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
        }
    }

    /// Waits for a turn to build a plan.
    pub async fn planning(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match tokio::time::timeout(WAIT, self.planning.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Busy("plans are being built for other downloads")),
        }
    }

    /// Waits for `bytes` of the budget (at least the chunk in flight).
    pub async fn hold(&self, bytes: usize, chunk: usize) -> Result<Share, Busy> {
        let kib = u32::try_from((bytes + chunk) / 1024 + 1).unwrap_or(u32::MAX).min(self.budget_kib);
        match tokio::time::timeout(WAIT, self.held.clone().acquire_many_owned(kib)).await {
            Ok(Ok(p)) => Ok(Share { _permit: p }),
            _ => Err(Busy("the memory for downloads in progress is in use (see --download-memory)")),
        }
    }
}

/// The host is serving as many downloads as its budget allows.
#[derive(Debug)]
pub struct Busy(&'static str);

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy",
            format!("too many downloads at once: {}; retry in a few seconds", self.0),
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shares_are_bounded_and_given_back() {
        let d = Downloads::new(1);
        let a = d.hold(300 << 10, 256 << 10).await.expect("first");
        let b = d.hold(100 << 10, 256 << 10).await.expect("second");
        assert!(d.hold(100 << 10, 256 << 10).await.is_err(), "over the budget: busy");
        drop(a);
        assert!(d.hold(100 << 10, 256 << 10).await.is_ok(), "a share came back");
        drop(b);
        // A plan larger than the whole budget still gets served, alone.
        assert!(d.hold(10 << 20, 0).await.is_ok());
    }
}
