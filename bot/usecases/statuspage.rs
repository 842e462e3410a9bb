//! The status page's side of incidents: which components an incident
//! touches (from `/incident open --component`, `/incident components`, or
//! the alert route), the updates published for the public
//! (`/incident status --public`), and component states set by hand.
//!
//! The page itself reads the store (`crate::web::status`); this module only
//! writes. Nothing internal reaches the public by itself: only text a person
//! chose to publish, and the one fixed sentence Klaxon adds when an incident
//! with public updates resolves ([`RESOLVED_TEXT`]).

use super::thread::Entry;
use super::{Answer, Ctx, Result, access};
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId};
use crate::status::{ComponentName, ComponentStatus};
use crate::store::actions::{self, AuditEntry};
use crate::store::status::{self as store, PublicState};
use crate::store::{Tx, incidents};
use crate::templates::slack_escape;
use crate::time::Millis;

/// Records a change of what the status page says in the audit log.
async fn audit(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: Option<IncidentRef>,
    what: &str,
    detail: &str,
) -> Result<()> {
    actions::audit(
        ctx.store.pool(),
        &AuditEntry {
            incident,
            request: None,
            actor: Some(actor.as_str()),
            event: "status_page",
            action: Some(what),
            detail,
        },
        ctx.clock.now(),
    )
    .await?;
    Ok(())
}

/// Checks `text` for the public and whether `actor` may publish it on
/// `incident`: the text as the page will show it, or why not (audited when
/// it is a matter of permission). Call before anything changes.
pub async fn check_public(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: IncidentRef,
    text: &str,
) -> Result<std::result::Result<String, String>> {
    if let Some(refused) =
        access::may_publish(ctx, actor, Some(incident), "status --public").await?
    {
        return Ok(Err(refused));
    }
    Ok(crate::status::public_text(text))
}

/// What the page says when an incident with public updates resolves.
pub const RESOLVED_TEXT: &str = "This incident has been resolved.";

/// What the page says when such an incident, told resolved, is reopened.
pub const REOPENED_TEXT: &str = "This incident has been reopened; we are investigating.";

/// Why these names are not all configured components, if so.
pub fn unknown_components(ctx: &Ctx, names: &[ComponentName]) -> Option<String> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| ctx.settings.status.component(n.as_str()).is_none())
        .map(|n| n.as_str())
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let known: Vec<&str> = ctx
        .settings
        .status
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    Some(if known.is_empty() {
        format!(
            "No status-page components are configured, so `{}` is not one. Add `[[status.components]]` to klaxon.toml.",
            unknown.join("`, `")
        )
    } else {
        format!(
            "`{}` is not a status-page component; the components are `{}`.",
            unknown.join("`, `"),
            known.join("`, `")
        )
    })
}

