//! `/incident …` on incidents: one transaction per change, messages enqueued in it.
//!
//! Each change follows the same steps: find the incident (the `INC-n` given, or
//! the channel's only open one), open a transaction whose first statement is
//! the conditional update, write the change's story through the thread seam
//! (timeline, reply, root), start or stop what it starts or stops (the ladder,
//! silences), commit, and wake the workers. If the update does not apply
//! (already resolved, same severity …) nothing is written and the person is
//! told why.

use std::time::Duration;

use super::thread::Entry;
use super::{
    Actor, Answer, Ctx, Result, access, actions, escalate, followups, maintenance, postmortem,
    reminders, roles, rooms, silences, statuspage,
};
use crate::alerts::AlertStatus;
use crate::incident::command::{self, Command, HELP, UsageError};
use crate::incident::{
    ChannelId, EventKind, Incident, IncidentRef, IncidentSource, IncidentState, Severity,
    SlackUserId,
};
use crate::store::incidents::{self, NewIncident, Resolution};
use crate::store::{Tx, alerts, pages};
use crate::telemetry::SourceLabels;
use crate::templates::{self, TemplateName, slack_escape};
use crate::time::{Millis, human_duration, plural};

/// Notes the incident on the request's span, so its log lines carry the ref.
fn note_incident(r: IncidentRef) {
    tracing::Span::current().record("incident", tracing::field::display(r));
}

/// What a person who mistyped `/incident <text>` is told: what was wrong and
/// how the command is written. A malformed request to run something is audited
/// like any refused run.
pub async fn usage_error(ctx: &Ctx, actor: &Actor, text: &str, usage: &UsageError) -> Answer {
    if usage.usage == command::USAGE_RUN {
        actions::audit_malformed(ctx, &actor.user, text, &usage.message).await;
    }
    Answer::Refused(format!("⚠️ {}\nUsage: `{}`", usage.message, usage.usage))
}

