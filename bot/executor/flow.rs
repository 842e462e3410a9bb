//! Requests, approvals, runs — and an audit line for every one of them.
//!
//! 1. `/incident run <action> …` (or the Run check menu): the action must be in
//!    the catalog, the person allowed, every parameter valid; otherwise the
//!    refusal is audited and explained, and nothing runs. `--dry-run` says
//!    exactly what would run.
//! 2. Actions that need a second pair of eyes post an approval request with
//!    Approve / Deny buttons; the requester can never approve their own, and an
//!    expired request cannot be approved (an expiry job closes it).
//! 3. The run is a durable job: "running…" is posted at once, the job marks the
//!    request running (and arms a watchdog), runs the step outside any
//!    transaction, then records the outcome and updates the message with it.
//!    If Klaxon dies mid-run, the watchdog marks the request "interrupted".

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::catalog::{Action, Refusal};
use super::{Outcome, redact, tail};
use crate::app::App;
use crate::escalation::Target;
use crate::incident::service::{Answer, IncidentService, ServiceError};
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId, TimelineEvent};
use crate::slack::blocks;
use crate::store::actions::{self, AuditEntry, NewRequest, Request, RequestState};
use crate::store::jobs::{self, Claimed, NewJob};
use crate::store::outbox::MessageKind;
use crate::store::{Tx, incidents};
use crate::templates::slack_escape;
use crate::time::{Millis, human_duration};

pub const RUN_KIND: &str = "action_run";
pub const EXPIRE_KIND: &str = "action_expire";
pub const WATCHDOG_KIND: &str = "action_watchdog";

/// `action_id`s of the approval buttons (value: the request id) and of the Run check menu.
pub const ACTION_APPROVE: &str = "action_approve";
pub const ACTION_DENY: &str = "action_deny";
pub const ACTION_RUN_MENU: &str = "incident_run";

/// Extra time the watchdog gives a step beyond its own timeout.
const WATCHDOG_GRACE: Duration = Duration::from_secs(30);

