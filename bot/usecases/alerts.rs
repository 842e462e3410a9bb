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
use serde_json::json;

use std::collections::HashMap;

use super::thread::{Entry, standing};
use super::{Ctx, Error, Result, incidents as open_close};
use crate::alerts::routing::Route;
use crate::alerts::{Alert, AlertBatch, AlertStatus};
use crate::blocks;
use crate::incident::{ChannelId, EventKind, Incident, IncidentRef, IncidentSource, Severity};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::Tx;
use crate::store::alerts::{self as store, GroupLink, GroupView};
use crate::store::incidents::{self, NewIncident, Resolution};
use crate::telemetry::SourceLabels;
use crate::templates::{AlertsShown, TemplateName, alert_views, alerts_data};
use crate::time::{Millis, group_thousands, plural};

/// How long a storm collects groups before listing them.
const DIGEST_DELAY: std::time::Duration = std::time::Duration::from_secs(3);
/// Groups listed per digest message.
const DIGEST_CHUNK: usize = 100;

/// What a notification did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// The same content was processed before; nothing changed.
    pub duplicate: bool,
    pub incident: Option<IncidentRef>,
    pub opened: bool,
    /// Folded into the route's alert-storm incident.
    pub folded: bool,
    pub resolved: bool,
    /// Firing alerts already seen resolved (out of order), ignored.
    pub stale: usize,
    /// A beat of this heartbeat (the route's `heartbeat`): nothing else happened.
    pub beat: Option<String>,
    /// Held by this maintenance window: stored, no incident, nobody paged.
    pub held: Option<i64>,
}

/// Alerts one message shows at most; the rest are counted ("… and 1,150 more").
const SHOWN_IN_REPLY: usize = 10;