/// Runs a parsed `/incident` command for `actor`.
pub async fn execute(ctx: &Ctx, actor: &Actor, command: Command) -> Result<Answer> {
    let user = &actor.user;
    let channel = &actor.channel;
    Ok(match command {
        Command::Help => Answer::Done(help(ctx)),
        Command::List => list(ctx).await?,
        Command::OnCall => on_call(ctx),
        Command::Actions => actions::list(ctx),
        Command::Maintenance(m) => match m {
            command::Maintenance::List => maintenance::list(ctx).await?,
            command::Maintenance::Start {
                route,
                duration,
                reason,
            } => {
                maintenance::start(
                    ctx,
                    actor,
                    &route,
                    duration,
                    reason.as_ref().map(|r| r.as_str()),
                )
                .await?
            }
            command::Maintenance::End { id } => maintenance::end(ctx, actor, id).await?,
        },
        Command::Open {
            severity,
            title,
            components,
        } => match statuspage::unknown_components(ctx, &components) {
            Some(why) => Answer::Refused(why),
            None => {
                let refused = if components.is_empty() {
                    None
                } else {
                    access::may_publish(ctx, user, None, "open --component").await?
                };
                match refused {
                    Some(refused) => Answer::Refused(refused),
                    None => {
                        let severity = severity.unwrap_or(ctx.settings.incidents.default_severity);
                        open(ctx, actor, severity, title.as_str(), &components).await?
                    }
                }
            }
        },
        Command::Components { target, components } => match find(ctx, channel, target).await? {
            Ok(i) => statuspage::set_components(ctx, user, &i, &components).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::ComponentState { component, status } => {
            statuspage::set_state(ctx, user, &component, status).await?
        }
        Command::Reopen { target: Some(r) } => reopen(ctx, user, r).await?,
        Command::Reopen { target: None } => {
            match incidents::by_room(ctx.store.pool(), channel).await? {
                // In an incident's own channel, the incident is the channel's.
                Some(own) => reopen(ctx, user, own.reference).await?,
                None => Answer::Refused(
                    "Name the incident to reopen: `/incident reopen INC-12` (resolved incidents are not the channel's open one).".into(),
                ),
            }
        }
        Command::Ack { target } => match find(ctx, channel, target).await? {
            Ok(i) => reached(ctx, &i.channel, acknowledge(ctx, user, i.reference).await?),
            Err(why) => Answer::Refused(why),
        },
        Command::Status {
            target,
            text,
            public,
        } => match find(ctx, channel, target).await? {
            Ok(i) => reached(
                ctx,
                &i.channel,
                status(ctx, user, &i, text.as_str(), public).await?,
            ),
            Err(why) => Answer::Refused(why),
        },
        Command::Sev { target, severity } => match find(ctx, channel, target).await? {
            Ok(i) => match access::may_change_severity(ctx, user, &i).await? {
                Some(refusal) => Answer::Refused(refusal),
                None => reached(
                    ctx,
                    &i.channel,
                    set_severity(ctx, user, &i, severity).await?,
                ),
            },
            Err(why) => Answer::Refused(why),
        },
        Command::Assign { target, owner } => match find(ctx, channel, target).await? {
            Ok(i) => reached(ctx, &i.channel, assign(ctx, user, &i, &owner).await?),
            Err(why) => Answer::Refused(why),
        },
        Command::Resolve { target, summary } => match find(ctx, channel, target).await? {
            Ok(i) => {
                let resolution = Resolution {
                    root_cause: None,
                    resolution: Some(summary.as_str().to_string()),
                    follow_up: None,
                };
                reached(
                    ctx,
                    &i.channel,
                    resolve(ctx, Some(user), i.reference, &resolution).await?,
                )
            }
            Err(why) => Answer::Refused(why),
        },
        Command::Escalate { target } => match find(ctx, channel, target).await? {
            Ok(i) => escalate_now(ctx, user, &i).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::Silence { target, duration } => match find(ctx, channel, target).await? {
            Ok(i) => silence(ctx, user, &i, duration).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::Role {
            role,
            target,
            user: holder,
        } => match find(ctx, channel, target).await? {
            Ok(i) => roles::assign(ctx, user, &i, &role, &holder).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::Postmortem { target } => match find(ctx, channel, target).await? {
            Ok(i) => postmortem::produce(ctx, user, i.reference).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::FollowUp {
            target,
            owner,
            text,
        } => match find(ctx, channel, target).await? {
            Ok(i) => followups::record(ctx, user, &i, owner.as_ref(), text.as_str()).await?,
            Err(why) => Answer::Refused(why),
        },
        Command::Run {
            action,
            target,
            params,
            dry_run,
        } => match find(ctx, channel, target).await? {
            Ok(i) => actions::request(ctx, user, &i, &action, &params, dry_run).await?,
            Err(why) => Answer::Refused(why),
        },
    })
}

/// `/incident help`: the grammar, then what this install does by itself
/// (reminders, re-pages, heartbeats), as configured.
fn help(ctx: &Ctx) -> String {
    let every = |f: &dyn Fn(Severity) -> Option<Duration>| -> Vec<String> {
        Severity::ALL
            .iter()
            .filter_map(|s| f(*s).map(|d| format!("{s} after {}", human_duration(d))))
            .collect()
    };
    let incidents = &ctx.settings.incidents;
    let mut lines = vec![HELP.to_string()];
    let reminders = every(&|s| incidents.update_every(s));
    if !reminders.is_empty() {
        lines.push(format!(
            "Without a status update, Klaxon reminds the thread of a {}.",
            reminders.join(", a ")
        ));
    }
    let stale = every(&|s| incidents.ack_timeout(s));
    if !stale.is_empty() {
        lines.push(format!(
            "An acknowledged incident with no update pages whoever acknowledged it again: {}.",
            stale.join(", ")
        ));
    }
    let heartbeats: Vec<&str> = ctx
        .settings
        .heartbeats
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    if !heartbeats.is_empty() {
        lines.push(format!(
            "Heartbeats watched (a missed beat opens an incident): {}.",
            heartbeats.join(", ")
        ));
    }
    let roles: Vec<String> = incidents
        .roles
        .iter()
        .map(|r| format!("`{}`", r.name))
        .collect();
    lines.push(format!("Roles here: {}.", roles.join(", ")));
    if !incidents.channel_for.is_empty() {
        let severities: Vec<&str> = incidents.channel_for.iter().map(|s| s.as_str()).collect();
        lines.push(format!(
            "{} incidents get a channel of their own; commands typed there act on its incident.",
            severities.join(" and ")
        ));
    }
    let components: Vec<String> = ctx
        .settings
        .status
        .components
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect();
    lines.push(if components.is_empty() {
        "No status-page components are configured here (`[[status.components]]`).".to_string()
    } else {
        format!("Status-page components here: {}.", components.join(", "))
    });
    lines.join("\n")
}

/// `answer`, with a warning when Klaxon cannot post in `channel` (the thread
/// the answer speaks of does not appear yet).
fn reached(ctx: &Ctx, channel: &ChannelId, answer: Answer) -> Answer {
    match (answer, ctx.reach.warning(channel)) {
        (Answer::Done(text), Some(warning)) => Answer::Done(format!("{text}\n{warning}")),
        (answer, _) => answer,
    }
}

/// The incident named, the incident whose own channel this is, or the
/// channel's only open one; `Err` says why not.
pub async fn find(
    ctx: &Ctx,
    channel: &ChannelId,
    target: Option<IncidentRef>,
) -> Result<std::result::Result<Incident, String>> {
    if let Some(r) = target {
        note_incident(r);
        return Ok(incidents::get(ctx.store.pool(), r).await?.ok_or_else(|| {
            format!("{r} does not exist. `/incident list` shows the open incidents.")
        }));
    }
    // An incident's own channel is never the configured incident channel:
    // commands typed there cost no lookup of a room.
    let maybe_room = ctx.settings.slack.incident_channel.as_ref() != Some(channel);
    if maybe_room && let Some(own) = incidents::by_room(ctx.store.pool(), channel).await? {
        note_incident(own.reference);
        return Ok(Ok(own));
    }
    let open = incidents::open_in_channel(ctx.store.pool(), channel, 10).await?;
    Ok(match open.as_slice() {
        [one] => {
            note_incident(one.reference);
            Ok(one.clone())
        }
        [] => Err("There is no open incident in this channel, so name one: \
                   for example `/incident status INC-12 <text>`. `/incident list` shows the open incidents."
            .to_string()),
        many => Err(format!(
            "This channel has {} open incidents ({}); name the one you mean, e.g. `/incident status {} <text>`.",
            many.len(),
            many.iter()
                .map(|i| i.reference.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            many[0].reference
        )),
    })
}

/// Declares an incident: the row, its first timeline event and the root message.
pub async fn open(
    ctx: &Ctx,
    actor: &Actor,
    severity: Severity,
    title: &str,
    components: &[crate::status::ComponentName],
) -> Result<Answer> {
    let channel = ctx
        .settings
        .slack
        .incident_channel
        .clone()
        .unwrap_or_else(|| actor.channel.clone());
    let now = ctx.clock.now();
    let ladder = ctx
        .settings
        .escalation
        .ladder_for(severity)
        .map(|l| l.name.clone());
    let mut tx = ctx.begin().await?;
    let incident = open_in(
        ctx,
        &mut tx,
        &NewIncident {
            title,
            severity,
            channel: &channel,
            opened_by: Some(&actor.user),
            source: IncidentSource::Slack,
            opened_at: now,
            ladder: ladder.as_deref(),
            previous: None,
        },
        &format!("declared the incident ({severity}): {title}"),
        now,
    )
    .await?;
    statuspage::attach(&mut tx, &incident, components).await?;
    ctx.thread().post_root(&mut tx, &incident, now).await?;
    ctx.commit(tx).await?;
    count_opened(ctx, IncidentSource::Slack);
    Ok(reached(
        ctx,
        &channel,
        Answer::Done(format!(
            "🚨 *{}* declared ({severity}, respond within {}). The thread is in <#{}>. \
             Run `/incident ack {}` when you are on it.",
            incident.reference,
            severity.response_target(),
            channel,
            incident.reference
        )),
    ))
}

/// Inserts an incident with its first timeline event and (when a ladder pages
/// for it) the first escalation step, inside `tx`. The caller posts the root
/// message ([`super::thread::Thread::post_root`]) once what it shows is stored.
pub async fn open_in(
    ctx: &Ctx,
    tx: &mut Tx,
    new: &NewIncident<'_>,
    opened_text: &str,
    now: Millis,
) -> Result<Incident> {
    let incident = incidents::insert(&mut **tx, new).await?;
    note_incident(incident.reference);
    let mut entry = Entry::new(EventKind::Opened, opened_text);
    entry.actor = new.opened_by;
    let thread = ctx.thread();
    thread.record(tx, &incident, entry, now).await?;
    if new.ladder.is_some() {
        escalate::start_new(tx, incident.reference, now).await?;
    }
    reminders::on_open(ctx, tx, &incident, now).await?;
    rooms::start_if_major(ctx, tx, &incident, now).await?;
    tracing::info!(incident = %incident.reference, severity = %incident.severity, source = incident.source.as_str(), "incident opened");
    Ok(incident)
}

/// Counts an incident opened (call after the commit).
pub fn count_opened(ctx: &Ctx, source: IncidentSource) {
    ctx.metrics
        .incidents_opened
        .get_or_create(&SourceLabels {
            source: source.as_str().into(),
        })
        .inc();
}

/// Explains why a conditional update did not apply.
async fn why_not(ctx: &Ctx, r: IncidentRef, verb: &str) -> Result<Answer> {
    Ok(Answer::Refused(
        match incidents::get(ctx.store.pool(), r).await? {
            None => format!("{r} does not exist."),
            Some(i) if i.is_resolved() => {
                format!("{r} is already resolved, so it cannot {verb}.")
            }
            Some(_) => format!("{r} did not change."),
        },
    ))
}

pub async fn status(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    text: &str,
    public: bool,
) -> Result<Answer> {
    // What the public will read, checked before anything is posted.
    let public_text = if public {
        match statuspage::check_public(ctx, actor, incident.reference, text).await? {
            Ok(t) => Some(t),
            Err(why) => return Ok(Answer::Refused(why)),
        }
    } else {
        None
    };
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::touch_open(&mut *tx, incident.reference, now).await? else {
        tx.rollback().await?;
        return why_not(ctx, incident.reference, "take status updates").await;
    };
    let reply = ctx.render(
        TemplateName::StatusUpdate,
        &templates::status_data(&current, Some(actor), text, now),
    )?;
    ctx.thread()
        .post(
            &mut tx,
            &current,
            Entry::new(
                EventKind::StatusUpdate,
                if public {
                    format!("public status update: {text}")
                } else {
                    format!("status update: {text}")
                },
            )
            .by(actor),
            &reply,
            now,
        )
        .await?;
    if let Some(published) = &public_text {
        statuspage::publish_in(&mut tx, &current, published, actor, now).await?;
    }
    ctx.commit(tx).await?;
    Ok(Answer::Done(if public {
        format!(
            "Status update posted in the {} thread and published on the status page.",
            current.reference
        )
    } else {
        format!("Status update posted in the {} thread.", current.reference)
    }))
}

/// After a change of severity: an open incident whose severity now means
/// another ladder restarts paging at that ladder's first level, or stops
/// paging when the new severity pages nobody; pages still queued for the old
/// ladder are dropped unsent.
pub(super) async fn switch_ladder(
    tx: &mut Tx,
    current: &Incident,
    ladder: Option<&str>,
    now: Millis,
) -> Result<()> {
    if ladder == current.ladder.as_deref() || current.state != IncidentState::Open {
        return Ok(());
    }
    incidents::new_paging_epoch(&mut **tx, current.reference).await?;
    match ladder {
        Some(name) => {
            incidents::set_escalation(&mut **tx, current.reference, Some(name), None).await?;
            escalate::start(tx, current.reference, 0, now).await?;
        }
        None => escalate::stop(tx, current.reference).await?,
    }
    Ok(())
}

pub async fn set_severity(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    severity: Severity,
) -> Result<Answer> {
    if incident.severity == severity && !incident.is_resolved() {
        return Ok(Answer::Refused(format!(
            "{} is already {severity}.",
            incident.reference
        )));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) =
        incidents::set_severity(&mut *tx, incident.reference, severity, now).await?
    else {
        tx.rollback().await?;
        return why_not(ctx, incident.reference, "change severity").await;
    };
    statuspage::track(&mut tx, current.reference, now).await?;
    let previous = incident.severity;
    let reply = ctx.render(
        TemplateName::SeverityChanged,
        &templates::change_data(&current, Some(actor), Some(previous)),
    )?;
    ctx.thread()
        .post_and_refresh(
            &mut tx,
            &current,
            Entry::new(
                EventKind::SeverityChanged,
                format!("changed severity from {previous} to {severity}"),
            )
            .by(actor),
            &reply,
            now,
        )
        .await?;
    let ladder = ctx
        .settings
        .escalation
        .ladder_for(severity)
        .map(|l| l.name.clone());
    switch_ladder(&mut tx, &current, ladder.as_deref(), now).await?;
    reminders::arm(ctx, &mut tx, &current, now).await?;
    rooms::start_if_major(ctx, &mut tx, &current, now).await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "{} is now {severity} (was {previous}).",
        current.reference
    )))
}

pub async fn assign(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    owner: &SlackUserId,
) -> Result<Answer> {
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::set_owner(&mut *tx, incident.reference, owner, now).await?
    else {
        tx.rollback().await?;
        return why_not(ctx, incident.reference, "be assigned").await;
    };
    rooms::invite(&mut tx, &current, &[owner], now).await?;
    let reply = ctx.render(
        TemplateName::OwnerAssigned,
        &templates::change_data(&current, Some(actor), None),
    )?;
    ctx.thread()
        .post_and_refresh(
            &mut tx,
            &current,
            Entry::new(EventKind::OwnerAssigned, "assigned the incident to")
                .by(actor)
                .about(Some(owner)),
            &reply,
            now,
        )
        .await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "<@{owner}> now owns {}.",
        current.reference
    )))
}

