//! What Slack sends Klaxon — slash commands, interactions (buttons, menus,
//! forms) and events (a DM `ack`) — read and acted on the same way whichever
//! transport carried it: HTTP requests (`crate::http::slack`, signed) or
//! Socket Mode envelopes (`crate::socket_mode`, over the app's own socket).
//!
//! A transport verifies and decodes; everything after that is here, once. Each
//! handler parses the payload into domain types, asks the use cases to act (one
//! transaction, messages enqueued) and returns a [`Reply`] at once; the
//! transport turns it into an HTTP answer or an envelope's acknowledgement. A
//! person's mistake is a helpful ephemeral answer, never an error.
//!
//! Duplicates: a request is handled once under its replay key (HTTP: the
//! signature; Socket Mode: the press's `trigger_id`, else the envelope id), and
//! an event once under its `event_id` and once per message, however often
//! Slack retries or redelivers it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::blocks;
use crate::incident::command;
use crate::incident::{ChannelId, IncidentRef, SlackUserId, UserText};
use crate::store::incidents::{self, Resolution};
use crate::store::pages;
use crate::usecases::{self, Actor, Answer, actions, incidents as cases};

/// What Klaxon answers, whatever carried the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Handled: answer with this JSON (`None`: an empty HTTP 200, a bare
    /// acknowledgement in Socket Mode).
    Answer(Option<Value>),
    /// Not what Slack sends (a field missing or of the wrong shape): the
    /// one-line reason. HTTP answers 400; Socket Mode acknowledges it (a
    /// redelivery would be just as wrong) and logs the reason.
    Malformed(String),
    /// Klaxon cannot take it now (its database does not answer) and nothing
    /// was done: HTTP answers 503 and Socket Mode leaves the envelope
    /// unacknowledged, so Slack retries an event and shows a person an error
    /// instead of seeming to work.
    Unavailable(&'static str),
    /// Klaxon itself failed (its database) and nothing was changed: the
    /// answer that tells the person so (an ephemeral text, a form's error),
    /// sent like [`Reply::Answer`]. Told apart so that a transport that
    /// already gave a holding answer can still tell them.
    Fault(Value),
}

/// A message only the person who asked sees: Slack's slash-command response
/// with `response_type: ephemeral`.
pub fn ephemeral_text(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": text})
}

/// A form's answer that keeps it open with `text` under the input `block`
/// (Slack: "Handling view submissions", `response_action: errors`).
pub fn form_error(block: &str, text: &str) -> Value {
    json!({"response_action": "errors", "errors": {block: text}})
}

impl Reply {
    /// An [`ephemeral_text`] answer.
    pub fn ephemeral(text: &str) -> Reply {
        Reply::Answer(Some(ephemeral_text(text)))
    }

    /// An empty answer: done, nothing to show.
    pub fn done() -> Reply {
        Reply::Answer(None)
    }

    fn malformed(reason: impl Into<String>) -> Reply {
        Reply::Malformed(reason.into())
    }
}

/// What a person is told when Klaxon itself failed, and the ephemeral answer
/// carrying it.
pub const FAULT_REPLY: &str = "⚠️ Klaxon could not do that just now: its database did not answer. \
                               Nothing was changed; please try again in a moment.";

fn log_fault(e: &usecases::Error) {
    tracing::error!(error = %e, "command failed");
}

/// `Some` answer when a request with this replay key came before (a replay or
/// a redelivery): it is answered and does nothing.
pub async fn replayed(app: &App, replay_key: &str) -> Option<Reply> {
    let ctx = &app.ctx;
    match pages::first_request(ctx.store.pool(), replay_key, ctx.clock.now()).await {
        Ok(true) => None,
        Ok(false) => {
            tracing::warn!("ignored a repeated Slack request");
            Some(Reply::ephemeral("This request was already handled."))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a Slack request (database unavailable); Slack is asked to retry");
            Some(Reply::Unavailable("database unavailable; retry later"))
        }
    }
}

/// A slash command (`/incident …`): Slack's form fields, as HTTP posts them
/// and as a Socket Mode `slash_commands` envelope carries them (only the
/// fields Klaxon uses).
#[derive(Debug, Deserialize)]
pub struct SlashCommand {
    #[serde(default)]
    text: String,
    user_id: String,
    channel_id: String,
    #[serde(default)]
    trigger_id: Option<String>,
}

impl SlashCommand {
    /// The id Slack gives this one invocation (`trigger_id`): the same
    /// however often it is delivered.
    pub fn trigger_id(&self) -> Option<&str> {
        self.trigger_id.as_deref()
    }
}

