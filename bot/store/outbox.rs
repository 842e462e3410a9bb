//! The Slack outbox: messages wait here until Slack has them.
//!
//! A message is enqueued in the same transaction as the state change it reports.
//! Rows sharing an `ordering_key` (one incident's thread, its pages in the
//! thread, one person's pages for one incident, or one person's other direct
//! messages) are delivered strictly in id order: only the oldest pending row of each key is ever a candidate
//! ([`heads`]), and a sender must [`claim`] it (a short lease) before calling
//! Slack, so two senders never deliver the same row.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Any, AnyPool, Executor};
use tokio::sync::Notify;

use super::{Enqueued, StoreResult, Tx, col};
use crate::incident::{ChannelId, IncidentRef, IncidentState, Severity, SlackUserId};
use crate::time::Millis;

/// How a message relates to its incident's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// The thread's root; its `ts` becomes the incident's `thread_ts`.
    Root,
    /// A reply in the incident's thread.
    Reply,
    /// A `chat.update` of the root message.
    UpdateRoot,
    /// A `chat.postEphemeral` to one user.
    Ephemeral,
    /// A direct message to one user (`conversations.open` first).
    Direct,
    /// A `chat.update` of an earlier message of this outbox (`ref_outbox_id`).
    Update,
    /// A message of its own in `channel`, in no thread: what an incident's
    /// own channel (its room) receives.
    Post,
    /// A file shared in `channel` (in the incident's thread when the payload
    /// says `in_thread`) through Slack's upload flow
    /// (`files.getUploadURLExternal`, the upload, `files.completeUploadExternal`).
    /// The payload is a [`FilePayload`].
    File,
}

/// What a [`MessageKind::File`] row carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePayload {
    pub filename: String,
    pub title: String,
    /// The file's content (UTF-8 text: Klaxon shares Markdown).
    pub content: String,
    /// The message shown with the file.
    pub initial_comment: Option<String>,
    /// Shared in the incident's thread (it waits for the thread's root).
    pub in_thread: bool,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Root => "root",
            MessageKind::Reply => "reply",
            MessageKind::UpdateRoot => "update_root",
            MessageKind::Ephemeral => "ephemeral",
            MessageKind::Direct => "direct",
            MessageKind::Update => "update",
            MessageKind::Post => "post",
            MessageKind::File => "file",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            MessageKind::Root,
            MessageKind::Reply,
            MessageKind::UpdateRoot,
            MessageKind::Ephemeral,
            MessageKind::Direct,
            MessageKind::Update,
            MessageKind::Post,
            MessageKind::File,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A message to enqueue. `payload` is the Slack body without `channel`/`ts`/`thread_ts`
/// (the sender adds those when it knows them).
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub incident: Option<IncidentRef>,
    pub kind: MessageKind,
    pub channel: &'a ChannelId,
    pub user: Option<&'a SlackUserId>,
    pub payload: serde_json::Value,
    /// For [`MessageKind::Update`]: the outbox row of the message to update.
    pub updates: Option<i64>,
    /// A page (its thread reply or its DM): dropped rather than sent late when
    /// the incident is acknowledged or resolved before it goes out.
    pub page: bool,
}

/// How the outbox sender is told that messages wait: it sleeps on this
/// between passes, and a page enqueued during a long pass through a backlog
/// makes the pass end early (`crate::slack::outbox`), so the page is in the
/// next heads query instead of waiting for the pass to finish.
#[derive(Debug, Default)]
pub struct OutboxWake {
    notify: Notify,
    urgent: AtomicBool,
}

impl OutboxWake {
    /// Messages were enqueued (and committed): the sender looks.
    pub fn message(&self) {
        self.notify.notify_one();
    }

