//! The incident domain: what an incident is, the words people use for it, and
//! the rules for changing it.
//!
//! Types here are parsed once at the edge and cannot hold invalid values: a
//! [`Severity`] is one of P0–P3, an [`IncidentRef`] is always `INC-<n>` with
//! n ≥ 1, a [`SlackUserId`] always looks like a Slack user ID (so rendering it
//! as a mention can never inject `<!channel>`).

pub mod command;
pub mod component;
pub mod roles;
pub mod room;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::time::Millis;

/// How bad it is. The classes and response targets come from the runbooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    P0,
    P1,
    P2,
    P3,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::P0, Severity::P1, Severity::P2, Severity::P3];

    /// 0 for P0 … 3 for P3: the index of per-severity tables.
    pub fn index(self) -> usize {
        match self {
            Severity::P0 => 0,
            Severity::P1 => 1,
            Severity::P2 => 2,
            Severity::P3 => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }

    /// The runbooks' one-line description, shown as the impact until someone says more.
    pub fn description(self) -> &'static str {
        match self {
            Severity::P0 => "Critical: complete service unavailability, all users affected",
            Severity::P1 => "High: major functionality down, significant user impact",
            Severity::P2 => "Medium: partial functionality affected, limited user impact",
            Severity::P3 => "Low: minor issue, minimal user impact",
        }
    }

    /// How soon someone must respond (P3: the next business day).
    pub fn response_target(self) -> &'static str {
        match self {
            Severity::P0 => "15 minutes",
            Severity::P1 => "1 hour",
            Severity::P2 => "4 hours",
            Severity::P3 => "next business day",
        }
    }

    /// The response target as a duration, where it is one.
    pub fn response_within(self) -> Option<Duration> {
        match self {
            Severity::P0 => Some(Duration::from_secs(15 * 60)),
            Severity::P1 => Some(Duration::from_secs(60 * 60)),
            Severity::P2 => Some(Duration::from_secs(4 * 60 * 60)),
            Severity::P3 => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "P0" => Ok(Severity::P0),
            "P1" => Ok(Severity::P1),
            "P2" => Ok(Severity::P2),
            "P3" => Ok(Severity::P3),
            other => Err(format!("`{other}` is not a severity; use P0, P1, P2 or P3")),
        }
    }
}

/// `INC-<n>`: how people name an incident. `n` is the incident's database id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncidentRef(i64);

impl IncidentRef {
    pub fn new(number: i64) -> Option<Self> {
        (number >= 1).then_some(IncidentRef(number))
    }
    pub fn number(self) -> i64 {
        self.0
    }
    /// Whether a word looks like an incident ref (so the grammar can tell it from text).
    /// Safe on any text: it compares bytes, never slices inside a character.
    pub fn looks_like(word: &str) -> bool {
        word.len() > 4
            && word
                .as_bytes()
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"INC-"))
    }
}

impl fmt::Display for IncidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

impl FromStr for IncidentRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an incident ref; refs look like INC-12");
        if !Self::looks_like(s) {
            return Err(bad());
        }
        let digits = s.get(4..).unwrap_or_default();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 15 {
            return Err(bad());
        }
        digits
            .parse::<i64>()
            .ok()
            .and_then(IncidentRef::new)
            .ok_or_else(bad)
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    /// Declared, nobody has acknowledged it yet.
    Open,
    /// Somebody owns the response.
    Acknowledged,
    /// Over; the resolution summary has been posted.
    Resolved,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Resolved => "resolved",
        }
    }
    /// What the root message shows.
    pub fn label(self) -> &'static str {
        match self {
            IncidentState::Open => "Investigating",
            IncidentState::Acknowledged => "Acknowledged",
            IncidentState::Resolved => "Resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(IncidentState::Open),
            "acknowledged" => Some(IncidentState::Acknowledged),
            "resolved" => Some(IncidentState::Resolved),
            _ => None,
        }
    }
}

