//! The HTTP API: AVA's direct methods (`POST /api/methods/{name}`), the same resources as REST,
//! videos and their media, Server-Sent Events, metrics and health.
//!
//! Thin by design: parse, authorise, call the pipeline runtime or the archive, shape AVA's
//! replies. Every failure is an OData error body (see `error`); no input reaches a panic.

pub mod auth;
mod downloads;
pub mod entities;
pub mod error;
mod events;
pub mod guard;
mod inferences;
mod inputs;
mod jobs;
mod methods;
mod playback;
mod rest;
pub mod server;
mod transcoded;
mod ui;
mod videos;

use crate::pipeline::live::Runtime;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use serde_json::Value;
use std::sync::Arc;

pub use downloads::Downloads;

/// Largest request body accepted (a topology is a few KiB; AVA's direct-method limit was 128 KiB).
pub const MAX_BODY: usize = crate::topology::MAX_DOCUMENT_LEN;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The live-pipeline runtime (and through it the archive and events).
    pub runtime: Arc<Runtime>,
    /// The API token required on `/api` routes, when the host listens beyond loopback, and
    /// content tokens derived from it (see `auth`).
    pub auth: Option<auth::Auth>,
    /// The names the host answers to besides its addresses and `localhost` (see `guard`).
    pub allowed_hosts: guard::AllowedHosts,
    /// The memory budget of downloads in progress (see `downloads`).
    pub downloads: downloads::Downloads,
    /// Transcoded playback segments and the slots that make them (`pipeline::variant`).
    pub variants: Arc<crate::pipeline::variant::cache::VariantCache>,
    /// The remote tier's uploader, when there is one (for `/metrics`).
    pub remote: Option<Arc<crate::remote::upload::Status>>,
    /// What reading from the remote tier has cost, when there is one (for `/metrics`).
    pub remote_reads: Option<Arc<crate::remote::read::ReadStats>>,
    /// The read-only gateway's bucket passes, when this host is one (for `/metrics`).
    pub gateway: Option<Arc<crate::remote::gateway::Status>>,
    /// The MQTT link's counters, when there is one (for `/metrics`).
    pub mqtt: Option<Arc<crate::mqtt::Stats>>,
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/methods/{method}", post(methods::call))
        .route("/pipelineTopologies", get(rest::topology_list))
        .route(
            "/pipelineTopologies/{name}",
            get(rest::topology_get).put(rest::topology_put).delete(rest::topology_delete),
        )
        .route("/livePipelines", get(rest::pipeline_list))
        .route("/livePipelines/{name}", get(rest::pipeline_get).put(rest::pipeline_put).delete(rest::pipeline_delete))
        .route("/livePipelines/{name}/activate", post(rest::pipeline_activate))
        .route("/livePipelines/{name}/deactivate", post(rest::pipeline_deactivate))
        .route("/inputs/{name}", post(inputs::post))
        .route("/pipelineJobs", get(jobs::list))
        .route("/pipelineJobs/{name}", get(jobs::get).put(jobs::put).delete(jobs::delete))
        .route("/pipelineJobs/{name}/cancel", post(jobs::cancel))
        .route("/videos", get(videos::list))
        .route("/videos/{name}", get(videos::get).patch(videos::patch).delete(videos::delete))
        .route("/videos/{name}/listContentToken", post(auth::list_content_token))
        .route("/videos/{name}/availableMedia", get(videos::available_media))
        .route("/videos/{name}/content.ism/availableMedia", get(videos::available_media))
        .route("/videos/{name}/content.mp4", get(videos::content_mp4))
        .route("/videos/{name}/inferences", get(inferences::list))
        .route("/videos/{name}/inferences/activity", get(inferences::activity))
        .route("/videos/{name}/manifest.m3u8", get(playback::manifest))
        .route("/videos/{name}/media.m3u8", get(playback::media))
        .route("/videos/{name}/content.ism/{manifest}", get(playback::ava_manifest))
        .route("/videos/{name}/segments/{file}", get(playback::segment))
        .route("/videos/{name}/content.ism/segments/{file}", get(playback::segment))
        .route("/videos/{name}/variants/{file}/{part}", get(playback::variant_segment))
        .route("/videos/{name}/content.ism/variants/{file}/{part}", get(playback::variant_segment))
        .route("/videos/{name}/images/latest/{file}", get(playback::latest_image))
        .route("/videos/{name}/images/at.jpg", get(playback::image_at))
        .route("/events", get(events::sse))
        .route("/status", get(status))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::authorise));
    // Metrics name pipelines and topologies: behind the token too (Prometheus can send one).
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authorise));
    Router::new()
        .nest("/api", api)
        .merge(metrics)
        .route("/healthz", get(healthz))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Outermost: a request from a hostile page is refused before anything else reads it.
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state)
}

/// `GET /healthz`: up, and whether the API needs a token (the web UI asks for one then).
async fn healthz(axum::extract::State(st): axum::extract::State<ApiState>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok", "tokenRequired": st.auth.is_some()}))
}

/// `GET /api/status`: what the host runs and the topologies folder's files in error.
async fn status(axum::extract::State(st): axum::extract::State<ApiState>) -> axum::Json<serde_json::Value> {
    axum::Json(st.runtime.status())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource; see README for the API's routes")
}

