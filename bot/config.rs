//! Typed settings: `klaxon.toml` first, `KLAXON_*` environment variables over it.
//!
//! Loading never stops at the first mistake: [`load`] collects every problem
//! (file, key, what is wrong, what would be right) so `klaxon check-config` can
//! list them in one pass. Secrets are [`SecretString`]s, which print as
//! `[REDACTED]`, so a `Debug` of the settings can never leak one into a log.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::alerts::heartbeats::{self, Heartbeat, RawHeartbeat};
use crate::alerts::maintenance::{self, RawMaintenance, ScheduledWindow};
use crate::alerts::routing::{RawRoute, Routes};
use crate::escalation::{EscalationSettings, RawEscalation};
use crate::executor::catalog::{Catalog, RawAction};
use crate::incident::{ChannelId, Severity};
use crate::status::{self as statuspage, RawStatus, StatusSettings};

/// Where the settings came from, for messages.
pub const DEFAULT_CONFIG_FILE: &str = "klaxon.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://klaxon.db";
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
/// The default limit on an alert notification's body: 32 MiB. Alertmanager
/// sends a whole group in one notification: 10,000 alerts with a dozen labels
/// and a paragraph of annotations each come to about 20 MB (Grafana's, with
/// its dashboard, panel and silence links, a little more per alert).
pub const DEFAULT_ALERT_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Everything Klaxon needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`; secret because it may hold a password.
    pub database_url: SecretString,
    pub slack: SlackSettings,
    pub alert_token: Option<SecretString>,
    pub templates_dir: Option<PathBuf>,
    pub incidents: IncidentSettings,
    pub outbox: OutboxSettings,
    pub http: HttpSettings,
    pub log_format: Option<LogFormat>,
    pub escalation: EscalationSettings,
    pub alerts: AlertSettings,
    /// `[[heartbeats]]`: dead man's switches.
    pub heartbeats: Vec<Heartbeat>,
    /// `[[maintenance]]`: scheduled maintenance windows.
    pub maintenance: Vec<ScheduledWindow>,
    /// Bearer token for the team's HTTP pages (`/incidents/INC-n/postmortem.md`);
    /// `None`: those pages answer 404.
    pub history_token: Option<SecretString>,
    /// `[followups] webhook_url`: follow-ups filed in an issue tracker.
    pub followup_webhook: Option<FollowUpWebhook>,
    /// `[history] trusted_proxy_header`: the history pages also open to
    /// requests from these proxies that carry this header (a signed-in user).
    pub history_proxy: Option<TrustedProxy>,
    /// `[status]`: the public status page and its components.
    pub status: StatusSettings,
    /// The approved actions.
    pub actions: Catalog,
}

/// An authenticating proxy in front of the history pages (oauth2-proxy,
/// Pomerium, an ingress with SSO): requests that come from one of
/// `addresses` and carry `header` (the signed-in user, e.g.
/// `X-Forwarded-User`) need no token. A request from anywhere else that
/// carries the header is treated as carrying none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxy {
    pub header: axum::http::HeaderName,
    pub addresses: Vec<std::net::IpAddr>,
}

/// Alert webhooks: routes, Alertmanager's API for silences, body limits.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub routes: Routes,
    /// Alertmanager's base URL (`http://alertmanager:9093`), for silences from Slack.
    pub alertmanager_url: Option<String>,
    /// Expire the silences an incident created when it resolves.
    pub expire_silences_on_resolve: bool,
    /// Make an Alertmanager silence matching the route of each maintenance
    /// window, for the window's time (expired when it ends early).
    pub silence_maintenance: bool,
    /// The longest silence `/incident silence` may create.
    pub max_silence: Duration,
    /// Who may silence an incident's alerts besides the people of its
    /// escalation ladder (`user:`, `group:`, `schedule:`); empty: only those.
    pub silencers: Vec<crate::escalation::Target>,
    /// Largest alert notification accepted, in bytes (default
    /// [`DEFAULT_ALERT_BODY_BYTES`]); a larger one gets 413, is logged and counted.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// `None`: console mode, messages go to the log.
    pub bot_token: Option<SecretString>,
    /// `None`: every request to `/slack/*` is refused, as none can be verified.
    pub signing_secret: Option<SecretString>,
    /// An app-level token (`xapp-…`, scope `connections:write`): Socket Mode
    /// is on, and Slack sends commands, presses and events down a socket
    /// Klaxon opens (Slack: "Using Socket Mode"). `None`: over HTTP only.
    pub app_token: Option<SecretString>,
    pub api_url: String,
    /// Where new incident threads open; `None`: in the channel where `/incident open` was typed.
    pub incident_channel: Option<ChannelId>,
}

#[derive(Debug, Clone)]
pub struct IncidentSettings {
    /// Severity of `/incident open <title>` when none is given.
    pub default_severity: Severity,
    /// When not empty: only these people (and whoever opened or owns an
    /// incident) may change an incident's severity.
    pub severity_changers: Vec<crate::escalation::Target>,
    /// Per severity (P0..P3): how long an open incident may go without a
    /// status update before its thread is reminded; `None`: never.
    pub update_every: [Option<Duration>; 4],
    /// Per severity (P0..P3): how long an acknowledged incident may go
    /// without a status update, severity change or resolution before its
    /// owner is paged again; `None`: never.
    pub ack_timeout: [Option<Duration>; 4],
    /// The roles people can take (`/incident role`), with their duties.
    pub roles: Vec<crate::incident::roles::Role>,
    /// Severities whose incidents get a channel of their own (`channel_for`).
    pub channel_for: Vec<Severity>,
    /// How long after its incident resolves a room is archived; `None`: never.
    pub archive_channel_after: Option<Duration>,
    /// Per severity (P0..P3): how long after resolving the owner is reminded
    /// if no postmortem was produced; `None`: never.
    pub postmortem_due: [Option<Duration>; 4],
}

impl IncidentSettings {
    /// The reminder interval of `severity`, if reminders are on for it.
    pub fn update_every(&self, severity: Severity) -> Option<Duration> {
        self.update_every[severity.index()]
    }

    /// The acknowledgement timeout of `severity`, if any.
    pub fn ack_timeout(&self, severity: Severity) -> Option<Duration> {
        self.ack_timeout[severity.index()]
    }

    /// Whether incidents of `severity` get a channel of their own.
    pub fn gets_room(&self, severity: Severity) -> bool {
        self.channel_for.contains(&severity)
    }

    /// The role named `name`, if this install has it.
    pub fn role(
        &self,
        name: &crate::incident::roles::RoleName,
    ) -> Option<&crate::incident::roles::Role> {
        self.roles.iter().find(|r| &r.name == name)
    }

    /// When a postmortem of `severity` is overdue after the resolution, if ever.
    pub fn postmortem_due(&self, severity: Severity) -> Option<Duration> {
        self.postmortem_due[severity.index()]
    }
}

/// Postmortem reminders unless configured otherwise: runbook 004 asks for
/// the postmortem "within 24-48 hours": a P0's after a day, a P1's after two.
pub const DEFAULT_POSTMORTEM_DUE: [Option<Duration>; 4] = [
    Some(Duration::from_secs(24 * 3600)),
    Some(Duration::from_secs(48 * 3600)),
    None,
    None,
];

/// How long a room stays after its incident resolves, unless configured:
/// past the postmortem's 48 hours (runbook 004), so the discussion has a place.
pub const DEFAULT_ARCHIVE_CHANNEL_AFTER: Duration = Duration::from_secs(72 * 3600);

/// Follow-ups copied into the team's issue tracker through one outgoing webhook.
#[derive(Debug, Clone)]
pub struct FollowUpWebhook {
    /// Where each follow-up is POSTed (`http://` or `https://`).
    pub url: String,
    /// The request body: a handlebars template rendered with the follow-up
    /// (see README "Big incidents"); `{{json x}}` writes `x` as a JSON string.
    pub body: String,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<SecretString>,
}

impl FollowUpWebhook {
    /// Renders the body for one follow-up (`data`: its fields, README "Big
    /// incidents"); `Err` says why the template failed.
    pub fn render(&self, data: &serde_json::Value) -> Result<String, String> {
        render_webhook_body(&self.body, data)
    }
}

