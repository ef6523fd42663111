//! The web UI (`host/ui/`): a page, a script and a style sheet compiled into the binary, so the
//! host serves its UI at `/` with nothing to install beside it. The UI talks to the same API
//! as everyone else; it holds no business rules.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /`: the UI's page.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /ui/{file}`: the UI's script and style sheet.
pub async fn file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset(APP, "text/javascript; charset=utf-8"),
        "style.css" => asset(STYLE, "text/css; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "no such UI file").into_response(),
    }
}