/// `HighErrorRate, DiskFull`: the distinct names of some alerts, for the timeline.
fn names_of(alerts: &[&Alert]) -> String {
    let mut names: Vec<&str> = alerts.iter().map(|a| a.name()).collect();
    names.sort_unstable();
    names.dedup();
    let shown: Vec<&str> = names.iter().take(SHOWN_IN_REPLY).copied().collect();
    if names.len() > shown.len() {
        format!(
            "{} … and {} more",
            shown.join(", "),
            names.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

/// What a notification says of its group's size: `alerts` are the ones kept
/// (stale firings dropped), `late_resolutions` those of them that resolve an
/// earlier firing of an alert that fires again since (it still fires).
fn view_of(batch: &AlertBatch, alerts: &[&Alert], late_resolutions: u64) -> GroupView {
    GroupView {
        listed: u64::try_from(batch.alerts.len()).unwrap_or(u64::MAX),
        listed_firing: u64::try_from(
            alerts
                .iter()
                .filter(|a| a.status == AlertStatus::Firing)
                .count(),
        )
        .unwrap_or(u64::MAX)
            + late_resolutions,
        truncated: batch.truncated_alerts,
    }
}

/// Processes one notification: everything it lists is stored, whatever its
/// size; what the thread shows of it is cut.
pub async fn ingest(ctx: &Ctx, batch: &AlertBatch) -> Result<Ingested> {
    let settings = &ctx.settings;
    let labels = batch.route_labels();
    let route = settings.alerts.routes.pick(&labels);
    if let Some(name) = &route.heartbeat {
        // Every repeat of the always-firing alert is a beat (repeats carry
        // the same content, so this comes before the duplicate check); a
        // notification with nothing firing proves nothing.
        if batch.alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            super::heartbeats::beat(ctx, name).await?;
        }
        return Ok(Ingested {
            beat: Some(name.clone()),
            ..Ingested::default()
        });
    }
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let group_id = format!("{}:{}", batch.source.as_str(), batch.group_key);
    let existing = store::open_incident_for_group(&mut *tx, &group_id).await?;
    // A maintenance window over the route holds a group with no incident.
    // Its notifications are not remembered as seen: once the window ends,
    // the sender's next repeat of a group still firing opens its incident.
    if existing.is_none()
        && let Some(window) =
            super::maintenance::hold(&mut tx, &route.name, &group_id, batch, now).await?
    {
        ctx.commit(tx).await?;
        return Ok(Ingested {
            held: Some(window),
            ..Ingested::default()
        });
    }
    // Components configured (or added to the config) after its incident
    // opened are attached at its next notification, a repeat included.
    // (The incident read for it is kept for below, not read twice.)
    let mut read: Option<Incident> = None;
    if let Some(r) = existing {
        let service = route
            .service_for(&batch.common_labels)
            .or_else(|| route.service_for(&batch.group_labels));
        let wanted = settings.status.for_alerts(&route.name, service);
        if !wanted.is_empty() {
            read = incidents::get(&mut *tx, r).await?;
            if let Some(i) = read.as_ref().filter(|i| !i.is_resolved()) {
                super::statuspage::add_missing(&mut tx, i, &wanted, now).await?;
            }
        }
    }
    if !store::first_notification(&mut tx, &batch.dedupe_key(), now).await? {
        // Keeps the refreshed "last seen" of the repeat.
        ctx.commit(tx).await?;
        return Ok(Ingested {
            duplicate: true,
            ..Ingested::default()
        });
    }
    let source = batch.source;

    // One alert per fingerprint: a sender listing one twice means it once (the last).
    let mut by_fingerprint: HashMap<&str, &Alert> = HashMap::new();
    for a in &batch.alerts {
        by_fingerprint.insert(a.fingerprint.as_str(), a);
    }
    let mut alerts: Vec<&Alert> = by_fingerprint.into_values().collect();
    // Oldest first, then by labels: messages list them in an order people can follow.
    alerts.sort_by(|a, b| {
        (a.starts_at, &a.labels, &a.fingerprint).cmp(&(b.starts_at, &b.labels, &b.fingerprint))
    });

    // An alert seen resolved (fingerprint and start) and then "firing" again
    // for the same start is a stale, out-of-order delivery: it opens nothing.
    let resolved_keys: Vec<(&str, Millis)> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Resolved)
        .map(|a| (a.fingerprint.as_str(), a.starts_at))
        .collect();
    store::remember_resolved(&mut tx, source.as_str(), &resolved_keys, now).await?;
    let firing_keys: Vec<(&str, Millis)> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(|a| (a.fingerprint.as_str(), a.starts_at))
        .collect();
    let stale = store::seen_resolved(&mut tx, source.as_str(), &firing_keys).await?;
    alerts.retain(|a| {
        a.status == AlertStatus::Resolved
            || !stale.contains(&(a.fingerprint.clone(), a.starts_at.0))
    });
    let mut outcome = Ingested {
        stale: stale.len(),
        ..Ingested::default()
    };
    if !stale.is_empty() {
        tracing::info!(group = %batch.group_key, stale = stale.len(), "firing alerts already seen resolved (out of order); ignored");
    }

    // Whether this notification linked its group to the incident: then the
    // incident holds none of the group's alerts and no view of its size yet.
    let mut linked_now = false;
    let incident: Option<(Incident, bool)> = match existing {
        Some(r) => match read {
            Some(i) => Some((i, false)),
            None => incidents::get(&mut *tx, r).await?.map(|i| (i, false)),
        },
        // Nothing fires (all resolved, all stale, or no alert at all): nothing opens.
        None if !alerts.iter().any(|a| a.status == AlertStatus::Firing) => None,
        None => {
            let cap = i64::from(route.max_new_incidents_per_minute.get());
            let load = incidents::route_load(
                &mut *tx,
                &route.name,
                &storm_route(route),
                now.minus(std::time::Duration::from_secs(60)),
            )
            .await?;
            let severity = severity_of(route, &labels, &alerts);
            let (incident, folded, new) = if load.opened_since >= cap {
                let (incident, new) = match load.storm {
                    Some(storm) => (storm, false),
                    None => (
                        open_storm_incident(ctx, &mut tx, batch, route, severity, now).await?,
                        true,
                    ),
                };
                (incident, true, new)
            } else {
                let incident =
                    open_for_group(ctx, &mut tx, batch, route, &group_id, severity, now).await?;
                (incident, false, true)
            };
            linked_now = store::link_group(
                &mut *tx,
                &GroupLink {
                    group_id: &group_id,
                    incident: incident.reference,
                    source: source.as_str(),
                    route: &route.name,
                    title: &batch.title(),
                    labels: &json!(batch.group_labels),
                    announced: !folded,
                    // Nothing held yet, so no late resolution either.
                    view: view_of(batch, &alerts, 0),
                },
                now,
            )
            .await?;
            if folded {
                let digest = StormDigest {
                    incident: incident.reference.number(),
                };
                jobs::enqueue(&mut tx, &digest, now.plus(DIGEST_DELAY), now).await?;
            }
            outcome.opened = !folded;
            outcome.folded = folded;
            Some((incident, new))
        }
    };
    let Some((incident, new_thread)) = incident else {
        ctx.commit(tx).await?;
        count_stale(ctx, source, stale.len());
        return Ok(outcome);
    };
    let r = incident.reference;
    outcome.incident = Some(r);

    // Store what changed, whole; sort what the thread should hear about.
    let held = if linked_now {
        HashMap::new()
    } else {
        store::held(&mut tx, r, &group_id).await?
    };
    let mut fired = Vec::new();
    let mut resolved = Vec::new();
    let mut changed = Vec::new();
    // A resolution of an earlier firing of an alert that fires again since
    // (delivered late: HA peers, retries) changes nothing: it still fires.
    let mut late_resolutions = 0u64;
    for a in &alerts {
        let before = held.get(&a.fingerprint);
        if a.status == AlertStatus::Resolved
            && before.is_some_and(|h| h.status == AlertStatus::Firing && h.starts_at > a.starts_at)
        {
            late_resolutions += 1;
            continue;
        }
        match (before.map(|h| h.status), a.status) {
            (None | Some(AlertStatus::Resolved), AlertStatus::Firing) => fired.push(*a),
            (Some(AlertStatus::Firing), AlertStatus::Resolved) => resolved.push(*a),
            _ => {}
        }
        if before.is_none_or(|h| h.status != a.status || h.starts_at != a.starts_at) {
            changed.push(*a);
        }
    }
    store::upsert(&mut tx, r, &group_id, &changed, now).await?;
    let view = view_of(batch, &alerts, late_resolutions);
    // A group linked just now was linked with this view (`link_group`).
    let before = if linked_now {
        None
    } else {
        store::set_group_view(&mut tx, &group_id, r, view).await?
    };
    if view.clear() {
        // The whole group, listed in full, fires no more: anything Klaxon
        // still holds as firing resolved unlisted.
        store::resolve_held_firing(&mut tx, r, &group_id, now).await?;
    }
    // Alertmanager's API can count what `max_alerts` left out.
    let can_ask = source == IncidentSource::Alertmanager && ctx.alertmanager.is_some();
    let check = |announce: bool| CheckGroup {
        incident: r.number(),
        group_id: group_id.clone(),
        matchers: batch.group_labels.clone(),
        receiver: batch.receiver.clone(),
        resolved: len(&resolved),
        announce,
    };
    let thread = ctx.thread();
    // A firing alert of a higher severity than the incident's raises it.
    let mut incident = incident;
    if !new_thread {
        let highest = fired.iter().map(|a| route.severity_for(&a.labels)).min();
        if let Some(severity) = highest.filter(|s| *s < incident.severity) {
            incident = raise(ctx, &mut tx, &incident, route, severity, now).await?;
        }
    }
    let left_out = if view.truncated == 0 {
        String::new()
    } else {
        format!(
            " ({} listed {} and left out {} more of the group)",
            source.label(),
            group_thousands(view.listed),
            group_thousands(view.truncated)
        )
    };
    for (kind, verb, which) in [
        (EventKind::AlertFired, "fired", &fired),
        (EventKind::AlertResolved, "resolved", &resolved),
    ] {
        if which.is_empty() {
            continue;
        }
        let text = format!(
            "{} {verb}: {}{left_out}",
            plural(len(which), "alert", "alerts"),
            names_of(which)
        );
        thread
            .record(&mut tx, &incident, Entry::new(kind, text), now)
            .await?;
    }
    if new_thread {
        // The root message carries the alerts: no first reply is needed.
        thread.post_root(&mut tx, &incident, now).await?;
        if view.truncated > 0 && can_ask {
            // Exact numbers for the root.
            jobs::enqueue(&mut tx, &check(false), now, now).await?;
        }
    } else if !outcome.folded || !resolved.is_empty() {
        let counts = store::counts(&mut tx, r).await?;
        let numbers_changed = before.is_some_and(|b| {
            b.listed_firing != view.listed_firing || b.truncated != view.truncated
        });
        if route.auto_resolve && view.clear() && counts.firing_total() == 0 {
            // One reply: the resolution summary, naming what resolved.
            let resolution = Resolution {
                root_cause: None,
                resolution: Some(format!("every alert resolved ({})", source.label())),
                follow_up: None,
            };
            outcome.resolved = open_close::resolve_in(ctx, &mut tx, None, r, &resolution, now)
                .await?
                .is_some();
        } else if view.listed_firing == 0 && view.truncated > 0 && can_ask {
            // Every listed alert resolved, but Alertmanager left some out
            // (`max_alerts`): ask it whether they still fire before resolving,
            // or before saying how many do.
            jobs::enqueue(&mut tx, &check(true), now, now).await?;
        } else if !fired.is_empty() || !resolved.is_empty() || numbers_changed {
            let standing = standing(source, &counts, Vec::new(), can_ask);
            let reply = change_reply(ctx, &incident, &fired, &resolved, &standing, view)?;
            thread
                .reply(&mut tx, &incident, blocks::text_message(&reply), now)
                .await?;
            thread.refresh_root(&mut tx, &incident, now).await?;
            if view.truncated > 0 && can_ask {
                jobs::enqueue(&mut tx, &check(false), now, now).await?;
            }
        }
    }
    ctx.commit(tx).await?;
    count_stale(ctx, source, stale.len());
    if outcome.opened {
        open_close::count_opened(ctx, source);
    }
    Ok(outcome)
}

/// Raises an open incident to `severity` because an alert of that severity
/// fired: the thread says so, and paging follows the new severity's ladder.
async fn raise(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    route: &Route,
    severity: Severity,
    now: Millis,
) -> Result<Incident> {
    let previous = incident.severity;
    if incident.is_resolved() {
        return Ok(incident.clone());
    }
    let Some(current) =
        incidents::set_severity(&mut **tx, incident.reference, severity, now).await?
    else {
        return Ok(incident.clone());
    };
    super::statuspage::track(tx, current.reference, now).await?;
    let text = format!(
        "⚠️ {} raised from *{previous}* to *{severity}*: a {severity} alert fired ({}; respond within {}).",
        current.reference,
        severity.description(),
        severity.response_target()
    );
    ctx.thread()
        .post_and_refresh(
            tx,
            &current,
            Entry::new(
                EventKind::SeverityChanged,
                format!(
                    "raised the severity from {previous} to {severity}: a {severity} alert fired"
                ),
            ),
            &text,
            now,
        )
        .await?;
    open_close::switch_ladder(
        tx,
        &current,
        ladder_of(ctx, route, severity).as_deref(),
        now,
    )
    .await?;
    super::reminders::arm(ctx, tx, &current, now).await?;
    Ok(current)
}

/// Counts stale firing alerts (call after the commit).
fn count_stale(ctx: &Ctx, source: IncidentSource, stale: usize) {
    if stale > 0 {
        ctx.metrics
            .alerts_stale
            .get_or_create(&SourceLabels {
                source: source.as_str().into(),
            })
            .inc_by(u64::try_from(stale).unwrap_or(0));
    }
}

fn len<T>(v: &[T]) -> u64 {
    u64::try_from(v.len()).unwrap_or(u64::MAX)
}

/// The one reply of a notification in which alerts joined or resolved while
/// others still fire: what fired, what resolved, where the incident stands.
fn change_reply(
    ctx: &Ctx,
    incident: &Incident,
    fired: &[&Alert],
    resolved: &[&Alert],
    standing: &AlertsShown,
    view: GroupView,
) -> Result<String> {
    let views = |alerts: &[&Alert]| alert_views(alerts, SHOWN_IN_REPLY);
    let mut parts = Vec::new();
    if !fired.is_empty() {
        parts.push(ctx.render(
            TemplateName::AlertFiring,
            &alerts_data(
                incident,
                len(fired),
                &views(fired),
                standing,
                resolved.is_empty(),
            ),
        )?);
    }
    if !resolved.is_empty() {
        parts.push(ctx.render(
            TemplateName::AlertResolved,
            &alerts_data(incident, len(resolved), &views(resolved), standing, true),
        )?);
    }
    if parts.is_empty() {
        // Only the numbers moved, behind what the sender lists.
        parts.push(format!(
            "🔥 {} now lists {} firing and leaves out {} more of this group ({}).",
            standing.source,
            plural(view.listed_firing, "alert", "alerts"),
            group_thousands(view.truncated),
            standing.hint
        ));
    }
    Ok(parts.join("\n"))
}

/// After a notification that left alerts out (`max_alerts`), asks
/// Alertmanager's API how many alerts of the group fire, so the counts Klaxon
/// shows are exact. When the notification listed only resolved alerts
/// (`announce`), the thread hears the answer: none fires → the incident
/// resolves; some do → how many.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckGroup {
    pub incident: i64,
    pub group_id: String,
    /// The group's labels: every alert of the group carries them.
    pub matchers: BTreeMap<String, String>,
    /// The receiver that sent the notification.
    pub receiver: String,
    /// How many alerts the notification listed as newly resolved.
    pub resolved: u64,
    /// Whether the thread waits for the answer (else only the root changes).
    #[serde(default = "announce_by_default")]
    pub announce: bool,
}

