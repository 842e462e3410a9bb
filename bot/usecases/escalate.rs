//! The escalation step: one durable job per ladder step, on the paging lane.
//!
//! When a step's job runs it re-checks the incident first: one acknowledged or
//! resolved a moment ago is not paged. Otherwise it works out who the level
//! means right now (schedules resolve to whoever is on call), posts the page in
//! the thread, direct-messages each person with an Acknowledge button, records
//! the pages, and enqueues the next step at this step's due time plus the
//! level's wait — all in the job's transaction. A level with nobody to page
//! never swallows the page: the thread says why and the next level runs at once.

use serde::{Deserialize, Serialize};

use super::thread::Entry;
use super::{Ctx, Result, rooms};
use crate::escalation::{Ladder, Target};
use crate::incident::{EventKind, Incident, IncidentRef, IncidentState, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::{Tx, incidents, maintenance, pages};
use crate::telemetry::LevelLabels;
use crate::templates::{PageFacts, TemplateName, page_data};
use crate::time::{Millis, plural};

/// The job that pages step `step` (0-based, across repeats) of an incident's ladder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub incident: i64,
    pub step: u32,
    /// Escalated by hand: pages even an acknowledged incident, and schedules no next step.
    #[serde(default)]
    pub forced: bool,
}

impl Step {
    pub fn new(incident: IncidentRef, step: u32) -> Step {
        Step {
            incident: incident.number(),
            step,
            forced: false,
        }
    }

    /// A one-off step paged by `/incident escalate` on an acknowledged incident.
    pub fn forced(incident: IncidentRef, step: u32) -> Step {
        Step {
            incident: incident.number(),
            step,
            forced: true,
        }
    }
}

impl Job for Step {
    const KIND: &'static str = "escalate";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(if self.forced {
            format!("escalate:{}:{}:forced", self.incident, self.step)
        } else {
            format!("escalate:{}:{}", self.incident, self.step)
        })
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let paged = page(&ctx, &mut tx, &self, run.due, run.started).await?;
        ctx.commit_job(&run, tx).await?;
        if let Some(p) = paged {
            ctx.metrics
                .pages_sent
                .get_or_create(&LevelLabels { level: p.level })
                .inc_by(u64::try_from(p.people).unwrap_or(0));
        }
        Ok(())
    }
}

/// Starts the ladder of an incident opened in the caller's transaction (it
/// has no step to cancel).
pub async fn start_new(tx: &mut Tx, incident: IncidentRef, now: Millis) -> Result<()> {
    jobs::enqueue(tx, &Step::new(incident, 0), now, now).await?;
    Ok(())
}

/// Starts (or restarts) the ladder at `step` now, inside the caller's transaction.
pub async fn start(tx: &mut Tx, incident: IncidentRef, step: u32, now: Millis) -> Result<()> {
    jobs::cancel_for_incident::<Step, _>(&mut **tx, incident).await?;
    jobs::enqueue(tx, &Step::new(incident, step), now, now).await?;
    Ok(())
}

/// Stops the ladder: no further step of it will page.
pub async fn stop(tx: &mut Tx, incident: IncidentRef) -> Result<()> {
    jobs::cancel_for_incident::<Step, _>(&mut **tx, incident).await?;
    Ok(())
}

/// Restarts an incident's ladder now at the level after the last one paged
/// (the first level when none was, or when the ladder ran out), for an
/// incident open again: reopened, or its acknowledgement gone stale.
pub async fn resume(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    let ladder = incident
        .ladder
        .as_deref()
        .and_then(|n| ctx.settings.escalation.ladder(n));
    if let Some(ladder) = ladder {
        let next = incident
            .escalation_step
            .map(|s| s + 1)
            .filter(|s| ladder.position(*s).is_some())
            .unwrap_or(0);
        incidents::set_escalation(&mut **tx, incident.reference, None, next.checked_sub(1)).await?;
        start(tx, incident.reference, next, now).await?;
    }
    Ok(())
}

