//! Queries for alert groups, alerts, processed notifications and silences.

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::alerts::{Alert, AlertStatus};
use crate::incident::IncidentRef;
use crate::time::Millis;

/// Remembers a notification by content; `false` if it was processed before.
pub async fn first_notification<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    dedupe_key: &str,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO alert_notifications (dedupe_key, received_at) VALUES ($1, $2) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(dedupe_key)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The open incident an alert group feeds, if any.
pub async fn open_incident_for_group<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    group_id: &str,
) -> StoreResult<Option<IncidentRef>> {
    let row = sqlx::query(
        "SELECT g.incident_id AS id FROM alert_groups g JOIN incidents i ON i.id = g.incident_id \
         WHERE g.group_id = $1 AND i.state <> 'resolved' ORDER BY g.incident_id DESC LIMIT 1",
    )
    .bind(group_id)
    .fetch_optional(ex)
    .await?;
    Ok(row
        .map(|r| col::<i64>(&r, "id"))
        .transpose()?
        .and_then(IncidentRef::new))
}

/// The most recent incident an alert group fed (to link a re-fire to it).
pub async fn last_incident_for_group<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    group_id: &str,
) -> StoreResult<Option<IncidentRef>> {
    let row = sqlx::query("SELECT MAX(incident_id) AS id FROM alert_groups WHERE group_id = $1")
        .bind(group_id)
        .fetch_one(ex)
        .await?;
    Ok(col::<Option<i64>>(&row, "id")?.and_then(IncidentRef::new))
}

/// A group joining an incident.
#[derive(Debug, Clone)]
pub struct GroupLink<'a> {
    pub group_id: &'a str,
    pub incident: IncidentRef,
    pub source: &'a str,
    pub route: &'a str,
    pub title: &'a str,
    pub labels: &'a serde_json::Value,
    /// Whether the thread already says so (folded storm groups are announced later).
    pub announced: bool,
}

pub async fn link_group<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    link: &GroupLink<'_>,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO alert_groups (group_id, incident_id, source, route, title, labels, announced, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (group_id, incident_id) DO NOTHING",
    )
    .bind(link.group_id)
    .bind(link.incident.number())
    .bind(link.source)
    .bind(link.route)
    .bind(link.title)
    .bind(link.labels.to_string())
    .bind(i64::from(link.announced))
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// What an alert in a notification means for its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First seen, firing.
    NewFiring,
    /// First seen, already resolved (nothing to announce).
    NewResolved,
    /// Was firing, now resolved.
    Resolved,
    /// Was resolved, fires again.
    Refired,
    Unchanged,
}

/// Records an alert's state under an incident and says what changed.
pub async fn upsert_alert(
    tx: &mut super::Tx,
    incident: IncidentRef,
    group_id: &str,
    alert: &Alert,
    name: &str,
    now: Millis,
) -> StoreResult<Change> {
    let existing = sqlx::query(
        "SELECT status, starts_at FROM alerts WHERE incident_id = $1 AND fingerprint = $2",
    )
    .bind(incident.number())
    .bind(alert.fingerprint.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let change = match existing {
        None => {
            sqlx::query(
                "INSERT INTO alerts (incident_id, group_id, fingerprint, status, name, starts_at, ends_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(incident.number())
            .bind(group_id)
            .bind(alert.fingerprint.as_str())
            .bind(alert.status.as_str())
            .bind(name)
            .bind(alert.starts_at.0)
            .bind(alert.ends_at.map(|m| m.0))
            .bind(now.0)
            .execute(&mut **tx)
            .await?;
            return Ok(match alert.status {
                AlertStatus::Firing => Change::NewFiring,
                AlertStatus::Resolved => Change::NewResolved,
            });
        }
        Some(row) => {
            let status: String = col(&row, "status")?;
            match (status.as_str(), alert.status) {
                ("firing", AlertStatus::Resolved) => Change::Resolved,
                ("resolved", AlertStatus::Firing) => Change::Refired,
                _ => Change::Unchanged,
            }
        }
    };
    if change != Change::Unchanged {
        sqlx::query(
            "UPDATE alerts SET status = $3, starts_at = $4, ends_at = $5, updated_at = $6 \
             WHERE incident_id = $1 AND fingerprint = $2",
        )
        .bind(incident.number())
        .bind(alert.fingerprint.as_str())
        .bind(alert.status.as_str())
        .bind(alert.starts_at.0)
        .bind(alert.ends_at.map(|m| m.0))
        .bind(now.0)
        .execute(&mut **tx)
        .await?;
    }
    Ok(change)
}

/// How many of an incident's alerts still fire.
pub async fn firing_count<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM alerts WHERE incident_id = $1 AND status = 'firing'",
    )
    .bind(incident.number())
    .fetch_one(ex)
    .await?;
    col(&row, "n")
}

