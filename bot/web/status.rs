//! The public status page: built from the store as a [`StatusView`], then
//! written as HTML, JSON (in the shape of Atlassian Statuspage's
//! `summary.json`, so existing tools can read it), RSS 2.0 and Atom.
//!
//! What may reach the public is decided here, once: component states,
//! the times and severities of incidents that touch a component (never
//! their titles, people, alerts or thread text), and the text people
//! published with `/incident status --public`. A test renders a page over
//! incidents full of internal words and finds none of them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::json;

use crate::incident::IncidentRef;
use crate::status::{
    self, ComponentStatus, HISTORY_DAYS, Outage, StatusSettings, current_status, day_bars,
    days_without_outage_percent,
};
use crate::store::StoreResult;
use crate::store::status::{self as store, PublicUpdate};
use crate::time::Millis;

/// How many resolved incidents the page and the feeds list.
const PAST_SHOWN: usize = 20;

/// One published update as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateView {
    pub id: i64,
    /// `investigating`, `update`, `resolved`.
    pub state: &'static str,
    pub label: &'static str,
    pub body: String,
    pub at: String,
    pub iso: String,
}

/// An incident as the public sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PublicIncident {
    /// `INC-12`: the anchor and the id in the JSON and the feeds.
    pub id: String,
    pub heading: String,
    /// The state it puts its components in (`partial_outage`).
    pub status: &'static str,
    /// Component titles, joined.
    pub components: String,
    pub component_names: Vec<String>,
    pub started: String,
    pub started_iso: String,
    pub resolved: Option<String>,
    pub resolved_iso: Option<String>,
    /// Newest first.
    pub updates: Vec<UpdateView>,
    #[serde(skip)]
    pub last_update_at: Millis,
}

/// One day's bar under a component.
#[derive(Debug, Clone, Serialize)]
pub struct BarView {
    pub x: usize,
    pub date: String,
    pub status: &'static str,
    pub label: String,
    pub colour: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub status: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
    pub bars: Vec<BarView>,
    pub bars_width: usize,
    pub days: usize,
    pub uptime: String,
    /// The bars in words, for screen readers.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overall {
    pub status: &'static str,
    pub headline: &'static str,
    pub indicator: &'static str,
    pub icon: &'static str,
}

/// Everything the status page shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub title: String,
    pub site: String,
    pub feeds: bool,
    pub updated: String,
    pub updated_iso: String,
    pub overall: Overall,
    pub components: Vec<ComponentView>,
    pub current: Vec<PublicIncident>,
    pub past: Vec<PublicIncident>,
    pub days: usize,
    pub footer: String,
    #[serde(skip)]
    pub public_url: Option<String>,
}

/// How long one reading of the store serves the status page when this
/// replica wrote nothing meanwhile: what another replica wrote shows within
/// this, and a flood of requests for a public page costs one reading per
/// interval, not one per request (nor a wait for the pages and alerts that
/// share the database).
pub const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// The status page as last read (see `crate::store::readcache`).
pub type Cache = crate::store::readcache::ReadCache<StatusView>;

/// A mark a state is also told by, besides its colour.
fn icon(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Operational => "✓",
        ComponentStatus::UnderMaintenance => "🛠",
        ComponentStatus::DegradedPerformance => "!",
        ComponentStatus::PartialOutage => "⚠",
        ComponentStatus::MajorOutage => "✕",
    }
}

/// The bar colours (each at least 3:1 against white, WCAG's non-text contrast).
fn colour(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Operational => "#1a7f37",
        ComponentStatus::UnderMaintenance => "#0a58ca",
        ComponentStatus::DegradedPerformance => "#9a6700",
        ComponentStatus::PartialOutage => "#bc4c00",
        ComponentStatus::MajorOutage => "#b3261e",
    }
}

fn update_view(u: &PublicUpdate) -> UpdateView {
    UpdateView {
        id: u.id,
        state: u.state.as_str(),
        label: u.state.label(),
        body: u.body.clone(),
        at: super::when(u.at),
        iso: u.at.rfc3339(),
    }
}

