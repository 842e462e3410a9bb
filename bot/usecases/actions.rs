//! Requests, approvals, runs — and an audit line for every one of them.
//!
//! 1. `/incident run <action> …` (or the Run check menu): the action must be in
//!    the catalog, the person allowed, every parameter valid; otherwise the
//!    refusal is audited and explained, and nothing runs. `--dry-run` says
//!    exactly what would run.
//! 2. Actions that need a second pair of eyes post an approval request with
//!    Approve / Deny buttons; the requester can never approve their own, and an
//!    expired request cannot be approved (an expiry job closes it).
//! 3. The run is a durable job on the `actions` lane, so a slow restart holds a
//!    slot of that lane and never a page: "running…" is posted at once, the job
//!    marks the request running (and arms a watchdog), runs the step outside
//!    any transaction, then records the outcome and updates the message with
//!    it. If Klaxon dies mid-run, the watchdog marks the request "interrupted".

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::thread::Entry;
use super::{Answer, Ctx, Result, access};
use crate::blocks;
use crate::escalation::Target;
use crate::executor::catalog::{Action, Refusal};
use crate::executor::{Outcome, redact, tail};
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::actions::{self, AuditEntry, NewRequest, Request, RequestState};
use crate::store::{Tx, incidents};
use crate::templates::slack_escape;
use crate::time::{Millis, human_duration};

/// Extra time the watchdog gives a step beyond its own timeout.
const WATCHDOG_GRACE: Duration = Duration::from_secs(30);
/// How long a run waits before trying again when its target is busy.
const TARGET_BUSY_RETRY: Duration = Duration::from_secs(2);

/// Runs an approved request (the `actions` lane: its step may take minutes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub request: i64,
    #[serde(skip)]
    pub incident: Option<IncidentRef>,
}

/// Closes a request nobody approved in time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expire {
    pub request: i64,
    #[serde(skip)]
    pub incident: Option<IncidentRef>,
}

/// Marks a run "interrupted" if it is still running when its time is long over
/// (Klaxon died during it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watchdog {
    pub request: i64,
    #[serde(skip)]
    pub incident: Option<IncidentRef>,
}

/// The job impls share their shape: a request id, a dedupe key `<kind>:<id>`.
macro_rules! request_job {
    ($ty:ident, $kind:literal, $lane:expr) => {
        impl $ty {
            pub fn new(request: i64, incident: IncidentRef) -> $ty {
                $ty {
                    request,
                    incident: Some(incident),
                }
            }
        }

        impl Job for $ty {
            const KIND: &'static str = $kind;
            const LANE: Lane = $lane;
            type Context = Ctx;

            fn dedupe_key(&self) -> Option<String> {
                Some(format!("{}:{}", $kind, self.request))
            }

            fn incident(&self) -> Option<IncidentRef> {
                self.incident
            }

            async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
                self.work(&ctx, run).await
            }
        }
    };
}

request_job!(Run, "action_run", Lane::Actions);
request_job!(Expire, "action_expire", Lane::Paging);
request_job!(Watchdog, "action_watchdog", Lane::Paging);

/// Audits a refusal (outside any transaction) and returns the answer explaining it.
async fn refuse(
    ctx: &Ctx,
    incident: Option<IncidentRef>,
    actor: &SlackUserId,
    action: Option<&str>,
    why: String,
) -> Result<Answer> {
    actions::audit(
        ctx.store.pool(),
        &AuditEntry {
            incident,
            request: None,
            actor: Some(actor.as_str()),
            event: "refused",
            action,
            detail: &why,
        },
        ctx.clock.now(),
    )
    .await?;
    tracing::warn!(user = %actor, action = action.unwrap_or(""), reason = %why, "action refused");
    Ok(Answer::Refused(format!("⛔ {why}")))
}

