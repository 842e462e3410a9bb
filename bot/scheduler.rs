//! The scheduler: runs durable jobs when they fall due.
//!
//! It sleeps until the earliest job is due — woken early by a [`Notify`] when a
//! job is enqueued — instead of polling on a fixed cycle, claims due jobs with a
//! lease, and runs each in one transaction that first deletes the job (only if
//! the lease is still ours) and then writes the job's effects. A crash before
//! the commit leaves the job in place for the next start; a crash after it
//! leaves nothing to redo. Several replicas share the queue safely.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::alerts::ingest;
use crate::alerts::silence::{self, AlertmanagerApi};
use crate::escalation::engine;
use crate::executor::flow;
use crate::incident::service::{IncidentService, ServiceError};
use crate::slack::outbox::backoff;
use crate::store::Store;
use crate::store::jobs::{self, Claimed};
use crate::telemetry::{LevelLabels, Metrics};
use crate::time::Millis;

/// The longest sleep with nothing due (a safety net for jobs other replicas enqueue).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long a claimed job is ours before another worker may take it over.
const LEASE: Duration = Duration::from_secs(30);
const BATCH: i64 = 64;
/// The housekeeping job: forgets duplicate guards older than any duplicate can be.
const PRUNE_KIND: &str = "prune";
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn prune_job(run_at: Millis) -> jobs::NewJob<'static> {
    jobs::NewJob {
        kind: PRUNE_KIND,
        payload: serde_json::json!({}),
        incident: None,
        dedupe_key: Some(PRUNE_KIND.into()),
        run_at,
    }
}

#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    service: IncidentService,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    outbox_wake: Arc<Notify>,
    alertmanager: Option<AlertmanagerApi>,
    owner: String,
}

impl Scheduler {
    pub fn new(
        store: Store,
        service: IncidentService,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        outbox_wake: Arc<Notify>,
        alertmanager: Option<AlertmanagerApi>,
    ) -> Scheduler {
        Scheduler {
            store,
            service,
            metrics,
            wake,
            outbox_wake,
            alertmanager,
            owner: format!("jobs-{}-{:08x}", std::process::id(), rand::random::<u32>()),
        }
    }

