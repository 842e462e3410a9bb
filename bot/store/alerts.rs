//! Queries for alert groups, alerts, processed notifications and silences.
//!
//! Alerts are kept whole (labels, annotations, links as received, in `detail`)
//! and written in bulk: a notification of 10,000 alerts is a few statements.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor};

use super::{StoreError, StoreResult, col};
use crate::alerts::{Alert, AlertStatus};
use crate::incident::IncidentRef;
use crate::time::Millis;

/// Remembers a notification by content; `false` if it was processed before.
/// A repeat refreshes when it was last seen, so a group that keeps firing
/// (Alertmanager repeats it every `repeat_interval`) is never pruned as old
/// and then taken for new. One statement either way: the row counts its
/// repeats, and a count of 0 is a first.
pub async fn first_notification(
    tx: &mut super::Tx,
    dedupe_key: &str,
    now: Millis,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "INSERT INTO alert_notifications (dedupe_key, received_at) VALUES ($1, $2) \
         ON CONFLICT (dedupe_key) DO UPDATE SET received_at = excluded.received_at, \
         repeats = alert_notifications.repeats + 1 \
         RETURNING repeats",
    )
    .bind(dedupe_key)
    .bind(now.0)
    .fetch_one(&mut **tx)
    .await?;
    Ok(col::<i64>(&row, "repeats")? == 0)
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
    /// What the notification that links it says of the group's size.
    pub view: GroupView,
}

/// Links a group to an incident; `true` when the link is new (then the
/// incident holds none of the group's alerts yet and no view of its size).
pub async fn link_group<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    link: &GroupLink<'_>,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO alert_groups (group_id, incident_id, source, route, title, labels, announced, created_at, \
                                   listed, listed_firing, truncated, peak) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (group_id, incident_id) DO NOTHING",
    )
    .bind(link.group_id)
    .bind(link.incident.number())
    .bind(link.source)
    .bind(link.route)
    .bind(link.title)
    .bind(link.labels.to_string())
    .bind(i64::from(link.announced))
    .bind(now.0)
    .bind(int(link.view.listed))
    .bind(int(link.view.listed_firing))
    .bind(int(link.view.truncated))
    .bind(int(link.view.listed.saturating_add(link.view.truncated)))
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What Klaxon holds of an alert under an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub status: AlertStatus,
    pub starts_at: Millis,
}

/// The alerts of one group an incident holds, by fingerprint.
pub async fn held(
    tx: &mut super::Tx,
    incident: IncidentRef,
    group_id: &str,
) -> StoreResult<HashMap<String, Held>> {
    // One group's, not the incident's: a storm incident holds thousands of
    // groups, and each notification speaks for one.
    let rows = sqlx::query(
        "SELECT fingerprint, status, starts_at FROM alerts WHERE incident_id = $1 AND group_id = $2",
    )
    .bind(incident.number())
    .bind(group_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = col(r, "status")?;
            Ok((
                col(r, "fingerprint")?,
                Held {
                    status: AlertStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("alert status {status}")))?,
                    starts_at: Millis(col(r, "starts_at")?),
                },
            ))
        })
        .collect()
}

/// Everything an alert carries besides what has a column of its own, kept whole.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Detail {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    silence_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dashboard_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    panel_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    values: BTreeMap<String, f64>,
}

/// Rows per statement when alerts are written in bulk (9 parameters a row).
const ROWS_PER_STATEMENT: usize = 200;

