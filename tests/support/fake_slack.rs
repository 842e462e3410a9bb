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
//!
//! It also makes channels as Slack does: `conversations.create` (Slack's
//! name rules, `name_taken`, `restricted_action`), `conversations.invite`,
//! `conversations.setTopic` and `conversations.archive`, each wanting
//! `channels:manage` (`groups:write` for a private channel); and takes files
//! the way Slack does since `files.upload` was retired:
//! `files.getUploadURLExternal` hands out an upload URL on this server, the
//! bytes are POSTed there (raw or `multipart/form-data`), and
//! `files.completeUploadExternal` shares them (`files:write`).

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

/// The bot's own user id (`auth.test`'s `user_id`).
pub const BOT_USER: &str = "U0KLAXON";

/// Scopes the fake's token has beyond the manifest's
/// (`klaxon::slack::api::REQUIRED_SCOPES`): those channel rooms and file
/// uploads need, so the fake answers them whether or not the manifest lists
/// them yet.
const EXTRA_SCOPES: &[&str] = &["channels:manage", "groups:write", "files:write"];

/// The method recorded for bytes POSTed to an upload URL (see
/// `files.getUploadURLExternal`).
pub const UPLOAD: &str = "upload";

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

/// A channel made by `conversations.create`, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedChannel {
    pub id: String,
    pub name: String,
    /// Set by `conversations.setTopic` (empty until then).
    pub topic: String,
    /// Users invited (`conversations.invite`), in invite order, without the bot.
    pub members: Vec<String>,
    /// Archived (`conversations.archive`, or [`Access::Archived`]).
    pub archived: bool,
}

/// A file shared by `files.completeUploadExternal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// Slack's file id (`F…`).
    pub id: String,
    /// The `filename` given to `files.getUploadURLExternal`.
    pub filename: String,
    /// The `title` given to `files.completeUploadExternal`, if any.
    pub title: Option<String>,
    /// The channel it was shared in (`channel_id`, or the first of
    /// `channels`); `None`: a private file.
    pub channel: Option<String>,
    pub thread_ts: Option<String>,
    pub initial_comment: Option<String>,
    /// The bytes POSTed to its upload URL.
    pub content: Vec<u8>,
}

/// What `conversations.create` knows of a channel beyond [`Inner::channels`].
#[derive(Debug, Clone)]
struct Room {
    id: String,
    name: String,
    is_private: bool,
    /// Seconds since the epoch.
    created: u64,
}

/// A file handed out by `files.getUploadURLExternal`.
#[derive(Debug, Clone)]
struct PendingFile {
    filename: String,
    /// The `length` declared.
    length: u64,
    /// What was POSTed to the upload URL; `None`: nothing yet.
    content: Option<Vec<u8>>,
    /// `files.completeUploadExternal` took it (an upload ticket serves once).
    completed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// Calls of [`CHECK_METHODS`].
    checks: Vec<Call>,
    next_faults: VecDeque<Fault>,
    /// Faults for the next calls of one method (see [`FakeSlack::fail_next_call_of`]).
    method_faults: HashMap<String, VecDeque<Fault>>,
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
    /// `http://127.0.0.1:<port>`: where this fake serves (for upload URLs).
    base_url: String,
    /// Channels made by `conversations.create`, oldest first.
    created: Vec<Room>,
    /// Names of channels made outside Klaxon (see [`FakeSlack::take_name`]).
    taken_names: HashSet<String>,
    /// A workspace admin forbids creating channels (`restricted_action`).
    creation_restricted: bool,
    /// Per channel: the users invited to it, in invite order (the bot aside).
    members: HashMap<String, Vec<String>>,
    /// Per channel: its topic, once set.
    topics: HashMap<String, String>,
    /// Files handed out by `files.getUploadURLExternal`, by file id.
    files: HashMap<String, PendingFile>,
    /// The opaque id of each upload URL → its file id.
    upload_ids: HashMap<String, String>,
    /// Files `files.completeUploadExternal` took, in order.
    shared: Vec<UploadedFile>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Slack");
        let addr = listener.local_addr().expect("fake Slack address");
        let inner = Arc::new(Mutex::new(Inner {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            base_url: format!("http://{addr}"),
            ..Inner::default()
        }));
        let router = Router::new()
            .route("/api/{method}", post(handle))
            .route("/hooks/{id}", post(response_url))
            .route("/upload/v1/{id}", post(upload))
            .with_state(inner.clone());
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