pub async fn acknowledge(ctx: &Ctx, actor: &SlackUserId, r: IncidentRef) -> Result<Answer> {
    note_incident(r);
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::acknowledge(&mut *tx, r, actor, now).await? else {
        if let Some(answer) = still_on_it(ctx, &mut tx, actor, r, now).await? {
            ctx.commit(tx).await?;
            return Ok(answer);
        }
        tx.rollback().await?;
        return Ok(Answer::Refused(
            match incidents::get(ctx.store.pool(), r).await? {
                None => format!("{r} does not exist."),
                Some(i) if i.is_resolved() => format!("{r} is already resolved."),
                Some(i) => format!(
                    "{r} was already acknowledged{}{}.",
                    i.acknowledged_by
                        .map(|u| format!(" by <@{u}>"))
                        .unwrap_or_default(),
                    i.acknowledged_at
                        .map(|t| format!(" at {}", t.time_utc_from(now)))
                        .unwrap_or_default()
                ),
            },
        ));
    };
    escalate::stop(&mut tx, r).await?;
    reminders::arm_ack(ctx, &mut tx, &current, now).await?;
    rooms::invite(&mut tx, &current, &[actor], now).await?;
    let mtta = current.time_to_acknowledge().unwrap_or_default();
    // Acknowledged before, then unacknowledged (a stale acknowledgement nobody
    // answered): MTTA stays the first acknowledgement's.
    let again = current.acknowledged_at.is_some_and(|first| first < now);
    let (entry, reply, answer) = if again {
        (
            format!(
                "acknowledged again (the first acknowledgement, after {}, stays the MTTA)",
                human_duration(mtta)
            ),
            format!(
                "👀 <@{actor}> acknowledged {r} again (its MTTA stays {}, the first acknowledgement).",
                human_duration(mtta)
            ),
            format!("You acknowledged {r} again."),
        )
    } else {
        (
            format!("acknowledged after {}", human_duration(mtta)),
            ctx.render(
                TemplateName::Acknowledged,
                &templates::change_data(&current, Some(actor), None),
            )?,
            format!(
                "You acknowledged {r} ({} after it opened).",
                human_duration(mtta)
            ),
        )
    };
    ctx.thread()
        .post_and_refresh(
            &mut tx,
            &current,
            Entry::new(EventKind::Acknowledged, entry).by(actor),
            &reply,
            now,
        )
        .await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(answer))
}