/// Writes alerts of a group under an incident, whole (labels, annotations,
/// links), new ones and changed ones alike: one statement per 200 alerts.
/// `alerts` must not name a fingerprint twice.
pub async fn upsert(
    tx: &mut super::Tx,
    incident: IncidentRef,
    group_id: &str,
    alerts: &[&Alert],
    now: Millis,
) -> StoreResult<()> {
    for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO alerts (incident_id, group_id, fingerprint, status, name, starts_at, ends_at, updated_at, detail) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 9;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9
            ));
        }
        sql.push_str(
            " ON CONFLICT (incident_id, fingerprint) DO UPDATE SET group_id = excluded.group_id, \
             status = excluded.status, name = excluded.name, starts_at = excluded.starts_at, \
             ends_at = excluded.ends_at, updated_at = excluded.updated_at, detail = excluded.detail",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            let detail = Detail {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                generator_url: a.generator_url.clone(),
                silence_url: a.silence_url.clone(),
                dashboard_url: a.dashboard_url.clone(),
                panel_url: a.panel_url.clone(),
                values: a.values.clone(),
            };
            let detail = serde_json::to_string(&detail)
                .map_err(|e| StoreError::Corrupt(format!("alert detail: {e}")))?;
            q = q
                .bind(incident.number())
                .bind(group_id)
                .bind(a.fingerprint.as_str())
                .bind(a.status.as_str())
                .bind(a.name())
                .bind(a.starts_at.0)
                .bind(a.ends_at.map(|m| m.0))
                .bind(now.0)
                .bind(detail);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Remembers that these alerts (fingerprint, start) resolved, so a firing
/// notification for one of them that arrives later is known to be stale.
pub async fn remember_resolved(
    tx: &mut super::Tx,
    source: &str,
    keys: &[(&str, Millis)],
    now: Millis,
) -> StoreResult<()> {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO resolved_alerts (source, fingerprint, starts_at, resolved_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 3 + 1;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("($1, ${}, ${}, ${})", b + 1, b + 2, b + 3));
        }
        sql.push_str(" ON CONFLICT (source, fingerprint, starts_at) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(source);
        for (fingerprint, starts_at) in chunk {
            q = q.bind(*fingerprint).bind(starts_at.0).bind(now.0);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Which of these (fingerprint, start) pairs Klaxon has seen resolved.
pub async fn seen_resolved(
    tx: &mut super::Tx,
    source: &str,
    keys: &[(&str, Millis)],
) -> StoreResult<HashSet<(String, i64)>> {
    let mut seen: HashSet<(String, i64)> = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT fingerprint, starts_at FROM resolved_alerts WHERE source = $1 AND fingerprint IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(source);
        for (fingerprint, _) in chunk {
            q = q.bind(*fingerprint);
        }
        for row in q.fetch_all(&mut **tx).await? {
            seen.insert((col(&row, "fingerprint")?, col(&row, "starts_at")?));
        }
    }
    let wanted: HashSet<(&str, i64)> = keys.iter().map(|(f, s)| (*f, s.0)).collect();
    seen.retain(|(f, s)| wanted.contains(&(f.as_str(), *s)));
    Ok(seen)
}

/// What the latest notification of a group said of its size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupView {
    /// Alerts it listed (firing and resolved).
    pub listed: u64,
    /// Of those, the ones that fire.
    pub listed_firing: u64,
    /// Alerts the sender left out (`truncatedAlerts`: Alertmanager's
    /// `max_alerts`), firing or not.
    pub truncated: u64,
}

impl GroupView {
    /// Nothing of the group fires, and nothing was left out.
    pub fn clear(&self) -> bool {
        self.listed_firing == 0 && self.truncated == 0
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records what a notification said of its group's size (forgetting any
/// earlier answer of Alertmanager's API); returns what the previous one said.
/// (A group linked by this notification has its view already: [`link_group`].)
pub async fn set_group_view(
    tx: &mut super::Tx,
    group_id: &str,
    incident: IncidentRef,
    view: GroupView,
) -> StoreResult<Option<GroupView>> {
    let before = sqlx::query(
        "SELECT listed, listed_firing, truncated, peak FROM alert_groups WHERE group_id = $1 AND incident_id = $2",
    )
    .bind(group_id)
    .bind(incident.number())
    .fetch_optional(&mut **tx)
    .await?;
    let before = match before {
        Some(row) => {
            let n = |c: &str| -> StoreResult<u64> {
                Ok(u64::try_from(col::<i64>(&row, c)?).unwrap_or(0))
            };
            // A group linked a moment ago has seen no notification yet.
            let seen = n("listed")? + n("truncated")? + n("peak")? > 0;
            seen.then_some(GroupView {
                listed: n("listed")?,
                listed_firing: n("listed_firing")?,
                truncated: n("truncated")?,
            })
        }
        None => None,
    };
    let size = int(view.listed.saturating_add(view.truncated));
    sqlx::query(
        "UPDATE alert_groups SET listed = $3, listed_firing = $4, truncated = $5, active = NULL, \
         peak = CASE WHEN peak < $6 THEN $6 ELSE peak END \
         WHERE group_id = $1 AND incident_id = $2",
    )
    .bind(group_id)
    .bind(incident.number())
    .bind(int(view.listed))
    .bind(int(view.listed_firing))
    .bind(int(view.truncated))
    .bind(size)
    .execute(&mut **tx)
    .await?;
    Ok(before)
}

/// Records how many of the group's alerts fire by Alertmanager's API (it
/// counts the ones a notification left out, too).
pub async fn set_group_active(
    tx: &mut super::Tx,
    group_id: &str,
    incident: IncidentRef,
    active: u64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE alert_groups SET active = $3, peak = CASE WHEN peak < $3 THEN $3 ELSE peak END \
         WHERE group_id = $1 AND incident_id = $2",
    )
    .bind(group_id)
    .bind(incident.number())
    .bind(int(active))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks every alert of the group Klaxon holds as firing resolved: the
/// sender said (whole) that none fires any more. Returns how many.
pub async fn resolve_held_firing(
    tx: &mut super::Tx,
    incident: IncidentRef,
    group_id: &str,
    now: Millis,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE alerts SET status = 'resolved', ends_at = COALESCE(ends_at, $3) \
         WHERE incident_id = $1 AND group_id = $2 AND status = 'firing'",
    )
    .bind(incident.number())
    .bind(group_id)
    .bind(now.0)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// An incident's alerts in numbers, by what the senders said last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alerts known to fire: listed as firing in each group's latest
    /// notification, or counted by Alertmanager's API since.
    pub firing: u64,
    /// Alerts the senders left out of their latest notifications (firing or
    /// not: unknown), where Alertmanager's API was not asked since.
    pub hidden: u64,
    /// Alerts Klaxon holds that resolved.
    pub resolved: u64,
    /// How many alerts the incident had: what Klaxon holds, or the most the
    /// senders counted at once, whichever is more.
    pub total: u64,
    /// How many alerts Klaxon holds (firing or resolved).
    pub held: u64,
}

impl Counts {
    /// What may fire: known firing plus left out.
    pub fn firing_total(&self) -> u64 {
        self.firing.saturating_add(self.hidden)
    }
}

pub async fn counts(tx: &mut super::Tx, incident: IncidentRef) -> StoreResult<Counts> {
    let row = sqlx::query(
        "SELECT (SELECT CAST(COALESCE(SUM(CASE WHEN active IS NULL THEN listed_firing ELSE active END), 0) AS BIGINT) \
                   FROM alert_groups WHERE incident_id = $1) AS firing, \
                (SELECT CAST(COALESCE(SUM(CASE WHEN active IS NULL THEN truncated ELSE 0 END), 0) AS BIGINT) \
                   FROM alert_groups WHERE incident_id = $1) AS hidden, \
                (SELECT COUNT(*) FROM alerts WHERE incident_id = $1 AND status = 'resolved') AS resolved, \
                (SELECT COUNT(*) FROM alerts WHERE incident_id = $1) AS held, \
                (SELECT CAST(COALESCE(SUM(peak), 0) AS BIGINT) FROM alert_groups WHERE incident_id = $1) AS peak",
    )
    .bind(incident.number())
    .fetch_one(&mut **tx)
    .await?;
    let n = |name: &str| -> StoreResult<u64> {
        Ok(u64::try_from(col::<i64>(&row, name)?).unwrap_or(0))
    };
    Ok(Counts {
        firing: n("firing")?,
        resolved: n("resolved")?,
        hidden: n("hidden")?,
        total: n("held")?.max(n("peak")?),
        held: n("held")?,
    })
}

/// Up to `limit` of an incident's alerts in `status`, whole, oldest first.
pub async fn list(
    tx: &mut super::Tx,
    incident: IncidentRef,
    status: AlertStatus,
    limit: i64,
) -> StoreResult<Vec<Alert>> {
    let rows = sqlx::query(
        "SELECT fingerprint, status, starts_at, ends_at, detail FROM alerts \
         WHERE incident_id = $1 AND status = $2 ORDER BY starts_at, id LIMIT $3",
    )
    .bind(incident.number())
    .bind(status.as_str())
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = col(r, "detail")?;
            let d: Detail = serde_json::from_str(&detail).unwrap_or_default();
            Ok(Alert {
                fingerprint: col(r, "fingerprint")?,
                status,
                labels: d.labels,
                annotations: d.annotations,
                starts_at: Millis(col(r, "starts_at")?),
                ends_at: col::<Option<i64>>(r, "ends_at")?.map(Millis),
                generator_url: d.generator_url,
                silence_url: d.silence_url,
                dashboard_url: d.dashboard_url,
                panel_url: d.panel_url,
                values: d.values,
            })
        })
        .collect()
}

