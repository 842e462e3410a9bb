//! `/incident followup [INC-n] [@owner] <text>`: action items, and their
//! copies in the team's issue tracker.
//!
//! A follow-up is recorded with the incident (the resolution summary and the
//! postmortem list them). When `[followups] webhook_url` is set, a job on the
//! outside lane POSTs each to it, rendered from the team's body template;
//! the tracker's answer (an issue key or URL) is kept and said in the
//! thread. Timeouts and 5xx are retried with backoff; a refusal or the last
//! failed attempt is said in the thread, and the follow-up stays recorded.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ports::Refusal;
use super::thread::Entry;
use super::{Answer, Ctx, Result};
use crate::incident::{EventKind, Incident, IncidentRef, SlackUserId};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::{followups, incidents};
use crate::templates::slack_escape;

/// Attempts at the tracker before the thread is told it failed (with the
/// scheduler's backoff, about an hour and a half).
const ATTEMPTS: u32 = 12;

/// Files follow-up `followup` in the tracker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct File {
    pub incident: i64,
    pub followup: i64,
}

/// Records a follow-up on `incident`.
pub async fn record(
    ctx: &Ctx,
    actor: &SlackUserId,
    incident: &Incident,
    owner: Option<&SlackUserId>,
    text: &str,
) -> Result<Answer> {
    let r = incident.reference;
    let now = ctx.clock.now();
    let tracker = ctx.tracker.is_some();
    let mut tx = ctx.begin().await?;
    // Numbers are per incident: its row locked first, so two at once get two numbers.
    crate::store::incidents::lock(&mut tx, ctx.store.backend(), r).await?;
    let (id, number) =
        followups::insert(&mut *tx, r, text, owner, Some(actor), tracker, now).await?;
    let owned = owner
        .map(|o| format!(" (owner <@{o}>)"))
        .unwrap_or_default();
    let filing = if tracker {
        " Filing it in the tracker."
    } else {
        ""
    };
    ctx.thread()
        .post(
            &mut tx,
            incident,
            Entry::new(
                EventKind::FollowUp,
                if owner.is_some() {
                    format!("recorded follow-up #{number}: {text}; owner")
                } else {
                    format!("recorded follow-up #{number}: {text}")
                },
            )
            .by(actor)
            .about(owner),
            &format!(
                "📌 Follow-up #{number} for {r}: {}{owned}, recorded by <@{actor}>.{filing}",
                slack_escape(text)
            ),
            now,
        )
        .await?;
    if tracker {
        jobs::enqueue(
            &mut tx,
            &File {
                incident: r.number(),
                followup: id,
            },
            now,
            now,
        )
        .await?;
    }
    ctx.commit(tx).await?;
    Ok(Answer::Done(format!(
        "Follow-up #{number} recorded on {r}; the postmortem will list it."
    )))
}

impl Job for File {
    const KIND: &'static str = "followup_file";
    const LANE: Lane = Lane::Outside;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("followup-file:{}", self.followup))
    }

    fn incident(&self) -> Option<IncidentRef> {
        IncidentRef::new(self.incident)
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let (Some(tracker), Some(webhook)) = (&ctx.tracker, &ctx.settings.followup_webhook) else {
            return Ok(());
        };
        let Some(f) = followups::get(ctx.store.pool(), self.followup).await? else {
            return Ok(());
        };
        let Some(incident) = incidents::get(ctx.store.pool(), f.incident).await? else {
            return Ok(());
        };
        let data = json!({
            "id": f.id,
            "number": f.number,
            "title": format!("{} follow-up: {}", incident.reference, f.text),
            "body": format!(
                "Follow-up from {} [{}] {}\nRecorded by {} at {}{}",
                incident.reference,
                incident.severity,
                incident.title,
                f.created_by.as_ref().map(|u| u.as_str()).unwrap_or("Klaxon"),
                f.created_at.date_time_utc(),
                f.owner.as_ref().map(|o| format!("\nOwner: {o}")).unwrap_or_default()
            ),
            "text": f.text,
            "incident": incident.reference.to_string(),
            "incident_title": incident.title,
            "severity": incident.severity.as_str(),
            "owner": f.owner.as_ref().map(|u| u.as_str()),
            "created_by": f.created_by.as_ref().map(|u| u.as_str()),
        });
        let outcome = match webhook.render(&data) {
            Err(e) => Err(format!("the body template failed: {e}")),
            Ok(body) => match tracker
                .file(
                    body,
                    &format!("klaxon-followup-{}-{}", f.id, f.created_at.0),
                )
                .await
            {
                Ok(reference) => Ok(reference),
                Err(Refusal::Retry(code)) if run.attempts < ATTEMPTS => {
                    return Err(JobError::Retry {
                        reason: format!("follow-up webhook: {code}"),
                        after: None,
                    });
                }
                Err(Refusal::Retry(code) | Refusal::Refused(code)) => Err(code),
                Err(Refusal::NameTaken) => Err("refused".into()),
            },
        };
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = run.started;
        let r = incident.reference;
        let (entry, reply) = match &outcome {
            Ok(reference) => {
                followups::set_tracker(&mut *tx, f.id, "filed", reference.as_deref()).await?;
                let named = reference
                    .as_deref()
                    .map(|x| format!(": {}", slack_escape(x)))
                    .unwrap_or_default();
                (
                    format!(
                        "filed follow-up #{} in the tracker{}",
                        f.number,
                        reference
                            .as_deref()
                            .map(|x| format!(" as {x}"))
                            .unwrap_or_default()
                    ),
                    format!(
                        "🗂️ Follow-up #{} of {r} is in the tracker{named}.",
                        f.number
                    ),
                )
            }
            Err(why) => {
                tracing::warn!(incident = %r, followup = f.id, error = %why, "the tracker did not take a follow-up");
                followups::set_tracker(&mut *tx, f.id, "failed", None).await?;
                (
                    format!(
                        "could not file follow-up #{} in the tracker ({why})",
                        f.number
                    ),
                    format!(
                        "⚠️ The tracker did not take follow-up #{} of {r} (`{}`). It stays recorded here and in the postmortem.",
                        f.number,
                        slack_escape(why)
                    ),
                )
            }
        };
        ctx.thread()
            .post(
                &mut tx,
                &incident,
                Entry::new(EventKind::FollowUp, entry),
                &reply,
                now,
            )
            .await?;
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}
