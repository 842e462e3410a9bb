//! `/healthz` (the process serves), `/readyz` (the database answers) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
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

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match tokio::time::timeout(DB_CHECK_TIMEOUT, app.ctx.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database did not answer in time",
        )
            .into_response(),
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
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
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
        .into_response()
}
