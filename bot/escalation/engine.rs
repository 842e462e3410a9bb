//! The escalation step: one durable job per ladder step.
//!
//! When a step's job runs it re-checks the incident first: one acknowledged or
//! resolved a moment ago is not paged. Otherwise it works out who the level
//! means right now (schedules resolve to whoever is on call), posts the page in
//! the thread, direct-messages each person with an Acknowledge button, records
//! the pages, and enqueues the next step at this step's due time plus the
//! level's wait — all in the job's transaction. A level with nobody to page
//! never swallows the page: the thread says why and the next level runs at once.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ladder, Target};
use crate::incident::service::{IncidentService, ServiceError};
use crate::incident::{EventKind, Incident, IncidentRef, IncidentState, SlackUserId};
use crate::slack::blocks;
use crate::store::jobs::NewJob;
use crate::store::outbox::{self, MessageKind, NewMessage};
use crate::store::{Tx, incidents, pages};
use crate::templates::{PageFacts, TemplateName, page_data};
use crate::time::Millis;

/// The job kind of an escalation step.
pub const KIND: &str = "escalate";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub incident: i64,
    pub step: u32,
    /// Escalated by hand: pages even an acknowledged incident, and schedules no next step.
    #[serde(default)]
    pub forced: bool,
}

/// The job that pages step `step` of the incident's ladder at `run_at`.
pub fn job(incident: IncidentRef, step: u32, run_at: Millis) -> NewJob<'static> {
    NewJob {
        kind: KIND,
        payload: json!({"incident": incident.number(), "step": step}),
        incident: Some(incident),
        dedupe_key: Some(format!("escalate:{}:{step}", incident.number())),
        run_at,
    }
}

/// A one-off step paged by `/incident escalate` on an acknowledged incident.
pub fn job_forced(incident: IncidentRef, step: u32, run_at: Millis) -> NewJob<'static> {
    NewJob {
        kind: KIND,
        payload: json!({"incident": incident.number(), "step": step, "forced": true}),
        incident: Some(incident),
        dedupe_key: Some(format!("escalate:{}:{step}:forced", incident.number())),
        run_at,
    }
}

/// A level that was paged, for the metrics once the transaction commits.
#[derive(Debug, Clone)]
pub struct Paged {
    pub level: String,
    pub people: usize,
}

/// Who a level means right now, and why nobody if nobody.
struct Recipients {
    users: Vec<SlackUserId>,
    groups: Vec<String>,
    gaps: Vec<String>,
}

