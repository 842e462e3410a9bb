//! Queries on incident roles: who holds commander, comms, scribe … of an incident.

use sqlx::{Any, Executor};

use super::{StoreResult, col};
use crate::incident::roles::RoleName;
use crate::incident::{IncidentRef, SlackUserId};
use crate::time::Millis;

/// Gives `user` the role `role` of incident `r`, replacing its holder;
/// returns the previous holder, if any.
pub async fn assign<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    role: &RoleName,
    user: &SlackUserId,
    by: Option<&SlackUserId>,
    at: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO incident_roles (incident_id, role, user_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (incident_id, role) DO UPDATE SET user_id = $3, assigned_by = $4, assigned_at = $5",
    )
    .bind(r.number())
    .bind(role.as_str())
    .bind(user.as_str())
    .bind(by.map(|u| u.as_str().to_string()))
    .bind(at.0)
    .execute(ex)
    .await?;
    Ok(())
}

/// The holder of `role` of incident `r`, if any.
pub async fn holder<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    role: &RoleName,
) -> StoreResult<Option<SlackUserId>> {
    let row =
        sqlx::query("SELECT user_id FROM incident_roles WHERE incident_id = $1 AND role = $2")
            .bind(r.number())
            .bind(role.as_str())
            .fetch_optional(ex)
            .await?;
    Ok(match row {
        Some(row) => SlackUserId::parse(&col::<String>(&row, "user_id")?),
        None => None,
    })
}

/// Every role of incident `r` with its holder, in the order they were first taken.
pub async fn of_incident<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<(RoleName, SlackUserId)>> {
    let rows = sqlx::query(
        "SELECT role, user_id FROM incident_roles WHERE incident_id = $1 ORDER BY assigned_at, role",
    )
    .bind(r.number())
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let role: String = col(row, "role")?;
        let user: String = col(row, "user_id")?;
        if let (Ok(role), Some(user)) = (RoleName::parse(&role), SlackUserId::parse(&user)) {
            out.push((role, user));
        }
    }
    Ok(out)
}
