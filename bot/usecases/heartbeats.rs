//! Heartbeats: a beat moves a deadline; a passed deadline opens an incident
//! saying what went quiet and since when; the next beat resolves it.
//!
//! Each configured heartbeat has one row (`crate::store::heartbeats`) and one
//! durable job, [`Watch`], due at the row's deadline. A beat only moves the
//! deadline (and resolves a missed-beat incident): the job, when it runs,
//! finds the deadline moved and sleeps again until it; when it finds the
//! deadline passed, it opens the incident and records it on the row in the
//! same transaction, so a restart, a second replica or a redelivered job can
//! neither lose nor double it. While the incident is open the job is not
//! re-armed: the next beat resolves the incident and arms it again.

use serde::{Deserialize, Serialize};

use super::{Ctx, Result, incidents as open_close};
use crate::alerts::heartbeats::Heartbeat;
use crate::incident::{IncidentSource, IncidentState};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::incidents::{NewIncident, Resolution};
use crate::store::{Tx, heartbeats as rows};
use crate::telemetry::HeartbeatLabels;
use crate::time::{Millis, human_duration};

/// What a beat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The next beat is due before this instant.
    pub deadline: Millis,
    /// The missed-beat incident this beat resolved, if any.
    pub resolved: Option<crate::incident::IncidentRef>,
}

/// The heartbeat's job: due at its deadline (see the module's doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watch {
    pub name: String,
}

impl Job for Watch {
    const KIND: &'static str = "heartbeat";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("heartbeat:{}", self.name))
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(hb) = configured(&ctx, &self.name).cloned() else {
            tracing::info!(heartbeat = %self.name, "heartbeat no longer configured; not watched");
            return Ok(());
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let opened = watch(&ctx, &mut tx, &hb, run.started).await?;
        ctx.commit_job(&run, tx).await?;
        if opened {
            open_close::count_opened(&ctx, IncidentSource::Heartbeat);
            missed_metric(&ctx, &hb.name, true);
        }
        Ok(())
    }
}

fn configured<'a>(ctx: &'a Ctx, name: &str) -> Option<&'a Heartbeat> {
    ctx.settings.heartbeats.iter().find(|h| h.name == name)
}

fn labels(name: &str) -> HeartbeatLabels {
    HeartbeatLabels { name: name.into() }
}

fn missed_metric(ctx: &Ctx, name: &str, missed: bool) {
    ctx.metrics
        .heartbeat_missed
        .get_or_create(&labels(name))
        .set(i64::from(missed));
}

/// The job's work: sleep again until a moved deadline, or open the incident.
/// `true` when it opened one.
async fn watch(ctx: &Ctx, tx: &mut Tx, hb: &Heartbeat, now: Millis) -> Result<bool> {
    rows::ensure(&mut **tx, &hb.name, now.plus(hb.allowed_silence())).await?;
    let Some(row) = rows::lock(tx, ctx.store.backend(), &hb.name).await? else {
        return Ok(false);
    };
    if row.deadline_at > now {
        jobs::enqueue(
            tx,
            &Watch {
                name: hb.name.clone(),
            },
            row.deadline_at,
            now,
        )
        .await?;
        return Ok(false);
    }
    if row.incident.is_some() {
        // Already reported; the next beat resolves it and arms the watch again.
        return Ok(false);
    }
    // Silent since the last beat, or since the heartbeat was first watched.
    let since = row
        .last_beat_at
        .unwrap_or_else(|| row.deadline_at.minus(hb.allowed_silence()));
    let quiet = human_duration(now.since(since));
    let title = match row.last_beat_at {
        Some(_) => format!(
            "No {} beat for {quiet}: {} may be broken",
            hb.name, hb.watches
        ),
        None => format!(
            "No {} beat since Klaxon started watching {quiet} ago: {} may be broken",
            hb.name, hb.watches
        ),
    };
    let channel = hb
        .channel
        .clone()
        .or_else(|| ctx.settings.slack.incident_channel.clone())
        .ok_or_else(|| super::Error::NoChannel(format!("heartbeat {}", hb.name)))?;
    let ladder = hb.ladder.clone().or_else(|| {
        ctx.settings
            .escalation
            .ladder_for(hb.severity)
            .map(|l| l.name.clone())
    });
    let expected = format!(
        "expected every {} (+{} grace); last beat {}",
        human_duration(hb.interval),
        human_duration(hb.grace),
        row.last_beat_at
            .map(|t| t.time_utc_from(now))
            .unwrap_or_else(|| "never".into()),
    );
    let incident = open_close::open_in(
        ctx,
        tx,
        &NewIncident {
            title: &title,
            severity: hb.severity,
            channel: &channel,
            opened_by: None,
            source: IncidentSource::Heartbeat,
            opened_at: now,
            ladder: ladder.as_deref(),
            previous: None,
        },
        &format!("heartbeat `{}` went quiet ({expected})", hb.name),
        now,
    )
    .await?;
    ctx.thread().post_root(tx, &incident, now).await?;
    rows::set_incident(&mut **tx, &hb.name, Some(incident.reference)).await?;
    tracing::warn!(heartbeat = %hb.name, incident = %incident.reference, quiet = %quiet, "heartbeat missed; incident opened");
    Ok(true)
}

