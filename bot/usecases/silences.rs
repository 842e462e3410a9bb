//! Silences from Slack: `/incident silence` and the Silence button create a
//! silence in Alertmanager matching the incident's alert groups; when the
//! incident resolves, Klaxon expires the silences it made (configurable).
//!
//! Both are durable jobs on the `outside` lane, so a slow or unreachable
//! Alertmanager never delays a page. The call to Alertmanager happens before the
//! job's transaction (no database lock is held while it answers); the result is
//! then recorded, and announced in the thread, in that transaction.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ports::{ListedAlert, NewSilence};
use super::thread::Entry;
use super::{Ctx, Result};
use crate::alerts::AlertStatus;
use crate::incident::{EventKind, IncidentRef, IncidentSource, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::{Tx, alerts as store, incidents};
use crate::time::{Millis, human_duration, plural};

fn len<T>(v: &[T]) -> u64 {
    u64::try_from(v.len()).unwrap_or(u64::MAX)
}

/// After this many failed attempts the thread is told and the job gives up.
const MAX_ATTEMPTS: u32 = 5;

/// Enqueues the creation of a silence for `incident` on behalf of `user`, in `tx`.
pub async fn request(
    tx: &mut Tx,
    incident: IncidentRef,
    duration: Duration,
    user: &SlackUserId,
    now: Millis,
) -> Result<()> {
    let job = Create {
        incident: incident.number(),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        user: user.as_str().to_string(),
    };
    jobs::enqueue(tx, &job, now, now).await?;
    Ok(())
}

/// When the incident had silences made by Klaxon and the configuration says so,
/// enqueues their expiry (in the resolving transaction).
pub async fn expire_on_resolve(ctx: &Ctx, tx: &mut Tx, r: IncidentRef, now: Millis) -> Result<()> {
    if ctx.settings.alerts.expire_silences_on_resolve
        && !store::active_silences(&mut **tx, r, now).await?.is_empty()
    {
        jobs::enqueue(
            tx,
            &ExpireAll {
                incident: r.number(),
            },
            now,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Creates a silence in Alertmanager for each Alertmanager group of an incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Create {
    pub incident: i64,
    pub duration_ms: u64,
    /// The Slack user who asked.
    pub user: String,
}

impl Job for Create {
    const KIND: &'static str = "silence";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(r) = IncidentRef::new(self.incident) else {
            return Ok(());
        };
        let outcome = match &ctx.alertmanager {
            None => Outcome::Failed(
                "no Alertmanager URL is configured (alerts.alertmanager_url)".into(),
            ),
            Some(api) => {
                let pool = ctx.store.pool();
                let title = incidents::get(pool, r)
                    .await?
                    .map(|i| i.title)
                    .unwrap_or_default();
                let groups = store::groups_of(pool, r).await?;
                let known = store::fingerprints_of(pool, r).await?;
                let now = ctx.clock.now();
                let duration = Duration::from_millis(self.duration_ms);
                let until = now.plus(duration);
                // First every group's matchers, checked against what
                // Alertmanager holds: a silence mutes this incident's alerts
                // and nothing else, or it is not made.
                let mut planned = Vec::new();
                let mut refusal = None;
                for g in groups
                    .iter()
                    .filter(|g| g.source == IncidentSource::Alertmanager.as_str())
                {
                    let alerts = store::alerts_of_group(pool, r, &g.group_id).await?;
                    let group_labels: BTreeMap<String, String> =
                        serde_json::from_value(g.labels.clone()).unwrap_or_default();
                    let sets = match silence_matchers(&group_labels, &alerts) {
                        Ok(sets) => sets,
                        Err(why) => {
                            refusal = Some(Outcome::Refused(why));
                            break;
                        }
                    };
                    for SilenceFor {
                        matchers,
                        alerts: own,
                    } in sets
                    {
                        let caught = match api.matching_alerts(&matchers).await {
                            Ok(caught) => caught,
                            Err(e) if run.attempts < MAX_ATTEMPTS => {
                                return Err(JobError::Retry {
                                    reason: e,
                                    after: None,
                                });
                            }
                            Err(e) => {
                                refusal = Some(Outcome::Failed(e));
                                break;
                            }
                        };
                        if let Some(why) =
                            beyond_the_incident(pool, r, &matchers, &own, &known, &caught).await?
                        {
                            refusal = Some(Outcome::Refused(why));
                            break;
                        }
                        planned.push(matchers);
                    }
                    if refusal.is_some() {
                        break;
                    }
                }
                let mut ids = Vec::new();
                let mut failure = None;
                for matchers in planned.iter().filter(|_| refusal.is_none()) {
                    let silence = NewSilence {
                        matchers: matchers.clone(),
                        patterns: Vec::new(),
                        starts: now,
                        ends: until,
                        created_by: format!("slack:{}", self.user),
                        comment: format!("Klaxon {r}: {title}"),
                    };
                    match api.create(&silence).await {
                        Ok(id) => ids.push(id),
                        Err(e) => {
                            // Undo this attempt's silences, so a retry does not leave
                            // duplicates that nobody records (and so nobody expires).
                            for id in &ids {
                                let _ = api.expire(id).await;
                            }
                            failure = Some(e);
                            break;
                        }
                    }
                }
                match (refusal, failure) {
                    (Some(refused), _) => refused,
                    (None, Some(e)) if run.attempts < MAX_ATTEMPTS => {
                        return Err(JobError::Retry {
                            reason: e,
                            after: None,
                        });
                    }
                    (None, Some(e)) => Outcome::Failed(e),
                    (None, None) if ids.is_empty() => {
                        Outcome::Failed("it has no firing Alertmanager alert to match".into())
                    }
                    (None, None) => Outcome::Created {
                        ids,
                        until,
                        duration,
                        matchers: planned,
                    },
                }
            }
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let Some(incident) = incidents::get(&mut *tx, r).await? else {
            return Ok(());
        };
        let now = ctx.clock.now();
        let (timeline, reply) = match outcome {
            Outcome::Created {
                ids,
                until,
                duration,
                matchers,
            } => {
                for id in &ids {
                    store::add_silence(&mut *tx, r, id, &self.user, until).await?;
                }
                let who = SlackUserId::parse(&self.user)
                    .map(|u| format!("<@{u}>"))
                    .unwrap_or_else(|| "someone".into());
                (
                    format!(
                        "silenced the alerts for {} in Alertmanager",
                        human_duration(duration)
                    ),
                    format!(
                        "🔕 {who} silenced {} of {r} in Alertmanager for {}, until {}. Matchers: {}. Silence: `{}`",
                        plural(len(&ids), "alert group", "alert groups"),
                        human_duration(duration),
                        until.date_time_utc(),
                        matchers
                            .iter()
                            .map(|m| crate::templates::slack_escape(&show_matchers(m)))
                            .collect::<Vec<_>>()
                            .join("; "),
                        ids.join("`, `")
                    ),
                )
            }
            Outcome::Refused(reason) => (
                format!("silence refused: {reason}"),
                format!(
                    "⛔ Did not silence {r}: {}.",
                    crate::templates::slack_escape(&reason)
                ),
            ),
            Outcome::Failed(reason) => (
                format!("silence failed: {reason}"),
                format!(
                    "⚠️ Could not silence {r} in Alertmanager: {}",
                    crate::templates::slack_escape(&reason)
                ),
            ),
        };
        ctx.thread()
            .post(
                &mut tx,
                &incident,
                Entry::new(EventKind::Silenced, timeline),
                &reply,
                now,
            )
            .await?;
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

enum Outcome {
    Created {
        ids: Vec<String>,
        until: Millis,
        duration: Duration,
        matchers: Vec<BTreeMap<String, String>>,
    },
    /// Not made on purpose: it would reach beyond the incident.
    Refused(String),
    Failed(String),
}

/// One silence to make: its matchers, and the alerts it is for (fingerprint
/// → when each started, as the sender said).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SilenceFor {
    matchers: BTreeMap<String, String>,
    alerts: BTreeMap<String, Millis>,
}

/// The silences for one group: one per alert name among its firing alerts,
/// each matching every label those alerts share (their full label sets, not
/// only the group's labels, which a notification may choose as broadly as
/// `severity`), with the fingerprints of the alerts it is for. Every silence
/// names an `alertname`, so none can mute whole classes of future alerts.
/// `Err`: why no silence can be made.
fn silence_matchers(
    group_labels: &BTreeMap<String, String>,
    alerts: &[store::GroupAlert],
) -> std::result::Result<Vec<SilenceFor>, String> {
    let mut by_name: BTreeMap<&str, Vec<&store::GroupAlert>> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
        let Some(name) = a.labels.get("alertname").filter(|n| !n.is_empty()) else {
            return Err(
                "one of its firing alerts has no `alertname`, so a silence could not be kept to it"
                    .into(),
            );
        };
        by_name.entry(name).or_default().push(a);
    }
    let mut sets = Vec::new();
    for group in by_name.values() {
        let mut shared = group[0].labels.clone();
        for a in &group[1..] {
            shared.retain(|k, v| a.labels.get(k) == Some(v));
        }
        for (k, v) in group_labels {
            shared.entry(k.clone()).or_insert_with(|| v.clone());
        }
        sets.push(SilenceFor {
            matchers: shared,
            alerts: group
                .iter()
                .map(|a| (a.fingerprint.clone(), a.starts_at))
                .collect(),
        });
    }
    Ok(sets)
}

/// Why a silence with `matchers` would reach beyond incident `r`, or `None`
/// when it mutes the alerts it is for and nothing else: every alert
/// Alertmanager would mute is one of the firing alerts it is for (`own`,
/// with when each started; an alert of another group, or one `r` holds only
/// as resolved, does not count), Alertmanager holds every one of those
/// (else a forged alert could have widened the matchers to alerts that fire
/// later), each started when Alertmanager says (a forged copy of a real
/// alert carries its computable fingerprint, not its start), and no other
/// open incident holds them.
async fn beyond_the_incident(
    pool: &sqlx::AnyPool,
    r: IncidentRef,
    matchers: &BTreeMap<String, String>,
    own: &BTreeMap<String, Millis>,
    known: &HashSet<String>,
    caught: &[ListedAlert],
) -> Result<Option<String>> {
    // Everything it would mute must be one of the firing alerts it is for:
    // not another group's, not one the incident holds only as resolved.
    let strangers: Vec<&ListedAlert> = caught
        .iter()
        .filter(|a| !own.contains_key(&a.fingerprint))
        .collect();
    if let Some(first) = strangers.first() {
        let held = if known.contains(&first.fingerprint) {
            format!("that are not among the firing alerts of {r} it is for")
        } else {
            format!("that {r} does not hold")
        };
        return Ok(Some(format!(
            "a silence on {} would also mute {} {held} (for one: {}). \
             Silence in Alertmanager by hand if that is what you want",
            show_matchers(matchers),
            plural(len(&strangers), "alert", "alerts"),
            show_matchers(&first.labels)
        )));
    }
    // Every alert it is for must be one Alertmanager holds: an alert it never
    // had (a forged one) would only widen the matchers to alerts that fire later.
    let missing: Vec<&String> = own
        .keys()
        .filter(|f| !caught.iter().any(|a| &a.fingerprint == *f))
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!(
            "Alertmanager does not hold {} of the {} a silence on {} is for (they did not come from it, \
             or no longer fire), so it could mute alerts that fire later",
            missing.len(),
            plural(
                u64::try_from(own.len()).unwrap_or(u64::MAX),
                "alert",
                "alerts"
            ),
            show_matchers(matchers)
        )));
    }
    for a in caught {
        let (Some(ours), Some(theirs)) = (own.get(&a.fingerprint), a.starts_at) else {
            continue;
        };
        if ours.0.abs_diff(theirs.0) > 1_000 {
            return Ok(Some(format!(
                "Alertmanager's alert {} started firing at {}, not at {} as {r} has it: this copy did not come from Alertmanager",
                show_matchers(&a.labels),
                theirs.date_time_utc(),
                ours.date_time_utc()
            )));
        }
    }
    let fingerprints: Vec<&str> = caught.iter().map(|a| a.fingerprint.as_str()).collect();
    let others = store::other_open_holders(pool, r, &fingerprints).await?;
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|o| o.to_string()).collect();
        return Ok(Some(format!(
            "{} also holds these alerts; resolve the duplicate, or silence in Alertmanager by hand",
            names.join(", ")
        )));
    }
    Ok(None)
}