    /// The next call of `method` suffers `fault` (other methods are spared).
    pub fn fail_next_call_of(&self, method: &str, fault: Fault) {
        self.lock()
            .method_faults
            .entry(method.to_string())
            .or_default()
            .push_back(fault);
    }

    /// A channel named `name` exists already (made by someone else, or
    /// archived long ago): `conversations.create` answers `name_taken`.
    pub fn take_name(&self, name: &str) {
        self.lock().taken_names.insert(name.to_string());
    }

    /// A workspace admin lets only some people create channels (Slack:
    /// "conversations.create", `restricted_action`): while `on`, every
    /// `conversations.create` is refused.
    pub fn restrict_channel_creation(&self, on: bool) {
        self.lock().creation_restricted = on;
    }

    /// Every channel `conversations.create` made, oldest first.
    pub fn created_channels(&self) -> Vec<CreatedChannel> {
        let g = self.lock();
        g.created.iter().map(|r| created_channel(&g, r)).collect()
    }

    /// The channel `id` if `conversations.create` made it (`None` for the
    /// channels the fake started with).
    pub fn channel(&self, id: &str) -> Option<CreatedChannel> {
        let g = self.lock();
        g.created
            .iter()
            .find(|r| r.id == id)
            .map(|r| created_channel(&g, r))
    }

    /// Every file `files.completeUploadExternal` took (shared in a channel
    /// or kept private), in order; files uploaded but never completed are
    /// not there.
    pub fn uploaded_files(&self) -> Vec<UploadedFile> {
        self.lock().shared.clone()
    }

    /// Every message in `channel` (posts, thread replies and file shares),
    /// oldest first, as stored: with `ts`, `text`, and `thread_ts` for a
    /// reply.
    pub fn messages_in(&self, channel: &str) -> Vec<Value> {
        let g = self.lock();
        let mut found: Vec<(f64, Value)> = g
            .messages
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, ts), m)| (ts.parse::<f64>().unwrap_or(0.0), m.clone()))
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        found.into_iter().map(|(_, m)| m).collect()
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

    /// Waits (up to `timeout`) for the first delivered post to `channel`
    /// (a person's direct-message channel, e.g. `DU0ALICE`, for a page);
    /// returns it and every call delivered by then.
    pub async fn wait_for_post_in(&self, timeout: Duration, channel: &str) -> (Call, Vec<Call>) {
        let calls = self
            .wait_for(timeout, &format!("a post to {channel}"), |c| {
                c.iter().any(|c| c.str("channel") == Some(channel))
            })
            .await;
        let post = calls
            .iter()
            .find(|c| c.str("channel") == Some(channel))
            .cloned()
            .unwrap_or_else(|| panic!("no post to {channel}"));
        (post, calls)
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

/// The bot token's scopes: the manifest's and [`EXTRA_SCOPES`], once each,
/// less those withheld.
fn granted_scopes(g: &Inner) -> Vec<&'static str> {
    let mut scopes: Vec<&'static str> = Vec::new();
    let all = klaxon::slack::api::REQUIRED_SCOPES
        .iter()
        .map(|(scope, _)| *scope)
        .chain(EXTRA_SCOPES.iter().copied());
    for scope in all {
        if !scopes.contains(&scope) && !g.scopes_withheld.contains(scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// A boolean argument: JSON `true`, or `"true"` / `"1"` as a form sends it.
fn flag(body: &Value, key: &str) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// Why the bot cannot write in `channel`, as Slack's error code.
fn cannot_write(g: &Inner, channel: &str) -> Option<&'static str> {
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
}

/// Whether `channel` is private: made so by `conversations.create`, or a
/// `G…` id.
fn is_private(g: &Inner, channel: &str) -> bool {
    g.created
        .iter()
        .find(|r| r.id == channel)
        .map_or(channel.starts_with('G'), |r| r.is_private)
}

/// Why the bot cannot manage `channel` (invite, set its topic, archive it),
/// as Slack's error code: the calling user must be a member.
fn cannot_manage(g: &Inner, channel: &str) -> Option<&'static str> {
    if channel.starts_with('D') {
        return Some("method_not_supported_for_channel_type");
    }
    cannot_write(g, channel)
}

/// What is wrong with `name` for a new channel (Slack:
/// "conversations.create", Naming: "Channel names may only contain lowercase
/// letters, numbers, hyphens, and underscores, and must be 80 characters or
/// less").
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("invalid_name_required");
    }
    if name.chars().count() > 80 {
        return Some("invalid_name_maxlength");
    }
    // "Value passed for name contained only punctuation."
    if name.chars().all(|c| c.is_ascii_punctuation()) {
        return Some("invalid_name_punctuation");
    }
    // "… contained unallowed special characters or upper case characters."
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Some("invalid_name_specials");
    }
    None
}

