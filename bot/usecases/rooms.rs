//! A channel of its own for a major incident (`incidents.channel_for`).
//!
//! When an incident of such a severity opens (or is raised to one), a job on
//! the outside lane creates `inc-<n>-<slug>` (Slack's naming rules, another
//! name on `name_taken`), sets its topic, records it on the incident and
//! posts a copy of the root there; from then on the thread seam tells the
//! story in the room and keeps the headlines in the incident channel's
//! thread. Everyone who works the incident is invited as they join it: the
//! people paged (as they are paged), the owner, role holders, whoever
//! acknowledges. After the resolution a durable job archives the room
//! (`incidents.archive_channel_after`).
//!
//! When Slack refuses (a missing scope, `restricted_action`, no free name),
//! the incident stays in its thread, which says why.

use serde::{Deserialize, Serialize};

use super::ports::Refusal;
use super::thread::Entry;
use super::{Ctx, Result};
use crate::incident::room::{self, NAME_ATTEMPTS};
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::{Tx, incidents, roles};
use crate::templates::slack_escape;
use crate::time::Millis;

/// How far Slack's clock and Klaxon's may disagree, for "created after".
const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// Creates the incident's room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Open {
    pub incident: i64,
}

/// Invites people to the incident's room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    pub incident: i64,
    pub users: Vec<String>,
}

/// Archives the room of a resolved incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Archive {
    pub incident: i64,
}

/// Starts the room of `incident` if its severity gets one (in the caller's
/// transaction; a second call while the first waits does nothing).
pub async fn start_if_major(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    now: Millis,
) -> Result<()> {
    if incident.room.is_none()
        && !incident.is_resolved()
        && ctx.settings.incidents.gets_room(incident.severity)
    {
        jobs::enqueue(
            tx,
            &Open {
                incident: incident.reference.number(),
            },
            now,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Invites `users` to the incident's room, if it has one.
pub async fn invite(
    tx: &mut Tx,
    incident: &Incident,
    users: &[&SlackUserId],
    now: Millis,
) -> Result<()> {
    if incident.live_room().is_none() || users.is_empty() {
        return Ok(());
    }
    jobs::enqueue(
        tx,
        &Invite {
            incident: incident.reference.number(),
            users: users.iter().map(|u| u.as_str().to_string()).collect(),
        },
        now,
        now,
    )
    .await?;
    Ok(())
}

/// Schedules the archive of a resolved incident's room.
pub async fn archive_later(ctx: &Ctx, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    if let (Some(_), Some(after)) = (
        incident.live_room(),
        ctx.settings.incidents.archive_channel_after,
    ) {
        let job = Archive {
            incident: incident.reference.number(),
        };
        jobs::enqueue(tx, &job, now.plus(after), now).await?;
    }
    Ok(())
}

/// A reopened incident keeps its room.
pub async fn keep(tx: &mut Tx, r: IncidentRef) -> Result<()> {
    jobs::cancel(
        &mut **tx,
        &Archive {
            incident: r.number(),
        },
    )
    .await?;
    Ok(())
}

/// What a refusal means, for the thread.
fn meaning(code: &str) -> &'static str {
    match code {
        c if c.starts_with("missing_scope") => {
            "the Slack app lacks the `channels:manage` scope: add it under OAuth & Permissions and reinstall the app"
        }
        "restricted_action" => {
            "the workspace lets only some people create channels: ask an admin to allow apps to, or turn `incidents.channel_for` off"
        }
        "name_taken" => {
            "every name Klaxon tried (inc-<n>-<title>, then -2 … -5) is taken: archive or rename the old channels, or `/incident sev` the incident down and up again to retry"
        }
        _ => "Slack will not create it as asked",
    }
}

impl Job for Open {
    const KIND: &'static str = "room_open";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("room-open:{}", self.incident))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let Some(incident) = incidents::get(ctx.store.pool(), r).await? else {
            return Ok(());
        };
        if incident.room.is_some() || incident.is_resolved() {
            return Ok(());
        }
        // Slack first, with no transaction open.
        let mut attempt = 1;
        let created = loop {
            let name = room::channel_name(r, &incident.title, attempt);
            match ctx.conversations.create(&name).await {
                Ok(id) => break Ok((id, name)),
                // A retry: an earlier attempt's create may have worked without
                // Klaxon hearing the answer. That channel is this incident's.
                Err(Refusal::NameTaken) if run.attempts > 1 => {
                    match ctx
                        .conversations
                        .find_own(&name, incident.opened_at.minus(CLOCK_SKEW))
                        .await
                    {
                        Ok(Some(id)) => {
                            tracing::info!(incident = %r, channel = %id, "found the channel an earlier attempt created");
                            break Ok((id, name));
                        }
                        Ok(None) if attempt < NAME_ATTEMPTS => attempt += 1,
                        Ok(None) => break Err("name_taken".to_string()),
                        Err(e) => {
                            return Err(JobError::Retry {
                                reason: format!("conversations.list: {e:?}"),
                                after: None,
                            });
                        }
                    }
                }
                Err(Refusal::NameTaken) if attempt < NAME_ATTEMPTS => attempt += 1,
                Err(Refusal::NameTaken) => break Err("name_taken".to_string()),
                Err(Refusal::Refused(code)) => break Err(code),
                Err(Refusal::Retry(code)) => {
                    return Err(JobError::Retry {
                        reason: format!("conversations.create: {code}"),
                        after: None,
                    });
                }
            }
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        let Some(incident) = incidents::get(&mut *tx, r).await? else {
            return Ok(());
        };
        let thread = ctx.thread();
        let (channel, name) = match created {
            Err(code) => {
                tracing::warn!(incident = %r, error = %code, "Slack refused the incident's own channel; it stays in its thread");
                thread
                    .post(
                        &mut tx,
                        &incident,
                        Entry::new(
                            EventKind::Channel,
                            format!("could not create its own channel ({code})"),
                        ),
                        &format!(
                            "⚠️ {r} stays in this thread: Slack refused to create its own channel (`{}`: {}).",
                            slack_escape(&code),
                            meaning(&code)
                        ),
                        now,
                    )
                    .await?;
                ctx.commit_job(&run, tx).await?;
                return Ok(());
            }
            Ok(created) => created,
        };
        let Some(channel_id) = crate::incident::ChannelId::parse(&channel) else {
            return Err(JobError::Retry {
                reason: format!("conversations.create answered an odd channel id {channel}"),
                after: None,
            });
        };
        let Some(with_room) = incidents::set_room(&mut *tx, r, &channel_id, &name).await? else {
            ctx.commit_job(&run, tx).await?;
            return Ok(());
        };
        let copy = thread.post_room_root(&mut tx, &with_room, now).await?;
        incidents::set_room_root(&mut *tx, r, copy).await?;
        let Some(current) = incidents::get(&mut *tx, r).await? else {
            return Ok(());
        };
        thread
            .record(
                &mut tx,
                &current,
                Entry::new(
                    EventKind::Channel,
                    format!("opened its own channel #{name}"),
                ),
                now,
            )
            .await?;
        thread
            .reply(
                &mut tx,
                &current,
                crate::blocks::text_message(&format!(
                    "🏠 This is {r}'s own channel: the response is told here, and the thread in <#{}> keeps the headlines (status updates, severity, resolution). `/incident` commands typed here act on {r}.",
                    current.channel
                )),
                now,
            )
            .await?;
        thread
            .headline(
                &mut tx,
                &current,
                &format!(
                    "🏠 {r} has its own channel: <#{channel_id}>. The response is told there; this thread keeps the headlines."
                ),
                now,
            )
            .await?;
        thread.refresh_root(&mut tx, &current, now).await?;
        // Everyone already on it.
        let mut people: Vec<SlackUserId> = Vec::new();
        let held = roles::of_incident(&mut *tx, r).await?;
        for u in [&current.opened_by, &current.owner, &current.acknowledged_by]
            .into_iter()
            .flatten()
            .chain(held.iter().map(|(_, u)| u))
            .chain(crate::store::pages::people_paged(&mut *tx, r).await?.iter())
        {
            if !people.contains(u) {
                people.push(u.clone());
            }
        }
        let refs: Vec<&SlackUserId> = people.iter().collect();
        invite(&mut tx, &current, &refs, now).await?;
        ctx.commit_job(&run, tx).await?;
        // The topic last: the room works without it.
        let topic = room::topic(r, &current.title);
        if let Err(e) = ctx
            .conversations
            .set_topic(channel_id.as_str(), &topic)
            .await
        {
            tracing::warn!(incident = %r, error = ?e, "could not set the room's topic");
        }
        Ok(())
    }
}

impl Job for Invite {
    const KIND: &'static str = "room_invite";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, _run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let Some(room) = incidents::get(ctx.store.pool(), r)
            .await?
            .and_then(|i| i.room)
        else {
            return Ok(());
        };
        for user in &self.users {
            match ctx.conversations.invite(room.channel.as_str(), user).await {
                Ok(()) => {}
                Err(Refusal::Retry(code)) => {
                    // Invitations are idempotent: the whole list again later.
                    return Err(JobError::Retry {
                        reason: format!("conversations.invite: {code}"),
                        after: None,
                    });
                }
                Err(Refusal::Refused(code)) => {
                    tracing::warn!(incident = %r, user, error = %code, "could not invite somebody to the incident's channel");
                }
                Err(Refusal::NameTaken) => {}
            }
        }
        Ok(())
    }
}

