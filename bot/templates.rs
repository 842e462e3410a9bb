//! Communication templates: the words Klaxon posts, in handlebars.
//!
//! Defaults are embedded in the binary (from `templates/*.hbs`); a configured
//! directory may override any of them by file name. Rendering is strict (a typo
//! in a field name is an error, not an empty string) and escapes with Slack's
//! rules (`&`, `<`, `>` only), so user text can never become `<!channel>` or a
//! mention. The only way to produce a mention is the `mention` helper, which
//! accepts nothing but a well-formed Slack user ID. Block Kit JSON is built in
//! Rust around the rendered text (see [`crate::slack::blocks`]), never by a template.

use std::path::Path;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::{Value, json};

use crate::incident::{Incident, SlackUserId, TimelineEvent, single_line, visible_text};
use crate::time::{Millis, group_thousands, human_duration, plural};

/// The templates Klaxon knows, each a file `<name>.hbs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateName {
    /// The thread's root message ("Initial Incident Post"), re-rendered on every change.
    IncidentOpened,
    StatusUpdate,
    SeverityChanged,
    OwnerAssigned,
    Acknowledged,
    /// The "Resolution Post": duration, root cause, resolution, follow-up, MTTA/MTTR, timeline.
    ResolutionSummary,
    /// The thread reply when a ladder level is paged.
    EscalationPage,
    /// The direct message each paged person receives.
    PageDm,
    /// A thread reply listing alerts that started firing.
    AlertFiring,
    /// A thread reply listing alerts that resolved.
    AlertResolved,
}

impl TemplateName {
    pub const ALL: [TemplateName; 10] = [
        TemplateName::IncidentOpened,
        TemplateName::StatusUpdate,
        TemplateName::SeverityChanged,
        TemplateName::OwnerAssigned,
        TemplateName::Acknowledged,
        TemplateName::ResolutionSummary,
        TemplateName::EscalationPage,
        TemplateName::PageDm,
        TemplateName::AlertFiring,
        TemplateName::AlertResolved,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TemplateName::IncidentOpened => "incident_opened",
            TemplateName::StatusUpdate => "status_update",
            TemplateName::SeverityChanged => "severity_changed",
            TemplateName::OwnerAssigned => "owner_assigned",
            TemplateName::Acknowledged => "acknowledged",
            TemplateName::ResolutionSummary => "resolution_summary",
            TemplateName::EscalationPage => "escalation_page",
            TemplateName::PageDm => "page_dm",
            TemplateName::AlertFiring => "alert_firing",
            TemplateName::AlertResolved => "alert_resolved",
        }
    }

    fn default_source(self) -> &'static str {
        match self {
            TemplateName::IncidentOpened => include_str!("../templates/incident_opened.hbs"),
            TemplateName::StatusUpdate => include_str!("../templates/status_update.hbs"),
            TemplateName::SeverityChanged => include_str!("../templates/severity_changed.hbs"),
            TemplateName::OwnerAssigned => include_str!("../templates/owner_assigned.hbs"),
            TemplateName::Acknowledged => include_str!("../templates/acknowledged.hbs"),
            TemplateName::ResolutionSummary => {
                include_str!("../templates/resolution_summary.hbs")
            }
            TemplateName::EscalationPage => include_str!("../templates/escalation_page.hbs"),
            TemplateName::PageDm => include_str!("../templates/page_dm.hbs"),
            TemplateName::AlertFiring => include_str!("../templates/alert_firing.hbs"),
            TemplateName::AlertResolved => include_str!("../templates/alert_resolved.hbs"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    pub name: &'static str,
    pub message: String,
}

/// Documents Klaxon writes as files (Markdown), not as Slack messages: no
/// Slack escaping, since nothing in a file can mention anybody. Each is a file
/// `<name>.hbs` (`postmortem.md.hbs`) that `templates_dir` may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentName {
    /// The postmortem skeleton (runbook 004's postmortem, runbook 002's evidence list).
    Postmortem,
}

impl DocumentName {
    pub const ALL: [DocumentName; 1] = [DocumentName::Postmortem];

    pub fn name(self) -> &'static str {
        match self {
            DocumentName::Postmortem => "postmortem.md",
        }
    }

    fn default_source(self) -> &'static str {
        match self {
            DocumentName::Postmortem => include_str!("../templates/postmortem.md.hbs"),
        }
    }
}

