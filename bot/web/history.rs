//! The team's incident history: the list with its filters and weekly
//! charts (`GET /incidents`), and one incident's page (`GET /incidents/INC-n`):
//! its facts, timeline, actions, follow-ups and what was published.
//!
//! Internal: titles, people and alerts show here, so the HTTP side serves
//! these pages only to the team (`crate::http::pages`).

use serde::Serialize;
use serde_json::json;

use super::charts::{self, Layout, Series};
use crate::incident::{Incident, IncidentRef, IncidentSource, Severity, slack_plain};
use crate::status::stats::{self, WEEK_MS};
use crate::store::status::{self as store, HistoryFilter};
use crate::store::{StoreResult, actions, followups, incidents};
use crate::time::Millis;

/// Incidents per page of the list.
pub const PAGE_SIZE: i64 = 50;

/// Weeks the charts cover when no month is chosen.
const WEEKS: usize = 12;

/// The list's query string: `?severity=P1&source=alertmanager&month=2026-11&page=2`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ListQuery {
    pub severity: Option<String>,
    pub source: Option<String>,
    pub month: Option<String>,
    pub page: Option<String>,
}

/// A filter that cannot be understood (400, with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFilter(pub String);

/// A value from the query string as an error message shows it: no control
/// character, at most 40 characters.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .take(40)
        .collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// The month `2026-11` as [start, end) in milliseconds (UTC), for years
/// 1970 to 9998.
fn month_range(month: &str) -> Option<(Millis, Millis)> {
    let start: jiff::civil::Date = format!("{month}-01").parse().ok()?;
    if !(1970..=9998).contains(&start.year()) || month.len() != 7 {
        return None;
    }
    let end = start.checked_add(jiff::Span::new().months(1)).ok()?;
    let at = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| Millis::from_timestamp(z.timestamp()))
    };
    Some((at(start)?, at(end)?))
}

impl ListQuery {
    /// The store's filter, the page (1-based) and the month, checked.
    pub fn parse(&self) -> Result<(HistoryFilter, i64, Option<String>), BadFilter> {
        let blank = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let severity = match blank(&self.severity) {
            None => None,
            Some(s) => Some(s.parse::<Severity>().map_err(|_| {
                BadFilter(format!(
                    "`{}` is not a severity: P0, P1, P2 or P3",
                    shown(&s)
                ))
            })?),
        };
        let source = match blank(&self.source) {
            None => None,
            Some(s) => Some(
                IncidentSource::parse(&s)
                    .ok_or_else(|| {
                        BadFilter(format!(
                            "`{}` is not a source: slack, alertmanager, grafana or heartbeat",
                            shown(&s)
                        ))
                    })?
                    .as_str()
                    .to_string(),
            ),
        };
        let month = blank(&self.month);
        let (from, until) = match &month {
            None => (None, None),
            Some(m) => {
                let (a, b) = month_range(m).ok_or_else(|| {
                    BadFilter(format!(
                        "`{}` is not a month from 1970-01 to 9998-12; write it like 2026-11",
                        shown(m)
                    ))
                })?;
                (Some(a), Some(b))
            }
        };
        let page = match blank(&self.page) {
            None => 1,
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| BadFilter(format!("`{}` is not a page number", shown(&p))))?,
        };
        Ok((
            HistoryFilter {
                severity,
                source,
                from,
                until,
            },
            page,
            month,
        ))
    }
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    title: String,
    severity: &'static str,
    state: &'static str,
    source: &'static str,
    opened: String,
    mtta: String,
    mttr: String,
}

