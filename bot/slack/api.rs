//! One Slack Web API call, and what its answer means.
//!
//! Slack answers HTTP 200 with `{"ok": false, "error": "…"}` for most failures,
//! 429 with `Retry-After` when rate-limited, and 5xx when it is having a bad day.
//! [`CallError`] sorts these into what the outbox should do next. Every class
//! has a deliberate policy, and only errors Slack documents as final for that
//! message give up on it; anything else (an error code Klaxon does not know,
//! a proxy's 403 or 407, a wrong API URL answering 404) is retried with
//! backoff and counted, so a mistake in the install delays messages and
//! alerts, it never loses them.

use std::collections::HashMap;
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
    /// Worth trying again later: 5xx, timeouts, connection errors, Slack-side
    /// errors, and whatever Klaxon does not recognise (counted by its code).
    Transient(String),
    /// The token is wrong or revoked: retried (after the operator fixes it)
    /// and logged loudly.
    Auth(String),
    /// The app lacks a scope this call needs (`missing_scope`; Slack names it
    /// in `needed`): logged with the scope; a message retries until the app
    /// is reinstalled with it, a page's direct message gives up and the
    /// thread says so.
    Scope(String),
    /// The bot cannot post in this channel (`not_in_channel`,
    /// `channel_not_found`, `is_archived`): retried, because inviting the bot
    /// fixes it, and the person and the log are told.
    NoAccess(String),
    /// Slack will never accept this message as it is (`no_text`,
    /// `msg_too_long`, `message_not_found`, `user_disabled` …).
    Permanent(String),
}

impl CallError {
    /// Whether a post that failed this way may still have reached the
    /// channel: no answer came (a timeout, a dropped connection, an answer
    /// that is not JSON), a 5xx, or Slack's `fatal_error` / `internal_error`
    /// ("some aspect of the operation may have succeeded", Slack's
    /// chat.postMessage docs). A 4xx or any other Slack error code means
    /// nothing was posted.
    pub fn may_have_posted(&self) -> bool {
        match self {
            CallError::Transient(code) => {
                matches!(
                    code.as_str(),
                    "timeout"
                        | "connection_error"
                        | "invalid_response"
                        | "fatal_error"
                        | "internal_error"
                ) || code.starts_with("http_5")
            }
            _ => false,
        }
    }

    /// Whether Slack may still be working on the call when Klaxon learns of
    /// the failure (a timeout, a gateway's timeout): then a lookup must wait
    /// a little, or it may miss a message Slack stores a moment later.
    pub fn may_still_be_in_flight(&self) -> bool {
        matches!(self, CallError::Transient(code)
            if matches!(code.as_str(), "timeout" | "connection_error" | "http_504"))
    }