/// The registry, ready to render.
#[derive(Debug)]
pub struct Templates {
    hb: Handlebars<'static>,
    docs: Handlebars<'static>,
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` and nothing else (Slack shows
/// HTML entities such as `&#x27;` literally).
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `{{mention user}}`: `<@U…>` for a well-formed user ID, the escaped text otherwise.
fn mention(v: &Value) -> String {
    match v {
        Value::String(s) => match SlackUserId::parse(s) {
            Some(id) => format!("<@{id}>"),
            None => slack_escape(s),
        },
        Value::Null => "someone".to_string(),
        other => slack_escape(&other.to_string()),
    }
}

/// `{{mention_group id}}`: `<!subteam^S…>` for a well-formed user group ID, escaped text otherwise.
fn mention_group(v: &Value) -> String {
    match v.as_str() {
        Some(s)
            if s.len() >= 3
                && s.starts_with('S')
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            format!("<!subteam^{s}>")
        }
        Some(s) => slack_escape(s),
        None => slack_escape(&v.to_string()),
    }
}

/// `{{channel_link id}}`: `<#C…>` for a well-formed channel ID, escaped text otherwise.
fn channel_link(v: &Value) -> String {
    let raw = v.as_str().unwrap_or_default();
    match crate::incident::ChannelId::parse(raw) {
        Some(c) => format!("<#{c}>"),
        None => slack_escape(raw),
    }
}

/// A helper that writes `render(first parameter)` unescaped: `render` must escape
/// whatever it does not validate. These are the only ways to produce Slack markup.
fn markup_helper(
    name: &'static str,
    render: fn(&Value) -> String,
) -> Box<dyn handlebars::HelperDef + Send + Sync> {
    Box::new(
        move |h: &Helper<'_>,
              _: &Handlebars<'_>,
              _: &Context,
              _: &mut RenderContext<'_, '_>,
              out: &mut dyn Output|
              -> HelperResult {
            let param = h
                .param(0)
                .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
            out.write(&render(param.value()))?;
            Ok(())
        },
    )
}

/// Whether a URL from an alert can be a Slack link: http(s), nothing that ends the link early.
pub fn linkable(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2_000
        && !url.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || crate::incident::is_invisible_format(c)
                || matches!(c, '<' | '>' | '|')
        })
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
}

/// `{{link url label}}`: `<url|label>` for a safe http(s) URL, the escaped label otherwise.
fn link_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let url = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .unwrap_or_default();
    let label = h.param(1).and_then(|p| p.value().as_str()).unwrap_or(url);
    let label = slack_escape(&label.replace(['|', '\n'], " "));
    let text = if linkable(url) {
        format!("<{}|{label}>", url.replace('&', "&amp;"))
    } else {
        label
    };
    out.write(&text)?;
    Ok(())
}