    /// A page was enqueued (and committed): the sender looks, cutting its
    /// pass short.
    pub fn urgent(&self) {
        self.urgent.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Wakes the sender for what a committed transaction enqueued.
    pub fn after_commit(&self, enqueued: Enqueued) {
        if enqueued.urgent() {
            self.urgent();
        } else if enqueued.outbox() {
            self.message();
        }
    }

    /// Waits for the next [`Self::message`] or [`Self::urgent`] (one given
    /// while nobody waited counts).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Clears the urgent note; the sender calls it just before it reads the
    /// heads, which then hold every page committed before.
    pub(crate) fn take_urgent(&self) {
        self.urgent.store(false, Ordering::Release);
    }

    /// Whether a page was committed since the last [`Self::take_urgent`].
    pub(crate) fn urgent_waiting(&self) -> bool {
        self.urgent.load(Ordering::Acquire)
    }
}

/// Enqueues a message in `tx`, which notes it: committing it wakes the
/// sender (`Tx::commit`). Returns its outbox id (for a later
/// [`MessageKind::Update`]).
pub async fn enqueue(tx: &mut Tx, msg: &NewMessage<'_>, now: Millis) -> StoreResult<i64> {
    tx.enqueued_message(msg.page);
    insert(&mut **tx, msg, now).await
}

/// Enqueues a message on its own, outside a transaction: the caller wakes
/// the sender.
pub async fn enqueue_alone(pool: &AnyPool, msg: &NewMessage<'_>, now: Millis) -> StoreResult<i64> {
    insert(pool, msg, now).await
}

async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    msg: &NewMessage<'_>,
    now: Millis,
) -> StoreResult<i64> {
    // A direct message (a page above all) is ordered among one person's
    // direct messages only, and a page in a thread among its incident's pages:
    // neither waits behind a thread's backlog (a page reply still waits for
    // its thread's root, which the sender checks).
    let ordering_key = match (msg.kind, msg.user, msg.incident) {
        // A page DM is ordered among that person's pages for the same
        // incident only: a P0's page never queues behind a P2's.
        (MessageKind::Direct, Some(user), Some(r)) if msg.page => {
            format!("page-direct:{user}:{}", r.number())
        }
        (MessageKind::Direct, Some(user), _) => format!("direct:{user}"),
        (MessageKind::Reply | MessageKind::Post, _, Some(r)) if msg.page => {
            format!("page:{}", r.number())
        }
        (_, _, Some(r)) => format!("incident:{}", r.number()),
        (_, _, None) => format!("channel:{}", msg.channel),
    };
    let row = sqlx::query(
        "INSERT INTO outbox (incident_id, ordering_key, kind, channel, user_id, payload, next_attempt_at, created_at, ref_outbox_id, page, paging_epoch, urgent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, \
                 CASE WHEN $9 = 1 THEN (SELECT paging_epoch FROM incidents WHERE id = $1) END, $9) RETURNING id",
    )
    .bind(msg.incident.map(|r| r.number()))
    .bind(ordering_key)
    .bind(msg.kind.as_str())
    .bind(msg.channel.as_str())
    .bind(msg.user.map(|u| u.as_str().to_string()))
    .bind(msg.payload.to_string())
    .bind(now.0)
    .bind(msg.updates)
    .bind(i64::from(msg.page))
    .fetch_one(ex)
    .await?;
    col(&row, "id")
}

/// Makes the incident's root urgent while it waits: a page in its thread
/// waits for it, so it must not wait behind other threads' roots.
pub async fn hurry_root<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET urgent = 1 WHERE incident_id = $1 AND kind = 'root' AND state = 'pending'",
    )
    .bind(incident.number())
    .execute(ex)
    .await?;
    Ok(())
}

/// A pending message, with what the sender needs to deliver it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub incident: Option<IncidentRef>,
    pub kind: MessageKind,
    pub channel: String,
    pub user: Option<String>,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    /// The incident's thread root, once posted.
    pub thread_ts: Option<String>,
    /// For an update: the `ts` of the message it updates, once posted.
    pub ref_ts: Option<String>,
    /// For an update: whether the message it updates failed for good.
    pub ref_failed: bool,
    /// For an update: the outbox row of the message it updates.
    pub ref_id: Option<i64>,
    /// For an update: the channel of the message it updates.
    pub ref_channel: Option<String>,
    /// Whether this is a page (see [`NewMessage::page`]).
    pub page: bool,
    /// Whether it goes ahead of other due messages (a page, or the root a
    /// page waits for).
    pub urgent: bool,
    pub created_at: Millis,
    /// The incident's state now (for re-checks).
    pub incident_state: Option<IncidentState>,
    /// For a page: whether the incident's paging epoch moved on since it was
    /// queued (an acknowledgement, a reopening, a resolution, a new ladder).
    pub epoch_passed: bool,
    /// An earlier post of this row may have reached Slack without Klaxon
    /// learning so (a timeout, or the database failed before "sent" was
    /// recorded): look for it in Slack before posting again.
    pub maybe_posted: bool,
    /// Who holds a claim on it, and until when (a claim may have run out).
    pub lease: Option<(String, Millis)>,
    /// The incident's severity now.
    pub severity: Option<Severity>,
}