#[derive(Debug, Serialize)]
struct ChartRow {
    week: String,
    cells: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Chart {
    id: &'static str,
    caption: String,
    svg: String,
    columns: Vec<String>,
    rows: Vec<ChartRow>,
}

const SEVERITY_COLOURS: [&str; 4] = ["#b3261e", "#bc4c00", "#9a6700", "#57606a"];
const PEOPLE_COLOURS: [&str; 7] = [
    "#0a58ca", "#8250df", "#1a7f37", "#bc4c00", "#b3261e", "#9a6700", "#57606a",
];

/// `2026-11-30`: a week in the tables.
fn week_label(w: Millis) -> String {
    w.timestamp().strftime("%Y-%m-%d").to_string()
}

/// `30 Nov`: a week under a chart's bar.
fn week_tick(w: Millis) -> String {
    w.timestamp().strftime("%-d %b").to_string()
}

fn minutes(d: Option<std::time::Duration>) -> f64 {
    d.map(|d| (d.as_secs_f64() / 60.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

fn spread_chart(
    id: &'static str,
    what: &str,
    weeks: &[Millis],
    labels: &[String],
    ticks: &[String],
    pick: impl Fn(&stats::WeekFigures) -> stats::Spread,
    figures: &[stats::WeekFigures],
) -> Chart {
    let spreads: Vec<stats::Spread> = figures.iter().map(&pick).collect();
    let series = vec![
        Series {
            name: "median".into(),
            colour: "#0a58ca",
            values: spreads.iter().map(|s| minutes(s.median)).collect(),
        },
        Series {
            name: "90th percentile".into(),
            colour: "#8250df",
            values: spreads.iter().map(|s| minutes(s.p90)).collect(),
        },
    ];
    let caption = format!("{what} per week, in minutes (median and 90th percentile)");
    Chart {
        id,
        svg: charts::bars(
            id,
            &caption,
            &format!(
                "{} weeks, from {} to {}",
                weeks.len(),
                labels.first().cloned().unwrap_or_default(),
                labels.last().cloned().unwrap_or_default()
            ),
            ticks,
            &series,
            Layout::Grouped,
            "min",
        ),
        caption,
        columns: vec![
            "Incidents".into(),
            "Median".into(),
            "90th percentile".into(),
        ],
        rows: labels
            .iter()
            .zip(&spreads)
            .map(|(w, s)| ChartRow {
                week: w.clone(),
                cells: vec![
                    s.count.to_string(),
                    super::duration(s.median),
                    super::duration(s.p90),
                ],
            })
            .collect(),
    }
}

/// `GET /incidents`: the list page.
pub async fn list(
    pool: &sqlx::AnyPool,
    query: &ListQuery,
    now: Millis,
) -> StoreResult<Result<String, BadFilter>> {
    let (filter, page, month) = match query.parse() {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let total = incidents::count_matching(pool, &filter).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if page > pages {
        return Ok(Err(BadFilter(format!(
            "there is no page {page}: these filters give {pages} page{}",
            if pages == 1 { "" } else { "s" }
        ))));
    }
    let rows = incidents::history_page(pool, &filter, (page - 1) * PAGE_SIZE, PAGE_SIZE).await?;

    // The charts: the chosen month's weeks, else the last twelve.
    let weeks = match (filter.from, filter.until) {
        (Some(a), Some(b)) => stats::weeks_between(a, Millis(b.0 - 1), 6),
        _ => stats::weeks_between(Millis(now.0 - (WEEKS as i64 - 1) * WEEK_MS), now, WEEKS),
    };
    let first = weeks.first().copied().unwrap_or(now);
    let end = Millis(weeks.last().map(|w| w.0 + WEEK_MS).unwrap_or(now.0));
    let times = store::incident_times(pool, &filter, first).await?;
    let figures = stats::weekly(&times, &weeks);
    let labels: Vec<String> = weeks.iter().map(|w| week_label(*w)).collect();
    let ticks: Vec<String> = weeks.iter().map(|w| week_tick(*w)).collect();
    let mut charts_out = Vec::new();
    {
        let series: Vec<Series> = Severity::ALL
            .iter()
            .map(|s| Series {
                name: s.as_str().into(),
                colour: SEVERITY_COLOURS[s.index()],
                values: figures
                    .iter()
                    .map(|f| f64::from(f.by_severity[s.index()]))
                    .collect(),
            })
            .collect();
        let caption = "Incidents per week, by severity".to_string();
        charts_out.push(Chart {
            id: "chart-incidents",
            svg: charts::bars(
                "chart-incidents",
                &caption,
                &format!(
                    "{} incidents in {} weeks",
                    figures.iter().map(|f| f.total()).sum::<u32>(),
                    weeks.len()
                ),
                &ticks,
                &series,
                Layout::Stacked,
                "incidents",
            ),
            caption,
            columns: Severity::ALL
                .iter()
                .map(|s| s.as_str().to_string())
                .chain(["Total".to_string()])
                .collect(),
            rows: labels
                .iter()
                .zip(&figures)
                .map(|(w, f)| ChartRow {
                    week: w.clone(),
                    cells: f
                        .by_severity
                        .iter()
                        .map(|n| n.to_string())
                        .chain([f.total().to_string()])
                        .collect(),
                })
                .collect(),
        });
    }
    charts_out.push(spread_chart(
        "chart-mtta",
        "Time to acknowledge (MTTA)",
        &weeks,
        &labels,
        &ticks,
        |f| f.mtta,
        &figures,
    ));
    charts_out.push(spread_chart(
        "chart-mttr",
        "Time to resolve (MTTR)",
        &weeks,
        &labels,
        &ticks,
        |f| f.mttr,
        &figures,
    ));
    {
        let pages_sent = store::pages_between(pool, first, end).await?;
        let mut people = stats::pages_per_person(&pages_sent, &weeks);
        if people.len() > PEOPLE_COLOURS.len() {
            let rest = people.split_off(PEOPLE_COLOURS.len() - 1);
            let mut others = vec![0; weeks.len()];
            for (_, counts) in rest {
                for (o, c) in others.iter_mut().zip(counts) {
                    *o += c;
                }
            }
            people.push(("everyone else".into(), others));
        }
        let series: Vec<Series> = people
            .iter()
            .enumerate()
            .map(|(i, (who, counts))| Series {
                name: if who.starts_with('U') || who.starts_with('W') {
                    format!("@{who}")
                } else {
                    who.clone()
                },
                colour: PEOPLE_COLOURS[i % PEOPLE_COLOURS.len()],
                values: counts.iter().map(|c| f64::from(*c)).collect(),
            })
            .collect();
        let caption = "Pages per person per week (on-call load)".to_string();
        charts_out.push(Chart {
            id: "chart-pages",
            svg: charts::bars(
                "chart-pages",
                &caption,
                &format!(
                    "{} pages to {} people in {} weeks",
                    pages_sent.len(),
                    people.len(),
                    weeks.len()
                ),
                &ticks,
                &series,
                Layout::Stacked,
                "pages",
            ),
            caption,
            columns: series.iter().map(|s| s.name.clone()).collect(),
            rows: labels
                .iter()
                .enumerate()
                .map(|(i, w)| ChartRow {
                    week: w.clone(),
                    cells: people
                        .iter()
                        .map(|(_, c)| c.get(i).copied().unwrap_or(0).to_string())
                        .collect(),
                })
                .collect(),
        });
    }

    let link = |p: i64| {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(s) = filter.severity {
            q.push(("severity", s.as_str().to_string()));
        }
        if let Some(s) = &filter.source {
            q.push(("source", s.clone()));
        }
        if let Some(m) = &month {
            q.push(("month", m.clone()));
        }
        q.push(("page", p.to_string()));
        format!(
            "/incidents?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    };
    let option = |value: &str, label: &str, selected: bool| json!({"value": value, "label": label, "selected": selected});
    let mut severities = vec![option("", "Any", filter.severity.is_none())];
    severities.extend(
        Severity::ALL
            .iter()
            .map(|s| option(s.as_str(), s.as_str(), filter.severity == Some(*s))),
    );
    let mut sources = vec![option("", "Any", filter.source.is_none())];
    sources.extend(
        [
            IncidentSource::Slack,
            IncidentSource::Alertmanager,
            IncidentSource::Grafana,
            IncidentSource::Heartbeat,
        ]
        .iter()
        .map(|s| {
            option(
                s.as_str(),
                s.label(),
                filter.source.as_deref() == Some(s.as_str()),
            )
        }),
    );
    let data = json!({
        "title": "Incident history",
        "site": "Klaxon",
        "feeds": false,
        "total": crate::time::group_thousands(u64::try_from(total).unwrap_or(0)),
        "filtered": filter != HistoryFilter::default(),
        "page": page,
        "pages": pages,
        "weeks": weeks.len(),
        "severities": severities,
        "sources": sources,
        "month": month.clone().unwrap_or_default(),
        "charts": charts_out,
        "incidents": rows.iter().map(row).collect::<Vec<_>>(),
        "newer": (page > 1).then(|| link(page - 1)),
        "older": (page < pages).then(|| link(page + 1)),
        "footer": format!("Klaxon · {} · times in UTC", super::when(now)),
    });
    Ok(Ok(super::render("incidents", &data)))
}

fn row(i: &Incident) -> Row {
    Row {
        id: i.reference.to_string(),
        title: slack_plain(&i.title),
        severity: i.severity.as_str(),
        state: i.state.as_str(),
        source: i.source.label(),
        opened: super::when(i.opened_at),
        mtta: super::duration(i.time_to_acknowledge()),
        mttr: super::duration(i.time_to_resolve()),
    }
}

fn who(u: Option<&crate::incident::SlackUserId>) -> String {
    u.map(|u| format!("@{u}"))
        .unwrap_or_else(|| "Klaxon".into())
}

/// `GET /incidents/INC-n`: the incident's page, if it exists.
pub async fn incident(
    pool: &sqlx::AnyPool,
    settings: &crate::status::StatusSettings,
    r: IncidentRef,
    now: Millis,
) -> StoreResult<Option<String>> {
    let Some(i) = incidents::get(pool, r).await? else {
        return Ok(None);
    };
    let timeline = incidents::timeline(pool, r).await?;
    let requests = actions::of_incident(pool, r).await?;
    let follow = followups::of_incident(pool, r).await?;
    let components = store::components_of(pool, r).await?;
    let public = store::public_updates_of(pool, r).await?;
    let end = i.resolved_at.unwrap_or(now);
    let length = end.0 - i.opened_at.0;
    let marks: Vec<charts::Mark> = timeline
        .iter()
        .map(|e| charts::Mark {
            offset_ms: e.at.0 - i.opened_at.0,
            label: format!(
                "{} {}{}{}",
                e.at.clock(),
                e.actor
                    .as_ref()
                    .map(|a| format!("@{a} "))
                    .unwrap_or_default(),
                slack_plain(&e.text),
                e.subject
                    .as_ref()
                    .map(|s| format!(" @{s}"))
                    .unwrap_or_default()
            ),
        })
        .collect();
    let chart = charts::incident_timeline(
        "incident-timeline",
        &format!(
            "{r} from open to {}",
            if i.is_resolved() { "resolution" } else { "now" }
        ),
        i.acknowledged_at.map(|a| a.0 - i.opened_at.0),
        length,
        i.is_resolved(),
        &marks,
    );
    let component_titles: Vec<String> = components
        .iter()
        .map(|c| {
            settings
                .component(c)
                .map(|c| c.title.clone())
                .unwrap_or_else(|| c.clone())
        })
        .collect();
    let data = json!({
        "title": format!("{r}: {}", slack_plain(&i.title)),
        "site": "Klaxon",
        "feeds": false,
        "id": r.to_string(),
        "incident_title": slack_plain(&i.title),
        "severity": i.severity.as_str(),
        "state": i.state.as_str(),
        "source": i.source.label(),
        "opened": super::when(i.opened_at),
        "acknowledged": i.acknowledged_at.map(|a| format!("{} by {}", super::when(a), who(i.acknowledged_by.as_ref()))).unwrap_or_else(|| "—".into()),
        "resolved": i.resolved_at.map(|a| format!("{} by {}", super::when(a), who(i.resolved_by.as_ref()))).unwrap_or_else(|| "—".into()),
        "mtta": super::duration(i.time_to_acknowledge()),
        "mttr": super::duration(i.time_to_resolve()),
        "owner": i.owner.as_ref().map(|o| format!("@{o}")).unwrap_or_else(|| "—".into()),
        "components": if component_titles.is_empty() { "—".to_string() } else { component_titles.join(", ") },
        "root_cause": i.root_cause.as_deref().map(slack_plain),
        "resolution": i.resolution.as_deref().map(slack_plain),
        "chart": chart,
        "chart_caption": format!(
            "Waiting for an acknowledgement for {}, then {} until {}; each tick is a timeline event (hover for its text).",
            super::duration(i.time_to_acknowledge().or(Some(std::time::Duration::from_millis(u64::try_from(length).unwrap_or(0))))),
            super::duration(i.acknowledged_at.map(|a| end.since(a))),
            if i.is_resolved() { "the resolution" } else { "now" }
        ),
        "timeline": timeline.iter().map(|e| json!({
            "at": e.at.date_time_seconds_utc(),
            "iso": e.at.rfc3339(),
            "who": who(e.actor.as_ref()),
            "text": match &e.subject { Some(s) => format!("{} @{s}", slack_plain(&e.text)), None => slack_plain(&e.text) },
        })).collect::<Vec<_>>(),
        "actions": requests.iter().map(|a| json!({
            "action": a.action,
            "target": a.target,
            "requested_by": format!("@{}", a.requested_by),
            "decided_by": a.decided_by.as_ref().map(|d| format!("@{d}")).unwrap_or_else(|| "—".into()),
            "state": a.state.as_str(),
        })).collect::<Vec<_>>(),
        "followups": follow.iter().map(|f| json!({
            "number": f.number,
            "text": slack_plain(&f.text),
            "owner": f.owner.as_ref().map(|o| format!("@{o}")),
            "tracker": f.tracker_ref.clone().or_else(|| f.tracker_state.clone()),
        })).collect::<Vec<_>>(),
        "public_updates": public.iter().map(|u| json!({
            "label": u.state.label(),
            "body": u.body,
            "at": super::when(u.at),
            "iso": u.at.rfc3339(),
        })).collect::<Vec<_>>(),
        "footer": format!("Klaxon · {} · times in UTC", super::when(now)),
    });
    Ok(Some(super::render("incident", &data)))
}
