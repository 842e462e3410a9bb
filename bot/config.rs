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

use crate::alerts::routing::{RawRoute, Routes};
use crate::escalation::{EscalationSettings, RawEscalation};
use crate::executor::catalog::{Catalog, RawAction};
use crate::incident::{ChannelId, Severity};

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
    /// The approved actions.
    pub actions: Catalog,
}

/// Alert webhooks: routes, Alertmanager's API for silences, body limits.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub routes: Routes,
    /// Alertmanager's base URL (`http://alertmanager:9093`), for silences from Slack.
    pub alertmanager_url: Option<String>,
    /// Expire the silences an incident created when it resolves.
    pub expire_silences_on_resolve: bool,
    /// The longest silence `/incident silence` may create.
    pub max_silence: Duration,
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
}

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
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    database_url: Option<String>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    alertmanager_url: Option<String>,
    expire_silences_on_resolve: Option<bool>,
    max_silence: Option<String>,
    max_body_bytes: Option<usize>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    bot_token: Option<String>,
    signing_secret: Option<String>,
    api_url: Option<String>,
    incident_channel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    default_severity: Option<String>,
    #[serde(default)]
    severity_changers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    channel_rate: Option<f64>,
    channel_burst: Option<u32>,
    request_timeout: Option<String>,
    max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
            let raw = toml::from_str::<RawFile>(&text).map_err(|e| {
                ConfigErrors(vec![Problem {
                    source: source.clone(),
                    key: "(syntax)".into(),
                    message: e.to_string().replace('\n', " "),
                }])
            })?;
            (raw, source)
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
    let raw = toml::from_str::<RawFile>(text).map_err(|e| {
        ConfigErrors(vec![Problem {
            source: source.to_string(),
            key: "(syntax)".into(),
            message: e.to_string().replace('\n', " "),
        }])
    })?;
    from_raw(raw, source, env)
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
    let alert_token = secret(&mut p, "KLAXON_ALERT_TOKEN", "alert_token", raw.alert_token);

    if let Some(t) = &bot_token
        && !t.expose_secret().starts_with("xoxb-")
    {
        p.problem(
            source.to_string(),
            "slack.bot_token / KLAXON_SLACK_BOT_TOKEN".into(),
            "a bot token starts with `xoxb-` (find it under OAuth & Permissions in the Slack app)",
        );
    }
    if bot_token.is_some() && signing_secret.is_none() {
        p.problem(
            source.to_string(),
            "slack.signing_secret / KLAXON_SLACK_SIGNING_SECRET".into(),
            "required whenever a bot token is set: without it no request from Slack can be verified",
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
    let alerts = AlertSettings {
        routes,
        alertmanager_url,
        expire_silences_on_resolve: raw.alerts.expire_silences_on_resolve.unwrap_or(true),
        max_silence,
        max_body_bytes: raw
            .alerts
            .max_body_bytes
            .unwrap_or(DEFAULT_ALERT_BODY_BYTES)
            .max(64 * 1024),
    };

    let actions = Catalog::from_raw(raw.actions).unwrap_or_else(|problems| {
        for (key, message) in problems {
            p.problem(source.to_string(), key, message);
        }
        Catalog::default()
    });
    for (name, action) in &actions.actions {
        for t in action.allowed.iter().chain(&action.approvers) {
            if let crate::escalation::Target::Schedule(s) = t
                && !escalation.schedules.contains_key(s)
            {
                p.problem(
                    source.to_string(),
                    format!("actions.{name}"),
                    format!("no schedule is named `{s}`"),
                );
            }
        }
    }

    match (listen, p.problems.is_empty()) {
        (Some(listen), true) => Ok(Settings {
            listen,
            database_url: SecretString::from(database_url),
            slack: SlackSettings {
                bot_token,
                signing_secret,
                api_url,
                incident_channel,
            },
            alert_token,
            templates_dir,
            incidents: IncidentSettings {
                default_severity,
                severity_changers,
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
        }),
        _ => Err(ConfigErrors(p.problems)),
    }
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
    fn unknown_keys_are_refused_by_name() {
        let err = from_toml("lisen = \"x\"\n", "t.toml", &env_of(&[])).expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = from_toml(
            "",
            "t.toml",
            &env_of(&[
                ("KLAXON_SLACK_BOT_TOKEN", "xoxb-very-secret"),
                ("KLAXON_SLACK_SIGNING_SECRET", "sign-very-secret"),
                ("KLAXON_DATABASE_URL", "postgres://u:pw-very-secret@h/db"),
            ]),
        )
        .expect("valid");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
    }
}
