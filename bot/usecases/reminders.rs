//! Reminders for incidents that went quiet: no status update for a while, or
//! an acknowledgement nobody follows up.
//!
//! - **Status-update reminders** ([`UpdateDue`]): an open or acknowledged
//!   incident with no status update for its severity's `update_every`
//!   (runbook 004: stakeholders are promised "updates every 30 minutes") gets
//!   one reminder in its thread naming the owner — or, when nobody owns it,
//!   the ladder's first-level people — once per interval, until it resolves.
//! - **Stale acknowledgements** ([`AckStale`]): an acknowledged incident with
//!   no status update, severity change or resolution for its severity's
//!   `ack_timeout` pages its owner again (a DM with the Acknowledge button);
//!   an acknowledgement or a status update answers it. If nobody answers
//!   within the wait of the level last paged, the incident is unacknowledged
//!   and its ladder resumes at the next level.
//!
//! Both are one durable job per incident that re-arms itself: it looks at the
//! timeline when it falls due, so updates need not move it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::thread::Entry;
use super::{Ctx, Result, escalate};
use crate::incident::{EventKind, Incident, IncidentRef, IncidentState, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::{Tx, incidents, maintenance};
use crate::templates::{PageFacts, TemplateName, page_data};
use crate::time::{Millis, human_duration};

/// How long the owner has to answer a re-page when the ladder names no wait.
const DEFAULT_ANSWER_WAIT: Duration = Duration::from_secs(5 * 60);

/// Arms the reminders of an incident that opened, or whose severity changed
/// (in the caller's transaction): each falls due after its severity's interval.
pub async fn arm(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    // Nothing to move when no severity has reminders (no statement spent).
    if ctx
        .settings
        .incidents
        .update_every
        .iter()
        .any(Option::is_some)
    {
        let update = UpdateDue {
            incident: incident.reference.number(),
        };
        jobs::cancel(&mut **tx, &update).await?;
        on_open(ctx, tx, incident, now).await?;
    }
    if incident.state == IncidentState::Acknowledged {
        arm_ack(ctx, tx, incident, now).await?;
    }
    Ok(())
}

/// Arms the status-update reminder of an incident just opened (in the
/// opening transaction: it has no reminder to replace yet).
pub async fn on_open(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    if let Some(every) = ctx.settings.incidents.update_every(incident.severity) {
        let update = UpdateDue {
            incident: incident.reference.number(),
        };
        jobs::enqueue(tx, &update, now.plus(every), now).await?;
    }
    Ok(())
}

/// Arms the stale-acknowledgement check of an incident just acknowledged
/// (nothing, not even a statement, when no severity has `ack_timeout`).
pub async fn arm_ack(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    let timeouts = &ctx.settings.incidents.ack_timeout;
    if timeouts.iter().all(Option::is_none) {
        return Ok(());
    }
    let job = AckStale::repage(incident.reference);
    jobs::cancel(&mut **tx, &job).await?;
    if let Some(timeout) = ctx.settings.incidents.ack_timeout(incident.severity) {
        jobs::enqueue(tx, &job, now.plus(timeout), now).await?;
    }
    Ok(())
}

/// The status-update reminder of one incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateDue {
    pub incident: i64,
}