impl Templates {
    /// The embedded defaults, overridden by `<dir>/<name>.hbs` where such a file exists.
    /// Returns every problem found, not just the first.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Vec<TemplateError>> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(slack_escape);
        hb.register_helper("mention", markup_helper("mention", mention));
        hb.register_helper(
            "mention_group",
            markup_helper("mention_group", mention_group),
        );
        hb.register_helper("channel_link", markup_helper("channel_link", channel_link));
        hb.register_helper("link", Box::new(link_helper));
        let mut problems = Vec::new();
        let mut docs = Handlebars::new();
        docs.set_strict_mode(true);
        docs.register_escape_fn(handlebars::no_escape);
        for d in DocumentName::ALL {
            let source = match dir.map(|dir| dir.join(format!("{}.hbs", d.name()))) {
                Some(path) if path.exists() => match std::fs::read_to_string(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push(TemplateError {
                            name: d.name(),
                            message: format!("cannot read {}: {e}", path.display()),
                        });
                        continue;
                    }
                },
                _ => d.default_source().to_string(),
            };
            if let Err(e) = docs.register_template_string(d.name(), source) {
                problems.push(TemplateError {
                    name: d.name(),
                    message: e.to_string(),
                });
            }
        }
        for t in TemplateName::ALL {
            let source = match dir.map(|d| d.join(format!("{}.hbs", t.name()))) {
                Some(path) if path.exists() => match std::fs::read_to_string(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push(TemplateError {
                            name: t.name(),
                            message: format!("cannot read {}: {e}", path.display()),
                        });
                        continue;
                    }
                },
                _ => t.default_source().to_string(),
            };
            if source.contains("{{{") || source.contains("{{&") {
                problems.push(TemplateError {
                    name: t.name(),
                    message: "uses unescaped output ({{{…}}} or {{&…}}); user text could then \
                              mention @channel. Use {{…}}, and {{mention field}} for people"
                        .into(),
                });
                continue;
            }
            if let Err(e) = hb.register_template_string(t.name(), source) {
                problems.push(TemplateError {
                    name: t.name(),
                    message: e.to_string(),
                });
            }
        }
        // A file named for no template would be ignored: a misspelt override.
        if let Some(dir) = dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let known: Vec<String> = TemplateName::ALL
                .iter()
                .map(|t| format!("{}.hbs", t.name()))
                .chain(
                    DocumentName::ALL
                        .iter()
                        .map(|d| format!("{}.hbs", d.name())),
                )
                .collect();
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().to_string();
                if file.ends_with(".hbs") && !known.contains(&file) {
                    problems.push(TemplateError {
                        name: "(templates_dir)",
                        message: format!(
                            "{file} replaces no template (misspelt?); the names are {}",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(Templates { hb, docs })
        } else {
            Err(problems)
        }
    }

    pub fn render(&self, t: TemplateName, data: &Value) -> Result<String, TemplateError> {
        self.hb
            .render(t.name(), data)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| TemplateError {
                name: t.name(),
                message: e.to_string(),
            })
    }

    /// Renders a document (Markdown, unescaped).
    pub fn render_document(&self, d: DocumentName, data: &Value) -> Result<String, TemplateError> {
        self.docs
            .render(d.name(), data)
            .map(|s| format!("{}\n", s.trim_end()))
            .map_err(|e| TemplateError {
                name: d.name(),
                message: e.to_string(),
            })
    }

    /// Renders every template against a sample incident: what `check-config` runs.
    pub fn check(&self) -> Vec<TemplateError> {
        let sample = sample_incident();
        let timeline = vec![TimelineEvent {
            at: sample.opened_at,
            kind: crate::incident::EventKind::Opened,
            actor: sample.opened_by.clone(),
            text: "declared the incident".into(),
            subject: None,
        }];
        TemplateName::ALL
            .into_iter()
            .filter_map(|t| {
                let data = match t {
                    TemplateName::IncidentOpened => root_data(
                        &sample,
                        Some(&sample_alerts()),
                        &[RoleHeld {
                            role: crate::incident::roles::defaults()[0].name.clone(),
                            user: SlackUserId::parse("U0ONCALL1")
                                .unwrap_or_else(|| unreachable!("valid id")),
                        }],
                    ),
                    TemplateName::StatusUpdate => status_data(
                        &sample,
                        sample.opened_by.as_ref(),
                        "Rolled back; watching error rates",
                        sample.opened_at,
                    ),
                    TemplateName::SeverityChanged => change_data(
                        &sample,
                        sample.opened_by.as_ref(),
                        Some(crate::incident::Severity::P2),
                    ),
                    TemplateName::OwnerAssigned | TemplateName::Acknowledged => {
                        change_data(&sample, sample.opened_by.as_ref(), None)
                    }
                    TemplateName::ResolutionSummary => resolution_data(
                        &sample,
                        &timeline,
                        &AlertSummary {
                            resolved: vec![("HighErrorRate".into(), 2)],
                            firing: vec![("DiskFull".into(), 1)],
                            note: Some("Alertmanager listed only some of them".into()),
                        },
                        &[FollowUpView {
                            id: 1,
                            text: "Alert on replica lag".into(),
                            owner: sample.owner.clone(),
                            tracker_ref: Some("OPS-124".into()),
                        }],
                    ),
                    TemplateName::AlertFiring | TemplateName::AlertResolved => {
                        alerts_data(&sample, 3, &[sample_alert_view()], &sample_alerts(), true)
                    }
                    TemplateName::EscalationPage | TemplateName::PageDm => page_data(
                        &sample,
                        &PageFacts {
                            level: "team lead",
                            users: sample.owner.iter().cloned().collect(),
                            groups: vec!["S0MANAGERS".into()],
                            first: false,
                            unacknowledged_for: std::time::Duration::from_secs(1_800),
                            wait: std::time::Duration::from_secs(1_800),
                            next_level: Some("engineering manager"),
                            after_empty: Some("on-call engineer".into()),
                            by_hand: false,
                        },
                    ),
                };
                self.render(t, &data).err()
            })
            .chain(
                self.render_document(DocumentName::Postmortem, &sample_postmortem())
                    .err(),
            )
            .collect()
    }
}