impl Job for Archive {
    const KIND: &'static str = "room_archive";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("room-archive:{}", self.incident))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let Some(incident) = incidents::get(ctx.store.pool(), r).await? else {
            return Ok(());
        };
        let (Some(room), true) = (&incident.room, incident.is_resolved()) else {
            return Ok(());
        };
        // First, nothing new goes to the channel (later messages go to the
        // thread); then what already waits for it is delivered; then it is
        // archived. A message queued for an archived channel would wait forever.
        if !room.archived {
            let mut tx = ctx.begin().await?;
            incidents::set_room_archived(&mut *tx, r, run.started).await?;
            ctx.commit(tx).await?;
        }
        let waiting =
            crate::store::outbox::pending_in_channel(ctx.store.pool(), &room.channel).await?;
        if waiting > 0 {
            return Err(JobError::NotYet {
                reason: format!("{waiting} messages still go to the incident's channel"),
                after: std::time::Duration::from_secs(15),
            });
        }
        let outcome = match ctx.conversations.archive(room.channel.as_str()).await {
            Ok(()) => "archived its own channel".to_string(),
            Err(Refusal::Retry(code)) => {
                return Err(JobError::Retry {
                    reason: format!("conversations.archive: {code}"),
                    after: None,
                });
            }
            Err(Refusal::Refused(code)) => {
                tracing::warn!(incident = %r, error = %code, "could not archive the incident's channel");
                format!("could not archive its own channel ({code})")
            }
            Err(Refusal::NameTaken) => return Ok(()),
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        ctx.thread()
            .record(
                &mut tx,
                &incident,
                Entry::new(EventKind::Channel, outcome),
                run.started,
            )
            .await?;
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}
