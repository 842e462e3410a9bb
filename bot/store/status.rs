//! Queries behind the status page and the history: which components an
//! incident touches, the public updates, the states set by hand, and the
//! lean rows the page's bars and the history's charts are drawn from.

use sqlx::{Any, Executor};

use super::{StoreError, StoreResult, col};
use crate::incident::{IncidentRef, Severity};
use crate::status::{ComponentName, ComponentStatus, Outage, Span, stats::IncidentTimes};
use crate::time::Millis;

/// What a public update says about where the incident stands
/// (Statuspage's incident statuses, the two Klaxon uses plus the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicState {
    /// The incident's first public update.
    Investigating,
    Update,
    /// Added by Klaxon when an incident with public updates resolves.
    Resolved,
}

impl PublicState {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicState::Investigating => "investigating",
            PublicState::Update => "update",
            PublicState::Resolved => "resolved",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            PublicState::Investigating => "Investigating",
            PublicState::Update => "Update",
            PublicState::Resolved => "Resolved",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [
            PublicState::Investigating,
            PublicState::Update,
            PublicState::Resolved,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One update published for the public.
#[derive(Debug, Clone)]
pub struct PublicUpdate {
    pub id: i64,
    pub incident: IncidentRef,
    pub at: Millis,
    pub state: PublicState,
    /// As the person wrote it, for the public.
    pub body: String,
}

/// Replaces the components an incident touches.
pub async fn set_components(
    conn: &mut sqlx::AnyConnection,
    r: IncidentRef,
    components: &[ComponentName],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM incident_components WHERE incident_id = $1")
        .bind(r.number())
        .execute(&mut *conn)
        .await?;
    for c in components {
        sqlx::query(
            "INSERT INTO incident_components (incident_id, component) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(r.number())
        .bind(c.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The components an incident touches, by name.
pub async fn components_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT component FROM incident_components WHERE incident_id = $1 ORDER BY component",
    )
    .bind(r.number())
    .fetch_all(ex)
    .await?;
    rows.iter().map(|row| col(row, "component")).collect()
}

/// Publishes an update; returns its id.
pub async fn add_public_update<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
    at: Millis,
    state: PublicState,
    body: &str,
    by: Option<&str>,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "INSERT INTO public_updates (incident_id, at, status, body, posted_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(r.number())
    .bind(at.0)
    .bind(state.as_str())
    .bind(body)
    .bind(by)
    .fetch_one(ex)
    .await?;
    col(&row, "id")
}

fn update_from_row(row: &sqlx::any::AnyRow) -> StoreResult<PublicUpdate> {
    let incident: i64 = col(row, "incident_id")?;
    let state: String = col(row, "status")?;
    Ok(PublicUpdate {
        id: col(row, "id")?,
        incident: IncidentRef::new(incident)
            .ok_or_else(|| StoreError::Corrupt(format!("incident {incident}")))?,
        at: Millis(col(row, "at")?),
        state: PublicState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("public update status {state}")))?,
        body: col(row, "body")?,
    })
}

/// An incident's public updates, oldest first.
pub async fn public_updates_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    r: IncidentRef,
) -> StoreResult<Vec<PublicUpdate>> {
    sqlx::query(
        "SELECT id, incident_id, at, status, body FROM public_updates WHERE incident_id = $1 ORDER BY id",
    )
    .bind(r.number())
    .fetch_all(ex)
    .await?
    .iter()
    .map(update_from_row)
    .collect()
}

/// Every public update of the incidents that are still open or had one
/// since `since`, oldest first.
pub async fn public_updates_since<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    since: Millis,
) -> StoreResult<Vec<PublicUpdate>> {
    sqlx::query(
        "SELECT u.id, u.incident_id, u.at, u.status, u.body FROM public_updates u \
         WHERE u.incident_id IN ( \
             SELECT incident_id FROM public_updates WHERE at >= $1 \
             UNION SELECT p.incident_id FROM public_updates p JOIN incidents i ON i.id = p.incident_id \
                   WHERE i.state <> 'resolved') \
         ORDER BY u.id",
    )
    .bind(since.0)
    .fetch_all(ex)
    .await?
    .iter()
    .map(update_from_row)
    .collect()
}