/// The names of an incident's alerts in `status`, with how many of each, most first.
pub async fn names(
    tx: &mut super::Tx,
    incident: IncidentRef,
    status: AlertStatus,
) -> StoreResult<Vec<(String, u64)>> {
    let rows = sqlx::query(
        "SELECT name, COUNT(*) AS n FROM alerts WHERE incident_id = $1 AND status = $2 \
         GROUP BY name ORDER BY COUNT(*) DESC, name",
    )
    .bind(incident.number())
    .bind(status.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                col(r, "name")?,
                u64::try_from(col::<i64>(r, "n")?).unwrap_or(0),
            ))
        })
        .collect()
}

/// The route a group of an incident came through.
pub async fn route_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    group_id: &str,
    incident: IncidentRef,
) -> StoreResult<Option<String>> {
    let row =
        sqlx::query("SELECT route FROM alert_groups WHERE group_id = $1 AND incident_id = $2")
            .bind(group_id)
            .bind(incident.number())
            .fetch_optional(ex)
            .await?;
    row.map(|r| col(&r, "route")).transpose()
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

/// An alert of one of an incident's groups, as a silence needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAlert {
    pub fingerprint: String,
    pub status: AlertStatus,
    /// When the sender said it started firing.
    pub starts_at: Millis,
    /// Every label, as the sender sent them.
    pub labels: BTreeMap<String, String>,
}