/// Whether `user` has the shape of a Slack user id (`U…` or `W…`, then
/// uppercase letters and digits).
fn is_user_id(user: &str) -> bool {
    let mut chars = user.chars();
    matches!(chars.next(), Some('U' | 'W'))
        && user.len() > 2
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Slack's conversation object for `channel` (Slack: "conversations.create",
/// "conversations.info"): its name and creation for a channel the fake made.
fn channel_object(g: &Inner, channel: &str) -> Value {
    let access = g.access.get(channel).copied().unwrap_or(Access::Member);
    let mut object = json!({
        "id": channel,
        "is_channel": true,
        "is_group": false,
        "is_im": false,
        "is_private": is_private(g, channel),
        "is_archived": access == Access::Archived,
        "is_member": access == Access::Member,
        "topic": {"value": g.topics.get(channel).cloned().unwrap_or_default()},
        "purpose": {"value": ""},
    });
    if let Some(room) = g.created.iter().find(|r| r.id == channel) {
        object["name"] = json!(room.name);
        object["name_normalized"] = json!(room.name);
        object["created"] = json!(room.created);
        object["creator"] = json!(BOT_USER);
    }
    object
}

/// The test's view of a channel the fake made.
fn created_channel(g: &Inner, room: &Room) -> CreatedChannel {
    CreatedChannel {
        id: room.id.clone(),
        name: room.name.clone(),
        topic: g.topics.get(&room.id).cloned().unwrap_or_default(),
        members: g.members.get(&room.id).cloned().unwrap_or_default(),
        archived: g.access.get(&room.id) == Some(&Access::Archived),
    }
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
        let own = g
            .method_faults
            .get_mut(method.as_str())
            .and_then(VecDeque::pop_front);
        own.or_else(|| g.next_faults.pop_front())
            .or_else(|| g.always.clone())
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
        let scopes = granted_scopes(&g).join(",");
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
        // Slack: "conversations.create" and the methods that manage a
        // channel take `channels:manage` for a public channel and
        // `groups:write` for a private one.
        "conversations.create" if flag(body, "is_private") => Some("groups:write"),
        "conversations.create" => Some("channels:manage"),
        "conversations.invite" | "conversations.setTopic" | "conversations.archive" => {
            if s("channel").is_some_and(|c| is_private(g, &c)) {
                Some("groups:write")
            } else {
                Some("channels:manage")
            }
        }
        "files.getUploadURLExternal" | "files.completeUploadExternal" => Some("files:write"),
        _ => None,
    };
    // Slack: "conversations.setTopic" also takes `channels:write.topic`.
    let other_scope = method == "conversations.setTopic"
        && granted_scopes(g).contains(&"channels:write.topic")
        && !s("channel").is_some_and(|c| is_private(g, &c));
    if let Some(scope) = needs
        && g.scopes_withheld.contains(scope)
        && !other_scope
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
            // An edit leaves a reply in its thread.
            let mut stored = body.clone();
            if let Some(thread) = g
                .messages
                .get(&(channel.clone(), ts.clone()))
                .and_then(|m| m.get("thread_ts"))
                .cloned()
            {
                stored["thread_ts"] = thread;
            }
            g.messages.insert((channel.clone(), ts.clone()), stored);
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
            json!({"ok": true, "channel": channel_object(g, &channel)})
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
        "auth.test" => json!({"ok": true, "team": "Fake", "user": "klaxon", "user_id": BOT_USER}),
        "conversations.create" => create_channel(g, body),
        // Slack: "conversations.list" (channels:read): the public channels,
        // with name, creator and created; archived ones left out when asked.
        "conversations.list" => {
            let without_archived = s("exclude_archived").as_deref() == Some("true");
            let limit: usize = s("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, 1000);
            let offset: usize = s("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let all: Vec<Value> = g
                .created
                .iter()
                .filter(|r| !r.is_private)
                .filter(|r| {
                    !(without_archived && g.access.get(&r.id).copied() == Some(Access::Archived))
                })
                .map(|r| {
                    json!({"id": r.id, "name": r.name, "is_channel": true,
                           "creator": BOT_USER, "created": r.created,
                           "is_archived": g.access.get(&r.id).copied() == Some(Access::Archived)})
                })
                .collect();
            let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
            let next = if offset + limit < all.len() {
                (offset + limit).to_string()
            } else {
                String::new()
            };
            json!({"ok": true, "channels": page, "response_metadata": {"next_cursor": next}})
        }
        "conversations.invite" => invite(g, body),
        "conversations.setTopic" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            if let Some(code) = cannot_manage(g, &channel) {
                return slack_error(code);
            }
            let Some(topic) = s("topic") else {
                return slack_error("invalid_arguments");
            };
            // "Topic was longer than 250 characters."
            if topic.chars().count() > 250 {
                return slack_error("too_long");
            }
            g.topics.insert(channel.clone(), topic);
            json!({"ok": true, "channel": channel_object(g, &channel)})
        }
        "conversations.archive" => {
            let Some(channel) = s("channel") else {
                return slack_error("channel_not_found");
            };
            match cannot_manage(g, &channel) {
                Some("is_archived") => return slack_error("already_archived"),
                Some(code) => return slack_error(code),
                None => {}
            }
            g.access.insert(channel, Access::Archived);
            json!({"ok": true})
        }
        // Slack: "files.upload" was sunset on November 12, 2025.
        "files.upload" => slack_error("method_deprecated"),
        "files.getUploadURLExternal" => upload_url(g, body),
        "files.completeUploadExternal" => complete_upload(g, body),
        _ => slack_error("unknown_method"),
    }
}