/// Audits a `/incident run` that did not even parse (hostile or mistyped).
pub async fn audit_malformed(ctx: &Ctx, actor: &SlackUserId, text: &str, why: &str) {
    let action = text.split_whitespace().nth(1);
    let entry = AuditEntry {
        incident: None,
        request: None,
        actor: Some(actor.as_str()),
        event: "refused",
        action,
        detail: &format!(
            "{why} (typed: {})",
            text.chars().take(200).collect::<String>()
        ),
    };
    if let Err(e) = actions::audit(ctx.store.pool(), &entry, ctx.clock.now()).await {
        tracing::error!(error = %e, "could not audit a refusal");
    }
}

/// `key=value` pairs as stored with a request.
fn params_json(params: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    json!(map).to_string()
}

fn params_from_json(text: &str) -> Vec<(String, String)> {
    serde_json::from_str::<BTreeMap<String, String>>(text)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// Asks to run `action_name` on `incident`.
pub async fn request(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    action_name: &str,
    params: &[(String, String)],
    dry_run: bool,
) -> Result<Answer> {
    let r = incident.reference;
    let Some(action) = ctx.settings.actions.get(action_name) else {
        return refuse(
            ctx,
            Some(r),
            actor,
            Some(action_name),
            format!("`{action_name}` is not an approved action. `/incident actions` lists them."),
        )
        .await;
    };
    match access::is_among(ctx, actor, &action.allowed).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                ctx,
                Some(r),
                actor,
                Some(action_name),
                format!("You may not run `{action_name}`."),
            )
            .await;
        }
        Err(e) => {
            return refuse(
                ctx,
                Some(r),
                actor,
                Some(action_name),
                format!("Could not check who may run `{action_name}`: {e}"),
            )
            .await;
        }
    }
    let step = match action.values(params).and_then(|v| action.prepare(&v)) {
        Ok(s) => s,
        Err(Refusal(why)) => return refuse(ctx, Some(r), actor, Some(action_name), why).await,
    };
    let plan = step.describe();
    let now = ctx.clock.now();
    if dry_run {
        actions::audit(
            ctx.store.pool(),
            &AuditEntry {
                incident: Some(r),
                request: None,
                actor: Some(actor.as_str()),
                event: "dry_run",
                action: Some(action_name),
                detail: &plan,
            },
            now,
        )
        .await?;
        return Ok(Answer::Done(format!(
            "Dry run, nothing ran. `{action_name}` would: `{}`{}",
            plan,
            if action.approval {
                " — after someone else approves it."
            } else {
                "."
            }
        )));
    }
    if incident.is_resolved() {
        return refuse(
            ctx,
            Some(r),
            actor,
            Some(action_name),
            format!("{r} is resolved."),
        )
        .await;
    }
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::touch_open(&mut *tx, r, now).await? else {
        tx.rollback().await?;
        return refuse(
            ctx,
            Some(r),
            actor,
            Some(action_name),
            format!("{r} is resolved."),
        )
        .await;
    };
    let expires_at = action.approval.then(|| now.plus(action.approval_expiry));
    let id = actions::insert(
        &mut *tx,
        &NewRequest {
            incident: r,
            action: action_name,
            params: &params_json(params),
            plan: &plan,
            target: &step.target(),
            requested_by: actor.as_str(),
            state: if action.approval {
                RequestState::Pending
            } else {
                RequestState::Approved
            },
            expires_at,
        },
        now,
    )
    .await?;
    record(
        ctx,
        &mut tx,
        &current,
        id,
        Some(actor.as_str()),
        "requested",
        action_name,
        &plan,
        now,
    )
    .await?;
    let answer = if let Some(expires_at) = expires_at {
        let text = format!(
            "🔐 <@{actor}> asks to run *{action_name}* on {r}: `{}`\nSomeone else allowed to approve must press *Approve* before {}.",
            slack_escape(&plan),
            expires_at.time_utc_from(now)
        );
        let message = ctx
            .thread()
            .reply(&mut tx, &current, blocks::approval_message(&text, id), now)
            .await?;
        actions::set_message(&mut *tx, id, message).await?;
        jobs::enqueue(&mut tx, &Expire::new(id, r), expires_at, now).await?;
        format!(
            "Approval requested for `{action_name}` ({}); it expires at {}.",
            plan,
            expires_at.time_utc_from(now)
        )
    } else {
        start(
            ctx,
            &mut tx,
            &current,
            id,
            action_name,
            &plan,
            actor.as_str(),
            None,
            now,
        )
        .await?;
        format!("Running `{action_name}`: {plan}")
    };
    ctx.commit(tx).await?;
    Ok(Answer::Done(answer))
}

