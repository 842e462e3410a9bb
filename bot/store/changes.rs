//! Knowing when a copy of stored data went stale, on either back end.
//!
//! `/incident list` answers from a copy of what it last read
//! ([`super::readcache`]) while nothing changed (the status page too, which
//! may lag behind other replicas by its own `max_age`: [`Changes::count`]).
//! On SQLite this process is the only writer, so counting its own commits
//! says exactly when something did. PostgreSQL replicas write beside each other: there a trigger on
//! `incidents` sends a notification on channel [`CHANNEL`] with every
//! transaction that changes a row of it (PostgreSQL delivers it at commit,
//! once per transaction; migration `0020_incident_changes.sql`), and [`listen`]
//! counts what this replica hears. While it hears nothing for sure (not
//! connected yet, or the connection was lost and notifications may have gone
//! by), [`Changes::version`] is `None` and the copies are not used.
//!
//! What another replica committed shows here once PostgreSQL delivered its
//! notification (`LISTEN`/`NOTIFY`, a millisecond or so on one network); a
//! replica's own commits show at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::time::backoff;

/// The notification channel the `incidents` trigger notifies on.
pub const CHANNEL: &str = "klaxon_incidents";

/// The longest wait before listening again after the connection failed.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A count that moves whenever stored data may have changed. See the module.
#[derive(Debug)]
pub struct Changes {
    count: AtomicU64,
    /// Every change is counted: SQLite, or PostgreSQL while [`listen`] is
    /// connected and listening.
    complete: AtomicBool,
}

impl Changes {
    /// For SQLite: this process makes every change, and counts it.
    pub fn local() -> Changes {
        Changes {
            count: AtomicU64::new(0),
            complete: AtomicBool::new(true),
        }
    }

    /// For PostgreSQL: other replicas' changes count once [`listen`] hears them.
    pub fn shared() -> Changes {
        Changes {
            count: AtomicU64::new(0),
            complete: AtomicBool::new(false),
        }
    }

    /// Counts a change this process committed.
    pub fn wrote(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// The count now, whether or not other replicas' changes are heard
    /// (for copies that may lag behind other replicas anyway).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// The count now, if every change is counted; `None` while another
    /// replica's change could go unheard. Load it before reading the data.
    pub fn version(&self) -> Option<u64> {
        let count = self.count.load(Ordering::Acquire);
        self.complete.load(Ordering::Acquire).then_some(count)
    }

    fn hearing(&self, complete: bool) {
        self.complete.store(complete, Ordering::Release);
        self.wrote();
    }
}

/// What [`listen`] reports: 1 while listening; each notification heard.
#[derive(Debug, Clone)]
pub struct ListenMetrics {
    pub listening: Gauge,
    pub heard: Counter,
}

/// Listens on [`CHANNEL`] and counts each notification in `changes`, until
/// `stop` turns true. Connects again (with a backoff up to 30 s) when the
/// connection fails; meanwhile `changes` is not complete.
pub async fn listen(
    url: SecretString,
    changes: Arc<Changes>,
    metrics: ListenMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let heard = async {
            let mut listener = PgListener::connect(url.expose_secret()).await?;
            listener.listen(CHANNEL).await?;
            // Heard from here on; what changed before is not known: a new count.
            changes.hearing(true);
            metrics.listening.set(1);
            failures = 0;
            tracing::debug!(channel = CHANNEL, "listening for other replicas' changes");
            // `None`: the connection was lost (notifications may have gone by).
            while listener.try_recv().await?.is_some() {
                changes.wrote();
                metrics.heard.inc();
            }
            Ok::<(), sqlx::Error>(())
        };
        let outcome = tokio::select! {
            outcome = heard => outcome,
            _ = stop.changed() => return,
        };
        changes.hearing(false);
        metrics.listening.set(0);
        failures = failures.saturating_add(1);
        let wait = backoff(failures, MAX_RETRY);
        match outcome {
            Ok(()) => {
                tracing::warn!(retry_in = ?wait, "lost the connection that hears other replicas' changes; /incident list reads the database each time until it is back")
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "cannot listen for other replicas' changes; /incident list reads the database each time until it can")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