/// `{{json value}}` in a webhook body: `value` as JSON (a string quoted and
/// escaped, `null` when missing).
fn json_helper(
    h: &handlebars::Helper,
    _: &handlebars::Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let param = h
        .param(0)
        .ok_or(handlebars::RenderErrorReason::ParamNotFoundForIndex(
            "json", 0,
        ))?;
    if param.is_value_missing() {
        // A field that does not exist is a typo, not an empty value (those are null).
        return Err(
            handlebars::RenderErrorReason::MissingVariable(param.relative_path().cloned()).into(),
        );
    }
    out.write(&param.value().to_string())?;
    Ok(())
}

/// Escapes `s` for the inside of a JSON string (what `{{x}}` writes in a
/// webhook body, so `"{{title}}"` stays one string whatever the title holds).
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn render_webhook_body(body: &str, data: &serde_json::Value) -> Result<String, String> {
    let mut hb = handlebars::Handlebars::new();
    // Every field is always there (null when empty): a misspelt one is an error.
    hb.set_strict_mode(true);
    hb.register_escape_fn(json_escape);
    hb.register_helper("json", Box::new(json_helper));
    hb.register_template_string("body", body)
        .map_err(|e| format!("is not a valid template: {e}"))?;
    hb.render("body", data).map_err(|e| e.to_string())
}

/// Checks a follow-up webhook's body template (`followups.webhook_body`):
/// it must compile and, rendered with a sample follow-up, give JSON when it
/// looks like JSON.
fn check_webhook_body(body: &str) -> Result<(), String> {
    let sample = serde_json::json!({
        "title": "INC-42 follow-up: add an alert on replica lag \"quoted\"",
        "body": "From INC-42 [P1] Checkout API returning 500s",
        "text": "add an alert on replica lag",
        "incident": "INC-42",
        "incident_title": "Checkout API returning 500s",
        "severity": "P1",
        "owner": "U0ONCALL1",
        "created_by": "U0ONCALL1",
        "id": 1,
        "number": 1,
    });
    let out = render_webhook_body(body, &sample)?;
    let trimmed = out.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Err(e) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        return Err(format!(
            "renders to invalid JSON for a sample follow-up ({e}); write strings as {{{{json field}}}}"
        ));
    }
    Ok(())
}

/// The default webhook body: a JSON object most trackers' "create issue"
/// APIs take after a small mapping in the receiving automation.
pub const DEFAULT_FOLLOWUP_BODY: &str = r#"{"title": {{json title}}, "body": {{json body}}, "incident": {{json incident}}, "severity": {{json severity}}, "owner": {{json owner}}, "followup_id": {{json id}}}"#;

/// Status-update reminders unless configured otherwise: runbook 004 promises
/// stakeholders "updates every 30 minutes" for a P0; a P1 every hour.
pub const DEFAULT_UPDATE_EVERY: [Option<Duration>; 4] = [
    Some(Duration::from_secs(30 * 60)),
    Some(Duration::from_secs(60 * 60)),
    None,
    None,
];

#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Messages per second per channel in the long run (Slack allows about 1).
    pub channel_rate: f64,
    /// Messages a quiet channel may receive at once before the rate applies.
    pub channel_burst: u32,
    /// One Slack Web API call may take this long before it counts as failed.
    pub request_timeout: Duration,
    /// Retries back off exponentially from one second up to this.
    pub max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// A client must send its request headers within this (slow-loris guard).
    pub header_read_timeout: Duration,
    /// A whole request (body included) must be read and answered within this; else 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503 at once instead of queueing.
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or `environment`).
    pub source: String,
    /// The key, e.g. `slack.incident_channel` or `KLAXON_LISTEN`.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.key, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The file as written; every field optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    listen: Option<String>,
    database_url: Option<String>,
    /// Several replicas share the database: SQLite is refused.
    require_shared_database: Option<bool>,
    templates_dir: Option<PathBuf>,
    alert_token: Option<String>,
    log_format: Option<String>,
    #[serde(default)]
    slack: RawSlack,
    #[serde(default)]
    incidents: RawIncidents,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    escalation: RawEscalation,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    actions: Vec<RawAction>,
    #[serde(default)]
    heartbeats: Vec<RawHeartbeat>,
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
    history_token: Option<String>,
    #[serde(default)]
    followups: RawFollowUps,
    #[serde(default)]
    history: RawHistory,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    trusted_proxy_header: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollowUps {
    webhook_url: Option<String>,
    webhook_body: Option<String>,
    webhook_content_type: Option<String>,
    webhook_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    duties: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawAlerts {
    alertmanager_url: Option<String>,
    expire_silences_on_resolve: Option<bool>,
    silence_maintenance: Option<bool>,
    max_silence: Option<String>,
    #[serde(default)]
    silencers: Vec<String>,
    max_body_bytes: Option<usize>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
struct RawSlack {
    bot_token: Option<String>,
    signing_secret: Option<String>,
    app_token: Option<String>,
    api_url: Option<String>,
    incident_channel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIncidents {
    default_severity: Option<String>,
    #[serde(default)]
    severity_changers: Vec<String>,
    /// `{ P0 = "30m", P2 = "off" }`: merged over [`DEFAULT_UPDATE_EVERY`].
    update_every: Option<std::collections::BTreeMap<String, String>>,
    /// `{ P0 = "30m" }`: off for severities not named.
    ack_timeout: Option<std::collections::BTreeMap<String, String>>,
    /// Replaces the default roles when not empty.
    #[serde(default)]
    roles: Vec<RawRole>,
    #[serde(default)]
    channel_for: Vec<String>,
    archive_channel_after: Option<String>,
    /// `{ P0 = "24h" }` over [`DEFAULT_POSTMORTEM_DUE`].
    postmortem_due: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawOutbox {
    channel_rate: Option<f64>,
    channel_burst: Option<u32>,
    request_timeout: Option<String>,
    max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawHttp {
    max_body_bytes: Option<usize>,
    header_read_timeout: Option<String>,
    request_timeout: Option<String>,
    max_concurrent_requests: Option<usize>,
}

/// Which file to read: the one named, else `klaxon.toml` if it exists, else none.
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            p.exists().then_some(p)
        }
    }
}

/// Reads the file (if any) and the environment, and validates the result.
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let (raw, source) = match path {
        None => (RawFile::default(), "defaults".to_string()),
        Some(p) => {
            let source = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![Problem {
                    source: source.clone(),
                    key: "(file)".into(),
                    message: format!("cannot read the file: {e}"),
                }])
            })?;
            return from_toml(&text, &source, env);
        }
    };
    from_raw(raw, &source, env)
}

/// Parses settings from TOML text (used by tests and `check-config` on examples).
pub fn from_toml(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let (raw, mut problems) = parse_raw(text, source)?;
    match from_raw(raw, source, env) {
        Ok(settings) if problems.is_empty() => Ok(settings),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(more)) => {
            problems.extend(more);
            Err(ConfigErrors(problems))
        }
    }
}

/// Reads the file's text into the raw settings, reporting as many problems as
/// it can at once: every syntax error (a duplicate key is one; the parser
/// recovers and goes on), every key Klaxon does not know, and every value of
/// the wrong type (serde stops at the first, so that value is set aside and
/// the reading starts again, up to [`MAX_VALUE_PROBLEMS`] times).
fn parse_raw(text: &str, source: &str) -> Result<(RawFile, Vec<Problem>), ConfigErrors> {
    let problem = |key: String, message: String| Problem {
        source: source.to_string(),
        key,
        message,
    };
    let one_line = |e: &dyn fmt::Display| {
        e.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (table, syntax) = toml::de::DeTable::parse_recoverable(text);
    let mut problems: Vec<Problem> = syntax
        .iter()
        .map(|e| problem("(syntax)".into(), one_line(e)))
        .collect();
    let mut table: toml::Table =
        match serde::Deserialize::deserialize(toml::de::Deserializer::from(table)) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem("(syntax)".into(), one_line(&e)));
                return Err(ConfigErrors(problems));
            }
        };
    let mut unknown: Vec<String> = Vec::new();
    for _ in 0..MAX_VALUE_PROBLEMS {
        let mut ignored = Vec::new();
        let read: Result<RawFile, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(toml::Value::Table(table.clone()), &mut |path| {
                ignored.push(key_path(&path.to_string()))
            }),
        );
        for key in ignored {
            if !unknown.contains(&key) {
                unknown.push(key);
            }
        }
        match read {
            Ok(raw) => {
                problems.extend(unknown.into_iter().map(|key| {
                    problem(
                        key,
                        "is not a key Klaxon knows (misspelt?): deploy/klaxon.example.toml lists every key"
                            .into(),
                    )
                }));
                return Ok((raw, problems));
            }
            Err(e) => {
                let path: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                let key = key_path(&e.path().to_string());
                problems.push(problem(key, one_line(&e.inner().message())));
                if !remove_at(&mut table, &path) {
                    break;
                }
            }
        }
    }
    problems.extend(unknown.into_iter().map(|key| {
        problem(
            key,
            "is not a key Klaxon knows (misspelt?): deploy/klaxon.example.toml lists every key"
                .into(),
        )
    }));
    Err(ConfigErrors(problems))
}

