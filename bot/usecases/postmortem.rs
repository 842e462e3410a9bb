//! The postmortem skeleton: `/incident postmortem [INC-n]`, the button on
//! the resolution summary, the HTTP download, and the reminder when none was
//! produced.
//!
//! Runbook 004 asks for a postmortem within 24–48 hours (root cause, action
//! items); runbook 002 lists the evidence to keep (timestamps, commands run,
//! outcomes). Klaxon has all of that: [`document`] renders it through the
//! `postmortem.md` template (teams may override it) into Markdown, shared in
//! the thread (or the room) as a file and served at
//! `/incidents/INC-n/postmortem.md`. A job due `incidents.postmortem_due`
//! after a resolution reminds the owner if none was produced by then.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::thread::Entry;
use super::{Answer, Ctx, Result};
use crate::alerts::AlertStatus;
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::outbox::FilePayload;
use crate::store::{Tx, actions, alerts, followups, incidents, pages, roles};
use crate::templates::{DocumentName, slack_escape};
use crate::time::{Millis, human_duration};

/// Alerts the postmortem lists by name and labels; it counts the rest.
const ALERTS_LISTED: i64 = 50;

/// Reminds the owner when a resolved incident has no postmortem yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Due {
    pub incident: i64,
}

/// The file name of an incident's postmortem.
pub fn file_name(r: IncidentRef) -> String {
    format!("{r}-postmortem.md")
}

/// Produces the postmortem of `r` and shares it where the incident is told;
/// `actor`: who asked.
pub async fn produce(ctx: &Ctx, actor: &SlackUserId, r: IncidentRef) -> Result<Answer> {
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    // The write first (see `crate::store`): the incident's row, as every change.
    incidents::set_postmortem_at(&mut *tx, r, now).await?;
    let Some(incident) = incidents::get(&mut *tx, r).await? else {
        tx.rollback().await?;
        return Ok(Answer::Refused(format!("{r} does not exist.")));
    };
    let thread = ctx.thread();
    thread
        .record(
            &mut tx,
            &incident,
            Entry::new(EventKind::Postmortem, "produced the postmortem draft").by(actor),
            now,
        )
        .await?;
    let content = document(ctx, &mut tx, &incident, now).await?;
    let draft = if incident.is_resolved() {
        "draft"
    } else {
        "draft so far (the incident is still open)"
    };
    thread
        .share_file(
            &mut tx,
            &incident,
            FilePayload {
                filename: file_name(r),
                title: format!("Postmortem {draft}: {r} {}", incident.title),
                content,
                initial_comment: Some(format!(
                    "📝 Postmortem {draft} for {r}, asked for by <@{actor}>: the record is filled in; \
                     root cause, contributing factors and action items are yours to write."
                )),
                in_thread: true,
            },
            now,
        )
        .await?;
    ctx.commit(tx).await?;
    let place = match incident.live_room() {
        Some(room) => format!("<#{}>", room.channel),
        None => format!("the thread in <#{}>", incident.channel),
    };
    Ok(Answer::Done(format!(
        "📝 The postmortem {draft} of {r} is on its way to {place} as `{}`.",
        file_name(r)
    )))
}

/// Schedules the reminder for a postmortem after `incident` resolved.
pub async fn remind_later(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    if let Some(due) = ctx.settings.incidents.postmortem_due(incident.severity) {
        let job = Due {
            incident: incident.reference.number(),
        };
        jobs::cancel(&mut **tx, &job).await?;
        jobs::enqueue(tx, &job, now.plus(due), now).await?;
    }
    Ok(())
}

/// `@U…` for a person in a document (a file shows no Slack mention).
fn who(u: Option<&SlackUserId>) -> String {
    u.map(|u| format!("@{u}"))
        .unwrap_or_else(|| "Klaxon".into())
}