impl Job for UpdateDue {
    const KIND: &'static str = "update_reminder";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("update-reminder:{}", self.incident))
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
            && !incident.is_resolved()
            && let Some(every) = ctx.settings.incidents.update_every(incident.severity)
        {
            let last = incidents::last_status_update(&mut *tx, r).await?;
            let since = last.unwrap_or(incident.opened_at);
            let due = since.plus(every);
            if let Some(end) = window_over(&mut tx, r, now).await? {
                // A maintenance window over its route: nobody is nagged until it ends.
                jobs::enqueue(&mut tx, &self, due.max(end), now).await?;
            } else if due > now {
                jobs::enqueue(&mut tx, &self, due, now).await?;
            } else {
                remind(&ctx, &mut tx, &incident, last, every, now).await?;
                jobs::enqueue(&mut tx, &self, now.plus(every), now).await?;
            }
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// When a maintenance window covers the route of the incident's alerts now:
/// the window's end.
async fn window_over(tx: &mut Tx, r: IncidentRef, now: Millis) -> Result<Option<Millis>> {
    Ok(maintenance::covering(&mut **tx, r, now)
        .await?
        .map(|w| w.ends_at))
}

/// Posts one status-update reminder in the thread.
async fn remind(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    last: Option<Millis>,
    every: Duration,
    now: Millis,
) -> Result<()> {
    let r = incident.reference;
    let quiet = match last {
        Some(t) => format!(
            "No status update on {r} for {}",
            human_duration(now.since(t))
        ),
        None => format!(
            "No status update on {r} since it opened {} ago",
            human_duration(now.since(incident.opened_at))
        ),
    };
    let promise = format!(
        "{} incidents promise one every {}",
        incident.severity,
        human_duration(every)
    );
    let who = match &incident.owner {
        Some(owner) => {
            format!("<@{owner}>, post one with `/incident status {r} <what is happening>`.")
        }
        None => {
            let people = escalate::first_level_people(ctx, incident, now);
            let names: Vec<String> = people.iter().map(|u| format!("<@{u}>")).collect();
            if names.is_empty() {
                format!(
                    "Nobody owns this incident: take it with `/incident ack {r}` and post a status update."
                )
            } else {
                format!(
                    "Nobody owns this incident: {}, take it with `/incident ack {r}` and post a status update.",
                    names.join(" ")
                )
            }
        }
    };
    ctx.thread()
        .post(
            tx,
            incident,
            Entry::new(
                EventKind::Reminder,
                format!(
                    "reminder: no status update for {}",
                    human_duration(now.since(last.unwrap_or(incident.opened_at)))
                ),
            )
            .about(incident.owner.as_ref()),
            &format!("⏰ {quiet} ({promise}). {who}"),
            now,
        )
        .await?;
    Ok(())
}

/// Which part of the stale-acknowledgement check is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPhase {
    /// Page the owner again if the acknowledgement went stale.
    Repage,
    /// The owner was paged again at `repaged_at`: resume the ladder if nobody answered.
    Resume,
}

/// The stale-acknowledgement check of one incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckStale {
    pub incident: i64,
    pub phase: AckPhase,
    /// When the owner was paged again (for [`AckPhase::Resume`]).
    #[serde(default)]
    pub repaged_at: Option<i64>,
}

impl AckStale {
    fn repage(r: IncidentRef) -> AckStale {
        AckStale {
            incident: r.number(),
            phase: AckPhase::Repage,
            repaged_at: None,
        }
    }
}