/// How many values of the wrong type one reading reports.
const MAX_VALUE_PROBLEMS: usize = 50;

/// A key path as Klaxon writes them everywhere: `alerts.routes[0].channel`
/// (serde writes `alerts.routes.0.channel`, and `?.` for optional values).
fn key_path(raw: &str) -> String {
    let mut out = String::new();
    for part in raw
        .replace("?.", "")
        .split('.')
        .filter(|p| !p.is_empty() && *p != "?")
    {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    if out.is_empty() { "(file)".into() } else { out }
}

/// Removes the value at `path` from `table`, so a reading can go on past it;
/// `false` when there is nothing there to remove.
fn remove_at(table: &mut toml::Table, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut value: &mut toml::Value = match parents.first() {
        Some(Segment::Map { key }) => match table.get_mut(key) {
            Some(v) => v,
            None => return false,
        },
        Some(_) => return false,
        None => {
            return match last {
                Segment::Map { key } => table.remove(key).is_some(),
                _ => false,
            };
        }
    };
    for segment in &parents[1..] {
        value = match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(t)) => match t.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, toml::Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, value) {
        (Segment::Map { key }, toml::Value::Table(t)) => t.remove(key).is_some(),
        (Segment::Seq { index }, toml::Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// Collects problems while picking each value: the environment wins over the file.
struct Picker<'a> {
    source: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

impl Picker<'_> {
    /// The value and where it came from (`(source, key)` for messages).
    fn pick(
        &self,
        env_key: Option<&str>,
        file_key: &str,
        file_value: Option<String>,
    ) -> Option<(String, String, String)> {
        if let Some(k) = env_key
            && let Some(v) = (self.env)(k).filter(|v| !v.is_empty())
        {
            return Some((v, "environment".into(), k.to_string()));
        }
        file_value.map(|v| (v, self.source.to_string(), file_key.to_string()))
    }

    fn problem(&mut self, source: String, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            source,
            key,
            message: message.into(),
        });
    }

    /// A `{ P0 = "30m", P1 = "off" }` table over `defaults`: a severity not
    /// named keeps its default; `off` turns it off.
    fn per_severity(
        &mut self,
        key: &str,
        table: Option<std::collections::BTreeMap<String, String>>,
        defaults: [Option<Duration>; 4],
    ) -> [Option<Duration>; 4] {
        let mut out = defaults;
        for (sev, value) in table.unwrap_or_default() {
            let Ok(severity) = sev.parse::<Severity>() else {
                self.problem(
                    self.source.to_string(),
                    format!("{key}.{sev}"),
                    "is not a severity; use P0, P1, P2 or P3",
                );
                continue;
            };
            out[severity.index()] = match value.trim() {
                "off" => None,
                v => match crate::time::parse_duration(v) {
                    Ok(d) if d >= Duration::from_secs(1) => Some(d),
                    Ok(_) => {
                        self.problem(
                            self.source.to_string(),
                            format!("{key}.{sev}"),
                            "must be at least a second (or \"off\")",
                        );
                        None
                    }
                    Err(e) => {
                        self.problem(
                            self.source.to_string(),
                            format!("{key}.{sev}"),
                            format!("{e} (or \"off\")"),
                        );
                        None
                    }
                },
            };
        }
        out
    }

    fn duration(&mut self, key: &str, value: Option<String>, default: Duration) -> Duration {
        match value.as_deref().map(crate::time::parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.problem(self.source.to_string(), key.to_string(), e);
                default
            }
        }
    }
}