/// The fields every incident template may use.
pub fn incident_data(i: &Incident) -> Value {
    let none = "—".to_string();
    json!({
        "ref": i.reference.to_string(),
        "title": i.title,
        "severity": i.severity.as_str(),
        "severity_description": i.severity.description(),
        "impact": i.severity.description(),
        "response_target": i.severity.response_target(),
        "state": i.state.as_str(),
        "status": i.state.label(),
        "resolved": i.is_resolved(),
        "owner": i.owner.as_ref().map(|u| u.as_str()),
        "opened_by": i.opened_by.as_ref().map(|u| u.as_str()),
        "opened_at": i.opened_at.date_time_utc(),
        "acknowledged_by": i.acknowledged_by.as_ref().map(|u| u.as_str()),
        "mtta": i.time_to_acknowledge().map(human_duration).unwrap_or_else(|| "not acknowledged".into()),
        "mttr": i.time_to_resolve().map(human_duration).unwrap_or_else(|| none.clone()),
        "duration": i.time_to_resolve().map(human_duration).unwrap_or_else(|| none.clone()),
        "root_cause": i.root_cause.clone().unwrap_or_else(|| none.clone()),
        "resolution": i.resolution.clone().unwrap_or_else(|| none.clone()),
        "follow_up": i.follow_up.clone().unwrap_or_else(|| none.clone()),
        "source": i.source.label(),
        "from_alerts": i.source.is_alerts(),
        "previous": i.previous.map(|r| r.to_string()),
        "room": i.live_room().map(|r| r.channel.as_str()),
        // Who holds which role: the root message's data fills it in.
        "roles": [],
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// Data for a status update.
pub fn status_data(i: &Incident, actor: Option<&SlackUserId>, text: &str, at: Millis) -> Value {
    with(
        incident_data(i),
        json!({ "text": text, "actor": actor.map(|u| u.as_str()), "time": at.time_utc() }),
    )
}

/// Data for a change made by someone (severity, owner, acknowledgement).
pub fn change_data(
    i: &Incident,
    actor: Option<&SlackUserId>,
    previous_severity: Option<crate::incident::Severity>,
) -> Value {
    with(
        incident_data(i),
        json!({
            "actor": actor.map(|u| u.as_str()),
            "previous_severity": previous_severity.map(|s| s.as_str()),
        }),
    )
}

/// One alert as the thread shows it: long texts cut, links only to http(s).
pub fn alert_view(a: &crate::alerts::Alert) -> Value {
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| label_text(k, v))
        .collect();
    let mut links = Vec::new();
    // A link names its host: an alert's annotations may point anywhere.
    let mut link = |url: Option<&String>, label: &str| {
        if let Some(u) = url.filter(|u| linkable(u)) {
            let host = reqwest::Url::parse(u)
                .ok()
                .and_then(|p| p.host_str().map(str::to_string))
                .unwrap_or_default();
            links.push(json!({"url": u, "label": format!("{label} ({host})")}));
        }
    };
    link(a.annotations.get("runbook_url"), "runbook");
    link(a.dashboard_url.as_ref(), "dashboard");
    link(a.panel_url.as_ref(), "panel");
    link(a.generator_url.as_ref(), "source");
    link(a.silence_url.as_ref(), "silence in Grafana");
    json!({
        "name": clip(&single_line(a.name()), 200),
        "summary": a.annotations.get("summary").map(|s| clip(&single_line(s), 300)),
        "description": a.annotations.get("description").map(|s| clip(&visible_text(s), 600)),
        "since": a.starts_at.date_time_utc(),
        "labels": clip(&labels.join(" "), 300),
        "links": links,
    })
}

/// The first `limit` of `alerts` as [`alert_view`]s, each with `distinct`:
/// the labels whose values differ among `alerts` (`instance=api-2:9090`), so
/// alerts of one name can be told apart.
pub fn alert_views(alerts: &[&crate::alerts::Alert], limit: usize) -> Vec<Value> {
    use std::collections::BTreeSet;
    let keys: BTreeSet<&String> = alerts.iter().flat_map(|a| a.labels.keys()).collect();
    let varying: Vec<&String> = keys
        .into_iter()
        .filter(|k| k.as_str() != "alertname")
        .filter(|k| {
            let mut values = alerts.iter().map(|a| a.labels.get(*k));
            let first = values.next().flatten();
            values.any(|v| v != first)
        })
        .collect();
    alerts
        .iter()
        .take(limit)
        .map(|a| {
            let mut view = alert_view(a);
            let distinct: Vec<String> = varying
                .iter()
                .filter_map(|k| a.labels.get(*k).map(|v| label_text(k, v)))
                .collect();
            if let Some(o) = view.as_object_mut() {
                o.insert("distinct".into(), json!(clip(&distinct.join(" "), 200)));
            }
            view
        })
        .collect()
}

/// A label as the thread shows it (`instance=api-2:9090`): one line, no
/// invisible characters, no backquote to break out of code.
fn label_text(k: &str, v: &str) -> String {
    format!("{}={}", single_line(k), single_line(v).replace('`', "'"))
}

/// `s` cut to `n` characters, with "…" when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The root message's data: the incident and, for an alert incident, its alerts.
pub fn root_data(i: &Incident, alerts: Option<&AlertsShown>, roles: &[RoleHeld]) -> Value {
    with(
        incident_data(i),
        json!({
            "alerts": alerts.map(AlertsShown::to_value),
            "roles": roles.iter().map(RoleHeld::to_value).collect::<Vec<_>>(),
        }),
    )
}

/// A role of an incident and who holds it, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHeld {
    pub role: crate::incident::roles::RoleName,
    pub user: SlackUserId,
}

impl RoleHeld {
    fn to_value(&self) -> Value {
        let name = self.role.as_str();
        let mut title: String = name.chars().take(1).flat_map(char::to_uppercase).collect();
        title.push_str(name.get(1..).unwrap_or_default());
        json!({"role": name, "title": title, "user": self.user.as_str()})
    }
}

/// A follow-up as messages and the postmortem show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpView {
    /// Its number among the incident's follow-ups.
    pub id: i64,
    pub text: String,
    pub owner: Option<SlackUserId>,
    /// Where the tracker filed it (an issue key or URL), when it did.
    pub tracker_ref: Option<String>,
}