    /// A short label for metrics and the outbox row.
    pub fn code(&self) -> String {
        match self {
            CallError::RateLimited(_) => "ratelimited".into(),
            CallError::Scope(_) => "missing_scope".into(),
            CallError::Transient(c)
            | CallError::Auth(c)
            | CallError::NoAccess(c)
            | CallError::Permanent(c) => c.clone(),
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

/// Slack error codes that say the bot cannot post in the channel (yet).
const NO_ACCESS_ERRORS: &[&str] = &["not_in_channel", "channel_not_found", "is_archived"];

/// Slack error codes that say this message will never be accepted as it is
/// (from the Web API's method pages: chat.postMessage, chat.update,
/// chat.postEphemeral, conversations.open, views.open).
const PERMANENT_ERRORS: &[&str] = &[
    "no_text",
    "msg_too_long",
    "too_many_attachments",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_attachments",
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_json",
    "json_not_object",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "thread_not_found",
    "user_not_in_channel",
    "user_not_found",
    "users_not_found",
    "user_disabled",
    "cannot_dm_bot",
    "messages_tab_disabled",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "posting_to_general_channel_denied",
    "duplicate_channel_not_found",
    "expired_trigger_id",
    "invalid_trigger_id",
    "exchanged_trigger_id",
    "unknown_method",
    "method_deprecated",
];

/// Slack error codes that say the bot's credentials are the problem.
const AUTH_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
];

/// The bot token scopes Klaxon uses, as the shipped app manifest
/// (`deploy/slack-app-manifest.yml`) grants them, with what each is for.
pub const REQUIRED_SCOPES: &[(&str, &str)] = &[
    ("commands", "the /incident command"),
    ("chat:write", "every thread message and root update"),
    (
        "chat:write.public",
        "posting in a public channel the bot was not invited to",
    ),
    ("im:write", "direct-message pages"),
    (
        "im:history",
        "\"ack\" replies to a page's direct message, and finding a page whose outcome was lost",
    ),
    (
        "usergroups:read",
        "user groups in ladders and action permissions",
    ),
    (
        "channels:read",
        "checking the public channels Klaxon posts in",
    ),
    (
        "groups:read",
        "checking the private channels Klaxon posts in",
    ),
    (
        "channels:history",
        "finding a post whose outcome was lost (public channels), so it is not posted twice",
    ),
    (
        "groups:history",
        "finding a post whose outcome was lost (private channels), so it is not posted twice",
    ),
    ("files:write", "postmortem files in the thread"),
    (
        "channels:manage",
        "a channel of its own for each major incident (incidents.channel_for): create, topic, invite, archive",
    ),
];

/// What `auth.test` says about the bot token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// The workspace's name.
    pub team: String,
    /// The bot user's name.
    pub user: String,
    /// The bot user's id (`U…`).
    pub user_id: String,
    /// The scopes granted, when Slack says (`X-OAuth-Scopes`).
    pub scopes: Option<Vec<String>>,
}

impl AuthInfo {
    /// The [`REQUIRED_SCOPES`] the token lacks (none when Slack did not say).
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        let Some(granted) = &self.scopes else {
            return Vec::new();
        };
        REQUIRED_SCOPES
            .iter()
            .map(|(scope, _)| *scope)
            .filter(|scope| !granted.iter().any(|g| g == scope))
            .collect()
    }
}

/// Methods whose arguments Slack wants form-encoded.
const FORM_METHODS: &[&str] = &[
    "usergroups.users.list",
    "conversations.info",
    "conversations.history",
    "conversations.replies",
    "auth.test",
    "conversations.list",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
];

/// The `event_type` of the metadata Klaxon puts on every message it posts
/// (Slack: "Message metadata"); the payload names the outbox row, so a post
/// whose outcome was lost can be found again ([`SlackApi::find_posted`]).
pub const METADATA_EVENT: &str = "klaxon_outbox_message";

/// The `metadata` argument of `chat.postMessage` for outbox row `outbox_id`,
/// created at `created_at` (the pair tells Klaxon installs sharing a channel apart).
pub fn message_metadata(outbox_id: i64, created_at: crate::time::Millis) -> Value {
    json!({
        "event_type": METADATA_EVENT,
        "event_payload": {"outbox_id": outbox_id, "created_at": created_at.0},
    })
}

/// How far before a row's creation a lookup starts: Slack's clock and
/// Klaxon's may disagree a little.
const LOOKUP_SKEW_MS: i64 = 60_000;
/// Pages of `conversations.history` a lookup reads at most (200 messages each).
const LOOKUP_PAGES: usize = 10;

