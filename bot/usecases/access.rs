//! Who may do what: run or approve an action, change an incident's severity,
//! speak for the team on the public status page.
//!
//! Permissions name people three ways (`user:U…`, `group:S…`, `schedule:NAME`,
//! see [`Target`]); this is the one place that decides whether a person is
//! among them. A group whose members Slack cannot list right now denies (fail
//! closed) and says why.

use super::{Ctx, Result};
use crate::escalation::Target;
use crate::incident::{Incident, IncidentRef, SlackUserId};
use crate::store::actions::{self, AuditEntry};

/// Whether `user` is among `targets`: named, in a named Slack user group, or on
/// call now in a named schedule. `Err` says why a group could not be checked
/// (when no other target matched).
pub async fn is_among(
    ctx: &Ctx,
    user: &SlackUserId,
    targets: &[Target],
) -> std::result::Result<bool, String> {
    let at = ctx.clock.timestamp();
    let mut lookup_error = None;
    for t in targets {
        match t {
            Target::User(u) if u == user => return Ok(true),
            Target::User(_) => {}
            Target::Schedule(name) => {
                let on_call = ctx
                    .settings
                    .escalation
                    .schedules
                    .get(name)
                    .and_then(|s| s.on_call(at));
                if on_call.is_some_and(|o| &o.user == user) {
                    return Ok(true);
                }
            }
            Target::Group(g) => match ctx.directory.members(g).await {
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

/// Who may silence an incident's alerts in Alertmanager: the people of its
/// escalation ladder (every level) and those named in `alerts.silencers`. A
/// silence mutes real alerts for hours or days, so anyone else is refused
/// (and audited). Owning the incident is not enough: anyone in the channel
/// can make themselves its owner with `/incident ack`. `Some`: the refusal.
pub async fn may_silence(
    ctx: &Ctx,
    user: &SlackUserId,
    incident: &Incident,
) -> Result<Option<String>> {
    let ladder = incident
        .ladder
        .as_deref()
        .and_then(|n| ctx.settings.escalation.ladder(n))
        .or_else(|| ctx.settings.escalation.ladder_for(incident.severity));
    let mut allowed: Vec<Target> = ladder
        .map(|l| {
            l.levels
                .iter()
                .flat_map(|lvl| lvl.targets.iter().cloned())
                .collect()
        })
        .unwrap_or_default();
    allowed.extend(ctx.settings.alerts.silencers.iter().cloned());
    if let Ok(true) = is_among(ctx, user, &allowed).await {
        return Ok(None);
    }
    let why = format!(
        "Only the people of {}'s escalation ladder and those in `alerts.silencers` may silence its alerts.",
        incident.reference
    );
    refuse(ctx, user, Some(incident.reference), "silence", why)
        .await
        .map(Some)
}

/// Audits a refusal of `what` on `incident` and words it for the person.
async fn refuse(
    ctx: &Ctx,
    user: &SlackUserId,
    incident: Option<IncidentRef>,
    what: &str,
    why: String,
) -> Result<String> {
    actions::audit(
        ctx.store.pool(),
        &AuditEntry {
            incident,
            request: None,
            actor: Some(user.as_str()),
            event: "refused",
            action: Some(what),
            detail: &why,
        },
        ctx.clock.now(),
    )
    .await?;
    Ok(format!("⛔ {why}"))
}

/// When `incidents.severity_changers` is set, only those people, and whoever
/// opened or owns the incident, may change its severity. `Some`: the refusal,
/// already audited.
pub async fn may_change_severity(
    ctx: &Ctx,
    user: &SlackUserId,
    incident: &Incident,
) -> Result<Option<String>> {
    let changers = &ctx.settings.incidents.severity_changers;
    if changers.is_empty()
        || incident.opened_by.as_ref() == Some(user)
        || incident.owner.as_ref() == Some(user)
    {
        return Ok(None);
    }
    if let Ok(true) = is_among(ctx, user, changers).await {
        return Ok(None);
    }
    let why = format!(
        "Only the people in `incidents.severity_changers`, or whoever opened or owns {}, may change its severity.",
        incident.reference
    );
    refuse(ctx, user, Some(incident.reference), "sev", why)
        .await
        .map(Some)
}

/// When `status.publishers` is set, only those people may publish for the
/// public (`/incident status --public`), choose an incident's components or
/// set a component's state by hand: what the status page says is the
/// company's word. `what` names the command; `Some`: the refusal, already
/// audited.
pub async fn may_publish(
    ctx: &Ctx,
    user: &SlackUserId,
    incident: Option<IncidentRef>,
    what: &str,
) -> Result<Option<String>> {
    let publishers = &ctx.settings.status.publishers;
    if publishers.is_empty() {
        return Ok(None);
    }
    if let Ok(true) = is_among(ctx, user, publishers).await {
        return Ok(None);
    }
    let why =
        "Only the people in `status.publishers` may change what the status page says.".to_string();
    refuse(ctx, user, incident, what, why).await.map(Some)
}