/// An acknowledgement of an incident already acknowledged, whose owner was
/// paged again for a stale acknowledgement since anyone last attended it:
/// it answers the re-page ("still on it"). `None` otherwise.
async fn still_on_it(
    ctx: &Ctx,
    tx: &mut Tx,
    actor: &SlackUserId,
    r: IncidentRef,
    now: Millis,
) -> Result<Option<Answer>> {
    let Some(incident) = incidents::get(&mut **tx, r).await? else {
        return Ok(None);
    };
    if incident.state != IncidentState::Acknowledged {
        return Ok(None);
    }
    let repaged = incidents::last_repage(&mut **tx, r).await?;
    let attended = incidents::last_attention(&mut **tx, r).await?;
    // Answered already (or never re-paged): an ordinary "already acknowledged".
    if repaged.is_none_or(|p| attended.is_some_and(|a| a >= p)) {
        return Ok(None);
    }
    ctx.thread()
        .post(
            tx,
            &incident,
            Entry::new(EventKind::Acknowledged, "answered the re-page: still on it").by(actor),
            &format!("👍 <@{actor}> is still on {r}."),
            now,
        )
        .await?;
    // The next check counts a whole timeout from this answer.
    reminders::arm_ack(ctx, tx, &incident, now).await?;
    Ok(Some(Answer::Done(format!(
        "Noted: you are still on {r}. Post a status update when you can (`/incident status {r} <text>`)."
    ))))
}