/// `conversations.create` (Slack: "conversations.create"): a new channel
/// with the bot in it, or why not.
fn create_channel(g: &mut Inner, body: &Value) -> Value {
    // "A team preference prevents the authenticated user from creating
    // channels."
    if g.creation_restricted {
        return slack_error("restricted_action");
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(code) = name_problem(&name) {
        return slack_error(code);
    }
    // Archived channels keep their names.
    if g.taken_names.contains(&name) || g.created.iter().any(|r| r.name == name) {
        return slack_error("name_taken");
    }
    let id = loop {
        g.counter += 1;
        let id = format!("C0R{:07X}", g.counter);
        if !g.channels.contains(&id) {
            break id;
        }
    };
    g.channels.insert(id.clone());
    g.members.insert(id.clone(), Vec::new());
    g.created.push(Room {
        id: id.clone(),
        name,
        is_private: flag(body, "is_private"),
        created: now_secs(),
    });
    json!({"ok": true, "channel": channel_object(g, &id)})
}

/// `conversations.invite` (Slack: "conversations.invite"): `users` is a
/// comma-separated list; if any of them cannot be invited, none is (unless
/// `force`), and the answer lists each failure in `errors`.
fn invite(g: &mut Inner, body: &Value) -> Value {
    let Some(channel) = body.get("channel").and_then(Value::as_str) else {
        return slack_error("channel_not_found");
    };
    let channel = channel.to_string();
    // "The calling user must be a member of the channel."
    if let Some(code) = cannot_manage(g, &channel) {
        return slack_error(code);
    }
    let mut users: Vec<String> = Vec::new();
    for user in body
        .get("users")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        if !users.iter().any(|u| u == user) {
            users.push(user.to_string());
        }
    }
    // "No value was passed for users."
    if users.is_empty() {
        return slack_error("no_user");
    }
    let members = g.members.get(&channel).cloned().unwrap_or_default();
    let mut errors = Vec::new();
    let mut new = Vec::new();
    for user in &users {
        let problem = if user == BOT_USER {
            Some("cant_invite_self")
        } else if !is_user_id(user) {
            Some("user_not_found")
        } else if g.disabled.contains(user) {
            // A deactivated account: "User cannot be invited to this channel."
            Some("cant_invite")
        } else if members.contains(user) {
            None
        } else {
            new.push(user.clone());
            None
        };
        if let Some(code) = problem {
            errors.push(json!({"user": user, "ok": false, "error": code}));
        }
    }
    let force = flag(body, "force");
    if !errors.is_empty() && (!force || new.is_empty()) {
        let first = errors[0]["error"].clone();
        return json!({"ok": false, "error": first, "errors": errors});
    }
    // "Invited user is already in the channel."
    if new.is_empty() {
        return slack_error("already_in_channel");
    }
    g.members.entry(channel.clone()).or_default().extend(new);
    let mut answer = json!({"ok": true, "channel": channel_object(g, &channel)});
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
    }
    answer
}