/// The people the ladder's first level means right now (schedules resolved),
/// for reminders to an incident nobody owns.
pub fn first_level_people(ctx: &Ctx, incident: &Incident, now: Millis) -> Vec<SlackUserId> {
    incident
        .ladder
        .as_deref()
        .and_then(|n| ctx.settings.escalation.ladder(n))
        .or_else(|| ctx.settings.escalation.ladder_for(incident.severity))
        .and_then(|l| l.levels.first())
        .map(|level| recipients(ctx, &level.targets, now).users)
        .unwrap_or_default()
}

/// The job that direct-messages each member of a Slack user group a level
/// names (`usergroups.users.list`, cached), on the outside lane: the page in
/// the thread and the DMs to people named one by one never wait for Slack's
/// answer. It pages only while the incident is still at that step and unacknowledged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupPage {
    pub incident: i64,
    pub step: u32,
    pub group: String,
    /// People the level already paged by name (not paged twice).
    #[serde(default)]
    pub paged: Vec<String>,
}

/// Attempts before a group page gives up and says so in the thread.
const GROUP_PAGE_ATTEMPTS: u32 = 5;

impl Job for GroupPage {
    const KIND: &'static str = "group_page";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!(
            "group-page:{}:{}:{}",
            self.incident, self.step, self.group
        ))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        // Slack first, with no transaction open.
        let members = ctx.directory.members(&self.group).await;
        let members = match members {
            Ok(m) => m,
            Err(why) if run.attempts < GROUP_PAGE_ATTEMPTS => {
                return Err(JobError::Retry {
                    reason: format!("members of group {}: {why}", self.group),
                    after: None,
                });
            }
            Err(why) => {
                let Some(mut tx) = run.finish().await? else {
                    return Ok(());
                };
                if let Some(incident) = incidents::get(&mut *tx, r).await? {
                    ctx.thread()
                        .post(
                            &mut tx,
                            &incident,
                            Entry::new(
                                EventKind::Escalated,
                                format!("could not list the members of group {}", self.group),
                            ),
                            &format!(
                                "⚠️ Klaxon could not list the members of <!subteam^{}> to page them one by one ({why}); the group was mentioned in the thread only.",
                                self.group
                            ),
                            run.started,
                        )
                        .await?;
                }
                ctx.commit_job(&run, tx).await?;
                return Ok(());
            }
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        let mut people = 0;
        if let Some(incident) = incidents::get(&mut *tx, r).await?
            && incident.state == IncidentState::Open
            && incident.escalation_step == Some(self.step)
        {
            let ladder = incident
                .ladder
                .as_deref()
                .and_then(|n| ctx.settings.escalation.ladder(n));
            if let Some(level) = ladder.and_then(|l| l.level(self.step)) {
                let mut users: Vec<SlackUserId> = members
                    .iter()
                    .filter(|m| !self.paged.contains(m))
                    .filter_map(|m| SlackUserId::parse(m))
                    .collect();
                users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                let facts = PageFacts {
                    level: &level.name,
                    users: users.clone(),
                    groups: vec![self.group.clone()],
                    first: false,
                    unacknowledged_for: now.since(incident.opened_at),
                    wait: level.wait,
                    next_level: ladder
                        .and_then(|l| l.level(self.step + 1))
                        .map(|l| l.name.as_str()),
                    after_empty: None,
                    by_hand: false,
                };
                let dm_text = ctx.render(TemplateName::PageDm, &page_data(&incident, &facts))?;
                for user in &users {
                    ctx.thread()
                        .page_dm(&mut tx, &incident, user, &dm_text, now)
                        .await?;
                    pages::record(&mut *tx, r, self.step, &level.name, user, now).await?;
                }
                let invited: Vec<&crate::incident::SlackUserId> = users.iter().collect();
                rooms::invite(&mut tx, &incident, &invited, now).await?;
                people = users.len();
                if people > 0 {
                    ctx.thread()
                        .record(
                            &mut tx,
                            &incident,
                            Entry::new(
                                EventKind::Escalated,
                                format!(
                                    "paged {} of group {} by direct message",
                                    plural(u64::try_from(people).unwrap_or(0), "member", "members"),
                                    self.group,
                                ),
                            ),
                            now,
                        )
                        .await?;
                }
            }
        }
        ctx.commit_job(&run, tx).await?;
        if people > 0 {
            tracing::info!(incident = %r, group = %self.group, people, "paged a user group's members");
        }
        Ok(())
    }
}