/// Resolves and posts the resolution summary with the whole timeline.
pub async fn resolve(
    ctx: &Ctx,
    actor: Option<&SlackUserId>,
    r: IncidentRef,
    resolution: &Resolution,
) -> Result<Answer> {
    note_incident(r);
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = resolve_in(ctx, &mut tx, actor, r, resolution, now).await? else {
        tx.rollback().await?;
        return why_not(ctx, r, "be resolved again").await;
    };
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "✅ {r} resolved after {}. The summary is in the thread.",
        current
            .time_to_resolve()
            .map(human_duration)
            .unwrap_or_default()
    )))
}

/// Resolves inside `tx`: stops escalation, posts the summary, refreshes the root,
/// and schedules the expiry of the incident's silences. `None`: already resolved.
pub async fn resolve_in(
    ctx: &Ctx,
    tx: &mut Tx,
    actor: Option<&SlackUserId>,
    r: IncidentRef,
    resolution: &Resolution,
    now: Millis,
) -> Result<Option<Incident>> {
    let Some(current) = incidents::resolve(&mut **tx, r, actor, now, resolution).await? else {
        return Ok(None);
    };
    escalate::stop(tx, r).await?;
    let summary = resolution.resolution.clone().unwrap_or_default();
    let mut entry = Entry::new(
        EventKind::Resolved,
        if summary.is_empty() {
            "resolved the incident".to_string()
        } else {
            format!("resolved the incident: {summary}")
        },
    );
    entry.actor = actor;
    let thread = ctx.thread();
    thread.record(tx, &current, entry, now).await?;
    // Requests still waiting close first, so the summary's timeline has them.
    actions::close_on_resolve(ctx, tx, r, now).await?;
    let timeline = incidents::timeline(&mut **tx, r).await?;
    let summary = if !current.source.is_alerts() {
        templates::AlertSummary::default()
    } else {
        let counts = alerts::counts(tx, r).await?;
        templates::AlertSummary {
            resolved: alerts::names(tx, r, AlertStatus::Resolved).await?,
            firing: alerts::names(tx, r, AlertStatus::Firing).await?,
            note: (counts.total > counts.held).then(|| {
                format!(
                    "{} listed only some of them ({}); the group had up to {} at once",
                    current.source.label(),
                    current.source.truncation_hint(),
                    plural(counts.total, "alert", "alerts")
                )
            }),
        }
    };
    let items: Vec<templates::FollowUpView> = followups_of(tx, r).await?;
    let reply = ctx.render(
        TemplateName::ResolutionSummary,
        &templates::resolution_data(&current, &timeline, &summary, &items),
    )?;
    let message = crate::blocks::summary_message(&current, &reply);
    thread.reply(tx, &current, message.clone(), now).await?;
    if current.live_room().is_some() {
        thread.headline_message(tx, &current, message, now).await?;
    }
    thread.refresh_root(tx, &current, now).await?;
    statuspage::on_resolve(tx, &current, now).await?;
    rooms::archive_later(ctx, tx, &current, now).await?;
    postmortem::remind_later(ctx, tx, &current, now).await?;
    silences::expire_on_resolve(ctx, tx, r, now).await?;
    tracing::info!(incident = %r, "incident resolved");
    Ok(Some(current))
}

