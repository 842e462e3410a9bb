//! Silences from Slack: `/incident silence` and the Silence button create a
//! silence in Alertmanager (API v2) matching the incident's alert groups; when
//! the incident resolves, Klaxon expires the silences it made (configurable).
//!
//! Both are durable jobs. The HTTP call to Alertmanager happens before the job's
//! transaction (no database lock is held while Alertmanager answers); the result
//! is then recorded, and announced in the thread, in that transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::incident::service::{IncidentService, ServiceError};
use crate::incident::{EventKind, IncidentRef, SlackUserId};
use crate::store::jobs::NewJob;
use crate::store::{Tx, alerts as store, incidents};
use crate::time::{Millis, human_duration};

pub const CREATE_KIND: &str = "silence";
pub const EXPIRE_KIND: &str = "expire_silences";
/// After this many failed attempts the thread is told and the job gives up.
const MAX_ATTEMPTS: i64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CreatePayload {
    incident: i64,
    duration_ms: u64,
    user: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExpirePayload {
    incident: i64,
}

/// The job that creates a silence for `incident`, on behalf of `user`.
pub fn create_job(
    incident: IncidentRef,
    duration: Duration,
    user: &SlackUserId,
    now: Millis,
) -> NewJob<'static> {
    NewJob {
        kind: CREATE_KIND,
        payload: json!({
            "incident": incident.number(),
            "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "user": user.as_str(),
        }),
        incident: Some(incident),
        dedupe_key: None,
        run_at: now,
    }
}

/// The job that expires the silences Klaxon created for `incident`.
pub fn expire_job(incident: IncidentRef, now: Millis) -> NewJob<'static> {
    NewJob {
        kind: EXPIRE_KIND,
        payload: json!({"incident": incident.number()}),
        incident: Some(incident),
        dedupe_key: Some(format!("expire_silences:{}", incident.number())),
        run_at: now,
    }
}

/// Alertmanager's API v2.
#[derive(Debug, Clone)]
pub struct AlertmanagerApi {
    client: reqwest::Client,
    base_url: String,
}