/// Checks the shape of a Slack ID: a prefix letter and 2–20 upper-case letters or digits.
fn slack_id_shape(s: &str, prefixes: &[u8]) -> bool {
    let b = s.as_bytes();
    (3..=21).contains(&b.len())
        && prefixes.contains(&b[0])
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A Slack user ID (`U…` or `W…`). Only IDs of this shape are ever rendered as mentions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlackUserId(String);

impl SlackUserId {
    pub fn parse(s: &str) -> Option<Self> {
        slack_id_shape(s, b"UW").then(|| SlackUserId(s.to_string()))
    }
    /// A user reference as Slack sends it in slash-command text: `<@U123>` or `<@U123|name>`.
    pub fn parse_mention(s: &str) -> Option<Self> {
        let inner = s.strip_prefix("<@")?.strip_suffix('>')?;
        let id = inner.split('|').next()?;
        Self::parse(id)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SlackUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Slack conversation ID (`C…` public, `G…` private, `D…` direct message).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelId(String);

impl ChannelId {
    pub fn parse(s: &str) -> Option<Self> {
        slack_id_shape(s, b"CGD").then(|| ChannelId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text typed by a person (a title, a status update): trimmed, non-empty, bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserText(String);

/// Whether `c` changes how the text around it is laid out or read without
/// showing itself: the bidirectional embeddings, overrides, isolates and
/// marks (Unicode TR #9), zero-width spaces and joiners, the word joiner and
/// invisible operators, the byte order mark, the soft hyphen, the combining
/// grapheme joiner, Hangul and braille blanks, Mongolian and Khmer invisible
/// marks, interlinear annotation marks, variation selectors, Egyptian and
/// shorthand format controls and tag characters (most of Unicode's `Cf`
/// category and the "default ignorable" characters). An emoji loses its
/// presentation selector (⚠️ shows as ⚠), nothing else. Shown in Slack, they
/// make text read as something else ("right-to-left override" reverses what
/// follows) or hide it.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// `s` as one line of a Slack message: invisible format characters dropped,
/// control characters (newlines, tabs …) and runs of whitespace as one space,
/// trimmed. For titles, labels and names, which must not print lines of
/// their own ("• *Status:* Resolved").
pub fn single_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .filter(|c| !is_invisible_format(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` with invisible format characters and control characters other than
/// newlines and tabs dropped: for text that may have lines of its own
/// (status updates, descriptions).
pub fn visible_text(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !is_invisible_format(*c)
                && !is_noncharacter(*c)
                && (!c.is_control() || *c == '\n' || *c == '\t')
        })
        .collect()
}

/// Unicode's noncharacters (U+FDD0–U+FDEF and the last two code points of
/// every plane, U+FFFE, U+FFFF …): never text, and not allowed in XML.
pub fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// Text as Slack sent it, for a page outside Slack: a mention or a channel
/// link becomes what Slack shows (`<@U1|alice>` → `@alice`, `<#C1|ops>` →
/// `#ops`, `<!here>` → `@here`), a link its label (or its address), and
/// Slack's escaping is undone. Slack's "Formatting text for app surfaces".
pub fn slack_plain(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('>') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let inner = &after[..j];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        match (target.chars().next(), label) {
            (Some('@'), Some(l)) | (Some('!'), Some(l)) => {
                out.push('@');
                out.push_str(l.trim_start_matches('@'));
            }
            (Some('#'), Some(l)) => {
                out.push('#');
                out.push_str(l.trim_start_matches('#'));
            }
            (Some('@' | '#'), None) => out.push_str(target),
            (Some('!'), None) => {
                out.push('@');
                out.push_str(target.trim_start_matches('!'));
            }
            (_, Some(l)) => out.push_str(l),
            (_, None) => out.push_str(target),
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    slack_unescape(&out)
}

/// Undoes Slack's escaping of `&`, `<` and `>` in the text it sends
/// (Slack's "Formatting text for app surfaces": `&amp;`, `&lt;`, `&gt;`).
pub fn slack_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl UserText {
    pub const MAX_CHARS: usize = 2_000;

    /// Text a person typed, trimmed, without invisible format or control
    /// characters (newlines stay); `Err` says why it is refused (empty, too long).
    pub fn parse(s: &str, what: &str) -> Result<Self, String> {
        let cleaned = visible_text(s);
        let t = cleaned.trim();
        if t.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        let n = t.chars().count();
        if n > Self::MAX_CHARS {
            return Err(format!(
                "the {what} is {n} characters long; keep it under {}",
                Self::MAX_CHARS
            ));
        }
        Ok(UserText(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What declared an incident: a person in Slack, or one of the alert senders.
///
/// The one source type: alert notifications carry it too (never `Slack` there).
/// A new alert sender is a variant here and a parser in `alerts::payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentSource {
    /// A person, with `/incident open`.
    Slack,
    /// Prometheus Alertmanager's webhook receiver (payload version 4).
    Alertmanager,
    /// Grafana unified alerting's webhook contact point (payload version 1).
    Grafana,
    /// A heartbeat that went quiet (`[[heartbeats]]`).
    Heartbeat,
}

impl fmt::Display for IncidentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IncidentSource {
    /// How to make this sender list every alert of a group, for the thread
    /// (Alertmanager's webhook `max_alerts`; Grafana's webhook contact point
    /// *Max alerts*).
    pub fn truncation_hint(self) -> &'static str {
        match self {
            IncidentSource::Grafana => {
                "the webhook contact point's *Max alerts*; 0 there lists them all"
            }
            _ => "its `max_alerts`; `max_alerts: 0` on the receiver lists them all",
        }
    }

    /// Whether alert groups feed incidents of this source (Alertmanager, Grafana).
    pub fn is_alerts(self) -> bool {
        matches!(self, IncidentSource::Alertmanager | IncidentSource::Grafana)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentSource::Slack => "slack",
            IncidentSource::Alertmanager => "alertmanager",
            IncidentSource::Grafana => "grafana",
            IncidentSource::Heartbeat => "heartbeat",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            IncidentSource::Slack => "Slack",
            IncidentSource::Alertmanager => "Alertmanager",
            IncidentSource::Grafana => "Grafana",
            IncidentSource::Heartbeat => "Heartbeat",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "slack" => Some(IncidentSource::Slack),
            "alertmanager" => Some(IncidentSource::Alertmanager),
            "grafana" => Some(IncidentSource::Grafana),
            "heartbeat" => Some(IncidentSource::Heartbeat),
            _ => None,
        }
    }
}

/// An incident as stored.
#[derive(Debug, Clone)]
pub struct Incident {
    pub reference: IncidentRef,
    pub title: String,
    pub severity: Severity,
    pub state: IncidentState,
    pub owner: Option<SlackUserId>,
    pub channel: ChannelId,
    pub thread_ts: Option<String>,
    pub opened_by: Option<SlackUserId>,
    pub opened_at: Millis,
    pub acknowledged_at: Option<Millis>,
    pub acknowledged_by: Option<SlackUserId>,
    pub resolved_at: Option<Millis>,
    pub resolved_by: Option<SlackUserId>,
    pub root_cause: Option<String>,
    pub resolution: Option<String>,
    pub follow_up: Option<String>,
    /// The escalation ladder paging for this incident, if any.
    pub ladder: Option<String>,
    /// The last ladder step paged (0-based), if any.
    pub escalation_step: Option<u32>,
    pub source: IncidentSource,
    /// The incident the same alert group fed before this one.
    pub previous: Option<IncidentRef>,
    /// The channel of its own, once Klaxon created one (`incidents.channel_for`).
    pub room: Option<Room>,
    /// When the postmortem was last produced.
    pub postmortem_at: Option<Millis>,
}

/// A major incident's channel of its own: where its story is told, while the
/// incident channel's thread keeps the headlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub channel: ChannelId,
    /// Its name (`inc-12-checkout-down`), without the `#`.
    pub name: String,
    /// The outbox row of the copy of the root message posted there, which is
    /// edited whenever the root is.
    pub root_message: Option<i64>,
    /// Archived after the resolution: nothing more is posted there.
    pub archived: bool,
}

impl Incident {
    /// The room the incident is told in now: its own channel, unless archived.
    pub fn live_room(&self) -> Option<&Room> {
        self.room.as_ref().filter(|r| !r.archived)
    }
}

impl Incident {
    pub fn is_resolved(&self) -> bool {
        self.state == IncidentState::Resolved
    }
    /// Mean time to acknowledge, for this one incident.
    pub fn time_to_acknowledge(&self) -> Option<Duration> {
        self.acknowledged_at.map(|t| t.since(self.opened_at))
    }
    /// Mean time to resolve, for this one incident.
    pub fn time_to_resolve(&self) -> Option<Duration> {
        self.resolved_at.map(|t| t.since(self.opened_at))
    }
}

/// What happened to an incident, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Opened,
    StatusUpdate,
    AlertFired,
    AlertResolved,
    Silenced,
    SeverityChanged,
    OwnerAssigned,
    Acknowledged,
    Resolved,
    /// A ladder level was paged (or had nobody to page).
    Escalated,
    /// An approved action was requested, decided, run.
    Action,
    Reopened,
    /// A reminder: no status update for a while, or an acknowledgement gone stale.
    Reminder,
    /// A maintenance window paused or resumed the ladder.
    Maintenance,
    /// A heartbeat went quiet or beat again.
    Heartbeat,
    /// The owner was paged again: the acknowledgement went stale.
    Repaged,
    /// Somebody took a role (commander, comms, scribe …).
    RoleAssigned,
    /// The incident's own channel was created, refused or archived.
    Channel,
    /// The postmortem was produced (or is overdue).
    Postmortem,
    /// A follow-up (action item) was recorded, or filed in the tracker.
    FollowUp,
    /// The status page: components set, a public update, a state set by hand.
    StatusPage,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::StatusUpdate => "status_update",
            EventKind::AlertFired => "alert_fired",
            EventKind::AlertResolved => "alert_resolved",
            EventKind::Silenced => "silenced",
            EventKind::SeverityChanged => "severity_changed",
            EventKind::OwnerAssigned => "owner_assigned",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
            EventKind::Escalated => "escalated",
            EventKind::Action => "action",
            EventKind::Reopened => "reopened",
            EventKind::Reminder => "reminder",
            EventKind::Maintenance => "maintenance",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Repaged => "repaged",
            EventKind::RoleAssigned => "role_assigned",
            EventKind::Channel => "channel",
            EventKind::Postmortem => "postmortem",
            EventKind::FollowUp => "follow_up",
            EventKind::StatusPage => "status_page",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            EventKind::Opened,
            EventKind::StatusUpdate,
            EventKind::AlertFired,
            EventKind::AlertResolved,
            EventKind::Silenced,
            EventKind::SeverityChanged,
            EventKind::OwnerAssigned,
            EventKind::Acknowledged,
            EventKind::Resolved,
            EventKind::Escalated,
            EventKind::Action,
            EventKind::Reopened,
            EventKind::Reminder,
            EventKind::Maintenance,
            EventKind::Heartbeat,
            EventKind::Repaged,
            EventKind::RoleAssigned,
            EventKind::Channel,
            EventKind::Postmortem,
            EventKind::FollowUp,
            EventKind::StatusPage,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl EventKind {
    /// Whether the incident channel's thread still shows this once the
    /// incident has a channel of its own: the headlines a stakeholder follows
    /// (status updates, severity, resolution); the rest is told in the room.
    pub fn is_headline(self) -> bool {
        matches!(
            self,
            EventKind::StatusUpdate
                | EventKind::SeverityChanged
                | EventKind::Resolved
                | EventKind::Reopened
                | EventKind::Channel
        )
    }
}

/// One line of an incident's timeline.
#[derive(Debug, Clone)]
pub struct TimelineEvent {
    pub at: Millis,
    pub kind: EventKind,
    pub actor: Option<SlackUserId>,
    /// Plain text (not yet escaped for Slack).
    pub text: String,
    /// The person the event is about (the new owner), shown as a mention after the text.
    pub subject: Option<SlackUserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_line_keeps_no_invisible_or_line_breaking_character() {
        let forged = "Disk full\u{2028}• *Status:* Resolved\u{202E}\u{00AD}\u{034F}\u{115F}\u{3164}\u{2800}\u{E0041}\r\n\u{0085}x";
        assert_eq!(single_line(forged), "Disk full • *Status:* Resolved x");
        assert_eq!(visible_text("a\u{200B}b\nc\u{E0041}"), "ab\nc");
    }

    #[test]
    fn severities_parse_case_insensitively_and_reject_anything_else() {
        assert_eq!("p1".parse::<Severity>(), Ok(Severity::P1));
        assert_eq!("P0".parse::<Severity>(), Ok(Severity::P0));
        assert!("P4".parse::<Severity>().is_err());
        assert!("critical".parse::<Severity>().is_err());
    }

    #[test]
    fn severity_response_targets_follow_the_runbooks() {
        assert_eq!(
            Severity::P0.response_within(),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            Severity::P1.response_within(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            Severity::P2.response_within(),
            Some(Duration::from_secs(14_400))
        );
        assert_eq!(Severity::P3.response_within(), None);
        assert_eq!(Severity::P3.response_target(), "next business day");
    }

    #[test]
    fn incident_refs_round_trip_and_reject_malformed_ones() {
        let r: IncidentRef = "inc-42".parse().expect("valid ref");
        assert_eq!(r.to_string(), "INC-42");
        for bad in [
            "INC-",
            "INC-0",
            "INC-x1",
            "INC-1;",
            "INC-99999999999999999",
            "12",
            "INC--3",
        ] {
            assert!(
                bad.parse::<IncidentRef>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn user_ids_accept_only_slack_shapes() {
        assert!(SlackUserId::parse("U012ABCDEF").is_some());
        assert!(SlackUserId::parse("W012ABCDEF").is_some());
        assert!(SlackUserId::parse("!channel").is_none());
        assert!(SlackUserId::parse("U12|x").is_none());
        assert!(SlackUserId::parse("u012abc").is_none());
        assert_eq!(
            SlackUserId::parse_mention("<@U024BE7LH|bob>").map(|u| u.to_string()),
            Some("U024BE7LH".to_string())
        );
        assert!(SlackUserId::parse_mention("<!channel>").is_none());
        assert!(SlackUserId::parse_mention("@bob").is_none());
    }

    #[test]
    fn user_text_is_trimmed_and_bounded() {
        assert_eq!(
            UserText::parse("  hi  ", "title").map(|t| t.0),
            Ok("hi".into())
        );
        assert!(UserText::parse("   ", "title").is_err());
        assert!(UserText::parse(&"x".repeat(UserText::MAX_CHARS + 1), "title").is_err());
    }
}
