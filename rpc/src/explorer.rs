//! The explorer: one page at `/` of the RPC address, embedded in the binary, that watches
//! the chain through the node's own JSON-RPC and WebSocket (no CDN, fonts or other hosts:
//! it works offline, and its Content-Security-Policy forbids anything else).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("explorer/index.html");
const APP_JS: &str = include_str!("explorer/app.js");
const STYLE_CSS: &str = include_str!("explorer/style.css");

/// Only this origin, for scripts, styles, fetches and the WebSocket.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /`: the page.
pub(crate) async fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /explorer/{file}`: its script and style sheet.
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => asset(STYLE_CSS, "text/css; charset=utf-8"),
        _ => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