/// Runs a slash command. `replay_key` guards commands that change something
/// against a second delivery of the same request.
pub async fn command(app: &App, form: SlashCommand, replay_key: &str) -> Reply {
    let Some(user) = SlackUserId::parse(&form.user_id) else {
        return Reply::malformed("user_id is not a Slack user ID");
    };
    let Some(channel) = ChannelId::parse(&form.channel_id) else {
        return Reply::malformed("channel_id is not a Slack channel ID");
    };
    let ctx = &app.ctx;
    let actor = Actor { user, channel };
    let answer = match command::parse(&form.text) {
        Err(usage) => Ok(cases::usage_error(ctx, &actor, &form.text, &usage).await),
        Ok(command) => {
            // Reading commands change nothing, so a replay of one is harmless: only
            // the others pay for the replay guard (a database write).
            if !command.changes_nothing() {
                if let Some(answer) = replayed(app, replay_key).await {
                    return answer;
                }
                tracing::info!(user = %actor.user, channel = %actor.channel, "slash command");
            }
            cases::execute(ctx, &actor, command).await
        }
    };
    match answer {
        Ok(answer) => Reply::ephemeral(answer.text()),
        Err(e) => {
            log_fault(&e);
            Reply::Fault(ephemeral_text(FAULT_REPLY))
        }
    }
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

/// An interaction payload (`block_actions`, `view_submission` …): the JSON
/// HTTP posts in the `payload` form field and a Socket Mode `interactive`
/// envelope carries (only the fields Klaxon uses).
#[derive(Debug, Deserialize)]
pub struct Interaction {
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

impl Interaction {
    /// The id Slack gives this one press or submission (`trigger_id`): the
    /// same however often the payload is delivered.
    pub fn trigger_id(&self) -> Option<&str> {
        self.trigger_id.as_deref()
    }
}

fn incident_ref(value: Option<&str>) -> Option<IncidentRef> {
    value?.parse::<i64>().ok().and_then(IncidentRef::new)
}

/// Acts on a button press, a menu choice or a form's submission, once per
/// `replay_key`.
pub async fn interaction(app: &Arc<App>, interaction: Interaction, replay_key: &str) -> Reply {
    let Some(user) = SlackUserId::parse(&interaction.user.id) else {
        return Reply::malformed("user.id is not a Slack user ID");
    };
    match interaction.kind.as_str() {
        "block_actions" => match once(app, replay_key).await {
            Some(reply) => reply,
            None => block_actions(app, user, interaction).await,
        },
        "view_submission" => view_submission(app, user, interaction, replay_key).await,
        other => {
            tracing::debug!(kind = other, "ignored interaction");
            Reply::done()
        }
    }
}

/// The replay guard for a press or a form: `Some` answer when it came before.
/// That answer is empty (a form closes; a press's answer is not shown anyway):
/// a text would be no valid answer to a form.
async fn once(app: &App, replay_key: &str) -> Option<Reply> {
    match replayed(app, replay_key).await? {
        Reply::Answer(_) => Some(Reply::done()),
        refusal => Some(refusal),
    }
}

async fn block_actions(app: &Arc<App>, user: SlackUserId, interaction: Interaction) -> Reply {
    let channel = interaction
        .channel
        .as_ref()
        .and_then(|c| ChannelId::parse(&c.id));
    let Some(action) = interaction.actions.first() else {
        return Reply::malformed("block_actions without actions");
    };
    let ctx = &app.ctx;
    let response_url = interaction.response_url.clone();
    let tell = |text: String| {
        let user = user.clone();
        let channel = channel.clone();
        let response_url = response_url.clone();
        async move { feedback(app, response_url.as_deref(), channel.as_ref(), &user, &text).await }
    };
    // Klaxon failed: the log says why, the presser that nothing happened.
    let fault = |e: usecases::Error| async move {
        log_fault(&e);
        tell(FAULT_REPLY.to_string()).await;
    };
    if action.action_id == blocks::ACTION_APPROVE || action.action_id == blocks::ACTION_DENY {
        let Some(id) = action.value.as_deref().and_then(|v| v.parse::<i64>().ok()) else {
            return Reply::malformed("action value is not a request number");
        };
        let approve = action.action_id == blocks::ACTION_APPROVE;
        match actions::decide(ctx, &user, id, approve).await {
            Ok(Answer::Refused(text)) => tell(text).await,
            Ok(Answer::Done(_)) => {}
            Err(e) => fault(e).await,
        }
        return Reply::done();
    }
    if action.action_id == blocks::ACTION_RUN_MENU {
        // The menu's block_id carries the incident number; the option, the action.
        let (Some(r), Some(choice)) = (
            incident_ref(action.block_id.as_deref()),
            action.selected_option.as_ref(),
        ) else {
            return Reply::malformed("run menu without an incident or a choice");
        };
        let answer = match incidents::get(ctx.store.pool(), r).await {
            Ok(Some(i)) => actions::request(ctx, &user, &i, &choice.value, &[], false).await,
            Ok(None) => Ok(Answer::Refused(format!("{r} does not exist."))),
            Err(e) => Err(e.into()),
        };
        match answer {
            Ok(a) => tell(a.text().to_string()).await,
            Err(e) => fault(e).await,
        }
        return Reply::done();
    }
    let Some(r) = incident_ref(action.value.as_deref()) else {
        return Reply::malformed("action value is not an incident number");
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
            Err(e) => fault(e).await,
        },
        blocks::ACTION_RESOLVE => {
            let incident = match incidents::get(ctx.store.pool(), r).await {
                Ok(i) => i,
                Err(e) => {
                    fault(e.into()).await;
                    return Reply::done();
                }
            };
            match incident {
                None => told(Answer::Refused(format!("{r} does not exist."))).await,
                Some(i) if i.is_resolved() => {
                    told(Answer::Refused(format!("{r} is already resolved."))).await
                }
                Some(i) => {
                    let Some(trigger) = interaction.trigger_id else {
                        return Reply::malformed("block_actions without trigger_id");
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
                    Err(e) => fault(e).await,
                }
            }
            Ok(None) => told(Answer::Refused(format!("{r} does not exist."))).await,
            Err(e) => fault(e.into()).await,
        },
        // The file may go to a channel the presser is not in: say where.
        blocks::ACTION_POSTMORTEM => {
            match crate::usecases::postmortem::produce(ctx, &user, r).await {
                Ok(answer) => tell(answer.text().to_string()).await,
                Err(e) => fault(e).await,
            }
        }
        other => tracing::debug!(action = other, "ignored action"),
    }
    Reply::done()
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

/// The resolve form. Its fields are checked before the replay guard, so a
/// form sent again after its errors were shown gets the same errors (an empty
/// answer would close it unresolved).
async fn view_submission(
    app: &Arc<App>,
    user: SlackUserId,
    interaction: Interaction,
    replay_key: &str,
) -> Reply {
    let Some(view) = interaction.view else {
        return Reply::malformed("view_submission without view");
    };
    if view.callback_id.as_deref() != Some(blocks::CALLBACK_RESOLVE) {
        return Reply::done();
    }
    let Some(r) = incident_ref(view.private_metadata.as_deref()) else {
        return Reply::malformed("private_metadata is not an incident number");
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
    let modal_error = |block: &str, text: &str| Reply::Answer(Some(form_error(block, text)));
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
    if let Some(reply) = once(app, replay_key).await {
        return reply;
    }
    match cases::resolve(&app.ctx, Some(&user), r, &resolution).await {
        Ok(Answer::Done(_)) => Reply::done(),
        Ok(Answer::Refused(why)) => modal_error(blocks::FIELD_RESOLUTION, &why),
        Err(e) => {
            log_fault(&e);
            Reply::Fault(form_error(blocks::FIELD_RESOLUTION, FAULT_REPLY))
        }
    }
}

/// An Events API `event_callback`: the JSON HTTP posts to `/slack/events`
/// and a Socket Mode `events_api` envelope carries (only the fields Klaxon
/// uses).
#[derive(Debug, Deserialize)]
pub struct EventCallback {
    #[serde(rename = "type")]
    kind: String,
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

/// An event: `ack` typed in a direct message acknowledges the incident that
/// paged its author. Each `event_id` is handled once, however often Slack
/// retries it; on a database fault the event is forgotten again and
/// [`Reply::Unavailable`] asks Slack to retry.
pub async fn event(app: &Arc<App>, callback: EventCallback) -> Reply {
    if callback.kind != "event_callback" {
        return Reply::done();
    }
    let Some(event_id) = callback.event_id else {
        return Reply::malformed("event_callback without event_id");
    };
    let Some(_handling) = Handling::start(app, &event_id) else {
        // Answering "done" now could hide a first delivery that then fails.
        tracing::info!(
            event_id,
            "a redelivery came while the first is still being handled; Slack is asked to retry"
        );
        return Reply::Unavailable("the first delivery of this event is still being handled");
    };
    let ctx = &app.ctx;
    match pages::first_delivery(ctx.store.pool(), &event_id, ctx.clock.now()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(event_id, "duplicate event ignored");
            return Reply::done();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record event");
            return Reply::Unavailable("database unavailable");
        }
    }
    // One message can reach Klaxon under two event ids (Slack delivers
    // `message.im` to each subscription that matches): answer it once.
    let message_key = callback.event.as_ref().and_then(|event| {
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
                tracing::debug!(event_id, "the same message under another event id; ignored");
                return Reply::done();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record event");
                let _ = pages::forget_delivery(ctx.store.pool(), &event_id).await;
                return Reply::Unavailable("database unavailable");
            }
        }
    }
    if let Some(event) = callback.event
        && let Err(e) = direct_message(app, event).await
    {
        // Let Slack's retry try again: forget that this event was seen.
        log_fault(&e);
        let _ = pages::forget_delivery(ctx.store.pool(), &event_id).await;
        if let Some(key) = &message_key {
            let _ = pages::forget_delivery(ctx.store.pool(), key).await;
        }
        return Reply::Unavailable("database unavailable");
    }
    Reply::done()
}

/// An event id marked as being handled on this replica until dropped.
struct Handling<'a> {
    app: &'a App,
    event_id: String,
}

impl<'a> Handling<'a> {
    /// `None` when the event is being handled already.
    fn start(app: &'a App, event_id: &str) -> Option<Handling<'a>> {
        let mut set = app
            .events_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.insert(event_id.to_string()).then(|| Handling {
            app,
            event_id: event_id.to_string(),
        })
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.app
            .events_in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.event_id);
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
