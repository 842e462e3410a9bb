//! `/healthz` (the process serves), `/readyz` (the database answers) and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::store::{incidents, jobs, outbox};

/// How long readiness and metrics wait for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match tokio::time::timeout(DB_CHECK_TIMEOUT, app.store.ping()).await {
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
    let pool = app.store.pool();
    if let Ok(Ok(n)) = tokio::time::timeout(DB_CHECK_TIMEOUT, incidents::count_open(pool)).await {
        app.metrics.incidents_open.set(n);
    }
    if let Ok(Ok(n)) = tokio::time::timeout(DB_CHECK_TIMEOUT, outbox::pending_count(pool)).await {
        app.metrics.outbox_pending.set(n);
    }
    if let Ok(Ok(n)) = tokio::time::timeout(DB_CHECK_TIMEOUT, jobs::pending_count(pool)).await {
        app.metrics.jobs_pending.set(n);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}