/// The postmortem of `incident` as Markdown, rendered at `now`.
pub async fn document(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<String> {
    let data = data(tx, incident, now).await?;
    Ok(ctx
        .templates
        .render_document(DocumentName::Postmortem, &data)?)
}

/// The postmortem template's data (README "Big incidents" lists the fields).
pub async fn data(tx: &mut Tx, i: &Incident, now: Millis) -> Result<Value> {
    let r = i.reference;
    let none = || "—".to_string();
    let timeline = incidents::timeline(&mut **tx, r).await?;
    let held = roles::of_incident(&mut **tx, r).await?;
    let paged = pages::people_paged(&mut **tx, r).await?;
    let requests = actions::of_incident(&mut **tx, r).await?;
    let items = followups::of_incident(&mut **tx, r).await?;

    // People, each with everything they were.
    let mut people: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut note = |u: Option<&SlackUserId>, what: &str| {
        if let Some(u) = u {
            let list = people.entry(who(Some(u))).or_default();
            if !list.iter().any(|w| w == what) {
                list.push(what.to_string());
            }
        }
    };
    note(i.opened_by.as_ref(), "declared it");
    note(i.owner.as_ref(), "owner");
    note(i.acknowledged_by.as_ref(), "acknowledged");
    note(i.resolved_by.as_ref(), "resolved it");
    for (role, u) in &held {
        note(Some(u), role.as_str());
    }
    for u in &paged {
        note(Some(u), "paged");
    }
    for e in &timeline {
        note(e.actor.as_ref(), "took part");
    }
    let people: Vec<Value> = people
        .into_iter()
        .map(|(name, what)| json!({"name": name, "what": what.join(", ")}))
        .collect();

    let events: Vec<Value> = timeline
        .iter()
        .map(|e| {
            let text = match &e.subject {
                Some(s) => format!("{} @{s}", e.text),
                None => e.text.clone(),
            };
            json!({
                "time": e.at.date_time_seconds_utc(),
                "who": who(e.actor.as_ref()),
                "text": text.replace('|', "\\|").replace('\n', " "),
                "kind": e.kind.as_str(),
            })
        })
        .collect();
    let status_updates: Vec<Value> = timeline
        .iter()
        .filter(|e| e.kind == EventKind::StatusUpdate)
        .map(|e| {
            json!({
                "time": e.at.date_time_seconds_utc(),
                "who": who(e.actor.as_ref()),
                "text": e.text.strip_prefix("status update: ").unwrap_or(&e.text),
            })
        })
        .collect();
    // Each request's outcome is the first timeline line about its action
    // that ends a run ("succeeded …", "failed …") not taken by an earlier request.
    let mut taken = vec![false; timeline.len()];
    let actions: Vec<Value> = requests
        .iter()
        .map(|q| {
            let since = q.started_at.unwrap_or(Millis(0));
            let outcome = timeline.iter().enumerate().find_map(|(n, e)| {
                let ends = ["succeeded ", "failed ", "timed out ", "was interrupted "]
                    .iter()
                    .any(|verb| e.text.starts_with(&format!("{verb}{}", q.action)));
                (e.kind == EventKind::Action && ends && e.at >= since && !taken[n]).then(|| {
                    taken[n] = true;
                    e.text.replace('|', "\\|").replace('\n', " ")
                })
            });
            json!({
                "time": q.started_at.map(|t| t.date_time_seconds_utc()).unwrap_or_else(none),
                "action": q.action,
                "params": (q.params != "{}" && !q.params.is_empty()).then(|| q.params.clone()),
                "requested_by": who(SlackUserId::parse(&q.requested_by).as_ref()),
                "approved_by": q.decided_by.as_deref().and_then(SlackUserId::parse).map(|u| who(Some(&u))).unwrap_or_else(none),
                "state": q.state.as_str(),
                "outcome": outcome,
            })
        })
        .collect();

    let mut listed = Vec::new();
    let mut more = 0u64;
    if i.source.is_alerts() {
        let counts = alerts::counts(tx, r).await?;
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            for a in alerts::list(tx, r, status, ALERTS_LISTED).await? {
                let view = crate::templates::alert_view(&a);
                let shown = if status == AlertStatus::Firing && i.is_resolved() {
                    "still firing at the resolution"
                } else {
                    status.as_str()
                };
                listed.push(json!({
                    "name": a.name(),
                    "status": shown,
                    "since": a.starts_at.date_time_utc(),
                    "labels": view.get("labels").cloned().unwrap_or(Value::Null),
                    "summary": view.get("summary").cloned().unwrap_or(Value::Null),
                    "links": view.get("links").cloned().unwrap_or(json!([])),
                }));
            }
        }
        more = counts
            .total
            .saturating_sub(u64::try_from(listed.len()).unwrap_or(0));
    }
    let at = |m: Option<Millis>| m.map(|m| m.date_time_seconds_utc()).unwrap_or_else(none);
    Ok(json!({
        "ref": r.to_string(),
        "title": i.title,
        "severity": i.severity.as_str(),
        "severity_description": i.severity.description(),
        "status": i.state.label(),
        "source": i.source.label(),
        "opened_at": i.opened_at.date_time_seconds_utc(),
        "acknowledged_at": at(i.acknowledged_at),
        "resolved_at": at(i.resolved_at),
        "duration": i.time_to_resolve().map(human_duration).unwrap_or_else(|| format!("{} so far", human_duration(now.since(i.opened_at)))),
        "mtta": i.time_to_acknowledge().map(human_duration).unwrap_or_else(|| "not acknowledged".into()),
        "mttr": i.time_to_resolve().map(human_duration).unwrap_or_else(none),
        "impact": i.severity.description(),
        "root_cause": i.root_cause.clone().unwrap_or_else(|| "TODO".into()),
        "resolution": i.resolution.clone().unwrap_or_else(|| "TODO".into()),
        "follow_up": i.follow_up.clone().unwrap_or_else(none),
        "channel": i.room.as_ref().map(|room| if room.name.is_empty() { room.channel.to_string() } else { format!("#{}", room.name) }),
        "generated_at": now.date_time_utc(),
        "people": people,
        "roles": held.iter().map(|(role, u)| json!({"title": role.as_str(), "user": who(Some(u))})).collect::<Vec<_>>(),
        "timeline": events,
        "alerts": listed,
        "alerts_more": more,
        "actions": actions,
        "status_updates": status_updates,
        "followups": items.iter().map(|f| json!({
            "id": f.number,
            "text": f.text.replace('|', "\\|"),
            "owner": f.owner.as_ref().map(|o| who(Some(o))),
            "tracker_ref": f.tracker_ref,
        })).collect::<Vec<_>>(),
    }))
}