/// Reads what the page shows at `now`.
pub async fn view(
    pool: &sqlx::AnyPool,
    settings: &StatusSettings,
    now: Millis,
) -> StoreResult<StatusView> {
    let since = Millis(now.0 - HISTORY_DAYS as i64 * status::DAY_MS);
    let rows = store::outages_since(pool, since).await?;
    let spans = store::spans_since(pool, since).await?;
    let updates = store::public_updates_since(pool, since).await?;
    let overrides: HashMap<String, ComponentStatus> =
        store::overrides(pool).await?.into_iter().collect();
    // Routes in a maintenance window now: their components are under
    // maintenance, unless an incident makes them worse.
    let maintained: Vec<String> = crate::store::maintenance::not_ended(pool)
        .await?
        .into_iter()
        .filter(|w| w.starts_at.0 <= now.0 && now.0 < w.ends_at.0)
        .map(|w| w.route)
        .collect();
    // Only configured components are shown; a name left in the store after
    // it was removed from the config touches nothing.

    let mut components = Vec::new();
    for c in &settings.components {
        let overridden = overrides.get(c.name.as_str()).copied();
        let mut state = current_status(&c.name, &spans, overridden);
        if overridden.is_none() && c.routes.iter().any(|r| maintained.contains(r)) {
            state = state.max(ComponentStatus::UnderMaintenance);
        }
        let bars = day_bars(&c.name, &spans, now, HISTORY_DAYS);
        let mut counts: BTreeMap<ComponentStatus, usize> = BTreeMap::new();
        for b in &bars {
            *counts.entry(b.status).or_default() += 1;
        }
        let summary = counts
            .iter()
            .rev()
            .map(|(s, n)| {
                format!(
                    "{n} {} {}",
                    if *n == 1 { "day" } else { "days" },
                    s.label().to_lowercase()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        components.push(ComponentView {
            name: c.name.as_str().to_string(),
            title: c.title.clone(),
            description: c.description.clone(),
            status: state.as_str(),
            label: state.label(),
            icon: icon(state),
            bars_width: bars.len() * 4,
            bars: bars
                .iter()
                .enumerate()
                .map(|(i, b)| BarView {
                    x: i * 4,
                    date: b.day_start.timestamp().strftime("%Y-%m-%d").to_string(),
                    status: b.status.as_str(),
                    label: if b.outages == 0 {
                        "no incidents".to_string()
                    } else {
                        format!(
                            "{} ({} {})",
                            b.status.label().to_lowercase(),
                            b.outages,
                            if b.outages == 1 {
                                "incident"
                            } else {
                                "incidents"
                            }
                        )
                    },
                    colour: colour(b.status),
                })
                .collect(),
            days: bars.len(),
            uptime: format!("{:.1}", days_without_outage_percent(&bars)),
            summary,
        });
    }

    // Incidents the public was told about, by their updates.
    let mut by_incident: BTreeMap<i64, Vec<&PublicUpdate>> = BTreeMap::new();
    for u in &updates {
        by_incident.entry(u.incident.number()).or_default().push(u);
    }
    let outage_of: HashMap<i64, &Outage> = rows
        .iter()
        .map(|r| (r.incident.number(), &r.outage))
        .collect();
    let mut current = Vec::new();
    let mut past = Vec::new();
    for (id, list) in by_incident {
        let (Some(outage), Some(r)) = (outage_of.get(&id), IncidentRef::new(id)) else {
            continue;
        };
        // What it touched and how badly, over its whole life (its spans), so a
        // later change never takes back what the page once said; in the
        // page's order.
        let held: Vec<&status::Span> = spans.iter().filter(|s| s.incident == id).collect();
        let known: Vec<&status::Component> = settings
            .components
            .iter()
            .filter(|c| {
                outage.components.contains(&c.name) || held.iter().any(|s| s.component == c.name)
            })
            .collect();
        let titles: Vec<&str> = known.iter().map(|c| c.title.as_str()).collect();
        let worst = held
            .iter()
            .map(|s| s.status)
            .max()
            .unwrap_or(ComponentStatus::from_severity(outage.severity))
            .max(ComponentStatus::from_severity(outage.severity));
        let resolved = outage.resolved_at.is_some();
        let incident = PublicIncident {
            id: r.to_string(),
            heading: status::public_heading(worst, &titles),
            status: worst.as_str(),
            components: titles.join(", "),
            component_names: known.iter().map(|c| c.name.as_str().to_string()).collect(),
            started: super::when(outage.opened_at),
            started_iso: outage.opened_at.rfc3339(),
            resolved: outage.resolved_at.map(super::when),
            resolved_iso: outage.resolved_at.map(|m| m.rfc3339()),
            updates: list.iter().rev().map(|u| update_view(u)).collect(),
            last_update_at: list.last().map(|u| u.at).unwrap_or(outage.opened_at),
        };
        if resolved {
            past.push(incident);
        } else {
            current.push(incident);
        }
    }
    // The worst first, then the latest word.
    current.sort_by_key(|i| {
        (
            std::cmp::Reverse(ComponentStatus::parse(i.status)),
            std::cmp::Reverse(i.last_update_at),
        )
    });
    past.sort_by_key(|i| std::cmp::Reverse(i.last_update_at));
    past.truncate(PAST_SHOWN);

    // The page's state: the worst component, and at least what a current
    // public incident touching no component says.
    let worst_component = components
        .iter()
        .filter_map(|c| ComponentStatus::parse(c.status))
        .max()
        .unwrap_or(ComponentStatus::Operational);
    let worst_public = current
        .iter()
        .filter(|i| i.component_names.is_empty())
        .filter_map(|i| ComponentStatus::parse(i.status))
        .max()
        .unwrap_or(ComponentStatus::Operational);
    let overall = worst_component.max(worst_public);

    Ok(StatusView {
        title: format!("{} — {}", settings.title, overall.headline()),
        site: settings.title.clone(),
        feeds: true,
        updated: super::when(now),
        updated_iso: now.rfc3339(),
        overall: Overall {
            status: overall.as_str(),
            headline: overall.headline(),
            indicator: overall.indicator(),
            icon: icon(overall),
        },
        components,
        current,
        past,
        days: HISTORY_DAYS,
        footer: "Times in UTC. Bars are UTC days; a day shows the worst state any incident put the component in.".into(),
        public_url: settings.public_url.clone(),
    })
}

/// The page as HTML.
pub fn html(view: &StatusView) -> String {
    super::render("status", view)
}

/// The page as JSON, shaped like Statuspage's `/api/v2/summary.json`
/// (`page`, `status`, `components`, `incidents`) plus `history`: each
/// component's days. Its schema is `docs/status.schema.json`.
pub fn json(view: &StatusView) -> serde_json::Value {
    let incident = |i: &PublicIncident| {
        json!({
            "id": i.id,
            "name": i.heading,
            "status": if i.resolved.is_some() { "resolved" } else {
                "investigating"
            },
            "impact": match i.status {
                "major_outage" => "critical",
                "partial_outage" => "major",
                _ => "minor",
            },
            "created_at": i.started_iso,
            "resolved_at": i.resolved_iso,
            "components": i.component_names,
            "incident_updates": i.updates.iter().map(|u| json!({
                "id": u.id,
                "status": u.state,
                "body": u.body,
                "created_at": u.iso,
            })).collect::<Vec<_>>(),
        })
    };
    json!({
        "page": {
            "name": view.site,
            "url": view.public_url,
            "updated_at": view.updated_iso,
        },
        "status": {
            "indicator": view.overall.indicator,
            "description": view.overall.headline,
        },
        "components": view.components.iter().map(|c| json!({
            "id": c.name,
            "name": c.title,
            "description": c.description,
            "status": c.status,
        })).collect::<Vec<_>>(),
        "incidents": view.current.iter().map(incident).collect::<Vec<_>>(),
        "past_incidents": view.past.iter().map(incident).collect::<Vec<_>>(),
        "history": view.components.iter().map(|c| json!({
            "component": c.name,
            "days": c.bars.iter().map(|b| json!({"date": b.date, "status": b.status})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Every published update of the page's incidents, newest first.
fn feed_entries(view: &StatusView) -> Vec<(&PublicIncident, &UpdateView)> {
    let mut entries: Vec<(&PublicIncident, &UpdateView)> = view
        .current
        .iter()
        .chain(view.past.iter())
        .flat_map(|i| i.updates.iter().map(move |u| (i, u)))
        .collect();
    entries.sort_by(|a, b| b.1.iso.cmp(&a.1.iso).then(b.1.id.cmp(&a.1.id)));
    entries.truncate(50);
    entries
}

/// `base` + `path`: `base` is `status.public_url`, else the address the
/// request came to (both formats want absolute links and ids).
fn page_url(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

/// The updates as an RSS 2.0 feed; `base`: where its links point
/// (`status.public_url`, else the request's own address). Descriptions are
/// HTML in RSS, so the text is escaped for it.
pub fn rss(view: &StatusView, base: &str) -> String {
    let items = feed_entries(view)
        .into_iter()
        .map(|(i, u)| rss::Item {
            title: Some(format!("{} — {}", i.heading, u.label)),
            link: Some(page_url(base, &format!("/status#{}", i.id))),
            description: Some(handlebars::html_escape(&u.body)),
            guid: Some(rss::Guid {
                value: format!("{}-update-{}", i.id, u.id),
                permalink: false,
            }),
            pub_date: jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.fZ", &u.iso)
                .or_else(|_| u.iso.parse::<jiff::Timestamp>())
                .ok()
                .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()),
            ..Default::default()
        })
        .collect();
    let channel = rss::Channel {
        title: view.site.clone(),
        link: page_url(base, "/status"),
        description: format!("{}: incidents and their updates", view.site),
        last_build_date: view
            .updated_iso
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()),
        items,
        ..Default::default()
    };
    channel.to_string()
}

/// The updates as an Atom feed (RFC 4287); `base`: where its links point
/// (`status.public_url`, else the request's own address).
pub fn atom(view: &StatusView, base: &str) -> String {
    use atom_syndication::{Entry, Feed, Link, Text};
    let updated = |iso: &str| iso.parse::<jiff::Timestamp>().ok().and_then(chrono_like);
    let mut feed = Feed::default();
    feed.set_title(Text::plain(view.site.clone()));
    feed.set_id(page_url(base, "/status.atom"));
    if let Some(t) = updated(&view.updated_iso) {
        feed.set_updated(t);
    }
    let mut link = Link::default();
    link.set_href(page_url(base, "/status"));
    link.set_rel("alternate");
    let mut own = Link::default();
    own.set_href(page_url(base, "/status.atom"));
    own.set_rel("self");
    feed.set_links(vec![link, own]);
    let mut author = atom_syndication::Person::default();
    author.set_name(view.site.clone());
    feed.set_authors(vec![author]);
    feed.set_entries(
        feed_entries(view)
            .into_iter()
            .map(|(i, u)| {
                let mut e = Entry::default();
                e.set_title(Text::plain(format!("{} — {}", i.heading, u.label)));
                e.set_id(format!(
                    "{}#{}-update-{}",
                    page_url(base, "/status"),
                    i.id,
                    u.id
                ));
                if let Some(t) = updated(&u.iso) {
                    e.set_updated(t);
                }
                let mut l = Link::default();
                l.set_href(page_url(base, &format!("/status#{}", i.id)));
                e.set_links(vec![l]);
                e.set_summary(Some(Text::plain(u.body.clone())));
                e
            })
            .collect::<Vec<_>>(),
    );
    feed.to_string()
}

/// A [`jiff::Timestamp`] as the Atom crate's date type.
fn chrono_like(t: jiff::Timestamp) -> Option<atom_syndication::FixedDateTime> {
    atom_syndication::FixedDateTime::parse_from_rfc3339(&t.to_string()).ok()
}
