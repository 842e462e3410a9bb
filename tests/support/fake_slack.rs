//! A fake Slack Web API on 127.0.0.1, faithful enough to test against.
//!
//! It checks the bot token (`not_authed` / `invalid_auth`, and every call
//! refused once the token is revoked), answers like Slack (`{"ok": true,
//! "channel", "ts"}`; `channel_not_found`, `not_in_channel`, `is_archived`,
//! `message_not_found`, `no_text` …), knows which channels the bot can see and
//! post in (a private channel it was not invited to does not exist for it, as
//! in Slack), takes replies at a button press's `response_url`, records every
//! call with its outcome, and can be told to fail: 429 with `Retry-After`,
//! 5xx, Slack errors, or a delay before answering.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TOKEN: &str = "xoxb-test-0000-fake-slack";

/// What the next call (or every call) should suffer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP status and no Slack body.
    Status(u16),
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// HTTP 200 with `{"ok": false, "error": code}`.
    SlackError(&'static str),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Do the call (a post reaches the channel), then answer HTTP 504 as a
    /// proxy does when Slack's answer is late: the caller cannot know.
    LoseAnswer,
}

/// A post held before its answer (see [`FakeSlack::hold_next_post`]): the
/// message is in the channel, the answer waits for [`Hold::release`].
#[derive(Debug, Default)]
pub struct Hold {
    arrived: tokio::sync::Notify,
    released: tokio::sync::Notify,
}

impl Hold {
    /// Waits until the held post has reached the fake.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
    /// Lets the held answer go.
    pub fn release(&self) {
        self.released.notify_one();
    }
}

/// What the bot may do in a channel (Slack: "conversations.info",
/// "chat.postMessage" errors). The bot has `chat:write.public`, so a public
/// channel needs no invitation unless set to [`Access::PublicNotMember`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The bot is in the channel.
    Member,
    /// A public channel the bot may not post in (`not_in_channel`).
    PublicNotMember,
    /// A private channel the bot was not invited to: invisible to it
    /// (`channel_not_found` for every call).
    PrivateNotMember,
    /// Archived (`is_archived`).
    Archived,
}

/// Methods Klaxon calls to check its install or to look for a message it
/// may have posted, not to say anything: kept apart from
/// [`FakeSlack::calls`] (see [`FakeSlack::checks`]) and spared injected
/// faults, so a test's faults hit the messages it is about.
pub const CHECK_METHODS: &[&str] = &[
    "auth.test",
    "conversations.info",
    "conversations.history",
    "conversations.replies",
];

/// The method recorded for a reply posted to a `response_url`.
pub const RESPONSE_URL: &str = "response_url";

/// One call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// HTTP status answered.
    pub status: u16,
    /// `ok` of the answer (false for faults and Slack errors).
    pub ok: bool,
    /// The `ts` Slack assigned, for posts.
    pub ts: Option<String>,
    /// When the fake answered.
    pub at: std::time::Instant,
}

impl Call {
    pub fn text(&self) -> String {
        klaxon::blocks::visible_text(&self.body)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// Calls of [`CHECK_METHODS`].
    checks: Vec<Call>,
    next_faults: VecDeque<Fault>,
    always: Option<Fault>,
    channels: HashSet<String>,
    /// Channels where the bot is not simply a member.
    access: HashMap<String, Access>,
    /// Once true, every Web API call answers `token_revoked`.
    revoked: bool,
    /// Scopes the bot token lacks (of those the app manifest grants).
    scopes_withheld: HashSet<String>,
    /// What every check call (`auth.test`, `conversations.info`) suffers.
    check_fault: Option<Fault>,
    /// (channel, ts) of every message posted.
    messages: HashMap<(String, String), Value>,
    /// The next `chat.postMessage` is done, then its answer waits for this.
    hold: Option<Arc<Hold>>,
    /// Slack's per-channel posting limit when set: (messages per second,
    /// burst); over it, 429 with `Retry-After`.
    channel_limit: Option<(f64, u32)>,
    /// Per channel: when each accepted post arrived (for the limit).
    posted_at: HashMap<String, Vec<std::time::Instant>>,
    /// User group id → member user ids.
    groups: HashMap<String, Vec<String>>,
    /// Users whose accounts are deactivated (`user_disabled`).
    disabled: HashSet<String>,
    /// Answers `apps.connections.open` (see `super::socket_mode`); `None`: the
    /// app has no Socket Mode.
    connections_open: Option<ConnectionsOpen>,
    counter: u64,
}

/// Slack's answer to `apps.connections.open`, given the Authorization header.
#[derive(Clone)]
pub struct ConnectionsOpen(pub Arc<OpenFn>);

/// A function from the Authorization header to Slack's answer.
pub type OpenFn = dyn Fn(Option<&str>) -> Value + Send + Sync;

impl std::fmt::Debug for ConnectionsOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionsOpen")
    }
}

