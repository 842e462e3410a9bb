//! Alerts from monitoring systems, as Klaxon understands them.
//!
//! Prometheus Alertmanager and Grafana both notify Klaxon with a webhook whose
//! body is one *notification*: a group of alerts that share some labels. The
//! webhook handlers (`/alerts/alertmanager`, `/alerts/grafana`) turn that body
//! into an [`AlertBatch`] with [`payload`] and decide what to do with it with
//! [`routing`]. Nothing here touches the database or the network, so every rule
//! about what a sender may send can be tested with plain byte strings.
//!
//! Two more settings live here because they are about alert routes:
//! [`heartbeats`] (dead man's switches that alert routes or cron jobs beat)
//! and [`maintenance`] (scheduled windows over a route).
//!
//! As elsewhere, the types are parsed once at the edge: an [`Alert`] always has
//! a non-empty fingerprint and a real start time, an [`AlertBatch`] always has a
//! group key, and times are [`Millis`].

pub mod heartbeats;
pub mod maintenance;
pub mod payload;
pub mod routing;

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::incident::IncidentSource;
use crate::time::Millis;

/// Whether an alert (or a whole group) is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    /// `firing` or `resolved`, exactly as both senders spell them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identifies the alert across notifications; never empty. Alertmanager's
    /// own, Grafana's when it sends one, else [`labels_fingerprint`].
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Millis,
    /// `None` while firing: senders write `0001-01-01T00:00:00Z` for "no end".
    pub ends_at: Option<Millis>,
    /// The link back to the rule in Prometheus or Grafana.
    pub generator_url: Option<String>,
    /// Grafana only: a link that opens a silence for this alert.
    pub silence_url: Option<String>,
    /// Grafana only: the dashboard the rule belongs to.
    pub dashboard_url: Option<String>,
    /// Grafana only: the panel the rule belongs to.
    pub panel_url: Option<String>,
    /// Grafana only: the values of the rule's queries and expressions (`B`, `C`, …).
    pub values: BTreeMap<String, f64>,
}

impl Alert {
    /// The alert's name: its `alertname` label, else `alert`.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("alert")
    }
}

/// One webhook notification: a group of alerts and what they have in common.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertBatch {
    /// Which sender: `Alertmanager` or `Grafana`, never `Slack`.
    pub source: IncidentSource,
    /// Identifies the group across notifications; never empty. See
    /// [`payload::parse_grafana`] for where Grafana's comes from.
    pub group_key: String,
    /// `firing` while at least one *listed* alert fires. With `max_alerts`,
    /// Alertmanager derives it from the listed alerts only: never proof that
    /// the whole group resolved while `truncated_alerts` is above zero.
    pub status: AlertStatus,
    /// The sender's name for the receiver or contact point that sent it.
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    /// The sender's own URL (Alertmanager's or Grafana's).
    pub external_url: Option<String>,
    /// How many alerts the sender left out because of its `max_alerts` setting
    /// (Alertmanager's `truncatedAlerts`; Grafana sends it too). The group's
    /// size is the listed alerts plus these.
    pub truncated_alerts: u64,
    /// Grafana only: its ready-made title, like `[FIRING:1] HighErrorRate api (prod)`.
    pub title: Option<String>,
    /// Grafana only: its ready-made message body.
    pub message: Option<String>,
    /// The listed alerts, every one as received (possibly none).
    pub alerts: Vec<Alert>,
}

impl AlertBatch {
    /// A key identifying this notification's content for idempotency: the
    /// source, the group key, the group's status, how many alerts the sender
    /// left out, and each listed alert's fingerprint, status and start, sorted
    /// (so order does not matter), hashed with SHA-256 and hex-encoded.
    ///
    /// The same content delivered twice gives the same key; an alert that
    /// resolves, a new alert joining the group, an alert that fires again later
    /// (a new `startsAt`), or the same listed alerts with another number left
    /// out (`max_alerts`) gives a different one.
    pub fn dedupe_key(&self) -> String {
        let mut parts: Vec<(&str, &str, i64)> = self
            .alerts
            .iter()
            .map(|a| (a.fingerprint.as_str(), a.status.as_str(), a.starts_at.0))
            .collect();
        parts.sort_unstable();
        let mut h = Sha256::new();
        hash_field(&mut h, self.source.as_str());
        hash_field(&mut h, &self.group_key);
        hash_field(&mut h, self.status.as_str());
        hash_field(&mut h, &self.truncated_alerts.to_string());
        for (fingerprint, status, starts_at) in parts {
            hash_field(&mut h, fingerprint);
            hash_field(&mut h, status);
            hash_field(&mut h, &starts_at.to_string());
        }
        hex::encode(h.finalize())
    }