/// `files.getUploadURLExternal` (Slack: "files.getUploadURLExternal"): a
/// file id and a URL on this fake to POST the bytes to.
fn upload_url(g: &mut Inner, body: &Value) -> Value {
    let filename = body
        .get("filename")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty());
    // A form sends the length as a string.
    let length = match body.get("length") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let (Some(filename), Some(length)) = (filename, length) else {
        return slack_error("invalid_arguments");
    };
    // "A required argument was not provided. Typically only occurs when the
    // length provided is 0."
    if length == 0 {
        return slack_error("missing_argument");
    }
    let Ok(length) = u64::try_from(length) else {
        return slack_error("invalid_arguments");
    };
    g.counter += 1;
    let n = g.counter;
    let file_id = format!("F0{n:08X}");
    // Opaque, as Slack's: nothing in it says which file it is.
    let upload_id = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        format!("{:016x}{:04x}", h.finish(), n)
    };
    g.files.insert(
        file_id.clone(),
        PendingFile {
            filename: filename.to_string(),
            length,
            content: None,
            completed: false,
        },
    );
    g.upload_ids.insert(upload_id.clone(), file_id.clone());
    json!({
        "ok": true,
        "upload_url": format!("{}/upload/v1/{upload_id}", g.base_url),
        "file_id": file_id,
    })
}

