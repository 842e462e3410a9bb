//! Housekeeping: forgetting what only guards against duplicates once it is older
//! than any duplicate can be (Slack request signatures, event ids, processed
//! alert notifications) and delivered messages after a month. An hourly job.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Ctx, Result};
use crate::jobs::{self, Job, JobError, JobRun, Lane};
use crate::store::pages;
use crate::time::Millis;

/// How often housekeeping runs.
pub const EVERY: Duration = Duration::from_secs(3600);

/// The hourly housekeeping job (one waits at a time: its dedupe key is fixed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Prune {}

impl Job for Prune {
    const KIND: &'static str = "prune";
    const LANE: Lane = Lane::Paging;
    type Context = Ctx;

    fn dedupe_key(&self) -> Option<String> {
        Some(Self::KIND.into())
    }

    async fn run(self, ctx: Ctx, run: JobRun) -> std::result::Result<(), JobError> {
        let Some(mut tx) = run.finish().await? else {
            return Ok(());
        };
        let now = ctx.clock.now();
        let removed = pages::prune(&mut tx, now).await?;
        tracing::debug!(removed, "pruned duplicate guards and old outbox rows");
        jobs::enqueue(&mut tx, &Prune {}, now.plus(EVERY), now).await?;
        ctx.commit_job(&run, tx).await?;
        Ok(())
    }
}

/// Makes sure housekeeping is scheduled (at start; a waiting one is kept).
pub async fn schedule(ctx: &Ctx) -> Result<()> {
    let now: Millis = ctx.clock.now();
    let mut tx = ctx.begin().await?;
    jobs::enqueue(&mut tx, &Prune {}, now.plus(EVERY), now).await?;
    ctx.commit(tx).await
}