/// Matchers as Alertmanager writes them: `{alertname="X", service="y"}`.
fn show_matchers(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Expires the silences Klaxon created for an incident (when it resolves).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpireAll {
    pub incident: i64,
}

impl Job for ExpireAll {
    const KIND: &'static str = "expire_silences";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("expire_silences:{}", self.incident))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let (Some(r), Some(api)) = (IncidentRef::new(self.incident), &ctx.alertmanager) else {
            return Ok(());
        };
        let active = store::active_silences(ctx.store.pool(), r, ctx.clock.now()).await?;
        let mut expired = Vec::new();
        for s in active {
            match api.expire(&s.silence_id).await {
                Ok(()) => expired.push(s.id),
                Err(e) if run.attempts < MAX_ATTEMPTS => {
                    return Err(JobError::Retry {
                        reason: e,
                        after: None,
                    });
                }
                Err(e) => {
                    tracing::error!(incident = %r, error = %e, "giving up expiring a silence");
                }
            }
        }
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = ctx.clock.now();
        for id in &expired {
            store::mark_silence_expired(&mut *tx, *id, now).await?;
        }
        if let (false, Some(incident)) = (expired.is_empty(), incidents::get(&mut *tx, r).await?) {
            ctx.thread()
                .post(
                    &mut tx,
                    &incident,
                    Entry::new(
                        EventKind::Silenced,
                        format!("expired {}", plural(len(&expired), "silence", "silences")),
                    ),
                    &format!(
                        "🔔 {r} is resolved, so its {} in Alertmanager {} expired: new alerts will notify again.",
                        plural(len(&expired), "silence", "silences"),
                        if expired.len() == 1 { "is" } else { "are" }
                    ),
                    now,
                )
                .await?;
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(fp: &str, status: AlertStatus, labels: &[(&str, &str)]) -> store::GroupAlert {
        store::GroupAlert {
            fingerprint: fp.into(),
            status,
            starts_at: Millis(0),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_silence_matches_every_label_the_firing_alerts_of_one_name_share_not_only_the_group_labels()
    {
        let group: BTreeMap<String, String> =
            [("severity".to_string(), "critical".to_string())].into();
        let alerts = [
            alert(
                "a",
                AlertStatus::Firing,
                &[
                    ("alertname", "DiskFull"),
                    ("severity", "critical"),
                    ("host", "db-1"),
                ],
            ),
            alert(
                "b",
                AlertStatus::Firing,
                &[
                    ("alertname", "DiskFull"),
                    ("severity", "critical"),
                    ("host", "db-2"),
                ],
            ),
            alert(
                "c",
                AlertStatus::Firing,
                &[
                    ("alertname", "LoadHigh"),
                    ("severity", "critical"),
                    ("host", "db-1"),
                ],
            ),
            alert(
                "d",
                AlertStatus::Resolved,
                &[("alertname", "Other"), ("severity", "critical")],
            ),
        ];
        let sets = silence_matchers(&group, &alerts).expect("matchers");
        let shown: Vec<String> = sets.iter().map(|s| show_matchers(&s.matchers)).collect();
        assert_eq!(
            shown,
            vec![
                r#"{alertname="DiskFull", severity="critical"}"#.to_string(),
                r#"{alertname="LoadHigh", host="db-1", severity="critical"}"#.to_string(),
            ],
            "a group labelled only by severity still silences only its own alert names"
        );
        assert_eq!(sets[0].alerts.len(), 2);
        assert_eq!(
            silence_matchers(&group, &alerts[3..]),
            Ok(Vec::new()),
            "nothing fires: no silence"
        );
        assert!(
            silence_matchers(
                &group,
                &[alert("e", AlertStatus::Firing, &[("severity", "critical")])]
            )
            .is_err(),
            "an alert without a name cannot be silenced on its own"
        );
    }
}
