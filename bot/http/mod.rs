//! The HTTP surface: Slack's endpoints, alert webhooks,
//! health, readiness, metrics, and the team's pages behind a token.
//!
//! Every request gets a span (method, route, and the incident ref once a handler
//! knows it) and is counted in `http_requests_total` and
//! `http_request_duration_seconds`. Bodies over `http.max_body_bytes` get 413
//! before any handler runs.

pub mod alerts;
pub mod health;
pub mod history;
pub mod signature;
pub mod slack;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::app::App;
use crate::telemetry::HttpLabels;

/// The whole router, with its state.
pub fn router(app: Arc<App>) -> Router {
    let settings = &app.ctx.settings;
    let max_body = settings.http.max_body_bytes;
    let max_alert_body = settings.alerts.max_body_bytes;
    let request_timeout = settings.http.request_timeout;
    let max_concurrent_requests = settings.http.max_concurrent_requests;
    Router::new()
        .route(
            "/alerts/{sender}",
            post(alerts::receive).layer(DefaultBodyLimit::max(max_alert_body)),
        )
        // A trailing slash is the same webhook (a URL pasted with one must not
        // lose notifications for good: Alertmanager never retries a 404).
        .route(
            "/alerts/{sender}/",
            post(alerts::receive).layer(DefaultBodyLimit::max(max_alert_body)),
        )
        .route("/heartbeats/{name}", post(alerts::heartbeat))
        .route("/heartbeats/{name}/", post(alerts::heartbeat))
        .route("/slack/commands", post(slack::commands))
        .route("/slack/interactions", post(slack::interactions))
        .route("/slack/events", post(slack::events))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/incidents/{reference}/postmortem.md",
            get(history::postmortem),
        )
        .route("/incidents", get(history::list))
        .route("/incidents/", get(history::list))
        .route("/incidents/login", post(history::login))
        .route("/incidents/{reference}", get(history::incident))
        .route("/status", get(status::page))
        .route("/status/", get(status::page))
        .route("/status.json", get(status::json))
        .route("/status.rss", get(status::rss))
        .route("/status.atom", get(status::atom))
        .fallback(alerts::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        // A request that takes too long (a slow body, a stuck database) gets 408.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // Past the concurrency bound, answer 503 at once rather than queue without limit.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    (StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry shortly").into_response()
                }))
                .load_shed()
                // One semaphore for the whole server (a plain concurrency limit would be per route).
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    max_concurrent_requests,
                )),
        )
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// Whether `headers` carry `Authorization: Bearer <expected>`, compared in
/// constant time.
pub fn bearer_matches(headers: &axum::http::HeaderMap, expected: &secrecy::SecretString) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    // The scheme is case-insensitive (RFC 9110, "Authentication Scheme").
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .and(v.get(7..))
        })
        .unwrap_or_default();
    let expected = expected.expose_secret().as_bytes();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected))
}

/// One span per request, and the request metrics.
async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // Labels come from closed sets (the router's own paths, the standard
    // methods), so no request can create a new metric series.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method()).to_string();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        incident = tracing::field::Empty
    );
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let labels = HttpLabels {
        route,
        method,
        status,
    };
    let metrics = &app.ctx.metrics;
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        );
    });
    response
}

/// The method as a metric label: one of the standard methods, else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