impl Job for AckStale {
    const KIND: &'static str = "ack_timeout";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("ack-timeout:{}", self.incident))
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
            && incident.state == IncidentState::Acknowledged
            && let Some(timeout) = ctx.settings.incidents.ack_timeout(incident.severity)
        {
            let attended = incidents::last_attention(&mut *tx, r)
                .await?
                .or(incident.acknowledged_at)
                .unwrap_or(incident.opened_at);
            let window = window_over(&mut tx, r, now).await?;
            match (self.phase, self.repaged_at.map(Millis), window) {
                // A maintenance window over its route pauses paging, re-pages too.
                (_, _, Some(end)) => {
                    jobs::enqueue(&mut tx, &self, end, now).await?;
                }
                (AckPhase::Resume, Some(repaged), None) if attended <= repaged => {
                    resume(&ctx, &mut tx, &incident, repaged, now).await?;
                }
                _ if attended.plus(timeout) > now => {
                    // Someone attended since: wait a whole timeout from then.
                    jobs::enqueue(&mut tx, &AckStale::repage(r), attended.plus(timeout), now)
                        .await?;
                }
                _ => {
                    let wait = repage(&ctx, &mut tx, &incident, attended, now).await?;
                    let next = AckStale {
                        incident: r.number(),
                        phase: AckPhase::Resume,
                        repaged_at: Some(now.0),
                    };
                    jobs::enqueue(&mut tx, &next, now.plus(wait), now).await?;
                }
            }
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// Pages the owner again; returns how long they have to answer.
async fn repage(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    attended: Millis,
    now: Millis,
) -> Result<Duration> {
    let r = incident.reference;
    let ladder = incident
        .ladder
        .as_deref()
        .and_then(|n| ctx.settings.escalation.ladder(n));
    let step = incident.escalation_step.unwrap_or(0);
    // The wait of the level last paged (the last level once the ladder ran out).
    let wait = ladder
        .and_then(|l| l.level(step).or(l.levels.last()))
        .map_or(DEFAULT_ANSWER_WAIT, |l| l.wait);
    let next_level = ladder
        .and_then(|l| l.level(incident.escalation_step.map_or(0, |s| s + 1)))
        .map(|l| l.name.clone());
    // Whoever acknowledged last said they are on it; else the owner.
    let owner: Option<SlackUserId> = incident
        .acknowledged_by
        .clone()
        .or_else(|| incident.owner.clone());
    let quiet = human_duration(now.since(attended));
    let then = match &next_level {
        Some(level) => format!(
            "If nobody answers within {} (`/incident ack {r}` or a status update), it is unacknowledged again and *{level}* is paged.",
            human_duration(wait)
        ),
        None => format!(
            "If nobody answers within {} (`/incident ack {r}` or a status update), it is unacknowledged again and the ladder starts over.",
            human_duration(wait)
        ),
    };
    let who = owner
        .as_ref()
        .map(|o| format!("<@{o}>"))
        .unwrap_or_else(|| "its owner".into());
    ctx.thread()
        .post_page(
            tx,
            incident,
            Entry::new(
                EventKind::Repaged,
                format!("paged whoever acknowledged it again: no update for {quiet}"),
            )
            .about(owner.as_ref()),
            &format!(
                "🔔 {r} was acknowledged but has had no status update, severity change or resolution for {quiet}; paging {who} again. {then}"
            ),
            now,
        )
        .await?;
    if let Some(owner) = &owner {
        let facts = PageFacts {
            level: "the person who acknowledged it",
            users: vec![owner.clone()],
            groups: Vec::new(),
            first: false,
            unacknowledged_for: now.since(attended),
            wait,
            next_level: next_level.as_deref(),
            after_empty: None,
            by_hand: false,
        };
        let mut dm = ctx.render(TemplateName::PageDm, &page_data(incident, &facts))?;
        dm.insert_str(
            0,
            &format!(
                "🔔 You acknowledged {r}, and it has had no update for {quiet}. Still on it? Press Acknowledge or post a status update.\n"
            ),
        );
        ctx.thread().page_dm(tx, incident, owner, &dm, now).await?;
    }
    tracing::info!(incident = %r, quiet = %quiet, "acknowledgement stale; owner paged again");
    Ok(wait)
}

/// Nobody answered the re-page: unacknowledge and resume the ladder.
async fn resume(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    repaged: Millis,
    now: Millis,
) -> Result<()> {
    let r = incident.reference;
    let Some(current) = incidents::unacknowledge(&mut **tx, r, now).await? else {
        return Ok(());
    };
    ctx.thread()
        .post_and_refresh(
            tx,
            &current,
            Entry::new(
                EventKind::Escalated,
                format!(
                    "nobody answered the re-page within {}; unacknowledged, the ladder resumes",
                    human_duration(now.since(repaged))
                ),
            ),
            &format!(
                "⏫ Nobody answered the re-page for {r}: it is unacknowledged again and the ladder resumes."
            ),
            now,
        )
        .await?;
    escalate::resume(ctx, tx, &current, now).await?;
    Ok(())
}
