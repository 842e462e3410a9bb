//! The status page's rules, no I/O: the components people outside the team
//! know (`[[status.components]]`), the state each is in, how open incidents
//! decide it, and the 90 days of bars under each.
//!
//! States and their names are Atlassian Statuspage's (its component
//! `status` values), the ones stakeholders already read on every status page:
//! operational, degraded performance, partial outage, major outage, under
//! maintenance. An open incident that touches a component puts it in the
//! state its severity says ([`ComponentStatus::from_severity`]); the worst
//! wins; a state set by hand (`/incident component NAME STATE`) wins over both
//! until it is set back to `auto`.
//!
//! The history's weekly figures (incidents, MTTA and MTTR, on-call load) are
//! in [`stats`].

pub mod stats;

use crate::incident::Severity;
pub use crate::incident::component::{ComponentName, ComponentStatus};
use crate::time::Millis;

/// One day in milliseconds: the bars are UTC days.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How many days of bars the page shows under each component.
pub const HISTORY_DAYS: usize = 90;

/// One `[[status.components]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: ComponentName,
    /// As the page shows it ("Checkout"); the name when not set.
    pub title: String,
    pub description: Option<String>,
    /// Incidents opened by alerts through these routes (`[[alerts.routes]]`
    /// names) touch this component.
    pub routes: Vec<String>,
    /// Incidents opened by alerts whose service label (the route's
    /// `service_label`, `service` by default) has one of these values touch it.
    pub services: Vec<String>,
}

/// `[status]`: the public status page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusSettings {
    /// The page's title ("Acme status"); "Status" when not set.
    pub title: String,
    /// Where the page is published (`https://status.example.com`), for the
    /// feeds' absolute links; relative links when not set.
    pub public_url: Option<String>,
    /// A listener of its own that serves only the status page (at `/`,
    /// `/status.json`, `/status.rss`, `/status.atom`), so it can be published
    /// while the rest stays internal.
    pub listen: Option<std::net::SocketAddr>,
    /// `status.publishers`: who may publish for the public, choose an
    /// incident's components and set a component's state by hand (people,
    /// Slack groups, schedules). Empty: anyone in the workspace.
    pub publishers: Vec<crate::escalation::Target>,
    /// In the order the page lists them.
    pub components: Vec<Component>,
}

impl StatusSettings {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.as_str() == name)
    }

    /// The components an incident opened by alerts through `route`, for a
    /// group with this `service`, touches.
    pub fn for_alerts(&self, route: &str, service: Option<&str>) -> Vec<ComponentName> {
        self.components
            .iter()
            .filter(|c| {
                c.routes.iter().any(|r| r == route)
                    || service.is_some_and(|s| c.services.iter().any(|x| x == s))
            })
            .map(|c| c.name.clone())
            .collect()
    }
}

/// The text a person published for the public (`/incident status --public`),
/// as the page shows it: Slack's escaping undone (`R&amp;D` → `R&D`), a link
/// reduced to what it shows (`<https://x|the dashboard>` → `the dashboard`),
/// no invisible, control or non-character. `Err`: it mentions a person, a
/// group or a channel, or says `@here`, whose IDs must not reach the public
/// (Slack's markup `<@U…>`, `<#C…>`, `<!…>`) — or nothing is left.
pub fn public_text(raw: &str) -> Result<String, String> {
    let mentions = raw
        .match_indices('<')
        .any(|(i, _)| raw[i + 1..].starts_with(['@', '#', '!']) && raw[i + 1..].contains('>'));
    if mentions {
        return Err(
            "public text cannot mention people, groups or channels (their Slack IDs would reach the public page); write it without the mention".into(),
        );
    }
    let text = crate::incident::visible_text(&crate::incident::slack_plain(raw));
    let text = text.trim();
    if text.is_empty() {
        return Err("the public text is empty".into());
    }
    Ok(text.to_string())
}

