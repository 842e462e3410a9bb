//! `/healthz` (the process serves), `/readyz` (the database answers, and what
//! Klaxon knows of Slack) and `/metrics` (OpenMetrics for Prometheus, the
//! classic text format for everyone else).

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::jobs::Lane;
use crate::store::{incidents, jobs, outbox};
use crate::telemetry::LaneLabels;

/// How long readiness and metrics wait for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 `{"status": "ready", …}` while the database answers and is migrated,
/// 503 otherwise; either way the detail says what Klaxon knows of its database
/// and of Slack (credentials, channels it cannot post in).
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let ctx = &app.ctx;
    let database = if !app.database_ready.load(Ordering::Acquire) {
        Err("waiting for the database (it does not answer yet, or is being migrated)".to_string())
    } else {
        match tokio::time::timeout(DB_CHECK_TIMEOUT, ctx.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: database error");
                Err("database unavailable".to_string())
            }
            Err(_) => Err("database did not answer in time".to_string()),
        }
    };
    ctx.metrics.database_up.set(i64::from(database.is_ok()));
    let (status, word, database) = match database {
        Ok(()) => (StatusCode::OK, "ready", "ok".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, "not ready", why),
    };
    let mut body = crate::health::detail(ctx, &database);
    if let Some(o) = body.as_object_mut() {
        o.insert("status".into(), serde_json::json!(word));
    }
    (status, Json(body)).into_response()
}

/// The metrics: OpenMetrics when the scraper asks for it (Prometheus does), the
/// classic Prometheus text format otherwise (`promtool check metrics`, curl).
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    // The database gauges are read now; if the database is down they keep their last value.
    let metrics = &app.ctx.metrics;
    let pool = app.ctx.store.pool();
    if let Ok(Ok(n)) = tokio::time::timeout(DB_CHECK_TIMEOUT, incidents::count_open(pool)).await {
        metrics.incidents_open.set(n);
    }
    if let Ok(Ok(n)) = tokio::time::timeout(DB_CHECK_TIMEOUT, outbox::pending_count(pool)).await {
        metrics.outbox_pending.set(n);
    }
    if let Ok(Ok(by_lane)) =
        tokio::time::timeout(DB_CHECK_TIMEOUT, jobs::pending_by_lane(pool)).await
    {
        for lane in Lane::ALL {
            let n = by_lane
                .iter()
                .find(|(l, _)| l == lane.as_str())
                .map_or(0, |(_, n)| *n);
            metrics
                .jobs_pending
                .get_or_create(&LaneLabels {
                    lane: lane.as_str().into(),
                })
                .set(n);
        }
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.encode_classic(),
        )
            .into_response()
    }
}
