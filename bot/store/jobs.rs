//! The durable job queue's rows: timers and slow work that must survive restarts.
//!
//! A job is a row with a kind, a lane, a JSON payload and the instant it falls
//! due. A lane's workers [`claim_due`] jobs of that lane with a lease
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so replicas never take the same row;
//! SQLite: one atomic `UPDATE … RETURNING`), and renew the lease while the job
//! runs ([`renew`]). A job's effects commit in one transaction that starts by
//! deleting the job while still holding its lease ([`finish`]); if the lease
//! was lost, the delete finds nothing and the effects roll back, so a step is
//! never done twice. What a kind means is not known here: see [`crate::jobs`].

use sqlx::{Any, Executor};

use super::{Backend, Store, StoreResult, col};
use crate::incident::IncidentRef;
use crate::time::Millis;

/// A job to enqueue, already serialised.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub lane: &'a str,
    /// JSON.
    pub payload: String,
    pub incident: Option<IncidentRef>,
    /// Jobs with the same key are one job: enqueueing it again does nothing.
    pub dedupe_key: Option<String>,
    pub run_at: Millis,
}

/// Enqueues a job; `false` when a job with the same dedupe key already waits.
pub async fn enqueue<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    job: &NewJob<'_>,
    now: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, lane, payload, incident_id, dedupe_key, run_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(job.kind)
    .bind(job.lane)
    .bind(job.payload.as_str())
    .bind(job.incident.map(|r| r.number()))
    .bind(job.dedupe_key.clone())
    .bind(job.run_at.0)
    .bind(now.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job this worker holds the lease on.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub run_at: Millis,
    /// Including this one.
    pub attempts: i64,
    /// The incident the job belongs to (its row is locked first when the job finishes).
    pub incident: Option<IncidentRef>,
    /// The worker whose lease on it ran out before it finished (a replica
    /// that died or stalled), when this claim takes it over.
    pub taken_over_from: Option<String>,
}

/// Claims up to `limit` due jobs of `lane` whose lease is free or expired,
/// soonest due first.
pub async fn claim_due(
    store: &Store,
    lane: &str,
    owner: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> StoreResult<Vec<Claimed>> {
    let sql = match store.backend() {
        Backend::Postgres => {
            "UPDATE jobs SET previous_owner = lease_owner, lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE lane = $5 AND run_at <= $3 \
                            AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                          ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, run_at, attempts, incident_id, previous_owner"
        }
        Backend::Sqlite => {
            "UPDATE jobs SET previous_owner = lease_owner, lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE lane = $5 AND run_at <= $3 \
                            AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                          ORDER BY run_at LIMIT $4) \
             RETURNING id, kind, payload, run_at, attempts, incident_id, previous_owner"
        }
    };
    let rows = sqlx::query(sql)
        .bind(owner)
        .bind(lease_until.0)
        .bind(now.0)
        .bind(limit)
        .bind(lane)
        .fetch_all(store.pool())
        .await?;
    let mut jobs: Vec<Claimed> = rows
        .iter()
        .map(|row| {
            Ok(Claimed {
                id: col(row, "id")?,
                kind: col(row, "kind")?,
                payload: col(row, "payload")?,
                run_at: Millis(col(row, "run_at")?),
                attempts: col(row, "attempts")?,
                incident: col::<Option<i64>>(row, "incident_id")?.and_then(IncidentRef::new),
                taken_over_from: col(row, "previous_owner")?,
            })
        })
        .collect::<StoreResult<_>>()?;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(jobs)
}

/// Extends every lease `owner` holds in `lane` to `lease_until` (the
/// heartbeat of running jobs).
pub async fn renew<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    owner: &str,
    lane: &str,
    lease_until: Millis,
) -> StoreResult<u64> {
    let done =
        sqlx::query("UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = $1 AND lane = $3")
            .bind(owner)
            .bind(lease_until.0)
            .bind(lane)
            .execute(ex)
            .await?;
    Ok(done.rows_affected())
}

/// Deletes a finished job if this worker still holds its lease; call it first in
/// the transaction that commits the job's effects. `false`: the lease was lost.
pub async fn finish<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    owner: &str,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_owner = $2")
        .bind(id)
        .bind(owner)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a job for another attempt at `run_at`.
pub async fn retry_later<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    owner: &str,
    run_at: Millis,
    error: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, run_at = $3, last_error = $4 \
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(run_at.0)
    .bind(error)
    .execute(ex)
    .await?;
    Ok(())
}

/// When the next job of `lane` falls due after `now`, or a lease of the lane
/// runs out (a job whose runner died may then be taken over), if either waits.
/// Both halves read an index: this runs after every claim, and a lane may hold
/// hundreds of thousands of future timers.
pub async fn next_due<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    lane: &str,
    now: Millis,
) -> StoreResult<Option<Millis>> {
    let row = sqlx::query(
        "SELECT (SELECT MIN(run_at) FROM jobs WHERE lane = $1 AND run_at > $2) AS due, \
                (SELECT MIN(lease_expires_at) FROM jobs WHERE lane = $1 AND lease_expires_at IS NOT NULL) AS lease",
    )
    .bind(lane)
    .bind(now.0)
    .fetch_one(ex)
    .await?;
    let due = col::<Option<i64>>(&row, "due")?;
    let lease = col::<Option<i64>>(&row, "lease")?;
    Ok(due.into_iter().chain(lease).min().map(Millis))
}

/// When the oldest job of `lane` that is due by `now` and not finished
/// (waiting or running) fell due, if there is one.
pub async fn oldest_due<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    lane: &str,
    now: Millis,
) -> StoreResult<Option<Millis>> {
    let row = sqlx::query("SELECT MIN(run_at) AS due FROM jobs WHERE lane = $1 AND run_at <= $2")
        .bind(lane)
        .bind(now.0)
        .fetch_one(ex)
        .await?;
    Ok(col::<Option<i64>>(&row, "due")?.map(Millis))
}

/// Drops the waiting jobs of one kind for an incident (e.g. escalation after an ack).
pub async fn cancel_for_incident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
    kind: &str,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM jobs WHERE incident_id = $1 AND kind = $2")
        .bind(incident.number())
        .bind(kind)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// Drops the waiting job with this dedupe key, if any.
pub async fn cancel<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    dedupe_key: &str,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM jobs WHERE dedupe_key = $1")
        .bind(dedupe_key)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// Jobs waiting (due or not, running or not), by lane.
pub async fn pending_by_lane<'c, E: Executor<'c, Database = Any>>(
    ex: E,
) -> StoreResult<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT lane, COUNT(*) AS n FROM jobs GROUP BY lane")
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "lane")?, col(r, "n")?)))
        .collect()
}

/// Jobs due by `now` and not yet finished (waiting or running), in every lane.
pub async fn due_count<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    now: Millis,
) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE run_at <= $1")
        .bind(now.0)
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}

pub async fn pending_count<'c, E: Executor<'c, Database = Any>>(ex: E) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs")
        .fetch_one(ex)
        .await?;
    col(&row, "n")
}
