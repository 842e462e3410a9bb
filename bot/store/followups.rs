//! Queries on follow-ups: the action items recorded on an incident, and
//! where their copies in the team's issue tracker stand.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::incident::{IncidentRef, SlackUserId};
use crate::time::Millis;

/// A follow-up as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub id: i64,
    /// Its number among the incident's follow-ups (#1, #2 …).
    pub number: i64,
    pub incident: IncidentRef,
    pub text: String,
    pub owner: Option<SlackUserId>,
    pub created_by: Option<SlackUserId>,
    pub created_at: Millis,
    /// `pending`, `filed` or `failed` when a tracker webhook is set.
    pub tracker_state: Option<String>,
    /// What the tracker answered (an issue key or URL), once filed.
    pub tracker_ref: Option<String>,
}

fn from_row(row: &AnyRow) -> StoreResult<Option<FollowUp>> {
    let incident: i64 = col(row, "incident_id")?;
    let Some(incident) = IncidentRef::new(incident) else {
        return Ok(None);
    };
    let user = |v: Option<String>| v.as_deref().and_then(SlackUserId::parse);
    Ok(Some(FollowUp {
        id: col(row, "id")?,
        number: col::<Option<i64>>(row, "number")?.unwrap_or(0),
        incident,
        text: col(row, "text")?,
        owner: user(col(row, "owner")?),
        created_by: user(col(row, "created_by")?),
        created_at: Millis(col(row, "created_at")?),
        tracker_state: col(row, "tracker_state")?,
        tracker_ref: col(row, "tracker_ref")?,
    }))
}

const COLUMNS: &str =
    "id, number, incident_id, text, owner, created_by, created_at, tracker_state, tracker_ref";

/// Records a follow-up; `tracker`: whether a webhook will file it (state
/// `pending`). Returns its id and its number among the incident's follow-ups.
pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    text: &str,
    owner: Option<&SlackUserId>,
    by: Option<&SlackUserId>,
    tracker: bool,
    at: Millis,
) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        "INSERT INTO followups (incident_id, text, owner, created_by, created_at, tracker_state, number) \
         VALUES ($1, $2, $3, $4, $5, $6, \
                 (SELECT COALESCE(MAX(number), 0) + 1 FROM followups WHERE incident_id = $1)) \
         RETURNING id, number",
    )
    .bind(r.number())
    .bind(text)
    .bind(owner.map(|u| u.as_str().to_string()))
    .bind(by.map(|u| u.as_str().to_string()))
    .bind(at.0)
    .bind(tracker.then_some("pending"))
    .fetch_one(ex)
    .await?;
    Ok((col(&row, "id")?, col(&row, "number")?))
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
) -> StoreResult<Option<FollowUp>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM followups WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(ex)
    .await?;
    Ok(match row {
        Some(row) => from_row(&row)?,
        None => None,
    })
}

/// The follow-ups of incident `r`, oldest first.
pub async fn of_incident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<FollowUp>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM followups WHERE incident_id = $1 ORDER BY id"
    )))
    .bind(r.number())
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(f) = from_row(row)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Records where the tracker copy stands (`filed` with its reference, or `failed`).
pub async fn set_tracker<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    state: &str,
    reference: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("UPDATE followups SET tracker_state = $2, tracker_ref = $3 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(reference)
        .execute(ex)
        .await?;
    Ok(())
}
