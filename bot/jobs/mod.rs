//! Durable jobs as types, and the lanes they run on.
//!
//! A job is a Rust type: a serde payload with a kind name, a lane, an optional
//! de-duplication key and the incident it belongs to ([`Job`]). It is enqueued
//! inside the caller's transaction ([`enqueue`]), so a state change and the work
//! it starts commit together, and it runs when it falls due, on its lane, through
//! the [`Registry`] the wiring builds once (the shape of crates.io's background
//! worker). This module knows no feature: escalation steps, action runs and
//! silences are jobs defined by the use cases and registered at wiring time.
//!
//! **Lanes** keep pages from waiting on the outside world. [`Lane::Paging`] runs
//! short jobs that only touch the database (pages, expiries, digests);
//! [`Lane::Actions`] runs approved actions (Docker, HTTP, commands);
//! [`Lane::Outside`] runs calls to other systems (Alertmanager). Each lane has its
//! own workers, concurrency and per-job timeout, so a hung Docker engine or a slow
//! Alertmanager holds a slot of its own lane and nothing else.
//!
//! - [`scheduler`]: the workers: claim due jobs of a lane, run them, retry them.

pub mod scheduler;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{Any, Executor};
use tokio::sync::Notify;

use crate::incident::IncidentRef;
use crate::store::jobs::{self as rows, NewJob};
use crate::store::{Store, StoreError, StoreResult, Tx};
use crate::time::Millis;

/// Where a job runs. Each lane has its own workers, concurrency and timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Pages and other short jobs that only touch the database.
    Paging,
    /// Approved actions: Docker, HTTP and command steps (seconds to minutes).
    Actions,
    /// Calls to other systems (Alertmanager's API).
    Outside,
}

impl Lane {
    pub const ALL: [Lane; crate::store::LANES] = [Lane::Paging, Lane::Actions, Lane::Outside];

    /// The `lane` column and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Paging => "paging",
            Lane::Actions => "actions",
            Lane::Outside => "outside",
        }
    }

    /// Jobs of this lane that run at once in one process.
    pub fn concurrency(self) -> usize {
        match self {
            Lane::Paging => 4,
            Lane::Actions => 8,
            Lane::Outside => 4,
        }
    }

    /// The longest one job of this lane may run before it is abandoned and
    /// retried. Action steps have their own, shorter timeouts; this is the net
    /// under them.
    pub fn timeout(self) -> Duration {
        match self {
            Lane::Paging => Duration::from_secs(30),
            Lane::Actions => Duration::from_secs(3_600),
            Lane::Outside => Duration::from_secs(30),
        }
    }

    /// How long a claimed job of this lane stays with its worker without a
    /// heartbeat (renewed every [`scheduler::RENEW_EVERY`] while it runs). A
    /// replica that dies mid-step leaves its pages for at most this long:
    /// short for paging; longer where a stalled database would otherwise let
    /// a second replica start an action that is still running.
    pub fn lease(self) -> Duration {
        match self {
            Lane::Paging => Duration::from_secs(2),
            Lane::Actions | Lane::Outside => Duration::from_secs(6),
        }
    }

    /// This lane's place in per-lane tables (`crate::store::Enqueued`).
    pub fn index(self) -> usize {
        match self {
            Lane::Paging => 0,
            Lane::Actions => 1,
            Lane::Outside => 2,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job did not finish. The scheduler retries it either way.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed; the job is tried again after a backoff.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job could not do its work now (an outside system failed); it is tried
    /// again after `after`, or after a backoff by attempts when `None`.
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Not a failure: the job cannot start yet (its target is busy) and asks to
    /// be run again after `after`.
    #[error("not yet: {reason}")]
    NotYet { reason: String, after: Duration },
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Store(StoreError::Database(e))
    }
}