fn from_raw(
    raw: RawFile,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let mut p = Picker {
        source,
        env,
        problems: Vec::new(),
    };

    let listen = match p.pick(Some("KLAXON_LISTEN"), "listen", raw.listen) {
        None => DEFAULT_LISTEN.parse().ok(),
        Some((v, src, key)) => match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.problem(
                    src,
                    key,
                    format!(
                        "`{v}` is not an address to listen on; write it like \"127.0.0.1:8080\""
                    ),
                );
                None
            }
        },
    };

    let database_url = match p.pick(
        Some("KLAXON_DATABASE_URL"),
        "database_url",
        raw.database_url,
    ) {
        None => DEFAULT_DATABASE_URL.to_string(),
        Some((v, src, key)) => {
            let lower = v.to_ascii_lowercase();
            if ["replace-me", "change-me", "changeme"]
                .iter()
                .any(|w| lower.contains(w))
            {
                p.problem(
                    src.clone(),
                    key.clone(),
                    "holds the example's placeholder: set the real database URL (with its real password)",
                );
            }
            if !(v.starts_with("sqlite:")
                || v.starts_with("postgres://")
                || v.starts_with("postgresql://"))
            {
                p.problem(
                    src,
                    key,
                    "the database URL must start with sqlite:// or postgres://",
                );
            }
            v
        }
    };
    let shared = p.pick(
        Some("KLAXON_REQUIRE_SHARED_DATABASE"),
        "require_shared_database",
        raw.require_shared_database.map(|b| b.to_string()),
    );
    if let Some((v, src, key)) = shared {
        match v.as_str() {
            "true" | "1" if database_url.starts_with("sqlite:") => p.problem(
                src,
                key,
                "is set, but the database is SQLite, which serves one replica: \
                 set KLAXON_DATABASE_URL to PostgreSQL (postgres://…) to run several",
            ),
            "true" | "1" | "false" | "0" => {}
            _ => p.problem(src, key, format!("`{v}` is not true or false")),
        }
    }

    let secret = |p: &mut Picker, env_key: &str, file_key: &str, v: Option<String>| {
        p.pick(Some(env_key), file_key, v)
            .map(|(v, _, _)| SecretString::from(v))
    };
    let bot_token = secret(
        &mut p,
        "KLAXON_SLACK_BOT_TOKEN",
        "slack.bot_token",
        raw.slack.bot_token,
    );
    let signing_secret = secret(
        &mut p,
        "KLAXON_SLACK_SIGNING_SECRET",
        "slack.signing_secret",
        raw.slack.signing_secret,
    );
    let app_token = secret(
        &mut p,
        "KLAXON_SLACK_APP_TOKEN",
        "slack.app_token",
        raw.slack.app_token,
    );
    let alert_token = secret(&mut p, "KLAXON_ALERT_TOKEN", "alert_token", raw.alert_token);
    let history_token = secret(
        &mut p,
        "KLAXON_HISTORY_TOKEN",
        "history_token",
        raw.history_token,
    );
    let followup_token = secret(
        &mut p,
        "KLAXON_FOLLOWUP_WEBHOOK_TOKEN",
        "followups.webhook_token",
        raw.followups.webhook_token,
    );

    for (value, key, min) in [
        // Slack issues bot tokens: only their `xoxb-` shape is checked (below).
        (&bot_token, "slack.bot_token / KLAXON_SLACK_BOT_TOKEN", 0),
        (&app_token, "slack.app_token / KLAXON_SLACK_APP_TOKEN", 0),
        (
            &signing_secret,
            "slack.signing_secret / KLAXON_SLACK_SIGNING_SECRET",
            MIN_SECRET_CHARS,
        ),
        (
            &alert_token,
            "alert_token / KLAXON_ALERT_TOKEN",
            MIN_SECRET_CHARS,
        ),
        (
            &history_token,
            "history_token / KLAXON_HISTORY_TOKEN",
            MIN_SECRET_CHARS,
        ),
        // The tracker issues its own tokens: only placeholders are refused.
        (
            &followup_token,
            "followups.webhook_token / KLAXON_FOLLOWUP_WEBHOOK_TOKEN",
            0,
        ),
    ] {
        if let Some(why) = value
            .as_ref()
            .and_then(|v| weak_secret(v.expose_secret(), min))
        {
            // In Socket Mode the signing secret is optional: removing it fixes this too.
            let why = if key.starts_with("slack.signing_secret") && app_token.is_some() {
                format!(
                    "{why} (in Socket Mode it may also be left unset: Socket Mode does not need it)"
                )
            } else {
                why
            };
            p.problem(source.to_string(), key.into(), why);
        }
    }
    if let (Some(a), Some(b)) = (&signing_secret, &alert_token)
        && a.expose_secret() == b.expose_secret()
    {
        p.problem(
            source.to_string(),
            "alert_token / KLAXON_ALERT_TOKEN".into(),
            "is the Slack signing secret: whoever sends alerts could then sign Slack requests; use its own value",
        );
    }
    if let Some(t) = &bot_token
        && !t.expose_secret().starts_with("xoxb-")
    {
        p.problem(
            source.to_string(),
            "slack.bot_token / KLAXON_SLACK_BOT_TOKEN".into(),
            "a bot token starts with `xoxb-` (find it under OAuth & Permissions in the Slack app)",
        );
    }
    if let Some(t) = &app_token {
        let rest = t.expose_secret().strip_prefix("xapp-");
        if rest.is_some_and(|r| {
            r.chars().count() < 20 || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }) {
            p.problem(
                source.to_string(),
                "slack.app_token / KLAXON_SLACK_APP_TOKEN".into(),
                "is not a whole app-level token (xapp-1-A…-…, letters, digits and dashes): copy it again from Basic Information → App-Level Tokens",
            );
        }
        if rest.is_none() {
            p.problem(
                source.to_string(),
                "slack.app_token / KLAXON_SLACK_APP_TOKEN".into(),
                if t.expose_secret().starts_with("xoxb-") {
                    "is a bot token; Socket Mode needs an app-level token, which starts with `xapp-` (Basic Information → App-Level Tokens, scope connections:write)"
                } else {
                    "an app-level token starts with `xapp-` (Basic Information → App-Level Tokens, scope connections:write)"
                },
            );
        }
        if bot_token.is_none() {
            p.problem(
                source.to_string(),
                "slack.bot_token / KLAXON_SLACK_BOT_TOKEN".into(),
                "required with an app token: the socket only receives, messages are posted with the bot token",
            );
        }
    }
    // Over Socket Mode nothing from Slack arrives unsigned over HTTP, so the
    // signing secret is needed only for the HTTP transport.
    if bot_token.is_some() && signing_secret.is_none() && app_token.is_none() {
        p.problem(
            source.to_string(),
            "slack.signing_secret / KLAXON_SLACK_SIGNING_SECRET".into(),
            "required whenever a bot token is set (unless Socket Mode is on with KLAXON_SLACK_APP_TOKEN): without it no request from Slack can be verified",
        );
    }

    let api_url = match p.pick(
        Some("KLAXON_SLACK_API_URL"),
        "slack.api_url",
        raw.slack.api_url,
    ) {
        None => DEFAULT_SLACK_API_URL.to_string(),
        Some((v, src, key)) => {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                p.problem(src, key, format!("`{v}` is not an http(s) URL"));
            }
            v.trim_end_matches('/').to_string()
        }
    };

    let incident_channel = match p.pick(
        Some("KLAXON_INCIDENT_CHANNEL"),
        "slack.incident_channel",
        raw.slack.incident_channel,
    ) {
        None => None,
        Some((v, src, key)) => match ChannelId::parse(&v) {
            Some(c) => Some(c),
            None => {
                p.problem(
                    src,
                    key,
                    format!(
                        "`{v}` is not a channel ID; use the ID (like C0123ABCDEF) shown at the bottom of the channel's details, not its name"
                    ),
                );
                None
            }
        },
    };

    let mut severity_changers = Vec::new();
    for (i, t) in raw.incidents.severity_changers.iter().enumerate() {
        match crate::escalation::Target::parse(t) {
            Ok(t) => severity_changers.push(t),
            Err(e) => p.problem(
                source.to_string(),
                format!("incidents.severity_changers[{i}]"),
                e,
            ),
        }
    }
    let default_severity = match raw.incidents.default_severity {
        None => Severity::P2,
        Some(v) => v.parse().unwrap_or_else(|e: String| {
            p.problem(source.to_string(), "incidents.default_severity".into(), e);
            Severity::P2
        }),
    };

    let update_every = p.per_severity(
        "incidents.update_every",
        raw.incidents.update_every,
        DEFAULT_UPDATE_EVERY,
    );
    let ack_timeout = p.per_severity(
        "incidents.ack_timeout",
        raw.incidents.ack_timeout,
        [None; 4],
    );
    let postmortem_due = p.per_severity(
        "incidents.postmortem_due",
        raw.incidents.postmortem_due,
        DEFAULT_POSTMORTEM_DUE,
    );
    let mut roles = Vec::new();
    for (i, r) in raw.incidents.roles.iter().enumerate() {
        match crate::incident::roles::RoleName::parse(&r.name) {
            Ok(name)
                if roles
                    .iter()
                    .any(|x: &crate::incident::roles::Role| x.name == name) =>
            {
                p.problem(
                    source.to_string(),
                    format!("incidents.roles[{i}].name"),
                    format!("`{name}` is named twice"),
                )
            }
            Ok(name) if r.duties.trim().is_empty() => p.problem(
                source.to_string(),
                format!("incidents.roles[{i}].duties"),
                format!("say what the {name} does; the holder gets it by direct message"),
            ),
            Ok(name) => roles.push(crate::incident::roles::Role {
                name,
                duties: r.duties.trim().to_string(),
            }),
            Err(e) => p.problem(source.to_string(), format!("incidents.roles[{i}].name"), e),
        }
    }
    if raw.incidents.roles.is_empty() {
        roles = crate::incident::roles::defaults();
    }
    let mut channel_for = Vec::new();
    for (i, sev) in raw.incidents.channel_for.iter().enumerate() {
        match sev.parse::<Severity>() {
            Ok(s) if !channel_for.contains(&s) => channel_for.push(s),
            Ok(_) => {}
            Err(e) => p.problem(source.to_string(), format!("incidents.channel_for[{i}]"), e),
        }
    }
    let archive_channel_after = match raw
        .incidents
        .archive_channel_after
        .as_deref()
        .map(str::trim)
    {
        None => Some(DEFAULT_ARCHIVE_CHANNEL_AFTER),
        Some("off") => None,
        Some(v) => match crate::time::parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                p.problem(
                    source.to_string(),
                    "incidents.archive_channel_after".into(),
                    format!("{e} (or \"off\")"),
                );
                None
            }
        },
    };

    let channel_rate = raw.outbox.channel_rate.unwrap_or(1.0);
    if !(channel_rate.is_finite() && channel_rate > 0.0) {
        p.problem(
            source.to_string(),
            "outbox.channel_rate".into(),
            "must be a positive number of messages per second (Slack allows about 1)",
        );
    }
    let channel_burst = raw.outbox.channel_burst.unwrap_or(3).max(1);
    let request_timeout = p.duration(
        "outbox.request_timeout",
        raw.outbox.request_timeout,
        Duration::from_secs(10),
    );
    let max_backoff = p.duration(
        "outbox.max_backoff",
        raw.outbox.max_backoff,
        Duration::from_secs(300),
    );

    let max_body_bytes = raw.http.max_body_bytes.unwrap_or(256 * 1024);
    if max_body_bytes < 4 * 1024 {
        p.problem(
            source.to_string(),
            "http.max_body_bytes".into(),
            "must be at least 4096: Slack's own requests are a few KiB",
        );
    }

    let header_read_timeout = p.duration(
        "http.header_read_timeout",
        raw.http.header_read_timeout,
        Duration::from_secs(10),
    );
    let http_request_timeout = p.duration(
        "http.request_timeout",
        raw.http.request_timeout,
        Duration::from_secs(15),
    );
    let max_concurrent_requests = raw.http.max_concurrent_requests.unwrap_or(512);
    if max_concurrent_requests == 0 {
        p.problem(
            source.to_string(),
            "http.max_concurrent_requests".into(),
            "must be at least 1",
        );
    }

    let log_format = match p.pick(Some("KLAXON_LOG_FORMAT"), "log_format", raw.log_format) {
        None => None,
        Some((v, src, key)) => match v.as_str() {
            "json" => Some(LogFormat::Json),
            "pretty" => Some(LogFormat::Pretty),
            _ => {
                p.problem(
                    src,
                    key,
                    format!("`{v}` is not a log format; use json or pretty"),
                );
                None
            }
        },
    };

    let templates_dir = raw.templates_dir;
    if let Some(dir) = &templates_dir
        && !dir.is_dir()
    {
        p.problem(
            source.to_string(),
            "templates_dir".into(),
            format!("`{}` is not a directory", dir.display()),
        );
    }

    let escalation = raw.escalation.validate().unwrap_or_else(|problems| {
        for (key, message) in problems {
            p.problem(source.to_string(), key, message);
        }
        EscalationSettings::default()
    });

    let explicit_routes = !raw.alerts.routes.is_empty();
    let routes = Routes::from_raw(raw.alerts.routes).unwrap_or_else(|problems| {
        for (key, message) in problems {
            p.problem(source.to_string(), key, message);
        }
        Routes::default_only()
    });
    for (i, route) in routes.routes().iter().enumerate() {
        if let Some(ladder) = &route.ladder
            && escalation.ladder(ladder).is_none()
        {
            p.problem(
                source.to_string(),
                format!("alerts.routes[{i}].ladder"),
                format!("no escalation ladder is named `{ladder}`"),
            );
        }
    }
    // Alerts in use (a token for them, or routes) need a channel to open
    // incidents in; without one every notification would be refused.
    if (alert_token.is_some() || explicit_routes) && incident_channel.is_none() {
        // The default route takes what no configured route matches (nothing,
        // when one of them matches everything).
        let catch_all = routes.routes().iter().any(|r| r.matchers.is_empty());
        let homeless: Vec<&str> = routes
            .routes()
            .iter()
            .chain((!catch_all).then(|| routes.default_route()))
            .filter(|r| r.channel.is_none())
            .map(|r| r.name.as_str())
            .collect();
        if !homeless.is_empty() {
            p.problem(
                source.to_string(),
                "slack.incident_channel / KLAXON_INCIDENT_CHANNEL".into(),
                format!(
                    "alerts need a channel to open incidents in, and {} {} none: set KLAXON_INCIDENT_CHANNEL, or a `channel` on every [[alerts.routes]]",
                    homeless.iter().map(|n| format!("route `{n}`")).collect::<Vec<_>>().join(", "),
                    if homeless.len() == 1 { "has" } else { "have" }
                ),
            );
        }
    }
    let alertmanager_url =
        match p.pick(None, "alerts.alertmanager_url", raw.alerts.alertmanager_url) {
            None => None,
            Some((v, src, key)) => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    p.problem(src, key, format!("`{v}` is not an http(s) URL"));
                }
                Some(v.trim_end_matches('/').to_string())
            }
        };
    let max_silence = p.duration(
        "alerts.max_silence",
        raw.alerts.max_silence,
        Duration::from_secs(7 * 24 * 3600),
    );
    let mut silencers = Vec::new();
    for (i, t) in raw.alerts.silencers.iter().enumerate() {
        match crate::escalation::Target::parse(t) {
            Ok(t) => silencers.push(t),
            Err(e) => p.problem(source.to_string(), format!("alerts.silencers[{i}]"), e),
        }
    }
    let silence_maintenance = raw.alerts.silence_maintenance.unwrap_or(false);
    if silence_maintenance && alertmanager_url.is_none() {
        p.problem(
            source.to_string(),
            "alerts.silence_maintenance".into(),
            "needs alerts.alertmanager_url: the silences are made in Alertmanager",
        );
    }
    let alerts = AlertSettings {
        silence_maintenance,
        routes,
        alertmanager_url,
        expire_silences_on_resolve: raw.alerts.expire_silences_on_resolve.unwrap_or(true),
        max_silence,
        silencers,
        max_body_bytes: raw
            .alerts
            .max_body_bytes
            .unwrap_or(DEFAULT_ALERT_BODY_BYTES)
            .max(64 * 1024),
    };

    let followup_webhook = match raw.followups.webhook_url {
        None => {
            if raw.followups.webhook_body.is_some() || followup_token.is_some() {
                p.problem(
                    source.to_string(),
                    "followups.webhook_url".into(),
                    "is missing: the webhook's body and token are set, but not where to send them",
                );
            }
            None
        }
        Some(url) => {
            let parsed = reqwest::Url::parse(&url);
            if !matches!(parsed.as_ref().map(|u| u.scheme()), Ok("http" | "https")) {
                p.problem(
                    source.to_string(),
                    "followups.webhook_url".into(),
                    format!("`{url}` is not an http:// or https:// URL"),
                );
            }
            let body = raw
                .followups
                .webhook_body
                .unwrap_or_else(|| DEFAULT_FOLLOWUP_BODY.to_string());
            if let Err(e) = check_webhook_body(&body) {
                p.problem(source.to_string(), "followups.webhook_body".into(), e);
            }
            Some(FollowUpWebhook {
                url,
                body,
                content_type: raw
                    .followups
                    .webhook_content_type
                    .unwrap_or_else(|| "application/json".into()),
                token: followup_token,
            })
        }
    };

    let history_proxy = match raw.history.trusted_proxy_header {
        None => {
            if !raw.history.trusted_proxies.is_empty() {
                p.problem(
                    source.to_string(),
                    "history.trusted_proxy_header".into(),
                    "is missing: trusted_proxies are named, but not the header they set",
                );
            }
            None
        }
        Some(h) => {
            let header = axum::http::HeaderName::from_bytes(h.trim().as_bytes());
            let mut addresses = Vec::new();
            for (i, a) in raw.history.trusted_proxies.iter().enumerate() {
                match a.trim().parse::<std::net::IpAddr>() {
                    Ok(ip) => addresses.push(ip),
                    Err(_) => p.problem(
                        source.to_string(),
                        format!("history.trusted_proxies[{i}]"),
                        format!(
                            "`{a}` is not an IP address (the proxy's, as Klaxon sees it connect)"
                        ),
                    ),
                }
            }
            if addresses.is_empty() {
                p.problem(
                    source.to_string(),
                    "history.trusted_proxies".into(),
                    "must name the proxy's addresses: a header anyone can send proves nothing",
                );
            }
            match header {
                Ok(header)
                    if [
                        axum::http::header::AUTHORIZATION,
                        axum::http::header::COOKIE,
                        axum::http::header::HOST,
                    ]
                    .contains(&header) =>
                {
                    p.problem(
                        source.to_string(),
                        "history.trusted_proxy_header".into(),
                        format!("`{h}` is sent by every browser or client: name the header your proxy sets for the signed-in user, like X-Forwarded-User"),
                    );
                    None
                }
                Ok(header) => Some(TrustedProxy { header, addresses }),
                Err(_) => {
                    p.problem(
                        source.to_string(),
                        "history.trusted_proxy_header".into(),
                        format!("`{h}` is not a header name"),
                    );
                    None
                }
            }
        }
    };

    let status_listen = (p.env)("KLAXON_STATUS_LISTEN").filter(|v| !v.is_empty());
    let (status, problems) = statuspage::from_raw(raw.status, status_listen, &|r| {
        alerts.routes.named(r).is_some()
    });
    for (key, message) in problems {
        p.problem(source.to_string(), key, message);
    }
    if let (Some(own), Some(main)) = (status.listen, listen)
        && (own == main
            || own.port() == main.port()
                && (own.ip().is_unspecified() || main.ip().is_unspecified()))
    {
        p.problem(
            source.to_string(),
            "status.listen / KLAXON_STATUS_LISTEN".into(),
            format!("`{own}` is where Klaxon already listens (`listen`); give the status page an address of its own"),
        );
    }

    let any_heartbeats = !raw.heartbeats.is_empty();
    let heartbeats = heartbeats::from_raw(raw.heartbeats).unwrap_or_else(|problems| {
        for (key, message) in problems {
            p.problem(source.to_string(), key, message);
        }
        Vec::new()
    });
    if any_heartbeats && alert_token.is_none() {
        p.problem(
            source.to_string(),
            "alert_token / KLAXON_ALERT_TOKEN".into(),
            "[[heartbeats]] need it: without a token anyone who reaches Klaxon could keep a heartbeat beating (POST /heartbeats/NAME, or a Watchdog posted to /alerts/alertmanager) and hide the outage it watches for",
        );
    }
    for (i, h) in heartbeats.iter().enumerate() {
        if let Some(ladder) = &h.ladder
            && escalation.ladder(ladder).is_none()
        {
            p.problem(
                source.to_string(),
                format!("heartbeats[{i}].ladder"),
                format!("no escalation ladder is named `{ladder}`"),
            );
        }
        if h.channel.is_none() && incident_channel.is_none() {
            p.problem(
                source.to_string(),
                format!("heartbeats[{i}].channel"),
                "a missed beat opens an incident, which needs a channel: set this or KLAXON_INCIDENT_CHANNEL",
            );
        }
    }
    for (i, route) in alerts.routes.routes().iter().enumerate() {
        // The labels a beat surely has (this route's `label=value` matchers):
        // an earlier route that takes them takes the beats.
        let beat_labels: std::collections::BTreeMap<String, String> = route
            .matchers
            .iter()
            .filter(|m| m.op() == crate::alerts::routing::MatchOp::Eq)
            .map(|m| (m.label().to_string(), m.value().to_string()))
            .collect();
        if route.heartbeat.is_some()
            && let Some(earlier) = alerts.routes.routes()[..i]
                .iter()
                .find(|r| r.matches(&beat_labels))
        {
            p.problem(
                source.to_string(),
                format!("alerts.routes[{i}].heartbeat"),
                format!(
                    "route `{}` before it also takes these beats (it matches {}), so they would open incidents there: put the heartbeat route first",
                    earlier.name,
                    if beat_labels.is_empty() {
                        "everything".to_string()
                    } else {
                        beat_labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            );
        }
        if let Some(h) = &route.heartbeat
            && !heartbeats.iter().any(|hb| &hb.name == h)
        {
            p.problem(
                source.to_string(),
                format!("alerts.routes[{i}].heartbeat"),
                format!("no [[heartbeats]] entry is named `{h}`"),
            );
        }
    }
    let route_names: Vec<&str> = alerts
        .routes
        .routes()
        .iter()
        .chain(std::iter::once(alerts.routes.default_route()))
        .map(|r| r.name.as_str())
        .collect();
    let maintenance =
        maintenance::from_raw(raw.maintenance, &route_names).unwrap_or_else(|problems| {
            for (key, message) in problems {
                p.problem(source.to_string(), key, message);
            }
            Vec::new()
        });

    let actions = Catalog::from_raw(raw.actions).unwrap_or_else(|problems| {
        for (key, message) in problems {
            p.problem(source.to_string(), key, message);
        }
        Catalog::default()
    });
    // People named by schedule must name a schedule that exists.
    let publishers = status
        .publishers
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("status.publishers[{i}]"), t));
    let actors = actions.actions.iter().flat_map(|(name, action)| {
        action
            .allowed
            .iter()
            .chain(&action.approvers)
            .map(move |t| (format!("actions.{name}"), t))
    });
    for (key, t) in publishers.chain(actors) {
        if let crate::escalation::Target::Schedule(s) = t
            && !escalation.schedules.contains_key(s)
        {
            p.problem(
                source.to_string(),
                key,
                format!("no schedule is named `{s}`"),
            );
        }
    }
    for (name, action) in &actions.actions {
        // An approval nobody can ever give is a refusal in disguise.
        let can_approve = |t: &crate::escalation::Target| match t {
            crate::escalation::Target::Schedule(s) => escalation
                .schedules
                .get(s)
                .is_some_and(|s| !s.rotation.is_empty() || !s.overrides.is_empty()),
            _ => true,
        };
        if action.approval
            && action
                .approvers
                .iter()
                .all(|t| matches!(t, crate::escalation::Target::Schedule(_)) && !can_approve(t))
            && !action.approvers.is_empty()
        {
            p.problem(
                source.to_string(),
                format!("actions.{name}.approvers"),
                "nobody can ever approve it: its approvers are schedules with nobody in their rotation",
            );
        }
    }

    match (listen, p.problems.is_empty()) {
        (Some(listen), true) => Ok(Settings {
            listen,
            database_url: SecretString::from(database_url),
            slack: SlackSettings {
                bot_token,
                signing_secret,
                app_token,
                api_url,
                incident_channel,
            },
            alert_token,
            templates_dir,
            incidents: IncidentSettings {
                default_severity,
                severity_changers,
                update_every,
                ack_timeout,
                roles,
                channel_for,
                archive_channel_after,
                postmortem_due,
            },
            outbox: OutboxSettings {
                channel_rate,
                channel_burst,
                request_timeout,
                max_backoff,
            },
            http: HttpSettings {
                max_body_bytes,
                header_read_timeout,
                request_timeout: http_request_timeout,
                max_concurrent_requests,
            },
            log_format,
            escalation,
            alerts,
            actions,
            heartbeats,
            maintenance,
            history_token,
            followup_webhook,
            history_proxy,
            status,
        }),
        _ => Err(ConfigErrors(p.problems)),
    }
}