#[derive(Debug, Clone)]
pub struct FakeSlack {
    /// The Web API base URL, to use as `KLAXON_SLACK_API_URL`.
    pub api_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSlack {
    /// Starts the fake; `channels` are the conversations that exist.
    pub async fn start(channels: &[&str]) -> FakeSlack {
        // Every test starts a fake Slack: the place to pick the TLS crypto
        // provider before any HTTP client exists (as `klaxon serve` does at start).
        klaxon::server::install_crypto_provider();
        let inner = Arc::new(Mutex::new(Inner {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            ..Inner::default()
        }));
        let router = Router::new()
            .route("/api/{method}", post(handle))
            .route("/hooks/{id}", post(response_url))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack");
        let addr = listener.local_addr().expect("fake Slack address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeSlack {
            api_url: format!("http://{addr}/api"),
            inner,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets `apps.connections.open` answer through `open` (the Socket Mode fake).
    pub fn on_connections_open(&self, open: ConnectionsOpen) {
        self.lock().connections_open = Some(open);
    }

    /// The next calls suffer these faults, one each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().next_faults.extend(faults);
    }

    /// Every call suffers this fault until [`FakeSlack::heal`].
    pub fn fail_always(&self, fault: Fault) {
        self.lock().always = Some(fault);
    }

    /// Makes a user group with these members exist.
    pub fn set_group(&self, group: &str, members: &[&str]) {
        self.lock().groups.insert(
            group.to_string(),
            members.iter().map(|m| m.to_string()).collect(),
        );
    }

    /// Sets what the bot may do in `channel` (which must exist).
    pub fn set_access(&self, channel: &str, access: Access) {
        let mut g = self.lock();
        g.channels.insert(channel.to_string());
        g.access.insert(channel.to_string(), access);
    }

    /// `/invite @Klaxon` in `channel`: the bot becomes a member.
    pub fn invite(&self, channel: &str) {
        self.set_access(channel, Access::Member);
    }

    /// Revokes the bot token: every call answers `token_revoked` (Slack:
    /// after an uninstall or a token rotation).
    pub fn revoke_token(&self) {
        self.lock().revoked = true;
    }

    /// Installs the app without `scopes`: Slack's `X-OAuth-Scopes` header
    /// leaves them out.
    pub fn withhold_scopes(&self, scopes: &[&str]) {
        self.lock()
            .scopes_withheld
            .extend(scopes.iter().map(|s| s.to_string()));
    }

    /// Every check call (`auth.test`, `conversations.info`) suffers `fault`
    /// until [`FakeSlack::heal`].
    pub fn fail_checks(&self, fault: Fault) {
        self.lock().check_fault = Some(fault);
    }

    /// A `response_url` as Slack puts in a button press's payload, served by
    /// this fake (on the API's host, which Klaxon accepts for a test double).
    pub fn response_url(&self) -> String {
        let n = {
            let mut g = self.lock();
            g.counter += 1;
            g.counter
        };
        format!("{}/hooks/{n}", self.api_url.trim_end_matches("/api"))
    }

    /// Deactivates a user: direct messages to them fail with `user_disabled`.
    pub fn disable_user(&self, user: &str) {
        self.lock().disabled.insert(user.to_string());
    }

    /// Holds the answer to the next `chat.postMessage` (the message itself
    /// is posted) until [`Hold::release`]: a window in which to break the
    /// caller's database, as a crash between Slack's answer and "sent".
    pub fn hold_next_post(&self) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        self.lock().hold = Some(hold.clone());
        hold
    }

    /// Enforces a posting limit per channel, as Slack does: more than `burst`
    /// posts at once or more than `rate` a second sustained get HTTP 429.
    pub fn limit_channel_rate(&self, rate: f64, burst: u32) {
        self.lock().channel_limit = Some((rate, burst));
    }

    /// Posts (`chat.postMessage`) Slack took more than once: the same
    /// outbox row's metadata on two messages.
    pub fn doubled_posts(&self) -> Vec<Value> {
        let g = self.lock();
        let mut seen = HashSet::new();
        let mut doubled = Vec::new();
        let mut posts: Vec<&Value> = g.messages.values().collect();
        posts.sort_by_key(|m| {
            m.get("ts")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
        for m in posts {
            if let Some(meta) = m.get("metadata")
                && !seen.insert(meta.to_string())
            {
                doubled.push(m.clone());
            }
        }
        doubled
    }

    /// The most posts one channel took within any one second.
    pub fn busiest_second(&self, channel: &str) -> usize {
        let g = self.lock();
        let times = g.posted_at.get(channel).cloned().unwrap_or_default();
        let mut most = 0;
        for (i, start) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            most = most.max(n);
        }
        most
    }

    pub fn heal(&self) {
        let mut inner = self.lock();
        inner.always = None;
        inner.check_fault = None;
        inner.next_faults.clear();
    }

    /// Every check call so far (`auth.test`, `conversations.info`).
    pub fn checks(&self) -> Vec<Call> {
        self.lock().checks.clone()
    }

    /// Every call so far, checks aside.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Calls that succeeded (what a person in Slack would see).
    pub fn delivered(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.ok).collect()
    }

    /// Waits (up to `timeout`) until `done` holds for the delivered calls.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Call]) -> bool,
    ) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let delivered = self.delivered();
            if done(&delivered) {
                return delivered;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; delivered so far:\n{}",
                    delivered
                        .iter()
                        .map(|c| format!("  {} {}", c.method, c.body))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to 40 s) for a delivered message whose text contains
    /// `needle`; returns that text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let calls = self
            .wait_for(
                Duration::from_secs(40),
                &format!("a message with {needle:?}"),
                |c| c.iter().any(|c| c.text().contains(needle)),
            )
            .await;
        calls
            .iter()
            .map(Call::text)
            .find(|t| t.contains(needle))
            .unwrap_or_default()
    }

    /// Waits for the first call of `method` (e.g. `views.open`) and returns it.
    pub async fn wait_for_method(&self, method: &str) -> Call {
        let calls = self
            .wait_for(Duration::from_secs(40), method, |c| {
                c.iter().any(|c| c.method == method)
            })
            .await;
        calls
            .into_iter()
            .find(|c| c.method == method)
            .unwrap_or_else(|| panic!("no {method} call"))
    }

    /// Waits until `n` calls were delivered.
    pub async fn wait_for_count(&self, n: usize) -> Vec<Call> {
        self.wait_for(
            Duration::from_secs(15),
            &format!("{n} delivered calls"),
            |c| c.len() >= n,
        )
        .await
    }
}