impl Job for Due {
    const KIND: &'static str = "postmortem_due";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("postmortem-due:{}", self.incident))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        if let Some(incident) = incidents::get(&mut *tx, r).await?
            && let Some(resolved_at) = incident.resolved_at
            && incident.postmortem_at.is_none_or(|p| p < resolved_at)
        {
            let nudged = incident
                .owner
                .clone()
                .or_else(|| incident.resolved_by.clone())
                .or_else(|| incident.opened_by.clone());
            let whom = nudged
                .as_ref()
                .map(|u| format!("<@{u}>, "))
                .unwrap_or_default();
            let text = format!(
                "📝 {r} was resolved {} ago and has no postmortem yet (runbook: within 24–48 hours). \
                 {whom}`/incident postmortem {r}` drafts one from the record.",
                human_duration(now.since(resolved_at))
            );
            let thread = ctx.thread();
            thread
                .post(
                    &mut tx,
                    &incident,
                    Entry::new(
                        EventKind::Postmortem,
                        "reminded that no postmortem was produced",
                    )
                    .about(nudged.as_ref()),
                    &text,
                    now,
                )
                .await?;
            if let Some(u) = &nudged {
                thread
                    .dm(
                        &mut tx,
                        &incident,
                        u,
                        &format!(
                            "📝 {r} ({}) has no postmortem yet. `/incident postmortem {r}` drafts one from the record.",
                            slack_escape(&incident.title)
                        ),
                        now,
                    )
                    .await?;
            }
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}
