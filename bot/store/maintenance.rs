//! Maintenance windows, the alert groups they held, and the ladders they
//! paused (see `crate::usecases::maintenance`).

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::incident::{ChannelId, IncidentRef, SlackUserId};
use crate::time::Millis;

/// One window as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub id: i64,
    pub route: String,
    pub channel: ChannelId,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub reason: Option<String>,
    /// Who started it by hand; `None` for a scheduled window.
    pub created_by: Option<SlackUserId>,
    /// The `[[maintenance]]` schedule it is an occurrence of.
    pub schedule: Option<String>,
    /// The outbox row of its announcement (edited to list what it held).
    pub message_id: Option<i64>,
    pub silence_id: Option<String>,
    pub ended_at: Option<Millis>,
    pub ended_by: Option<SlackUserId>,
}

impl Window {
    /// Whether it covers `at` (started, not yet ended).
    pub fn active_at(&self, at: Millis) -> bool {
        self.ended_at.is_none() && self.starts_at <= at && at < self.ends_at
    }
}

const COLUMNS: &str = "id, route, channel, starts_at, ends_at, reason, created_by, schedule, \
                       message_id, silence_id, ended_at, ended_by";

fn window(r: &sqlx::any::AnyRow) -> StoreResult<Window> {
    let channel: String = col(r, "channel")?;
    Ok(Window {
        id: col(r, "id")?,
        route: col(r, "route")?,
        channel: ChannelId::parse(&channel).ok_or_else(|| {
            super::StoreError::Corrupt(format!("maintenance window channel {channel:?}"))
        })?,
        starts_at: Millis(col(r, "starts_at")?),
        ends_at: Millis(col(r, "ends_at")?),
        reason: col(r, "reason")?,
        created_by: col::<Option<String>>(r, "created_by")?
            .as_deref()
            .and_then(SlackUserId::parse),
        schedule: col(r, "schedule")?,
        message_id: col(r, "message_id")?,
        silence_id: col(r, "silence_id")?,
        ended_at: col::<Option<i64>>(r, "ended_at")?.map(Millis),
        ended_by: col::<Option<String>>(r, "ended_by")?
            .as_deref()
            .and_then(SlackUserId::parse),
    })
}

/// A window to insert.
#[derive(Debug, Clone)]
pub struct NewWindow<'a> {
    pub route: &'a str,
    pub channel: &'a ChannelId,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub reason: Option<&'a str>,
    pub created_by: Option<&'a SlackUserId>,
    pub schedule: Option<&'a str>,
}

/// Inserts a window; `None` when this occurrence of a schedule already exists.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    new: &NewWindow<'_>,
    now: Millis,
) -> StoreResult<Option<Window>> {
    let q = format!(
        "INSERT INTO maintenance_windows (route, channel, starts_at, ends_at, reason, created_by, schedule, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (schedule, starts_at) DO NOTHING RETURNING {COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(new.route)
        .bind(new.channel.as_str())
        .bind(new.starts_at.0)
        .bind(new.ends_at.0)
        .bind(new.reason)
        .bind(new.created_by.map(SlackUserId::as_str))
        .bind(new.schedule)
        .bind(now.0)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(window)
        .transpose()
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
) -> StoreResult<Option<Window>> {
    let q = format!("SELECT {COLUMNS} FROM maintenance_windows WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(window)
        .transpose()
}

/// The window covering `route` at `at`, if any (the one ending last).
pub async fn active_for_route<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    route: &str,
    at: Millis,
) -> StoreResult<Option<Window>> {
    let q = format!(
        "SELECT {COLUMNS} FROM maintenance_windows \
         WHERE route = $1 AND ended_at IS NULL AND starts_at <= $2 AND ends_at > $2 \
         ORDER BY ends_at DESC, id DESC LIMIT 1"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(route)
        .bind(at.0)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(window)
        .transpose()
}

/// Windows not yet ended (active or still to come), soonest first.
pub async fn not_ended<'c, E: Executor<'c, Database = Any>>(ex: E) -> StoreResult<Vec<Window>> {
    let q = format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE ended_at IS NULL ORDER BY starts_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(ex)
        .await?
        .iter()
        .map(window)
        .collect()
}

/// Ends a window at `now` (by hand: `by`), or at its planned end when that
/// has passed and nobody ended it (Klaxon was down then); `None` when it had
/// already ended.
pub async fn end<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    now: Millis,
    by: Option<&SlackUserId>,
) -> StoreResult<Option<Window>> {
    let q = format!(
        "UPDATE maintenance_windows \
         SET ended_at = CASE WHEN $3 IS NULL AND ends_at < $2 THEN ends_at ELSE $2 END, ended_by = $3 \
         WHERE id = $1 AND ended_at IS NULL RETURNING {COLUMNS}"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .bind(now.0)
        .bind(by.map(SlackUserId::as_str))
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(window)
        .transpose()
}

/// Records the outbox row of the window's announcement.
pub async fn set_message<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    message: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE maintenance_windows SET message_id = $2 WHERE id = $1")
        .bind(id)
        .bind(message)
        .execute(ex)
        .await?;
    Ok(())
}

/// Records the Alertmanager silence made for the window.
pub async fn set_silence<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    silence: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE maintenance_windows SET silence_id = $2 WHERE id = $1")
        .bind(id)
        .bind(silence)
        .execute(ex)
        .await?;
    Ok(())
}

