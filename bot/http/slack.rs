//! `/slack/commands`, `/slack/interactions`, `/slack/events`.
//!
//! Each handler verifies the signature on the raw body (401), parses the form or
//! JSON into typed values (400 with a one-line reason), asks the incident service
//! to act (one transaction, messages enqueued), and answers at once. A person's
//! mistake is a helpful ephemeral reply with HTTP 200, never an error page.

use std::collections::HashMap;
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
use crate::blocks;
use crate::incident::command;
use crate::incident::{ChannelId, IncidentRef, SlackUserId, UserText};
use crate::store::incidents::{self, Resolution};
use crate::store::pages;
use crate::usecases::{self, Actor, Answer, actions, incidents as cases};

/// A refusal with a status and a one-line reason.
fn refuse(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, reason.into()).into_response()
}

/// The 401 for a request Slack did not sign, or `None` when the signature holds.
fn unsigned(app: &App, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let e = signature::verify(app.verifier.as_ref(), headers, body).err()?;
    tracing::warn!(reason = %e, "refused a Slack request");
    Some(refuse(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// `Some` answer when the same signed request came before (a replay within the
/// 5-minute window): it is answered and does nothing.
async fn replayed(app: &App, headers: &HeaderMap) -> Option<Response> {
    let signature = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ctx = &app.ctx;
    match pages::first_request(ctx.store.pool(), signature, ctx.clock.now()).await {
        Ok(true) => None,
        Ok(false) => {
            tracing::warn!("ignored a replayed Slack request");
            Some(ephemeral("This request was already handled."))
        }
        Err(e) => {
            // 503: Slack retries an event; a press shows the person an error
            // instead of seeming to work.
            tracing::error!(error = %e, "cannot record a Slack request (database unavailable); answered 503 so Slack retries");
            Some(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable; retry later",
            ))
        }
    }
}

/// Signed and not a replay: `None` means handle it.
async fn unverified(app: &App, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    match unsigned(app, headers, body) {
        Some(refusal) => Some(refusal),
        None => replayed(app, headers).await,
    }
}

fn ephemeral(text: &str) -> Response {
    Json(json!({"response_type": "ephemeral", "text": text})).into_response()
}

/// What a person sees when Klaxon itself failed (not their mistake).
const FAULT_REPLY: &str = "⚠️ Klaxon could not do that just now: its database did not answer. \
                           Nothing was changed; please try again in a moment.";

fn log_fault(e: &usecases::Error) {
    tracing::error!(error = %e, "command failed");
}

/// The form Slack posts for a slash command (only the fields Klaxon uses).
#[derive(Debug, Deserialize)]
struct SlashCommand {
    #[allow(dead_code)]
    command: String,
    #[serde(default)]
    text: String,
    user_id: String,
    channel_id: String,
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
    let Some(user) = SlackUserId::parse(&form.user_id) else {
        return refuse(StatusCode::BAD_REQUEST, "user_id is not a Slack user ID");
    };
    let Some(channel) = ChannelId::parse(&form.channel_id) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "channel_id is not a Slack channel ID",
        );
    };
    let ctx = &app.ctx;
    let actor = Actor { user, channel };
    let answer = match command::parse(&form.text) {
        Err(usage) => Ok(cases::usage_error(ctx, &actor, &form.text, &usage).await),
        Ok(command) => {
            // Reading commands change nothing, so a replay of one is harmless: only
            // the others pay for the replay guard (a database write).
            if !command.changes_nothing() {
                if let Some(answer) = replayed(&app, &headers).await {
                    return answer;
                }
                tracing::info!(user = %actor.user, channel = %actor.channel, "slash command");
            }
            cases::execute(ctx, &actor, command).await
        }
    };
    match answer {
        Ok(answer) => ephemeral(answer.text()),
        Err(e) => {
            log_fault(&e);
            ephemeral(FAULT_REPLY)
        }
    }
}

