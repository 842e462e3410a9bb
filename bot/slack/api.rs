//! One Slack Web API call, and what its answer means.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "…"}` for most failures,
//! 429 with `Retry-After` when rate-limited, and 5xx when it is having a bad day.
//! [`CallError`] sorts these into what the outbox should do next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What a failed call means for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Slack asked us to wait this long (HTTP 429 or `ratelimited`).
    RateLimited(Duration),
    /// Worth trying again later: 5xx, timeouts, connection errors, Slack-side errors.
    Transient(String),
    /// The token is wrong or revoked: retried (after the operator fixes it) and logged loudly.
    Auth(String),
    /// Slack will never accept this message (`channel_not_found`, `not_in_channel`, …).
    Permanent(String),
}

impl CallError {
    /// A short label for metrics and the outbox row.
    pub fn code(&self) -> String {
        match self {
            CallError::RateLimited(_) => "ratelimited".into(),
            CallError::Transient(c) | CallError::Auth(c) | CallError::Permanent(c) => c.clone(),
        }
    }
}

/// Slack error codes that say "not now" rather than "never".
const TRANSIENT_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// Slack error codes that say the bot's credentials are the problem.
const AUTH_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
];

/// Methods whose arguments Slack wants form-encoded.
const FORM_METHODS: &[&str] = &["usergroups.users.list"];

/// A message the console stand-in "posted", for `klaxon demo`'s transcript.
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    pub method: String,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub ts: String,
    pub user: Option<String>,
    pub text: String,
}

/// The real Web API, or the console stand-in.
#[derive(Debug)]
pub enum SlackApi {
    Web(WebApi),
    Console(ConsoleApi),
}

#[derive(Debug)]
pub struct WebApi {
    client: reqwest::Client,
    base_url: String,
    token: SecretString,
}

#[derive(Debug)]
pub struct ConsoleApi {
    counter: AtomicU64,
    transcript: Option<mpsc::UnboundedSender<ConsoleMessage>>,
}

impl SlackApi {
    /// The Web API at `base_url` (e.g. `https://slack.com/api`).
    pub fn web(base_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<SlackApi> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SlackApi::Web(WebApi {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
        }))
    }

    /// Logs messages instead of posting them; optionally copies them to a transcript.
    pub fn console(transcript: Option<mpsc::UnboundedSender<ConsoleMessage>>) -> SlackApi {
        SlackApi::Console(ConsoleApi {
            counter: AtomicU64::new(0),
            transcript,
        })
    }

    pub fn is_console(&self) -> bool {
        matches!(self, SlackApi::Console(_))
    }

    /// Calls `method` with a JSON body; `Ok` carries Slack's answer when `ok` is true.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, CallError> {
        match self {
            SlackApi::Web(web) => web.call(method, body).await,
            SlackApi::Console(console) => Ok(console.call(method, body)),
        }
    }
}

impl WebApi {
    async fn call(&self, method: &str, body: &Value) -> Result<Value, CallError> {
        let url = format!("{}/{}", self.base_url, method);
        let request = self
            .client
            .post(&url)
            .bearer_auth(self.token.expose_secret());
        // Read methods take form-encoded arguments; the rest take JSON.
        let request = if FORM_METHODS.contains(&method) {
            let fields: Vec<(String, String)> = body
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            request.form(&fields)
        } else {
            request.json(body)
        };
        let response = request.send().await.map_err(|e| {
            CallError::Transient(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection_error".into()
            })
        })?;
        let status = response.status();
        if status.as_u16() == 429 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(5)
                .clamp(1, 3_600);
            return Err(CallError::RateLimited(Duration::from_secs(wait)));
        }
        if status.is_server_error() {
            return Err(CallError::Transient(format!("http_{}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(CallError::Permanent(format!("http_{}", status.as_u16())));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|_| CallError::Transient("invalid_response".into()))?;
        classify(answer)
    }
}

/// Sorts a 200 answer: `ok: true` passes, errors are sorted by code.
pub fn classify(answer: Value) -> Result<Value, CallError> {
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(answer);
    }
    let code = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    Err(if code == "ratelimited" {
        CallError::RateLimited(Duration::from_secs(1))
    } else if TRANSIENT_ERRORS.contains(&code.as_str()) {
        CallError::Transient(code)
    } else if AUTH_ERRORS.contains(&code.as_str()) {
        CallError::Auth(code)
    } else {
        CallError::Permanent(code)
    })
}

impl ConsoleApi {
    fn call(&self, method: &str, body: &Value) -> Value {
        if method == "usergroups.users.list" {
            // No workspace behind the console: groups have no members.
            return json!({"ok": true, "users": []});
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let now = jiff::Timestamp::now().as_millisecond();
        let ts = format!("{}.{:06}", now / 1000, n);
        let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let channel = if method == "conversations.open" {
            format!("D{}", str_field("users").unwrap_or_default())
        } else {
            str_field("channel").unwrap_or_default()
        };
        let text = crate::blocks::visible_text(body);
        let thread_ts = str_field("thread_ts")
            .or_else(|| (method == "chat.update").then(|| str_field("ts")).flatten());
        tracing::info!(
            target: "klaxon::slack::console",
            method,
            channel = %channel,
            thread_ts = thread_ts.as_deref().unwrap_or(""),
            "{text}"
        );
        if let Some(tx) = &self.transcript {
            let _ = tx.send(ConsoleMessage {
                method: method.to_string(),
                channel: channel.clone(),
                thread_ts,
                ts: ts.clone(),
                user: str_field("user"),
                text,
            });
        }
        match method {
            "conversations.open" => json!({"ok": true, "channel": {"id": channel}}),
            "views.open" => json!({"ok": true, "view": {"id": format!("V{n}")}}),
            _ => json!({"ok": true, "channel": channel, "ts": ts, "message_ts": ts}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_error_codes_are_sorted_into_what_to_do_next() {
        assert!(classify(json!({"ok": true, "ts": "1.2"})).is_ok());
        assert_eq!(
            classify(json!({"ok": false, "error": "channel_not_found"})),
            Err(CallError::Permanent("channel_not_found".into()))
        );
        assert_eq!(
            classify(json!({"ok": false, "error": "internal_error"})),
            Err(CallError::Transient("internal_error".into()))
        );
        assert_eq!(
            classify(json!({"ok": false, "error": "invalid_auth"})),
            Err(CallError::Auth("invalid_auth".into()))
        );
        assert_eq!(
            classify(json!({"ok": false, "error": "ratelimited"})),
            Err(CallError::RateLimited(Duration::from_secs(1)))
        );
        assert_eq!(
            classify(json!({"weird": 1})),
            Err(CallError::Permanent("unknown_error".into()))
        );
    }
}