/// A kind of durable job. Implement it on the payload type.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `kind` column: names the job in the table, the logs and the metrics.
    const KIND: &'static str;
    /// The lane it runs on.
    const LANE: Lane;
    /// What it runs with (the use cases' context).
    type Context: Clone + Send + Sync + 'static;

    /// Jobs with the same key are one job: a second enqueue does nothing.
    fn dedupe_key(&self) -> Option<String> {
        None
    }

    /// The incident the job belongs to (its jobs can be cancelled together).
    fn incident(&self) -> Option<IncidentRef> {
        None
    }

    /// Does the work. Effects that must happen exactly once are written in the
    /// transaction [`JobRun::finish`] opens and committed with
    /// [`JobRun::commit`], whose caller wakes the lanes and the outbox sender
    /// the transaction gave work (`crate::store::Enqueued`); returning `Ok`
    /// without that simply drops the job. The slot it held goes to the next
    /// due job of its lane.
    fn run(
        self,
        ctx: Self::Context,
        run: JobRun,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Enqueues `job` to run at `run_at`, in the caller's transaction, which
/// notes its lane: committing it wakes that lane (`Tx::commit`). `false` when a
/// job with the same dedupe key already waits.
pub async fn enqueue<J: Job>(
    tx: &mut Tx,
    job: &J,
    run_at: Millis,
    now: Millis,
) -> StoreResult<bool> {
    let payload = serde_json::to_string(job)
        .map_err(|e| StoreError::Corrupt(format!("job {}: {e}", J::KIND)))?;
    let added = rows::enqueue(
        &mut **tx,
        &NewJob {
            kind: J::KIND,
            lane: J::LANE.as_str(),
            payload,
            incident: job.incident(),
            dedupe_key: job.dedupe_key(),
            run_at,
        },
        now,
    )
    .await?;
    // A job that was already waiting (same dedupe key) is no news to its lane.
    if added {
        tx.enqueued_job(J::LANE.index(), run_at);
    }
    Ok(added)
}

/// Drops the waiting jobs of kind `J` of an incident.
pub async fn cancel_for_incident<'c, J: Job, E: Executor<'c, Database = Any>>(
    ex: E,
    incident: IncidentRef,
) -> StoreResult<u64> {
    rows::cancel_for_incident(ex, incident, J::KIND).await
}

/// Drops the waiting job that `job` would de-duplicate against, if any.
pub async fn cancel<'c, J: Job, E: Executor<'c, Database = Any>>(
    ex: E,
    job: &J,
) -> StoreResult<u64> {
    match job.dedupe_key() {
        Some(key) => rows::cancel(ex, &key).await,
        None => Ok(0),
    }
}

/// One run of a claimed job: what it needs to finish under its lease.
#[derive(Debug)]
pub struct JobRun {
    store: Store,
    id: i64,
    owner: Arc<str>,
    /// When the job was due.
    pub due: Millis,
    /// When this run started (by the clock).
    pub started: Millis,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// The incident the job belongs to.
    incident: Option<IncidentRef>,
    /// Set when the finishing transaction committed (nothing left to clean up).
    finished: Arc<AtomicBool>,
}

impl JobRun {
    /// Opens the transaction that finishes this job: its first statement deletes
    /// the job under this worker's lease. Write the job's effects in it and commit.
    /// `None` when the lease was lost (another worker runs the job): do nothing.
    ///
    /// A job of an incident locks the incident's row first, the store's one
    /// lock order (incident, then its jobs, then its outbox rows; see
    /// [`crate::store`]), so a step that falls due while the incident is
    /// resolved or acknowledged waits for it instead of deadlocking with it.
    pub async fn finish(&self) -> Result<Option<Tx>, StoreError> {
        let mut tx = self.store.begin().await?;
        if let Some(incident) = self.incident {
            crate::store::incidents::lock(&mut tx, self.store.backend(), incident).await?;
        }
        if rows::finish(&mut *tx, self.id, &self.owner).await? {
            Ok(Some(tx))
        } else {
            tracing::warn!(
                job = self.id,
                "lost the lease on a job; another worker runs it"
            );
            tx.rollback().await?;
            Ok(None)
        }
    }

    /// Commits the transaction [`JobRun::finish`] opened: the job and its
    /// effects are done together. Returns what it enqueued, to wake.
    pub async fn commit(&self, tx: Tx) -> Result<crate::store::Enqueued, StoreError> {
        let enqueued = tx.commit().await?;
        self.finished.store(true, Ordering::Release);
        Ok(enqueued)
    }

    /// The job's row id.
    pub fn id(&self) -> i64 {
        self.id
    }
}

type RunFn<C> = Arc<
    dyn Fn(C, String, JobRun) -> Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>
        + Send
        + Sync,
>;

struct Registered<C> {
    lane: Lane,
    run: RunFn<C>,
}

/// Every job kind this process runs, built once at wiring time.
pub struct Registry<C> {
    kinds: HashMap<&'static str, Registered<C>>,
}

impl<C> fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<_> = self.kinds.keys().collect();
        kinds.sort();
        f.debug_struct("Registry").field("kinds", &kinds).finish()
    }
}