/// The states set by hand, by component name.
pub async fn overrides<'c, E: Executor<'c, Database = Any>>(
    ex: E,
) -> StoreResult<Vec<(String, ComponentStatus)>> {
    let rows = sqlx::query("SELECT component, status FROM component_overrides")
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|row| {
            let status: String = col(row, "status")?;
            Ok((
                col(row, "component")?,
                ComponentStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("component status {status}")))?,
            ))
        })
        .collect()
}

/// Sets a component's state by hand, or (`None`) gives it back to its incidents.
pub async fn set_override<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    component: &ComponentName,
    status: Option<ComponentStatus>,
    by: &str,
    at: Millis,
) -> StoreResult<()> {
    match status {
        Some(s) => {
            sqlx::query(
                "INSERT INTO component_overrides (component, status, set_by, set_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (component) DO UPDATE SET status = excluded.status, set_by = excluded.set_by, set_at = excluded.set_at",
            )
            .bind(component.as_str())
            .bind(s.as_str())
            .bind(by)
            .bind(at.0)
            .execute(ex)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM component_overrides WHERE component = $1")
                .bind(component.as_str())
                .execute(ex)
                .await?;
        }
    }
    Ok(())
}

/// An incident as the status page knows it: severity, times, components.
#[derive(Debug, Clone)]
pub struct OutageRow {
    pub incident: IncidentRef,
    pub outage: Outage,
}

/// The incidents still open or resolved since `since` that touch a
/// component or have a public update, oldest first.
pub async fn outages_since<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    since: Millis,
) -> StoreResult<Vec<OutageRow>> {
    let rows = sqlx::query(
        "SELECT i.id, i.severity, i.opened_at, i.resolved_at, c.component FROM incidents i \
         LEFT JOIN incident_components c ON c.incident_id = i.id \
         WHERE (i.state <> 'resolved' OR i.resolved_at >= $1) \
           AND (c.component IS NOT NULL OR EXISTS (SELECT 1 FROM public_updates p WHERE p.incident_id = i.id)) \
         ORDER BY i.id, c.component",
    )
    .bind(since.0)
    .fetch_all(ex)
    .await?;
    let mut out: Vec<OutageRow> = Vec::new();
    for row in &rows {
        let id: i64 = col(row, "id")?;
        let component: Option<String> = col(row, "component")?;
        let component = component.and_then(|c| ComponentName::parse(&c).ok());
        if let Some(last) = out.last_mut()
            && last.incident.number() == id
        {
            last.outage.components.extend(component);
            continue;
        }
        let severity: String = col(row, "severity")?;
        out.push(OutageRow {
            incident: IncidentRef::new(id)
                .ok_or_else(|| StoreError::Corrupt(format!("incident {id}")))?,
            outage: Outage {
                opened_at: Millis(col(row, "opened_at")?),
                resolved_at: col::<Option<i64>>(row, "resolved_at")?.map(Millis),
                severity: severity.parse::<Severity>().map_err(StoreError::Corrupt)?,
                components: component.into_iter().collect(),
            },
        });
    }
    Ok(out)
}

/// Which incidents the history shows: every field optional (empty / open-ended).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub severity: Option<Severity>,
    /// `slack`, `alertmanager`, `grafana`, `heartbeat`.
    pub source: Option<String>,
    /// Opened at or after (ms).
    pub from: Option<Millis>,
    /// Opened before (ms).
    pub until: Option<Millis>,
}

impl HistoryFilter {
    /// The `WHERE` clause over `incidents`, its parameters `$1`–`$4` bound by [`Self::bind`].
    pub const WHERE: &'static str = "($1 = '' OR severity = $1) AND ($2 = '' OR source = $2) \
         AND opened_at >= $3 AND opened_at < $4";

    pub fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        q.bind(self.severity.map(|s| s.as_str()).unwrap_or(""))
            .bind(self.source.as_deref().unwrap_or(""))
            .bind(self.from.map(|m| m.0).unwrap_or(i64::MIN))
            .bind(self.until.map(|m| m.0).unwrap_or(i64::MAX))
    }
}