impl FollowUpView {
    pub fn to_value(&self) -> Value {
        json!({
            "id": self.id,
            "text": self.text,
            "owner": self.owner.as_ref().map(|u| u.as_str()),
            "tracker_ref": self.tracker_ref,
        })
    }
}

/// An incident's alerts as a message shows them: the counts, and the first few.
/// Everything is stored; only what is shown is cut (`shown`, then "… and N more").
#[derive(Debug, Clone, Default)]
pub struct AlertsShown {
    /// The sender's name ("Alertmanager").
    pub source: String,
    /// Alerts known to fire (listed as firing, or counted by Alertmanager's API).
    pub listed: u64,
    /// Alerts the sender left out (its `max_alerts`): they may fire or not.
    pub hidden: u64,
    /// Alerts Klaxon holds that resolved.
    pub resolved: u64,
    /// How many alerts the incident had in all (see `store::alerts::Counts`).
    pub total: u64,
    /// How to make the sender list them all (its `max_alerts` …).
    pub hint: String,
    /// Whether Klaxon can ask the sender's API about what it left out.
    pub can_ask: bool,
    /// The first few, as [`alert_views`] (name, summary, since, links …).
    pub shown: Vec<Value>,
}

impl AlertsShown {
    /// Alerts known to fire.
    pub fn firing(&self) -> u64 {
        self.listed
    }