/// Replaces the message that shows a request's state (approval, then outcome) with `text`.
async fn show(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    req: &Request,
    text: &str,
    now: Millis,
) -> Result<()> {
    if let Some(message) = req.message_outbox_id {
        ctx.thread()
            .update(tx, incident, message, text, now)
            .await?;
    }
    Ok(())
}

/// Moves a request from `from` to `to` and, when that applied (nobody moved it
/// first), writes `event` to the audit log and the timeline. Returns the incident
/// then, `None` otherwise.
#[allow(clippy::too_many_arguments)]
async fn advance(
    ctx: &Ctx,
    tx: &mut Tx,
    req: &Request,
    (from, to): (RequestState, RequestState),
    actor: Option<&str>,
    event: &str,
    detail: &str,
    now: Millis,
) -> Result<Option<Incident>> {
    let outcome = matches!(
        to,
        RequestState::Succeeded | RequestState::Failed | RequestState::Interrupted
    )
    .then_some(detail);
    if !actions::transition(&mut **tx, req.id, from, to, actor, now, outcome).await? {
        return Ok(None);
    }
    let Some(incident) = incidents::get(&mut **tx, req.incident).await? else {
        return Ok(None);
    };
    record(
        ctx,
        tx,
        &incident,
        req.id,
        actor,
        event,
        &req.action,
        detail,
        now,
    )
    .await?;
    Ok(Some(incident))
}

/// Appends an audit line and a timeline event in `tx`.
#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    request: i64,
    actor: Option<&str>,
    event: &str,
    action: &str,
    detail: &str,
    now: Millis,
) -> Result<()> {
    actions::audit(
        &mut **tx,
        &AuditEntry {
            incident: Some(incident.reference),
            request: Some(request),
            actor,
            event,
            action: Some(action),
            detail,
        },
        now,
    )
    .await?;
    let actor = actor.and_then(SlackUserId::parse);
    let mut entry = Entry::new(EventKind::Action, format!("{event} {action}: {detail}"));
    entry.actor = actor.as_ref();
    ctx.thread().record(tx, incident, entry, now).await
}

/// Posts "running…" and enqueues the run job (inside `tx`).
#[allow(clippy::too_many_arguments)]
async fn start(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: &Incident,
    request: i64,
    action: &str,
    plan: &str,
    requested_by: &str,
    approved_by: Option<&str>,
    now: Millis,
) -> Result<()> {
    let who = match approved_by {
        Some(a) => format!("for <@{requested_by}>, approved by <@{a}>"),
        None => format!("for <@{requested_by}>"),
    };
    let text = format!("⏳ Running *{action}* {who}: `{}`…", slack_escape(plan));
    let message = ctx
        .thread()
        .reply(tx, incident, blocks::text_message(&text), now)
        .await?;
    actions::set_message(&mut **tx, request, message).await?;
    jobs::enqueue(tx, &Run::new(request, incident.reference), now, now).await?;
    Ok(())
}

