//! A write transaction that remembers what work it enqueued.
//!
//! The job lanes and the outbox sender sleep until told that work may wait
//! (`crate::jobs::Wake`, the outbox's `Notify`). Telling every one of them after
//! every commit cost each lane two statements per commit (a claim and a look at
//! its next due job), most of them for nothing: on SQLite, where each statement
//! is a hand-off to the database's own thread, that was a third of the
//! statements of an `/incident open` that starts no job at all.
//!
//! So the transaction notes, as jobs and messages are enqueued in it, which
//! lanes and whether the outbox gained work ([`Enqueued`]), and
//! [`Tx::commit`] hands that note to whoever commits, to wake exactly those.
//! The note cannot go stale: it is read only once the rows are committed, so a
//! worker woken by it always finds them (a worker that looked before the commit
//! is woken again by it).

use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection};

/// What a committed transaction enqueued: the workers to wake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// A bit per job lane that gained a job (`crate::jobs::Lane::bit`).
    lanes: u8,
    /// Whether the outbox gained a message.
    outbox: bool,
}

impl Enqueued {
    /// The bits of the job lanes that gained a job.
    pub fn lanes(self) -> u8 {
        self.lanes
    }

    /// Whether the outbox gained a message.
    pub fn outbox(self) -> bool {
        self.outbox
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

    /// Notes a job enqueued on the lane with bit `lane_bit`.
    pub fn enqueued_job(&mut self, lane_bit: u8) {
        self.enqueued.lanes |= lane_bit;
    }

    /// Notes a message enqueued in the outbox.
    pub fn enqueued_message(&mut self) {
        self.enqueued.outbox = true;
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