fn recipients(service: &IncidentService, targets: &[Target], now: Millis) -> Recipients {
    let at = jiff::Timestamp::from_millisecond(now.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut r = Recipients {
        users: Vec::new(),
        groups: Vec::new(),
        gaps: Vec::new(),
    };
    for t in targets {
        match t {
            Target::User(u) => r.users.push(u.clone()),
            Target::Group(g) => r.groups.push(g.clone()),
            Target::Schedule(name) => {
                match service
                    .escalation()
                    .schedules
                    .get(name)
                    .and_then(|s| s.on_call(at))
                {
                    Some(on_call) => r.users.push(on_call.user),
                    None => r.gaps.push(format!("schedule `{name}` has nobody on call")),
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    r.users.retain(|u| seen.insert(u.clone()));
    r
}

/// Runs one step inside the job's transaction.
pub async fn run(
    service: &IncidentService,
    tx: &mut Tx,
    payload: &str,
    due: Millis,
    now: Millis,
) -> Result<Option<Paged>, ServiceError> {
    let Ok(Step {
        incident,
        step,
        forced,
    }) = serde_json::from_str::<Step>(payload)
    else {
        tracing::error!(
            payload,
            "escalation job with an unreadable payload; dropped"
        );
        return Ok(None);
    };
    let Some(r) = IncidentRef::new(incident) else {
        return Ok(None);
    };
    let Some(current) = incidents::get(&mut **tx, r).await? else {
        return Ok(None);
    };
    let pageable = current.state == IncidentState::Open
        || (forced && current.state == IncidentState::Acknowledged);
    if !pageable {
        tracing::info!(incident = %r, step, state = current.state.as_str(), "not paging: no longer open");
        return Ok(None);
    }
    if current.escalation_step.is_some_and(|done| done >= step) {
        tracing::info!(incident = %r, step, "not paging: this step was already paged");
        return Ok(None);
    }
    let ladder: Option<&Ladder> = current
        .ladder
        .as_deref()
        .and_then(|name| service.escalation().ladder(name));
    let Some(ladder) = ladder else {
        tracing::warn!(incident = %r, ladder = ?current.ladder, "not paging: the ladder is not configured any more");
        return Ok(None);
    };
    page_from(service, tx, &current, ladder, step, due, now).await
}

/// Pages `step`, or the first later step that has somebody to page.
async fn page_from(
    service: &IncidentService,
    tx: &mut Tx,
    incident: &Incident,
    ladder: &Ladder,
    mut step: u32,
    due: Millis,
    now: Millis,
) -> Result<Option<Paged>, ServiceError> {
    let r = incident.reference;
    loop {
        let Some(level) = ladder.level(step) else {
            let text = format!(
                "🔕 Nobody has acknowledged {r} after the whole *{}* ladder ({} level(s), {} time(s)). \
                 Type `/incident escalate` to page again, or `/incident ack` when someone is on it.",
                ladder.name,
                ladder.levels.len(),
                ladder.repeat
            );
            service
                .post_event(
                    tx,
                    incident,
                    EventKind::Escalated,
                    None,
                    "the ladder ran out without an acknowledgement",
                    &text,
                    now,
                )
                .await?;
            incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
            return Ok(None);
        };
        let who = recipients(service, &level.targets, now);
        if who.users.is_empty() && who.groups.is_empty() {
            let why = if who.gaps.is_empty() {
                "no targets".to_string()
            } else {
                who.gaps.join("; ")
            };
            let text = format!(
                "⚠️ *{}* has nobody to page for {r} ({why}); escalating to the next level now.",
                level.name
            );
            service
                .post_event(
                    tx,
                    incident,
                    EventKind::Escalated,
                    None,
                    &format!("{} had nobody to page ({why})", level.name),
                    &text,
                    now,
                )
                .await?;
            incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
            step += 1;
            continue;
        }

        let next_level = ladder.level(step + 1).map(|l| l.name.as_str());
        let facts = PageFacts {
            level: &level.name,
            users: who.users.clone(),
            groups: who.groups.clone(),
            first: incident.escalation_step.is_none() && step == 0,
            unacknowledged_for: now.since(incident.opened_at),
            wait: level.wait,
            next_level,
        };
        let data = page_data(incident, &facts);
        let thread_text = service
            .templates()
            .render(TemplateName::EscalationPage, &data)?;
        let dm_text = service.templates().render(TemplateName::PageDm, &data)?;
        let names: Vec<String> = who.users.iter().map(|u| format!("<@{u}>")).collect();
        service
            .post_event(
                tx,
                incident,
                EventKind::Escalated,
                who.users.first(),
                &match who.users.len() + who.groups.len() {
                    1 => format!("paged {}:", level.name),
                    n => format!("paged {} ({n} in all):", level.name),
                },
                &thread_text,
                now,
            )
            .await?;
        for user in &who.users {
            outbox::enqueue(
                &mut **tx,
                &NewMessage {
                    incident: Some(r),
                    kind: MessageKind::Direct,
                    channel: &incident.channel,
                    user: Some(user),
                    payload: blocks::page_dm(incident, &dm_text),
                    updates: None,
                },
                now,
            )
            .await?;
            pages::record(&mut **tx, r, step, &level.name, user, now).await?;
        }
        incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
        if incident.state == IncidentState::Open {
            crate::store::jobs::enqueue(&mut **tx, &job(r, step + 1, due.plus(level.wait)), now)
                .await?;
        }
        tracing::info!(incident = %r, step, level = %level.name, people = %names.join(" "), "paged");
        return Ok(Some(Paged {
            level: level.name.clone(),
            people: who.users.len() + who.groups.len(),
        }));
    }
}

/// Starts (or restarts) the ladder at `step` now, inside the caller's transaction.
pub async fn start(
    tx: &mut Tx,
    incident: IncidentRef,
    step: u32,
    now: Millis,
) -> Result<(), ServiceError> {
    crate::store::jobs::cancel_for_incident(&mut **tx, incident, KIND).await?;
    crate::store::jobs::enqueue(&mut **tx, &job(incident, step, now), now).await?;
    Ok(())
}
