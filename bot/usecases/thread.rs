//! The one seam through which use cases write an incident's story: its timeline,
//! its thread and its root message.
//!
//! Every change to an incident follows the same steps: a conditional update (in
//! the use case), then [`Thread::post`]: the timeline event, the reply in the
//! thread and, when the state shown changed, the root message re-rendered. All of
//! it is rows in the caller's transaction; the outbox sender delivers the
//! messages after the commit, in order.
//!
//! A major incident with a channel of its own (its room) is told there: every
//! reply goes to the room, and the incident channel's thread keeps the
//! headlines ([`EventKind::is_headline`]: status updates, severity,
//! resolution) and a root that links to the room. The room holds a copy of
//! the root, edited with it.

use serde_json::Value;

use super::{Ctx, Result};
use crate::alerts::AlertStatus;
use crate::blocks;
use crate::incident::{ChannelId, EventKind, Incident, IncidentSource, SlackUserId, TimelineEvent};
use crate::store::outbox::{self, FilePayload, MessageKind, NewMessage};
use crate::store::{Tx, alerts, incidents, roles};
use crate::templates::{self, AlertsShown, TemplateName};
use crate::time::Millis;

/// Alerts the root message shows at most; it counts the rest.
const SHOWN_IN_ROOT: usize = 5;

/// One line of an incident's timeline, as a use case writes it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub kind: EventKind,
    /// Who did it (`None`: Klaxon itself, or an alert sender).
    pub actor: Option<&'a SlackUserId>,
    /// Plain text, e.g. "changed severity from P2 to P1".
    pub text: String,
    /// The person it is about (a new owner, the first person paged).
    pub subject: Option<&'a SlackUserId>,
}

impl<'a> Entry<'a> {
    pub fn new(kind: EventKind, text: impl Into<String>) -> Entry<'a> {
        Entry {
            kind,
            actor: None,
            text: text.into(),
            subject: None,
        }
    }

    pub fn by(mut self, actor: &'a SlackUserId) -> Entry<'a> {
        self.actor = Some(actor);
        self
    }

    pub fn about(mut self, subject: Option<&'a SlackUserId>) -> Entry<'a> {
        self.subject = subject;
        self
    }
}

impl Ctx {
    /// The seam every use case writes an incident's thread through.
    pub fn thread(&self) -> Thread<'_> {
        Thread::new(self)
    }
}

/// Writes an incident's timeline, thread and root, inside a transaction.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    ctx: &'a Ctx,
}

