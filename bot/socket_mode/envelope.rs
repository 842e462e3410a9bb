//! One Socket Mode message: read it (leniently: an envelope Slack can
//! redeliver must never be dropped for a field of an unexpected type), act on
//! it through [`crate::inbound`], and acknowledge it (Slack: "Using Socket
//! Mode", "Acknowledging events").
//!
//! Slack waits 3 seconds for an acknowledgement. When the database is slow,
//! [`act`] answers at [`ACK_WITHIN`] with what can honestly be said then ("still
//! working: look at the thread before you try again") and lets the work
//! finish; an event is left unacknowledged instead, so Slack redelivers it
//! and the event-id guard makes the redelivery a no-op once the work is done.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use serde_json::{Value, json};

use crate::app::App;
use crate::blocks;
use crate::inbound::{self, Reply};
use crate::telemetry::EnvelopeLabels;

/// When an envelope still being worked on is acknowledged anyway: Slack's 3 s,
/// less the way back.
pub const ACK_WITHIN: Duration = Duration::from_millis(2_500);

/// What a command's acknowledgement says when the work outlasts [`ACK_WITHIN`].
pub const STILL_WORKING: &str = "⏳ Klaxon's database is slow to answer, so this is still being done. \
                                 Look at the incident channel before you try again: it may already have happened.";

/// A message Slack sends down the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `hello`, `disconnect`, `slash_commands`, `interactive`, `events_api` …
    pub kind: String,
    /// `disconnect`'s reason.
    pub reason: Option<String>,
    /// Present on everything Slack wants acknowledged.
    pub envelope_id: Option<String>,
    pub payload: Value,
    pub accepts_response_payload: bool,
    /// 0 on the first delivery.
    pub retry_attempt: u64,
    pub retry_reason: Option<String>,
}

impl Envelope {
    /// Reads a text frame; `None` when it is not a JSON object with a `type`.
    /// Fields of unexpected types read as absent, never as a reason to drop
    /// the envelope (a numeric `envelope_id` is kept as its text).
    pub fn parse(text: &str) -> Option<Envelope> {
        let v: Value = serde_json::from_str(text).ok()?;
        let kind = v.get("type")?.as_str()?.to_string();
        let text_of = |key: &str| match v.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some(Envelope {
            reason: text_of("reason"),
            envelope_id: text_of("envelope_id"),
            accepts_response_payload: v
                .get("accepts_response_payload")
                .and_then(|a| a.as_bool().or_else(|| Some(a.as_str()? == "true")))
                .unwrap_or(false),
            retry_attempt: v
                .get("retry_attempt")
                .and_then(|a| a.as_u64().or_else(|| a.as_str()?.parse().ok()))
                .unwrap_or(0),
            retry_reason: text_of("retry_reason"),
            payload: v.get("payload").cloned().unwrap_or(Value::Null),
            kind,
        })
    }

    /// The `type` label of the envelope metrics (a closed set).
    fn label(&self) -> &'static str {
        match self.kind.as_str() {
            "slash_commands" => "slash_commands",
            "interactive" => "interactive",
            "events_api" => "events_api",
            _ => "other",
        }
    }
}

/// Acts on `envelope` (read off the socket at `received`) when `turns` gives
/// it a turn, and hands its acknowledgement to `send` — by [`ACK_WITHIN`]
/// after `received` for commands and interactions, whatever the queue or the
/// database do. The work always runs to its end; if it fails after a holding
/// answer went out, the person is told (the command's `response_url`, else a
/// direct message).
pub async fn act(
    app: &Arc<App>,
    envelope: Envelope,
    received: Instant,
    turns: &Semaphore,
    send: impl Fn(Value),
) {
    let Some(envelope_id) = envelope.envelope_id.clone() else {
        tracing::debug!(
            kind = envelope.kind,
            "ignored a Socket Mode message without envelope_id"
        );
        return;
    };
    let early = provisional(&envelope, &envelope_id);
    let notice = LateNotice::of(&envelope);
    let accepts = envelope.accepts_response_payload;
    let work = async {
        // In the order they arrived (the semaphore is fair).
        let _turn = turns.acquire().await.ok()?;
        Some(answer(app, envelope, &envelope_id).await)
    };
    tokio::pin!(work);
    tokio::select! {
        reply = &mut work => {
            if let Some(ack) = reply.and_then(|r| ack(envelope_id.clone(), accepts, r)) {
                send(ack);
            }
        }
        _ = tokio::time::sleep_until(received + ACK_WITHIN) => {
            let held = early.is_some();
            match early {
                Some(ack) => {
                    tracing::warn!("acknowledged a Socket Mode envelope before its work was done (the database is slow); the work goes on");
                    send(ack);
                }
                None => tracing::warn!("a Socket Mode event is taking over {} ms; Slack will redeliver it, and the redelivery does nothing once this is done", ACK_WITHIN.as_millis()),
            }
            // Its own acknowledgement would be a second one: Slack takes one.
            // Failed or not taken at all: either way nothing was done, and
            // the holding answer said it would be.
            if let Some(Reply::Fault(_) | Reply::Unavailable(_)) = work.await
                && held
            {
                notice.tell(app).await;
            }
        }
    }
}