#[derive(Debug, Deserialize)]
struct InteractionForm {
    payload: String,
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ActionItem {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    block_id: Option<String>,
    /// Set by select menus (the Run check menu).
    #[serde(default)]
    selected_option: Option<SelectedOption>,
}

#[derive(Debug, Deserialize)]
struct SelectedOption {
    value: String,
}

#[derive(Debug, Deserialize)]
struct InputValue {
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ViewState {
    #[serde(default)]
    values: HashMap<String, HashMap<String, InputValue>>,
}

#[derive(Debug, Deserialize)]
struct ViewPayload {
    #[serde(default)]
    callback_id: Option<String>,
    #[serde(default)]
    private_metadata: Option<String>,
    #[serde(default)]
    state: ViewState,
}

/// The parts of Slack's interaction payloads Klaxon uses.
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: IdOnly,
    #[serde(default)]
    channel: Option<IdOnly>,
    #[serde(default)]
    trigger_id: Option<String>,
    /// Where Slack takes a reply to this press (works in any channel, unlike
    /// `chat.postEphemeral`, which needs the bot to be in it).
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    actions: Vec<ActionItem>,
    #[serde(default)]
    view: Option<ViewPayload>,
}

fn incident_ref(value: Option<&str>) -> Option<IncidentRef> {
    value?.parse::<i64>().ok().and_then(IncidentRef::new)
}

pub async fn interactions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = unverified(&app, &headers, &body).await {
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
    let Some(user) = SlackUserId::parse(&interaction.user.id) else {
        return refuse(StatusCode::BAD_REQUEST, "user.id is not a Slack user ID");
    };
    match interaction.kind.as_str() {
        "block_actions" => block_actions(&app, user, interaction).await,
        "view_submission" => view_submission(&app, user, interaction).await,
        other => {
            tracing::debug!(kind = other, "ignored interaction");
            StatusCode::OK.into_response()
        }
    }
}

async fn block_actions(app: &Arc<App>, user: SlackUserId, interaction: Interaction) -> Response {
    let channel = interaction
        .channel
        .as_ref()
        .and_then(|c| ChannelId::parse(&c.id));
    let Some(action) = interaction.actions.first() else {
        return refuse(StatusCode::BAD_REQUEST, "block_actions without actions");
    };
    let ctx = &app.ctx;
    let response_url = interaction.response_url.clone();
    let tell = |text: String| {
        let user = user.clone();
        let channel = channel.clone();
        let response_url = response_url.clone();
        async move { feedback(app, response_url.as_deref(), channel.as_ref(), &user, &text).await }
    };
    if action.action_id == blocks::ACTION_APPROVE || action.action_id == blocks::ACTION_DENY {
        let Some(id) = action.value.as_deref().and_then(|v| v.parse::<i64>().ok()) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "action value is not a request number",
            );
        };
        let approve = action.action_id == blocks::ACTION_APPROVE;
        match actions::decide(ctx, &user, id, approve).await {
            Ok(Answer::Refused(text)) => tell(text).await,
            Ok(Answer::Done(_)) => {}
            Err(e) => log_fault(&e),
        }
        return StatusCode::OK.into_response();
    }
    if action.action_id == blocks::ACTION_RUN_MENU {
        // The menu's block_id carries the incident number; the option, the action.
        let (Some(r), Some(choice)) = (
            incident_ref(action.block_id.as_deref()),
            action.selected_option.as_ref(),
        ) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "run menu without an incident or a choice",
            );
        };
        let answer = match incidents::get(ctx.store.pool(), r).await {
            Ok(Some(i)) => actions::request(ctx, &user, &i, &choice.value, &[], false).await,
            Ok(None) => Ok(Answer::Refused(format!("{r} does not exist."))),
            Err(e) => Err(e.into()),
        };
        match answer {
            Ok(a) => tell(a.text().to_string()).await,
            Err(e) => log_fault(&e),
        }
        return StatusCode::OK.into_response();
    }
    let Some(r) = incident_ref(action.value.as_deref()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "action value is not an incident number",
        );
    };
    let told = |answer: Answer| {
        let user = user.clone();
        let channel = channel.clone();
        let response_url = response_url.clone();
        async move {
            if let Answer::Refused(text) = answer {
                feedback(app, response_url.as_deref(), channel.as_ref(), &user, &text).await;
            }
        }
    };
    match action.action_id.as_str() {
        blocks::ACTION_ACK => match cases::acknowledge(ctx, &user, r).await {
            Ok(answer) => told(answer).await,
            Err(e) => log_fault(&e),
        },
        blocks::ACTION_RESOLVE => {
            let incident = match incidents::get(ctx.store.pool(), r).await {
                Ok(i) => i,
                Err(e) => {
                    log_fault(&e.into());
                    return StatusCode::OK.into_response();
                }
            };
            match incident {
                None => told(Answer::Refused(format!("{r} does not exist."))).await,
                Some(i) if i.is_resolved() => {
                    told(Answer::Refused(format!("{r} is already resolved."))).await
                }
                Some(i) => {
                    let Some(trigger) = interaction.trigger_id else {
                        return refuse(StatusCode::BAD_REQUEST, "block_actions without trigger_id");
                    };
                    // trigger_id expires in 3 s, so this call cannot wait in the outbox;
                    // it runs right after the answer, and a lost modal is simply reopened.
                    let view = blocks::resolve_modal(&i);
                    let slack = app.slack.clone();
                    tokio::spawn(async move {
                        let body = json!({"trigger_id": trigger, "view": view});
                        if let Err(e) = slack.call("views.open", &body).await {
                            tracing::warn!(error = ?e, "could not open the resolve modal");
                        }
                    });
                }
            }
        }
        blocks::ACTION_SILENCE => match incidents::get(ctx.store.pool(), r).await {
            Ok(Some(i)) => {
                match cases::silence(ctx, &user, &i, std::time::Duration::from_secs(3600)).await {
                    Ok(answer) => told(answer).await,
                    Err(e) => log_fault(&e),
                }
            }
            Ok(None) => told(Answer::Refused(format!("{r} does not exist."))).await,
            Err(e) => log_fault(&e.into()),
        },
        other => tracing::debug!(action = other, "ignored action"),
    }
    StatusCode::OK.into_response()
}