/// A message the console stand-in "posted", for `klaxon demo`'s transcript.
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    pub method: String,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub ts: String,
    pub user: Option<String>,
    pub text: String,
    /// A file shared (`files.completeUploadExternal`): its name and content.
    pub file: Option<(String, String)>,
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

    /// Whether `url` may receive a reply to a button press: Slack's own
    /// `https://hooks.slack.com/…`, or (for a test double) the configured API's host.
    pub fn accepts_response_url(&self, url: &str) -> bool {
        match self {
            SlackApi::Console(_) => false,
            SlackApi::Web(web) => {
                let origin = |u: &str| -> Option<String> {
                    let parsed = reqwest::Url::parse(u).ok()?;
                    Some(format!(
                        "{}://{}:{}",
                        parsed.scheme(),
                        parsed.host_str()?,
                        parsed.port_or_known_default()?
                    ))
                };
                url.starts_with("https://hooks.slack.com/")
                    || (origin(url).is_some() && origin(url) == origin(&web.base_url))
            }
        }
    }

    /// Posts `text` to a press's `response_url`, visible only to the person
    /// who pressed (`response_type: ephemeral`, the original message kept).
    pub async fn respond(&self, url: &str, text: &str) -> Result<(), CallError> {
        let SlackApi::Web(web) = self else {
            return Ok(());
        };
        let body = json!({
            "response_type": "ephemeral",
            "replace_original": false,
            "text": text,
        });
        let response = web.client.post(url).json(&body).send().await.map_err(|e| {
            CallError::Transient(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection_error".into()
            })
        })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(CallError::Transient(format!(
                "http_{}",
                response.status().as_u16()
            )))
        }
    }

    /// `auth.test`: who the bot token belongs to, and the scopes it was
    /// granted (Slack: "auth.test", and the `X-OAuth-Scopes` header every Web
    /// API answer carries). The console stand-in has every scope.
    pub async fn auth_test(&self) -> Result<AuthInfo, CallError> {
        let (answer, scopes) = match self {
            SlackApi::Web(web) => web.call_with_scopes("auth.test", &json!({})).await?,
            SlackApi::Console(_) => (json!({"team": "console", "user": "klaxon"}), None),
        };
        let field = |k: &str| {
            answer
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        Ok(AuthInfo {
            team: field("team"),
            user: field("user"),
            user_id: field("user_id"),
            scopes,
        })
    }

    /// Finds the messages Klaxon posted for the outbox rows `wanted` (each
    /// an outbox id and its row's creation time) in `channel`, or in the
    /// thread `thread_ts` of it: the `ts` of each one Slack has, by outbox id
    /// (a row missing from the map is not in Slack). Reads
    /// `conversations.history` (or `conversations.replies`) with
    /// `include_all_metadata` (history newest first, a thread's replies
    /// oldest first), from a minute before the oldest row was created, until
    /// every row is found or at most 2,000 messages;
    /// needs the `channels:history`, `groups:history` or `im:history` scope of
    /// that conversation. One read serves every row of a channel whose
    /// outcome was lost (after an outage, a whole backlog): Slack allows
    /// about 50 of these calls a minute ("Rate limits", Tier 3).
    pub async fn find_posted(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        wanted: &[(i64, crate::time::Millis)],
    ) -> Result<HashMap<i64, String>, CallError> {
        let mut found = HashMap::new();
        let Some(oldest) = wanted.iter().map(|(_, created)| created.0).min() else {
            return Ok(found);
        };
        let oldest = (oldest - LOOKUP_SKEW_MS).max(0);
        let mut args = json!({
            "channel": channel,
            "oldest": format!("{}.{:06}", oldest / 1000, (oldest % 1000) * 1000),
            "include_all_metadata": "true",
            "limit": "200",
        });
        let method = match thread_ts {
            Some(ts) => {
                args["ts"] = json!(ts);
                "conversations.replies"
            }
            None => "conversations.history",
        };
        let wanted: HashMap<i64, Value> = wanted
            .iter()
            .map(|(id, created)| (*id, message_metadata(*id, *created)))
            .collect();
        for _ in 0..LOOKUP_PAGES {
            let answer = self.call(method, &args).await?;
            for message in answer
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(metadata) = message.get("metadata") else {
                    continue;
                };
                let id = metadata
                    .pointer("/event_payload/outbox_id")
                    .and_then(Value::as_i64);
                let ts = message.get("ts").and_then(Value::as_str);
                if let (Some(id), Some(ts)) = (id, ts)
                    && wanted.get(&id) == Some(metadata)
                {
                    found.insert(id, ts.to_string());
                }
            }
            if found.len() == wanted.len() {
                return Ok(found);
            }
            match answer
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
            {
                Some(cursor) if !cursor.is_empty() => args["cursor"] = json!(cursor),
                _ => return Ok(found),
            }
        }
        Ok(found)
    }

    /// `apps.connections.open` with the app-level token (`xapp-…`, scope
    /// `connections:write`): the WebSocket URL of a fresh Socket Mode
    /// connection (Slack: "apps.connections.open"; the URL is good for one
    /// connection, within 30 seconds). The console stand-in has none.
    pub async fn open_connection(&self, app_token: &SecretString) -> Result<String, CallError> {
        let SlackApi::Web(web) = self else {
            return Err(CallError::Permanent("console_mode".into()));
        };
        let (answer, _) = web
            .call_as("apps.connections.open", &json!({}), app_token)
            .await?;
        answer
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CallError::Transient("invalid_response".into()))
    }

    /// Shares a text file in `channel` (in the thread `thread_ts` when given)
    /// through Slack's upload flow ("Uploading files": `files.getUploadURLExternal`
    /// with the name and length in bytes, the bytes POSTed to the URL it
    /// returns, then `files.completeUploadExternal`; the older `files.upload`
    /// is retired). Needs the `files:write` scope. Returns the file's id.
    pub async fn upload_file(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        file: &crate::store::outbox::FilePayload,
    ) -> Result<String, CallError> {
        let web = match self {
            SlackApi::Web(web) => web,
            SlackApi::Console(console) => return Ok(console.upload(channel, thread_ts, file)),
        };
        let bytes = file.content.as_bytes().to_vec();
        let ticket = web
            .call(
                "files.getUploadURLExternal",
                &json!({"filename": file.filename, "length": bytes.len().to_string()}),
            )
            .await?;
        let (Some(url), Some(id)) = (
            ticket.get("upload_url").and_then(Value::as_str),
            ticket.get("file_id").and_then(Value::as_str),
        ) else {
            return Err(CallError::Transient("invalid_response".into()));
        };
        let response = web
            .client
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                CallError::Transient(if e.is_timeout() {
                    "timeout".into()
                } else {
                    "connection_error".into()
                })
            })?;
        if !response.status().is_success() {
            return Err(CallError::Transient(format!(
                "upload_http_{}",
                response.status().as_u16()
            )));
        }
        let mut complete = json!({
            "files": json!([{"id": id, "title": file.title}]).to_string(),
            "channel_id": channel,
        });
        if let Some(ts) = thread_ts {
            complete["thread_ts"] = json!(ts);
        }
        if let Some(comment) = &file.initial_comment {
            complete["initial_comment"] = json!(comment);
        }
        web.call("files.completeUploadExternal", &complete).await?;
        Ok(id.to_string())
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
        self.call_with_scopes(method, body)
            .await
            .map(|(answer, _)| answer)
    }

    /// Like `call`, also returning the scopes Slack says the token has
    /// (the `X-OAuth-Scopes` response header).
    async fn call_with_scopes(
        &self,
        method: &str,
        body: &Value,
    ) -> Result<(Value, Option<Vec<String>>), CallError> {
        self.call_as(method, body, &self.token).await
    }

    /// Calls `method` with `token` (the bot token, or the app-level token
    /// for `apps.connections.open`).
    async fn call_as(
        &self,
        method: &str,
        body: &Value,
        token: &SecretString,
    ) -> Result<(Value, Option<Vec<String>>), CallError> {
        let url = format!("{}/{}", self.base_url, method);
        let request = self.client.post(&url).bearer_auth(token.expose_secret());
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
        if !status.is_success() {
            // 5xx: Slack is having a bad day. Any other status is not Slack
            // speaking (Slack answers its errors with 200): a proxy's 403 or
            // 407, a wrong KLAXON_SLACK_API_URL's 404. Retried and counted.
            return Err(CallError::Transient(format!("http_{}", status.as_u16())));
        }
        let scopes = response
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
        let answer: Value = response
            .json()
            .await
            .map_err(|_| CallError::Transient("invalid_response".into()))?;
        classify(answer).map(|answer| (answer, scopes))
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
    let c = code.as_str();
    Err(if c == "ratelimited" {
        CallError::RateLimited(Duration::from_secs(1))
    } else if c == "missing_scope" {
        CallError::Scope(
            answer
                .get("needed")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
        )
    } else if TRANSIENT_ERRORS.contains(&c) {
        CallError::Transient(code)
    } else if AUTH_ERRORS.contains(&c) {
        CallError::Auth(code)
    } else if NO_ACCESS_ERRORS.contains(&c) {
        CallError::NoAccess(code)
    } else if PERMANENT_ERRORS.contains(&c) {
        CallError::Permanent(code)
    } else {
        CallError::Transient(code)
    })
}

