//! Pages sent along an escalation ladder, and what guards against duplicates:
//! Slack event ids and request signatures already handled.
//!
//! A page row lets an `ack` typed in a direct message find the incident it
//! answers: the latest open incident that paged that person.

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::incident::{IncidentRef, SlackUserId};
use crate::time::Millis;

pub async fn record<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    step: u32,
    level_name: &str,
    user: &SlackUserId,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO pages (incident_id, step, level_name, user_id, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(incident.number())
    .bind(i64::from(step))
    .bind(level_name)
    .bind(user.as_str())
    .bind(at.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Everyone paged for incident `r`, in the order first paged.
pub async fn people_paged<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<SlackUserId>> {
    let rows = sqlx::query(
        "SELECT user_id, MIN(id) AS first FROM pages WHERE incident_id = $1 GROUP BY user_id ORDER BY MIN(id)",
    )
    .bind(r.number())
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(u) = SlackUserId::parse(&col::<String>(row, "user_id")?) {
            out.push(u);
        }
    }
    Ok(out)
}

/// The most recent incident, still open and unacknowledged, that paged `user`.
pub async fn latest_open_for<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    user: &SlackUserId,
) -> StoreResult<Option<IncidentRef>> {
    let row = sqlx::query(
        "SELECT p.incident_id AS id FROM pages p JOIN incidents i ON i.id = p.incident_id \
         WHERE p.user_id = $1 AND i.state = 'open' ORDER BY p.id DESC LIMIT 1",
    )
    .bind(user.as_str())
    .fetch_optional(ex)
    .await?;
    Ok(match row {
        Some(r) => IncidentRef::new(col(&r, "id")?),
        None => None,
    })
}

/// The open, unacknowledged incidents whose page reached `user` by direct
/// message, the newest delivery first: what a bare `ack` in that direct
/// message means (a page still queued was never seen).
pub async fn delivered_open_for<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    user: &SlackUserId,
) -> StoreResult<Vec<IncidentRef>> {
    let rows = sqlx::query(
        "SELECT o.incident_id AS id, MAX(o.sent_at) AS last FROM outbox o \
         JOIN incidents i ON i.id = o.incident_id \
         WHERE o.kind = 'direct' AND o.page = 1 AND o.state = 'sent' AND o.user_id = $1 \
           AND i.state = 'open' \
         GROUP BY o.incident_id ORDER BY last DESC, o.incident_id DESC",
    )
    .bind(user.as_str())
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| Ok(IncidentRef::new(col(r, "id")?)))
        .filter_map(|r: StoreResult<Option<IncidentRef>>| r.transpose())
        .collect()
}

/// How many pages an incident has sent (for tests and the summary).
pub async fn count_for<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM pages WHERE incident_id = $1")
        .bind(incident.number())
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}

/// Forgets an event id, so Slack's retry of an event that failed is handled.
pub async fn forget_delivery<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    event_id: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM slack_events WHERE event_id = $1")
        .bind(event_id)
        .execute(ex)
        .await?;
    Ok(())
}

/// Remembers a request signature; `false` if the same signed request came before (a replay).
pub async fn first_request<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    signature: &str,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO slack_requests (signature, received_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING",
    )
    .bind(signature)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes what only guards against duplicates once it is older than any duplicate can be.
pub async fn prune(conn: &mut sqlx::AnyConnection, now: Millis) -> StoreResult<u64> {
    let day = 24 * 3600 * 1000;
    let mut removed = 0;
    for (sql, age) in [
        (
            "DELETE FROM slack_requests WHERE received_at < $1",
            15 * 60 * 1000,
        ),
        ("DELETE FROM slack_events WHERE received_at < $1", 7 * day),
        (
            "DELETE FROM alert_notifications WHERE received_at < $1",
            7 * day,
        ),
        (
            "DELETE FROM resolved_alerts WHERE resolved_at < $1",
            7 * day,
        ),
        (
            "DELETE FROM outbox WHERE state = 'sent' AND sent_at < $1",
            30 * day,
        ),
    ] {
        removed += sqlx::query(sql)
            .bind(now.0 - age)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(removed)
}

/// Remembers a Slack event id; `false` if it was seen before (a retry or duplicate).
pub async fn first_delivery<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    event_id: &str,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO slack_events (event_id, received_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}
