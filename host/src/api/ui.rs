//! The web UI (`host/ui/`): a page, its scripts (ES modules, no build step) and a style sheet
//! compiled into the binary, so the host serves its UI at `/` with nothing to install beside
//! it. The UI talks to the same API as everyone else; it holds no business rules.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../ui/index.html");
const STYLE: &str = include_str!("../../ui/style.css");
/// The scripts by name: `app.js` is the page's entry, the others its modules.
const SCRIPTS: [(&str, &str); 8] = [
    ("app.js", include_str!("../../ui/app.js")),
    ("api.js", include_str!("../../ui/api.js")),
    ("state.js", include_str!("../../ui/state.js")),
    ("timeline.js", include_str!("../../ui/timeline.js")),
    ("player.js", include_str!("../../ui/player.js")),
    ("boxes.js", include_str!("../../ui/boxes.js")),
    ("jobs.js", include_str!("../../ui/jobs.js")),
    ("pipelines.js", include_str!("../../ui/pipelines.js")),
];

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /`: the UI's page.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /ui/{file}`: the UI's scripts and style sheet.
pub async fn file(Path(file): Path<String>) -> Response {
    if file == "style.css" {
        return asset(STYLE, "text/css; charset=utf-8");
    }
    match SCRIPTS.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(body, "text/javascript; charset=utf-8"),
        None => (StatusCode::NOT_FOUND, "no such UI file").into_response(),
    }
}
