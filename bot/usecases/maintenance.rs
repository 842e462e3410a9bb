//! Maintenance windows: `/incident maintenance start|list|end` and the
//! `[[maintenance]]` schedules, as durable jobs.
//!
//! A window covers one alert route. While it is active:
//! - a new alert group of the route is kept whole but opens no incident and
//!   pages nobody ([`hold`], called by the alert intake); the window's
//!   announcement in the channel is edited to list what it held;
//! - a ladder step of an open incident the route feeds, falling due, pages
//!   nobody: the ladder pauses at that step (see `super::escalate`) and
//!   resumes there, at once, when the window ends, if the incident is still
//!   unacknowledged (an acknowledged or resolved one stays quiet).
//!
//! Start and end are announced in the channel and written to the audit log
//! with who and why. A window ends by time ([`End`], a job due at its end) or
//! by hand; a scheduled window's next occurrence is a job ([`Occurrence`])
//! that re-arms itself, so restarts neither skip nor double one.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ports::NewSilence;
use super::thread::Entry;
use super::{Actor, Answer, Ctx, Result, escalate};
use crate::alerts::{AlertBatch, AlertStatus};
use crate::blocks;
use crate::incident::{ChannelId, EventKind, IncidentState, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::actions::{self as audit, AuditEntry};
use crate::store::maintenance::{self as store, NewWindow, Window};
use crate::store::outbox::{self, MessageKind, NewMessage};
use crate::store::{Tx, incidents};
use crate::time::{Millis, human_duration, plural};

/// The longest window `/incident maintenance start` opens.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Held groups the announcement lists by name; the rest are counted.
const LISTED: usize = 20;

/// The job that ends a window at its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct End {
    pub window: i64,
}

impl Job for End {
    const KIND: &'static str = "maintenance_end";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("maintenance-end:{}", self.window))
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        finish(&ctx, &mut tx, self.window, None, run.started).await?;
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// The job that starts the next occurrence of a `[[maintenance]]` schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Occurrence {
    pub schedule: String,
}

