//! The public status page over HTTP: `GET /status` (HTML), `/status.json`,
//! `/status.rss`, `/status.atom`. No token, ever: it is built to be public
//! (`crate::web::status` decides what may show). Answers may be cached for
//! 30 seconds by browsers and shared caches; a database that does not answer
//! gets 503 with `Retry-After`, never a stale "all systems operational".
//!
//! [`router`] is the same pages alone, for `status.listen`: a listener that
//! can be published while the rest of Klaxon stays internal.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::web::status::{self, StatusView};

/// What the page may load: nothing but itself (inline styles, inline SVG).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn load(app: &App) -> Result<Arc<StatusView>, Response> {
    let ctx = &app.ctx;
    let now = ctx.clock.now();
    // Read after loading the count: a write committed meanwhile makes the
    // next request read again.
    let commits = ctx.changes.count();
    app.status_page
        .get(
            Some(commits),
            now,
            status::view(ctx.store.pool(), &ctx.settings.status, now),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not read the status page");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, "30"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                "the status page is unavailable for a moment; try again\n",
            )
                .into_response()
        })
}

fn answer(content_type: &'static str, body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=30"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
        .into_response()
}

/// `GET /status`.
pub async fn page(State(app): State<Arc<App>>) -> Response {
    match load(&app).await {
        Ok(v) => answer("text/html; charset=utf-8", status::html(&v)),
        Err(r) => r,
    }
}

/// `GET /status.json`.
pub async fn json(State(app): State<Arc<App>>) -> Response {
    match load(&app).await {
        Ok(v) => answer(
            "application/json",
            serde_json::to_string_pretty(&status::json(&v)).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

/// Where the feeds' links point: `status.public_url`, else the scheme
/// (`X-Forwarded-Proto` from a proxy, else http) and `Host` of the request,
/// when it is a plain host name or address.
fn base(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.ctx.settings.status.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// `GET /status.rss`.
pub async fn rss(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match load(&app).await {
        Ok(v) => answer(
            "application/rss+xml; charset=utf-8",
            status::rss(&v, &base(&app, &headers)),
        ),
        Err(r) => r,
    }
}

/// `GET /status.atom`.
pub async fn atom(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match load(&app).await {
        Ok(v) => answer(
            "application/atom+xml; charset=utf-8",
            status::atom(&v, &base(&app, &headers)),
        ),
        Err(r) => r,
    }
}

/// The status page alone (for `status.listen`): `/` and `/status` are the
/// page, plus the JSON and the feeds; everything else is 404.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status", get(page))
        .route("/status/", get(page))
        .route("/status.json", get(json))
        .route("/status.rss", get(rss))
        .route("/status.atom", get(atom))
        .route("/healthz", get(super::health::healthz))
        .with_state(app)
}
