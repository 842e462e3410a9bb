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

/// An incident as the status page may know it: when, how bad, what it
/// touches. Never its title or its people.
#[derive(Debug, Clone)]
pub struct Outage {
    pub opened_at: Millis,
    /// `None` while still open.
    pub resolved_at: Option<Millis>,
    pub severity: Severity,
    pub components: Vec<ComponentName>,
}

impl Outage {
    fn status(&self) -> ComponentStatus {
        ComponentStatus::from_severity(self.severity)
    }
    fn touches(&self, c: &ComponentName) -> bool {
        self.components.iter().any(|x| x == c)
    }
}

/// A component's state now: the override when set, else the worst state of
/// the open outages touching it, else operational.
pub fn current_status(
    component: &ComponentName,
    outages: &[Outage],
    overridden: Option<ComponentStatus>,
) -> ComponentStatus {
    overridden.unwrap_or_else(|| {
        outages
            .iter()
            .filter(|o| o.resolved_at.is_none() && o.touches(component))
            .map(Outage::status)
            .max()
            .unwrap_or(ComponentStatus::Operational)
    })
}

/// One bar: a UTC day and the worst state any outage touching the component
/// was in during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBar {
    /// Milliseconds at the day's start (UTC midnight).
    pub day_start: Millis,
    pub status: ComponentStatus,
    /// How many outages touched the component that day.
    pub outages: usize,
}

/// The last `days` UTC days up to and including today's, oldest first.
pub fn day_bars(
    component: &ComponentName,
    outages: &[Outage],
    now: Millis,
    days: usize,
) -> Vec<DayBar> {
    let today = now.0.div_euclid(DAY_MS) * DAY_MS;
    let first = today - (days as i64 - 1) * DAY_MS;
    let mut bars: Vec<DayBar> = (0..days as i64)
        .map(|i| DayBar {
            day_start: Millis(first + i * DAY_MS),
            status: ComponentStatus::Operational,
            outages: 0,
        })
        .collect();
    for o in outages.iter().filter(|o| o.touches(component)) {
        let end = o.resolved_at.unwrap_or(now).0.max(o.opened_at.0);
        let from = (o.opened_at.0.max(first) - first).div_euclid(DAY_MS);
        let to = (end.min(now.0) - first).div_euclid(DAY_MS);
        if to < 0 {
            continue;
        }
        for i in from.max(0)..=to.min(days as i64 - 1) {
            if let Some(bar) = bars.get_mut(i as usize) {
                bar.status = bar.status.max(o.status());
                bar.outages += 1;
            }
        }
    }
    bars
}

/// The share of the bars' days with no outage, in percent (one decimal).
pub fn days_without_outage_percent(bars: &[DayBar]) -> f64 {
    if bars.is_empty() {
        return 100.0;
    }
    let clear = bars.iter().filter(|b| b.outages == 0).count();
    (clear as f64 * 1000.0 / bars.len() as f64).round() / 10.0
}

/// The public heading of an incident: its components and what they suffer
/// ("Partial outage: Checkout, Search"), never its internal title.
pub fn public_heading(severity: Severity, titles: &[&str]) -> String {
    let state = ComponentStatus::from_severity(severity).label();
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

/// Checks `[status]`; `listen` comes from `KLAXON_STATUS_LISTEN` when set.
/// Every problem is returned as `(key, message)`.
pub fn from_raw(
    raw: RawStatus,
    listen: Option<String>,
) -> Result<StatusSettings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut components: Vec<Component> = Vec::new();
    for (i, c) in raw.components.into_iter().enumerate() {
        let name = match ComponentName::parse(&c.name) {
            Ok(n) => n,
            Err(e) => {
                problems.push((format!("status.components[{i}].name"), e));
                continue;
            }
        };
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
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| name.as_str().to_string()),
            name,
            description: c.description.filter(|d| !d.trim().is_empty()),
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
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_string());
    if let Some(u) = &public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        problems.push((
            "status.public_url".into(),
            format!("`{u}` is not an http:// or https:// address"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StatusSettings {
        title: raw
            .title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Status".to_string()),
        public_url,
        listen,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn outage(open_h: i64, resolved_h: Option<i64>, sev: Severity, c: &str) -> Outage {
        Outage {
            opened_at: Millis(open_h * 3_600_000),
            resolved_at: resolved_h.map(|h| Millis(h * 3_600_000)),
            severity: sev,
            components: vec![name(c)],
        }
    }

    #[test]
    fn the_worst_open_incident_decides_a_component_and_an_override_wins() {
        let outages = [
            outage(1, None, Severity::P2, "checkout"),
            outage(2, None, Severity::P1, "checkout"),
            outage(3, Some(4), Severity::P0, "checkout"),
            outage(3, None, Severity::P0, "search"),
        ];
        assert_eq!(
            current_status(&name("checkout"), &outages, None),
            ComponentStatus::PartialOutage
        );
        assert_eq!(
            current_status(&name("login"), &outages, None),
            ComponentStatus::Operational
        );
        assert_eq!(
            current_status(
                &name("checkout"),
                &outages,
                Some(ComponentStatus::Operational)
            ),
            ComponentStatus::Operational
        );
    }

    #[test]
    fn bars_mark_every_utc_day_an_outage_spanned_with_its_worst_state() {
        // Day 10 (240 h) to day 11 noon; now is day 12 at 06:00.
        let now = Millis((12 * 24 + 6) * 3_600_000);
        let outages = [
            outage(10 * 24 + 23, Some(11 * 24 + 12), Severity::P1, "checkout"),
            outage(11 * 24 + 1, Some(11 * 24 + 2), Severity::P0, "checkout"),
            outage(12 * 24 + 1, None, Severity::P2, "checkout"),
        ];
        let bars = day_bars(&name("checkout"), &outages, now, 5);
        let states: Vec<_> = bars.iter().map(|b| (b.status, b.outages)).collect();
        assert_eq!(
            states,
            vec![
                (ComponentStatus::Operational, 0),
                (ComponentStatus::Operational, 0),
                (ComponentStatus::PartialOutage, 1),
                (ComponentStatus::MajorOutage, 2),
                (ComponentStatus::DegradedPerformance, 1),
            ]
        );
        assert_eq!(bars[4].day_start, Millis(12 * DAY_MS));
        assert_eq!(days_without_outage_percent(&bars), 40.0);
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
        assert!(ComponentName::parse("Checkout").is_err());
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