fn job(kind: &'static str, request: i64, incident: IncidentRef, run_at: Millis) -> NewJob<'static> {
    NewJob {
        kind,
        payload: json!({"request": request}),
        incident: Some(incident),
        dedupe_key: Some(format!("{kind}:{request}")),
        run_at,
    }
}

fn request_id(payload: &str) -> Option<i64> {
    serde_json::from_str::<Value>(payload)
        .ok()?
        .get("request")?
        .as_i64()
}

/// Whether `user` is among `targets`: named, in a named group, or on call in a named schedule.
pub async fn permitted(app: &App, user: &SlackUserId, targets: &[Target]) -> Result<bool, String> {
    let at = jiff::Timestamp::now();
    let mut lookup_error = None;
    for t in targets {
        match t {
            Target::User(u) if u == user => return Ok(true),
            Target::User(_) => {}
            Target::Schedule(name) => {
                let on_call = app
                    .settings
                    .escalation
                    .schedules
                    .get(name)
                    .and_then(|s| s.on_call(at));
                if on_call.is_some_and(|o| &o.user == user) {
                    return Ok(true);
                }
            }
            Target::Group(g) => match app.groups.members(g).await {
                Ok(members) if members.contains(user.as_str()) => return Ok(true),
                Ok(_) => {}
                Err(e) => lookup_error = Some(e),
            },
        }
    }
    match lookup_error {
        Some(e) => Err(e),
        None => Ok(false),
    }
}

/// Audits a refusal (outside any transaction) and returns the answer explaining it.
async fn refuse(
    app: &App,
    incident: Option<IncidentRef>,
    actor: &SlackUserId,
    action: Option<&str>,
    why: String,
) -> Result<Answer, ServiceError> {
    actions::audit(
        app.store.pool(),
        &AuditEntry {
            incident,
            request: None,
            actor: Some(actor.as_str()),
            event: "refused",
            action,
            detail: &why,
        },
        Millis::now(),
    )
    .await?;
    tracing::warn!(user = %actor, action = action.unwrap_or(""), reason = %why, "action refused");
    Ok(Answer::Refused(format!("⛔ {why}")))
}

/// Audits a `/incident run` that did not even parse (hostile or mistyped).
pub async fn audit_refusal(app: &App, actor: &SlackUserId, text: &str, why: &str) {
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
    if let Err(e) = actions::audit(app.store.pool(), &entry, Millis::now()).await {
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
    app: &App,
    actor: &SlackUserId,
    incident: &Incident,
    action_name: &str,
    params: &[(String, String)],
    dry_run: bool,
) -> Result<Answer, ServiceError> {
    let r = incident.reference;
    let Some(action) = app.settings.actions.get(action_name) else {
        return refuse(
            app,
            Some(r),
            actor,
            Some(action_name),
            format!("`{action_name}` is not an approved action. `/incident actions` lists them."),
        )
        .await;
    };
    match permitted(app, actor, &action.allowed).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                app,
                Some(r),
                actor,
                Some(action_name),
                format!("You may not run `{action_name}`."),
            )
            .await;
        }
        Err(e) => {
            return refuse(
                app,
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
        Err(Refusal(why)) => return refuse(app, Some(r), actor, Some(action_name), why).await,
    };
    let plan = step.describe();
    let now = Millis::now();
    if dry_run {
        actions::audit(
            app.store.pool(),
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
            app,
            Some(r),
            actor,
            Some(action_name),
            format!("{r} is resolved."),
        )
        .await;
    }
    let service = &app.service;
    let mut tx = app.store.begin().await?;
    let Some(current) = incidents::touch_open(&mut *tx, r, now).await? else {
        tx.rollback().await?;
        return refuse(
            app,
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
        &mut tx,
        service,
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
            expires_at.time_utc()
        );
        let message = service
            .enqueue_tracked(
                &mut tx,
                &current,
                MessageKind::Reply,
                approval_message(&text, id),
                None,
                now,
            )
            .await?;
        actions::set_message(&mut *tx, id, message).await?;
        jobs::enqueue(&mut *tx, &job(EXPIRE_KIND, id, r, expires_at), now).await?;
        format!(
            "Approval requested for `{action_name}` ({}); it expires at {}.",
            plan,
            expires_at.time_utc()
        )
    } else {
        start(
            service,
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
    tx.commit().await?;
    service.wake_workers();
    Ok(Answer::Done(answer))
}

fn approval_message(text: &str, request: i64) -> Value {
    let id = request.to_string();
    json!({
        "text": text.lines().next().unwrap_or_default(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "block_id": "approval", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary", "action_id": ACTION_APPROVE, "value": id},
                {"type": "button", "text": {"type": "plain_text", "text": "Deny"}, "style": "danger", "action_id": ACTION_DENY, "value": id},
            ]},
        ],
        "unfurl_links": false,
    })
}

/// Replaces the message that shows a request's state (approval, then outcome) with `text`.
async fn show(
    service: &IncidentService,
    tx: &mut Tx,
    incident: &Incident,
    req: &Request,
    text: &str,
    now: Millis,
) -> Result<(), ServiceError> {
    if let Some(message) = req.message_outbox_id {
        service
            .enqueue_tracked(
                tx,
                incident,
                MessageKind::Update,
                blocks::text_message(text),
                Some(message),
                now,
            )
            .await?;
    }
    Ok(())
}

/// Moves a request from `from` to `to` and, when that applied (nobody moved it
/// first), writes `event` to the audit log and the timeline. Returns the incident
/// then, `None` otherwise.
#[allow(clippy::too_many_arguments)]
async fn advance(
    service: &IncidentService,
    tx: &mut Tx,
    req: &Request,
    (from, to): (RequestState, RequestState),
    actor: Option<&str>,
    event: &str,
    detail: &str,
    now: Millis,
) -> Result<Option<Incident>, ServiceError> {
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
        tx,
        service,
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
    tx: &mut Tx,
    _service: &IncidentService,
    incident: &Incident,
    request: i64,
    actor: Option<&str>,
    event: &str,
    action: &str,
    detail: &str,
    now: Millis,
) -> Result<(), ServiceError> {
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
    incidents::add_event(
        &mut **tx,
        incident.reference,
        &TimelineEvent {
            at: now,
            kind: EventKind::Action,
            actor: actor.and_then(SlackUserId::parse),
            text: format!("{event} {action}: {detail}"),
            subject: None,
        },
    )
    .await?;
    Ok(())
}

/// Posts "running…" and enqueues the run job (inside `tx`).
#[allow(clippy::too_many_arguments)]
async fn start(
    service: &IncidentService,
    tx: &mut Tx,
    incident: &Incident,
    request: i64,
    action: &str,
    plan: &str,
    requested_by: &str,
    approved_by: Option<&str>,
    now: Millis,
) -> Result<(), ServiceError> {
    let who = match approved_by {
        Some(a) => format!("for <@{requested_by}>, approved by <@{a}>"),
        None => format!("for <@{requested_by}>"),
    };
    let text = format!("⏳ Running *{action}* {who}: `{}`…", slack_escape(plan));
    let message = service
        .enqueue_tracked(
            tx,
            incident,
            MessageKind::Reply,
            blocks::text_message(&text),
            None,
            now,
        )
        .await?;
    actions::set_message(&mut **tx, request, message).await?;
    jobs::enqueue(
        &mut **tx,
        &job(RUN_KIND, request, incident.reference, now),
        now,
    )
    .await?;
    Ok(())
}

/// Approve or Deny pressed by `user` on request `id`.
pub async fn decide(
    app: &App,
    user: &SlackUserId,
    id: i64,
    approve: bool,
) -> Result<Answer, ServiceError> {
    let Some(req) = actions::get(app.store.pool(), id).await? else {
        return refuse(
            app,
            None,
            user,
            None,
            format!("There is no action request {id}."),
        )
        .await;
    };
    let action = req.action.clone();
    if req.state != RequestState::Pending {
        return refuse(
            app,
            Some(req.incident),
            user,
            Some(&action),
            format!("That request is already {}.", req.state.as_str()),
        )
        .await;
    }
    let now = Millis::now();
    if req.expires_at.is_some_and(|e| e <= now) {
        expire(app, &req, now).await?;
        return refuse(
            app,
            Some(req.incident),
            user,
            Some(&action),
            "That request expired before anyone approved it; ask again.".into(),
        )
        .await;
    }
    if approve && req.requested_by == user.as_str() {
        return refuse(
            app,
            Some(req.incident),
            user,
            Some(&action),
            "You cannot approve your own request: someone else must.".into(),
        )
        .await;
    }
    let approvers = app
        .settings
        .actions
        .get(&action)
        .map(|a| a.approvers.clone())
        .unwrap_or_default();
    match permitted(app, user, &approvers).await {
        Ok(true) => {}
        Ok(false) => {
            return refuse(
                app,
                Some(req.incident),
                user,
                Some(&action),
                format!("You may not approve `{action}`."),
            )
            .await;
        }
        Err(e) => {
            return refuse(
                app,
                Some(req.incident),
                user,
                Some(&action),
                format!("Could not check who may approve: {e}"),
            )
            .await;
        }
    }
    let service = &app.service;
    let to = if approve {
        RequestState::Approved
    } else {
        RequestState::Denied
    };
    let verb = if approve { "approved" } else { "denied" };
    let mut tx = app.store.begin().await?;
    let Some(incident) = advance(
        service,
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
    show(service, &mut tx, &incident, &req, &text, now).await?;
    jobs::cancel(&mut *tx, &format!("{EXPIRE_KIND}:{id}")).await?;
    if approve {
        start(
            service,
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
    tx.commit().await?;
    service.wake_workers();
    Ok(Answer::Done(format!(
        "You {verb} `{action}` for <@{}>.",
        req.requested_by
    )))
}

/// Closes a pending request whose time ran out (outside a job: on a late approval).
async fn expire(app: &App, req: &Request, now: Millis) -> Result<(), ServiceError> {
    let mut tx = app.store.begin().await?;
    close_expired(&app.service, &mut tx, req, now).await?;
    tx.commit().await?;
    app.service.wake_workers();
    Ok(())
}

async fn close_expired(
    service: &IncidentService,
    tx: &mut Tx,
    req: &Request,
    now: Millis,
) -> Result<(), ServiceError> {
    let Some(incident) = advance(
        service,
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
    show(service, tx, &incident, req, &text, now).await?;
    Ok(())
}

/// The expiry job of a request awaiting approval (inside the job's transaction).
pub async fn expire_job(
    service: &IncidentService,
    tx: &mut Tx,
    payload: &str,
    now: Millis,
) -> Result<(), ServiceError> {
    let Some(id) = request_id(payload) else {
        return Ok(());
    };
    if let Some(req) = actions::get(&mut **tx, id).await?
        && req.state == RequestState::Pending
        && req.expires_at.is_some_and(|e| e <= now)
    {
        close_expired(service, tx, &req, now).await?;
    }
    Ok(())
}

/// The watchdog of a running request: if it still runs, Klaxon died during it.
pub async fn watchdog_job(
    service: &IncidentService,
    tx: &mut Tx,
    payload: &str,
    now: Millis,
) -> Result<(), ServiceError> {
    let Some(id) = request_id(payload) else {
        return Ok(());
    };
    let Some(req) = actions::get(&mut **tx, id).await? else {
        return Ok(());
    };
    let why = "interrupted: Klaxon stopped while it ran, so its outcome is unknown; check the target by hand";
    let Some(incident) = advance(
        service,
        tx,
        &req,
        (RequestState::Running, RequestState::Interrupted),
        None,
        "interrupted",
        why,
        now,
    )
    .await?
    else {
        return Ok(());
    };
    let text = format!(
        "⚠️ *{}* was {why}.\n`{}`",
        req.action,
        slack_escape(&req.plan)
    );
    show(service, tx, &incident, &req, &text, now).await?;
    Ok(())
}

/// Runs an approved request: the run job. It manages its own transactions,
/// because the step runs between them.
pub async fn run_job(
    app_service: &IncidentService,
    catalog: &super::catalog::Catalog,
    job_row: &Claimed,
    owner: &str,
) -> Result<(), ServiceError> {
    let store = app_service.store();
    let Some(id) = request_id(&job_row.payload) else {
        return drop_job(store, job_row, owner).await;
    };
    let Some(req) = actions::get(store.pool(), id).await? else {
        return drop_job(store, job_row, owner).await;
    };
    if req.state != RequestState::Approved {
        return drop_job(store, job_row, owner).await;
    }
    let prepared = catalog
        .get(&req.action)
        .ok_or_else(|| Refusal(format!("`{}` is no longer in the catalog", req.action)))
        .and_then(|a: &Action| {
            let step = a
                .values(&params_from_json(&req.params))
                .and_then(|v| a.prepare(&v))?;
            Ok((a, step))
        });
    let now = Millis::now();
    let (action, step) = match prepared {
        Ok(p) => p,
        Err(Refusal(why)) => {
            let mut tx = store.begin().await?;
            if jobs::finish(&mut *tx, job_row.id, owner).await? {
                advance(
                    app_service,
                    &mut tx,
                    &req,
                    (RequestState::Approved, RequestState::Failed),
                    None,
                    "failed",
                    &why,
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(());
        }
    };
    if actions::running_on(store.pool(), &req.target).await? >= i64::from(action.concurrency) {
        // The target is busy: wait for the run in progress.
        jobs::retry_later(
            store.pool(),
            job_row.id,
            owner,
            now.plus(Duration::from_secs(2)),
            "target busy",
        )
        .await?;
        return Ok(());
    }
    let mut tx = store.begin().await?;
    let started = if jobs::finish(&mut *tx, job_row.id, owner).await? {
        advance(
            app_service,
            &mut tx,
            &req,
            (RequestState::Approved, RequestState::Running),
            None,
            "started",
            &req.plan,
            now,
        )
        .await?
    } else {
        None
    };
    let Some(incident) = started else {
        tx.rollback().await?;
        return Ok(());
    };
    jobs::enqueue(
        &mut *tx,
        &job(
            WATCHDOG_KIND,
            id,
            req.incident,
            now.plus(step.timeout() + WATCHDOG_GRACE),
        ),
        now,
    )
    .await?;
    tx.commit().await?;

    let outcome = step.run().await;
    tracing::info!(request = id, action = %req.action, success = outcome.success, summary = %outcome.summary, "action ran");

    let now = Millis::now();
    let mut tx = store.begin().await?;
    let to = if outcome.success {
        RequestState::Succeeded
    } else {
        RequestState::Failed
    };
    let summary = redact(&outcome.summary, &action.redact);
    if advance(
        app_service,
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
        jobs::cancel(&mut *tx, &format!("{WATCHDOG_KIND}:{id}")).await?;
        let text = outcome_text(&req, action, &outcome);
        show(app_service, &mut tx, &incident, &req, &text, now).await?;
    }
    tx.commit().await?;
    app_service.wake_workers();
    Ok(())
}

async fn drop_job(
    store: &crate::store::Store,
    job_row: &Claimed,
    owner: &str,
) -> Result<(), ServiceError> {
    jobs::finish(store.pool(), job_row.id, owner).await?;
    Ok(())
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
pub fn list(app: &App) -> Answer {
    let catalog = &app.settings.actions;
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