impl<C: Clone + Send + Sync + 'static> Default for Registry<C> {
    fn default() -> Self {
        Registry {
            kinds: HashMap::new(),
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Registry<C> {
    /// Adds job type `J`. Registering two types with one kind is a bug: the second panics.
    pub fn register<J: Job<Context = C>>(&mut self) -> &mut Self {
        let run: RunFn<C> = Arc::new(|ctx: C, payload: String, run: JobRun| {
            Box::pin(async move {
                match serde_json::from_str::<J>(&payload) {
                    Ok(job) => job.run(ctx, run).await,
                    Err(e) => {
                        // A payload this version cannot read will never be readable: drop it.
                        tracing::error!(kind = J::KIND, error = %e, payload, "unreadable job payload; dropped");
                        Ok(())
                    }
                }
            })
        });
        let previous = self
            .kinds
            .insert(J::KIND, Registered { lane: J::LANE, run });
        assert!(previous.is_none(), "job kind {} registered twice", J::KIND);
        self
    }

    /// Every registered (lane, kind), for the metrics.
    pub fn lanes_and_kinds(&self) -> Vec<(&'static str, &'static str)> {
        let mut all: Vec<_> = self
            .kinds
            .iter()
            .map(|(kind, r)| (r.lane.as_str(), *kind))
            .collect();
        all.sort_unstable();
        all
    }

    /// The kinds of a lane (for metrics and tests).
    pub fn kinds_of(&self, lane: Lane) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .kinds
            .iter()
            .filter(|(_, r)| r.lane == lane)
            .map(|(k, _)| *k)
            .collect();
        kinds.sort_unstable();
        kinds
    }

    fn get(&self, kind: &str) -> Option<&Registered<C>> {
        self.kinds.get(kind)
    }
}

/// Wakes the lanes' workers when a commit gave them a job due before they
/// would look again by themselves.
///
/// Each lane publishes when it will next look at its jobs unasked
/// ([`Wake::sleeping_until`]), or that it is looking now ([`Wake::looking`]:
/// then any news wakes it, as it may have read before the commit). A job due
/// later than that is found when the lane looks; waking the lane for it would
/// cost a claim and a look at the next due job for nothing (a reminder or a
/// storm digest enqueued with every `/incident open` or folded notification).
#[derive(Debug, Clone, Default)]
pub struct Wake {
    lanes: Arc<[LaneWake; crate::store::LANES]>,
}

#[derive(Debug)]
struct LaneWake {
    notify: Notify,
    /// Epoch milliseconds (the scheduler's clock) of the lane's next look by
    /// itself; [`LOOKING`] while it is looking (or has not slept yet).
    looks_at: AtomicI64,
}

/// [`LaneWake::looks_at`] of a lane that any new job must wake.
const LOOKING: i64 = i64::MAX;

impl Default for LaneWake {
    fn default() -> Self {
        LaneWake {
            notify: Notify::new(),
            looks_at: AtomicI64::new(LOOKING),
        }
    }
}

impl Wake {
    /// After a commit: wakes each lane the transaction gave a job due before
    /// the lane's next look.
    pub fn after_commit(&self, enqueued: crate::store::Enqueued) {
        for lane in Lane::ALL {
            if let Some(due) = enqueued.soonest(lane.index()) {
                self.due(lane, due);
            }
        }
    }

    /// Wakes `lane` if a job of it is due at `due`, before its next look.
    pub(crate) fn due(&self, lane: Lane, due: Millis) {
        let w = self.lane(lane);
        let looks_at = w.looks_at.load(Ordering::SeqCst);
        if looks_at == LOOKING || due.0 < looks_at {
            w.notify.notify_one();
        }
    }

    /// The lane is about to read its jobs: any job enqueued from now on wakes it.
    fn looking(&self, lane: Lane) {
        self.lane(lane).looks_at.store(LOOKING, Ordering::SeqCst);
    }

    /// The lane has read its jobs and will look again at `at` unless woken.
    fn sleeping_until(&self, lane: Lane, at: Millis) {
        self.lane(lane).looks_at.store(at.0, Ordering::SeqCst);
    }

    fn notified(&self, lane: Lane) -> tokio::sync::futures::Notified<'_> {
        self.lane(lane).notify.notified()
    }

    fn lane(&self, lane: Lane) -> &LaneWake {
        &self.lanes[lane.index()]
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// Whether `lane` has been told to look (consumes the notice).
    fn told(wake: &Wake, lane: Lane) -> bool {
        wake.notified(lane).now_or_never().is_some()
    }

    #[test]
    fn a_job_due_before_the_lanes_next_look_wakes_it_and_a_later_one_does_not() {
        let wake = Wake::default();
        wake.sleeping_until(Lane::Paging, Millis(10_000));

        wake.due(Lane::Paging, Millis(70_000));
        assert!(!told(&wake, Lane::Paging), "a job due after the next look");
        wake.due(Lane::Paging, Millis(10_000));
        assert!(!told(&wake, Lane::Paging), "a job due at the next look");

        wake.due(Lane::Paging, Millis(9_999));
        assert!(told(&wake, Lane::Paging), "a job due before the next look");
        assert!(!told(&wake, Lane::Actions), "another lane hears nothing");
    }

    #[test]
    fn a_lane_reading_its_jobs_is_woken_by_any_job_so_none_slips_past_its_read() {
        let wake = Wake::default();
        wake.sleeping_until(Lane::Outside, Millis(10_000));
        wake.looking(Lane::Outside);
        // Committed after the lane's read began: the read may have missed it.
        wake.due(Lane::Outside, Millis(i64::MAX));
        assert!(told(&wake, Lane::Outside));
    }

    #[test]
    fn a_lane_that_never_slept_yet_is_woken_by_any_job() {
        let wake = Wake::default();
        wake.due(Lane::Actions, Millis(1));
        assert!(told(&wake, Lane::Actions));
    }
}
