//! The use cases: what Klaxon does when something happens.
//!
//! One module per kind of trigger, each a set of functions over one [`Ctx`]:
//! a change to the database (one transaction that changes state, records the
//! timeline, enqueues the Slack messages and the jobs it starts) and an
//! [`Answer`] for the person who asked. They share one seam for writing to an
//! incident's thread ([`thread`]) and one place that decides who may do what
//! ([`access`]). Nothing here speaks HTTP or Slack's wire format: the adapters
//! (`crate::http`, `crate::slack`) call in, and the outside systems a use case
//! needs are reached through the [`ports`] the wiring plugs in.
//!
//! - [`incidents`]: `/incident` commands on incidents (open, ack, status, sev,
//!   assign, escalate, reopen, resolve, list, oncall) and the DM `ack`.
//! - [`escalate`]: the escalation step, a durable job per ladder level, and
//!   the DMs to a paged user group's members.
//! - [`reminders`]: status-update reminders and re-pages after a stale
//!   acknowledgement.
//! - [`heartbeats`]: dead man's switches: a missed beat opens an incident.
//! - [`maintenance`]: maintenance windows that hold a route's alerts and
//!   pause its ladders.
//! - [`alerts`]: alert notifications in, incident threads out; storm digests.
//! - [`silences`]: silences in Alertmanager from Slack, as jobs.
//! - [`actions`]: requests, approvals, runs and the audit log of approved actions.
//! - [`housekeeping`]: forgetting what only guarded against duplicates.
//! - [`roles`], [`rooms`], [`postmortem`], [`followups`]: big incidents:
//!   roles, a channel of their own, the postmortem skeleton, action items.
//! - [`access`], [`thread`], [`ports`], [`reach`]: the shared parts.

pub mod access;
pub mod actions;
pub mod alerts;
pub mod escalate;
pub mod followups;
pub mod heartbeats;
pub mod housekeeping;
pub mod incidents;
pub mod maintenance;
pub mod ports;
pub mod postmortem;
pub mod reach;
pub mod reminders;
pub mod roles;
pub mod rooms;
pub mod silences;
pub mod statuspage;
pub mod thread;

use std::sync::Arc;

use crate::config::Settings;
use crate::incident::{ChannelId, SlackUserId};
use crate::jobs::{self, JobError};
use crate::store::outbox::OutboxWake;
use crate::store::{Store, StoreError, Tx};
use crate::telemetry::Metrics;
use crate::templates::{TemplateError, TemplateName, Templates};
use crate::time::Clock;

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

/// Why a use case failed (a fault, not the person's mistake: that is an [`Answer::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "no Slack channel for alerts of route {0}: set slack.incident_channel or the route's channel"
    )]
    NoChannel(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(StoreError::Database(e))
    }
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => JobError::Store(e),
            other => JobError::Retry {
                reason: other.to_string(),
                after: None,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What every use case works with. Cheap to clone (handles and `Arc`s).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub store: Store,
    pub clock: Clock,
    pub settings: Arc<Settings>,
    pub templates: Arc<Templates>,
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox sender after a commit that enqueued messages
    /// ([`Ctx::commit`] does, from what the transaction noted).
    pub outbox_wake: Arc<OutboxWake>,
    /// Wakes the job lanes after a commit that enqueued jobs on them.
    pub jobs_wake: jobs::Wake,
    /// Slack user groups (permissions).
    pub directory: Arc<dyn ports::Directory>,
    /// What Klaxon knows about reaching Slack (credentials, blocked channels).
    pub reach: Arc<reach::SlackReach>,
    /// Alertmanager's silences API, when `alerts.alertmanager_url` is set.
    pub alertmanager: Option<Arc<dyn ports::Alertmanager>>,
    /// Slack conversations, for major incidents' own channels.
    pub conversations: Arc<dyn ports::Conversations>,
    /// The team's issue tracker, when `[followups] webhook_url` is set.
    pub tracker: Option<Arc<dyn ports::Tracker>>,
    /// Counts the changes to stored data this replica made or heard of: a
    /// copy of what the store said (`crate::store::readcache`) is stale once
    /// it moved.
    pub changes: Arc<crate::store::changes::Changes>,
    /// The open incidents `/incident list` shows, as last read.
    pub open_incidents: Arc<crate::store::readcache::ReadCache<Vec<crate::incident::Incident>>>,
}

impl Ctx {
    /// Renders a communication template.
    pub fn render(&self, name: TemplateName, data: &serde_json::Value) -> Result<String> {
        Ok(self.templates.render(name, data)?)
    }

    /// Opens a transaction. Write transactions start with a write statement (see `crate::store`).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.store.begin().await?)
    }

    /// Commits and wakes the workers the transaction gave work: the lanes it
    /// enqueued jobs on, the outbox sender if it enqueued messages.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        let enqueued = tx.commit().await?;
        self.wrote();
        self.wake_for(enqueued);
        Ok(())
    }

    /// Commits a job's finishing transaction (see [`crate::jobs::JobRun::commit`])
    /// and wakes the workers it gave work, as [`Ctx::commit`] does.
    pub async fn commit_job(&self, run: &jobs::JobRun, tx: Tx) -> Result<()> {
        let enqueued = run.commit(tx).await?;
        self.wrote();
        self.wake_for(enqueued);
        Ok(())
    }

    fn wake_for(&self, enqueued: crate::store::Enqueued) {
        self.outbox_wake.after_commit(enqueued);
        self.jobs_wake.after_commit(enqueued);
    }

    /// Counts a committed write (see [`Ctx::changes`]); [`Ctx::commit`] and
    /// [`Ctx::commit_job`] call it, a write outside a transaction must too.
    pub fn wrote(&self) {
        self.changes.wrote();
    }
}