/// Approve or Deny pressed by `user` on request `id`.
pub async fn decide(ctx: &Ctx, user: &SlackUserId, id: i64, approve: bool) -> Result<Answer> {
    let Some(req) = actions::get(ctx.store.pool(), id).await? else {
        return refuse(
            ctx,
            None,
            user,
            None,
            format!("There is no action request {id}."),
        )
        .await;
    };
    let action = req.action.clone();
    if matches!(req.state, RequestState::Pending | RequestState::Expired)
        && incidents::get(ctx.store.pool(), req.incident)
            .await?
            .is_some_and(|i| i.is_resolved())
    {
        let mut tx = ctx.begin().await?;
        close_on_resolve(ctx, &mut tx, req.incident, ctx.clock.now()).await?;
        ctx.commit(tx).await?;
        return refuse(
            ctx,
            Some(req.incident),
            user,
            Some(&action),
            format!(
                "{} is resolved: that request closed and nothing ran.",
                req.incident
            ),
        )
        .await;
    }
    if req.state != RequestState::Pending {
        return refuse(
            ctx,
            Some(req.incident),
            user,
            Some(&action),
            format!("That request is already {}.", req.state.as_str()),
        )
        .await;
    }
    let now = ctx.clock.now();
    if req.expires_at.is_some_and(|e| e <= now) {
        let mut tx = ctx.begin().await?;
        close_expired(ctx, &mut tx, &req, now).await?;
        ctx.commit(tx).await?;
        return refuse(
            ctx,
            Some(req.incident),
            user,
            Some(&action),
            "That request expired before anyone approved it; ask again.".into(),
        )
        .await;
    }
    if approve && req.requested_by == user.as_str() {
        return refuse(
            ctx,
            Some(req.incident),
            user,
            Some(&action),
            "You cannot approve your own request: someone else must.".into(),
        )
        .await;
    }
    let approvers = ctx
        .settings
        .actions
        .get(&action)
        .map(|a| a.approvers.clone())
        .unwrap_or_default();
    match access::is_among(ctx, user, &approvers).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                ctx,
                Some(req.incident),
                user,
                Some(&action),
                format!("You may not approve `{action}`."),
            )
            .await;
        }
        Err(e) => {
            return refuse(
                ctx,
                Some(req.incident),
                user,
                Some(&action),
                format!("Could not check who may approve: {e}"),
            )
            .await;
        }
    }
    let to = if approve {
        RequestState::Approved
    } else {
        RequestState::Denied
    };
    let verb = if approve { "approved" } else { "denied" };
    let mut tx = ctx.begin().await?;
    let Some(incident) = advance(
        ctx,
        &mut tx,
        &req,
        (RequestState::Pending, to),
        Some(user.as_str()),
        verb,
        &req.plan,
        now,
    )
    .await?
    else {
        tx.rollback().await?;
        return Ok(Answer::Refused(
            "Someone decided on that request a moment ago.".into(),
        ));
    };
    let mark = if approve { "✅" } else { "❌" };
    let text = format!(
        "🔐 <@{}> asked to run *{action}* on {}: `{}`\n{mark} {verb} by <@{user}> at {}",
        req.requested_by,
        req.incident,
        slack_escape(&req.plan),
        now.time_utc()
    );
    show(ctx, &mut tx, &incident, &req, &text, now).await?;
    jobs::cancel(&mut *tx, &Expire::new(id, req.incident)).await?;
    if approve {
        start(
            ctx,
            &mut tx,
            &incident,
            id,
            &action,
            &req.plan,
            &req.requested_by,
            Some(user.as_str()),
            now,
        )
        .await?;
    }
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "You {verb} `{action}` for <@{}>.",
        req.requested_by
    )))
}

async fn close_expired(ctx: &Ctx, tx: &mut Tx, req: &Request, now: Millis) -> Result<()> {
    let Some(incident) = advance(
        ctx,
        tx,
        req,
        (RequestState::Pending, RequestState::Expired),
        None,
        "expired",
        &req.plan,
        now,
    )
    .await?
    else {
        return Ok(());
    };
    let text = format!(
        "🔐 <@{}> asked to run *{}* on {}: `{}`\n⌛ Expired at {} without approval; nothing ran.",
        req.requested_by,
        req.action,
        req.incident,
        slack_escape(&req.plan),
        now.time_utc()
    );
    show(ctx, tx, &incident, req, &text, now).await
}