/// Tells the person who pressed a button something only they see: through the
/// press's `response_url` when Slack gave one (it works in channels the bot is
/// not in), else with `chat.postEphemeral` through the outbox.
async fn feedback(
    app: &Arc<App>,
    response_url: Option<&str>,
    channel: Option<&ChannelId>,
    user: &SlackUserId,
    text: &str,
) {
    if let Some(url) = response_url.filter(|u| app.slack.accepts_response_url(u)) {
        let app = app.clone();
        let url = url.to_string();
        let text = text.to_string();
        let channel = channel.cloned();
        let user = user.clone();
        tokio::spawn(async move {
            if let Err(e) = app.slack.respond(&url, &text).await {
                tracing::warn!(error = %e.code(), "could not answer a button press through its response_url; sending it as an ephemeral message instead");
                tell(&app, channel.as_ref(), &user, &text).await;
            }
        });
        return;
    }
    tell(app, channel, user, text).await;
}

/// `text` to `user` only, in `channel`, through the outbox.
async fn tell(app: &Arc<App>, channel: Option<&ChannelId>, user: &SlackUserId, text: &str) {
    if let Some(channel) = channel
        && let Err(e) = app.ctx.thread().tell(channel, user, text).await
    {
        log_fault(&e);
    }
}

async fn view_submission(app: &Arc<App>, user: SlackUserId, interaction: Interaction) -> Response {
    let Some(view) = interaction.view else {
        return refuse(StatusCode::BAD_REQUEST, "view_submission without view");
    };
    if view.callback_id.as_deref() != Some(blocks::CALLBACK_RESOLVE) {
        return StatusCode::OK.into_response();
    }
    let Some(r) = incident_ref(view.private_metadata.as_deref()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "private_metadata is not an incident number",
        );
    };
    let field = |name: &str| -> Option<String> {
        view.state
            .values
            .get(name)
            .and_then(|m| m.get(name))
            .and_then(|v| v.value.as_deref())
            .and_then(|v| UserText::parse(v, name).ok())
            .map(|t| t.as_str().to_string())
    };
    let modal_error = |block: &str, text: &str| {
        Json(json!({"response_action": "errors", "errors": {block: text}})).into_response()
    };
    let resolution = Resolution {
        root_cause: field(blocks::FIELD_ROOT_CAUSE),
        resolution: field(blocks::FIELD_RESOLUTION),
        follow_up: field(blocks::FIELD_FOLLOW_UP),
    };
    if resolution.resolution.is_none() {
        return modal_error(
            blocks::FIELD_RESOLUTION,
            "Say what fixed it (up to 2,000 characters).",
        );
    }
    match cases::resolve(&app.ctx, Some(&user), r, &resolution).await {
        Ok(Answer::Done(_)) => StatusCode::OK.into_response(),
        Ok(Answer::Refused(why)) => modal_error(blocks::FIELD_RESOLUTION, &why),
        Err(e) => {
            log_fault(&e);
            modal_error(blocks::FIELD_RESOLUTION, FAULT_REPLY)
        }
    }
}