/// An alert group a window held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub group_id: String,
    pub title: String,
    /// Alerts firing in its last notification.
    pub firing: i64,
    pub notifications: i64,
}

/// Keeps a notification of an alert group the window holds: its alerts,
/// whole (`alerts`, JSON), replacing the group's previous notification.
/// `notification_key` is the notification's duplicate-check key, forgotten
/// when the window ends ([`forget_held_notifications`]).
#[allow(clippy::too_many_arguments)]
pub async fn hold<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    window: i64,
    group_id: &str,
    title: &str,
    firing: i64,
    alerts: &str,
    notification_key: &str,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO maintenance_held (window_id, group_id, title, firing, alerts, notification_key, first_at, last_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (window_id, group_id) DO UPDATE SET title = excluded.title, \
           firing = excluded.firing, alerts = excluded.alerts, \
           notification_key = excluded.notification_key, last_at = excluded.last_at, \
           notifications = maintenance_held.notifications + 1",
    )
    .bind(window)
    .bind(group_id)
    .bind(title)
    .bind(firing)
    .bind(alerts)
    .bind(notification_key)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Forgets that the notifications of the groups a window held, still firing,
/// were seen (the alert intake's duplicate check): the sender's next repeat
/// of each opens its incident, even one whose earlier incident was resolved
/// by hand while it fired.
pub async fn forget_held_notifications<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    window: i64,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM alert_notifications WHERE dedupe_key IN \
         (SELECT notification_key FROM maintenance_held \
          WHERE window_id = $1 AND firing > 0 AND notification_key IS NOT NULL)",
    )
    .bind(window)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// The groups a window held, in the order they first arrived.
pub async fn held<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    window: i64,
) -> StoreResult<Vec<Held>> {
    sqlx::query(
        "SELECT group_id, title, firing, notifications FROM maintenance_held \
         WHERE window_id = $1 ORDER BY first_at, group_id",
    )
    .bind(window)
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok(Held {
            group_id: col(r, "group_id")?,
            title: col(r, "title")?,
            firing: col(r, "firing")?,
            notifications: col(r, "notifications")?,
        })
    })
    .collect()
}

/// Notes that the window paused an incident's ladder, to resume at `next_step`.
pub async fn pause<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    window: i64,
    incident: IncidentRef,
    next_step: u32,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO maintenance_paused (window_id, incident_id, next_step) VALUES ($1, $2, $3) \
         ON CONFLICT (window_id, incident_id) DO NOTHING",
    )
    .bind(window)
    .bind(incident.number())
    .bind(i64::from(next_step))
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The ladders a window paused: each incident and the step it resumes at.
pub async fn paused<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    window: i64,
) -> StoreResult<Vec<(IncidentRef, u32)>> {
    let rows = sqlx::query(
        "SELECT incident_id, next_step FROM maintenance_paused WHERE window_id = $1 ORDER BY incident_id",
    )
    .bind(window)
    .fetch_all(ex)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let step: i64 = col(r, "next_step")?;
        if let Some(i) = IncidentRef::new(col(r, "incident_id")?) {
            out.push((i, u32::try_from(step).unwrap_or(0)));
        }
    }
    Ok(out)
}

/// The window covering, at `at`, the route of an incident's alert groups,
/// if any (an incident opened by hand has no route and is never covered).
pub async fn covering<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    at: Millis,
) -> StoreResult<Option<Window>> {
    let q = format!(
        "SELECT {COLUMNS} FROM maintenance_windows \
         WHERE ended_at IS NULL AND starts_at <= $2 AND ends_at > $2 \
           AND route IN (SELECT route FROM alert_groups WHERE incident_id = $1) \
         ORDER BY ends_at DESC, id DESC LIMIT 1"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(incident.number())
        .bind(at.0)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(window)
        .transpose()
}