    /// Runs until `shutdown` turns true; the job in hand finishes first.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let now = Millis::now();
        if let Err(e) =
            jobs::enqueue(self.store.pool(), &prune_job(now.plus(PRUNE_EVERY)), now).await
        {
            tracing::warn!(error = %e, "could not schedule housekeeping");
        }
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let sleep_for = match self.run_due(&shutdown).await {
                Ok(next) => {
                    failures = 0;
                    next.map(|due| due.since(Millis::now()))
                        .unwrap_or(MAX_IDLE)
                        .min(MAX_IDLE)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures, MAX_IDLE);
                    tracing::warn!(error = %e, retry_in = ?wait, "scheduler: database unavailable");
                    wait
                }
            };
            if sleep_for.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// Runs every due job; returns when the next one falls due.
    pub async fn run_due(
        &self,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Option<Millis>, ServiceError> {
        loop {
            let now = Millis::now();
            let claimed =
                jobs::claim_due(&self.store, &self.owner, now, now.plus(LEASE), BATCH).await?;
            if claimed.is_empty() {
                return Ok(jobs::next_due(self.store.pool()).await?);
            }
            for job in claimed {
                if *shutdown.borrow() {
                    // Unstarted jobs keep their lease until it expires; release them now.
                    jobs::retry_later(
                        self.store.pool(),
                        job.id,
                        &self.owner,
                        job.run_at,
                        "shutdown",
                    )
                    .await?;
                    continue;
                }
                self.run_one(&job).await?;
            }
            if *shutdown.borrow() {
                return Ok(None);
            }
        }
    }

    async fn run_one(&self, job: &Claimed) -> Result<(), ServiceError> {
        let started = Millis::now();
        let lateness = started.0.saturating_sub(job.run_at.0).max(0);
        self.metrics
            .job_lateness
            .observe(Duration::from_millis(u64::try_from(lateness).unwrap_or(0)).as_secs_f64());
        match self.execute(job, started).await {
            Ok(()) => Ok(()),
            Err(ServiceError::Store(e)) if !job_level(&e) => Err(ServiceError::Store(e)),
            Err(e) => {
                let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                let wait = backoff(attempts, Duration::from_secs(300));
                tracing::error!(job = job.id, kind = %job.kind, error = %e, retry_in = ?wait, "job failed; will retry");
                jobs::retry_later(
                    self.store.pool(),
                    job.id,
                    &self.owner,
                    Millis::now().plus(wait),
                    &e.to_string(),
                )
                .await?;
                Ok(())
            }
        }
    }

    async fn execute(&self, job: &Claimed, now: Millis) -> Result<(), ServiceError> {
        if job.kind == flow::RUN_KIND {
            // Runs between two transactions of its own (the step must not hold a lock).
            return flow::run_job(
                &self.service,
                &self.service.settings().actions,
                job,
                &self.owner,
            )
            .await;
        }
        // Calls to other systems happen before the transaction, so no lock waits on them.
        let external = match job.kind.as_str() {
            silence::CREATE_KIND | silence::EXPIRE_KIND => {
                match silence::prepare(
                    &self.service,
                    self.alertmanager.as_ref(),
                    &job.kind,
                    &job.payload,
                    job.attempts,
                )
                .await
                {
                    Ok(outcome) => Some(outcome),
                    Err(reason) => {
                        let wait = backoff(
                            u32::try_from(job.attempts).unwrap_or(u32::MAX),
                            Duration::from_secs(60),
                        );
                        tracing::warn!(job = job.id, kind = %job.kind, reason, retry_in = ?wait, "job will retry");
                        jobs::retry_later(
                            self.store.pool(),
                            job.id,
                            &self.owner,
                            Millis::now().plus(wait),
                            &reason,
                        )
                        .await?;
                        return Ok(());
                    }
                }
            }
            _ => None,
        };
        let mut tx = self.store.begin().await?;
        if !jobs::finish(&mut *tx, job.id, &self.owner).await? {
            tracing::warn!(
                job = job.id,
                "lost the lease on a job; another worker runs it"
            );
            tx.rollback().await?;
            return Ok(());
        }
        let paged = match job.kind.as_str() {
            engine::KIND => {
                engine::run(&self.service, &mut tx, &job.payload, job.run_at, now).await?
            }
            flow::EXPIRE_KIND => {
                flow::expire_job(&self.service, &mut tx, &job.payload, now).await?;
                None
            }
            flow::WATCHDOG_KIND => {
                flow::watchdog_job(&self.service, &mut tx, &job.payload, now).await?;
                None
            }
            PRUNE_KIND => {
                let removed = crate::store::pages::prune(&mut tx, now).await?;
                tracing::debug!(removed, "pruned duplicate guards and old outbox rows");
                jobs::enqueue(&mut *tx, &prune_job(now.plus(PRUNE_EVERY)), now).await?;
                None
            }
            ingest::DIGEST_KIND => {
                ingest::run_digest(&self.service, &mut tx, &job.payload, now).await?;
                None
            }
            silence::CREATE_KIND | silence::EXPIRE_KIND => {
                if let Some(outcome) = external {
                    silence::apply(&self.service, &mut tx, outcome, now).await?;
                }
                None
            }
            other => {
                tracing::error!(job = job.id, kind = other, "unknown job kind; dropped");
                None
            }
        };
        tx.commit().await?;
        self.outbox_wake.notify_one();
        if let Some(p) = paged {
            self.metrics
                .pages_sent
                .get_or_create(&LevelLabels { level: p.level })
                .inc_by(u64::try_from(p.people).unwrap_or(0));
        }
        Ok(())
    }
}

/// Whether a store error belongs to the job (worth retrying it alone) rather than
/// to the database as a whole (worth backing off the whole scheduler).
fn job_level(e: &crate::store::StoreError) -> bool {
    matches!(e, crate::store::StoreError::Corrupt(_))
}
