//! The team's issue tracker, reached through one outgoing webhook: the
//! [`Tracker`] port on reqwest.
//!
//! Klaxon knows no tracker. Each follow-up is POSTed to `[followups]
//! webhook_url` with the body the team's template renders (README "Big
//! incidents"); Jira, GitHub and Linear automations, or a small relay, turn
//! it into an issue. 2xx files it; 408, 429 and 5xx (and no answer) are
//! retried; another 4xx is a refusal that waiting will not fix. A retry after
//! an answer that never came may file it twice: every attempt at one
//! follow-up carries the same `Idempotency-Key` (and the body its `id`), so a
//! receiver can tell.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::FollowUpWebhook;
use crate::usecases::ports::{BoxFuture, Refusal, Tracker};

/// One webhook call may take this long.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct WebhookTracker {
    client: reqwest::Client,
    url: String,
    content_type: String,
    token: Option<SecretString>,
}

impl WebhookTracker {
    pub fn new(webhook: &FollowUpWebhook) -> anyhow::Result<WebhookTracker> {
        Ok(WebhookTracker {
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
                .build()?,
            url: webhook.url.clone(),
            content_type: webhook.content_type.clone(),
            token: webhook.token.clone(),
        })
    }
}

/// What names the issue in a tracker's JSON answer: GitHub's `html_url`,
/// Jira's `key`, or a generic `url` / `id` (a number or a string).
fn issue_reference(answer: &Value) -> Option<String> {
    ["html_url", "key", "url", "identifier", "id"]
        .iter()
        .find_map(|k| match answer.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.chars().take(200).collect()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
}

impl Tracker for WebhookTracker {
    fn file<'a>(
        &'a self,
        body: String,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Refusal>> {
        Box::pin(async move {
            let mut request = self
                .client
                .post(&self.url)
                .header("content-type", &self.content_type)
                .header("idempotency-key", key)
                .body(body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            let response = request.send().await.map_err(|e| {
                Refusal::Retry(if e.is_timeout() {
                    "timeout".into()
                } else {
                    "connection_error".into()
                })
            })?;
            let status = response.status();
            if status.is_success() {
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                return Ok(issue_reference(&answer));
            }
            let code = format!("http_{}", status.as_u16());
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                Err(Refusal::Retry(code))
            } else {
                Err(Refusal::Refused(code))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_is_named_by_the_field_trackers_answer_with() {
        assert_eq!(
            issue_reference(
                &serde_json::json!({"id": 7, "html_url": "https://github.com/o/r/issues/7"})
            ),
            Some("https://github.com/o/r/issues/7".into())
        );
        assert_eq!(
            issue_reference(&serde_json::json!({"id": "10001", "key": "OPS-12"})),
            Some("OPS-12".into())
        );
        assert_eq!(
            issue_reference(&serde_json::json!({"id": 12})),
            Some("12".into())
        );
        assert_eq!(issue_reference(&Value::Null), None);
    }
}