/// Appends metrics in Prometheus' text format: (name, type, help, value) each.
fn push_metrics(text: &mut String, rows: &[(&str, &str, &str, f64)]) {
    for (name, kind, help, value) in rows {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
}

/// A counter's value, as a metric's.
fn load(a: &std::sync::atomic::AtomicU64) -> f64 {
    a.load(std::sync::atomic::Ordering::Relaxed) as f64
}

async fn metrics(State(st): State<ApiState>) -> Response {
    let mut text = st.runtime.metrics_text();
    let v = st.variants.stats();
    push_metrics(
        &mut text,
        &[
            ("openva_variant_segments_made_total", "counter", "Playback segments transcoded.", v.made as f64),
            (
                "openva_variant_cache_hits_total",
                "counter",
                "Transcoded segments served without transcoding.",
                v.hits as f64,
            ),
            (
                "openva_variant_refused_total",
                "counter",
                "Transcode requests refused (503) with every slot busy.",
                v.refused as f64,
            ),
            ("openva_variant_cache_bytes", "gauge", "Bytes of transcoded segments on disk.", v.bytes as f64),
        ],
    );
    if let Some(m) = &st.mqtt {
        push_metrics(
            &mut text,
            &[
                (
                    "openva_mqtt_delivered_total",
                    "counter",
                    "Messages the MQTT broker acknowledged.",
                    load(&m.delivered),
                ),
                (
                    "openva_mqtt_dropped_total",
                    "counter",
                    "Events dropped, oldest first, while the MQTT queue was full.",
                    load(&m.dropped),
                ),
                ("openva_mqtt_waiting", "gauge", "Messages not yet acknowledged by the broker.", load(&m.waiting)),
                ("openva_mqtt_connected", "gauge", "1 while connected to the MQTT broker.", load(&m.connected)),
            ],
        );
    }
    if let Some(r) = &st.remote {
        let archive = st.runtime.archive().clone();
        let backlog = tokio::task::spawn_blocking(move || archive.remote_backlog()).await.ok().and_then(Result::ok);
        let backlog = backlog.unwrap_or_default();
        let lag = backlog.oldest_end.map_or(0.0, |t| ((crate::time::Time90k::now().0 - t.0).max(0)) as f64 / 90_000.0);
        push_metrics(
            &mut text,
            &[
                (
                    "openva_remote_uploads_total",
                    "counter",
                    "Segments copied to the remote tier and confirmed.",
                    load(&r.uploaded),
                ),
                ("openva_remote_uploaded_bytes_total", "counter", "Bytes of those segments.", load(&r.uploaded_bytes)),
                (
                    "openva_remote_upload_failures_total",
                    "counter",
                    "Failed upload attempts (each retried).",
                    load(&r.failures),
                ),
                (
                    "openva_remote_deletes_total",
                    "counter",
                    "Remote copies deleted because their segments went.",
                    load(&r.deleted),
                ),
                ("openva_remote_backlog_segments", "gauge", "Closed segments not yet copied.", backlog.segments as f64),
                ("openva_remote_backlog_bytes", "gauge", "Bytes of those segments.", backlog.bytes as f64),
                (
                    "openva_remote_upload_lag_seconds",
                    "gauge",
                    "Age of the oldest segment not yet copied (0: none).",
                    lag,
                ),
                (
                    "openva_remote_evicted_total",
                    "counter",
                    "Local copies evicted to keep local caches under their caps (remote copies confirmed).",
                    load(&r.evicted),
                ),
                (
                    "openva_remote_evicted_bytes_total",
                    "counter",
                    "Bytes of those local copies.",
                    load(&r.evicted_bytes),
                ),
                (
                    "openva_remote_manifests_total",
                    "counter",
                    "Hour manifests written to the remote tier (or deleted, their hours emptied).",
                    load(&r.manifests),
                ),
                (
                    "openva_remote_prefix_taken",
                    "gauge",
                    "1 while another host owns the remote prefix (nothing is uploaded).",
                    f64::from(u8::from(r.prefix_taken.load(std::sync::atomic::Ordering::Relaxed))),
                ),
            ],
        );
    }
    if let Some(g) = &st.gateway {
        push_metrics(
            &mut text,
            &[
                ("openva_remote_sync_passes_total", "counter", "Passes over the bucket completed.", load(&g.passes)),
                (
                    "openva_remote_sync_failures_total",
                    "counter",
                    "Passes over the bucket that failed.",
                    load(&g.failures),
                ),
                (
                    "openva_remote_sync_added_total",
                    "counter",
                    "Segments taken from the bucket's manifests.",
                    load(&g.added),
                ),
                (
                    "openva_remote_sync_removed_total",
                    "counter",
                    "Segments dropped, gone from the bucket.",
                    load(&g.removed),
                ),
                ("openva_remote_sync_videos", "gauge", "Videos the bucket holds.", load(&g.videos)),
                (
                    "openva_remote_sync_problems",
                    "gauge",
                    "Objects the last pass left out (foreign or broken).",
                    load(&g.problems),
                ),
            ],
        );
    }
    if let Some(r) = &st.remote_reads {
        push_metrics(
            &mut text,
            &[
                ("openva_remote_read_gets_total", "counter", "Ranged GETs of remote-only segments.", load(&r.gets)),
                ("openva_remote_read_bytes_total", "counter", "Bytes those GETs fetched.", load(&r.bytes)),
                (
                    "openva_remote_read_cache_hits_total",
                    "counter",
                    "Chunks read from the remote read cache.",
                    load(&r.hits),
                ),
                ("openva_remote_read_failures_total", "counter", "Remote reads that failed.", load(&r.failures)),
            ],
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Parses a JSON request body, turning every failure into a clear 4xx.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("request body is larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::bad_request("InvalidRequest", format!("cannot read the request body: {r}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("InvalidJson", "the request body is empty; a JSON object is expected"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("InvalidJson", format!("the request body is not valid JSON: {e}")))
}

/// The base URL clients reached us at, for absolute URLs in replies.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// Serves the API on `listener` under `limits` until `shutdown` resolves (see `server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: server::ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router(state), limits, shutdown).await
}
