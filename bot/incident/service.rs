//! Applying commands: one transaction per change, messages enqueued inside it.
//!
//! Each change follows the same steps: find the incident (the `INC-n` given, or
//! the channel's only open one), open a transaction whose first statement is
//! the conditional update, add the timeline event, enqueue the thread reply and
//! the root message's refresh, commit, and wake the outbox sender. If the update
//! does not apply (already resolved, same severity …) nothing is written and
//! the person is told why.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

use super::command::{Command, HELP};
use super::{
    ChannelId, EventKind, Incident, IncidentRef, IncidentSource, Severity, SlackUserId,
    TimelineEvent,
};
use crate::config::Settings;
use crate::escalation::{EscalationSettings, engine};
use crate::slack::blocks;
use crate::store::incidents::{self, NewIncident, Resolution};
use crate::store::outbox::{self, MessageKind, NewMessage};
use crate::store::{Store, StoreError, Tx, jobs};
use crate::telemetry::{Metrics, SourceLabels};
use crate::templates::{self, TemplateError, TemplateName, Templates, slack_escape};
use crate::time::{Millis, human_duration};

/// Who asked, and in which channel.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: SlackUserId,
    pub channel: ChannelId,
}

/// What to tell the person who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It happened; the text says what.
    Done(String),
    /// Nothing changed, and the text says why (a mistake, not a fault).
    Refused(String),
}

impl Answer {
    pub fn text(&self) -> &str {
        match self {
            Answer::Done(t) | Answer::Refused(t) => t,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "no Slack channel for alerts of route {0}: set slack.incident_channel or the route's channel"
    )]
    NoChannel(String),
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        ServiceError::Store(StoreError::Database(e))
    }
}

type ServiceResult<T> = Result<T, ServiceError>;

/// The incident operations behind slash commands and buttons.
#[derive(Debug, Clone)]
pub struct IncidentService {
    store: Store,
    templates: Arc<Templates>,
    outbox_wake: Arc<Notify>,
    jobs_wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    settings: Arc<Settings>,
}

/// Notes the incident on the request's span, so its log lines carry the ref.
fn note_incident(r: IncidentRef) {
    tracing::Span::current().record("incident", tracing::field::display(r));
}

