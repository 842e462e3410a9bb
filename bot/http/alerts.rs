//! `/alerts/<sender>`: alert webhooks (`/alerts/alertmanager`, `/alerts/grafana`;
//! every sender in `crate::alerts::payload::SENDERS`).
//!
//! Alertmanager never retries a 4xx ("unrecoverable"), so a well-formed
//! notification is never refused: whatever its size, number of alerts or value
//! lengths, it gets 2xx and is stored whole. What remains refused: a request
//! without the configured bearer token (401, compared in constant time), a
//! body that does not parse as the sender's format (400 with the reason), a
//! body over `alerts.max_body_bytes` (413), an unknown sender or a misspelt
//! webhook path under `/alert…` (404; a trailing slash is accepted). Each
//! refusal is logged at warn with its reason and counted in
//! `klaxon_alerts_rejected_total{source,reason}`. When the database does not
//! answer the webhook gets 503, so the sender retries; the notification's
//! effects are one transaction, so nothing is half-written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::alerts::payload;
use crate::app::App;
use crate::telemetry::{AlertLabels, RejectLabels};
use crate::usecases::{self, alerts::ingest};

/// Whether the request carries the configured bearer token (or none is configured).
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    match &app.ctx.settings.alert_token {
        Some(expected) => super::bearer_matches(headers, expected),
        None => true,
    }
}

/// Refuses a request: logs why at warn, counts it, answers `status`.
fn refuse(app: &App, source: &str, reason: &str, status: StatusCode, text: String) -> Response {
    tracing::warn!(source, reason, status = status.as_u16(), detail = %text, "refused an alert webhook request");
    app.ctx
        .metrics
        .alerts_rejected
        .get_or_create(&RejectLabels {
            source: source.into(),
            reason: reason.into(),
        })
        .inc();
    (status, text).into_response()
}

/// Any path no route serves. A POST under `/alert…` is a sender with a
/// misspelt webhook URL (`/alerts`, `/alert/alertmanager`, `/alerts//grafana`):
/// refused like an unknown sender, so it is logged, counted and alerted on
/// (`KlaxonAlertsRejected`) instead of lost quietly.
pub async fn not_found(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if method == Method::POST && path.starts_with("/alert") {
        let text = format!(
            "no alert webhook at {}; Klaxon accepts {}",
            path.chars().take(80).collect::<String>(),
            webhook_paths()
        );
        return refuse(&app, "unknown", "unknown_path", StatusCode::NOT_FOUND, text);
    }
    StatusCode::NOT_FOUND.into_response()
}

/// The webhook paths, for refusals: `/alerts/alertmanager, /alerts/grafana`.
fn webhook_paths() -> String {
    payload::SENDERS
        .iter()
        .map(|s| format!("/alerts/{}", s.path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /heartbeats/{name}`: a beat from a cron job or a backup (the same
/// bearer token as the alert webhooks). 200 with the next deadline; 401
/// without the token; 404 for a name no `[[heartbeats]]` entry has; 503 when
/// the database does not answer (the caller should retry).
pub async fn heartbeat(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&app, &headers) {
        return refuse(
            &app,
            "heartbeat",
            "unauthorized",
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        );
    }
    match usecases::heartbeats::beat(&app.ctx, &name).await {
        Ok(Some(beat)) => Json(json!({
            "status": "ok",
            "heartbeat": name,
            "next_beat_before": beat.deadline.timestamp().to_string(),
            "resolved": beat.resolved.map(|r| r.to_string()),
        }))
        .into_response(),
        Ok(None) => {
            let known: Vec<&str> = app
                .ctx
                .settings
                .heartbeats
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            let text = format!(
                "no heartbeat is named `{}`; configured: {}",
                name.chars().take(64).collect::<String>(),
                if known.is_empty() {
                    "none (add a [[heartbeats]] table)".to_string()
                } else {
                    known.join(", ")
                }
            );
            refuse(
                &app,
                "heartbeat",
                "unknown_heartbeat",
                StatusCode::NOT_FOUND,
                text,
            )
        }
        Err(usecases::Error::Store(e)) => {
            tracing::error!(error = %e, heartbeat = %name, "beat not stored; the sender should retry");
            refuse(
                &app,
                "heartbeat",
                "database_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable; retry later".into(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, heartbeat = %name, "beat not stored");
            refuse(
                &app,
                "heartbeat",
                "failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            )
        }
    }
}

/// A notification from the sender named by the path.
pub async fn receive(
    State(app): State<Arc<App>>,
    Path(sender): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(sender) = payload::sender(&sender) else {
        let text = format!(
            "no alert sender posts to /alerts/{}; Klaxon accepts {}",
            sender.chars().take(64).collect::<String>(),
            webhook_paths()
        );
        return refuse(
            &app,
            "unknown",
            "unknown_sender",
            StatusCode::NOT_FOUND,
            text,
        );
    };
    let source = sender.source.as_str();
    if !authorized(&app, &headers) {
        return refuse(
            &app,
            source,
            "unauthorized",
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unparseable"
            };
            let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the notification is larger than alerts.max_body_bytes ({} bytes)",
                    app.ctx.settings.alerts.max_body_bytes
                )
            } else {
                e.body_text()
            };
            return refuse(&app, source, reason, status, text);
        }
    };
    let batch = match (sender.parse)(&body) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                &app,
                source,
                "unparseable",
                StatusCode::BAD_REQUEST,
                e.to_string(),
            );
        }
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
                "alerts": batch.alerts.len(),
                "stale": done.stale,
                "heartbeat": done.beat,
                "held_by_maintenance_window": done.held,
            }))
            .into_response()
        }
        Err(usecases::Error::Store(e)) => {
            tracing::error!(error = %e, "alert not stored; the sender will retry");
            refuse(
                &app,
                source,
                "database_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable; retry later".into(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "alert not stored");
            refuse(
                &app,
                source,
                "failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            )
        }
    }
}