/// A beat of heartbeat `name` (an Alertmanager notification of its route, or
/// `POST /heartbeats/{name}`): moves its deadline and resolves its
/// missed-beat incident. `None` when no heartbeat has that name.
pub async fn beat(ctx: &Ctx, name: &str) -> Result<Option<Beat>> {
    let Some(hb) = configured(ctx, name).cloned() else {
        return Ok(None);
    };
    let now = ctx.clock.now();
    let deadline = now.plus(hb.allowed_silence());
    let mut tx = ctx.begin().await?;
    rows::ensure(&mut *tx, &hb.name, deadline).await?;
    let Some(before) = rows::lock(&mut tx, ctx.store.backend(), &hb.name).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    rows::beat(&mut *tx, &hb.name, now, deadline).await?;
    let mut resolved = None;
    if let Some(r) = before.incident {
        let said = match before.last_beat_at {
            Some(t) => format!(
                "heartbeat `{}` beat again; the last beat before was at {}",
                hb.name,
                t.time_utc_from(now)
            ),
            None => format!("heartbeat `{}` beat for the first time", hb.name),
        };
        let resolution = Resolution {
            root_cause: None,
            resolution: Some(said),
            follow_up: None,
        };
        // A person may have resolved it already: then there is nothing to do.
        if let Some(done) = open_close::resolve_in(ctx, &mut tx, None, r, &resolution, now).await? {
            debug_assert_eq!(done.state, IncidentState::Resolved);
            resolved = Some(r);
        }
        rows::set_incident(&mut *tx, &hb.name, None).await?;
    }
    // Armed at the new deadline. The job waiting is replaced: its time may
    // come from a longer interval configured before.
    arm(&mut tx, &hb.name, deadline, now).await?;
    ctx.commit(tx).await?;
    let l = labels(&hb.name);
    ctx.metrics.heartbeat_beats.get_or_create(&l).inc();
    ctx.metrics
        .heartbeat_last_beat
        .get_or_create(&l)
        .set(now.0 as f64 / 1000.0);
    if before.incident.is_some() {
        missed_metric(ctx, &hb.name, false);
    }
    if let Some(r) = resolved {
        tracing::info!(heartbeat = %hb.name, incident = %r, "heartbeat beat again; incident resolved");
    }
    Ok(Some(Beat { deadline, resolved }))
}

/// (Re)arms the heartbeat's job at `deadline`, replacing any job waiting.
async fn arm(tx: &mut Tx, name: &str, deadline: Millis, now: Millis) -> Result<()> {
    let job = Watch {
        name: name.to_string(),
    };
    jobs::cancel(&mut **tx, &job).await?;
    jobs::enqueue(tx, &job, deadline, now).await?;
    Ok(())
}

/// Starts watching every configured heartbeat (at start-up): a heartbeat new
/// to the database gets a full interval and grace from now; one Klaxon
/// already watched keeps its deadline (so an outage of Klaxon does not hide
/// a beat missed meanwhile), recomputed from its last beat with the interval
/// and grace configured now. Also sets the metrics from the rows.
pub async fn watch_all(ctx: &Ctx) -> Result<()> {
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    for hb in &ctx.settings.heartbeats {
        rows::ensure(&mut *tx, &hb.name, now.plus(hb.allowed_silence())).await?;
        let Some(row) = rows::get(&mut *tx, &hb.name).await? else {
            continue;
        };
        let deadline = match row.last_beat_at {
            Some(beat) => beat.plus(hb.allowed_silence()),
            // Never beaten: no later than a whole interval and grace from now.
            None => row.deadline_at.min(now.plus(hb.allowed_silence())),
        };
        if deadline != row.deadline_at {
            rows::set_deadline(&mut *tx, &hb.name, deadline).await?;
        }
        if row.incident.is_none() {
            arm(&mut tx, &hb.name, deadline, now).await?;
        }
    }
    ctx.commit(tx).await?;
    refresh_metrics(ctx).await
}

/// Sets the heartbeat metrics from the database, so every replica reports
/// the same (a beat or a resolve may have happened on another one): the last
/// beat, and whether a missed-beat incident is still open.
pub async fn refresh_metrics(ctx: &Ctx) -> Result<()> {
    let pool = ctx.store.pool();
    for row in rows::all(pool).await? {
        if configured(ctx, &row.name).is_none() {
            continue;
        }
        let open = match row.incident {
            Some(r) => crate::store::incidents::get(pool, r)
                .await?
                .is_some_and(|i| !i.is_resolved()),
            None => false,
        };
        missed_metric(ctx, &row.name, open);
        ctx.metrics
            .heartbeat_last_beat
            .get_or_create(&labels(&row.name))
            .set(row.last_beat_at.map_or(0.0, |t| t.0 as f64 / 1000.0));
    }
    Ok(())
}