/// The components' titles as the page shows them, joined.
fn titles(ctx: &Ctx, names: &[ComponentName]) -> String {
    names
        .iter()
        .map(|n| {
            ctx.settings
                .status
                .component(n.as_str())
                .map(|c| c.title.as_str())
                .unwrap_or(n.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records the components a new incident touches, inside its opening
/// transaction (names already checked).
pub async fn attach(tx: &mut Tx, incident: &Incident, names: &[ComponentName]) -> Result<()> {
    if !names.is_empty() {
        store::set_components(tx, incident.reference, names).await?;
        track(tx, incident.reference, incident.opened_at).await?;
    }
    Ok(())
}

/// Adds those of `names` the incident does not touch yet (an alert
/// incident's route or service, when the config gained a component after it
/// opened), inside the caller's transaction.
pub async fn add_missing(
    tx: &mut Tx,
    incident: &Incident,
    names: &[ComponentName],
    now: Millis,
) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let have = store::components_of(&mut **tx, incident.reference).await?;
    if names.iter().all(|n| have.iter().any(|h| h == n.as_str())) {
        return Ok(());
    }
    let mut all: Vec<ComponentName> = have
        .iter()
        .filter_map(|h| ComponentName::parse(h).ok())
        .collect();
    all.extend(
        names
            .iter()
            .filter(|n| !have.iter().any(|h| h == n.as_str()))
            .cloned(),
    );
    store::set_components(tx, incident.reference, &all).await?;
    track(tx, incident.reference, now).await
}

/// After anything that changes what an incident does to its components (its
/// components, its severity, resolving, reopening), inside that change's
/// transaction: the page's bars keep each state for the time it held.
pub async fn track(tx: &mut Tx, r: IncidentRef, now: Millis) -> Result<()> {
    store::sync_spans(tx, r, now).await?;
    Ok(())
}

/// `/incident components [INC-n] …`: replaces the components `incident` touches.
pub async fn set_components(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    names: &[ComponentName],
) -> Result<Answer> {
    if let Some(why) = unknown_components(ctx, names) {
        return Ok(Answer::Refused(why));
    }
    let r = incident.reference;
    if let Some(refused) = access::may_publish(ctx, actor, Some(r), "components").await? {
        return Ok(Answer::Refused(refused));
    }
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::get(&mut *tx, r).await? else {
        tx.rollback().await?;
        return Ok(Answer::Refused(format!("{r} does not exist.")));
    };
    if current.is_resolved() {
        tx.rollback().await?;
        return Ok(Answer::Refused(format!(
            "{r} is resolved: the status page keeps the components it touched while it was open. Reopen it to change them."
        )));
    }
    let said = if names.is_empty() {
        "touches no status-page component".to_string()
    } else {
        format!("touches {} on the status page", titles(ctx, names))
    };
    store::set_components(&mut tx, r, names).await?;
    track(&mut tx, r, now).await?;
    ctx.thread()
        .post(
            &mut tx,
            &current,
            Entry::new(EventKind::StatusPage, format!("set: the incident {said}")).by(actor),
            &format!("🌐 {r} {} (set by <@{actor}>).", slack_escape(&said)),
            now,
        )
        .await?;
    ctx.commit(tx).await?;
    audit(ctx, actor, Some(r), "components", &said).await?;
    Ok(Answer::Done(format!("{r} {}.", slack_escape(&said))))
}

/// Publishes `text` for the public as `incident`'s next update, inside the
/// caller's transaction (the status update that carries it).
pub async fn publish_in(
    tx: &mut Tx,
    incident: &Incident,
    text: &str,
    by: &SlackUserId,
    now: Millis,
) -> Result<()> {
    let first = store::public_updates_of(&mut **tx, incident.reference)
        .await?
        .is_empty();
    let state = if first {
        PublicState::Investigating
    } else {
        PublicState::Update
    };
    store::add_public_update(
        &mut **tx,
        incident.reference,
        now,
        state,
        text,
        Some(by.as_str()),
    )
    .await?;
    Ok(())
}

/// On resolving: an incident the public was told about is told resolved.
pub async fn on_resolve(tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    track(tx, incident.reference, now).await?;
    let updates = store::public_updates_of(&mut **tx, incident.reference).await?;
    if updates
        .last()
        .is_some_and(|u| u.state != PublicState::Resolved)
    {
        store::add_public_update(
            &mut **tx,
            incident.reference,
            now,
            PublicState::Resolved,
            RESOLVED_TEXT,
            None,
        )
        .await?;
    }
    Ok(())
}

/// On reopening: an incident the public was told is resolved is told it is
/// not (else the page would list a current incident whose last word is
/// "resolved").
pub async fn on_reopen(tx: &mut Tx, incident: &Incident, now: Millis) -> Result<()> {
    track(tx, incident.reference, now).await?;
    let updates = store::public_updates_of(&mut **tx, incident.reference).await?;
    if updates
        .last()
        .is_some_and(|u| u.state == PublicState::Resolved)
    {
        store::add_public_update(
            &mut **tx,
            incident.reference,
            now,
            PublicState::Investigating,
            REOPENED_TEXT,
            None,
        )
        .await?;
    }
    Ok(())
}

/// `/incident component NAME STATE|auto`: sets a component's state by hand.
pub async fn set_state(
    ctx: &Ctx,
    actor: &SlackUserId,
    component: &ComponentName,
    status: Option<ComponentStatus>,
) -> Result<Answer> {
    if let Some(why) = unknown_components(ctx, std::slice::from_ref(component)) {
        return Ok(Answer::Refused(why));
    }
    if let Some(refused) = access::may_publish(ctx, actor, None, "component").await? {
        return Ok(Answer::Refused(refused));
    }
    let now = ctx.clock.now();
    let title = slack_escape(&titles(ctx, std::slice::from_ref(component)));
    let said = match status {
        Some(s) => format!(
            "🌐 <@{actor}> set *{title}* to *{}* on the status page, until someone runs `/incident component {component} auto`.",
            s.label()
        ),
        None => format!("🌐 <@{actor}> gave *{title}* back to its incidents on the status page."),
    };
    // The change and its notice in the incident channel commit together: a
    // public page never changes by hand without the team seeing who did it.
    let mut tx = ctx.begin().await?;
    store::set_override(&mut *tx, component, status, actor.as_str(), now).await?;
    if let Some(channel) = &ctx.settings.slack.incident_channel {
        super::maintenance::post(&mut tx, channel, &said, now).await?;
    }
    ctx.commit(tx).await?;
    audit(
        ctx,
        actor,
        None,
        "component",
        &format!(
            "{component}: {}",
            status.map(|s| s.as_str()).unwrap_or("auto")
        ),
    )
    .await?;
    tracing::info!(component = %component, status = status.map(|s| s.as_str()).unwrap_or("auto"), user = %actor, "status page component state set by hand");
    Ok(Answer::Done(said))
}