/// Incidents a route opened since `since` (the alert-storm cap counts these).
pub async fn opened_by_route_since<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    route: &str,
    since: Millis,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM incidents WHERE alert_route = $1 AND opened_at > $2",
    )
    .bind(route)
    .bind(since.0)
    .fetch_one(ex)
    .await?;
    col(&row, "n")
}

/// The open storm incident of a route, if any.
pub async fn open_incident_for_route<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    alert_route: &str,
) -> StoreResult<Option<IncidentRef>> {
    let row = sqlx::query(
        "SELECT MAX(id) AS id FROM incidents WHERE alert_route = $1 AND state <> 'resolved'",
    )
    .bind(alert_route)
    .fetch_one(ex)
    .await?;
    Ok(col::<Option<i64>>(&row, "id")?.and_then(IncidentRef::new))
}

pub async fn set_alert_route<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    alert_route: &str,
    previous: Option<IncidentRef>,
) -> StoreResult<()> {
    sqlx::query("UPDATE incidents SET alert_route = $2, previous_incident_id = $3 WHERE id = $1")
        .bind(incident.number())
        .bind(alert_route)
        .bind(previous.map(|r| r.number()))
        .execute(ex)
        .await?;
    Ok(())
}

/// A group of an incident, for silences.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub group_id: String,
    pub source: String,
    pub title: String,
    pub labels: serde_json::Value,
}

pub async fn groups_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<Vec<GroupRow>> {
    let rows = sqlx::query(
        "SELECT group_id, source, title, labels FROM alert_groups WHERE incident_id = $1 ORDER BY created_at, group_id",
    )
    .bind(incident.number())
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let labels: String = col(r, "labels")?;
            Ok(GroupRow {
                group_id: col(r, "group_id")?,
                source: col(r, "source")?,
                title: col(r, "title")?,
                labels: serde_json::from_str(&labels).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

/// Groups folded into a storm incident and not yet listed in its thread; marks them listed.
pub async fn take_unannounced(
    tx: &mut super::Tx,
    incident: IncidentRef,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "UPDATE alert_groups SET announced = 1 WHERE incident_id = $1 AND announced = 0 RETURNING title",
    )
    .bind(incident.number())
    .fetch_all(&mut **tx)
    .await?;
    let mut titles: Vec<String> = rows
        .iter()
        .map(|r| col(r, "title"))
        .collect::<StoreResult<_>>()?;
    titles.sort();
    Ok(titles)
}

pub async fn count_groups<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM alert_groups WHERE incident_id = $1")
        .bind(incident.number())
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}

/// A silence created from Slack.
#[derive(Debug, Clone)]
pub struct SilenceRow {
    pub id: i64,
    pub silence_id: String,
}

pub async fn add_silence<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    silence_id: &str,
    created_by: &str,
    ends_at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO silences (incident_id, silence_id, created_by, ends_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(incident.number())
    .bind(silence_id)
    .bind(created_by)
    .bind(ends_at.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Silences of an incident that are neither expired by Klaxon nor past their end.
pub async fn active_silences<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    now: Millis,
) -> StoreResult<Vec<SilenceRow>> {
    let rows = sqlx::query(
        "SELECT id, silence_id FROM silences WHERE incident_id = $1 AND expired_at IS NULL AND ends_at > $2 ORDER BY id",
    )
    .bind(incident.number())
    .bind(now.0)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SilenceRow {
                id: col(r, "id")?,
                silence_id: col(r, "silence_id")?,
            })
        })
        .collect()
}

pub async fn mark_silence_expired<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query("UPDATE silences SET expired_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now.0)
        .execute(ex)
        .await?;
    Ok(())
}