/// The Events API envelope (only the fields Klaxon uses).
#[derive(Debug, Deserialize)]
struct EventEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event: Option<MessageEvent>,
}

#[derive(Debug, Deserialize)]
struct MessageEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    channel_type: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    subtype: Option<String>,
    /// The message's own id in its channel.
    #[serde(default)]
    ts: Option<String>,
}

/// The Events API: answers `url_verification`; `ack` typed in a direct message
/// acknowledges the incident that paged its author. Each `event_id` is handled
/// once, however often Slack retries it.
pub async fn events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_challenge = || {
        serde_json::from_slice::<EventEnvelope>(&body).is_ok_and(|e| e.kind == "url_verification")
    };
    if let Err(e) = signature::verify(app.verifier.as_ref(), &headers, &body) {
        // Slack signs the challenge it sends when the Request URL is saved, so a
        // Klaxon that cannot verify it fails that step: say why, plainly.
        if is_challenge() {
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
    // The challenge needs no database: answer it before the replay guard.
    if !is_challenge()
        && let Some(answer) = replayed(&app, &headers).await
    {
        return answer;
    }
    let envelope: EventEnvelope = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed event JSON: {e}"),
            );
        }
    };
    match envelope.kind.as_str() {
        "url_verification" => match envelope.challenge {
            Some(c) => Json(json!({"challenge": c})).into_response(),
            None => refuse(
                StatusCode::BAD_REQUEST,
                "url_verification without challenge",
            ),
        },
        "event_callback" => {
            let Some(event_id) = envelope.event_id else {
                return refuse(StatusCode::BAD_REQUEST, "event_callback without event_id");
            };
            let ctx = &app.ctx;
            match pages::first_delivery(ctx.store.pool(), &event_id, ctx.clock.now()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(event_id, "duplicate event ignored");
                    return StatusCode::OK.into_response();
                }
                Err(e) => {
                    // Slack retries on 5xx, so nothing is lost.
                    tracing::error!(error = %e, "cannot record event");
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
                }
            }
            // One message can reach Klaxon under two event ids (Slack delivers
            // `message.im` to each subscription that matches): answer it once.
            let message_key = envelope.event.as_ref().and_then(|event| {
                Some(format!(
                    "message:{}:{}",
                    event.channel.as_deref()?,
                    event.ts.as_deref()?
                ))
            });
            if let Some(key) = &message_key {
                match pages::first_delivery(ctx.store.pool(), key, ctx.clock.now()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!(
                            event_id,
                            "the same message under another event id; ignored"
                        );
                        return StatusCode::OK.into_response();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot record event");
                        let _ = pages::forget_delivery(ctx.store.pool(), &event_id).await;
                        return refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
                    }
                }
            }
            if let Some(event) = envelope.event
                && let Err(e) = direct_message(&app, event).await
            {
                // Let Slack's retry try again: forget that this event was seen.
                log_fault(&e);
                let _ = pages::forget_delivery(ctx.store.pool(), &event_id).await;
                if let Some(key) = &message_key {
                    let _ = pages::forget_delivery(ctx.store.pool(), key).await;
                }
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// A message in a direct message to Klaxon (`ack`, `ack INC-n`): the use case
/// reads it with the `/incident` grammar.
async fn direct_message(app: &Arc<App>, event: MessageEvent) -> usecases::Result<()> {
    if event.kind != "message"
        || event.channel_type.as_deref() != Some("im")
        || event.bot_id.is_some()
        || event.subtype.is_some()
    {
        return Ok(());
    }
    let (Some(user), Some(channel)) = (
        event.user.as_deref().and_then(SlackUserId::parse),
        event.channel.as_deref().and_then(ChannelId::parse),
    ) else {
        return Ok(());
    };
    cases::direct_message(
        &app.ctx,
        &user,
        &channel,
        event.text.as_deref().unwrap_or_default(),
    )
    .await
}
