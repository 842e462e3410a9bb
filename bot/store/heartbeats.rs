//! Heartbeat rows: the last beat, the deadline for the next, and the incident
//! a missed beat opened (see `crate::usecases::heartbeats`).

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::incident::IncidentRef;
use crate::time::Millis;

/// One heartbeat as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRow {
    pub name: String,
    /// `None`: no beat has ever arrived.
    pub last_beat_at: Option<Millis>,
    /// A beat must arrive before this instant.
    pub deadline_at: Millis,
    pub beats: i64,
    /// The open incident a missed beat opened, until beats resume.
    pub incident: Option<IncidentRef>,
}

fn row(r: &sqlx::any::AnyRow) -> StoreResult<HeartbeatRow> {
    Ok(HeartbeatRow {
        name: col(r, "name")?,
        last_beat_at: col::<Option<i64>>(r, "last_beat_at")?.map(Millis),
        deadline_at: Millis(col(r, "deadline_at")?),
        beats: col(r, "beats")?,
        incident: col::<Option<i64>>(r, "incident_id")?.and_then(IncidentRef::new),
    })
}

const COLUMNS: &str = "name, last_beat_at, deadline_at, beats, incident_id";

/// Makes the row of a heartbeat Klaxon has not tracked yet, due at `deadline`;
/// `true` when it was new.
pub async fn ensure<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    name: &str,
    deadline: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO heartbeats (name, deadline_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(deadline.0)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    name: &str,
) -> StoreResult<Option<HeartbeatRow>> {
    let q = format!("SELECT {COLUMNS} FROM heartbeats WHERE name = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(name)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(row)
        .transpose()
}

/// The row, locked on PostgreSQL for the rest of the transaction (SQLite's
/// writer holds the whole file), so a beat and the heartbeat's job never both
/// act on the same deadline.
pub async fn lock(
    tx: &mut super::Tx,
    backend: super::Backend,
    name: &str,
) -> StoreResult<Option<HeartbeatRow>> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT name FROM heartbeats WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    }
    get(&mut **tx, name).await
}

/// Every heartbeat row (for the metrics).
pub async fn all<'c, E: Executor<'c, Database = Any>>(ex: E) -> StoreResult<Vec<HeartbeatRow>> {
    let q = format!("SELECT {COLUMNS} FROM heartbeats ORDER BY name");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(ex)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// Records a beat at `now` and moves the deadline to `deadline`.
pub async fn beat<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    name: &str,
    now: Millis,
    deadline: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE heartbeats SET last_beat_at = $2, deadline_at = $3, beats = beats + 1 WHERE name = $1",
    )
    .bind(name)
    .bind(now.0)
    .bind(deadline.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// Moves the deadline (the heartbeat's interval or grace changed).
pub async fn set_deadline<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    name: &str,
    deadline: Millis,
) -> StoreResult<()> {
    sqlx::query("UPDATE heartbeats SET deadline_at = $2 WHERE name = $1")
        .bind(name)
        .bind(deadline.0)
        .execute(ex)
        .await?;
    Ok(())
}

/// Sets (or clears) the incident of a missed beat.
pub async fn set_incident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    name: &str,
    incident: Option<IncidentRef>,
) -> StoreResult<()> {
    sqlx::query("UPDATE heartbeats SET incident_id = $2 WHERE name = $1")
        .bind(name)
        .bind(incident.map(|r| r.number()))
        .execute(ex)
        .await?;
    Ok(())
}
