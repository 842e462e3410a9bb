//! From an alert notification to incident threads, in one transaction.
//!
//! - The notification's content key is recorded first: a repeat (Alertmanager
//!   HA peers, retries) finds it and changes nothing.
//! - One alert group is one incident and one thread. New alerts of the group,
//!   and alerts that resolve, are thread replies; when every alert has resolved
//!   and the route says so, the incident resolves with its summary. A group
//!   that fires after its incident resolved opens a new one linked to the old.
//! - Alert storms: past the route's cap of new incidents a minute, further
//!   groups fold into one "alert storm" incident whose thread lists them in
//!   digests (a job, a few seconds apart) — never dropped, never a flood.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::thread::Entry;
use super::{Ctx, Error, Result, incidents as open_close};
use crate::alerts::routing::Route;
use crate::alerts::{Alert, AlertBatch};
use crate::incident::{ChannelId, EventKind, Incident, IncidentRef, Severity};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::Tx;
use crate::store::alerts::{self as store, Change, GroupLink};
use crate::store::incidents::{self, NewIncident, Resolution};
use crate::templates::{TemplateName, alerts_data};
use crate::time::Millis;

/// How long a storm collects groups before listing them.
const DIGEST_DELAY: std::time::Duration = std::time::Duration::from_secs(3);
/// Groups listed per digest message.
const DIGEST_CHUNK: usize = 100;

/// What a notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The same content was processed before; nothing changed.
    pub duplicate: bool,
    pub incident: Option<IncidentRef>,
    pub opened: bool,
    /// Folded into the route's alert-storm incident.
    pub folded: bool,
    pub resolved: bool,
}

