//! `/incident role <role> [INC-n] @user`: somebody takes a role.
//!
//! The roles and their duties come from `[[incidents.roles]]` (commander,
//! comms and scribe unless configured). A role has one holder; a new holder
//! replaces the old one. The root shows every holder, the holder gets the
//! role's duties by direct message, the room (if any) invites them, and the
//! timeline records the change.

use super::thread::Entry;
use super::{Answer, Ctx, Result, rooms};
use crate::incident::roles::RoleName;
use crate::incident::{EventKind, Incident, SlackUserId};
use crate::store::{incidents, roles};
use crate::templates::slack_escape;

/// Gives `user` the role `role` of `incident`, set by `actor`.
pub async fn assign(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    role: &RoleName,
    user: &SlackUserId,
) -> Result<Answer> {
    let Some(def) = ctx.settings.incidents.role(role) else {
        let known: Vec<String> = ctx
            .settings
            .incidents
            .roles
            .iter()
            .map(|r| format!("`{}`", r.name))
            .collect();
        return Ok(Answer::Refused(format!(
            "`{role}` is not a role here; the roles are {}.",
            known.join(", ")
        )));
    };
    let r = incident.reference;
    let now = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    let Some(current) = incidents::touch_open(&mut *tx, r, now).await? else {
        tx.rollback().await?;
        return Ok(Answer::Refused(format!(
            "{r} is resolved: roles are for incidents still being worked."
        )));
    };
    let previous = roles::holder(&mut *tx, r, role).await?;
    if previous.as_ref() == Some(user) {
        tx.rollback().await?;
        return Ok(Answer::Refused(format!(
            "<@{user}> is already the {role} of {r}."
        )));
    }
    roles::assign(&mut *tx, r, role, user, Some(actor), now).await?;
    let was = previous
        .as_ref()
        .map(|p| format!(" (was <@{p}>)"))
        .unwrap_or_default();
    let thread = ctx.thread();
    thread
        .post_and_refresh(
            &mut tx,
            &current,
            Entry::new(EventKind::RoleAssigned, format!("made {role}:"))
                .by(actor)
                .about(Some(user)),
            &format!("🎖️ <@{user}> is now the *{role}* of {r}{was}, set by <@{actor}>."),
            now,
        )
        .await?;
    let place = match current.live_room() {
        Some(room) => format!("<#{}>", room.channel),
        None => format!("the thread in <#{}>", current.channel),
    };
    thread
        .dm(
            &mut tx,
            &current,
            user,
            &format!(
                "🎖️ You are now the *{role}* of {r} [{}] {} ({place}), set by <@{actor}>.\n*Your duties:* {}",
                current.severity,
                slack_escape(&current.title),
                def.duties
            ),
            now,
        )
        .await?;
    rooms::invite(&mut tx, &current, &[user], now).await?;
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "<@{user}> is now the {role} of {r}; they got the role's duties by direct message."
    )))
}