/// An incident's follow-ups, as messages show them.
async fn followups_of(tx: &mut Tx, r: IncidentRef) -> Result<Vec<templates::FollowUpView>> {
    Ok(crate::store::followups::of_incident(&mut **tx, r)
        .await?
        .into_iter()
        .map(|f| templates::FollowUpView {
            id: f.number,
            text: f.text,
            owner: f.owner,
            tracker_ref: f.tracker_ref,
        })
        .collect())
}

/// Pages the next level of the ladder now.
pub async fn escalate_now(ctx: &Ctx, actor: &SlackUserId, incident: &Incident) -> Result<Answer> {
    let r = incident.reference;
    let Some(ladder) = incident
        .ladder
        .as_deref()
        .and_then(|n| ctx.settings.escalation.ladder(n))
        .or_else(|| ctx.settings.escalation.ladder_for(incident.severity))
        .cloned()
    else {
        return Ok(Answer::Refused(format!(
            "{r} has no escalation ladder: none is configured for {}.",
            incident.severity
        )));
    };
    let next = incident
        .escalation_step
        .map(|s| s + 1)
        .filter(|s| ladder.position(*s).is_some())
        .unwrap_or(0);
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::touch_open(&mut *tx, r, now).await? else {
        tx.rollback().await?;
        return why_not(ctx, r, "be escalated").await;
    };
    let level = ladder
        .level(next)
        .map(|l| l.name.clone())
        .unwrap_or_default();
    ctx.thread()
        .record(
            &mut tx,
            &current,
            Entry::new(
                EventKind::Escalated,
                format!("escalated to {level} by hand"),
            )
            .by(actor),
            now,
        )
        .await?;
    // The step before `next` counts as done, so the job pages `next` even after an ack.
    incidents::set_escalation(&mut *tx, r, Some(&ladder.name), next.checked_sub(1)).await?;
    if current.state == IncidentState::Acknowledged {
        crate::jobs::enqueue(&mut tx, &escalate::Step::forced(r, next), now, now).await?;
    } else {
        escalate::start(&mut tx, r, next, now).await?;
    }
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!("Paging {level} for {r} now.")))
}