impl Job for Occurrence {
    const KIND: &'static str = "maintenance_schedule";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("maintenance-schedule:{}", self.schedule))
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(w) = ctx
            .settings
            .maintenance
            .iter()
            .find(|w| w.name == self.schedule)
            .cloned()
        else {
            tracing::info!(schedule = %self.schedule, "maintenance schedule no longer configured");
            return Ok(());
        };
        let now = run.started;
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        match w.current_or_next(now) {
            Some((starts, ends)) if starts <= now => {
                let channel = channel_of(&ctx, &w.route)?;
                let new = NewWindow {
                    route: &w.route,
                    channel: &channel,
                    starts_at: starts,
                    ends_at: ends,
                    reason: w.reason.as_deref(),
                    created_by: None,
                    schedule: Some(&w.name),
                };
                // `None`: this occurrence already started (a redelivered job).
                if let Some(window) = store::insert(&mut *tx, &new, now).await? {
                    begin(&ctx, &mut tx, &window, now).await?;
                }
                // The next occurrence, once this one is over.
                if let Some((next, _)) = w.current_or_next(ends) {
                    jobs::enqueue(&mut tx, &self, next, now).await?;
                }
            }
            Some((next, _)) => {
                jobs::enqueue(&mut tx, &self, next, now).await?;
            }
            None => {}
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// After this many failed attempts a window's silence gives up and says so.
const SILENCE_ATTEMPTS: u32 = 5;

/// The job that makes a window's Alertmanager silence (`alerts.silence_maintenance`),
/// on the outside lane: a slow Alertmanager delays nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    pub window: i64,
}

impl Job for Silence {
    const KIND: &'static str = "maintenance_silence";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("maintenance-silence:{}", self.window))
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(w) = store::get(ctx.store.pool(), self.window).await? else {
            return Ok(());
        };
        if !w.active_at(run.started) || w.silence_id.is_some() {
            return Ok(());
        }
        let patterns = ctx.settings.alerts.routes.window_silence(&w.route);
        let outcome: std::result::Result<String, String> = match (&ctx.alertmanager, patterns) {
            (None, _) => {
                Err("no Alertmanager URL is configured (alerts.alertmanager_url)".to_string())
            }
            (Some(_), Err(why)) => Err(why),
            (Some(api), Ok(patterns)) => {
                let silence = NewSilence {
                    matchers: Default::default(),
                    patterns,
                    starts: run.started,
                    ends: w.ends_at,
                    created_by: w
                        .created_by
                        .as_ref()
                        .map_or_else(|| "klaxon".to_string(), |u| format!("slack:{u}")),
                    comment: format!(
                        "Klaxon maintenance window #{} on route {}{}",
                        w.id,
                        w.route,
                        w.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                };
                match api.create(&silence).await {
                    Ok(id) => Ok(id),
                    Err(e) if run.attempts < SILENCE_ATTEMPTS => {
                        return Err(JobError::Retry {
                            reason: e,
                            after: None,
                        });
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        match outcome {
            Ok(id) => {
                store::set_silence(&mut *tx, w.id, &id).await?;
                // Ended meanwhile (by hand): take the silence back at once.
                if store::get(&mut *tx, w.id)
                    .await?
                    .is_some_and(|now| now.ended_at.is_some())
                {
                    jobs::enqueue(
                        &mut tx,
                        &Unsilence {
                            window: w.id,
                            silence: id,
                        },
                        run.started,
                        run.started,
                    )
                    .await?;
                }
            }
            Err(why) => {
                post(
                    &mut tx,
                    &w.channel,
                    &format!(
                            "⚠️ No Alertmanager silence for maintenance window #{}: {}. Its alerts still reach Klaxon, which holds them; Alertmanager's other receivers still get them.",
                            w.id,
                            crate::templates::slack_escape(&why)
                        ),
                    run.started,
                )
                .await?;
            }
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// The job that expires a window's silence when the window ends early.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unsilence {
    pub window: i64,
    pub silence: String,
}

impl Job for Unsilence {
    const KIND: &'static str = "maintenance_unsilence";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("maintenance-unsilence:{}", self.window))
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(api) = &ctx.alertmanager else {
            return Ok(());
        };
        match api.expire(&self.silence).await {
            Ok(()) => Ok(()),
            Err(e) if run.attempts < SILENCE_ATTEMPTS => Err(JobError::Retry {
                reason: e,
                after: None,
            }),
            Err(e) => {
                tracing::warn!(window = self.window, error = %e, "could not expire a maintenance window's silence; it ends at the window's planned end");
                Ok(())
            }
        }
    }
}

/// Arms every configured schedule (at start-up; a schedule already armed
/// keeps its job).
pub async fn schedule_all(ctx: &Ctx) -> Result<()> {
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    for w in &ctx.settings.maintenance {
        if let Some((starts, _)) = w.current_or_next(now) {
            let job = Occurrence {
                schedule: w.name.clone(),
            };
            jobs::enqueue(&mut tx, &job, starts.max(now), now).await?;
        }
    }
    ctx.commit(tx).await?;
    Ok(())
}

/// Where a route's windows are announced: the route's channel, else the incident channel.
fn channel_of(ctx: &Ctx, route: &str) -> Result<ChannelId> {
    ctx.settings
        .alerts
        .routes
        .named(route)
        .and_then(|r| r.channel.clone())
        .or_else(|| ctx.settings.slack.incident_channel.clone())
        .ok_or_else(|| super::Error::NoChannel(route.to_string()))
}

/// `#3 on route payments until 14:30 UTC`
fn describe(w: &Window, now: Millis) -> String {
    format!(
        "#{} on route `{}` until {}",
        w.id,
        w.route,
        w.ends_at.time_utc_from(now)
    )
}

/// The announcement of a window, listing what it held so far.
fn announcement(w: &Window, held: &[store::Held], now: Millis) -> String {
    let who = match (&w.created_by, &w.schedule) {
        (Some(u), _) => format!(" by <@{u}>"),
        (None, Some(s)) => format!(" (schedule `{s}`)"),
        (None, None) => String::new(),
    };
    let reason = w
        .reason
        .as_deref()
        .map(|r| format!(": {}", crate::templates::slack_escape(r)))
        .unwrap_or_default();
    let head = match w.ended_at {
        None => format!(
            "🔧 *Maintenance window* {}{who}{reason}\nNew alert groups of this route open no incident and page nobody; ladders of its open incidents pause until it ends. `/incident maintenance end {}` ends it early.",
            describe(w, now),
            w.id
        ),
        Some(ended) => format!(
            "🔧 *Maintenance window* #{} on route `{}`{who}{reason}\nRan {} → {} ({}).",
            w.id,
            w.route,
            w.starts_at.time_utc_from(now),
            ended.time_utc_from(now),
            human_duration(ended.since(w.starts_at))
        ),
    };
    if held.is_empty() {
        return if w.ended_at.is_some() {
            format!("{head}\nNo alert group arrived during it.")
        } else {
            format!("{head}\nNo alert group arrived during it so far.")
        };
    }
    let mut lines = vec![format!(
        "{head}\n*Held* (no incident, nobody paged): {}",
        plural(
            u64::try_from(held.len()).unwrap_or(0),
            "alert group",
            "alert groups"
        )
    )];
    for h in held.iter().take(LISTED) {
        let state = if h.firing > 0 {
            format!(
                "{} firing",
                plural(u64::try_from(h.firing).unwrap_or(0), "alert", "alerts")
            )
        } else {
            "resolved".into()
        };
        lines.push(format!(
            "• {} — {state}",
            crate::templates::slack_escape(&h.title)
        ));
    }
    if held.len() > LISTED {
        lines.push(format!("… and {} more", held.len() - LISTED));
    }
    lines.join("\n")
}

/// Posts `text` in `channel`, outside any thread; returns its outbox id.
pub(super) async fn post(tx: &mut Tx, channel: &ChannelId, text: &str, now: Millis) -> Result<i64> {
    Ok(outbox::enqueue(
        tx,
        &NewMessage {
            incident: None,
            kind: MessageKind::Root,
            channel,
            user: None,
            payload: blocks::text_message(text),
            updates: None,
            page: false,
        },
        now,
    )
    .await?)
}

/// Replaces the text of the message posted as outbox row `message`.
async fn edit(
    tx: &mut Tx,
    channel: &ChannelId,
    message: i64,
    text: &str,
    now: Millis,
) -> Result<()> {
    outbox::enqueue(
        tx,
        &NewMessage {
            incident: None,
            kind: MessageKind::Update,
            channel,
            user: None,
            payload: blocks::text_message(text),
            updates: Some(message),
            page: false,
        },
        now,
    )
    .await?;
    Ok(())
}

/// Announces a window that starts now and arms its end.
async fn begin(ctx: &Ctx, tx: &mut Tx, w: &Window, now: Millis) -> Result<()> {
    let message = post(tx, &w.channel, &announcement(w, &[], now), now).await?;
    store::set_message(&mut **tx, w.id, message).await?;
    jobs::enqueue(tx, &End { window: w.id }, w.ends_at, now).await?;
    if ctx.settings.alerts.silence_maintenance {
        jobs::enqueue(tx, &Silence { window: w.id }, now, now).await?;
    }
    let detail = format!(
        "maintenance window #{} started on route {} until {}{}",
        w.id,
        w.route,
        w.ends_at.time_utc_from(now),
        w.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    audit::audit(
        &mut **tx,
        &AuditEntry {
            incident: None,
            request: None,
            actor: w.created_by.as_ref().map(SlackUserId::as_str),
            event: "maintenance_started",
            action: Some("maintenance"),
            detail: &detail,
        },
        now,
    )
    .await?;
    tracing::info!(window = w.id, route = %w.route, ends = %w.ends_at.time_utc_from(now), "maintenance window started");
    Ok(())
}

/// Ends window `id` (by time when `by` is `None`): edits its announcement,
/// announces the end, and resumes the ladders it paused. `None`: it had
/// already ended.
async fn finish(
    ctx: &Ctx,
    tx: &mut Tx,
    id: i64,
    by: Option<&SlackUserId>,
    now: Millis,
) -> Result<Option<Window>> {
    // A window that ended while Klaxon was down ended at its end, not now.
    let Some(w) = store::end(&mut **tx, id, now, by).await? else {
        return Ok(None);
    };
    // Alert rows before incidents: the store's lock order.
    store::forget_held_notifications(&mut **tx, id).await?;
    let held = store::held(&mut **tx, id).await?;
    let text = announcement(&w, &held, now);
    if let Some(message) = w.message_id {
        edit(tx, &w.channel, message, &text, now).await?;
    }
    let still_firing: Vec<&store::Held> = held.iter().filter(|h| h.firing > 0).collect();
    let mut end = format!(
        "✅ Maintenance window #{} on route `{}` ended{}.",
        w.id,
        w.route,
        match by {
            Some(u) => format!(" early (ended by <@{u}>)"),
            None => String::new(),
        }
    );
    if !still_firing.is_empty() {
        end.push_str(&format!(
            " {} held during it still {}: {}. Each opens its incident when its sender next repeats it (Alertmanager's `repeat_interval`); `/incident open` if one needs attention sooner.",
            plural(u64::try_from(still_firing.len()).unwrap_or(0), "alert group", "alert groups"),
            if still_firing.len() == 1 { "fires" } else { "fire" },
            still_firing
                .iter()
                .take(LISTED)
                .map(|h| crate::templates::slack_escape(&h.title))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Resume the ladders it paused, unless another window still covers them.
    let mut resumed = 0usize;
    for (r, step) in store::paused(&mut **tx, id).await? {
        let Some(incident) = incidents::get(&mut **tx, r).await? else {
            continue;
        };
        if incident.state != IncidentState::Open
            || store::covering(&mut **tx, r, now).await?.is_some()
        {
            continue;
        }
        ctx.thread()
            .post(
                tx,
                &incident,
                Entry::new(
                    EventKind::Maintenance,
                    format!("maintenance window #{} ended; paging resumes", w.id),
                ),
                &format!(
                    "▶️ Maintenance window #{} ended and {} is still unacknowledged: paging resumes now.",
                    w.id, incident.reference
                ),
                now,
            )
            .await?;
        escalate::start(tx, r, step, now).await?;
        resumed += 1;
    }
    if resumed > 0 {
        end.push_str(&format!(
            " Paging resumed for {}.",
            plural(u64::try_from(resumed).unwrap_or(0), "incident", "incidents")
        ));
    }
    post(tx, &w.channel, &end, now).await?;
    jobs::cancel(&mut **tx, &End { window: id }).await?;
    if let Some(silence) = &w.silence_id
        && now < w.ends_at
    {
        let job = Unsilence {
            window: id,
            silence: silence.clone(),
        };
        jobs::enqueue(tx, &job, now, now).await?;
    }
    audit::audit(
        &mut **tx,
        &AuditEntry {
            incident: None,
            request: None,
            actor: by.map(SlackUserId::as_str),
            event: "maintenance_ended",
            action: Some("maintenance"),
            detail: &format!(
                "maintenance window #{} on route {} ended {}; it held {}",
                w.id,
                w.route,
                if by.is_some() { "by hand" } else { "on time" },
                plural(
                    u64::try_from(held.len()).unwrap_or(0),
                    "alert group",
                    "alert groups"
                )
            ),
        },
        now,
    )
    .await?;
    tracing::info!(window = w.id, route = %w.route, held = held.len(), resumed, "maintenance window ended");
    Ok(Some(w))
}

/// Who may start or end a window: the people of any escalation ladder and
/// those in `alerts.silencers` (a window mutes pages the way a silence does);
/// anyone when neither names anybody. `Some`: the refusal, audited.
async fn may_hold(ctx: &Ctx, user: &SlackUserId, what: &str) -> Result<Option<String>> {
    let mut allowed: Vec<crate::escalation::Target> = ctx
        .settings
        .escalation
        .ladders
        .values()
        .flat_map(|l| l.levels.iter().flat_map(|lvl| lvl.targets.iter().cloned()))
        .collect();
    allowed.extend(ctx.settings.alerts.silencers.iter().cloned());
    if allowed.is_empty() || matches!(super::access::is_among(ctx, user, &allowed).await, Ok(true))
    {
        return Ok(None);
    }
    let why = format!(
        "Only the people of the escalation ladders and those in `alerts.silencers` may {what} a maintenance window: it stops pages."
    );
    audit::audit(
        ctx.store.pool(),
        &AuditEntry {
            incident: None,
            request: None,
            actor: Some(user.as_str()),
            event: "refused",
            action: Some("maintenance"),
            detail: &why,
        },
        ctx.clock.now(),
    )
    .await?;
    Ok(Some(format!("⛔ {why}")))
}

/// `/incident maintenance start <route> <duration> [reason]`.
pub async fn start(
    ctx: &Ctx,
    actor: &Actor,
    route: &str,
    duration: Duration,
    reason: Option<&str>,
) -> Result<Answer> {
    let routes = &ctx.settings.alerts.routes;
    if routes.named(route).is_none() {
        let names: Vec<String> = routes
            .routes()
            .iter()
            .chain(std::iter::once(routes.default_route()))
            .map(|r| format!("`{}`", r.name))
            .collect();
        return Ok(Answer::Refused(format!(
            "There is no alert route named `{route}`. Routes: {}.",
            names.join(", ")
        )));
    }
    if duration > MAX_WINDOW || duration < Duration::from_secs(1) {
        return Ok(Answer::Refused(format!(
            "A maintenance window lasts from a second to {}; for longer, add a `[[maintenance]]` schedule to the configuration.",
            human_duration(MAX_WINDOW)
        )));
    }
    if let Some(refusal) = may_hold(ctx, &actor.user, "start").await? {
        return Ok(Answer::Refused(refusal));
    }
    let channel = channel_of(ctx, route)?;
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(w) = store::insert(
        &mut *tx,
        &NewWindow {
            route,
            channel: &channel,
            starts_at: now,
            ends_at: now.plus(duration),
            reason,
            created_by: Some(&actor.user),
            schedule: None,
        },
        now,
    )
    .await?
    else {
        tx.rollback().await?;
        return Ok(Answer::Refused("That window already exists.".into()));
    };
    begin(ctx, &mut tx, &w, now).await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "🔧 Maintenance window #{} covers route `{route}` until {} ({}). It is announced in <#{channel}>; `/incident maintenance end {}` ends it early.",
        w.id,
        w.ends_at.time_utc_from(now),
        human_duration(duration),
        w.id
    )))
}

/// `/incident maintenance end <id>`.
pub async fn end(ctx: &Ctx, actor: &Actor, id: i64) -> Result<Answer> {
    if let Some(refusal) = may_hold(ctx, &actor.user, "end").await? {
        return Ok(Answer::Refused(refusal));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    match finish(ctx, &mut tx, id, Some(&actor.user), now).await? {
        Some(w) => {
            ctx.commit(tx).await?;
            Ok(Answer::Done(format!(
                "Maintenance window #{id} on route `{}` ended.",
                w.route
            )))
        }
        None => {
            tx.rollback().await?;
            Ok(Answer::Refused(
                match store::get(ctx.store.pool(), id).await? {
                    None => format!(
                        "There is no maintenance window #{id}; `/incident maintenance list` shows them."
                    ),
                    Some(_) => format!("Maintenance window #{id} has already ended."),
                },
            ))
        }
    }
}

/// `/incident maintenance list`: windows active now or still to come.
pub async fn list(ctx: &Ctx) -> Result<Answer> {
    let now = ctx.clock.now();
    let windows = store::not_ended(ctx.store.pool()).await?;
    let mut lines: Vec<String> = windows
        .iter()
        .map(|w| {
            let state = if w.active_at(now) { "active" } else { "starts" };
            format!(
                "• #{} route `{}` — {state} {} → {}{}{}",
                w.id,
                w.route,
                w.starts_at.time_utc_from(now),
                w.ends_at.time_utc_from(now),
                w.created_by
                    .as_ref()
                    .map(|u| format!(", by <@{u}>"))
                    .or_else(|| w.schedule.as_ref().map(|s| format!(", schedule `{s}`")))
                    .unwrap_or_default(),
                w.reason
                    .as_deref()
                    .map(|r| format!(": {}", crate::templates::slack_escape(r)))
                    .unwrap_or_default()
            )
        })
        .collect();
    for s in &ctx.settings.maintenance {
        if let Some((starts, ends)) = s.current_or_next(now)
            && starts > now
        {
            lines.push(format!(
                "• schedule `{}` route `{}` — next {} → {}",
                s.name,
                s.route,
                starts.time_utc_from(now),
                ends.time_utc_from(now)
            ));
        }
    }
    if lines.is_empty() {
        return Ok(Answer::Done(
            "No maintenance window is active or scheduled. `/incident maintenance start <route> <duration> [reason]` starts one.".into(),
        ));
    }
    Ok(Answer::Done(format!(
        "*Maintenance windows*\n{}",
        lines.join("\n")
    )))
}

/// Whether a window covers `route` now; if so, keeps the notification of a
/// group with no incident under it (whole) and updates the window's
/// announcement. Called by the alert intake inside its transaction; `Some`:
/// the window that held it (no incident opens, nobody is paged).
pub async fn hold(
    tx: &mut Tx,
    route: &str,
    group_id: &str,
    batch: &AlertBatch,
    now: Millis,
) -> Result<Option<i64>> {
    let Some(w) = store::active_for_route(&mut **tx, route, now).await? else {
        return Ok(None);
    };
    let firing = batch
        .alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .count();
    let alerts: Vec<serde_json::Value> = batch
        .alerts
        .iter()
        .map(|a| {
            json!({
                "fingerprint": a.fingerprint,
                "status": a.status.as_str(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at.0,
                "endsAt": a.ends_at.map(|t| t.0),
                "generatorURL": a.generator_url,
            })
        })
        .collect();
    store::hold(
        &mut **tx,
        w.id,
        group_id,
        &batch.title(),
        i64::try_from(firing).unwrap_or(i64::MAX),
        &serde_json::Value::Array(alerts).to_string(),
        &batch.dedupe_key(),
        now,
    )
    .await?;
    if let Some(message) = w.message_id {
        let held = store::held(&mut **tx, w.id).await?;
        edit(tx, &w.channel, message, &announcement(&w, &held, now), now).await?;
    }
    tracing::info!(
        window = w.id,
        route,
        group = group_id,
        firing,
        "alert group held by a maintenance window"
    );
    Ok(Some(w.id))
}
