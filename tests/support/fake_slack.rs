//! A fake Slack Web API on 127.0.0.1, faithful enough to test against.
//!
//! It checks the bot token (`not_authed` / `invalid_auth`), answers like Slack
//! (`{"ok": true, "channel", "ts"}`; `channel_not_found`, `message_not_found`,
//! `no_text` …), records every call with its outcome, and can be told to fail:
//! 429 with `Retry-After`, 5xx, Slack errors, or a delay before answering.

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

pub const TOKEN: &str = "xoxb-test-0000-fake";

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
}

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
    next_faults: VecDeque<Fault>,
    always: Option<Fault>,
    channels: HashSet<String>,
    /// (channel, ts) of every message posted.
    messages: HashMap<(String, String), Value>,
    /// User group id → member user ids.
    groups: HashMap<String, Vec<String>>,
    /// Users whose accounts are deactivated (`user_disabled`).
    disabled: HashSet<String>,
    counter: u64,
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

    /// Deactivates a user: direct messages to them fail with `user_disabled`.
    pub fn disable_user(&self, user: &str) {
        self.lock().disabled.insert(user.to_string());
    }

    pub fn heal(&self) {
        let mut inner = self.lock();
        inner.always = None;
        inner.next_faults.clear();
    }

    /// Every call so far.
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

    let fault = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.next_faults.pop_front().or_else(|| g.always.clone())
    };
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }

    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    let record = |g: &mut Inner, status: u16, answer: &Value| {
        g.calls.push(Call {
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
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "upstream connect error").into_response();
        }
        Some(Fault::RateLimited(secs)) => {
            let answer = slack_error("ratelimited");
            record(&mut g, 429, &answer);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                axum::Json(answer),
            )
                .into_response();
        }
        Some(Fault::SlackError(code)) => {
            let answer = slack_error(code);
            record(&mut g, 200, &answer);
            return axum::Json(answer).into_response();
        }
        Some(Fault::Delay(_)) | None => {}
    }

    let answer = match (auth.as_deref(), parsed) {
        (None, _) => slack_error("not_authed"),
        (Some(a), _) if a != format!("Bearer {TOKEN}") => slack_error("invalid_auth"),
        (_, Err(())) => slack_error("invalid_json"),
        (_, Ok(b)) => answer(&mut g, &method, &b),
    };
    record(&mut g, 200, &answer);
    axum::Json(answer).into_response()
}

fn answer(g: &mut Inner, method: &str, body: &Value) -> Value {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let has_text = s("text").is_some_and(|t| !t.is_empty())
        || body
            .get("blocks")
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty());
    let next_ts = |g: &mut Inner| {
        g.counter += 1;
        format!("1795367049.{:06}", g.counter * 100)
    };
    match method {
        "chat.postMessage" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            if !g.channels.contains(&channel) && !channel.starts_with('D') {
                return slack_error("channel_not_found");
            }
            if !has_text {
                return slack_error("no_text");
            }
            if let Some(thread) = s("thread_ts")
                && !g.messages.contains_key(&(channel.clone(), thread))
            {
                return slack_error("thread_not_found");
            }
            let ts = next_ts(g);
            g.messages
                .insert((channel.clone(), ts.clone()), body.clone());
            json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": s("text"), "ts": ts}})
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (s("channel"), s("ts")) else {
                return slack_error("invalid_arguments");
            };
            if !g.channels.contains(&channel) {
                return slack_error("channel_not_found");
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
            if !g.channels.contains(&channel) {
                return slack_error("channel_not_found");
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
        "auth.test" => json!({"ok": true, "team": "Fake", "user": "klaxon", "user_id": "U0KLAXON"}),
        _ => slack_error("unknown_method"),
    }
}