/// The shortest signing secret or alert token accepted (Slack's signing
/// secrets are 32 hexadecimal characters; `openssl rand -hex 32` gives 64).
pub const MIN_SECRET_CHARS: usize = 16;

/// Values published as examples (in Klaxon's files, or Slack's documentation):
/// anyone may know them, so none may guard an install.
const PUBLISHED_SECRETS: &[&str] = &[
    // Slack's "Verifying requests from Slack" example signing secret.
    "8f742231b10e8888abcd99yyyzzz85a5",
];

/// Why a secret must not be used (a published placeholder, too short), if so.
fn weak_secret(value: &str, min_chars: usize) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.len() >= 2
        && ((trimmed.starts_with('"') && trimmed.ends_with('"'))
            || (trimmed.starts_with('\'') && trimmed.ends_with('\'')))
    {
        // `docker run --env-file` and `kubectl create secret --from-env-file`
        // keep quotes: the secret would then never match.
        return Some("is wrapped in quotes, which become part of it: remove them".into());
    }
    if trimmed != value {
        return Some("starts or ends with whitespace, which becomes part of it: remove it".into());
    }
    let lower = value.to_ascii_lowercase();
    if ["replace", "change-me", "changeme", "example", "your-"]
        .iter()
        .any(|p| lower.contains(p))
        || PUBLISHED_SECRETS.contains(&value)
    {
        return Some(
            "is a published placeholder, so anyone could use it: set the real value".into(),
        );
    }
    let n = value.chars().count();
    if n < min_chars {
        return Some(format!(
            "is {n} characters long; use at least {min_chars} (generate one with `openssl rand -hex 32`)"
        ));
    }
    let distinct = value
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    (min_chars > 0 && distinct < MIN_DISTINCT_CHARS).then(|| {
        format!(
            "uses only {distinct} different characters, so it is easy to guess; generate one with `openssl rand -hex 32`"
        )
    })
}