/// A title or description from the config as the page shows it: one line,
/// nothing invisible (no right-to-left override turning the rest around).
fn plain_line(s: &str) -> String {
    crate::incident::visible_text(&crate::incident::single_line(s))
        .trim()
        .to_string()
}

/// An incident as the status page may know it: when, how bad, what it
/// touches now. Never its title or its people.
#[derive(Debug, Clone)]
pub struct Outage {
    pub opened_at: Millis,
    /// `None` while still open.
    pub resolved_at: Option<Millis>,
    pub severity: Severity,
    pub components: Vec<ComponentName>,
}

/// A stretch of time an incident held a component in a state (the store's
/// `component_spans`): opened when an open incident touches the component,
/// closed when it resolves, changes severity or stops touching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The incident's number.
    pub incident: i64,
    pub component: ComponentName,
    pub status: ComponentStatus,
    pub from: Millis,
    /// `None` while it lasts.
    pub to: Option<Millis>,
}

/// A component's state now: the override when set, else the worst state of
/// the spans on it that still last, else operational.
pub fn current_status(
    component: &ComponentName,
    spans: &[Span],
    overridden: Option<ComponentStatus>,
) -> ComponentStatus {
    overridden.unwrap_or_else(|| {
        spans
            .iter()
            .filter(|s| s.to.is_none() && &s.component == component)
            .map(|s| s.status)
            .max()
            .unwrap_or(ComponentStatus::Operational)
    })
}

/// One bar: a UTC day and the worst state any incident held the component
/// in during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBar {
    /// Milliseconds at the day's start (UTC midnight).
    pub day_start: Millis,
    pub status: ComponentStatus,
    /// How many incidents touched the component that day.
    pub outages: usize,
}

/// The last `days` UTC days up to and including today's, oldest first.
pub fn day_bars(
    component: &ComponentName,
    spans: &[Span],
    now: Millis,
    days: usize,
) -> Vec<DayBar> {
    let today = now.0.div_euclid(DAY_MS) * DAY_MS;
    let first = today - (days as i64 - 1) * DAY_MS;
    let mut bars: Vec<(DayBar, Vec<i64>)> = (0..days as i64)
        .map(|i| {
            (
                DayBar {
                    day_start: Millis(first + i * DAY_MS),
                    status: ComponentStatus::Operational,
                    outages: 0,
                },
                Vec::new(),
            )
        })
        .collect();
    for s in spans.iter().filter(|s| &s.component == component) {
        let end = s.to.unwrap_or(now).0.max(s.from.0);
        let from = (s.from.0.max(first) - first).div_euclid(DAY_MS);
        let to = (end.min(now.0) - first).div_euclid(DAY_MS);
        if to < 0 {
            continue;
        }
        for i in from.max(0)..=to.min(days as i64 - 1) {
            if let Some((bar, incidents)) = bars.get_mut(i as usize) {
                bar.status = bar.status.max(s.status);
                if !incidents.contains(&s.incident) {
                    incidents.push(s.incident);
                }
            }
        }
    }
    bars.into_iter()
        .map(|(mut bar, incidents)| {
            bar.outages = incidents.len();
            bar
        })
        .collect()
}

/// The share of the bars' days with no outage, in percent (one decimal).
pub fn days_without_outage_percent(bars: &[DayBar]) -> f64 {
    if bars.is_empty() {
        return 100.0;
    }
    let clear = bars.iter().filter(|b| b.outages == 0).count();
    (clear as f64 * 1000.0 / bars.len() as f64).round() / 10.0
}

/// The public heading of an incident: its components and the worst it put
/// them in ("Partial outage: Checkout, Search"), never its internal title.
pub fn public_heading(worst: ComponentStatus, titles: &[&str]) -> String {
    let state = worst.label();
    if titles.is_empty() {
        format!("{state} of our service")
    } else {
        format!("{state}: {}", titles.join(", "))
    }
}

/// `[status]` as written in `klaxon.toml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    title: Option<String>,
    public_url: Option<String>,
    listen: Option<String>,
    #[serde(default)]
    publishers: Vec<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    name: String,
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
}

