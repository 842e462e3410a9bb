//! Action requests and the append-only audit log.
//!
//! Every state change of a request is a conditional `UPDATE` from the state it
//! must be in, so an approval racing an expiry, or two approvers pressing at
//! once, gives one result. The audit log refuses updates and deletes (triggers).

use sqlx::{Any, Executor};

use super::{StoreError, StoreResult, col};
use crate::incident::IncidentRef;
use crate::time::Millis;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Expired,
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Running => "running",
            RequestState::Succeeded => "succeeded",
            RequestState::Failed => "failed",
            RequestState::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Denied,
            RequestState::Expired,
            RequestState::Running,
            RequestState::Succeeded,
            RequestState::Failed,
            RequestState::Interrupted,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: i64,
    pub incident: IncidentRef,
    pub action: String,
    /// `key=value` pairs as given, JSON.
    pub params: String,
    pub plan: String,
    pub target: String,
    pub requested_by: String,
    pub state: RequestState,
    pub decided_by: Option<String>,
    pub expires_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub message_outbox_id: Option<i64>,
}

const COLUMNS: &str = "id, incident_id, action, params, plan, target, requested_by, state, decided_by, \
                       expires_at, started_at, message_outbox_id";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Request> {
    let state: String = col(row, "state")?;
    let incident: i64 = col(row, "incident_id")?;
    Ok(Request {
        id: col(row, "id")?,
        incident: IncidentRef::new(incident)
            .ok_or_else(|| StoreError::Corrupt(format!("incident {incident}")))?,
        action: col(row, "action")?,
        params: col(row, "params")?,
        plan: col(row, "plan")?,
        target: col(row, "target")?,
        requested_by: col(row, "requested_by")?,
        state: RequestState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("request state {state}")))?,
        decided_by: col(row, "decided_by")?,
        expires_at: col::<Option<i64>>(row, "expires_at")?.map(Millis),
        started_at: col::<Option<i64>>(row, "started_at")?.map(Millis),
        message_outbox_id: col(row, "message_outbox_id")?,
    })
}

/// A new request.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    pub incident: IncidentRef,
    pub action: &'a str,
    pub params: &'a str,
    pub plan: &'a str,
    pub target: &'a str,
    pub requested_by: &'a str,
    pub state: RequestState,
    pub expires_at: Option<Millis>,
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: &NewRequest<'_>,
    now: Millis,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "INSERT INTO action_requests (incident_id, action, params, plan, target, requested_by, state, requested_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(r.incident.number())
    .bind(r.action)
    .bind(r.params)
    .bind(r.plan)
    .bind(r.target)
    .bind(r.requested_by)
    .bind(r.state.as_str())
    .bind(now.0)
    .bind(r.expires_at.map(|m| m.0))
    .fetch_one(ex)
    .await?;
    col(&row, "id")
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
) -> StoreResult<Option<Request>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM action_requests WHERE id = $1"
    ));
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every request of an incident, oldest first (for its postmortem).
pub async fn of_incident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<Vec<Request>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM action_requests WHERE incident_id = $1 ORDER BY id"
    ));
    sqlx::query(sql)
        .bind(incident.number())
        .fetch_all(ex)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// An incident's requests still waiting for a decision or to start
/// (`pending`, `approved`).
pub async fn undecided_for<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<Vec<Request>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM action_requests WHERE incident_id = $1 AND state IN ('pending', 'approved') ORDER BY id"
    ));
    sqlx::query(sql)
        .bind(incident.number())
        .fetch_all(ex)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn set_message<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    outbox_id: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE action_requests SET message_outbox_id = $2 WHERE id = $1")
        .bind(id)
        .bind(outbox_id)
        .execute(ex)
        .await?;
    Ok(())
}

/// Moves a request from `from` to `to`; `false` if it was no longer in `from`.
pub async fn transition<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    from: RequestState,
    to: RequestState,
    decided_by: Option<&str>,
    now: Millis,
    outcome: Option<&str>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE action_requests SET state = $3, \
           decided_by = COALESCE($4, decided_by), \
           started_at = CASE WHEN $3 = 'running' THEN $5 ELSE started_at END, \
           finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'interrupted', 'denied', 'expired') THEN $5 ELSE finished_at END, \
           outcome = COALESCE($6, outcome) \
         WHERE id = $1 AND state = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(decided_by)
    .bind(now.0)
    .bind(outcome)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Requests running now on a target (the concurrency limit counts these).
pub async fn running_on<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    target: &str,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM action_requests WHERE target = $1 AND state = 'running'",
    )
    .bind(target)
    .fetch_one(ex)
    .await?;
    col(&row, "n")
}

/// Inside the transaction that would start a run on `target`: whether fewer
/// than `limit` runs on it are running, across every replica. On PostgreSQL
/// the transaction first takes a lock on the target (held until it ends), so
/// two replicas cannot both count "free" and both start; SQLite has one
/// writer (one replica) and needs none.
pub async fn target_free(
    tx: &mut super::Tx,
    backend: super::Backend,
    target: &str,
    limit: u32,
) -> StoreResult<bool> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7001)) IS NULL AS locked")
            .bind(format!("klaxon-target:{target}"))
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(running_on(&mut **tx, target).await? < i64::from(limit))
}

/// One line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub incident: Option<IncidentRef>,
    pub request: Option<i64>,
    pub actor: Option<&'a str>,
    /// `requested`, `refused`, `dry_run`, `approved`, `denied`, `expired`, `started`, `succeeded`, `failed`, `interrupted`.
    pub event: &'a str,
    pub action: Option<&'a str>,
    pub detail: &'a str,
}

pub async fn audit<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    e: &AuditEntry<'_>,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, incident_id, request_id, actor, event, action, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now.0)
    .bind(e.incident.map(|r| r.number()))
    .bind(e.request)
    .bind(e.actor)
    .bind(e.event)
    .bind(e.action)
    .bind(e.detail)
    .execute(ex)
    .await?;
    Ok(())
}

/// The audit log, oldest first (for tests and reviews).
pub async fn audit_log<'c, E: Executor<'c, Database = Any>>(
    ex: E,
) -> StoreResult<Vec<(String, Option<String>, Option<String>, String)>> {
    let rows = sqlx::query("SELECT event, actor, action, detail FROM audit_log ORDER BY id")
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                col(r, "event")?,
                col(r, "actor")?,
                col(r, "action")?,
                col(r, "detail")?,
            ))
        })
        .collect()
}