impl Pending {
    /// Sorts the most severe incident's messages first (0 for P0); messages
    /// of no incident last.
    pub fn severity_rank(&self) -> u8 {
        self.severity.map_or(9, |s| s as u8)
    }

    /// Why a page should not go out any more: its incident was resolved, or
    /// acknowledged, reopened or moved to another ladder after the page was
    /// queued (GoAlert's re-check before send).
    pub fn stale_page(&self) -> Option<&'static str> {
        if !self.page {
            return None;
        }
        match (self.incident_state, self.epoch_passed) {
            (Some(IncidentState::Resolved), _) => {
                Some("the incident was resolved before the page went out")
            }
            (Some(IncidentState::Acknowledged), true) => {
                Some("the incident was acknowledged before the page went out")
            }
            (_, true) => Some(
                "the incident was acknowledged and reopened, or its severity moved it to another ladder, before the page went out",
            ),
            _ => None,
        }
    }
}

/// The oldest pending message of every ordering key: the due ones first,
/// urgent ones first among those, then soonest due. A page whose thread root
/// has not gone out yet is left out (it goes once the root has).
pub async fn heads<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    limit: i64,
    now: Millis,
) -> StoreResult<Vec<Pending>> {
    // The heads come from the partial index (ordering_key, id) WHERE state = 'pending',
    // so a backlog of thousands costs one index scan, not a query per row.
    // The inner query orders them by narrow columns only; the wide ones (the
    // payload) and the updated message are fetched for the `limit` chosen,
    // by primary key (PostgreSQL, 15,000 waiting: 83 ms → 51 ms a pass).
    let rows = sqlx::query(
        "SELECT o.id, o.incident_id, o.kind, o.channel, o.user_id, o.payload, o.attempts, o.next_attempt_at, \
                o.page, o.urgent, o.created_at, o.ref_outbox_id, o.maybe_posted, o.lease_owner, o.lease_expires_at, i.state AS incident_state, i.severity, \
                CASE WHEN o.paging_epoch IS NOT NULL AND o.paging_epoch <> i.paging_epoch THEN 1 ELSE 0 END AS epoch_passed, \
                i.thread_ts, r.slack_ts AS ref_ts, r.state AS ref_state, r.channel AS ref_channel \
         FROM (SELECT o.id AS id, CASE WHEN o.next_attempt_at <= $2 THEN 0 ELSE 1 END AS later, o.urgent AS urgent, \
                      COALESCE(i.severity, 'P9') AS sev_rank, o.next_attempt_at AS due \
               FROM (SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY ordering_key) h \
               JOIN outbox o ON o.id = h.id \
               LEFT JOIN incidents i ON i.id = o.incident_id \
               WHERE NOT (o.kind = 'reply' AND o.page = 1 AND i.thread_ts IS NULL AND EXISTS \
                          (SELECT 1 FROM outbox rt WHERE rt.incident_id = o.incident_id AND rt.kind = 'root' AND rt.state = 'pending')) \
               ORDER BY later, urgent DESC, sev_rank, due, id LIMIT $1) t \
         JOIN outbox o ON o.id = t.id \
         LEFT JOIN incidents i ON i.id = o.incident_id \
         LEFT JOIN outbox r ON r.id = o.ref_outbox_id \
         ORDER BY t.later, t.urgent DESC, t.sev_rank, t.due, t.id",
    )
    .bind(limit)
    .bind(now.0)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = col(row, "kind")?;
            Ok(Pending {
                id: col(row, "id")?,
                incident: col::<Option<i64>>(row, "incident_id")?.and_then(IncidentRef::new),
                kind: MessageKind::parse(&kind)
                    .ok_or_else(|| super::StoreError::Corrupt(format!("outbox kind {kind}")))?,
                channel: col(row, "channel")?,
                user: col(row, "user_id")?,
                payload: col(row, "payload")?,
                attempts: col(row, "attempts")?,
                next_attempt_at: Millis(col(row, "next_attempt_at")?),
                thread_ts: col(row, "thread_ts")?,
                ref_ts: col(row, "ref_ts")?,
                ref_failed: col::<Option<String>>(row, "ref_state")?.as_deref() == Some("failed"),
                ref_id: col(row, "ref_outbox_id")?,
                ref_channel: col(row, "ref_channel")?,
                page: col::<i64>(row, "page")? != 0,
                urgent: col::<i64>(row, "urgent")? != 0,
                created_at: Millis(col(row, "created_at")?),
                incident_state: col::<Option<String>>(row, "incident_state")?
                    .as_deref()
                    .and_then(IncidentState::parse),
                epoch_passed: col::<i64>(row, "epoch_passed")? != 0,
                maybe_posted: col::<i64>(row, "maybe_posted")? != 0,
                severity: col::<Option<String>>(row, "severity")?
                    .and_then(|s| s.parse::<Severity>().ok()),
                lease: match (
                    col::<Option<String>>(row, "lease_owner")?,
                    col::<Option<i64>>(row, "lease_expires_at")?,
                ) {
                    (Some(owner), Some(until)) => Some((owner, Millis(until))),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Whether the incident's thread root failed for good (its replies cannot thread then).
pub async fn root_failed<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox WHERE incident_id = $1 AND kind = 'root' AND state = 'failed'",
    )
    .bind(incident.number())
    .fetch_one(ex)
    .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

/// Takes a lease on a pending message as `row` read it; `false` if another
/// sender holds it, or tried it since (its attempts moved on: what this
/// sender knows of it, such as a lookup of it in Slack, is stale),
/// or if it is a page to post (`will_post`) that went stale since the heads
/// were read (its incident was resolved, acknowledged, reopened or moved to
/// another ladder: see [`Pending::stale_page`]); the next pass reads it as
/// stale, claims it without `will_post`, and drops it.
///
/// `will_post`: the sender means to post it (`chat.postMessage`) under this
/// lease. The row is then marked [`Pending::maybe_posted`] in the same
/// statement, before the call, and stays so until an outcome is recorded: a
/// crash or a database failure after Slack took the message cannot make it
/// look unsent.
pub async fn claim<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    row: &Pending,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    will_post: bool,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET lease_owner = $2, lease_expires_at = $4, \
                maybe_posted = CASE WHEN $5 = 1 THEN 1 ELSE maybe_posted END \
         WHERE id = $1 AND state = 'pending' AND attempts = $6 AND (lease_expires_at IS NULL OR lease_expires_at < $3 OR lease_owner = $2)            AND ($5 = 0 OR page = 0 OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = outbox.incident_id                 AND (i.state = 'resolved' OR (outbox.paging_epoch IS NOT NULL AND outbox.paging_epoch <> i.paging_epoch))))",
    )
    .bind(row.id)
    .bind(owner)
    .bind(now.0)
    .bind(lease_until.0)
    .bind(i64::from(will_post))
    .bind(row.attempts)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_sent<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    slack_ts: Option<&str>,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET state = 'sent', slack_ts = $2, sent_at = $3, attempts = attempts + 1, \
         lease_owner = NULL, lease_expires_at = NULL, last_error = NULL, maybe_posted = 0 WHERE id = $1",
    )
    .bind(id)
    .bind(slack_ts)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Extends the lease on a message whose Slack call is still in flight.
