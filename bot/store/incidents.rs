//! Queries on incidents and their timelines.
//!
//! Every change is one conditional `UPDATE … RETURNING`: it changes the row only
//! if the change still makes sense (you cannot resolve a resolved incident), so
//! two people pressing Resolve at once give one resolution, not two.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use super::{StoreError, StoreResult, col};
use crate::incident::{
    ChannelId, EventKind, Incident, IncidentRef, IncidentSource, IncidentState, Room, Severity,
    SlackUserId, TimelineEvent,
};
use crate::time::Millis;

/// The columns every incident query returns, in one place.
macro_rules! incident_columns {
    () => {
        "id, title, severity, state, owner, channel, thread_ts, opened_by, opened_at, \
         acknowledged_at, acknowledged_by, resolved_at, resolved_by, root_cause, resolution, follow_up, \
         ladder, escalation_step, source, previous_incident_id, room, room_name, room_root_message, room_archived_at, postmortem_at"
    };
}

fn user(v: Option<String>) -> Option<SlackUserId> {
    v.as_deref().and_then(SlackUserId::parse)
}

fn incident_from_row(row: &AnyRow) -> StoreResult<Incident> {
    let id: i64 = col(row, "id")?;
    let severity: String = col(row, "severity")?;
    let state: String = col(row, "state")?;
    let channel: String = col(row, "channel")?;
    Ok(Incident {
        reference: IncidentRef::new(id)
            .ok_or_else(|| StoreError::Corrupt(format!("incident id {id}")))?,
        title: col(row, "title")?,
        severity: severity.parse::<Severity>().map_err(StoreError::Corrupt)?,
        state: IncidentState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("incident state {state}")))?,
        owner: user(col(row, "owner")?),
        channel: ChannelId::parse(&channel)
            .ok_or_else(|| StoreError::Corrupt(format!("channel {channel}")))?,
        thread_ts: col(row, "thread_ts")?,
        opened_by: user(col(row, "opened_by")?),
        opened_at: Millis(col(row, "opened_at")?),
        acknowledged_at: col::<Option<i64>>(row, "acknowledged_at")?.map(Millis),
        acknowledged_by: user(col(row, "acknowledged_by")?),
        resolved_at: col::<Option<i64>>(row, "resolved_at")?.map(Millis),
        resolved_by: user(col(row, "resolved_by")?),
        root_cause: col(row, "root_cause")?,
        resolution: col(row, "resolution")?,
        follow_up: col(row, "follow_up")?,
        ladder: col(row, "ladder")?,
        escalation_step: col::<Option<i64>>(row, "escalation_step")?
            .and_then(|s| u32::try_from(s).ok()),
        source: {
            let s: String = col(row, "source")?;
            IncidentSource::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("source {s}")))?
        },
        previous: col::<Option<i64>>(row, "previous_incident_id")?.and_then(IncidentRef::new),
        room: col::<Option<String>>(row, "room")?
            .as_deref()
            .and_then(ChannelId::parse)
            .map(|channel| Room {
                channel,
                name: String::new(),
                root_message: None,
                archived: false,
            })
            .map(|mut room| -> StoreResult<Room> {
                room.name = col::<Option<String>>(row, "room_name")?.unwrap_or_default();
                room.root_message = col(row, "room_root_message")?;
                room.archived = col::<Option<i64>>(row, "room_archived_at")?.is_some();
                Ok(room)
            })
            .transpose()?,
        postmortem_at: col::<Option<i64>>(row, "postmortem_at")?.map(Millis),
    })
}

fn one(row: Option<AnyRow>) -> StoreResult<Option<Incident>> {
    row.as_ref().map(incident_from_row).transpose()
}

fn many(rows: Vec<AnyRow>) -> StoreResult<Vec<Incident>> {
    rows.iter().map(incident_from_row).collect()
}