    /// The alerts that are still firing.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
    }

    /// The alerts that have resolved.
    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
    }

    /// The labels to route the whole notification by: the group labels with
    /// the common labels over them (Alertmanager's always agree).
    pub fn route_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.group_labels.clone();
        labels.extend(
            self.common_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        labels
    }

    /// The best one-line title: the common `summary` annotation, else Grafana's
    /// title, else the common `alertname` label (with " on " and the common
    /// `instance`, `service` or `job` label, the first there is), else
    /// `Alert group <group key>`.
    ///
    /// Grafana's `[FIRING:2] ` prefix is dropped. Whitespace (newlines
    /// included) collapses to single spaces, and the result is cut to
    /// [`TITLE_MAX_CHARS`].
    pub fn title(&self) -> String {
        let nonempty = |m: &BTreeMap<String, String>, k: &str| -> Option<String> {
            m.get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let grafana_title = self
            .title
            .as_deref()
            .map(without_state_prefix)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let text = nonempty(&self.common_annotations, "summary")
            .or(grafana_title)
            .or_else(|| {
                let name = nonempty(&self.common_labels, "alertname")?;
                let place = ["instance", "service", "job"]
                    .iter()
                    .find_map(|k| nonempty(&self.common_labels, k));
                Some(match place {
                    Some(p) => format!("{name} on {p}"),
                    None => name,
                })
            })
            .unwrap_or_else(|| format!("Alert group {}", self.group_key));
        one_line(&text, TITLE_MAX_CHARS)
    }
}

/// The longest title an alert gives its incident: the root message must
/// still have room for the alerts themselves (the whole text is stored).
pub const TITLE_MAX_CHARS: usize = 200;

/// A Grafana title without the state its default template puts first
/// (`[FIRING:2] `, `[RESOLVED] `): the incident's title must not freeze a
/// state that changes.
fn without_state_prefix(title: &str) -> &str {
    let t = title.trim();
    let Some(rest) = t.strip_prefix('[') else {
        return t;
    };
    let Some((state, after)) = rest.split_once(']') else {
        return t;
    };
    let word = state.split(':').next().unwrap_or_default();
    let count_ok = state
        .split_once(':')
        .is_none_or(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ["FIRING", "RESOLVED"].contains(&word) && count_ok {
        after.trim()
    } else {
        t
    }
}

/// A stable fingerprint for an alert that came without one: the SHA-256 of its
/// labels in name order (each name and value length-prefixed, so no two label
/// sets hash the same input), hex-encoded.
pub fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        hash_field(&mut h, k);
        hash_field(&mut h, v);
    }
    hex::encode(h.finalize())
}