impl AlertmanagerApi {
    pub fn new(base_url: &str) -> anyhow::Result<AlertmanagerApi> {
        Ok(AlertmanagerApi {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("klaxon/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Creates a silence whose matchers are `labels` (exact, equal); returns its id.
    pub async fn create_silence(
        &self,
        labels: &BTreeMap<String, String>,
        starts: Millis,
        ends: Millis,
        created_by: &str,
        comment: &str,
    ) -> Result<String, String> {
        let rfc3339 = |m: Millis| {
            jiff::Timestamp::from_millisecond(m.0)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let matchers: Vec<Value> = labels
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
            .collect();
        let body = json!({
            "matchers": matchers,
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
            "createdBy": created_by,
            "comment": comment,
        });
        let response = self
            .client
            .post(format!("{}/api/v2/silences", self.base_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Alertmanager did not answer: {}", without_url(&e)))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("Alertmanager answered {status}: {}", answer));
        }
        answer
            .get("silenceID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "Alertmanager's answer has no silenceID".to_string())
    }

    /// Expires a silence; one that no longer exists counts as expired.
    pub async fn expire_silence(&self, id: &str) -> Result<(), String> {
        let response = self
            .client
            .delete(format!("{}/api/v2/silence/{id}", self.base_url))
            .send()
            .await
            .map_err(|e| format!("Alertmanager did not answer: {}", without_url(&e)))?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(format!("Alertmanager answered {s} for silence {id}")),
        }
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "Alertmanager");
    }
    s
}

/// What Alertmanager said, to record in the job's transaction.
#[derive(Debug)]
pub enum Outcome {
    Created {
        incident: IncidentRef,
        user: String,
        ids: Vec<String>,
        until: Millis,
        duration: Duration,
    },
    Expired {
        incident: IncidentRef,
        rows: Vec<i64>,
    },
    Failed {
        incident: IncidentRef,
        reason: String,
    },
    Nothing,
}

/// The HTTP side of a silence job. `Err` means "try again later".
pub async fn prepare(
    service: &IncidentService,
    api: Option<&AlertmanagerApi>,
    kind: &str,
    payload: &str,
    attempts: i64,
) -> Result<Outcome, String> {
    let give_up = |incident, reason: String| {
        if attempts >= MAX_ATTEMPTS {
            Ok(Outcome::Failed { incident, reason })
        } else {
            Err(reason)
        }
    };
    let pool = service.store().pool();
    match kind {
        CREATE_KIND => {
            let Ok(p) = serde_json::from_str::<CreatePayload>(payload) else {
                return Ok(Outcome::Nothing);
            };
            let Some(r) = IncidentRef::new(p.incident) else {
                return Ok(Outcome::Nothing);
            };
            let Some(api) = api else {
                return Ok(Outcome::Failed {
                    incident: r,
                    reason: "no Alertmanager URL is configured (alerts.alertmanager_url)".into(),
                });
            };
            let incident = incidents::get(pool, r).await.map_err(|e| e.to_string())?;
            let groups = store::groups_of(pool, r).await.map_err(|e| e.to_string())?;
            let title = incident.map(|i| i.title).unwrap_or_default();
            let now = Millis::now();
            let duration = Duration::from_millis(p.duration_ms);
            let until = now.plus(duration);
            let mut ids = Vec::new();
            for g in groups.iter().filter(|g| g.source == "alertmanager") {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(g.labels.clone()).unwrap_or_default();
                if labels.is_empty() {
                    continue;
                }
                let comment = format!("Klaxon {r}: {title}");
                match api
                    .create_silence(&labels, now, until, &format!("slack:{}", p.user), &comment)
                    .await
                {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        // Undo this attempt's silences, so a retry does not leave duplicates
                        // that nobody records (and so nobody expires).
                        for id in &ids {
                            let _ = api.expire_silence(id).await;
                        }
                        return give_up(r, e);
                    }
                }
            }
            if ids.is_empty() {
                return Ok(Outcome::Failed {
                    incident: r,
                    reason: "it has no Alertmanager alert group with labels to match".into(),
                });
            }
            Ok(Outcome::Created {
                incident: r,
                user: p.user,
                ids,
                until,
                duration,
            })
        }
        EXPIRE_KIND => {
            let Ok(p) = serde_json::from_str::<ExpirePayload>(payload) else {
                return Ok(Outcome::Nothing);
            };
            let Some(r) = IncidentRef::new(p.incident) else {
                return Ok(Outcome::Nothing);
            };
            let Some(api) = api else {
                return Ok(Outcome::Nothing);
            };
            let active = store::active_silences(pool, r, Millis::now())
                .await
                .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for s in active {
                match api.expire_silence(&s.silence_id).await {
                    Ok(()) => rows.push(s.id),
                    Err(e) => return give_up(r, e),
                }
            }
            Ok(Outcome::Expired { incident: r, rows })
        }
        _ => Ok(Outcome::Nothing),
    }
}

/// Records what Alertmanager said and tells the thread, inside the job's transaction.
pub async fn apply(
    service: &IncidentService,
    tx: &mut Tx,
    outcome: Outcome,
    now: Millis,
) -> Result<(), ServiceError> {
    let (r, timeline, reply) = match &outcome {
        Outcome::Nothing => return Ok(()),
        Outcome::Created {
            incident,
            user,
            ids,
            until,
            duration,
        } => {
            for id in ids {
                store::add_silence(&mut **tx, *incident, id, user, *until).await?;
            }
            let who = SlackUserId::parse(user)
                .map(|u| format!("<@{u}>"))
                .unwrap_or_else(|| "someone".into());
            (
                *incident,
                format!(
                    "silenced the alerts for {} in Alertmanager",
                    human_duration(*duration)
                ),
                format!(
                    "🔕 {who} silenced {} alert group(s) of {incident} in Alertmanager for {} (until {}). Silence: `{}`",
                    ids.len(),
                    human_duration(*duration),
                    until.time_utc(),
                    ids.join("`, `")
                ),
            )
        }
        Outcome::Expired { incident, rows } => {
            for id in rows {
                store::mark_silence_expired(&mut **tx, *id, now).await?;
            }
            if rows.is_empty() {
                return Ok(());
            }
            (
                *incident,
                format!("expired {} silence(s)", rows.len()),
                format!(
                    "🔔 {incident} is resolved, so its {} silence(s) in Alertmanager are expired: new alerts will notify again.",
                    rows.len()
                ),
            )
        }
        Outcome::Failed { incident, reason } => (
            *incident,
            format!("silence failed: {reason}"),
            format!(
                "⚠️ Could not silence {incident} in Alertmanager: {}",
                crate::templates::slack_escape(reason)
            ),
        ),
    };
    let Some(incident) = incidents::get(&mut **tx, r).await? else {
        return Ok(());
    };
    service
        .post_event(
            tx,
            &incident,
            EventKind::Silenced,
            None,
            &timeline,
            &reply,
            now,
        )
        .await
}