/// A call answered normally: Slack's answer, the token's scopes (for
/// `X-OAuth-Scopes`) and a hold on the answer, if one was set.
type Answered = (Value, String, Option<Arc<Hold>>);

fn slack_error(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Result<Value, ()> = if is_json {
        serde_json::from_slice(&body).map_err(|_| ())
    } else {
        serde_urlencoded::from_bytes::<HashMap<String, String>>(&body)
            .map(|m| json!(m))
            .map_err(|_| ())
    };
    let body_value = parsed.clone().unwrap_or(Value::Null);

    // Socket Mode's one Web API method takes the app-level token, not the
    // bot token: answered by the Socket Mode fake, recorded with the checks
    // so message assertions see only messages.
    if method == "apps.connections.open" {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match g.connections_open.clone() {
            Some(open) => (open.0)(auth.as_deref()),
            None => slack_error("invalid_auth"),
        };
        g.checks.push(Call {
            method: method.clone(),
            body: body_value,
            status: 200,
            ok: answer["ok"] == json!(true),
            ts: None,
            at: std::time::Instant::now(),
        });
        return axum::Json(answer).into_response();
    }

    let is_check = CHECK_METHODS.contains(&method.as_str());
    let fault = if is_check {
        inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check_fault
            .clone()
    } else {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.next_faults.pop_front().or_else(|| g.always.clone())
    };
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }

    let outcome: Result<Answered, Box<Response>> = (|| {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        let record = |g: &mut Inner, status: u16, answer: &Value| {
            let log = if is_check {
                &mut g.checks
            } else {
                &mut g.calls
            };
            log.push(Call {
                method: method.clone(),
                body: body_value.clone(),
                status,
                ok: status == 200 && answer.get("ok").and_then(Value::as_bool) == Some(true),
                ts: answer
                    .get("ts")
                    .or_else(|| answer.get("message_ts"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                at: std::time::Instant::now(),
            });
        };
        match fault {
            Some(Fault::Status(code)) => {
                record(&mut g, code, &Value::Null);
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Err(Box::new((status, "upstream connect error").into_response()));
            }
            Some(Fault::RateLimited(secs)) => {
                let answer = slack_error("ratelimited");
                record(&mut g, 429, &answer);
                return Err(Box::new(
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", secs.to_string())],
                        axum::Json(answer),
                    )
                        .into_response(),
                ));
            }
            Some(Fault::SlackError(code)) => {
                let answer = slack_error(code);
                record(&mut g, 200, &answer);
                return Err(Box::new(axum::Json(answer).into_response()));
            }
            Some(Fault::Delay(_)) | Some(Fault::LoseAnswer) | None => {}
        }

        let answer = match (auth.as_deref(), parsed) {
            (None, _) => slack_error("not_authed"),
            (Some(a), _) if a != format!("Bearer {TOKEN}") => slack_error("invalid_auth"),
            _ if g.revoked => slack_error("token_revoked"),
            (_, Err(())) => slack_error("invalid_json"),
            (_, Ok(b)) => answer(&mut g, &method, &b),
        };
        if answer.get("error").and_then(Value::as_str) == Some("ratelimited") {
            record(&mut g, 429, &answer);
            return Err(Box::new(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    axum::Json(answer),
                )
                    .into_response(),
            ));
        }
        if matches!(fault, Some(Fault::LoseAnswer)) {
            record(&mut g, 504, &answer);
            return Err(Box::new(
                (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response(),
            ));
        }
        let hold = if method == "chat.postMessage" && answer.get("ok") == Some(&json!(true)) {
            g.hold.take()
        } else {
            None
        };
        record(&mut g, 200, &answer);
        // Slack names the token's scopes on every answer.
        let scopes: Vec<&str> = klaxon::slack::api::REQUIRED_SCOPES
            .iter()
            .map(|(scope, _)| *scope)
            .filter(|scope| !g.scopes_withheld.contains(*scope))
            .collect();
        let scopes = scopes.join(",");
        Ok((answer, scopes, hold))
    })();
    let (answer, scopes, hold) = match outcome {
        Ok(v) => v,
        Err(response) => return *response,
    };
    if let Some(hold) = hold {
        hold.arrived.notify_one();
        hold.released.notified().await;
    }
    ([("x-oauth-scopes", scopes)], axum::Json(answer)).into_response()
}

