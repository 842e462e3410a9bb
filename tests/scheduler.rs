//! The job scheduler on a real SQLite database, where a lane with nothing due
//! sleeps up to 30 s: a full lane starts the next due job as soon as a slot
//! frees (a lane that missed it would sit out its sleep; the test waits 10 s),
//! and jobs due now run beside one due in an hour, which does not run. (When a
//! commit wakes a lane is `klaxon::jobs::Wake`'s rule, tested beside it.)

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
    let gate = k.gate.clone();
    wait_until(WAIT, "four jobs running", || {
        let g = gate.clone();
        async move { g.started() == 4 }
    })
    .await;
    assert_eq!(gate.done(), 0);

    gate.open.add_permits(1);
    wait_until(WAIT, "a fifth job in the slot the first freed", || {
        let g = gate.clone();
        async move { g.done() == 1 && g.started() == 5 }
    })
    .await;
    gate.open.add_permits(5);
    wait_until(WAIT, "all six jobs done", || {
        let g = gate.clone();
        async move { g.done() == 6 }
    })
    .await;
    let _ = k.stop.send(true);
}

#[tokio::test]
async fn jobs_due_now_run_beside_a_job_due_in_an_hour_which_waits() {
    let (k, _db) = Running::start().await;
    k.enqueue(100..101, Duration::from_secs(3_600)).await;
    k.gate.open.add_permits(2);
    k.enqueue(0..1, Duration::ZERO).await;
    let gate = k.gate.clone();
    wait_until(WAIT, "the first job done", || {
        let g = gate.clone();
        async move { g.done() == 1 }
    })
    .await;
    // The lane was not full, so that job's end was no reason to look again:
    // the next job due now is the lane's news.
    k.enqueue(1..2, Duration::ZERO).await;
    wait_until(WAIT, "the second job done", || {
        let g = gate.clone();
        async move { g.done() == 2 }
    })
    .await;
    assert_eq!(gate.started(), 2, "the job an hour away did not run");
    let _ = k.stop.send(true);
}
