//! Block Kit payloads, built in Rust around rendered (already escaped) text,
//! and the ids of every button, menu and form Klaxon puts in them.
//!
//! Slack limits a section's text to 3,000 characters and a message's `text` to
//! 40,000 (Slack's "Block Kit" reference, section block); longer text is cut at a
//! safe place (never inside an `&amp;` entity or a `<@U…>` mention) and marked as
//! truncated, so Slack never rejects a message for its length. Nothing here does
//! I/O: the use cases build messages with it, the outbox delivers them.

use serde_json::{Value, json};

use crate::incident::{Incident, IncidentState};

/// `action_id` of the Acknowledge button; its `value` is the incident's number.
pub const ACTION_ACK: &str = "incident_ack";
/// `action_id` of the Resolve button, which opens [`resolve_modal`].
pub const ACTION_RESOLVE: &str = "incident_resolve";
/// `action_id` of the Silence button on alert incidents (silences for one hour).
pub const ACTION_SILENCE: &str = "incident_silence";
/// `action_id`s of the approval buttons; their `value` is the request id.
pub const ACTION_APPROVE: &str = "action_approve";
pub const ACTION_DENY: &str = "action_deny";
/// `action_id` of the Postmortem button on the resolution summary; its
/// `value` is the incident's number.
pub const ACTION_POSTMORTEM: &str = "incident_postmortem";
/// `action_id` of the Run check menu; its `block_id` is the incident's number.
pub const ACTION_RUN_MENU: &str = "incident_run";
/// `callback_id` of the resolve modal; `private_metadata` is the incident's number.
pub const CALLBACK_RESOLVE: &str = "incident_resolve_modal";
/// Block and action ids of the resolve modal's inputs.
pub const FIELD_ROOT_CAUSE: &str = "root_cause";
pub const FIELD_RESOLUTION: &str = "resolution";
pub const FIELD_FOLLOW_UP: &str = "follow_up";

const SECTION_MAX: usize = 3_000;
const TEXT_MAX: usize = 39_000;
const TRUNCATED: &str = "… _(truncated)_";

/// Cuts mrkdwn to at most `max` characters without splitting an entity or a `<…>` token.
pub fn truncate_mrkdwn(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(TRUNCATED.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    // Back off to before an unfinished `&…;` or `<…>`.
    let last_amp = cut.rfind('&');
    let last_lt = cut.rfind('<');
    if let Some(i) = last_amp
        && !cut[i..].contains(';')
    {
        cut.truncate(i);
    }
    if let Some(i) = last_lt
        && i < cut.len()
        && !cut[i..].contains('>')
    {
        cut.truncate(i);
    }
    cut.push_str(TRUNCATED);
    cut
}

/// The first line, as the notification text Slack shows in alerts and previews.
fn fallback(text: &str) -> String {
    truncate_mrkdwn(text.lines().next().unwrap_or_default(), 300)
}

fn button(text: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    });
    if let (Some(style), Some(obj)) = (style, b.as_object_mut()) {
        obj.insert("style".into(), json!(style));
    }
    b
}

