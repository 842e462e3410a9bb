//! The team's pages over HTTP, behind `KLAXON_HISTORY_TOKEN`:
//! `GET /incidents/INC-n/postmortem.md`, the postmortem draft rendered from
//! the record as it is now.
//!
//! Without a configured token these pages do not exist (404): an incident's
//! record names people and systems and must not be public by accident. A
//! missing or wrong `Authorization: Bearer …` gets 401 (compared in constant
//! time) and is logged.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::incident::IncidentRef;
use crate::store::incidents;
use crate::usecases::postmortem;

/// `GET /incidents/{ref}/postmortem.md`.
pub async fn postmortem(
    State(app): State<Arc<App>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(expected) = &app.ctx.settings.history_token else {
        return (
            StatusCode::NOT_FOUND,
            "not found: set KLAXON_HISTORY_TOKEN to serve postmortems over HTTP\n",
        )
            .into_response();
    };
    if !super::bearer_matches(&headers, expected) {
        tracing::warn!("refused a postmortem download: missing or wrong bearer token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized: send Authorization: Bearer <KLAXON_HISTORY_TOKEN>\n",
        )
            .into_response();
    }
    let Ok(r) = reference.parse::<IncidentRef>() else {
        return (StatusCode::NOT_FOUND, "not found: refs look like INC-12\n").into_response();
    };
    tracing::Span::current().record("incident", tracing::field::display(r));
    let ctx = &app.ctx;
    let rendered = async {
        let mut tx = ctx.begin().await?;
        let Some(incident) = incidents::get(&mut *tx, r).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let doc = postmortem::document(ctx, &mut tx, &incident, ctx.clock.now()).await?;
        tx.rollback().await?;
        Ok::<_, crate::usecases::Error>(Some(doc))
    }
    .await;
    match rendered {
        Ok(Some(doc)) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", postmortem::file_name(r)),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            doc,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("{r} does not exist\n")).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not render a postmortem");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer; try again\n",
            )
                .into_response()
        }
    }
}