/// What a new incident starts with.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    pub title: &'a str,
    pub severity: Severity,
    pub channel: &'a ChannelId,
    pub opened_by: Option<&'a SlackUserId>,
    pub source: IncidentSource,
    pub opened_at: Millis,
    /// The escalation ladder that will page for it.
    pub ladder: Option<&'a str>,
    /// The incident the same alert group fed before.
    pub previous: Option<IncidentRef>,
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    new: &NewIncident<'_>,
) -> StoreResult<Incident> {
    let row = sqlx::query(concat!(
        "INSERT INTO incidents (title, severity, state, channel, source, opened_by, opened_at, updated_at, ladder, previous_incident_id) \
         VALUES ($1, $2, 'open', $3, $4, $5, $6, $6, $7, $8) RETURNING ",
        incident_columns!()
    ))
    .bind(new.title)
    .bind(new.severity.as_str())
    .bind(new.channel.as_str())
    .bind(new.source.as_str())
    .bind(new.opened_by.map(|u| u.as_str().to_string()))
    .bind(new.opened_at.0)
    .bind(new.ladder)
    .bind(new.previous.map(|r| r.number()))
    .fetch_one(ex)
    .await?;
    incident_from_row(&row)
}

/// What the alert-storm cap needs to know of a route ([`route_load`]).
#[derive(Debug, Clone)]
pub struct RouteLoad {
    /// Incidents whose `alert_route` is the route's, opened after `since`.
    pub opened_since: i64,
    /// The newest unresolved incident whose `alert_route` is the storm's.
    pub storm: Option<Incident>,
}

/// How many incidents alert route `route` opened since `since`, and the
/// open storm incident (`alert_route` = `storm_route`), whole: one statement.
pub async fn route_load<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    route: &str,
    storm_route: &str,
    since: Millis,
) -> StoreResult<RouteLoad> {
    // The storm incident's columns come through a LEFT JOIN: all NULL when
    // there is none, and the count still comes back.
    let row = sqlx::query(concat!(
        "SELECT (SELECT COUNT(*) FROM incidents WHERE alert_route = $1 AND opened_at > $2) AS opened_since, ",
        incident_columns!(),
        " FROM (SELECT 1 AS one_row) AS one_row LEFT JOIN incidents ON incidents.id = \
         (SELECT MAX(id) FROM incidents WHERE alert_route = $3 AND state <> 'resolved')"
    ))
    .bind(route)
    .bind(since.0)
    .bind(storm_route)
    .fetch_one(ex)
    .await?;
    let storm = match col::<Option<i64>>(&row, "id")? {
        Some(_) => Some(incident_from_row(&row)?),
        None => None,
    };
    Ok(RouteLoad {
        opened_since: col(&row, "opened_since")?,
        storm,
    })
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "SELECT ",
        incident_columns!(),
        " FROM incidents WHERE id = $1"
    ))
    .bind(r.number())
    .fetch_optional(ex)
    .await?)
}

/// Open incidents whose thread lives in `channel` (at most `limit`).
pub async fn open_in_channel<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &ChannelId,
    limit: i64,
) -> StoreResult<Vec<Incident>> {
    many(
        sqlx::query(concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents WHERE channel = $1 AND state <> 'resolved' ORDER BY id LIMIT $2"
        ))
        .bind(channel.as_str())
        .bind(limit)
        .fetch_all(ex)
        .await?,
    )
}

/// The incident whose own channel is `channel`, resolved or not.
pub async fn by_room<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &ChannelId,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "SELECT ",
        incident_columns!(),
        " FROM incidents WHERE room = $1"
    ))
    .bind(channel.as_str())
    .fetch_optional(ex)
    .await?)
}

/// Records the incident's own channel, and the outbox row of the copy of
/// its root posted there; `None` when it has one already.
pub async fn set_room<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    channel: &ChannelId,
    name: &str,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET room = $2, room_name = $3 WHERE id = $1 AND room IS NULL RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(channel.as_str())
    .bind(name)
    .fetch_optional(ex)
    .await?)
}

/// Records the outbox row of the room's copy of the root message.
pub async fn set_room_root<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    outbox_id: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET room_root_message = $2 WHERE id = $1")
        .bind(r.number())
        .bind(outbox_id)
        .execute(ex)
        .await?;
    Ok(())
}

/// Records that the incident's own channel is being archived (from `at`,
/// nothing more is posted there).
pub async fn set_room_archived<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET room_archived_at = $2 WHERE id = $1")
        .bind(r.number())
        .bind(at.0)
        .execute(ex)
        .await?;
    Ok(())
}