/// The thread's root message: the rendered post, the buttons that still make
/// sense, and a "Run check" menu of `checks` (name, description) while it is open.
pub fn root_message(incident: &Incident, text: &str, checks: &[(String, String)]) -> Value {
    let value = incident.reference.number().to_string();
    let mut buttons = Vec::new();
    if incident.state == IncidentState::Open {
        buttons.push(button("Acknowledge", ACTION_ACK, &value, Some("primary")));
    }
    if incident.state != IncidentState::Resolved {
        buttons.push(button("Resolve", ACTION_RESOLVE, &value, None));
        if incident.source == crate::incident::IncidentSource::Alertmanager {
            buttons.push(button("Silence 1h", ACTION_SILENCE, &value, None));
        }
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate_mrkdwn(text, SECTION_MAX)},
    })];
    if !buttons.is_empty() {
        blocks.push(json!({
            "type": "actions",
            "block_id": "incident_actions",
            "elements": buttons,
        }));
    }
    if incident.state != IncidentState::Resolved && !checks.is_empty() {
        let options: Vec<Value> = checks
            .iter()
            .take(100)
            .map(|(name, description)| {
                let label: String = name.chars().take(75).collect();
                let mut o = json!({"text": {"type": "plain_text", "text": label}, "value": name});
                if !description.is_empty()
                    && let Some(obj) = o.as_object_mut()
                {
                    let d: String = description.chars().take(75).collect();
                    obj.insert(
                        "description".into(),
                        json!({"type": "plain_text", "text": d}),
                    );
                }
                o
            })
            .collect();
        blocks.push(json!({
            "type": "actions",
            // The menu's block_id carries the incident number.
            "block_id": value,
            "elements": [{
                "type": "static_select",
                "action_id": ACTION_RUN_MENU,
                "placeholder": {"type": "plain_text", "text": "Run check"},
                "options": options,
            }],
        }));
    }
    json!({
        "text": fallback(text),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A page's direct message: the text and an Acknowledge button.
pub fn page_dm(incident: &Incident, text: &str) -> Value {
    json!({
        "text": fallback(text),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate_mrkdwn(text, SECTION_MAX)}},
            {"type": "actions", "block_id": "page_actions", "elements": [
                button("Acknowledge", ACTION_ACK, &incident.reference.number().to_string(), Some("primary"))
            ]},
        ],
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// The resolution summary: its text in sections of at most 3,000 characters
/// (split between lines), and a button that writes the postmortem. A text
/// too long for Slack's 50 blocks goes as plain text, without the button.
pub fn summary_message(incident: &Incident, text: &str) -> Value {
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if !current.is_empty() && current.len() + line.len() + 1 > SECTION_MAX {
            sections.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        sections.push(current);
    }
    if sections.len() > 48 {
        return text_message(text);
    }
    let mut blocks: Vec<Value> = sections
        .iter()
        .map(|s| json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_mrkdwn(s, SECTION_MAX)}}))
        .collect();
    blocks.push(json!({"type": "actions", "block_id": "summary_actions", "elements": [
        button("📝 Write the postmortem", ACTION_POSTMORTEM, &incident.reference.number().to_string(), None)
    ]}));
    json!({
        "text": fallback(text),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A plain mrkdwn message (thread replies, ephemerals, DMs).
pub fn text_message(text: &str) -> Value {
    json!({
        "text": truncate_mrkdwn(text, TEXT_MAX),
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// An approval request: `text` and the Approve / Deny buttons for request `request`.
pub fn approval_message(text: &str, request: i64) -> Value {
    let id = request.to_string();
    json!({
        "text": fallback(text),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate_mrkdwn(text, SECTION_MAX)}},
            {"type": "actions", "block_id": "approval", "elements": [
                button("Approve", ACTION_APPROVE, &id, Some("primary")),
                button("Deny", ACTION_DENY, &id, Some("danger")),
            ]},
        ],
        "unfurl_links": false,
    })
}

/// The text a person would see of a message: its section texts, else `text`.
pub fn visible_text(body: &Value) -> String {
    let from_blocks: Vec<&str> = body
        .get("blocks")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("section"))
                .filter_map(|b| b.pointer("/text/text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if from_blocks.is_empty() {
        body.get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        from_blocks.join("\n")
    }
}

fn text_input(block_id: &str, label: &str, placeholder: &str, optional: bool) -> Value {
    json!({
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "plain_text_input",
            "action_id": block_id,
            "multiline": true,
            "max_length": 2000,
            "placeholder": {"type": "plain_text", "text": placeholder},
        },
    })
}

/// The modal the Resolve button opens: root cause, resolution, follow-up.
pub fn resolve_modal(incident: &Incident) -> Value {
    let title: String = incident.title.chars().take(140).collect();
    json!({
        "type": "modal",
        "callback_id": CALLBACK_RESOLVE,
        "private_metadata": incident.reference.number().to_string(),
        "title": {"type": "plain_text", "text": format!("Resolve {}", incident.reference)},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "context", "elements": [{"type": "plain_text", "text": title}]},
            text_input(FIELD_ROOT_CAUSE, "Root cause", "One or two sentences: what broke and why", false),
            text_input(FIELD_RESOLUTION, "Resolution", "What was done to fix it", false),
            text_input(FIELD_FOLLOW_UP, "Follow-up", "Ticket for the post-mortem, e.g. OPS-123", true),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_without_breaking_entities_or_mentions() {
        let text = format!("{}&amp;<@U123456>", "a".repeat(2_990));
        let cut = truncate_mrkdwn(&text, 3_000);
        assert!(cut.chars().count() <= 3_000);
        assert!(cut.ends_with(TRUNCATED));
        let body = cut.trim_end_matches(TRUNCATED);
        assert!(!body.contains('&') && !body.contains('<'), "{body}");
        assert_eq!(truncate_mrkdwn("short", 3_000), "short");
    }

    #[test]
    fn the_root_message_offers_only_the_buttons_that_still_apply() {
        let mut i = crate::templates::sample_incident();
        i.state = IncidentState::Open;
        i.source = crate::incident::IncidentSource::Slack;
        let ids = |v: &Value| -> Vec<String> {
            v.pointer("/blocks/1/elements")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|b| {
                            b.get("action_id").and_then(Value::as_str).map(String::from)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            ids(&root_message(&i, "x", &[])),
            vec![ACTION_ACK, ACTION_RESOLVE]
        );
        i.state = IncidentState::Acknowledged;
        assert_eq!(ids(&root_message(&i, "x", &[])), vec![ACTION_RESOLVE]);
        i.source = crate::incident::IncidentSource::Alertmanager;
        assert_eq!(
            ids(&root_message(&i, "x", &[])),
            vec![ACTION_RESOLVE, ACTION_SILENCE]
        );
        let with_menu = root_message(&i, "x", &[("check-api".into(), "API health".into())]);
        assert_eq!(
            with_menu["blocks"][2]["elements"][0]["options"][0]["value"],
            "check-api"
        );
        assert_eq!(with_menu["blocks"][2]["block_id"], "42");
        i.state = IncidentState::Resolved;
        let resolved = root_message(&i, "x", &[("check-api".into(), String::new())]);
        assert!(resolved.pointer("/blocks/1").is_none());
    }

    #[test]
    fn visible_text_prefers_section_blocks() {
        let body = json!({"text": "fallback", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "line one"}},
            {"type": "actions", "elements": []},
            {"type": "section", "text": {"type": "mrkdwn", "text": "line two"}}
        ]});
        assert_eq!(visible_text(&body), "line one\nline two");
        assert_eq!(visible_text(&json!({"text": "plain"})), "plain");
    }

    #[test]
    fn an_approval_request_carries_approve_and_deny_for_its_request() {
        let m = approval_message("🔐 <@U1> asks to run *restart*", 7);
        assert_eq!(m["blocks"][1]["elements"][0]["action_id"], ACTION_APPROVE);
        assert_eq!(m["blocks"][1]["elements"][1]["action_id"], ACTION_DENY);
        assert_eq!(m["blocks"][1]["elements"][1]["value"], "7");
    }
}