    fn to_value(&self) -> Value {
        let firing = self.firing();
        let more = self
            .listed
            .saturating_sub(u64::try_from(self.shown.len()).unwrap_or(0));
        json!({
            "source": self.source,
            "firing": firing,
            "firing_text": plural(firing, "alert", "alerts"),
            "listed_text": plural(self.listed, "alert", "alerts"),
            "hidden": self.hidden,
            "hidden_text": group_thousands(self.hidden),
            "hint": self.hint,
            "can_ask": self.can_ask,
            "resolved": self.resolved,
            "resolved_text": plural(self.resolved, "alert", "alerts"),
            "total": self.total,
            "total_text": plural(self.total, "alert", "alerts"),
            "shown": self.shown,
            "more": more,
            "more_text": group_thousands(more),
        })
    }
}

/// An alert incident's alerts for its resolution summary.
#[derive(Debug, Clone, Default)]
pub struct AlertSummary {
    /// Alert names that resolved, with how many of each.
    pub resolved: Vec<(String, u64)>,
    /// Alert names still firing, with how many of each.
    pub firing: Vec<(String, u64)>,
    /// What the counts leave out (a sender listed only some alerts).
    pub note: Option<String>,
}

/// Data for the resolution summary, timeline included; for an alert incident,
/// the names of the alerts that resolved and of any that still fire.
pub fn resolution_data(
    i: &Incident,
    timeline: &[TimelineEvent],
    alerts: &AlertSummary,
    followups: &[FollowUpView],
) -> Value {
    let names = |list: &[(String, u64)]| -> Option<String> {
        (!list.is_empty()).then(|| {
            list.iter()
                .map(|(name, n)| match n {
                    1 => name.clone(),
                    n => format!("{name} ×{}", group_thousands(*n)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let events: Vec<Value> = timeline
        .iter()
        .map(|e| {
            json!({
                "time": e.at.clock(),
                "actor": e.actor.as_ref().map(|u| u.as_str()),
                "text": e.text,
                "subject": e.subject.as_ref().map(|u| u.as_str()),
                "kind": e.kind.as_str(),
            })
        })
        .collect();
    with(
        incident_data(i),
        json!({
            "timeline": events,
            "alerts_resolved": names(&alerts.resolved),
            "alerts_firing": names(&alerts.firing),
            "alerts_note": alerts.note,
            "followups": followups.iter().map(FollowUpView::to_value).collect::<Vec<_>>(),
        }),
    )
}

/// What a page says beyond the incident itself.
#[derive(Debug, Clone)]
pub struct PageFacts<'a> {
    pub level: &'a str,
    pub users: Vec<SlackUserId>,
    pub groups: Vec<String>,
    /// The first level (nobody has been paged before).
    pub first: bool,
    pub unacknowledged_for: std::time::Duration,
    /// How long this level has to acknowledge.
    pub wait: std::time::Duration,
    pub next_level: Option<&'a str>,
    /// The levels before this one that had nobody to page, when they were skipped.
    pub after_empty: Option<String>,
    /// Paged by `/incident escalate` on an acknowledged incident: no level follows.
    pub by_hand: bool,
}

/// Data for the escalation page and the page's direct message.
pub fn page_data(i: &Incident, page: &PageFacts<'_>) -> Value {
    with(
        incident_data(i),
        json!({
            "level": page.level,
            "users": page.users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            "groups": page.groups,
            "first": page.first,
            "unacknowledged_for": human_duration(page.unacknowledged_for),
            "wait": human_duration(page.wait),
            "next_level": page.next_level,
            "after_empty": page.after_empty,
            "by_hand": page.by_hand,
            "channel": i.live_room().map_or(i.channel.as_str(), |r| r.channel.as_str()),
        }),
    )
}

/// Data for a reply about alerts that fired or resolved: `count` of them in
/// this notification, the first few as views in `alerts` (see
/// `crate::usecases::alerts::alert_view`), and where the incident stands.
pub fn alerts_data(
    i: &Incident,
    count: u64,
    alerts: &[Value],
    standing: &AlertsShown,
    with_standing: bool,
) -> Value {
    let more = count.saturating_sub(u64::try_from(alerts.len()).unwrap_or(0));
    let firing = standing.firing();
    with(
        incident_data(i),
        json!({
            "source": standing.source,
            "count": count,
            "fired_text": plural(count, "alert fires", "alerts fire"),
            "resolved_text": plural(count, "alert resolved", "alerts resolved"),
            "alerts": alerts,
            "more": more,
            "more_text": group_thousands(more),
            "still_firing": firing,
            "still_text": plural(firing, "alert still fires", "alerts still fire"),
            "firing_text": plural(firing, "alert", "alerts"),
            "with_standing": with_standing,
            "hidden": standing.hidden,
            "hidden_text": group_thousands(standing.hidden),
            "hint": standing.hint,
            "can_ask": standing.can_ask,
            "listed_text": plural(standing.listed, "alert", "alerts"),
        }),
    )
}

/// A realistic alert, as the thread shows one.
fn sample_alert_view() -> Value {
    json!({
        "name": "HighErrorRate",
        "summary": "5xx ratio above 5% on checkout",
        "description": "rate(http_requests_total{status=~\"5..\"}[5m]) is 0.07",
        "since": "2026-11-22 17:04 UTC",
        "labels": "service=checkout severity=critical",
        "links": [{"url": "http://prometheus:9090/graph?g0.expr=x", "label": "source"}],
    })
}

/// A realistic incident's alerts, some of them left out by the sender.
fn sample_alerts() -> AlertsShown {
    AlertsShown {
        source: "Alertmanager".into(),
        listed: 5,
        hidden: 45,
        resolved: 2,
        total: 52,
        hint: "its `max_alerts`; `max_alerts: 0` on the receiver lists them all".into(),
        can_ask: false,
        shown: vec![sample_alert_view()],
    }
}

/// A realistic incident for checking templates.
pub fn sample_incident() -> Incident {
    use crate::incident::*;
    let opened = Millis(1_795_367_049_000);
    Incident {
        reference: IncidentRef::new(42).unwrap_or_else(|| unreachable!("42 is a valid ref")),
        title: "Checkout API returning 500s".into(),
        severity: Severity::P1,
        state: IncidentState::Resolved,
        owner: SlackUserId::parse("U0ONCALL1"),
        channel: ChannelId::parse("C0INCIDENT").unwrap_or_else(|| unreachable!("valid id")),
        thread_ts: Some("1795367049.000100".into()),
        opened_by: SlackUserId::parse("U0ONCALL1"),
        opened_at: opened,
        acknowledged_at: Some(opened.plus(std::time::Duration::from_secs(240))),
        acknowledged_by: SlackUserId::parse("U0ONCALL1"),
        resolved_at: Some(opened.plus(std::time::Duration::from_secs(2_820))),
        resolved_by: SlackUserId::parse("U0ONCALL1"),
        root_cause: Some("A config push removed the payment provider's key".into()),
        resolution: Some("Rolled back the config".into()),
        follow_up: Some("OPS-123".into()),
        ladder: Some("default".into()),
        escalation_step: Some(1),
        source: IncidentSource::Alertmanager,
        previous: IncidentRef::new(41),
        room: None,
        postmortem_at: None,
    }
}

/// A realistic postmortem's data, for checking the postmortem template (its
/// fields are documented in README "Big incidents").
pub fn sample_postmortem() -> Value {
    json!({
        "ref": "INC-42", "title": "Checkout API returning 500s", "severity": "P1",
        "severity_description": "High", "status": "Resolved", "source": "Alertmanager",
        "opened_at": "2026-11-22 17:04 UTC", "acknowledged_at": "2026-11-22 17:08 UTC",
        "resolved_at": "2026-11-22 17:51 UTC", "duration": "47m", "mtta": "4m", "mttr": "47m",
        "impact": "High: major functionality down", "root_cause": "A config push", "resolution": "Rolled back",
        "follow_up": "OPS-123", "channel": "#inc-42-checkout", "generated_at": "2026-11-23 09:00 UTC",
        "people": [{"name": "U0ONCALL1", "what": "owner, commander"}],
        "roles": [{"title": "Commander", "user": "U0ONCALL1"}],
        "timeline": [{"time": "2026-11-22 17:04:09 UTC", "who": "U0ONCALL1", "text": "declared the incident", "kind": "opened"}],
        "alerts": [{"name": "HighErrorRate", "status": "resolved", "since": "2026-11-22 17:04 UTC", "labels": "service=checkout", "summary": "5xx", "links": [{"label": "source", "url": "http://prometheus:9090/graph"}]}],
        "alerts_more": 0,
        "actions": [{"time": "17:10:00 UTC", "action": "restart-checkout", "params": "", "requested_by": "U0ONCALL1", "approved_by": "U0LEAD", "state": "succeeded", "outcome": "restarted"}],
        "status_updates": [{"time": "17:20:00 UTC", "who": "U0ONCALL1", "text": "Rolled back"}],
        "followups": [{"id": 1, "text": "Alert on replica lag", "owner": "U0ONCALL1", "tracker_ref": "OPS-124"}],
        "pages": [{"time": "17:04:10 UTC", "who": "U0ONCALL1", "text": "paged on-call engineer"}],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_misspelt_override_in_templates_dir_is_a_problem_not_ignored() {
        let dir = std::env::temp_dir().join(format!("klaxon-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("incident_open.hbs"), "x").expect("write");
        let problems = Templates::load(Some(&dir)).expect_err("a misspelt name");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("incident_open.hbs replaces no template")),
            "{problems:?}"
        );
    }

    use super::*;

    #[test]
    fn a_link_with_an_invisible_or_control_character_or_no_host_is_not_a_link() {
        assert!(linkable("https://runbooks.example.com/x"));
        assert!(!linkable("https://runbooks.example.com\u{202e}/moc.live"));
        assert!(!linkable("https://runbooks.example.com/\u{0007}"));
        assert!(!linkable("https://"));
    }

    #[test]
    fn escaping_neutralises_mentions_and_links() {
        assert_eq!(
            slack_escape("<!channel> & <@U123> <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;http://x|y&gt;"
        );
        assert_eq!(slack_escape("it's \"fine\""), "it's \"fine\"");
    }

    #[test]
    fn the_default_templates_render_against_a_sample_incident() {
        let t = Templates::load(None).expect("defaults load");
        assert!(t.check().is_empty(), "{:?}", t.check());
    }

    #[test]
    fn user_text_in_a_template_cannot_ping_the_channel() {
        let t = Templates::load(None).expect("defaults load");
        let mut i = sample_incident();
        i.title = "<!channel> <@U999> it's & broken".into();
        let text = t
            .render(TemplateName::IncidentOpened, &root_data(&i, None, &[]))
            .expect("renders");
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("<@U999>"), "{text}");
        assert!(
            text.contains("&lt;!channel&gt; &lt;@U999&gt; it's &amp; broken"),
            "{text}"
        );
        assert!(
            text.contains("<@U0ONCALL1>"),
            "the owner is a real mention: {text}"
        );
    }

    #[test]
    fn the_resolution_summary_lists_every_runbook_field_and_the_timeline() {
        let t = Templates::load(None).expect("defaults load");
        let i = sample_incident();
        let timeline = vec![TimelineEvent {
            at: i.opened_at,
            kind: crate::incident::EventKind::Opened,
            actor: i.opened_by.clone(),
            text: "declared the incident".into(),
            subject: None,
        }];
        let text = t
            .render(
                TemplateName::ResolutionSummary,
                &resolution_data(&i, &timeline, &AlertSummary::default(), &[]),
            )
            .expect("renders");
        for needle in [
            "RESOLVED: INC-42",
            "*Duration:* 47m",
            "*Root cause:* A config push",
            "*Resolution:* Rolled back the config",
            "*Follow-up:* OPS-123",
            "*MTTA:* 4m",
            "*MTTR:* 47m",
            "`17:04:09` <@U0ONCALL1> declared the incident",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn an_override_directory_replaces_a_template_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("status_update.hbs"),
            "UPDATE {{ref}}: {{text}}",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("loads");
        let i = sample_incident();
        let out = t
            .render(
                TemplateName::StatusUpdate,
                &status_data(&i, None, "a < b", i.opened_at),
            )
            .expect("renders");
        assert_eq!(out, "UPDATE INC-42: a &lt; b");

        std::fs::write(dir.path().join("acknowledged.hbs"), "{{#if}}").expect("write");
        std::fs::write(dir.path().join("owner_assigned.hbs"), "{{{title}}}").expect("write");
        let problems = Templates::load(Some(dir.path())).expect_err("broken");
        let names: Vec<&str> = problems.iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["owner_assigned", "acknowledged"]);
    }

    #[test]
    fn strict_mode_reports_a_misspelt_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("status_update.hbs"), "{{txet}}").expect("write");
        let t = Templates::load(Some(dir.path())).expect("parses");
        let problems = t.check();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].name, "status_update");
    }
}
