//! `/alerts/<sender>`: alert webhooks (`/alerts/alertmanager`, `/alerts/grafana`;
//! every sender in `crate::alerts::payload::SENDERS`).
//!
//! When an alert token is configured, a request without `Authorization: Bearer
//! <token>` (compared in constant time) gets 401. A payload that does not parse
//! gets 400 with the reason and changes nothing. When the database does not
//! answer the webhook gets 503, so Alertmanager retries; the notification's
//! effects are one transaction, so nothing is half-written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::alerts::payload;
use crate::app::App;
use crate::telemetry::AlertLabels;
use crate::usecases::{self, alerts::ingest};

/// Whether the request carries the configured bearer token (or none is configured).
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(expected) = &app.ctx.settings.alert_token else {
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

/// A notification from the sender named by the path.
pub async fn receive(
    State(app): State<Arc<App>>,
    Path(sender): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sender) = payload::sender(&sender) else {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no alert sender posts to /alerts/{}; Klaxon accepts {}",
                sender.chars().take(64).collect::<String>(),
                payload::SENDERS
                    .iter()
                    .map(|s| format!("/alerts/{}", s.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
            .into_response();
    };
    if !authorized(&app, &headers) {
        tracing::warn!("refused an alert webhook: missing or wrong bearer token");
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    }
    let batch = match (sender.parse)(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let ctx = &app.ctx;
    for alert in &batch.alerts {
        ctx.metrics
            .alerts_received
            .get_or_create(&AlertLabels {
                source: batch.source.as_str().into(),
                status: alert.status.as_str().into(),
            })
            .inc();
    }
    match ingest(ctx, &batch).await {
        Ok(done) if done.duplicate => {
            ctx.metrics.notifications_deduplicated.inc();
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
        Err(usecases::Error::Store(e)) => {
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