/// Reopens an incident: a new acknowledgement is needed and its ladder resumes
/// at the level after the last one paged.
pub async fn reopen(ctx: &Ctx, actor: &SlackUserId, r: IncidentRef) -> Result<Answer> {
    note_incident(r);
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::reopen(&mut *tx, r, now).await? else {
        tx.rollback().await?;
        return Ok(Answer::Refused(
            match incidents::get(ctx.store.pool(), r).await? {
                None => format!("{r} does not exist."),
                Some(_) => format!("{r} is open already."),
            },
        ));
    };
    let reply = format!("🔁 <@{actor}> reopened {r}; it needs a new acknowledgement.");
    ctx.thread()
        .post_and_refresh(
            &mut tx,
            &current,
            Entry::new(EventKind::Reopened, "reopened the incident").by(actor),
            &reply,
            now,
        )
        .await?;
    escalate::resume(ctx, &mut tx, &current, now).await?;
    reminders::arm(ctx, &mut tx, &current, now).await?;
    rooms::keep(&mut tx, r).await?;
    statuspage::on_reopen(&mut tx, &current, now).await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!("{r} is open again.")))
}

/// Asks Alertmanager (through a job) to silence the incident's alert groups.
pub async fn silence(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    duration: Duration,
) -> Result<Answer> {
    let r = incident.reference;
    let alerts = &ctx.settings.alerts;
    if ctx.alertmanager.is_none() {
        return Ok(Answer::Refused(
            "Klaxon does not know where Alertmanager is: set `alerts.alertmanager_url`.".into(),
        ));
    }
    if incident.source != IncidentSource::Alertmanager {
        return Ok(Answer::Refused(format!(
            "{r} did not come from Alertmanager, so there is nothing to silence there."
        )));
    }
    if duration > alerts.max_silence {
        return Ok(Answer::Refused(format!(
            "Silences are limited to {} (`alerts.max_silence`).",
            human_duration(alerts.max_silence)
        )));
    }
    if let Some(refusal) = access::may_silence(ctx, actor, incident).await? {
        return Ok(Answer::Refused(refusal));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    if incidents::touch_open(&mut *tx, r, now).await?.is_none() {
        tx.rollback().await?;
        return why_not(ctx, r, "be silenced").await;
    }
    silences::request(&mut tx, r, duration, actor, now).await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "Asking Alertmanager to silence {r} for {}; the thread will say when it is in place.",
        human_duration(duration)
    )))
}