/// The fewest different characters a secret may use (`openssl rand -hex 32`
/// gives 16 of 16 possible).
const MIN_DISTINCT_CHARS: usize = 6;

/// Every environment variable Klaxon reads (README, "Configuration").
pub const ENV_VARS: &[&str] = &[
    "KLAXON_CONFIG",
    "KLAXON_LISTEN",
    "KLAXON_DATABASE_URL",
    "KLAXON_SLACK_BOT_TOKEN",
    "KLAXON_SLACK_SIGNING_SECRET",
    "KLAXON_SLACK_APP_TOKEN",
    "KLAXON_SLACK_API_URL",
    "KLAXON_INCIDENT_CHANNEL",
    "KLAXON_ALERT_TOKEN",
    "KLAXON_HISTORY_TOKEN",
    "KLAXON_FOLLOWUP_WEBHOOK_TOKEN",
    "KLAXON_STATUS_LISTEN",
    "KLAXON_LOG_FORMAT",
    "KLAXON_REQUIRE_SHARED_DATABASE",
    "RUST_LOG",
    // The outbound proxy (Slack's Web API and the Socket Mode socket).
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// `KLAXON_*` variables in `names` that Klaxon does not read (misspelt?).
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|n| n.starts_with("KLAXON_") && !ENV_VARS.contains(n))
        .collect()
}

