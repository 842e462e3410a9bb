//! A write transaction that remembers what work it enqueued.
//!
//! The job lanes and the outbox sender sleep until told that work may wait
//! (`crate::jobs::Wake`, the outbox's `Notify`). Telling every one of them after
//! every commit cost each lane two statements per commit (a claim and a look at
//! its next due job), most of them for nothing: on SQLite, where each statement
//! is a hand-off to the database's own thread, that was a third of the
//! statements of an `/incident open` that starts no job at all.
//!
//! So the transaction notes, as jobs and messages are enqueued in it, the
//! soonest run time it gave each lane and whether the outbox gained work
//! ([`Enqueued`]), and [`Tx::commit`] hands that note to whoever commits, to
//! wake exactly those (a lane only when the job is due before it would look
//! again anyway: a reminder due in an hour wakes nobody now).
//! The note cannot go stale: it is read only once the rows are committed, so a
//! worker woken by it always finds them (a worker that looked before the commit
//! is woken again by it).

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection};

use crate::time::Millis;

/// How many job lanes there are (`crate::jobs::Lane`, which checks it).
pub const LANES: usize = 3;

/// What a committed transaction enqueued: the workers to wake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Per job lane (`crate::jobs::Lane::index`), the soonest run time of
    /// the jobs the transaction added to it.
    soonest: [Option<Millis>; LANES],
    /// Whether the outbox gained a message.
    outbox: bool,
    /// Whether one of those messages is urgent (a page).
    urgent: bool,
}

impl Enqueued {
    /// The soonest run time of the jobs added to the lane with this index;
    /// `None` when the lane gained none (or the index names no lane).
    pub fn soonest(self, lane_index: usize) -> Option<Millis> {
        self.soonest.get(lane_index).copied().flatten()
    }

    /// Whether the outbox gained a message.
    pub fn outbox(self) -> bool {
        self.outbox
    }

    /// Whether one of the outbox's new messages is a page, which must not
    /// wait for the sender's pass through a backlog to end.
    pub fn urgent(self) -> bool {
        self.urgent
    }
}

/// A transaction on either back end. It dereferences to the connection, so
/// `&mut *tx` is an executor, as with sqlx's own transaction.
#[derive(Debug)]
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    enqueued: Enqueued,
}

impl Tx {
    pub(super) fn new(inner: sqlx::Transaction<'static, Any>) -> Tx {
        Tx {
            inner,
            enqueued: Enqueued::default(),
        }
    }

    /// Notes a job added to the lane with index `lane_index`
    /// (`crate::jobs::Lane::index`, below [`LANES`]), due at `run_at`.
    pub fn enqueued_job(&mut self, lane_index: usize, run_at: Millis) {
        if let Some(soonest) = self.enqueued.soonest.get_mut(lane_index) {
            *soonest = Some(soonest.map_or(run_at, |s| s.min(run_at)));
        }
    }

    /// Notes a message enqueued in the outbox; `urgent` for a page.
    pub fn enqueued_message(&mut self, urgent: bool) {
        self.enqueued.outbox = true;
        self.enqueued.urgent |= urgent;
    }

    /// Commits; returns what it enqueued, for the caller to wake.
    pub async fn commit(self) -> Result<Enqueued, sqlx::Error> {
        self.inner.commit().await?;
        Ok(self.enqueued)
    }

    /// Rolls back: nothing it enqueued exists.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