/// When an incident resolves, its requests still waiting (for approval, or
/// approved and not started) close as expiry closes them, their messages say
/// why, and nothing of them runs: a change approved after the incident is
/// over must not happen.
pub async fn close_on_resolve(
    ctx: &Ctx,
    tx: &mut Tx,
    incident: IncidentRef,
    now: Millis,
) -> Result<()> {
    for req in actions::undecided_for(&mut **tx, incident).await? {
        let why = format!("{incident} resolved before it ran");
        let Some(current) = advance(
            ctx,
            tx,
            &req,
            (req.state, RequestState::Expired),
            None,
            "closed",
            &why,
            now,
        )
        .await?
        else {
            continue;
        };
        jobs::cancel(&mut **tx, &Expire::new(req.id, incident)).await?;
        let text = format!(
            "🔐 <@{}> asked to run *{}* on {incident}: `{}`\n⌛ Closed at {}: {incident} resolved before it ran; nothing ran.",
            req.requested_by,
            req.action,
            slack_escape(&req.plan),
            now.time_utc()
        );
        show(ctx, tx, &current, &req, &text, now).await?;
    }
    Ok(())
}

impl Expire {
    async fn work(self, ctx: &Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        if let Some(req) = actions::get(&mut *tx, self.request).await?
            && req.state == RequestState::Pending
            && req.expires_at.is_some_and(|e| e <= now)
        {
            close_expired(ctx, &mut tx, &req, now).await?;
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

impl Watchdog {
    async fn work(self, ctx: &Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        if let Some(req) = actions::get(&mut *tx, self.request).await? {
            let why = "interrupted: Klaxon stopped while it ran, so its outcome is unknown; check the target by hand";
            if let Some(incident) = advance(
                ctx,
                &mut tx,
                &req,
                (RequestState::Running, RequestState::Interrupted),
                None,
                "interrupted",
                why,
                now,
            )
            .await?
            {
                let text = format!(
                    "⚠️ *{}* was {why}.\n`{}`",
                    req.action,
                    slack_escape(&req.plan)
                );
                show(ctx, &mut tx, &incident, &req, &text, now).await?;
            }
        }
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

impl Run {
    /// Runs an approved request: marks it running (and arms the watchdog) in the
    /// transaction that finishes the job, runs the step outside any transaction,
    /// then records the outcome and updates the request's message.
    async fn work(self, ctx: &Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let store = &ctx.store;
        let id = self.request;
        let Some(req) = actions::get(store.pool(), id).await? else {
            return Ok(());
        };
        if req.state != RequestState::Approved {
            return Ok(());
        }
        let prepared = ctx
            .settings
            .actions
            .get(&req.action)
            .ok_or_else(|| Refusal(format!("`{}` is no longer in the catalog", req.action)))
            .and_then(|a: &Action| {
                let step = a
                    .values(&params_from_json(&req.params))
                    .and_then(|v| a.prepare(&v))?;
                Ok((a, step))
            });
        let now = ctx.clock.now();
        let (action, step) = match prepared {
            Ok(p) => p,
            Err(Refusal(why)) => {
                if let Some(mut tx) = run.finish().await? {
                    advance(
                        ctx,
                        &mut tx,
                        &req,
                        (RequestState::Approved, RequestState::Failed),
                        None,
                        "failed",
                        &why,
                        now,
                    )
                    .await?;
                    ctx.commit_job(&run, tx).await?;
                }
                return Ok(());
            }
        };
        if actions::running_on(store.pool(), &req.target).await? >= i64::from(action.concurrency) {
            // The target is busy: wait for the run in progress.
            return Err(JobError::NotYet {
                reason: "target busy".into(),
                after: TARGET_BUSY_RETRY,
            });
        }
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        // Checked again under the target's lock: another replica may have
        // started a run on it since.
        if !actions::target_free(&mut tx, store.backend(), &req.target, action.concurrency).await? {
            jobs::enqueue(
                &mut tx,
                &Run::new(id, req.incident),
                now.plus(TARGET_BUSY_RETRY),
                now,
            )
            .await?;
            ctx.commit_job(&run, tx).await?;
            return Ok(());
        }
        let Some(incident) = advance(
            ctx,
            &mut tx,
            &req,
            (RequestState::Approved, RequestState::Running),
            None,
            "started",
            &req.plan,
            now,
        )
        .await?
        else {
            tx.rollback().await?;
            return Ok(());
        };
        jobs::enqueue(
            &mut tx,
            &Watchdog::new(id, req.incident),
            now.plus(step.timeout() + WATCHDOG_GRACE),
            now,
        )
        .await?;
        ctx.commit_job(&run, tx).await?;

        let outcome = step.run().await;
        tracing::info!(request = id, action = %req.action, success = outcome.success, summary = %outcome.summary, "action ran");

        let now = ctx.clock.now();
        let mut tx = ctx.begin().await?;
        let to = if outcome.success {
            RequestState::Succeeded
        } else {
            RequestState::Failed
        };
        let summary = redact(&outcome.summary, &action.redact);
        if advance(
            ctx,
            &mut tx,
            &req,
            (RequestState::Running, to),
            None,
            to.as_str(),
            &summary,
            now,
        )
        .await?
        .is_some()
        {
            jobs::cancel(&mut *tx, &Watchdog::new(id, req.incident)).await?;
            let text = outcome_text(&req, action, &outcome);
            show(ctx, &mut tx, &incident, &req, &text, now).await?;
        }
        ctx.commit(tx).await?;
        Ok(())
    }
}

/// What the thread shows once a run is over.
pub fn outcome_text(req: &Request, action: &Action, outcome: &Outcome) -> String {
    let mark = if outcome.success { "✅" } else { "❌" };
    let verb = if outcome.success {
        "succeeded"
    } else {
        "failed"
    };
    let approved = req
        .decided_by
        .as_deref()
        .map(|a| format!(", approved by <@{a}>"))
        .unwrap_or_default();
    let output = tail(&redact(&outcome.output, &action.redact), 15, 2_500);
    let mut text = format!(
        "{mark} *{}* {verb} in {} — {} (requested by <@{}>{approved})\n`{}`",
        req.action,
        if outcome.duration.as_secs() >= 1 {
            human_duration(outcome.duration)
        } else {
            format!("{} ms", outcome.duration.as_millis())
        },
        slack_escape(&redact(&outcome.summary, &action.redact)),
        req.requested_by,
        slack_escape(&req.plan),
    );
    if !output.trim().is_empty() {
        text.push_str(&format!(
            "\n```\n{}\n```",
            slack_escape(&output.replace("```", "'''"))
        ));
    }
    text
}

/// `/incident actions`: the catalog, and who may run what.
pub fn list(ctx: &Ctx) -> Answer {
    let catalog = &ctx.settings.actions;
    if catalog.actions.is_empty() {
        return Answer::Done(
            "No actions are approved yet: add `[[actions]]` to the configuration.".into(),
        );
    }
    let who = |targets: &[Target]| {
        targets
            .iter()
            .map(|t| match t {
                Target::User(u) => format!("<@{u}>"),
                Target::Group(g) => format!("<!subteam^{g}>"),
                Target::Schedule(s) => format!("whoever is on call in {}", slack_escape(s)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec!["*Approved actions*".to_string()];
    for (name, a) in &catalog.actions {
        let params: Vec<String> = a
            .params
            .iter()
            .map(|p| format!("{}=… ({})", p.name, p.explain()))
            .collect();
        lines.push(format!(
            "• *{name}* — {}{}\n   runs: {} · {}{}",
            slack_escape(&a.description),
            if params.is_empty() {
                String::new()
            } else {
                format!("\n   parameters: {}", slack_escape(&params.join(", ")))
            },
            who(&a.allowed),
            if a.approval {
                format!("needs approval by {}", who(&a.approvers))
            } else {
                "runs at once".into()
            },
            if a.read_only { " · read-only" } else { "" },
        ));
    }
    Answer::Done(lines.join("\n"))
}