/// The times of the incidents matching `filter` opened at or after `since`.
pub async fn incident_times<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    filter: &HistoryFilter,
    since: Millis,
) -> StoreResult<Vec<IncidentTimes>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT severity, opened_at, acknowledged_at, resolved_at FROM incidents WHERE {} AND opened_at >= $5",
        HistoryFilter::WHERE
    ));
    let rows = filter
        .bind(sqlx::query(sql))
        .bind(since.0)
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|row| {
            let severity: String = col(row, "severity")?;
            Ok(IncidentTimes {
                severity: severity.parse::<Severity>().map_err(StoreError::Corrupt)?,
                opened_at: Millis(col(row, "opened_at")?),
                acknowledged_at: col::<Option<i64>>(row, "acknowledged_at")?.map(Millis),
                resolved_at: col::<Option<i64>>(row, "resolved_at")?.map(Millis),
            })
        })
        .collect()
}

/// Every page sent from `from` to `until` (ms): who, when.
pub async fn pages_between<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    from: Millis,
    until: Millis,
) -> StoreResult<Vec<(String, Millis)>> {
    let rows = sqlx::query("SELECT user_id, at FROM pages WHERE at >= $1 AND at < $2")
        .bind(from.0)
        .bind(until.0)
        .fetch_all(ex)
        .await?;
    rows.iter()
        .map(|row| Ok((col(row, "user_id")?, Millis(col(row, "at")?))))
        .collect()
}

/// Brings an incident's spans (`component_spans`) up to date at `now`: the
/// ones that no longer hold (resolved, another severity, a component no
/// longer touched) end, the missing ones begin.
pub async fn sync_spans(
    conn: &mut sqlx::AnyConnection,
    r: IncidentRef,
    now: Millis,
) -> StoreResult<()> {
    let Some(row) = sqlx::query("SELECT severity, state FROM incidents WHERE id = $1")
        .bind(r.number())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(());
    };
    let severity: String = col(&row, "severity")?;
    let state: String = col(&row, "state")?;
    let status =
        ComponentStatus::from_severity(severity.parse::<Severity>().map_err(StoreError::Corrupt)?);
    let wanted: Vec<String> = if state == "resolved" {
        Vec::new()
    } else {
        components_of(&mut *conn, r).await?
    };
    let open = sqlx::query(
        "SELECT id, component, status FROM component_spans WHERE incident_id = $1 AND to_at IS NULL",
    )
    .bind(r.number())
    .fetch_all(&mut *conn)
    .await?;
    let mut holding: Vec<String> = Vec::new();
    for row in &open {
        let id: i64 = col(row, "id")?;
        let component: String = col(row, "component")?;
        let was: String = col(row, "status")?;
        if was == status.as_str() && wanted.contains(&component) {
            holding.push(component);
        } else {
            sqlx::query("UPDATE component_spans SET to_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now.0)
                .execute(&mut *conn)
                .await?;
        }
    }
    for component in wanted.iter().filter(|c| !holding.contains(c)) {
        sqlx::query(
            "INSERT INTO component_spans (incident_id, component, status, from_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(r.number())
        .bind(component.as_str())
        .bind(status.as_str())
        .bind(now.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The spans still lasting or ended since `since`.
pub async fn spans_since<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    since: Millis,
) -> StoreResult<Vec<Span>> {
    let rows = sqlx::query(
        "SELECT incident_id, component, status, from_at, to_at FROM component_spans \
         WHERE to_at IS NULL OR to_at >= $1",
    )
    .bind(since.0)
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let component: String = col(row, "component")?;
        let status: String = col(row, "status")?;
        // A component renamed in the config since: nothing shows it.
        let Ok(component) = ComponentName::parse(&component) else {
            continue;
        };
        out.push(Span {
            incident: col(row, "incident_id")?,
            component,
            status: ComponentStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("span status {status}")))?,
            from: Millis(col(row, "from_at")?),
            to: col::<Option<i64>>(row, "to_at")?.map(Millis),
        });
    }
    Ok(out)
}