/// The process environment, for [`load`].
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_need_no_file_and_run_in_console_mode_on_sqlite() {
        let s = from_toml("", "t.toml", &env_of(&[])).expect("defaults are valid");
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.slack.bot_token.is_none());
        assert_eq!(s.incidents.default_severity, Severity::P2);
    }

    #[test]
    fn an_action_only_an_empty_schedule_could_approve_is_refused() {
        let text = r#"
[[escalation.schedules]]
name = "nobody"
handoff = "2026-11-02 09:00"

[[actions]]
name = "restart-web"
kind = "http"
url = "http://127.0.0.1:8001/restart"
method = "POST"
allowed = ["user:U0ALICE"]
approvers = ["schedule:nobody"]
"#;
        let problems = match from_toml(text, "t.toml", &env_of(&[])) {
            Ok(_) => panic!("accepted an action nobody can approve"),
            Err(e) => e.to_string(),
        };
        assert!(
            problems.contains("actions.restart-web.approvers")
                && problems.contains("nobody can ever approve"),
            "{problems}"
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let s = from_toml(
            "listen = \"127.0.0.1:1\"\n[slack]\nincident_channel = \"C111\"\n",
            "t.toml",
            &env_of(&[
                ("KLAXON_LISTEN", "127.0.0.1:2"),
                ("KLAXON_INCIDENT_CHANNEL", "C222"),
            ]),
        )
        .expect("valid");
        assert_eq!(s.listen.port(), 2);
        assert_eq!(
            s.slack.incident_channel.map(|c| c.to_string()),
            Some("C222".into())
        );
    }

    #[test]
    fn every_problem_is_reported_in_one_pass() {
        let err = from_toml(
            "listen = \"nowhere\"\n[slack]\nincident_channel = \"#incidents\"\n[outbox]\nrequest_timeout = \"soon\"\n",
            "t.toml",
            &env_of(&[("KLAXON_SLACK_BOT_TOKEN", "xoxb-1")]),
        )
        .expect_err("invalid");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"listen"), "{keys:?}");
        assert!(keys.contains(&"slack.incident_channel"), "{keys:?}");
        assert!(keys.contains(&"outbox.request_timeout"), "{keys:?}");
        assert!(
            keys.iter().any(|k| k.contains("signing_secret")),
            "{keys:?}"
        );
    }

    #[test]
    fn socket_mode_needs_an_app_level_token_and_a_bot_token_but_no_signing_secret() {
        let outcome = |pairs: &[(&str, &str)]| from_toml("", "t.toml", &env_of(pairs));
        let s = outcome(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1-2-abc"),
            (
                "KLAXON_SLACK_APP_TOKEN",
                "xapp-1-A0KLAXON-1234567890-abcdef",
            ),
        ])
        .expect("Socket Mode needs no signing secret");
        assert!(s.slack.app_token.is_some() && s.slack.signing_secret.is_none());

        let swapped = outcome(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1-2-abc"),
            ("KLAXON_SLACK_APP_TOKEN", "xoxb-1-2-abc"),
        ])
        .expect_err("a bot token in place of the app token")
        .to_string();
        assert!(swapped.contains("is a bot token"), "{swapped}");
        assert!(swapped.contains("xapp-"), "{swapped}");

        let alone = outcome(&[(
            "KLAXON_SLACK_APP_TOKEN",
            "xapp-1-A0KLAXON-1234567890-abcdef",
        )])
        .expect_err("an app token without a bot token")
        .to_string();
        assert!(alone.contains("slack.bot_token"), "{alone}");

        let placeholder = outcome(&[
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-1-2-abc"),
            ("KLAXON_SLACK_APP_TOKEN", "xapp-REPLACE-ME"),
        ])
        .expect_err("the example's placeholder")
        .to_string();
        assert!(
            placeholder.contains("published placeholder"),
            "{placeholder}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = from_toml("lisen = \"x\"\n", "t.toml", &env_of(&[])).expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn unknown_route_and_action_keys_are_refused_by_name() {
        let err = from_toml(
            "[[alerts.routes]]\nname = \"x\"\nmatchers = [\"team=payments\"]\n\n[[escalation.ladders]]\nname = \"default\"\nlevel = []\n",
            "t.toml",
            &env_of(&[]),
        )
        .expect_err("typos");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"alerts.routes[0].matchers"), "{err}");
        assert!(keys.contains(&"escalation.ladders[0].level"), "{err}");
    }

    #[test]
    fn quoted_monotonous_and_shared_secrets_are_refused() {
        let problems = |pairs: &[(&str, &str)]| -> String {
            from_toml("", "t.toml", &env_of(pairs))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let quoted = problems(&[("KLAXON_ALERT_TOKEN", "\"4e9d1c07b2a85f36e0d9\"")]);
        assert!(quoted.contains("wrapped in quotes"), "{quoted}");
        let dull = problems(&[("KLAXON_ALERT_TOKEN", "aaaaaaaaaaaaaaaaaaaa")]);
        assert!(dull.contains("only 1 different characters"), "{dull}");
        let shared = problems(&[
            ("KLAXON_ALERT_TOKEN", "4e9d1c07b2a85f36e0d9c4a1"),
            ("KLAXON_SLACK_SIGNING_SECRET", "4e9d1c07b2a85f36e0d9c4a1"),
            ("KLAXON_INCIDENT_CHANNEL", "C0INCIDENTS"),
        ]);
        assert!(shared.contains("is the Slack signing secret"), "{shared}");
        assert!(
            !shared.contains("4e9d1c07"),
            "never echo a secret: {shared}"
        );
        let placeholder_db = problems(&[(
            "KLAXON_DATABASE_URL",
            "postgres://klaxon:REPLACE-ME@postgres.example.internal/klaxon",
        )]);
        assert!(
            placeholder_db.contains("example's placeholder"),
            "{placeholder_db}"
        );
        assert!(!placeholder_db.contains("postgres.example.internal"));
    }

    #[test]
    fn values_of_the_wrong_type_are_all_reported_with_the_rest() {
        let text = "lisen = \"x\"\n[outbox]\nchannel_rate = \"fast\"\nchannel_burst = \"lots\"\n[slack]\nincident_chanel = \"C1\"\n[[actions]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/health\"\ntimeout = 5\nallowed = [\"user:U0A\"]\n";
        let err = from_toml(text, "t.toml", &env_of(&[])).expect_err("five mistakes");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "lisen",
            "outbox.channel_rate",
            "outbox.channel_burst",
            "slack.incident_chanel",
            "actions.a.timeout",
        ] {
            assert!(keys.contains(&key), "{key} missing: {err}");
        }
    }

    #[test]
    fn every_misspelt_and_duplicate_key_is_reported_in_one_pass() {
        let text = "lisen = \"x\"\n[slack]\nincident_chanel = \"C1\"\n[outbox]\nchannel_rate = 1.0\nchannel_rate = 2.0\n[alerts]\nmax_silense = \"1h\"\n";
        let err = from_toml(text, "t.toml", &env_of(&[])).expect_err("four mistakes");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"lisen"), "{err}");
        assert!(keys.contains(&"slack.incident_chanel"), "{err}");
        assert!(keys.contains(&"alerts.max_silense"), "{err}");
        assert!(
            err.0
                .iter()
                .any(|p| p.key == "(syntax)" && p.message.contains("duplicate")),
            "{err}"
        );
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn published_placeholders_and_short_secrets_are_refused() {
        for (key, value) in [
            (
                "KLAXON_SLACK_SIGNING_SECRET",
                "replace-with-the-slack-signing-secret",
            ),
            (
                "KLAXON_SLACK_SIGNING_SECRET",
                "8f742231b10e8888abcd99yyyzzz85a5",
            ),
            ("KLAXON_SLACK_SIGNING_SECRET", "short"),
            ("KLAXON_ALERT_TOKEN", "replace-with-a-long-random-token"),
            ("KLAXON_ALERT_TOKEN", "REPLACE-ME-WITH-A-LONG-RANDOM-TOKEN"),
            ("KLAXON_ALERT_TOKEN", "t0ken"),
            ("KLAXON_SLACK_BOT_TOKEN", "xoxb-REPLACE-ME"),
        ] {
            let env = |k: &str| {
                if k == key {
                    Some(value.to_string())
                } else if k == "KLAXON_SLACK_SIGNING_SECRET" {
                    Some("4e9d1c07b2a85f36e0d9c4a1b7f2e813".to_string())
                } else {
                    None
                }
            };
            let err = from_toml("", "t.toml", &env).expect_err(value);
            assert!(
                err.0.iter().any(|p| p.key.contains(key)),
                "{value} for {key}: {err}"
            );
            assert!(
                !err.to_string().contains(value) || value.len() < 8,
                "the value itself is not echoed: {err}"
            );
        }
    }

    #[test]
    fn a_shared_database_is_required_when_the_install_says_so() {
        let env = env_of(&[("KLAXON_REQUIRE_SHARED_DATABASE", "true")]);
        let err = from_toml("", "t.toml", &env).expect_err("SQLite with several replicas");
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        let env = env_of(&[
            ("KLAXON_REQUIRE_SHARED_DATABASE", "true"),
            ("KLAXON_DATABASE_URL", "postgres://k@db/k"),
        ]);
        assert!(from_toml("", "t.toml", &env).is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = from_toml(
            "",
            "t.toml",
            &env_of(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-very-secret-bot"),
                ("KLAXON_SLACK_SIGNING_SECRET", "sign-very-secret-value"),
                ("KLAXON_DATABASE_URL", "postgres://u:pw-very-secret@h/db"),
            ]),
        )
        .expect("valid");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
    }

    #[test]
    fn reminders_default_to_the_runbook_and_a_table_changes_only_what_it_names() {
        let s = from_toml("", "t.toml", &env_of(&[])).expect("defaults");
        assert_eq!(
            s.incidents.update_every(Severity::P0),
            Some(Duration::from_secs(1_800))
        );
        assert_eq!(s.incidents.update_every(Severity::P2), None);
        assert_eq!(s.incidents.ack_timeout(Severity::P0), None);
        let text = "[incidents]\nupdate_every = { P1 = \"off\", P2 = \"4h\" }\nack_timeout = { P0 = \"30m\" }\n";
        let s = from_toml(text, "t.toml", &env_of(&[])).expect("valid");
        assert_eq!(
            s.incidents.update_every(Severity::P0),
            Some(Duration::from_secs(1_800))
        );
        assert_eq!(s.incidents.update_every(Severity::P1), None);
        assert_eq!(
            s.incidents.update_every(Severity::P2),
            Some(Duration::from_secs(14_400))
        );
        assert_eq!(
            s.incidents.ack_timeout(Severity::P0),
            Some(Duration::from_secs(1_800))
        );
        let bad = "[incidents]\nupdate_every = { P5 = \"1h\", P1 = \"soon\" }\n";
        let err = from_toml(bad, "t.toml", &env_of(&[])).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("incidents.update_every.P5"), "{text}");
        assert!(text.contains("incidents.update_every.P1"), "{text}");
    }

    #[test]
    fn a_heartbeat_route_must_name_a_heartbeat_and_a_window_silence_needs_alertmanager() {
        let text = r#"
[slack]
incident_channel = "C0INC"
[alerts]
silence_maintenance = true
[[alerts.routes]]
name = "watchdog"
match = ["alertname=Watchdog"]
heartbeat = "watchdgo"
[[heartbeats]]
name = "watchdog"
interval = "5m"
[[maintenance]]
name = "patching"
route = "nope"
cron = "0 2 * * SUN"
duration = "2h"
"#;
        let err = from_toml(text, "t.toml", &env_of(&[])).expect_err("refused");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "alerts.routes[0].heartbeat",
            "alerts.silence_maintenance",
            "maintenance[0].route",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
    }

    #[test]
    fn endless_or_never_starting_windows_hidden_heartbeat_routes_and_tokenless_heartbeats_are_refused()
     {
        let text = r#"
[slack]
incident_channel = "C0INC"
[[alerts.routes]]
name = "everything"
match = ["alertname=~.*"]
[[alerts.routes]]
name = "watchdog"
match = ["alertname=Watchdog"]
heartbeat = "watchdog"
[[heartbeats]]
name = "watchdog"
interval = "5m"
watches = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
[[maintenance]]
name = "always"
route = "everything"
cron = "*/5 * * * *"
duration = "1h"
[[maintenance]]
name = "never"
route = "everything"
cron = "0 2 30 FEB *"
duration = "1h"
"#;
        let err = from_toml(text, "t.toml", &env_of(&[])).expect_err("refused");
        let problems: Vec<String> = err
            .0
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        for expected in [
            "alert_token / KLAXON_ALERT_TOKEN: [[heartbeats]] need it",
            "alerts.routes[1].heartbeat: route `everything` before it also takes these beats",
            "maintenance[0].duration: each window would last until the next one starts",
            "maintenance[1].cron: `0 2 30 FEB *` never fires",
            "heartbeats[0].watches: is longer than 150 characters",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected} in {problems:#?}"
            );
        }
    }

    #[test]
    fn big_incident_settings_are_checked_and_a_misspelt_webhook_field_is_refused() {
        let good = r#"
[incidents]
channel_for = ["P0", "p1"]
archive_channel_after = "off"
[[incidents.roles]]
name = "Lead"
duties = "Decide."
[followups]
webhook_url = "https://tracker.internal/hooks/klaxon"
webhook_body = '{"summary": {{json title}}, "n": {{number}}, "who": "{{owner}}"}'
"#;
        let s = from_toml(good, "t.toml", &env_of(&[])).expect("valid");
        assert_eq!(s.incidents.channel_for, vec![Severity::P0, Severity::P1]);
        assert_eq!(s.incidents.archive_channel_after, None);
        assert_eq!(
            s.incidents.roles.len(),
            1,
            "named roles replace the defaults"
        );
        let webhook = s.followup_webhook.expect("webhook");
        let body = webhook
            .render(&serde_json::json!({"title": "a \"b\"", "number": 2, "owner": "x\ny"}))
            .expect("renders");
        assert_eq!(body, r#"{"summary": "a \"b\"", "n": 2, "who": "x\ny"}"#);

        for (text, key) in [
            (
                "[incidents]\nchannel_for = [\"P9\"]\n",
                "incidents.channel_for[0]",
            ),
            (
                "[[incidents.roles]]\nname = \"two words\"\nduties = \"x\"\n",
                "incidents.roles[0].name",
            ),
            (
                "[followups]\nwebhook_url = \"ftp://x\"\n",
                "followups.webhook_url",
            ),
            (
                "[followups]\nwebhook_url = \"https://x\"\nwebhook_body = '{\"t\": {{json titel}}}'\n",
                "followups.webhook_body",
            ),
            (
                "[followups]\nwebhook_url = \"https://x\"\nwebhook_body = '{\"t\": {{titel}}}'\n",
                "followups.webhook_body",
            ),
        ] {
            let e = from_toml(text, "t.toml", &env_of(&[])).expect_err(text);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn status_page_settings_are_checked_all_in_one_pass() {
        let good = r#"
listen = "127.0.0.1:8080"
[status]
title = "Acme \u202Estatus\uFFFE"
public_url = "https://status.example.com/"
listen = "0.0.0.0:8081"
publishers = ["user:U0BOB", "group:S0COMMS"]
[[status.components]]
name = "Checkout"
[history]
trusted_proxy_header = "X-Forwarded-User"
trusted_proxies = ["10.0.0.5"]
"#;
        let s = from_toml(good, "t.toml", &env_of(&[])).expect("valid");
        assert_eq!(s.status.title, "Acme status", "no right-to-left override");
        assert_eq!(
            s.status.public_url.as_deref(),
            Some("https://status.example.com")
        );
        assert_eq!(s.status.components[0].name.as_str(), "checkout");
        assert_eq!(s.status.components[0].title, "checkout");
        assert_eq!(s.status.publishers.len(), 2);
        assert!(s.history_proxy.is_some());

        let bad = r#"
listen = "127.0.0.1:8080"
[status]
public_url = "https://status.example.com/?q=<x>"
listen = "0.0.0.0:8080"
publishers = ["bob"]
[[status.components]]
name = "none"
[[status.components]]
name = "api"
routes = ["nosuchroute"]
[[status.components]]
name = "api"
[history]
trusted_proxies = ["not-an-ip"]
"#;
        let e = from_toml(bad, "t.toml", &env_of(&[]))
            .expect_err("invalid")
            .to_string();
        for key in [
            "status.public_url",
            "status.listen",
            "status.publishers[0]",
            "status.components[0].name",
            "status.components[1].routes",
            "status.components[2].name",
            "history.trusted_proxy_header",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