impl IncidentService {
    pub fn new(
        store: Store,
        templates: Arc<Templates>,
        outbox_wake: Arc<Notify>,
        jobs_wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        settings: Arc<Settings>,
    ) -> Self {
        IncidentService {
            store,
            templates,
            outbox_wake,
            jobs_wake,
            metrics,
            settings,
        }
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn escalation(&self) -> &EscalationSettings {
        &self.settings.escalation
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Appends a system event to the timeline and posts `reply` in the thread.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn post_event(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        kind: EventKind,
        subject: Option<&SlackUserId>,
        timeline_text: &str,
        reply: &str,
        now: Millis,
    ) -> ServiceResult<()> {
        incidents::add_event(
            &mut **tx,
            incident.reference,
            &TimelineEvent {
                at: now,
                kind,
                actor: None,
                text: timeline_text.to_string(),
                subject: subject.cloned(),
            },
        )
        .await?;
        self.enqueue(
            tx,
            incident,
            MessageKind::Reply,
            blocks::text_message(reply),
            now,
        )
        .await
    }

    /// Runs a parsed `/incident` command for `actor`.
    pub async fn execute(&self, actor: &Actor, command: Command) -> ServiceResult<Answer> {
        match command {
            Command::Help => Ok(Answer::Done(HELP.to_string())),
            Command::List => self.list().await,
            Command::Open { severity, title } => {
                let severity = severity.unwrap_or(self.settings.incidents.default_severity);
                self.open(actor, severity, title.as_str()).await
            }
            Command::Ack { target } => match self.find(&actor.channel, target).await? {
                Ok(i) => self.acknowledge(&actor.user, i.reference).await,
                Err(why) => Ok(Answer::Refused(why)),
            },
            Command::Status { target, text } => match self.find(&actor.channel, target).await? {
                Ok(i) => self.status(&actor.user, &i, text.as_str()).await,
                Err(why) => Ok(Answer::Refused(why)),
            },
            Command::Sev { target, severity } => match self.find(&actor.channel, target).await? {
                Ok(i) => self.set_severity(&actor.user, &i, severity).await,
                Err(why) => Ok(Answer::Refused(why)),
            },
            Command::Assign { target, owner } => match self.find(&actor.channel, target).await? {
                Ok(i) => self.assign(&actor.user, &i, &owner).await,
                Err(why) => Ok(Answer::Refused(why)),
            },
            Command::Resolve { target, summary } => {
                match self.find(&actor.channel, target).await? {
                    Ok(i) => {
                        let resolution = Resolution {
                            root_cause: None,
                            resolution: Some(summary.as_str().to_string()),
                            follow_up: None,
                        };
                        self.resolve(Some(&actor.user), i.reference, &resolution)
                            .await
                    }
                    Err(why) => Ok(Answer::Refused(why)),
                }
            }
            Command::Escalate { target } => match self.find(&actor.channel, target).await? {
                Ok(i) => self.escalate(&actor.user, &i).await,
                Err(why) => Ok(Answer::Refused(why)),
            },
            Command::OnCall => Ok(self.on_call()),
            Command::Reopen { target: Some(r) } => self.reopen(&actor.user, r).await,
            Command::Reopen { target: None } => Ok(Answer::Refused(
                "Name the incident to reopen: `/incident reopen INC-12` (resolved incidents are not the channel's open one).".into(),
            )),
            Command::Silence { target, duration } => {
                match self.find(&actor.channel, target).await? {
                    Ok(i) => self.silence(&actor.user, &i, duration).await,
                    Err(why) => Ok(Answer::Refused(why)),
                }
            }
            // Actions need the whole app (permissions, the catalog): see http::slack.
            Command::Run { .. } | Command::Actions => Ok(Answer::Refused(
                "Actions are handled by the Slack endpoint.".into(),
            )),
        }
    }

    /// The incident named, or the channel's only open one; `Err` says why not.
    pub async fn find(
        &self,
        channel: &ChannelId,
        target: Option<IncidentRef>,
    ) -> ServiceResult<Result<Incident, String>> {
        if let Some(r) = target {
            note_incident(r);
            return Ok(incidents::get(self.store.pool(), r).await?.ok_or_else(|| {
                format!("{r} does not exist. `/incident list` shows the open incidents.")
            }));
        }
        let open = incidents::open_in_channel(self.store.pool(), channel, 10).await?;
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

    fn root_payload(&self, incident: &Incident) -> ServiceResult<Value> {
        let text = self.templates.render(
            TemplateName::IncidentOpened,
            &templates::incident_data(incident),
        )?;
        // The Run check menu offers read-only actions that need no parameters.
        let checks: Vec<(String, String)> = self
            .settings
            .actions
            .actions
            .values()
            .filter(|a| a.read_only && a.params.iter().all(|p| p.default.is_some()))
            .map(|a| (a.name.clone(), a.description.clone()))
            .collect();
        Ok(blocks::root_message(incident, &text, &checks))
    }

    pub(crate) async fn enqueue(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        kind: MessageKind,
        payload: Value,
        now: Millis,
    ) -> ServiceResult<()> {
        self.enqueue_tracked(tx, incident, kind, payload, None, now)
            .await
            .map(|_| ())
    }

    /// Enqueues a message of the incident; returns its outbox id so a later
    /// [`MessageKind::Update`] (naming it in `updates`) can change it.
    pub(crate) async fn enqueue_tracked(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        kind: MessageKind,
        payload: Value,
        updates: Option<i64>,
        now: Millis,
    ) -> ServiceResult<i64> {
        Ok(outbox::enqueue(
            &mut **tx,
            &NewMessage {
                incident: Some(incident.reference),
                kind,
                channel: &incident.channel,
                user: None,
                payload,
                updates,
            },
            now,
        )
        .await?)
    }

    /// Enqueues a reply in the thread and a refresh of the root message.
    async fn reply_and_refresh(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        reply: &str,
        now: Millis,
    ) -> ServiceResult<()> {
        self.enqueue(
            tx,
            incident,
            MessageKind::Reply,
            blocks::text_message(reply),
            now,
        )
        .await?;
        let root = self.root_payload(incident)?;
        self.enqueue(tx, incident, MessageKind::UpdateRoot, root, now)
            .await
    }

    async fn commit(&self, tx: Tx) -> ServiceResult<()> {
        tx.commit().await?;
        self.wake_workers();
        Ok(())
    }

    /// Tells the outbox sender and the scheduler that new work may wait.
    pub(crate) fn wake_workers(&self) {
        self.outbox_wake.notify_one();
        self.jobs_wake.notify_one();
    }

    /// Declares an incident: the row, its first timeline event and the root message.
    pub async fn open(
        &self,
        actor: &Actor,
        severity: Severity,
        title: &str,
    ) -> ServiceResult<Answer> {
        let channel = self
            .settings
            .slack
            .incident_channel
            .clone()
            .unwrap_or_else(|| actor.channel.clone());
        let now = Millis::now();
        let ladder = self
            .settings
            .escalation
            .ladder_for(severity)
            .map(|l| l.name.clone());
        let mut tx = self.store.begin().await?;
        let incident = self
            .open_in(
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
        self.commit(tx).await?;
        self.count_opened(IncidentSource::Slack);
        Ok(Answer::Done(format!(
            "🚨 *{}* declared ({severity}, respond within {}). The thread is in <#{}>. \
             Run `/incident ack {}` when you are on it.",
            incident.reference,
            severity.response_target(),
            channel,
            incident.reference
        )))
    }

    /// Inserts an incident with its first timeline event, its root message and
    /// (when a ladder pages for it) the first escalation step, inside `tx`.
    pub(crate) async fn open_in(
        &self,
        tx: &mut Tx,
        new: &NewIncident<'_>,
        opened_text: &str,
        now: Millis,
    ) -> ServiceResult<Incident> {
        let incident = incidents::insert(&mut **tx, new).await?;
        note_incident(incident.reference);
        incidents::add_event(
            &mut **tx,
            incident.reference,
            &TimelineEvent {
                at: now,
                kind: EventKind::Opened,
                actor: new.opened_by.cloned(),
                text: opened_text.to_string(),
                subject: None,
            },
        )
        .await?;
        let root = self.root_payload(&incident)?;
        self.enqueue(tx, &incident, MessageKind::Root, root, now)
            .await?;
        if new.ladder.is_some() {
            jobs::enqueue(&mut **tx, &engine::job(incident.reference, 0, now), now).await?;
        }
        tracing::info!(incident = %incident.reference, severity = %incident.severity, source = incident.source.as_str(), "incident opened");
        Ok(incident)
    }

    /// Counts an incident opened (call after the commit).
    pub(crate) fn count_opened(&self, source: IncidentSource) {
        self.metrics
            .incidents_opened
            .get_or_create(&SourceLabels {
                source: source.as_str().into(),
            })
            .inc();
    }

    /// Explains why a conditional update did not apply.
    async fn why_not(&self, r: IncidentRef, verb: &str) -> ServiceResult<Answer> {
        Ok(Answer::Refused(
            match incidents::get(self.store.pool(), r).await? {
                None => format!("{r} does not exist."),
                Some(i) if i.is_resolved() => {
                    format!("{r} is already resolved, so it cannot {verb}.")
                }
                Some(_) => format!("{r} did not change."),
            },
        ))
    }

    pub async fn status(
        &self,
        actor: &SlackUserId,
        incident: &Incident,
        text: &str,
    ) -> ServiceResult<Answer> {
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = incidents::touch_open(&mut *tx, incident.reference, now).await? else {
            tx.rollback().await?;
            return self
                .why_not(incident.reference, "take status updates")
                .await;
        };
        incidents::add_event(
            &mut *tx,
            current.reference,
            &TimelineEvent {
                at: now,
                kind: EventKind::StatusUpdate,
                actor: Some(actor.clone()),
                text: format!("status update: {text}"),
                subject: None,
            },
        )
        .await?;
        let reply = self.templates.render(
            TemplateName::StatusUpdate,
            &templates::status_data(&current, Some(actor), text, now),
        )?;
        self.enqueue(
            &mut tx,
            &current,
            MessageKind::Reply,
            blocks::text_message(&reply),
            now,
        )
        .await?;
        self.commit(tx).await?;
        Ok(Answer::Done(format!(
            "Status update posted in the {} thread.",
            current.reference
        )))
    }

    pub async fn set_severity(
        &self,
        actor: &SlackUserId,
        incident: &Incident,
        severity: Severity,
    ) -> ServiceResult<Answer> {
        if incident.severity == severity && !incident.is_resolved() {
            return Ok(Answer::Refused(format!(
                "{} is already {severity}.",
                incident.reference
            )));
        }
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) =
            incidents::set_severity(&mut *tx, incident.reference, severity, now).await?
        else {
            tx.rollback().await?;
            return self.why_not(incident.reference, "change severity").await;
        };
        let previous = incident.severity;
        incidents::add_event(
            &mut *tx,
            current.reference,
            &TimelineEvent {
                at: now,
                kind: EventKind::SeverityChanged,
                actor: Some(actor.clone()),
                text: format!("changed severity from {previous} to {severity}"),
                subject: None,
            },
        )
        .await?;
        let reply = self.templates.render(
            TemplateName::SeverityChanged,
            &templates::change_data(&current, Some(actor), Some(previous)),
        )?;
        self.reply_and_refresh(&mut tx, &current, &reply, now)
            .await?;
        let ladder = self
            .settings
            .escalation
            .ladder_for(severity)
            .map(|l| l.name.clone());
        if ladder != current.ladder && current.state == super::IncidentState::Open {
            match &ladder {
                Some(name) => {
                    incidents::set_escalation(&mut *tx, current.reference, Some(name), None)
                        .await?;
                    engine::start(&mut tx, current.reference, 0, now).await?;
                }
                None => {
                    jobs::cancel_for_incident(&mut *tx, current.reference, engine::KIND).await?;
                }
            }
        }
        self.commit(tx).await?;
        Ok(Answer::Done(format!(
            "{} is now {severity} (was {previous}).",
            current.reference
        )))
    }

    pub async fn assign(
        &self,
        actor: &SlackUserId,
        incident: &Incident,
        owner: &SlackUserId,
    ) -> ServiceResult<Answer> {
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = incidents::set_owner(&mut *tx, incident.reference, owner, now).await?
        else {
            tx.rollback().await?;
            return self.why_not(incident.reference, "be assigned").await;
        };
        incidents::add_event(
            &mut *tx,
            current.reference,
            &TimelineEvent {
                at: now,
                kind: EventKind::OwnerAssigned,
                actor: Some(actor.clone()),
                text: "assigned the incident to".into(),
                subject: Some(owner.clone()),
            },
        )
        .await?;
        let reply = self.templates.render(
            TemplateName::OwnerAssigned,
            &templates::change_data(&current, Some(actor), None),
        )?;
        self.reply_and_refresh(&mut tx, &current, &reply, now)
            .await?;
        self.commit(tx).await?;
        Ok(Answer::Done(format!(
            "<@{owner}> now owns {}.",
            current.reference
        )))
    }

    pub async fn acknowledge(&self, actor: &SlackUserId, r: IncidentRef) -> ServiceResult<Answer> {
        note_incident(r);
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = incidents::acknowledge(&mut *tx, r, actor, now).await? else {
            tx.rollback().await?;
            return Ok(Answer::Refused(
                match incidents::get(self.store.pool(), r).await? {
                    None => format!("{r} does not exist."),
                    Some(i) if i.is_resolved() => format!("{r} is already resolved."),
                    Some(i) => format!(
                        "{r} was already acknowledged{}{}.",
                        i.acknowledged_by
                            .map(|u| format!(" by <@{u}>"))
                            .unwrap_or_default(),
                        i.acknowledged_at
                            .map(|t| format!(" at {}", t.time_utc()))
                            .unwrap_or_default()
                    ),
                },
            ));
        };
        jobs::cancel_for_incident(&mut *tx, r, engine::KIND).await?;
        let mtta = current.time_to_acknowledge().unwrap_or_default();
        incidents::add_event(
            &mut *tx,
            r,
            &TimelineEvent {
                at: now,
                kind: EventKind::Acknowledged,
                actor: Some(actor.clone()),
                text: format!("acknowledged after {}", human_duration(mtta)),
                subject: None,
            },
        )
        .await?;
        let reply = self.templates.render(
            TemplateName::Acknowledged,
            &templates::change_data(&current, Some(actor), None),
        )?;
        self.reply_and_refresh(&mut tx, &current, &reply, now)
            .await?;
        self.commit(tx).await?;
        Ok(Answer::Done(format!(
            "You acknowledged {r} ({} after it opened).",
            human_duration(mtta)
        )))
    }

    /// Resolves and posts the resolution summary with the whole timeline.
    pub async fn resolve(
        &self,
        actor: Option<&SlackUserId>,
        r: IncidentRef,
        resolution: &Resolution,
    ) -> ServiceResult<Answer> {
        note_incident(r);
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = self.resolve_in(&mut tx, actor, r, resolution, now).await? else {
            tx.rollback().await?;
            return self.why_not(r, "be resolved again").await;
        };
        self.commit(tx).await?;
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
    pub(crate) async fn resolve_in(
        &self,
        tx: &mut Tx,
        actor: Option<&SlackUserId>,
        r: IncidentRef,
        resolution: &Resolution,
        now: Millis,
    ) -> ServiceResult<Option<Incident>> {
        let Some(current) = incidents::resolve(&mut **tx, r, actor, now, resolution).await? else {
            return Ok(None);
        };
        jobs::cancel_for_incident(&mut **tx, r, engine::KIND).await?;
        let summary = resolution.resolution.clone().unwrap_or_default();
        incidents::add_event(
            &mut **tx,
            r,
            &TimelineEvent {
                at: now,
                kind: EventKind::Resolved,
                actor: actor.cloned(),
                text: if summary.is_empty() {
                    "resolved the incident".into()
                } else {
                    format!("resolved the incident: {summary}")
                },
                subject: None,
            },
        )
        .await?;
        let timeline = incidents::timeline(&mut **tx, r).await?;
        let reply = self.templates.render(
            TemplateName::ResolutionSummary,
            &templates::resolution_data(&current, &timeline),
        )?;
        self.reply_and_refresh(tx, &current, &reply, now).await?;
        if self.settings.alerts.expire_silences_on_resolve
            && !crate::store::alerts::active_silences(&mut **tx, r, now)
                .await?
                .is_empty()
        {
            jobs::enqueue(&mut **tx, &crate::alerts::silence::expire_job(r, now), now).await?;
        }
        tracing::info!(incident = %r, "incident resolved");
        Ok(Some(current))
    }

    /// Tells one person something only they see (through the outbox, like every message).
    pub async fn tell(
        &self,
        channel: &ChannelId,
        user: &SlackUserId,
        text: &str,
    ) -> ServiceResult<()> {
        let now = Millis::now();
        outbox::enqueue(
            self.store.pool(),
            &NewMessage {
                incident: None,
                kind: MessageKind::Ephemeral,
                channel,
                user: Some(user),
                payload: blocks::text_message(text),
                updates: None,
            },
            now,
        )
        .await?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Pages the next level of the ladder now.
    pub async fn escalate(
        &self,
        actor: &SlackUserId,
        incident: &Incident,
    ) -> ServiceResult<Answer> {
        let r = incident.reference;
        let Some(ladder) = incident
            .ladder
            .as_deref()
            .and_then(|n| self.settings.escalation.ladder(n))
            .or_else(|| self.settings.escalation.ladder_for(incident.severity))
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
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = incidents::touch_open(&mut *tx, r, now).await? else {
            tx.rollback().await?;
            return self.why_not(r, "be escalated").await;
        };
        let level = ladder
            .level(next)
            .map(|l| l.name.clone())
            .unwrap_or_default();
        incidents::add_event(
            &mut *tx,
            r,
            &TimelineEvent {
                at: now,
                kind: EventKind::Escalated,
                actor: Some(actor.clone()),
                text: format!("escalated to {level} by hand"),
                subject: None,
            },
        )
        .await?;
        // The step before `next` counts as done, so the job pages `next` even after an ack.
        incidents::set_escalation(&mut *tx, r, Some(&ladder.name), next.checked_sub(1)).await?;
        if current.state == super::IncidentState::Acknowledged {
            jobs::enqueue(&mut *tx, &engine::job_forced(r, next, now), now).await?;
        } else {
            engine::start(&mut tx, r, next, now).await?;
        }
        self.commit(tx).await?;
        Ok(Answer::Done(format!("Paging {level} for {r} now.")))
    }

    /// Reopens an incident: a new acknowledgement is needed and its ladder resumes
    /// at the level after the last one paged.
    pub async fn reopen(&self, actor: &SlackUserId, r: IncidentRef) -> ServiceResult<Answer> {
        note_incident(r);
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        let Some(current) = incidents::reopen(&mut *tx, r, now).await? else {
            tx.rollback().await?;
            return Ok(Answer::Refused(
                match incidents::get(self.store.pool(), r).await? {
                    None => format!("{r} does not exist."),
                    Some(_) => format!("{r} is open already."),
                },
            ));
        };
        incidents::add_event(
            &mut *tx,
            r,
            &TimelineEvent {
                at: now,
                kind: EventKind::Reopened,
                actor: Some(actor.clone()),
                text: "reopened the incident".into(),
                subject: None,
            },
        )
        .await?;
        let reply = format!("🔁 <@{actor}> reopened {r}; it needs a new acknowledgement.");
        self.reply_and_refresh(&mut tx, &current, &reply, now)
            .await?;
        let ladder = current
            .ladder
            .as_deref()
            .and_then(|n| self.settings.escalation.ladder(n));
        if let Some(ladder) = ladder {
            let next = current
                .escalation_step
                .map(|s| s + 1)
                .filter(|s| ladder.position(*s).is_some())
                .unwrap_or(0);
            incidents::set_escalation(&mut *tx, r, None, next.checked_sub(1)).await?;
            engine::start(&mut tx, r, next, now).await?;
        }
        self.commit(tx).await?;
        Ok(Answer::Done(format!("{r} is open again.")))
    }

    /// Asks Alertmanager (through a job) to silence the incident's alert groups.
    pub async fn silence(
        &self,
        actor: &SlackUserId,
        incident: &Incident,
        duration: std::time::Duration,
    ) -> ServiceResult<Answer> {
        let r = incident.reference;
        let alerts = &self.settings.alerts;
        if alerts.alertmanager_url.is_none() {
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
        let now = Millis::now();
        let mut tx = self.store.begin().await?;
        if incidents::touch_open(&mut *tx, r, now).await?.is_none() {
            tx.rollback().await?;
            return self.why_not(r, "be silenced").await;
        }
        jobs::enqueue(
            &mut *tx,
            &crate::alerts::silence::create_job(r, duration, actor, now),
            now,
        )
        .await?;
        self.commit(tx).await?;
        Ok(Answer::Done(format!(
            "Asking Alertmanager to silence {r} for {}; the thread will say when it is in place.",
            human_duration(duration)
        )))
    }

    /// Who is on call now in every schedule.
    pub fn on_call(&self) -> Answer {
        let schedules = &self.settings.escalation.schedules;
        if schedules.is_empty() {
            return Answer::Done("No on-call schedules are configured.".into());
        }
        let now = jiff::Timestamp::now();
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

    /// Sends `text` to `user` in a direct message.
    pub async fn direct_message(
        &self,
        channel: &ChannelId,
        user: &SlackUserId,
        text: &str,
    ) -> ServiceResult<()> {
        outbox::enqueue(
            self.store.pool(),
            &NewMessage {
                incident: None,
                kind: MessageKind::Direct,
                channel,
                user: Some(user),
                payload: blocks::text_message(text),
                updates: None,
            },
            Millis::now(),
        )
        .await?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    pub async fn list(&self) -> ServiceResult<Answer> {
        let open = incidents::list_open(self.store.pool(), 50).await?;
        if open.is_empty() {
            return Ok(Answer::Done("No open incidents. 🎉".into()));
        }
        let now = Millis::now();
        let mut lines = vec![format!("*{} open incident(s)*", open.len())];
        for i in &open {
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
                i.channel
            ));
        }
        Ok(Answer::Done(lines.join("\n")))
    }
}
