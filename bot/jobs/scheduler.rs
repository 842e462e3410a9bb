//! The scheduler: one worker loop per lane, running jobs when they fall due.
//!
//! Each lane's loop sleeps until its earliest job is due — woken early when a
//! job due sooner is enqueued ([`Wake`]), when a running job frees the slot a
//! full lane waits for, or when the clock jumps — instead of polling on a
//! fixed cycle. It claims only as many due jobs as it has
//! free slots (so no claimed job waits behind a slow one), runs each as its own
//! task under the lane's timeout, and keeps their leases alive while they run
//! (a heartbeat every [`RENEW_EVERY`]). A replica that dies stops renewing, and
//! its jobs are taken over once their lease ([`Lane::lease`]: 2 s for paging)
//! runs out; the takeover is logged and counted
//! (`klaxon_jobs_taken_over_total{lane}`).
//!
//! A job that fails (or times out) is retried with exponential backoff. A
//! database that does not answer makes the lane back off, then try again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{JobError, JobRun, Lane, Registry, Wake};
use crate::store::jobs::{self as rows, Claimed};
use crate::store::{Store, StoreResult};
use crate::telemetry::{JobLabels, LaneLabels, Metrics};
use crate::time::{Clock, Millis, backoff};

/// The longest sleep with nothing due, when this process is the only one.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How often the paging lane looks for due jobs on a shared database (jobs
/// another replica enqueued, or left behind when it died).
pub const SHARED_PAGING_POLL: Duration = Duration::from_millis(500);
/// The same for the other lanes.
pub const SHARED_POLL: Duration = Duration::from_secs(2);
/// How often the leases of running jobs are renewed (a quarter of the
/// shortest [`Lane::lease`], so a slow database round trip does not lose one).
pub const RENEW_EVERY: Duration = Duration::from_millis(500);
/// How long shutdown waits for running jobs before leaving them to their leases.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The shortest wait between two claims that found nothing to run.
const MIN_PAUSE: Duration = Duration::from_millis(25);

/// Runs the registered jobs of every lane.
pub struct Scheduler<C> {
    registry: Arc<Registry<C>>,
    ctx: C,
    store: Store,
    clock: Clock,
    metrics: Arc<Metrics>,
    wake: Wake,
    owner: Arc<str>,
    /// Jobs this process runs now, with their lanes (never started twice,
    /// even if a lease lapsed).
    running: Mutex<HashMap<i64, Lane>>,
}

impl<C> std::fmt::Debug for Scheduler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("owner", &self.owner)
            .field("registry", &self.registry)
            .finish()
    }
}