/// `files.completeUploadExternal` (Slack: "files.completeUploadExternal"):
/// takes uploaded files, shares them in a channel (a message there, in the
/// thread of `thread_ts` if given) or keeps them private.
fn complete_upload(g: &mut Inner, body: &Value) -> Value {
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    // An array in JSON; a form sends it as a JSON string.
    let files = match body.get("files") {
        Some(Value::Array(files)) => files.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(files)) => files,
            _ => return slack_error("invalid_arguments"),
        },
        _ => return slack_error("invalid_arguments"),
    };
    if files.is_empty() {
        return slack_error("invalid_arguments");
    }
    let mut taken: Vec<(String, Option<String>)> = Vec::new();
    for file in &files {
        let Some(id) = file.get("id").and_then(Value::as_str) else {
            return slack_error("invalid_arguments");
        };
        let title = file
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string);
        // "Could not find the file from the upload ticket": never handed
        // out, never uploaded, or completed already.
        let Some(pending) = g.files.get(id) else {
            return slack_error("file_not_found");
        };
        if pending.completed || taken.iter().any(|(t, _)| t == id) {
            return slack_error("file_not_found");
        }
        let Some(content) = &pending.content else {
            return slack_error("file_not_found");
        };
        if content.len() as u64 != pending.length {
            return slack_error("invalid_arguments");
        }
        taken.push((id.to_string(), title));
    }
    let channels: Vec<String> = match (s("channel_id"), s("channels")) {
        (Some(channel), _) => vec![channel],
        (None, Some(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        (None, None) => Vec::new(),
    };
    let thread_ts = s("thread_ts");
    // "Also make sure to provide only one channel when using thread_ts."
    if thread_ts.is_some() && channels.len() != 1 {
        return slack_error("invalid_arguments");
    }
    for channel in &channels {
        // "User/bot membership is required for the specified channel."
        if let Some(code) = cannot_write(g, channel) {
            return slack_error(code);
        }
        if let Some(thread) = &thread_ts
            && !g.messages.contains_key(&(channel.clone(), thread.clone()))
        {
            return slack_error("invalid_arguments");
        }
    }
    let initial_comment = s("initial_comment");
    let mut answered = Vec::new();
    for (id, title) in &taken {
        let pending = g.files.get_mut(id).expect("checked above");
        pending.completed = true;
        let filename = pending.filename.clone();
        let content = pending.content.clone().unwrap_or_default();
        answered
            .push(json!({"id": id, "title": title.clone().unwrap_or_else(|| filename.clone())}));
        g.shared.push(UploadedFile {
            id: id.clone(),
            filename,
            title: title.clone(),
            channel: channels.first().cloned(),
            thread_ts: thread_ts.clone(),
            initial_comment: initial_comment.clone(),
            content,
        });
    }
    // A share is a message in each channel.
    for channel in &channels {
        g.counter += 1;
        let ts = format!("{}.{:06}", now_secs(), g.counter % 1_000_000);
        let mut message = json!({
            "channel": channel,
            "ts": ts,
            "text": initial_comment.clone().unwrap_or_default(),
            "files": answered,
        });
        if let Some(thread) = &thread_ts {
            message["thread_ts"] = json!(thread);
        }
        g.messages.insert((channel.clone(), ts), message);
    }
    json!({"ok": true, "files": answered})
}

/// Bytes POSTed to an upload URL (Slack: "files.getUploadURLExternal": "Files
/// can be sent as raw bytes or can be multipart form encoded. Slack will
/// return HTTP 200 if the upload is successful"): the body as is, or the
/// file part of a `multipart/form-data` body. An unknown (or already
/// completed) upload is a 404. Recorded as a call of [`UPLOAD`]; suffers the
/// injected faults as a Web API call does.
async fn upload(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.next_faults.pop_front().or_else(|| g.always.clone())
    };
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let boundary = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
        .and_then(|v| {
            v.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_string())
        });
    let content = match &boundary {
        Some(boundary) => multipart_file(&body, boundary),
        None => Some(body.to_vec()),
    };
    let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
    let file_id = g
        .upload_ids
        .get(&id)
        .filter(|f| g.files.get(*f).is_some_and(|p| !p.completed))
        .cloned();
    let length = content.as_ref().map_or(0, Vec::len);
    let record = |g: &mut Inner, status: u16| {
        g.calls.push(Call {
            method: UPLOAD.to_string(),
            body: json!({"file_id": file_id, "length": length}),
            status,
            ok: status == 200,
            ts: None,
            at: std::time::Instant::now(),
        });
    };
    match fault {
        Some(Fault::Status(code)) => {
            record(&mut g, code);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "upstream connect error").into_response();
        }
        Some(Fault::RateLimited(secs)) => {
            record(&mut g, 429);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "ratelimited",
            )
                .into_response();
        }
        // The upload service answers text, not Slack's JSON: a Slack error
        // is a failed upload.
        Some(Fault::SlackError(code)) => {
            record(&mut g, 500);
            return (StatusCode::INTERNAL_SERVER_ERROR, code).into_response();
        }
        Some(Fault::Delay(_)) | Some(Fault::LoseAnswer) | None => {}
    }
    let Some(file) = file_id.clone() else {
        record(&mut g, 404);
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let Some(content) = content else {
        record(&mut g, 400);
        return (StatusCode::BAD_REQUEST, "Bad Request").into_response();
    };
    if let Some(pending) = g.files.get_mut(&file) {
        pending.content = Some(content);
    }
    if matches!(fault, Some(Fault::LoseAnswer)) {
        record(&mut g, 504);
        return (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response();
    }
    record(&mut g, 200);
    (StatusCode::OK, format!("OK - {length}")).into_response()
}

/// The file part of a `multipart/form-data` body (the part with a
/// `filename`, else the first part); `None` if the body is not multipart.
fn multipart_file(body: &[u8], boundary: &str) -> Option<Vec<u8>> {
    fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let next_delimiter = [b"\r\n".as_slice(), &delimiter].concat();
    let mut at = find(body, &delimiter, 0)? + delimiter.len();
    let mut first = None;
    // After each delimiter: "--" closes the body, else CRLF and a part.
    while !body.get(at..)?.starts_with(b"--") {
        let start = at + 2;
        if !body.get(at..)?.starts_with(b"\r\n") {
            return None;
        }
        let end = find(body, &next_delimiter, start)?;
        let part = &body[start..end];
        let (head, content) = if part.starts_with(b"\r\n") {
            (&part[..0], &part[2..])
        } else {
            let split = find(part, b"\r\n\r\n", 0)?;
            (&part[..split], &part[split + 4..])
        };
        let head = String::from_utf8_lossy(head).to_ascii_lowercase();
        if head.contains("filename=") {
            return Some(content.to_vec());
        }
        first.get_or_insert_with(|| content.to_vec());
        at = end + next_delimiter.len();
    }
    first
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