/// Where to tell a person that work answered "still being done" failed.
#[derive(Debug, Default)]
struct LateNotice {
    response_url: Option<String>,
    user: Option<String>,
}

/// What the person is told then.
pub const LATE_FAULT: &str = "⚠️ About your last request, answered “still being done”: it did not go through, \
                              because Klaxon's database did not answer. Nothing was changed; please try again.";

impl LateNotice {
    fn of(envelope: &Envelope) -> LateNotice {
        let p = &envelope.payload;
        let text = |v: &Value| v.as_str().map(str::to_string);
        LateNotice {
            response_url: text(&p["response_url"]),
            user: text(&p["user_id"]).or_else(|| text(&p["user"]["id"])),
        }
    }

    /// Straight to Slack, not through the outbox: the database just failed.
    async fn tell(&self, app: &App) {
        if let Some(url) = self
            .response_url
            .as_deref()
            .filter(|u| app.slack.accepts_response_url(u))
            && app.slack.respond(url, LATE_FAULT).await.is_ok()
        {
            return;
        }
        if let Some(user) = &self.user {
            let body = json!({"channel": user, "text": LATE_FAULT});
            if let Err(e) = app.slack.call("chat.postMessage", &body).await {
                tracing::warn!(error = %e.code(), "could not tell a person that their request failed after a holding answer");
            }
        }
    }
}

/// The acknowledgement to send at [`ACK_WITHIN`] if the work is not done:
/// `None` for an event (Slack redelivers an unacknowledged event).
fn provisional(envelope: &Envelope, envelope_id: &str) -> Option<Value> {
    let with = |payload: Value| {
        Some(if envelope.accepts_response_payload {
            json!({"envelope_id": envelope_id, "payload": payload})
        } else {
            json!({"envelope_id": envelope_id})
        })
    };
    match envelope.kind.as_str() {
        "slash_commands" => with(inbound::ephemeral_text(STILL_WORKING)),
        "interactive"
            if envelope.payload["type"] == "view_submission"
                && envelope.payload["view"]["callback_id"] == blocks::CALLBACK_RESOLVE =>
        {
            with(inbound::form_error(
                blocks::FIELD_RESOLUTION,
                "Klaxon's database is slow to answer, so this is still being done: look at the incident's thread before you submit again.",
            ))
        }
        "events_api" => None,
        _ => Some(json!({"envelope_id": envelope_id})),
    }
}

/// Acts on one envelope; the acknowledgement to send, or `None` to leave it
/// unacknowledged (Slack then redelivers it).
async fn answer(app: &Arc<App>, envelope: Envelope, envelope_id: &str) -> Reply {
    let label = envelope.label();
    app.ctx
        .metrics
        .socket_envelopes
        .get_or_create(&EnvelopeLabels {
            r#type: label.into(),
        })
        .inc();
    if envelope.retry_attempt > 0 {
        tracing::info!(
            envelope_id,
            retry_attempt = envelope.retry_attempt,
            retry_reason = envelope.retry_reason.as_deref().unwrap_or_default(),
            "Slack redelivered an envelope"
        );
    }
    let replay_key = |trigger: Option<&str>| format!("socket:{}", trigger.unwrap_or(envelope_id));
    let payload = envelope.payload;
    // Only the payload's shape is logged when it is not Slack's: it may
    // carry a person's text and Slack's verification token.
    let payload_shape = shape(&payload);
    match label {
        "slash_commands" => match serde_json::from_value::<inbound::SlashCommand>(payload) {
            Ok(command) => {
                let key = replay_key(command.trigger_id());
                inbound::command(app, command, &key).await
            }
            Err(_) => Reply::Malformed(format!("malformed slash command ({})", payload_shape)),
        },
        "interactive" => match serde_json::from_value::<inbound::Interaction>(payload) {
            Ok(interaction) => {
                let key = replay_key(interaction.trigger_id());
                inbound::interaction(app, interaction, &key).await
            }
            Err(_) => {
                Reply::Malformed(format!("malformed interaction payload ({})", payload_shape))
            }
        },
        "events_api" => match serde_json::from_value::<inbound::EventCallback>(payload) {
            Ok(callback) => inbound::event(app, callback).await,
            Err(_) => Reply::Malformed(format!("malformed event ({})", payload_shape)),
        },
        _ => {
            tracing::debug!(
                kind = envelope.kind,
                "acknowledged a Socket Mode envelope Klaxon does not use"
            );
            Reply::done()
        }
    }
}

