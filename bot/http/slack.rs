//! `/slack/commands`, `/slack/interactions`, `/slack/events`: Slack's HTTP
//! transport.
//!
//! Each handler verifies the signature on the raw body (401), decodes the form
//! or JSON (400 with a one-line reason) and hands the payload to
//! [`crate::inbound`], which acts on it exactly as it does for a Socket Mode
//! envelope; the [`Reply`] becomes the HTTP answer.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::signature::{self, SignatureError};
use crate::app::App;
use crate::inbound::{self, EventCallback, Interaction, Reply, SlashCommand};

/// A refusal with a status and a one-line reason.
fn refuse(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, reason.into()).into_response()
}

/// The HTTP answer for a [`Reply`].
fn answer(reply: Reply) -> Response {
    match reply {
        Reply::Answer(Some(body)) | Reply::Fault(body) => Json(body).into_response(),
        Reply::Answer(None) => StatusCode::OK.into_response(),
        Reply::Malformed(reason) => refuse(StatusCode::BAD_REQUEST, reason),
        // 503: Slack retries an event; a press shows the person an error
        // instead of seeming to work.
        Reply::Unavailable(reason) => refuse(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

/// The 401 for a request Slack did not sign, or `None` when the signature holds.
fn unsigned(app: &App, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let e = signature::verify(app.verifier.as_ref(), headers, body).err()?;
    tracing::warn!(reason = %e, "refused a Slack request");
    Some(refuse(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// The replay key of a signed request: its signature, which differs for every
/// body and timestamp (a replay within the 5-minute window repeats it).
fn replay_key(headers: &HeaderMap) -> &str {
    headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

pub async fn commands(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = unsigned(&app, &headers, &body) {
        return refusal;
    }
    let form: SlashCommand = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed slash command form: {e}"),
            );
        }
    };
    answer(inbound::command(&app, form, replay_key(&headers)).await)
}

#[derive(Debug, Deserialize)]
struct InteractionForm {
    payload: String,
}

pub async fn interactions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = unsigned(&app, &headers, &body) {
        return refusal;
    }
    let form: InteractionForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed interaction form: {e}"),
            );
        }
    };
    let interaction: Interaction = match serde_json::from_str(&form.payload) {
        Ok(i) => i,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed interaction payload: {e}"),
            );
        }
    };
    answer(inbound::interaction(&app, interaction, replay_key(&headers)).await)
}

/// The one envelope only HTTP sees: Slack's check of the Request URL.
#[derive(Debug, Deserialize)]
struct UrlVerification {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
}

/// The Events API over HTTP: answers `url_verification` (Slack's check when the
/// Request URL is saved); everything else is an event for [`inbound::event`].
pub async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let challenge = serde_json::from_slice::<UrlVerification>(&body)
        .ok()
        .filter(|e| e.kind == "url_verification");
    if let Err(e) = signature::verify(app.verifier.as_ref(), &headers, &body) {
        // Slack signs the challenge it sends when the Request URL is saved, so a
        // Klaxon that cannot verify it fails that step: say why, plainly.
        if challenge.is_some() {
            let advice = match e {
                SignatureError::Mismatch => {
                    "set KLAXON_SLACK_SIGNING_SECRET to this app's Signing Secret (Basic Information → App Credentials) and restart Klaxon; if it is right, something between Slack and Klaxon changes the body"
                }
                SignatureError::Stale => {
                    "this machine's clock is more than 5 minutes off Slack's: synchronise it (NTP)"
                }
                SignatureError::Missing => {
                    "a proxy in front of Klaxon drops Slack's X-Slack-Signature and X-Slack-Request-Timestamp headers"
                }
                SignatureError::NotConfigured => {
                    "set KLAXON_SLACK_SIGNING_SECRET and restart Klaxon"
                }
            };
            tracing::error!(reason = %e, "refused Slack's URL verification: {advice}; then press Retry in Event Subscriptions");
        } else {
            tracing::warn!(reason = %e, "refused a Slack request");
        }
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    // The challenge needs no database.
    if let Some(challenge) = challenge {
        return match challenge.challenge {
            Some(c) => Json(json!({"challenge": c})).into_response(),
            None => refuse(
                StatusCode::BAD_REQUEST,
                "url_verification without challenge",
            ),
        };
    }
    if let Some(reply) = inbound::replayed(&app, replay_key(&headers)).await {
        return answer(reply);
    }
    let callback: EventCallback = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed event JSON: {e}"),
            );
        }
    };
    answer(inbound::event(&app, callback).await)
}