pub async fn renew_lease<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    owner: &str,
    lease_until: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_until.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Slack errors that say "not this channel" or "not yet": a recovery elsewhere
/// does not make these worth an early retry.
const NOT_HURRIED: &[&str] = &[
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "missing_scope",
    "ratelimited",
    "waiting_for_thread_root",
    "waiting_for_updated_message",
];

/// After Slack answers again: every message waiting out a failure's backoff is
/// due now (a message that failed during the outage would otherwise wait up to
/// the longest backoff). Returns how many.
pub async fn retry_now<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    now: Millis,
) -> StoreResult<u64> {
    let placeholders: Vec<String> = (0..NOT_HURRIED.len())
        .map(|i| format!("${}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE outbox SET next_attempt_at = $1 WHERE state = 'pending' AND attempts > 0 \
         AND next_attempt_at > $1 AND last_error IS NOT NULL AND last_error NOT IN ({})",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now.0);
    for code in NOT_HURRIED {
        q = q.bind(*code);
    }
    Ok(q.execute(ex).await?.rows_affected())
}

/// Makes every message waiting for `channel` due now (the bot was just
/// invited there: they must not wait out their backoff). Returns how many.
pub async fn retry_channel_now<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &str,
    now: Millis,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE outbox SET next_attempt_at = $2 WHERE state = 'pending' AND channel = $1 AND next_attempt_at > $2",
    )
    .bind(channel)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// What a failed attempt says about whether Slack has the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// No post was tried in this attempt: whatever [`Pending::maybe_posted`]
    /// said before still holds.
    Unchanged,
    /// Slack answered with an error: this attempt posted nothing, and an
    /// earlier unsure one was looked for first and not found.
    No,
    /// No answer came (a timeout, a 5xx from a proxy): it may be in the channel.
    Unknown,
}