/// One alert as the thread shows it.
pub fn alert_view(a: &Alert) -> Value {
    let clip = |s: &str, n: usize| -> String {
        if s.chars().count() > n {
            format!("{}…", s.chars().take(n).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={}", v.replace('`', "'")))
        .collect();
    let mut links = Vec::new();
    let mut link = |url: Option<&String>, label: &str| {
        if let Some(u) = url.filter(|u| crate::templates::linkable(u)) {
            links.push(json!({"url": u, "label": label}));
        }
    };
    link(a.annotations.get("runbook_url"), "runbook");
    link(a.dashboard_url.as_ref(), "dashboard");
    link(a.panel_url.as_ref(), "panel");
    link(a.generator_url.as_ref(), "source");
    link(a.silence_url.as_ref(), "silence in Grafana");
    json!({
        "name": name(a),
        "summary": a.annotations.get("summary").map(|s| clip(s, 300)),
        "description": a.annotations.get("description").map(|s| clip(s, 600)),
        "since": a.starts_at.date_time_utc(),
        "labels": clip(&labels.join(" "), 300),
        "links": links,
    })
}

fn name(a: &Alert) -> String {
    a.labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alert".into())
}

/// Processes one notification.
pub async fn ingest(ctx: &Ctx, batch: &AlertBatch) -> Result<Ingested> {
    let now = ctx.clock.now();
    let settings = &ctx.settings;
    let mut tx = ctx.begin().await?;
    if !store::first_notification(&mut *tx, &batch.dedupe_key(), now).await? {
        tx.rollback().await?;
        return Ok(Ingested {
            duplicate: true,
            incident: None,
            opened: false,
            folded: false,
            resolved: false,
        });
    }
    let group_id = format!("{}:{}", batch.source.as_str(), batch.group_key);
    let labels = batch.route_labels();
    let route = settings.alerts.routes.pick(&labels);
    let mut outcome = Ingested {
        duplicate: false,
        incident: None,
        opened: false,
        folded: false,
        resolved: false,
    };

    let existing = store::open_incident_for_group(&mut *tx, &group_id).await?;
    let incident = match existing {
        Some(r) => incidents::get(&mut *tx, r).await?,
        None if batch.firing().next().is_none() => None,
        None => {
            let cap = i64::from(route.max_new_incidents_per_minute.get());
            let recent = store::opened_by_route_since(
                &mut *tx,
                &route.name,
                now.minus(std::time::Duration::from_secs(60)),
            )
            .await?;
            let (incident, folded) = if recent >= cap {
                (
                    storm_incident(ctx, &mut tx, batch, route, &labels, now).await?,
                    true,
                )
            } else {
                (
                    open_for_group(ctx, &mut tx, batch, route, &group_id, &labels, now).await?,
                    false,
                )
            };
            store::link_group(
                &mut *tx,
                &GroupLink {
                    group_id: &group_id,
                    incident: incident.reference,
                    source: batch.source.as_str(),
                    route: &route.name,
                    title: &batch.title(),
                    labels: &json!(batch.group_labels),
                    announced: !folded,
                },
                now,
            )
            .await?;
            if folded {
                let digest = StormDigest {
                    incident: incident.reference.number(),
                };
                jobs::enqueue(&mut *tx, &digest, now.plus(DIGEST_DELAY), now).await?;
            }
            outcome.opened = !folded;
            outcome.folded = folded;
            Some(incident)
        }
    };
    let Some(incident) = incident else {
        tx.commit().await?;
        return Ok(outcome);
    };
    outcome.incident = Some(incident.reference);

    let mut fired = Vec::new();
    let mut resolved = Vec::new();
    for alert in &batch.alerts {
        match store::upsert_alert(
            &mut tx,
            incident.reference,
            &group_id,
            alert,
            &name(alert),
            now,
        )
        .await?
        {
            Change::NewFiring | Change::Refired => fired.push(alert),
            Change::Resolved => resolved.push(alert),
            Change::NewResolved | Change::Unchanged => {}
        }
    }
    let source = batch.source.to_string();
    let source_label = batch.source.label();
    let thread = ctx.thread();
    if !fired.is_empty() && !outcome.folded {
        let views: Vec<Value> = fired.iter().map(|a| alert_view(a)).collect();
        let text = ctx.render(
            TemplateName::AlertFiring,
            &alerts_data(&incident, source_label, &views, 0),
        )?;
        let mut names: Vec<String> = fired.iter().map(|a| name(a)).collect();
        names.dedup();
        thread
            .post(
                &mut tx,
                &incident,
                Entry::new(
                    EventKind::AlertFired,
                    format!("{} alert(s) fired: {}", fired.len(), names.join(", ")),
                ),
                &text,
                now,
            )
            .await?;
    }
    if !resolved.is_empty() {
        let still_firing = store::firing_count(&mut *tx, incident.reference).await?;
        let views: Vec<Value> = resolved.iter().map(|a| alert_view(a)).collect();
        let text = ctx.render(
            TemplateName::AlertResolved,
            &alerts_data(&incident, source_label, &views, still_firing),
        )?;
        let mut names: Vec<String> = resolved.iter().map(|a| name(a)).collect();
        names.dedup();
        thread
            .post(
                &mut tx,
                &incident,
                Entry::new(
                    EventKind::AlertResolved,
                    format!("{} alert(s) resolved: {}", resolved.len(), names.join(", ")),
                ),
                &text,
                now,
            )
            .await?;
        if still_firing == 0 && route.auto_resolve {
            let resolution = Resolution {
                root_cause: None,
                resolution: Some(format!("every alert resolved ({source})")),
                follow_up: None,
            };
            outcome.resolved =
                open_close::resolve_in(ctx, &mut tx, None, incident.reference, &resolution, now)
                    .await?
                    .is_some();
        }
    }
    ctx.commit(tx).await?;
    if outcome.opened {
        open_close::count_opened(ctx, batch.source);
    }
    Ok(outcome)
}

/// Where a route's new incident goes: its channel, severity and ladder.
fn placement(
    ctx: &Ctx,
    route: &Route,
    labels: &BTreeMap<String, String>,
) -> Result<(ChannelId, Severity, Option<String>)> {
    let settings = &ctx.settings;
    let channel = route
        .channel
        .clone()
        .or_else(|| settings.slack.incident_channel.clone())
        .ok_or_else(|| Error::NoChannel(route.name.clone()))?;
    let severity = route.severity_for(labels);
    let ladder = route.ladder.clone().or_else(|| {
        settings
            .escalation
            .ladder_for(severity)
            .map(|l| l.name.clone())
    });
    Ok((channel, severity, ladder))
}

/// Opens the incident for a new alert group.
async fn open_for_group(
    ctx: &Ctx,
    tx: &mut Tx,
    batch: &AlertBatch,
    route: &Route,
    group_id: &str,
    labels: &BTreeMap<String, String>,
    now: Millis,
) -> Result<Incident> {
    let (channel, severity, ladder) = placement(ctx, route, labels)?;
    let previous = store::last_incident_for_group(&mut **tx, group_id).await?;
    let title = batch.title();
    let source = batch.source;
    let incident = open_close::open_in(
        ctx,
        tx,
        &NewIncident {
            title: &title,
            severity,
            channel: &channel,
            opened_by: None,
            source,
            opened_at: now,
            ladder: ladder.as_deref(),
            previous,
        },
        &format!(
            "{} opened the incident ({severity}): {title}",
            source.label()
        ),
        now,
    )
    .await?;
    store::set_alert_route(&mut **tx, incident.reference, &route.name, previous).await?;
    Ok(incident)
}

/// The route's open alert-storm incident, opened if there is none.
async fn storm_incident(
    ctx: &Ctx,
    tx: &mut Tx,
    batch: &AlertBatch,
    route: &Route,
    labels: &BTreeMap<String, String>,
    now: Millis,
) -> Result<Incident> {
    let key = format!("storm:{}", route.name);
    if let Some(r) = store::open_incident_for_route(&mut **tx, &key).await?
        && let Some(i) = incidents::get(&mut **tx, r).await?
    {
        return Ok(i);
    }
    let (channel, severity, ladder) = placement(ctx, route, labels)?;
    let title = format!(
        "Alert storm on route {}: more than {} new alert groups a minute",
        route.name, route.max_new_incidents_per_minute
    );
    let incident = open_close::open_in(
        ctx,
        tx,
        &NewIncident {
            title: &title,
            severity,
            channel: &channel,
            opened_by: None,
            source: batch.source,
            opened_at: now,
            ladder: ladder.as_deref(),
            previous: None,
        },
        &format!(
            "alert storm: further new groups of route {} fold into this incident",
            route.name
        ),
        now,
    )
    .await?;
    store::set_alert_route(&mut **tx, incident.reference, &key, None).await?;
    Ok(incident)
}

/// Lists the groups folded into a storm since the last digest, a few seconds
/// after the first of them arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormDigest {
    pub incident: i64,
}

impl Job for StormDigest {
    const KIND: &'static str = "storm_digest";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("storm_digest:{}", self.incident))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        if let Some(r) = IncidentRef::new(self.incident) {
            digest(&ctx, &mut tx, r, ctx.clock.now()).await?;
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

async fn digest(ctx: &Ctx, tx: &mut Tx, r: IncidentRef, now: Millis) -> Result<()> {
    let Some(incident) = incidents::get(&mut **tx, r).await? else {
        return Ok(());
    };
    let titles = store::take_unannounced(tx, r).await?;
    if titles.is_empty() {
        return Ok(());
    }
    let total = store::count_groups(&mut **tx, r).await?;
    let thread = ctx.thread();
    for (n, chunk) in titles.chunks(DIGEST_CHUNK).enumerate() {
        let mut lines = vec![format!(
            "🌩 *{} more alert group(s) folded into this storm* ({} in all){}",
            titles.len(),
            total,
            if n > 0 {
                format!(", part {}", n + 1)
            } else {
                String::new()
            }
        )];
        lines.extend(
            chunk
                .iter()
                .map(|t| format!("• {}", crate::templates::slack_escape(t))),
        );
        thread
            .post(
                tx,
                &incident,
                Entry::new(
                    EventKind::AlertFired,
                    format!("{} alert group(s) folded into the storm", chunk.len()),
                ),
                &lines.join("\n"),
                now,
            )
            .await?;
    }
    Ok(())
}