impl<C: Clone + Send + Sync + 'static> Scheduler<C> {
    pub fn new(
        registry: Registry<C>,
        ctx: C,
        store: Store,
        clock: Clock,
        metrics: Arc<Metrics>,
        wake: Wake,
    ) -> Scheduler<C> {
        Scheduler {
            registry: Arc::new(registry),
            ctx,
            store,
            clock,
            metrics,
            wake,
            owner: format!("jobs-{}-{:08x}", std::process::id(), rand::random::<u32>()).into(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Runs every lane until `shutdown` turns true; running jobs get a grace
    /// period. The paging lane stops last: it goes on paging while the other
    /// lanes' jobs finish, so a shutdown never holds a page back for the grace.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let (stop_paging, paging_stopped) = watch::channel(false);
        let paging = tokio::spawn(self.clone().lane_loop(Lane::Paging, paging_stopped));
        let mut lanes = JoinSet::new();
        for lane in Lane::ALL.into_iter().filter(|l| *l != Lane::Paging) {
            lanes.spawn(self.clone().lane_loop(lane, shutdown.clone()));
        }
        // The heartbeat lives as long as any lane (it renews their jobs' leases).
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        while lanes.join_next().await.is_some() {}
        let _ = stop_paging.send(true);
        let _ = paging.await;
        heartbeat.abort();
        tracing::debug!("scheduler stopped");
    }

    /// The longest a lane sleeps: on SQLite this process is the only one
    /// (30 s, a safety net); on PostgreSQL replicas share the jobs, so the
    /// paging lane looks every [`SHARED_PAGING_POLL`] and the others every
    /// [`SHARED_POLL`].
    fn idle_cap(&self, lane: Lane) -> Duration {
        match (self.store.backend().is_shared(), lane) {
            (false, _) => MAX_IDLE,
            (true, Lane::Paging) => SHARED_PAGING_POLL,
            (true, _) => SHARED_POLL,
        }
    }

    /// The lanes with a job running in this process now.
    fn lanes_running(&self) -> BTreeSet<Lane> {
        self.running
            .lock()
            .map(|r| r.values().copied().collect())
            .unwrap_or_default()
    }

    /// Renews the leases of the jobs this process runs, every [`RENEW_EVERY`].
    async fn heartbeat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            for lane in self.lanes_running() {
                let until = self.clock.now().plus(lane.lease());
                if let Err(e) =
                    rows::renew(self.store.pool(), &self.owner, lane.as_str(), until).await
                {
                    tracing::warn!(lane = %lane, error = %e, "could not renew job leases");
                }
            }
        }
    }

    async fn lane_loop(self: Arc<Self>, lane: Lane, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(lane.concurrency()));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut jumps = self.clock.jumps();
        let mut failures = 0u32;
        // Whether to read the lane's jobs on this pass; whether the last read
        // left due jobs behind for want of a slot; when to read again unasked.
        let mut look = true;
        let mut full = false;
        let mut until = self.clock.now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if look {
                self.wake.looking(lane);
                let wait_until = self.look(lane, &slots, &mut tasks, &mut failures).await;
                full = wait_until.is_none();
                // Other replicas enqueue and claim jobs this one hears nothing
                // of: on a shared database each lane looks again soon, so a
                // replica that dies leaves its steps for at most a lease and a poll.
                let cap = self.clock.now().plus(self.idle_cap(lane));
                until = wait_until.map_or(cap, |u| u.min(cap));
            }
            self.wake.sleeping_until(lane, until);
            // A job that ends frees a slot: news only to a lane that left due
            // jobs waiting for one. (A job retried sooner than `until` wakes
            // the lane itself: `settle`.)
            look = tokio::select! {
                _ = self.wake.notified(lane) => true,
                _ = self.clock.sleep_until(until) => true,
                _ = jumps.changed() => true,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => full,
                _ = shutdown.changed() => true,
            };
            // Collect every job that ended meanwhile, so the next claim fills all free slots at once.
            while tasks.try_join_next().is_some() {
                look |= full;
            }
        }
        if !tasks.is_empty() {
            tracing::info!(lane = %lane, running = tasks.len(), "waiting for running jobs");
            let drained = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
                tracing::warn!(lane = %lane, "jobs still running at shutdown; their leases will expire and another start retries them");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
        }
    }

    /// One look at the lane's jobs: starts the due ones its free slots take.
    /// Returns when to look again (`None`: the lane is full; when a slot
    /// frees up); a database that does not answer is tried again with backoff.
    async fn look(
        self: &Arc<Self>,
        lane: Lane,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
        failures: &mut u32,
    ) -> Option<Millis> {
        let free = slots.available_permits();
        if free == 0 {
            return None;
        }
        match self.claim_and_start(lane, free, slots, tasks).await {
            Ok(next) => {
                *failures = 0;
                self.metrics
                    .scheduler_last_run
                    .set(self.clock.now().0 as f64 / 1000.0);
                next
            }
            Err(e) => {
                *failures = failures.saturating_add(1);
                let wait = backoff(*failures, MAX_IDLE);
                tracing::warn!(lane = %lane, error = %e, retry_in = ?wait, "scheduler: database unavailable");
                Some(self.clock.now().plus(wait))
            }
        }
    }

    /// Claims up to `free` due jobs of `lane` and starts them. Returns when the
    /// lane should look again (`None`: when a slot frees up).
    async fn claim_and_start(
        self: &Arc<Self>,
        lane: Lane,
        free: usize,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) -> StoreResult<Option<Millis>> {
        let now = self.clock.now();
        let claimed = rows::claim_due(
            &self.store,
            lane.as_str(),
            &self.owner,
            now,
            now.plus(lane.lease()),
            i64::try_from(free).unwrap_or(1),
        )
        .await?;
        let mut started = 0;
        for job in claimed {
            if let Some(previous) = &job.taken_over_from
                && previous.as_str() != &*self.owner
            {
                tracing::warn!(
                    lane = %lane,
                    job = job.id,
                    kind = %job.kind,
                    late_ms = now.since(job.run_at).as_millis() as u64,
                    previous_worker = %previous,
                    "took over a job whose lease ran out before it finished (its replica stopped or stalled)"
                );
                self.metrics
                    .jobs_taken_over
                    .get_or_create(&LaneLabels {
                        lane: lane.as_str().into(),
                    })
                    .inc();
            }
            let fresh = self
                .running
                .lock()
                .is_ok_and(|mut r| r.insert(job.id, lane).is_none());
            if !fresh {
                continue; // Already running here: its lease lapsed and came back to us.
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                self.forget(job.id);
                rows::retry_later(
                    self.store.pool(),
                    job.id,
                    &self.owner,
                    job.run_at,
                    "no free slot",
                )
                .await?;
                continue;
            };
            started += 1;
            let this = self.clone();
            tasks.spawn(async move {
                this.run_one(lane, job).await;
                drop(permit);
            });
        }
        if started == free {
            return Ok(None);
        }
        let next = rows::next_due(self.store.pool(), lane.as_str(), now).await?;
        let floor = self.clock.now().plus(MIN_PAUSE);
        Ok(Some(
            next.map_or(self.clock.now().plus(MAX_IDLE), |n| n.max(floor)),
        ))
    }

    fn forget(&self, id: i64) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
    }

    async fn run_one(&self, lane: Lane, job: Claimed) {
        let started = self.clock.now();
        let kind_labels = JobLabels {
            lane: lane.as_str().into(),
            kind: job.kind.clone(),
        };
        let lateness = started.since(job.run_at);
        self.metrics
            .job_lateness
            .get_or_create(&kind_labels)
            .observe(lateness.as_secs_f64());
        let lane_labels = LaneLabels {
            lane: lane.as_str().into(),
        };
        self.metrics.jobs_running.get_or_create(&lane_labels).inc();
        let finished = Arc::new(AtomicBool::new(false));
        let outcome = match self.registry.get(&job.kind) {
            None => {
                tracing::error!(job = job.id, kind = %job.kind, "no job type of this kind is registered; dropped");
                Ok(())
            }
            Some(registered) => {
                let run = JobRun {
                    store: self.store.clone(),
                    id: job.id,
                    incident: job.incident,
                    owner: self.owner.clone(),
                    due: job.run_at,
                    started,
                    attempts: u32::try_from(job.attempts).unwrap_or(u32::MAX),
                    finished: finished.clone(),
                };
                let future = (registered.run)(self.ctx.clone(), job.payload.clone(), run);
                match tokio::time::timeout(lane.timeout(), future).await {
                    Ok(result) => result,
                    Err(_) => {
                        self.metrics
                            .jobs_timed_out
                            .get_or_create(&kind_labels)
                            .inc();
                        Err(JobError::Retry {
                            reason: format!("timed out after {:?}", lane.timeout()),
                            after: None,
                        })
                    }
                }
            }
        };
        self.metrics.jobs_running.get_or_create(&lane_labels).dec();
        let committed = finished.load(Ordering::Acquire);
        if !(committed && outcome.is_ok())
            && let Err(e) = self.settle(lane, &job, outcome).await
        {
            tracing::warn!(job = job.id, kind = %job.kind, error = %e, "could not record a job's outcome; its lease will expire and it runs again");
        }
        self.forget(job.id);
    }

    /// Finishes a job that returned `Ok` without finishing itself, or releases a
    /// failed one for a later attempt.
    async fn settle(
        &self,
        lane: Lane,
        job: &Claimed,
        outcome: Result<(), JobError>,
    ) -> StoreResult<()> {
        let retry = |after: Duration, reason: String| async move {
            let at = self.clock.now().plus(after);
            rows::retry_later(self.store.pool(), job.id, &self.owner, at, &reason).await?;
            self.wake.due(lane, at);
            Ok(())
        };
        match outcome {
            Ok(()) => {
                // A job that returned without committing its finish (nothing to
                // do) is dropped here.
                rows::finish(self.store.pool(), job.id, &self.owner).await?;
                Ok(())
            }
            Err(JobError::NotYet { reason, after }) => {
                tracing::debug!(job = job.id, kind = %job.kind, reason, "job deferred");
                retry(after, reason).await
            }
            Err(e) => {
                let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                let wait = match &e {
                    JobError::Retry {
                        after: Some(after), ..
                    } => *after,
                    _ => backoff(attempts, Duration::from_secs(300)),
                };
                self.metrics
                    .job_failures
                    .get_or_create(&JobLabels {
                        lane: self
                            .registry
                            .get(&job.kind)
                            .map_or("unknown", |r| r.lane.as_str())
                            .into(),
                        kind: job.kind.clone(),
                    })
                    .inc();
                tracing::warn!(job = job.id, kind = %job.kind, attempts, error = %e, retry_in = ?wait, "job failed; will retry");
                retry(wait, e.to_string()).await
            }
        }
    }
}