/// Records that the postmortem was produced at `at`.
pub async fn set_postmortem_at<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET postmortem_at = $2 WHERE id = $1")
        .bind(r.number())
        .bind(at.0)
        .execute(ex)
        .await?;
    Ok(())
}

/// Every open incident, most severe first, then oldest first.
pub async fn list_open<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    limit: i64,
) -> StoreResult<Vec<Incident>> {
    many(
        sqlx::query(concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents WHERE state <> 'resolved' ORDER BY severity, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(ex)
        .await?,
    )
}

pub async fn count_open<'c, E: Executor<'c, Database = Any>>(ex: E) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM incidents WHERE state <> 'resolved'")
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}

/// Marks the incident as touched (the write that opens a transaction for a status
/// update); `None` when it is resolved or does not exist.
pub async fn touch_open<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET updated_at = $2 WHERE id = $1 AND state <> 'resolved' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// `None` when the incident is resolved, missing, or already at that severity.
pub async fn set_severity<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    severity: Severity,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET severity = $2, updated_at = $3 \
         WHERE id = $1 AND state <> 'resolved' AND severity <> $2 RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(severity.as_str())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// `None` when the incident is resolved or missing.
pub async fn set_owner<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    owner: &SlackUserId,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET owner = $2, updated_at = $3 \
         WHERE id = $1 AND state <> 'resolved' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(owner.as_str())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// `None` unless the incident was open and unacknowledged. The acknowledger becomes
/// the owner if there was none.
pub async fn acknowledge<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    by: &SlackUserId,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET state = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, $3), acknowledged_by = $2, \
         owner = COALESCE(owner, $2), updated_at = $3, paging_epoch = paging_epoch + 1 \
         WHERE id = $1 AND state = 'open' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(by.as_str())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// Back to open after a stale acknowledgement nobody answered: the ladder
/// may page again. The first acknowledgement's time stays (MTTA counts to
/// it). `None` unless the incident was acknowledged.
pub async fn unacknowledge<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET state = 'open', updated_at = $2, paging_epoch = paging_epoch + 1 \
         WHERE id = $1 AND state = 'acknowledged' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// Back to open: a new acknowledgement is needed and the ladder may page again.
/// `None` when the incident is missing or already open.
pub async fn reopen<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    now: Millis,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET state = 'open', acknowledged_at = NULL, acknowledged_by = NULL, \
         resolved_at = NULL, resolved_by = NULL, updated_at = $2, paging_epoch = paging_epoch + 1 \
         WHERE id = $1 AND state <> 'open' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(now.0)
    .fetch_optional(ex)
    .await?)
}

/// What the person resolving says about it.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub root_cause: Option<String>,
    pub resolution: Option<String>,
    pub follow_up: Option<String>,
}

/// `None` when the incident is already resolved or missing.
pub async fn resolve<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    by: Option<&SlackUserId>,
    now: Millis,
    resolution: &Resolution,
) -> StoreResult<Option<Incident>> {
    one(sqlx::query(concat!(
        "UPDATE incidents SET state = 'resolved', resolved_at = $3, resolved_by = $2, \
         root_cause = $4, resolution = $5, follow_up = $6, updated_at = $3, \
         paging_epoch = paging_epoch + 1 \
         WHERE id = $1 AND state <> 'resolved' RETURNING ",
        incident_columns!()
    ))
    .bind(r.number())
    .bind(by.map(|u| u.as_str().to_string()))
    .bind(now.0)
    .bind(resolution.root_cause.clone())
    .bind(resolution.resolution.clone())
    .bind(resolution.follow_up.clone())
    .fetch_optional(ex)
    .await?)
}

/// Starts a new paging epoch: pages queued before now are dropped unsent (see
/// `outbox::Pending::stale_page`). Acknowledging, reopening and resolving do it
/// themselves; a change of ladder calls this.
pub async fn new_paging_epoch<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET paging_epoch = paging_epoch + 1 WHERE id = $1")
        .bind(r.number())
        .execute(ex)
        .await?;
    Ok(())
}