/// Words commands give a meaning of their own, so no component may be named so.
const RESERVED_NAMES: [&str; 2] = ["none", "auto"];

/// Checks `[status]`; `listen` comes from `KLAXON_STATUS_LISTEN` when set;
/// `route_exists` says whether an alert route of that name is configured.
/// Returns the settings made of what is right, and every problem as `(key,
/// message)`.
pub fn from_raw(
    raw: RawStatus,
    listen: Option<String>,
    route_exists: &dyn Fn(&str) -> bool,
) -> (StatusSettings, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut components: Vec<Component> = Vec::new();
    for (i, c) in raw.components.into_iter().enumerate() {
        let name = match ComponentName::parse(&c.name) {
            Ok(n) if RESERVED_NAMES.contains(&n.as_str()) => {
                problems.push((
                    format!("status.components[{i}].name"),
                    format!("`{n}` means something else to `/incident components` and `/incident component`; pick another name"),
                ));
                continue;
            }
            Ok(n) => n,
            Err(e) => {
                problems.push((format!("status.components[{i}].name"), e));
                continue;
            }
        };
        for route in c.routes.iter().filter(|r| !route_exists(r)) {
            problems.push((
                format!("status.components[{i}].routes"),
                format!("no alert route is named `{route}`"),
            ));
        }
        if components.iter().any(|x| x.name == name) {
            problems.push((
                format!("status.components[{i}].name"),
                format!("`{name}` is named twice"),
            ));
            continue;
        }
        components.push(Component {
            title: c
                .title
                .map(|t| plain_line(&t))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| name.as_str().to_string()),
            name,
            description: c
                .description
                .map(|d| plain_line(&d))
                .filter(|d| !d.is_empty()),
            routes: c.routes,
            services: c.services,
        });
    }
    let listen = listen.or(raw.listen).and_then(|v| match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push((
                "status.listen / KLAXON_STATUS_LISTEN".into(),
                format!("`{v}` is not an address to listen on; write it like \"0.0.0.0:8081\""),
            ));
            None
        }
    });
    let public_url = raw.public_url.and_then(|u| {
        let parsed = reqwest::Url::parse(&u).ok().filter(|p| {
            matches!(p.scheme(), "http" | "https")
                && p.host().is_some()
                && p.query().is_none()
                && p.fragment().is_none()
        });
        match parsed {
            Some(p) => Some(p.as_str().trim_end_matches('/').to_string()),
            None => {
                problems.push((
                    "status.public_url".into(),
                    format!("`{u}` is not an http:// or https:// address without a query or fragment (the page's own address, like https://status.example.com)"),
                ));
                None
            }
        }
    });
    let mut publishers = Vec::new();
    for (i, t) in raw.publishers.iter().enumerate() {
        match crate::escalation::Target::parse(t) {
            Ok(t) => publishers.push(t),
            Err(e) => problems.push((format!("status.publishers[{i}]"), e)),
        }
    }
    let settings = StatusSettings {
        title: raw
            .title
            .map(|t| plain_line(&t))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Status".to_string()),
        public_url,
        listen,
        publishers,
        components,
    };
    (settings, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn span(
        incident: i64,
        from_h: i64,
        to_h: Option<i64>,
        status: ComponentStatus,
        c: &str,
    ) -> Span {
        Span {
            incident,
            component: name(c),
            status,
            from: Millis(from_h * 3_600_000),
            to: to_h.map(|h| Millis(h * 3_600_000)),
        }
    }

    use ComponentStatus::*;

    #[test]
    fn the_worst_lasting_span_decides_a_component_and_an_override_wins() {
        let spans = [
            span(1, 1, None, DegradedPerformance, "checkout"),
            span(2, 2, None, PartialOutage, "checkout"),
            span(3, 3, Some(4), MajorOutage, "checkout"),
            span(4, 3, None, MajorOutage, "search"),
        ];
        assert_eq!(
            current_status(&name("checkout"), &spans, None),
            PartialOutage
        );
        assert_eq!(current_status(&name("login"), &spans, None), Operational);
        assert_eq!(
            current_status(&name("checkout"), &spans, Some(Operational)),
            Operational
        );
    }

    #[test]
    fn bars_mark_every_utc_day_a_span_covered_with_its_worst_state() {
        // Day 10 23:00 to day 11 noon; now is day 12 at 06:00.
        let now = Millis((12 * 24 + 6) * 3_600_000);
        let spans = [
            span(
                1,
                10 * 24 + 23,
                Some(11 * 24 + 12),
                PartialOutage,
                "checkout",
            ),
            // The same incident raised to P0 for an hour, then lowered: day 11 keeps the worst.
            span(2, 11 * 24 + 1, Some(11 * 24 + 2), MajorOutage, "checkout"),
            span(
                2,
                11 * 24 + 2,
                Some(11 * 24 + 3),
                DegradedPerformance,
                "checkout",
            ),
            span(3, 12 * 24 + 1, None, DegradedPerformance, "checkout"),
        ];
        let bars = day_bars(&name("checkout"), &spans, now, 5);
        let states: Vec<_> = bars.iter().map(|b| (b.status, b.outages)).collect();
        assert_eq!(
            states,
            vec![
                (Operational, 0),
                (Operational, 0),
                (PartialOutage, 1),
                (MajorOutage, 2),
                (DegradedPerformance, 1),
            ]
        );
        assert_eq!(bars[4].day_start, Millis(12 * DAY_MS));
        assert_eq!(days_without_outage_percent(&bars), 40.0);
    }

    #[test]
    fn public_text_is_plain_and_never_carries_a_slack_id() {
        assert_eq!(
            public_text("R&amp;D API: fewer than &lt;5% fail, see <https://status.example.com/x|the notes> \u{FFFE}\u{202E}ok").as_deref(),
            Ok("R&D API: fewer than <5% fail, see the notes ok")
        );
        assert_eq!(
            public_text("a <https://example.com> b").as_deref(),
            Ok("a https://example.com b")
        );
        for mention in [
            "<@U0ALICE|alice> is on it",
            "<!here> fixed",
            "see <#C0INC|incidents>",
            "<!subteam^S1|ops>",
        ] {
            assert!(public_text(mention).is_err(), "{mention}");
        }
        assert!(public_text(" \u{200B} ").is_err());
        assert_eq!(
            public_text("1 &lt; 2 and 3 &gt; 2").as_deref(),
            Ok("1 < 2 and 3 > 2")
        );
    }

    #[test]
    fn states_parse_as_statuspage_writes_them_and_as_people_do() {
        assert_eq!(
            ComponentStatus::parse("partial-outage"),
            Some(ComponentStatus::PartialOutage)
        );
        assert_eq!(
            ComponentStatus::parse("degraded"),
            Some(ComponentStatus::DegradedPerformance)
        );
        assert_eq!(ComponentStatus::parse("broken"), None);
        assert_eq!(
            ComponentName::parse("Checkout").map(|n| n.to_string()),
            Ok("checkout".into())
        );
        assert!(ComponentName::parse("check out").is_err());
        assert!(ComponentName::parse("api-eu_1").is_ok());
    }

    #[test]
    fn alerts_reach_components_by_route_or_by_service() {
        let settings = StatusSettings {
            components: vec![
                Component {
                    name: name("checkout"),
                    title: "Checkout".into(),
                    description: None,
                    routes: vec!["payments".into()],
                    services: vec![],
                },
                Component {
                    name: name("search"),
                    title: "Search".into(),
                    description: None,
                    routes: vec![],
                    services: vec!["search-api".into()],
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            settings.for_alerts("payments", None),
            vec![name("checkout")]
        );
        assert_eq!(
            settings.for_alerts("default", Some("search-api")),
            vec![name("search")]
        );
        assert!(settings.for_alerts("default", Some("web")).is_empty());
    }
}