impl ConsoleApi {
    /// A file "shared": logged and copied to the transcript whole.
    fn upload(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        file: &crate::store::outbox::FilePayload,
    ) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            target: "klaxon::slack::console",
            method = "files.completeUploadExternal",
            channel,
            thread_ts = thread_ts.unwrap_or(""),
            "📎 {} ({} bytes)",
            file.filename,
            file.content.len()
        );
        if let Some(tx) = &self.transcript {
            let _ = tx.send(ConsoleMessage {
                method: "files.completeUploadExternal".into(),
                channel: channel.to_string(),
                thread_ts: thread_ts.map(str::to_string),
                ts: format!("F{n}"),
                user: None,
                text: file.initial_comment.clone().unwrap_or_default(),
                file: Some((file.filename.clone(), file.content.clone())),
            });
        }
        format!("F{n}")
    }

    fn call(&self, method: &str, body: &Value) -> Value {
        if method == "usergroups.users.list" {
            // No workspace behind the console: groups have no members.
            return json!({"ok": true, "users": []});
        }
        let n = self.counter.load(Ordering::Relaxed) + 1;
        if method == "conversations.create" {
            // A channel "created" in the console: an id of Slack's shape.
            self.counter.fetch_add(1, Ordering::Relaxed);
            let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
            tracing::info!(target: "klaxon::slack::console", method, "created #{name}");
            if let Some(tx) = &self.transcript {
                let _ = tx.send(ConsoleMessage {
                    method: method.into(),
                    channel: format!("C0ROOM{n}"),
                    thread_ts: None,
                    ts: String::new(),
                    user: None,
                    text: format!("#{name}"),
                    file: None,
                });
            }
            return json!({"ok": true, "channel": {"id": format!("C0ROOM{n}"), "name": name}});
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
                user: str_field("user").or_else(|| str_field("users")),
                text,
                file: None,
            });
        }
        match method {
            "conversations.open" => json!({"ok": true, "channel": {"id": channel}}),
            // The console keeps no history: nothing was ever posted twice there.
            "conversations.history" | "conversations.replies" => {
                json!({"ok": true, "messages": []})
            }
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
            Err(CallError::NoAccess("channel_not_found".into()))
        );
        assert_eq!(
            classify(json!({"ok": false, "error": "no_text"})),
            Err(CallError::Permanent("no_text".into()))
        );
        assert_eq!(
            classify(json!({"ok": false, "error": "something_new_from_slack"})),
            Err(CallError::Transient("something_new_from_slack".into())),
            "an error Klaxon does not know is retried, not dropped"
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
            Err(CallError::Transient("unknown_error".into()))
        );
    }
}