impl<'a> Thread<'a> {
    pub fn new(ctx: &'a Ctx) -> Thread<'a> {
        Thread { ctx }
    }

    /// Appends `entry` to the incident's timeline.
    pub async fn record(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        entry: Entry<'_>,
        now: Millis,
    ) -> Result<()> {
        incidents::add_event(
            &mut **tx,
            incident.reference,
            &TimelineEvent {
                at: now,
                kind: entry.kind,
                actor: entry.actor.cloned(),
                text: entry.text,
                subject: entry.subject.cloned(),
            },
        )
        .await?;
        Ok(())
    }

    /// Records `entry` and posts `reply` in the thread.
    pub async fn post(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        entry: Entry<'_>,
        reply: &str,
        now: Millis,
    ) -> Result<()> {
        let headline = entry.kind.is_headline();
        self.record(tx, incident, entry, now).await?;
        self.reply(tx, incident, blocks::text_message(reply), now)
            .await?;
        if headline && incident.live_room().is_some() {
            self.headline(tx, incident, reply, now).await?;
        }
        Ok(())
    }

    /// Posts `text` in the incident channel's thread, even when the incident
    /// has a room (which [`Thread::reply`] writes to).
    pub async fn headline(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        text: &str,
        now: Millis,
    ) -> Result<()> {
        self.headline_message(tx, incident, blocks::text_message(text), now)
            .await
    }

    /// Like [`Thread::headline`], with a whole message (text and blocks).
    pub async fn headline_message(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        payload: Value,
        now: Millis,
    ) -> Result<()> {
        self.enqueue_to(
            tx,
            incident,
            MessageKind::Reply,
            &incident.channel,
            payload,
            None,
            false,
            now,
        )
        .await?;
        Ok(())
    }

    /// A direct message to `user` about the incident (not a page), in the
    /// caller's transaction.
    pub async fn dm(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        user: &SlackUserId,
        text: &str,
        now: Millis,
    ) -> Result<()> {
        self.direct_in(tx, incident, user, blocks::text_message(text), false, now)
            .await
    }

    async fn direct_in(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        user: &SlackUserId,
        payload: Value,
        page: bool,
        now: Millis,
    ) -> Result<()> {
        outbox::enqueue(
            tx,
            &NewMessage {
                // A page belongs to its incident (it is dropped when the
                // incident is acknowledged); another DM only to its person.
                incident: page.then_some(incident.reference),
                kind: MessageKind::Direct,
                channel: &incident.channel,
                user: Some(user),
                payload,
                updates: None,
                page,
            },
            now,
        )
        .await?;
        Ok(())
    }

    /// Shares a file where the incident is told: its room, else its thread.
    pub async fn share_file(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        mut file: FilePayload,
        now: Millis,
    ) -> Result<()> {
        file.in_thread = incident.live_room().is_none();
        let payload = serde_json::to_value(&file)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("file payload: {e}")))?;
        self.enqueue(tx, incident, MessageKind::File, payload, None, false, now)
            .await?;
        Ok(())
    }

    /// Posts the copy of the root message that opens the incident's room;
    /// returns its outbox id (see [`crate::incident::Room::root_message`]).
    pub async fn post_room_root(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        now: Millis,
    ) -> Result<i64> {
        let root = self.root_payload(tx, incident, Roles::Read).await?;
        self.enqueue(tx, incident, MessageKind::Post, root, None, false, now)
            .await
    }

    /// Records `entry`, posts `reply`, and re-renders the root message (the
    /// state, owner or severity it shows changed).
    pub async fn post_and_refresh(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        entry: Entry<'_>,
        reply: &str,
        now: Millis,
    ) -> Result<()> {
        self.post(tx, incident, entry, reply, now).await?;
        self.refresh_root(tx, incident, now).await
    }

    /// Records `entry` and posts a page in the thread: like [`Thread::post`], but
    /// the outbox drops the reply if the incident is acknowledged or resolved
    /// before it goes out.
    pub async fn post_page(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        entry: Entry<'_>,
        reply: &str,
        now: Millis,
    ) -> Result<()> {
        self.record(tx, incident, entry, now).await?;
        self.enqueue(
            tx,
            incident,
            MessageKind::Reply,
            blocks::text_message(reply),
            None,
            true,
            now,
        )
        .await?;
        if incident.live_room().is_none() {
            outbox::hurry_root(&mut **tx, incident.reference).await?;
        }
        Ok(())
    }

    /// A page's direct message to `user`, with its Acknowledge button; dropped
    /// like [`Thread::post_page`] if the incident is acknowledged first.
    pub async fn page_dm(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        user: &SlackUserId,
        text: &str,
        now: Millis,
    ) -> Result<()> {
        self.direct_in(
            tx,
            incident,
            user,
            blocks::page_dm(incident, text),
            true,
            now,
        )
        .await
    }

    /// A reply in the thread; returns its outbox id, so [`Thread::update`] can change it later.
    pub async fn reply(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        payload: Value,
        now: Millis,
    ) -> Result<i64> {
        self.enqueue(tx, incident, MessageKind::Reply, payload, None, false, now)
            .await
    }

    /// Replaces the text of an earlier message of the thread (`message`: its outbox id).
    pub async fn update(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        message: i64,
        text: &str,
        now: Millis,
    ) -> Result<()> {
        self.enqueue(
            tx,
            incident,
            MessageKind::Update,
            blocks::text_message(text),
            Some(message),
            false,
            now,
        )
        .await?;
        Ok(())
    }

    /// Posts the thread's root message: the first message of an incident
    /// opened in the caller's transaction (roles are assigned by later
    /// commands, so none is held yet and none is read).
    pub async fn post_root(&self, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
        let root = self.root_payload(tx, incident, Roles::NoneYet).await?;
        self.enqueue(tx, incident, MessageKind::Root, root, None, false, now)
            .await?;
        Ok(())
    }

    /// Re-renders the root message from the incident as it is now.
    pub async fn refresh_root(&self, tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
        let root = self.root_payload(tx, incident, Roles::Read).await?;
        if let Some(copy) = incident.live_room().and_then(|r| r.root_message) {
            self.enqueue(
                tx,
                incident,
                MessageKind::Update,
                root.clone(),
                Some(copy),
                false,
                now,
            )
            .await?;
        }
        self.enqueue(
            tx,
            incident,
            MessageKind::UpdateRoot,
            root,
            None,
            false,
            now,
        )
        .await?;
        Ok(())
    }

    /// Tells one person something only they see, in `channel` (outside any transaction).
    pub async fn tell(&self, channel: &ChannelId, user: &SlackUserId, text: &str) -> Result<()> {
        self.outside_tx(MessageKind::Ephemeral, channel, user, text)
            .await
    }

    /// Sends `text` to `user` in a direct message (outside any transaction).
    pub async fn direct(&self, channel: &ChannelId, user: &SlackUserId, text: &str) -> Result<()> {
        self.outside_tx(MessageKind::Direct, channel, user, text)
            .await
    }

    async fn outside_tx(
        &self,
        kind: MessageKind,
        channel: &ChannelId,
        user: &SlackUserId,
        text: &str,
    ) -> Result<()> {
        outbox::enqueue_alone(
            self.ctx.store.pool(),
            &NewMessage {
                incident: None,
                kind,
                channel,
                user: Some(user),
                payload: blocks::text_message(text),
                updates: None,
                page: false,
            },
            self.ctx.clock.now(),
        )
        .await?;
        self.ctx.outbox_wake.message();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        kind: MessageKind,
        payload: Value,
        updates: Option<i64>,
        page: bool,
        now: Millis,
    ) -> Result<i64> {
        // With a room, what would be a reply in the thread is a message in the room.
        let (kind, channel) = match (incident.live_room(), kind) {
            (Some(room), MessageKind::Reply) => (MessageKind::Post, &room.channel),
            (Some(room), MessageKind::File | MessageKind::Post) => (kind, &room.channel),
            _ => (kind, &incident.channel),
        };
        self.enqueue_to(tx, incident, kind, channel, payload, updates, page, now)
            .await
    }

    /// Enqueues one message of the incident, as `kind`, to `channel`.
    #[allow(clippy::too_many_arguments)]
    async fn enqueue_to(
        &self,
        tx: &mut Tx,
        incident: &Incident,
        kind: MessageKind,
        channel: &ChannelId,
        payload: Value,
        updates: Option<i64>,
        page: bool,
        now: Millis,
    ) -> Result<i64> {
        Ok(outbox::enqueue(
            tx,
            &NewMessage {
                incident: Some(incident.reference),
                kind,
                channel,
                user: None,
                payload,
                updates,
                page,
            },
            now,
        )
        .await?)
    }

    /// The root message: the rendered "Initial Incident Post" (with, for an
    /// alert incident, its alerts: how many fire and the first few), its
    /// buttons, and a Run check menu of the read-only actions that need no
    /// parameters.
    async fn root_payload(&self, tx: &mut Tx, incident: &Incident, roles: Roles) -> Result<Value> {
        let alerts = if !incident.source.is_alerts() {
            None
        } else {
            let counts = alerts::counts(tx, incident.reference).await?;
            let shown = alerts::list(
                tx,
                incident.reference,
                AlertStatus::Firing,
                SHOWN_IN_ROOT as i64,
            )
            .await?;
            let shown: Vec<&crate::alerts::Alert> = shown.iter().collect();
            let can_ask =
                incident.source == IncidentSource::Alertmanager && self.ctx.alertmanager.is_some();
            Some(standing(
                incident.source,
                &counts,
                templates::alert_views(&shown, SHOWN_IN_ROOT),
                can_ask,
            ))
        };
        // In the order the configuration names the roles.
        let order = |role: &crate::incident::roles::RoleName| {
            self.ctx
                .settings
                .incidents
                .roles
                .iter()
                .position(|r| &r.name == role)
                .unwrap_or(usize::MAX)
        };
        let held = match roles {
            Roles::NoneYet => Vec::new(),
            Roles::Read => roles::of_incident(&mut **tx, incident.reference).await?,
        };
        let mut held: Vec<templates::RoleHeld> = held
            .into_iter()
            .map(|(role, user)| templates::RoleHeld { role, user })
            .collect();
        held.sort_by_key(|h| order(&h.role));
        let text = self.ctx.render(
            TemplateName::IncidentOpened,
            &templates::root_data(incident, alerts.as_ref(), &held),
        )?;
        let checks: Vec<(String, String)> = self
            .ctx
            .settings
            .actions
            .actions
            .values()
            .filter(|a| a.read_only && a.params.iter().all(|p| p.default.is_some()))
            .map(|a| (a.name.clone(), a.description.clone()))
            .collect();
        Ok(blocks::root_message(incident, &text, &checks))
    }
}

/// Where an incident's alerts stand, for a message (the root, a reply about
/// alerts). `can_ask`: Alertmanager's API can count what its notifications
/// leave out.
pub fn standing(
    source: IncidentSource,
    counts: &alerts::Counts,
    shown: Vec<serde_json::Value>,
    can_ask: bool,
) -> AlertsShown {
    AlertsShown {
        source: source.label().to_string(),
        listed: counts.firing,
        hidden: counts.hidden,
        resolved: counts.resolved,
        total: counts.total,
        hint: source.truncation_hint().to_string(),
        can_ask,
        shown,
    }
}

/// Whether the root message must read the roles held ([`Thread::post_root`]
/// knows none is held yet).
#[derive(Debug, Clone, Copy)]
enum Roles {
    NoneYet,
    Read,
}