/// Who is on call now in every schedule.
pub fn on_call(ctx: &Ctx) -> Answer {
    let schedules = &ctx.settings.escalation.schedules;
    if schedules.is_empty() {
        return Answer::Done("No on-call schedules are configured.".into());
    }
    let now = ctx.clock.timestamp();
    let mut lines = vec!["*On call now*".to_string()];
    for (name, s) in schedules {
        lines.push(match s.on_call(now) {
            Some(o) => format!(
                "• *{}*: <@{}>{} until {} ({})",
                slack_escape(name),
                o.user,
                if o.covering { " (covering)" } else { "" },
                o.until.to_zoned(s.tz.clone()).strftime("%a %d %b %H:%M %Z"),
                s.tz.iana_name().unwrap_or("UTC")
            ),
            None => format!("• *{}*: nobody (the rotation is empty)", slack_escape(name)),
        });
    }
    Answer::Done(lines.join("\n"))
}

/// `/incident list`: the open incidents, most severe first. The answer comes
/// from a copy shared while nothing changed (`crate::store::changes`); on
/// PostgreSQL, other replicas' changes are heard through a trigger on the
/// columns shown here (migration `0020_incident_changes.sql`): a column shown
/// or sorted by here must be in its list.
pub async fn list(ctx: &Ctx) -> Result<Answer> {
    let now = ctx.clock.now();
    let version = ctx.changes.version();
    let open = ctx
        .open_incidents
        .get(version, now, incidents::list_open(ctx.store.pool(), 50))
        .await?;
    if open.is_empty() {
        return Ok(Answer::Done("No open incidents. 🎉".into()));
    }
    let mut lines = vec![format!(
        "*{}*",
        plural(
            u64::try_from(open.len()).unwrap_or(0),
            "open incident",
            "open incidents"
        )
    )];
    for i in open.iter() {
        lines.push(format!(
            "• *{}* [{}] {} — {}, {}, open {} (<#{}>)",
            i.reference,
            i.severity,
            slack_escape(&i.title),
            i.state.label(),
            i.owner
                .as_ref()
                .map(|u| format!("owner <@{u}>"))
                .unwrap_or_else(|| "no owner".into()),
            human_duration(now.since(i.opened_at)),
            i.live_room().map_or(&i.channel, |room| &room.channel)
        ));
    }
    Ok(Answer::Done(lines.join("\n")))
}

/// Text typed in a direct message to Klaxon (`channel`: the DM) by `user`. It is
/// read with the `/incident` grammar; there, `ack` without a ref means the
/// latest open incident that paged `user`. The answer goes back in the DM.
pub async fn direct_message(
    ctx: &Ctx,
    user: &SlackUserId,
    channel: &ChannelId,
    text: &str,
) -> Result<()> {
    if !looks_like_ack(text) {
        return Ok(()); // Chat, not a command for Klaxon.
    }
    let answer = match command::parse(text) {
        Ok(Command::Ack { target }) => {
            // A bare `ack` answers the newest page this person received; a page
            // still queued was never seen, so it is not what they meant.
            let (target, others) = match target {
                Some(r) => (Some(r), Vec::new()),
                None => {
                    let mut delivered = pages::delivered_open_for(ctx.store.pool(), user).await?;
                    if delivered.is_empty() {
                        (
                            pages::latest_open_for(ctx.store.pool(), user).await?,
                            Vec::new(),
                        )
                    } else {
                        let newest = delivered.remove(0);
                        (Some(newest), delivered)
                    }
                }
            };
            match target {
                Some(r) => {
                    let mut text = acknowledge(ctx, user, r).await?.text().to_string();
                    if !others.is_empty() {
                        let names: Vec<String> =
                            others.iter().map(|o| format!("{o} (`ack {o}`)")).collect();
                        text.push_str(&format!(
                            "\nAlso waiting for your acknowledgement: {}.",
                            names.join(", ")
                        ));
                    }
                    text
                }
                None => "Nothing waits for your acknowledgement. Name the incident: `ack INC-12`."
                    .to_string(),
            }
        }
        Ok(_) => return Ok(()),
        Err(usage) => format!("⚠️ {}\nUsage: `ack [INC-n]`", usage.message),
    };
    ctx.thread().direct(channel, user, &answer).await
}

/// Whether a DM starts with `ack`/`acknowledge` (anything else is chat, not for Klaxon).
fn looks_like_ack(text: &str) -> bool {
    text.split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("ack") || w.eq_ignore_ascii_case("acknowledge"))
}