/// Jobs queued before `announce` existed were all announcing.
fn announce_by_default() -> bool {
    true
}

/// After this many failed attempts the thread says Klaxon could not ask.
const CHECK_ATTEMPTS: u32 = 5;

impl Job for CheckGroup {
    const KIND: &'static str = "check_alert_group";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "check_alert_group:{}:{}:{}",
            self.incident, self.group_id, self.announce
        ))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let Some(api) = ctx.alertmanager.clone() else {
            return Ok(());
        };
        let active = match api.active_alerts(&self.matchers, &self.receiver).await {
            Ok(n) => Some(n),
            Err(e) if run.attempts < CHECK_ATTEMPTS => {
                return Err(JobError::Retry {
                    reason: e,
                    after: None,
                });
            }
            Err(e) => {
                tracing::warn!(incident = %r, error = %e, "could not ask Alertmanager which alerts still fire");
                None
            }
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = ctx.clock.now();
        let Some(incident) = incidents::get(&mut *tx, r).await? else {
            return Ok(());
        };
        if incident.is_resolved() || (active.is_none() && !self.announce) {
            ctx.commit_job(&run, tx).await?;
            return Ok(());
        }
        if let Some(active) = active {
            store::set_group_active(&mut tx, &self.group_id, r, active).await?;
            if active == 0 {
                store::resolve_held_firing(&mut tx, r, &self.group_id, now).await?;
            }
        }
        let counts = store::counts(&mut tx, r).await?;
        let route_auto_resolve = store::route_of(&mut *tx, &self.group_id, r)
            .await?
            .and_then(|name| {
                ctx.settings
                    .alerts
                    .routes
                    .routes()
                    .iter()
                    .find(|route| route.name == name)
                    .map(|route| route.auto_resolve)
            })
            .unwrap_or(true);
        let thread = ctx.thread();
        if !self.announce {
            thread.refresh_root(&mut tx, &incident, now).await?;
        } else if active == Some(0) && counts.firing_total() == 0 && route_auto_resolve {
            let resolution = Resolution {
                root_cause: None,
                resolution: Some(
                    "every alert resolved (Alertmanager; it listed only some of them, so Klaxon asked its API)"
                        .into(),
                ),
                follow_up: None,
            };
            open_close::resolve_in(&ctx, &mut tx, None, r, &resolution, now).await?;
        } else {
            let hint = IncidentSource::Alertmanager.truncation_hint();
            let text = match active {
                Some(active) => format!(
                    "✅ *{}* · {} of this group {} (Alertmanager's count: its notification listed only some of them, {hint}).",
                    plural(
                        self.resolved,
                        "listed alert resolved",
                        "listed alerts resolved"
                    ),
                    group_thousands(active),
                    if active == 1 {
                        "still fires"
                    } else {
                        "still fire"
                    },
                ),
                None => format!(
                    "✅ *{}*. Alertmanager listed only some of this group's alerts ({hint}) and did not answer when Klaxon asked which still fire, so {r} stays open: resolve it by hand when they are gone.",
                    plural(
                        self.resolved,
                        "listed alert resolved",
                        "listed alerts resolved"
                    ),
                ),
            };
            thread
                .reply(&mut tx, &incident, blocks::text_message(&text), now)
                .await?;
            thread.refresh_root(&mut tx, &incident, now).await?;
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// Where a route's new incident goes: its channel and ladder, for `severity`.
fn placement(ctx: &Ctx, route: &Route, severity: Severity) -> Result<(ChannelId, Option<String>)> {
    let settings = &ctx.settings;
    let channel = route
        .channel
        .clone()
        .or_else(|| settings.slack.incident_channel.clone())
        .ok_or_else(|| Error::NoChannel(route.name.clone()))?;
    Ok((channel, ladder_of(ctx, route, severity)))
}

/// The ladder an alert incident of `severity` on `route` follows: the route's
/// own, else the one configured for the severity.
fn ladder_of(ctx: &Ctx, route: &Route, severity: Severity) -> Option<String> {
    route.ladder.clone().or_else(|| {
        ctx.settings
            .escalation
            .ladder_for(severity)
            .map(|l| l.name.clone())
    })
}

/// The severity of some alerts: the highest any of the firing ones names (a
/// group mixing `critical` and `warning` is critical, though Alertmanager's
/// `commonLabels` then has no severity), else what the group's labels say.
fn severity_of(route: &Route, labels: &BTreeMap<String, String>, alerts: &[&Alert]) -> Severity {
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(|a| route.severity_for(&a.labels))
        .min()
        .unwrap_or_else(|| route.severity_for(labels))
}

/// Opens the incident for a new alert group.
async fn open_for_group(
    ctx: &Ctx,
    tx: &mut Tx,
    batch: &AlertBatch,
    route: &Route,
    group_id: &str,
    severity: Severity,
    now: Millis,
) -> Result<Incident> {
    let (channel, ladder) = placement(ctx, route, severity)?;
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
    let service = route
        .service_for(&batch.common_labels)
        .or_else(|| route.service_for(&batch.group_labels));
    let components = ctx.settings.status.for_alerts(&route.name, service);
    super::statuspage::attach(tx, &incident, &components).await?;
    Ok(incident)
}

/// The route's open alert-storm incident, opened if there is none (`true`: just opened).
/// The `alert_route` of a route's storm incident (its own opens count
/// towards the cap under the route's name; the storm's do not).
fn storm_route(route: &Route) -> String {
    format!("storm:{}", route.name)
}

/// Opens the incident further new groups of a storming route fold into.
async fn open_storm_incident(
    ctx: &Ctx,
    tx: &mut Tx,
    batch: &AlertBatch,
    route: &Route,
    severity: Severity,
    now: Millis,
) -> Result<Incident> {
    let (channel, ladder) = placement(ctx, route, severity)?;
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
    store::set_alert_route(&mut **tx, incident.reference, &storm_route(route), None).await?;
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
            "🌩 *{} folded into this storm* ({} in all){}",
            plural(len(&titles), "alert group", "alert groups"),
            group_thousands(u64::try_from(total).unwrap_or(0)),
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
                    format!(
                        "{} folded into the storm",
                        plural(len(chunk), "alert group", "alert groups")
                    ),
                ),
                &lines.join("\n"),
                now,
            )
            .await?;
    }
    // The root's counts include the groups just folded in.
    thread.refresh_root(tx, &incident, now).await?;
    Ok(())
}
