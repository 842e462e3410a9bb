//! `/alerts/alertmanager` and `/alerts/grafana`: alert webhooks.
//!
//! When an alert token is configured, a request without `Authorization: Bearer
//! <token>` (compared in constant time) gets 401. A payload that does not parse
//! gets 400 with the reason and changes nothing. When the database does not
//! answer the webhook gets 503, so Alertmanager retries; the notification's
//! effects are one transaction, so nothing is half-written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::alerts::{AlertBatch, PayloadError, ingest, parse_alertmanager, parse_grafana};
use crate::app::App;
use crate::incident::service::ServiceError;
use crate::telemetry::AlertLabels;

pub async fn alertmanager(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(&app, &headers, &body, parse_alertmanager).await
}

pub async fn grafana(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&app, &headers, &body, parse_grafana).await
}

/// Whether the request carries the configured bearer token (or none is configured).
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(expected) = &app.settings.alert_token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = expected.expose_secret().as_bytes();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected))
}

async fn receive(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    parse: fn(&[u8]) -> Result<AlertBatch, PayloadError>,
) -> Response {
    if !authorized(app, headers) {
        tracing::warn!("refused an alert webhook: missing or wrong bearer token");
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    }
    let batch = match parse(body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    for alert in &batch.alerts {
        app.metrics
            .alerts_received
            .get_or_create(&AlertLabels {
                source: batch.source.as_str().into(),
                status: alert.status.as_str().into(),
            })
            .inc();
    }
    match ingest::ingest(&app.service, &batch).await {
        Ok(done) if done.duplicate => {
            app.metrics.notifications_deduplicated.inc();
            Json(json!({"status": "duplicate"})).into_response()
        }
        Ok(done) => {
            if let Some(r) = done.incident {
                tracing::Span::current().record("incident", tracing::field::display(r));
            }
            Json(json!({
                "status": "ok",
                "incident": done.incident.map(|r| r.to_string()),
                "opened": done.opened,
                "folded_into_storm": done.folded,
                "resolved": done.resolved,
            }))
            .into_response()
        }
        Err(ServiceError::Store(e)) => {
            tracing::error!(error = %e, "alert not stored; the sender will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable; retry later",
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "alert not stored");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}