/// A payload's JSON shape, for a log line that must not repeat its content.
fn shape(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object without the fields Slack sends",
        Value::String(_) => "a string, not an object",
        Value::Array(_) => "an array, not an object",
        Value::Null => "no payload",
        Value::Bool(_) | Value::Number(_) => "a scalar, not an object",
    }
}

/// The acknowledgement for `reply`: the answer rides in `payload` where Slack
/// accepts one; `None` for a reply Slack should retry.
pub fn ack(envelope_id: String, accepts_payload: bool, reply: Reply) -> Option<Value> {
    match reply {
        Reply::Answer(Some(payload)) | Reply::Fault(payload) if accepts_payload => {
            Some(json!({"envelope_id": envelope_id, "payload": payload}))
        }
        Reply::Answer(_) | Reply::Fault(_) => Some(json!({"envelope_id": envelope_id})),
        Reply::Malformed(why) => {
            tracing::warn!(envelope_id, reason = why, "refused a Socket Mode envelope");
            Some(json!({"envelope_id": envelope_id}))
        }
        Reply::Unavailable(why) => {
            tracing::warn!(
                envelope_id,
                reason = why,
                "left a Socket Mode envelope unacknowledged so that Slack redelivers it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_rides_in_the_ack_only_where_slack_accepts_a_payload() {
        let reply = Reply::ephemeral("INC-1 opened");
        assert_eq!(
            ack("e1".into(), true, reply.clone()),
            Some(
                json!({"envelope_id": "e1", "payload": {"response_type": "ephemeral", "text": "INC-1 opened"}})
            )
        );
        assert_eq!(
            ack("e2".into(), false, reply),
            Some(json!({"envelope_id": "e2"}))
        );
        assert_eq!(
            ack("e3".into(), true, Reply::Malformed("no user".into())),
            Some(json!({"envelope_id": "e3"})),
            "a malformed envelope is acknowledged: a redelivery would be as wrong"
        );
        assert_eq!(
            ack("e4".into(), true, Reply::Unavailable("database")),
            None,
            "an envelope Klaxon could not take is left for Slack to redeliver"
        );
    }

    #[test]
    fn slacks_envelope_shapes_are_read_and_odd_field_types_do_not_drop_one() {
        let e = Envelope::parse(
            &json!({
                "envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
                "payload": {"type": "event_callback", "event_id": "Ev1"},
                "type": "events_api",
                "accepts_response_payload": false,
                "retry_attempt": 1,
                "retry_reason": "timeout"
            })
            .to_string(),
        )
        .expect("an events_api envelope");
        assert_eq!((e.kind.as_str(), e.retry_attempt), ("events_api", 1));
        let e = Envelope::parse(
            r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-1"}}"#,
        )
        .expect("a disconnect");
        assert_eq!(e.reason.as_deref(), Some("refresh_requested"));
        let odd = Envelope::parse(
            r#"{"type":"slash_commands","envelope_id":12345,"accepts_response_payload":null,"retry_attempt":"2","payload":{}}"#,
        )
        .expect("still an envelope");
        assert_eq!(odd.envelope_id.as_deref(), Some("12345"));
        assert!(!odd.accepts_response_payload);
        assert_eq!(odd.retry_attempt, 2);
        let negative =
            Envelope::parse(r#"{"type":"interactive","envelope_id":"e","retry_attempt":-1}"#)
                .expect("still an envelope");
        assert_eq!(negative.retry_attempt, 0);
        assert_eq!(Envelope::parse("not json"), None);
        assert_eq!(Envelope::parse(r#"{"envelope_id":"e"}"#), None, "no type");
    }

    #[test]
    fn a_late_command_or_form_gets_a_holding_answer_and_a_late_event_none() {
        let parse = |v: Value| Envelope::parse(&v.to_string()).expect("envelope");
        let command = parse(
            json!({"type": "slash_commands", "envelope_id": "e", "accepts_response_payload": true, "payload": {}}),
        );
        let early = provisional(&command, "e").expect("an answer");
        assert_eq!(early["payload"]["text"], STILL_WORKING);
        let form = parse(
            json!({"type": "interactive", "envelope_id": "e", "accepts_response_payload": true,
            "payload": {"type": "view_submission", "view": {"callback_id": blocks::CALLBACK_RESOLVE}}}),
        );
        let early = provisional(&form, "e").expect("an answer");
        assert_eq!(early["payload"]["response_action"], "errors");
        assert!(early["payload"]["errors"][blocks::FIELD_RESOLUTION].is_string());
        let press = parse(
            json!({"type": "interactive", "envelope_id": "e", "payload": {"type": "block_actions"}}),
        );
        assert_eq!(provisional(&press, "e"), Some(json!({"envelope_id": "e"})));
        let event = parse(json!({"type": "events_api", "envelope_id": "e", "payload": {}}));
        assert_eq!(provisional(&event, "e"), None);
    }
}