/// Puts a message back for a later attempt.
pub async fn retry_later<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    at: Millis,
    error: &str,
    counts_as_attempt: bool,
    posted: Posted,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $2, last_error = $3, attempts = attempts + $4, \
         lease_owner = NULL, lease_expires_at = NULL, \
         maybe_posted = CASE $5 WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE maybe_posted END WHERE id = $1",
    )
    .bind(id)
    .bind(at.0)
    .bind(error)
    .bind(i64::from(counts_as_attempt))
    .bind(match posted {
        Posted::No => 0i64,
        Posted::Unknown => 1,
        Posted::Unchanged => 2,
    })
    .execute(ex)
    .await?;
    Ok(())
}

/// Gives up on a message that Slack will never accept (recorded, not deleted).
pub async fn mark_failed<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    error: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET state = 'failed', last_error = $2, attempts = attempts + 1, \
         lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(ex)
    .await?;
    Ok(())
}

/// Whether a newer update of the same message waits behind this one (then this
/// one need not be sent: the newer carries the whole message).
pub async fn superseded<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    row: &Pending,
) -> StoreResult<bool> {
    let found = match (row.kind, row.incident, row.ref_id) {
        (MessageKind::UpdateRoot, Some(r), _) => {
            sqlx::query(
                "SELECT id FROM outbox WHERE incident_id = $1 AND kind = 'update_root' \
                 AND state = 'pending' AND id > $2 LIMIT 1",
            )
            .bind(r.number())
            .bind(row.id)
            .fetch_optional(ex)
            .await?
        }
        (MessageKind::Update, _, Some(target)) => {
            sqlx::query(
                "SELECT id FROM outbox WHERE ref_outbox_id = $1 AND kind = 'update' \
                 AND state = 'pending' AND id > $2 LIMIT 1",
            )
            .bind(target)
            .bind(row.id)
            .fetch_optional(ex)
            .await?
        }
        _ => None,
    };
    Ok(found.is_some())
}

/// Leaves a message unsent on purpose (a stale page), recording why.
pub async fn mark_dropped<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    why: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET state = 'dropped', last_error = $2, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .bind(why)
    .execute(ex)
    .await?;
    Ok(())
}

/// Messages due by `now` and not yet sent (for tests waiting for quiet).
pub async fn due_count<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    now: Millis,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1",
    )
    .bind(now.0)
    .fetch_one(ex)
    .await?;
    col(&row, "n")
}

/// Sends a pending message elsewhere: as `kind` to `channel` (with
/// `payload` when given), due `now`. For a message whose channel is gone
/// (an incident's archived room) that goes to the thread instead.
pub async fn reroute<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    kind: MessageKind,
    channel: &ChannelId,
    payload: Option<&str>,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET kind = $2, channel = $3, payload = COALESCE($4, payload), next_attempt_at = $5, \
                maybe_posted = 0, lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(channel.as_str())
    .bind(payload)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Messages still waiting to go to `channel` (posts, files, and updates of
/// messages there).
pub async fn pending_in_channel<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &ChannelId,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox o LEFT JOIN outbox r ON r.id = o.ref_outbox_id \
         WHERE o.state = 'pending' AND (o.channel = $1 OR r.channel = $1)",
    )
    .bind(channel.as_str())
    .fetch_one(ex)
    .await?;
    col(&row, "n")
}

pub async fn pending_count<'c, E: Executor<'c, Database = Any>>(ex: E) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}