/// The alerts Klaxon holds for `group_id` of `incident`, firing or not.
pub async fn alerts_of_group<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    group_id: &str,
) -> StoreResult<Vec<GroupAlert>> {
    let rows = sqlx::query(
        "SELECT fingerprint, status, starts_at, detail FROM alerts WHERE incident_id = $1 AND group_id = $2 ORDER BY id",
    )
    .bind(incident.number())
    .bind(group_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let status: String = col(r, "status")?;
            let detail: String = col(r, "detail")?;
            let d: Detail = serde_json::from_str(&detail).unwrap_or_default();
            Ok(GroupAlert {
                fingerprint: col(r, "fingerprint")?,
                status: AlertStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("alert status {status}")))?,
                starts_at: Millis(col(r, "starts_at")?),
                labels: d.labels,
            })
        })
        .collect()
}

/// The fingerprints of every alert Klaxon holds for `incident`.
pub async fn fingerprints_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<HashSet<String>> {
    let rows = sqlx::query("SELECT fingerprint FROM alerts WHERE incident_id = $1")
        .bind(incident.number())
        .fetch_all(ex)
        .await?;
    rows.iter().map(|r| col(r, "fingerprint")).collect()
}

/// The other open incidents that hold any of `fingerprints` as firing
/// alerts (a duplicate, or a forged copy of a real alert).
pub async fn other_open_holders<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    fingerprints: &[&str],
) -> StoreResult<Vec<IncidentRef>> {
    if fingerprints.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..fingerprints.len())
        .map(|i| format!("${}", i + 2))
        .collect();
    let sql = format!(
        "SELECT DISTINCT a.incident_id FROM alerts a JOIN incidents i ON i.id = a.incident_id \
         WHERE a.incident_id <> $1 AND i.state <> 'resolved' AND a.status = 'firing' \
         AND a.fingerprint IN ({}) ORDER BY a.incident_id",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(incident.number());
    for f in fingerprints {
        q = q.bind(*f);
    }
    let rows = q.fetch_all(ex).await?;
    Ok(rows
        .iter()
        .filter_map(|r| col::<i64>(r, "incident_id").ok().and_then(IncidentRef::new))
        .collect())
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
