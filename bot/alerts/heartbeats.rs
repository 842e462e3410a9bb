//! Heartbeats (dead man's switches): things that must keep saying they are
//! alive, and what Klaxon does when one goes quiet.
//!
//! A heartbeat is fed by beats: notifications of an alert route whose
//! `heartbeat` names it (Alertmanager's always-firing `Watchdog` alert, which
//! proves the whole Prometheus → Alertmanager → Klaxon path works), or
//! `POST /heartbeats/{name}` from a cron job or a backup. When no beat arrives
//! within `interval + grace`, an incident opens saying what went quiet and
//! since when; when beats resume, it resolves. The timing is a durable job
//! (`crate::usecases::heartbeats`); this module holds the validated settings.

use std::time::Duration;

use serde::Deserialize;

use crate::incident::{ChannelId, Severity};

/// One `[[heartbeats]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    pub name: String,
    /// What goes quiet when beats stop, for the incident's title and text.
    pub watches: Option<String>,
    pub interval: Option<String>,
    pub grace: Option<String>,
    pub severity: Option<String>,
    pub ladder: Option<String>,
    pub channel: Option<String>,
}

/// A validated heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Lowercase letters, digits, `-` and `_`: it is a path segment of
    /// `POST /heartbeats/{name}` and a metric label.
    pub name: String,
    /// What the beats prove works, e.g. "the Prometheus → Alertmanager → Klaxon path".
    pub watches: String,
    /// How often beats are expected.
    pub interval: Duration,
    /// How much later than `interval` a beat may be before it counts as missed.
    pub grace: Duration,
    /// The severity of the incident a missed beat opens.
    pub severity: Severity,
    /// The ladder that pages for it; `None`: the severity's ladder.
    pub ladder: Option<String>,
    /// Where its incident opens; `None`: the incident channel.
    pub channel: Option<ChannelId>,
}

impl Heartbeat {
    /// How long after a beat (or after Klaxon first learns of the heartbeat)
    /// silence becomes an incident.
    pub fn allowed_silence(&self) -> Duration {
        self.interval.saturating_add(self.grace)
    }
}

/// The longest `watches` text: it goes into the missed-beat incident's title.
pub const MAX_WATCHES_CHARS: usize = 150;

/// The longest interval (or grace) a heartbeat may have: a year.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);

/// The default `grace`: a tenth of the interval, at least 30 seconds.
fn default_grace(interval: Duration) -> Duration {
    (interval / 10).max(Duration::from_secs(30))
}

/// Whether `name` may name a heartbeat (a URL path segment and a label value).
pub fn is_heartbeat_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Validates the `[[heartbeats]]` tables; every problem as `(key, message)`.
pub fn from_raw(raw: Vec<RawHeartbeat>) -> Result<Vec<Heartbeat>, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut out: Vec<Heartbeat> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let before = problems.len();
        let mut problem = |key: &str, message: String| {
            problems.push((format!("heartbeats[{i}].{key}"), message));
        };
        let name = r.name.trim().to_string();
        if !is_heartbeat_name(&name) {
            problem(
                "name",
                format!(
                    "`{name}` is not a heartbeat name: use lowercase letters, digits, - and _ (it is the path of POST /heartbeats/NAME)"
                ),
            );
        } else if out.iter().any(|h| h.name == name) {
            problem("name", format!("`{name}` names two heartbeats"));
        }
        let mut duration = |key: &str, v: Option<String>| {
            v.and_then(|v| match crate::time::parse_duration(&v) {
                Ok(d) if d > MAX_INTERVAL => {
                    problem(key, format!("`{v}` is longer than a year"));
                    None
                }
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                Ok(_) => {
                    problem(key, format!("`{v}` is shorter than a second"));
                    None
                }
                Err(e) => {
                    problem(key, e);
                    None
                }
            })
        };
        let interval = duration("interval", r.interval.clone());
        let grace = duration("grace", r.grace.clone());
        if r.interval.is_none() {
            problem(
                "interval",
                "how often do beats come? e.g. interval = \"5m\" (longer than the sender's repeat interval)".into(),
            );
        }
        let severity = match r.severity.as_deref() {
            None => Severity::P1,
            Some(v) => v.parse().unwrap_or_else(|e: String| {
                problem("severity", e);
                Severity::P1
            }),
        };
        let channel = r.channel.as_deref().and_then(|v| {
            let c = ChannelId::parse(v);
            if c.is_none() {
                problem(
                    "channel",
                    format!("`{v}` is not a channel ID (like C0123ABCDEF)"),
                );
            }
            c
        });
        let ladder = r.ladder.map(|l| l.trim().to_string());
        if ladder.as_deref() == Some("") {
            problem(
                "ladder",
                "the ladder name is empty; leave the key out for the severity's ladder".into(),
            );
        }
        if let Some(w) = &r.watches
            && w.trim().chars().count() > MAX_WATCHES_CHARS
        {
            problem(
                "watches",
                format!(
                    "is longer than {MAX_WATCHES_CHARS} characters; it goes into the incident's title"
                ),
            );
        }
        if problems.len() == before
            && let Some(interval) = interval
        {
            let watches = r
                .watches
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| format!("whatever sends the `{name}` heartbeat"));
            out.push(Heartbeat {
                grace: grace.unwrap_or_else(|| default_grace(interval)),
                name,
                watches,
                interval,
                severity,
                ladder,
                channel,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, interval: Option<&str>) -> RawHeartbeat {
        RawHeartbeat {
            name: name.into(),
            interval: interval.map(str::to_string),
            ..RawHeartbeat::default()
        }
    }

    #[test]
    fn a_heartbeat_needs_an_interval_and_a_name_fit_for_a_url() {
        let problems = from_raw(vec![raw("Nightly Backup", None)]).expect_err("refused");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["heartbeats[0].name", "heartbeats[0].interval"]);
    }

    #[test]
    fn grace_defaults_to_a_tenth_of_the_interval_but_at_least_thirty_seconds() {
        let hb =
            from_raw(vec![raw("watchdog", Some("1h")), raw("cron", Some("1m"))]).expect("valid");
        assert_eq!(hb[0].grace, Duration::from_secs(360));
        assert_eq!(hb[1].grace, Duration::from_secs(30));
        assert_eq!(hb[0].allowed_silence(), Duration::from_secs(3_960));
        assert_eq!(hb[0].severity, Severity::P1);
    }

    #[test]
    fn two_heartbeats_may_not_share_a_name() {
        let problems =
            from_raw(vec![raw("a", Some("1m")), raw("a", Some("2m"))]).expect_err("refused");
        assert_eq!(problems[0].0, "heartbeats[1].name");
    }
}