/// A level that was paged, for the metrics once the transaction commits.
#[derive(Debug, Clone)]
struct Paged {
    level: String,
    people: usize,
}

/// Who a level means right now, and why nobody if nobody.
struct Recipients {
    users: Vec<SlackUserId>,
    groups: Vec<String>,
    gaps: Vec<String>,
}

fn recipients(ctx: &Ctx, targets: &[Target], now: Millis) -> Recipients {
    let at = now.timestamp();
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
                match ctx
                    .settings
                    .escalation
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
async fn page(
    ctx: &Ctx,
    tx: &mut Tx,
    job: &Step,
    due: Millis,
    now: Millis,
) -> Result<Option<Paged>> {
    let Some(r) = IncidentRef::new(job.incident) else {
        return Ok(None);
    };
    let Some(current) = incidents::get(&mut **tx, r).await? else {
        return Ok(None);
    };
    let pageable = current.state == IncidentState::Open
        || (job.forced && current.state == IncidentState::Acknowledged);
    if !pageable {
        tracing::info!(incident = %r, step = job.step, state = current.state.as_str(), "not paging: no longer open");
        return Ok(None);
    }
    if current.escalation_step.is_some_and(|done| done >= job.step) {
        tracing::info!(incident = %r, step = job.step, "not paging: this step was already paged");
        return Ok(None);
    }
    // A maintenance window over the incident's route pauses the ladder here;
    // the window's end resumes it at this step.
    if !job.forced
        && let Some(window) = maintenance::covering(&mut **tx, r, now).await?
    {
        if maintenance::pause(&mut **tx, window.id, r, job.step).await? {
            ctx.thread()
                .post(
                    tx,
                    &current,
                    Entry::new(
                        EventKind::Maintenance,
                        format!("paging paused by maintenance window #{}", window.id),
                    ),
                    &format!(
                        "⏸️ Paging for {r} is paused: maintenance window #{} covers route `{}` until {}. \
                         If nobody acknowledges by then, the ladder resumes where it stopped.",
                        window.id,
                        window.route,
                        window.ends_at.time_utc_from(now)
                    ),
                    now,
                )
                .await?;
        }
        tracing::info!(incident = %r, step = job.step, window = window.id, "not paging: a maintenance window covers the route");
        return Ok(None);
    }
    let ladder: Option<&Ladder> = current
        .ladder
        .as_deref()
        .and_then(|name| ctx.settings.escalation.ladder(name));
    let Some(ladder) = ladder else {
        tracing::warn!(incident = %r, ladder = ?current.ladder, "not paging: the ladder is not configured any more");
        return Ok(None);
    };
    page_from(ctx, tx, &current, ladder, job.step, due, now).await
}

/// Pages `step`, or the first later step that has somebody to page.
async fn page_from(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    ladder: &Ladder,
    mut step: u32,
    due: Millis,
    now: Millis,
) -> Result<Option<Paged>> {
    let r = incident.reference;
    let thread = ctx.thread();
    // Only `/incident escalate` pages an acknowledged incident; no later level follows then.
    let by_hand = incident.state == IncidentState::Acknowledged;
    // Levels skipped on the way here because they had nobody to page.
    let mut skipped: Vec<String> = Vec::new();
    loop {
        let Some(level) = ladder.level(step) else {
            let text = format!(
                "🔕 Nobody has acknowledged {r} after the whole *{}* ladder ({}, {}). \
                 Type `/incident escalate` to page again, or `/incident ack` when someone is on it.",
                ladder.name,
                plural(
                    u64::try_from(ladder.levels.len()).unwrap_or(0),
                    "level",
                    "levels"
                ),
                match ladder.repeat {
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                }
            );
            thread
                .post(
                    tx,
                    incident,
                    Entry::new(
                        EventKind::Escalated,
                        "the ladder ran out without an acknowledgement",
                    ),
                    &text,
                    now,
                )
                .await?;
            incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
            return Ok(None);
        };
        let who = recipients(ctx, &level.targets, now);
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
            thread
                .post(
                    tx,
                    incident,
                    Entry::new(
                        EventKind::Escalated,
                        format!("{} had nobody to page ({why})", level.name),
                    ),
                    &text,
                    now,
                )
                .await?;
            incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
            skipped.push(level.name.clone());
            step += 1;
            continue;
        }

        let next_level = ladder
            .level(step + 1)
            .map(|l| l.name.as_str())
            .filter(|_| !by_hand);
        let facts = PageFacts {
            level: &level.name,
            users: who.users.clone(),
            groups: who.groups.clone(),
            first: incident.escalation_step.is_none() && step == 0,
            unacknowledged_for: now.since(incident.opened_at),
            wait: level.wait,
            next_level,
            after_empty: (!skipped.is_empty()).then(|| skipped.join(" and ")),
            by_hand,
        };
        let data = page_data(incident, &facts);
        let thread_text = ctx.render(TemplateName::EscalationPage, &data)?;
        let mut dm_text = ctx.render(TemplateName::PageDm, &data)?;
        if let Some(why) = ctx.reach.blocked(&incident.channel) {
            // The DM must not send people to a thread that is not there.
            dm_text.push_str(&format!(
                "\n⚠️ The incident's thread cannot appear yet: Klaxon may not post in that channel (Slack says `{why}`). {} Acknowledge here.",
                super::reach::how_to_fix(&why)
            ));
        }
        let names: Vec<String> = who.users.iter().map(|u| format!("<@{u}>")).collect();
        // The timeline mentions one person; the rest are counted, groups by ID.
        let others = who.users.len().saturating_sub(1);
        let mut extra = Vec::new();
        if others > 0 {
            extra.push(plural(
                u64::try_from(others).unwrap_or(0),
                "more person",
                "more people",
            ));
        }
        if !who.groups.is_empty() {
            extra.push(format!("group {}", who.groups.join(", ")));
        }
        let entry_text = match (extra.is_empty(), who.users.is_empty()) {
            (true, _) => format!("paged {}:", level.name),
            (false, true) => format!("paged {} ({})", level.name, extra.join(" and ")),
            (false, false) => format!("paged {} ({} besides):", level.name, extra.join(" and ")),
        };
        thread
            .post_page(
                tx,
                incident,
                Entry::new(EventKind::Escalated, entry_text).about(who.users.first()),
                &thread_text,
                now,
            )
            .await?;
        for user in &who.users {
            thread.page_dm(tx, incident, user, &dm_text, now).await?;
            pages::record(&mut **tx, r, step, &level.name, user, now).await?;
        }
        let invited: Vec<&SlackUserId> = who.users.iter().collect();
        rooms::invite(tx, incident, &invited, now).await?;
        // A group's members are looked up on the outside lane, then DMed.
        for group in &who.groups {
            let job = GroupPage {
                incident: r.number(),
                step,
                group: group.clone(),
                paged: who.users.iter().map(|u| u.as_str().to_string()).collect(),
            };
            jobs::enqueue(tx, &job, now, now).await?;
        }
        incidents::set_escalation(&mut **tx, r, None, Some(step)).await?;
        if incident.state == IncidentState::Open {
            jobs::enqueue(tx, &Step::new(r, step + 1), due.plus(level.wait), now).await?;
        }
        tracing::info!(incident = %r, step, level = %level.name, people = %names.join(" "), "paged");
        return Ok(Some(Paged {
            level: level.name.clone(),
            people: who.users.len() + who.groups.len(),
        }));
    }
}
