//! The job scheduler on a real SQLite database, where a lane with nothing due
//! sleeps up to 30 s: a full lane starts the next due job as soon as a slot
//! frees, and a job due now wakes a lane that will not look again for
//! seconds, while a job due in an hour waits. A lane that missed either would
//! sit out its sleep, longer than these tests wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use klaxon::jobs::scheduler::Scheduler;
use klaxon::jobs::{self, Job, JobError, JobRun, Lane, Registry, Wake};
use klaxon::store::Store;
use klaxon::telemetry::Metrics;
use klaxon::time::Clock;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::support::{TestDb, wait_until};

const WAIT: Duration = Duration::from_secs(10);
/// Well within the outside lane's 6 s lease, its next look by itself after
/// running a job; a woken lane runs a due job in milliseconds.
const WOKEN: Duration = Duration::from_secs(3);

/// What the test jobs report to and wait on.
#[derive(Clone)]
struct Gate {
    started: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    /// A job holds its slot until it takes a permit.
    open: Arc<Semaphore>,
}

impl Gate {
    fn closed() -> Gate {
        Gate {
            started: Arc::default(),
            done: Arc::default(),
            open: Arc::new(Semaphore::new(0)),
        }
    }
    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits up to `within` until `holds` says yes of the gate.
    async fn wait(&self, within: Duration, what: &str, holds: fn(&Gate) -> bool) {
        wait_until(within, what, || {
            let gate = self.clone();
            async move { holds(&gate) }
        })
        .await;
    }
}

/// A job on the outside lane (4 slots) that runs until the gate lets it end.
#[derive(Serialize, Deserialize)]
struct Gated {
    n: u32,
}

impl Job for Gated {
    const KIND: &'static str = "test_gated";
    const LANE: Lane = Lane::Outside;
    type Context = Gate;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("test_gated:{}", self.n))
    }

    async fn run(self, gate: Gate, _run: JobRun) -> Result<(), JobError> {
        gate.started.fetch_add(1, Ordering::SeqCst);
        if let Ok(permit) = gate.open.acquire().await {
            permit.forget();
        }
        gate.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Running {
    store: Store,
    clock: Clock,
    wake: Wake,
    gate: Gate,
    stop: watch::Sender<bool>,
}

impl Running {
    async fn start() -> (Running, TestDb) {
        let db = TestDb::sqlite();
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let clock = Clock::system();
        let wake = Wake::default();
        let gate = Gate::closed();
        let mut registry = Registry::default();
        registry.register::<Gated>();
        let scheduler = Arc::new(Scheduler::new(
            registry,
            gate.clone(),
            store.clone(),
            clock.clone(),
            Arc::new(Metrics::new()),
            wake.clone(),
        ));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(scheduler.run(stopped));
        let running = Running {
            store,
            clock,
            wake,
            gate,
            stop,
        };
        (running, db)
    }

    /// Enqueues jobs `ns`, due `after` from now, in one transaction, and
    /// wakes as a commit in Klaxon does.
    async fn enqueue(&self, ns: std::ops::Range<u32>, after: Duration) {
        let now = self.clock.now();
        let mut tx = self.store.begin().await.expect("begin");
        for n in ns {
            jobs::enqueue(&mut tx, &Gated { n }, now.plus(after), now)
                .await
                .expect("enqueue");
        }
        let enqueued = tx.commit().await.expect("commit");
        self.wake.after_commit(enqueued);
    }
}

#[tokio::test]
async fn due_jobs_beyond_a_lanes_slots_start_as_soon_as_running_ones_end() {
    let (k, _db) = Running::start().await;
    k.enqueue(0..6, Duration::ZERO).await;
    let gate = &k.gate;
    gate.wait(WAIT, "four jobs running", |g| g.started() == 4)
        .await;
    assert_eq!(gate.done(), 0);

    gate.open.add_permits(1);
    gate.wait(WAIT, "a fifth job in the slot the first freed", |g| {
        g.done() == 1 && g.started() == 5
    })
    .await;
    gate.open.add_permits(5);
    gate.wait(WAIT, "all six jobs done", |g| g.done() == 6)
        .await;
    let _ = k.stop.send(true);
}

#[tokio::test]
async fn a_job_due_now_wakes_a_lane_whose_next_look_is_seconds_away() {
    let (k, _db) = Running::start().await;
    k.enqueue(100..101, Duration::from_secs(3_600)).await;
    k.gate.open.add_permits(2);
    k.enqueue(0..1, Duration::ZERO).await;
    let gate = &k.gate;
    gate.wait(WAIT, "the first job done", |g| g.done() == 1)
        .await;
    // The lane read its jobs while the first one held a lease (6 s on this
    // lane), so it next looks by itself when that lease would run out; the
    // job's end is no reason to look (the lane was not full). Only the wake
    // of the next job due now runs it within `WOKEN`.
    k.enqueue(1..2, Duration::ZERO).await;
    gate.wait(WOKEN, "the second job done", |g| g.done() == 2)
        .await;
    assert_eq!(gate.started(), 2, "the job an hour away did not run");
    let _ = k.stop.send(true);
}