/// Records how far the ladder got (and which ladder, when it starts).
pub async fn set_escalation<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    ladder: Option<&str>,
    step: Option<u32>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE incidents SET ladder = COALESCE($2, ladder), escalation_step = $3 WHERE id = $1",
    )
    .bind(r.number())
    .bind(ladder)
    .bind(step.map(i64::from))
    .execute(ex)
    .await?;
    Ok(())
}

/// Locks the incident's row for the rest of the transaction (PostgreSQL
/// `FOR NO KEY UPDATE`, the lock an `UPDATE` of it takes), to keep the
/// store's lock order (see [`crate::store`]) in a transaction whose first
/// write is elsewhere. On SQLite the database's one write lock is the lock:
/// nothing to do.
pub async fn lock(
    tx: &mut super::Tx,
    backend: super::Backend,
    incident: IncidentRef,
) -> StoreResult<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT id FROM incidents WHERE id = $1 FOR NO KEY UPDATE")
            .bind(incident.number())
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Records the `ts` of the thread's root message once Slack has it.
pub async fn set_thread_ts<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    ts: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET thread_ts = $2 WHERE id = $1")
        .bind(r.number())
        .bind(ts)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn add_event<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    event: &TimelineEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO timeline_events (incident_id, at, kind, actor, text, subject) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(r.number())
    .bind(event.at.0)
    .bind(event.kind.as_str())
    .bind(event.actor.as_ref().map(|u| u.as_str().to_string()))
    .bind(event.text.as_str())
    .bind(event.subject.as_ref().map(|u| u.as_str().to_string()))
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn timeline<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<TimelineEvent>> {
    let rows = sqlx::query(
        "SELECT at, kind, actor, text, subject FROM timeline_events WHERE incident_id = $1 ORDER BY id",
    )
    .bind(r.number())
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = col(row, "kind")?;
            Ok(TimelineEvent {
                at: Millis(col(row, "at")?),
                kind: EventKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind}")))?,
                actor: user(col(row, "actor")?),
                text: col(row, "text")?,
                subject: user(col(row, "subject")?),
            })
        })
        .collect()
}

/// The last time an incident's timeline recorded a status update.
pub async fn last_status_update<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Option<Millis>> {
    last_event(
        ex,
        r,
        "SELECT MAX(at) AS at FROM timeline_events WHERE incident_id = $1 AND kind = 'status_update'",
    )
    .await
}

/// The last sign that someone attends an incident: an acknowledgement (or a
/// "still on it"), a status update or a severity change.
pub async fn last_attention<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Option<Millis>> {
    last_event(
        ex,
        r,
        "SELECT MAX(at) AS at FROM timeline_events WHERE incident_id = $1 \
         AND kind IN ('acknowledged', 'status_update', 'severity_changed')",
    )
    .await
}

/// The last time the owner was paged again for a stale acknowledgement.
pub async fn last_repage<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Option<Millis>> {
    last_event(
        ex,
        r,
        "SELECT MAX(at) AS at FROM timeline_events WHERE incident_id = $1 AND kind = 'repaged'",
    )
    .await
}

async fn last_event<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    sql: &'static str,
) -> StoreResult<Option<Millis>> {
    let row = sqlx::query(sql).bind(r.number()).fetch_one(ex).await?;
    Ok(col::<Option<i64>>(&row, "at")?.map(Millis))
}

/// One page of the history: the incidents matching `filter`, newest first.
pub async fn history_page<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    filter: &super::status::HistoryFilter,
    offset: i64,
    limit: i64,
) -> StoreResult<Vec<Incident>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM incidents WHERE {} ORDER BY id DESC LIMIT $5 OFFSET $6",
        incident_columns!(),
        super::status::HistoryFilter::WHERE
    ));
    many(
        filter
            .bind(sqlx::query(sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(ex)
            .await?,
    )
}

/// How many incidents match `filter`.
pub async fn count_matching<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    filter: &super::status::HistoryFilter,
) -> StoreResult<i64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM incidents WHERE {}",
        super::status::HistoryFilter::WHERE
    ));
    let row = filter.bind(sqlx::query(sql)).fetch_one(ex).await?;
    col(&row, "n")
}