/// Feeds one string to a hash unambiguously: its length, then its bytes.
fn hash_field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Whether `s` is a Prometheus label name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `s` on one line (whitespace runs become one space), at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let joined = crate::incident::single_line(s);
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn grafana_titles_lose_the_state_their_default_template_puts_first() {
        assert_eq!(
            without_state_prefix("[FIRING:2] CPU Infra (critical)"),
            "CPU Infra (critical)"
        );
        assert_eq!(without_state_prefix(" [RESOLVED] CPU Infra"), "CPU Infra");
        assert_eq!(without_state_prefix("[FIRING] CPU"), "CPU");
        assert_eq!(without_state_prefix("[prod] CPU high"), "[prod] CPU high");
        assert_eq!(without_state_prefix("[FIRING:x] CPU"), "[FIRING:x] CPU");
        assert_eq!(without_state_prefix("[FIRING:3]"), "");
    }

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(fingerprint: &str, status: AlertStatus) -> Alert {
        Alert {
            fingerprint: fingerprint.into(),
            status,
            labels: map(&[("alertname", "HighErrorRate")]),
            annotations: BTreeMap::new(),
            starts_at: Millis(1_795_367_049_000),
            ends_at: None,
            generator_url: None,
            silence_url: None,
            dashboard_url: None,
            panel_url: None,
            values: BTreeMap::new(),
        }
    }

    fn batch(alerts: Vec<Alert>) -> AlertBatch {
        AlertBatch {
            source: IncidentSource::Alertmanager,
            group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
            status: AlertStatus::Firing,
            receiver: "klaxon".into(),
            group_labels: map(&[("alertname", "HighErrorRate")]),
            common_labels: map(&[("alertname", "HighErrorRate")]),
            common_annotations: BTreeMap::new(),
            external_url: None,
            truncated_alerts: 0,
            title: None,
            message: None,
            alerts,
        }
    }

    #[test]
    fn statuses_round_trip_and_reject_other_words() {
        for s in [AlertStatus::Firing, AlertStatus::Resolved] {
            assert_eq!(AlertStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(AlertStatus::parse("alerting"), None);
        assert_eq!(AlertStatus::parse("Firing"), None);
        assert_eq!(IncidentSource::Grafana.as_str(), "grafana");
        assert_eq!(IncidentSource::Alertmanager.to_string(), "alertmanager");
    }

    #[test]
    fn the_dedupe_key_ignores_the_order_alerts_arrive_in() {
        let once = batch(vec![
            alert("aaaa", AlertStatus::Firing),
            alert("bbbb", AlertStatus::Resolved),
        ]);
        let again = batch(vec![
            alert("bbbb", AlertStatus::Resolved),
            alert("aaaa", AlertStatus::Firing),
        ]);
        assert_eq!(once.dedupe_key(), again.dedupe_key());
        assert_eq!(once.dedupe_key().len(), 64);
        assert!(once.dedupe_key().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_dedupe_key_changes_when_an_alert_changes_status() {
        let firing = batch(vec![
            alert("aaaa", AlertStatus::Firing),
            alert("bbbb", AlertStatus::Firing),
        ]);
        let one_resolved = batch(vec![
            alert("aaaa", AlertStatus::Firing),
            alert("bbbb", AlertStatus::Resolved),
        ]);
        assert_ne!(firing.dedupe_key(), one_resolved.dedupe_key());
    }

    #[test]
    fn the_dedupe_key_changes_when_an_alert_fires_again_later() {
        let first = batch(vec![alert("aaaa", AlertStatus::Firing)]);
        let mut again = first.clone();
        again.alerts[0].starts_at = crate::time::Millis(first.alerts[0].starts_at.0 + 60_000);
        assert_ne!(first.dedupe_key(), again.dedupe_key());
    }

    #[test]
    fn the_dedupe_key_changes_with_the_group_and_cannot_be_confused_by_concatenation() {
        let a = batch(vec![alert("aaaa", AlertStatus::Firing)]);
        let mut b = a.clone();
        b.group_key.push('x');
        assert_ne!(a.dedupe_key(), b.dedupe_key());

        let mut split1 = batch(vec![alert("ab", AlertStatus::Firing)]);
        split1.group_key = "k".into();
        let mut split2 = batch(vec![alert("b", AlertStatus::Firing)]);
        split2.group_key = "ka".into();
        assert_ne!(split1.dedupe_key(), split2.dedupe_key());
    }

    #[test]
    fn firing_and_resolved_split_the_alerts_by_status() {
        let b = batch(vec![
            alert("a", AlertStatus::Firing),
            alert("b", AlertStatus::Resolved),
            alert("c", AlertStatus::Firing),
        ]);
        let firing: Vec<&str> = b.firing().map(|a| a.fingerprint.as_str()).collect();
        let resolved: Vec<&str> = b.resolved().map(|a| a.fingerprint.as_str()).collect();
        assert_eq!(firing, ["a", "c"]);
        assert_eq!(resolved, ["b"]);
    }

    #[test]
    fn the_title_prefers_the_summary_then_grafanas_title_then_the_alert_name() {
        let mut b = batch(vec![alert("a", AlertStatus::Firing)]);
        b.common_labels = map(&[
            ("alertname", "HighErrorRate"),
            ("job", "api"),
            ("service", "checkout"),
        ]);
        assert_eq!(b.title(), "HighErrorRate on checkout");
        b.common_labels
            .insert("instance".into(), "api-1:9090".into());
        assert_eq!(b.title(), "HighErrorRate on api-1:9090");

        b.title = Some("[FIRING:1] HighErrorRate api (prod)".into());
        assert_eq!(b.title(), "HighErrorRate api (prod)");

        b.common_annotations = map(&[("summary", "  5% of checkout\nrequests fail  ")]);
        assert_eq!(b.title(), "5% of checkout requests fail");
    }

    #[test]
    fn the_title_falls_back_to_the_group_key_and_is_always_a_valid_user_text() {
        let mut b = batch(vec![alert("a", AlertStatus::Firing)]);
        b.common_labels.clear();
        b.title = Some("   ".into());
        assert_eq!(b.title(), "Alert group {}:{alertname=\"HighErrorRate\"}");

        b.common_annotations = map(&[("summary", &"x".repeat(5_000))]);
        let t = b.title();
        assert_eq!(t.chars().count(), TITLE_MAX_CHARS);
        assert!(t.ends_with('…'));
        assert!(crate::incident::UserText::parse(&t, "title").is_ok());
    }

    #[test]
    fn label_fingerprints_are_stable_and_depend_on_every_label() {
        let a = map(&[("alertname", "X"), ("team", "payments")]);
        let b = map(&[("team", "payments"), ("alertname", "X")]);
        assert_eq!(labels_fingerprint(&a), labels_fingerprint(&b));
        let c = map(&[("alertname", "X"), ("team", "payment")]);
        assert_ne!(labels_fingerprint(&a), labels_fingerprint(&c));
        // Moving a character from a name to a value changes the fingerprint.
        let d = map(&[("alertnam", "eX"), ("team", "payments")]);
        assert_ne!(labels_fingerprint(&a), labels_fingerprint(&d));
    }

    #[test]
    fn label_names_follow_prometheus_rules() {
        for ok in ["team", "_x", "severity_2", "__name__"] {
            assert!(is_label_name(ok), "{ok}");
        }
        for bad in ["", "2x", "a-b", "a.b", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