fn answer(g: &mut Inner, method: &str, body: &Value) -> Value {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let has_text = s("text").is_some_and(|t| !t.is_empty())
        || body
            .get("blocks")
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty());
    // Slack's ts: seconds since the epoch, and a part that orders messages
    // within the second.
    let next_ts = |g: &mut Inner| {
        g.counter += 1;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{secs}.{:06}", g.counter % 1_000_000)
    };
    // Why the bot cannot write in `channel`, as Slack's error code.
    let cannot_write = |g: &Inner, channel: &str| -> Option<&'static str> {
        if channel.starts_with('D') {
            return None;
        }
        if !g.channels.contains(channel) {
            return Some("channel_not_found");
        }
        match g.access.get(channel).copied().unwrap_or(Access::Member) {
            Access::Member => None,
            Access::PublicNotMember => Some("not_in_channel"),
            Access::PrivateNotMember => Some("channel_not_found"),
            Access::Archived => Some("is_archived"),
        }
    };
    // Slack: "missing_scope", naming the scope the method needs.
    let needs = match method {
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" => Some("chat:write"),
        "conversations.open" => Some("im:write"),
        "usergroups.users.list" => Some("usergroups:read"),
        "conversations.history" | "conversations.replies" => {
            match s("channel").as_deref().and_then(|c| c.chars().next()) {
                Some('D') => Some("im:history"),
                Some('G') => Some("groups:history"),
                _ => Some("channels:history"),
            }
        }
        _ => None,
    };
    if let Some(scope) = needs
        && g.scopes_withheld.contains(scope)
    {
        return json!({"ok": false, "error": "missing_scope", "needed": scope});
    }
    match method {
        "chat.postMessage" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            if let Some(code) = cannot_write(g, &channel) {
                return slack_error(code);
            }
            if !has_text {
                return slack_error("no_text");
            }
            if let Some(thread) = s("thread_ts")
                && !g.messages.contains_key(&(channel.clone(), thread))
            {
                return slack_error("thread_not_found");
            }
            // Slack: "metadata" must be an object with a string event_type
            // and an object event_payload.
            if let Some(meta) = body.get("metadata")
                && (meta.get("event_type").and_then(Value::as_str).is_none()
                    || !meta.get("event_payload").is_some_and(Value::is_object))
            {
                return slack_error("invalid_metadata_format");
            }
            if let Some((rate, burst)) = g.channel_limit {
                let now = std::time::Instant::now();
                let times = g.posted_at.entry(channel.clone()).or_default();
                // A token bucket over the accepted posts: burst at once, rate a second.
                let mut tokens = f64::from(burst);
                let mut last: Option<std::time::Instant> = None;
                for t in times.iter() {
                    if let Some(l) = last {
                        tokens = (tokens + t.duration_since(l).as_secs_f64() * rate)
                            .min(f64::from(burst));
                    }
                    tokens -= 1.0;
                    last = Some(*t);
                }
                if let Some(l) = last {
                    tokens =
                        (tokens + now.duration_since(l).as_secs_f64() * rate).min(f64::from(burst));
                }
                if tokens < 1.0 {
                    return json!({"ok": false, "error": "ratelimited", "retry_after": 1});
                }
            }
            let ts = next_ts(g);
            g.posted_at
                .entry(channel.clone())
                .or_default()
                .push(std::time::Instant::now());
            let mut stored = body.clone();
            stored["ts"] = json!(ts);
            g.messages.insert((channel.clone(), ts.clone()), stored);
            json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": s("text"), "ts": ts}})
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (s("channel"), s("ts")) else {
                return slack_error("invalid_arguments");
            };
            if let Some(code) = cannot_write(g, &channel) {
                return slack_error(code);
            }
            if !g.messages.contains_key(&(channel.clone(), ts.clone())) {
                return slack_error("message_not_found");
            }
            if !has_text {
                return slack_error("no_text");
            }
            g.messages
                .insert((channel.clone(), ts.clone()), body.clone());
            json!({"ok": true, "channel": channel, "ts": ts, "text": s("text")})
        }
        "chat.postEphemeral" => {
            let (Some(channel), Some(_user)) = (s("channel"), s("user")) else {
                return slack_error("invalid_arguments");
            };
            if let Some(code) = cannot_write(g, &channel) {
                return slack_error(code);
            }
            let ts = next_ts(g);
            json!({"ok": true, "message_ts": ts})
        }
        "views.open" => {
            if s("trigger_id").is_none() || body.get("view").is_none() {
                return slack_error("invalid_arguments");
            }
            json!({"ok": true, "view": {"id": format!("V{}", g.counter)}})
        }
        "conversations.open" => match s("users") {
            Some(u) if g.disabled.contains(&u) => slack_error("user_disabled"),
            Some(u) => json!({"ok": true, "channel": {"id": format!("D{u}")}}),
            None => slack_error("users_list_not_supplied"),
        },
        "usergroups.users.list" => match s("usergroup") {
            Some(group) => match g.groups.get(&group) {
                Some(members) => json!({"ok": true, "users": members}),
                None => slack_error("no_such_subteam"),
            },
            None => slack_error("invalid_arguments"),
        },
        "conversations.info" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            let access = g.access.get(&channel).copied().unwrap_or(Access::Member);
            if !g.channels.contains(&channel) || access == Access::PrivateNotMember {
                return slack_error("channel_not_found");
            }
            json!({"ok": true, "channel": {
                "id": channel,
                "is_channel": true,
                "is_private": false,
                "is_member": access == Access::Member,
                "is_archived": access == Access::Archived,
            }})
        }
        "conversations.history" | "conversations.replies" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            if !channel.starts_with('D') && cannot_write(g, &channel) == Some("channel_not_found") {
                return slack_error("channel_not_found");
            }
            let with_metadata = s("include_all_metadata").as_deref() == Some("true");
            let oldest: f64 = s("oldest").and_then(|o| o.parse().ok()).unwrap_or(0.0);
            let limit: usize = s("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, 999);
            let offset: usize = s("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let thread = s("ts");
            if method == "conversations.replies" && thread.is_none() {
                return slack_error("invalid_arguments");
            }
            let mut found: Vec<&Value> = g
                .messages
                .iter()
                .filter(|((c, ts), m)| {
                    let in_thread = m.get("thread_ts").and_then(Value::as_str);
                    c == &channel
                        && ts.parse::<f64>().unwrap_or(0.0) > oldest
                        && match &thread {
                            // A thread: its parent and its replies.
                            Some(t) => ts == t || in_thread == Some(t.as_str()),
                            // The channel: top-level messages only.
                            None => in_thread.is_none(),
                        }
                })
                .map(|(_, m)| m)
                .collect();
            let key = |m: &&Value| {
                m.get("ts")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            };
            found.sort_by(|a, b| key(a).total_cmp(&key(b)));
            if thread.is_none() {
                // conversations.history: newest first.
                found.reverse();
            }
            let page: Vec<Value> = found
                .iter()
                .skip(offset)
                .take(limit)
                .map(|m| {
                    let mut shown = json!({
                        "type": "message",
                        "ts": m.get("ts"),
                        "text": m.get("text"),
                    });
                    if let Some(t) = m.get("thread_ts") {
                        shown["thread_ts"] = t.clone();
                    }
                    if with_metadata && let Some(meta) = m.get("metadata") {
                        shown["metadata"] = meta.clone();
                    }
                    shown
                })
                .collect();
            let next = if offset + limit < found.len() {
                (offset + limit).to_string()
            } else {
                String::new()
            };
            json!({"ok": true, "messages": page, "has_more": !next.is_empty(),
                   "response_metadata": {"next_cursor": next}})
        }
        "auth.test" => json!({"ok": true, "team": "Fake", "user": "klaxon", "user_id": "U0KLAXON"}),
        _ => slack_error("unknown_method"),
    }
}

/// A reply to a button press's `response_url` (Slack: "Handling user
/// interaction", responding with `response_url`): JSON with `text`; recorded
/// as a call of [`RESPONSE_URL`].
async fn response_url(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(_id): Path<String>,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    let fault = g.next_faults.pop_front().or_else(|| g.always.clone());
    let status = match (&fault, &parsed) {
        (Some(Fault::Status(code)), _) => *code,
        (_, None) => 400,
        (_, Some(v)) if v.get("text").and_then(Value::as_str).is_none() => 400,
        _ => 200,
    };
    g.calls.push(Call {
        method: RESPONSE_URL.to_string(),
        body: parsed.unwrap_or(Value::Null),
        status,
        ok: status == 200,
        ts: None,
        at: std::time::Instant::now(),
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        if status == StatusCode::OK {
            "ok"
        } else {
            "invalid_payload"
        },
    )
        .into_response()
}
