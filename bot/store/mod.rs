//! The database: one code base for SQLite (the embedded default) and PostgreSQL.
//!
//! Everything goes through sqlx's `Any` driver with `$1` placeholders, which
//! both back ends accept; instants are integer epoch milliseconds. Where the two
//! differ (claims with `SKIP LOCKED`, pragmas) the code asks [`Store::backend`].
//!
//! Write transactions start with a write statement. On SQLite this takes the
//! write lock at once (waiting on the busy timeout) instead of failing later
//! when a read transaction tries to upgrade.
//!
//! One lock order, everywhere (PostgreSQL takes row locks; two transactions
//! that take the same rows in opposite orders deadlock):
//!
//! 1. alert rows (`alert_groups`, `alerts`) — only the alert intake takes
//!    them, before the incident they belong to;
//! 2. the incident's row (`UPDATE incidents`, or [`incidents::lock`] when
//!    the transaction writes elsewhere first);
//! 3. its jobs (a job's finishing transaction locks its incident first:
//!    [`crate::jobs::JobRun::finish`]);
//! 4. its action requests and runs;
//! 5. its outbox rows (the sender records a root's `ts` on the incident
//!    before marking the row sent).
//!
//! Claims (`jobs`, `outbox`) and lease renewals are single statements that
//! lock only their own rows and hold no other lock.

pub mod actions;
pub mod alerts;
pub mod changes;
pub mod followups;
pub mod heartbeats;
pub mod incidents;
pub mod jobs;
pub mod maintenance;
pub mod outbox;
pub mod pacing;
pub mod pages;
pub mod readcache;
pub mod roles;
pub mod status;
mod tx;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Connection};

pub use tx::{Enqueued, LANES, Tx};

/// Which database the URL named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Whether several Klaxon processes may share this database (PostgreSQL):
    /// then each must look for work the others enqueued or left behind,
    /// since nothing in the process tells it. SQLite has one process.
    pub fn is_shared(self) -> bool {
        self == Backend::Postgres
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A pool of connections and the knowledge of which back end it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: the task that checkpoints the write-ahead log beside the writer.
    checkpointer: Option<Arc<tokio::task::AbortHandle>>,
}

/// How often the SQLite write-ahead log is copied back into the database file.
///
/// SQLite does this itself every 1,000 pages, inside whichever commit crosses
/// the mark, and that commit then waits for the copy and its fsync: hundreds of
/// milliseconds on a slow disk, for a write that otherwise takes a few (bench
/// run 6: `/incident open` p99 300–480 ms in some runs, on HTTP and on the
/// socket alike). A connection of its own does it instead, in `PASSIVE` mode,
/// which never waits for nor blocks the writer.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Which database a URL names, for the log, without its password:
/// `SQLite file klaxon.db`, `PostgreSQL at db.internal:5432/klaxon`.
pub fn describe(url: &str) -> String {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        return format!("SQLite file {path}");
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("PostgreSQL at {rest}")
}

/// How long a request waits for a PostgreSQL connection before failing.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Connects (creating the SQLite file if it is missing). Does not migrate.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Self::open(url, true).await
    }

    /// Like [`Store::connect`], but a PostgreSQL that does not answer yet is
    /// not an error: the pool connects when first used (Klaxon then waits for
    /// the database instead of exiting). A SQLite file is opened at once.
    pub async fn connect_lazily(url: &str) -> StoreResult<Store> {
        Self::open(url, false).await
    }

    async fn open(url: &str, eager: bool) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url_with_create(url))
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));

        let pool_options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .min_connections(0);
        let checkpoint_options = options.clone();
        let pool = match backend {
            Backend::Sqlite => {
                // WAL lets readers run beside the one writer; it is a property of the
                // file, so one connection sets it before the pool opens others.
                let mut first = sqlx::AnyConnection::connect_with(&options).await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut first)
                    .await?;
                first.close().await?;
                // SQLite has one writer. With one connection, a writer never waits in
                // SQLite's busy handler, whose sleeps (1 ms … 100 ms) made the tail
                // latency of writes under load; every statement here is short.
                // sqlx pings an idle connection before lending it; a SQLite
                // file has no other end that could have hung up, and the ping
                // is one more round trip to the connection's thread on every
                // transaction and every statement outside one.
                pool_options
                    .max_connections(1)
                    .test_before_acquire(false)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout = 10000")
                                .execute(&mut *conn)
                                .await?;
                            // The checkpointer below copies the log back.
                            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            // A PostgreSQL that does not answer fails a request within 2 s, so a
            // slash command still gets Klaxon's own answer inside Slack's 3 s.
            Backend::Postgres if eager => {
                pool_options
                    .max_connections(16)
                    .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => pool_options
                .max_connections(16)
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .connect_lazy_with(options),
        };
        let checkpointer = (backend == Backend::Sqlite && !url.contains(":memory:"))
            .then(|| Arc::new(tokio::spawn(checkpoint(checkpoint_options)).abort_handle()));
        Ok(Store {
            pool,
            backend,
            checkpointer,
        })
    }

    /// Applies the migrations of this back end that have not run yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Answers whether the database responds (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx::new(self.pool.begin().await?))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.abort();
        }
        self.pool.close().await;
    }
}

/// Copies SQLite's write-ahead log back into the database file every
/// [`CHECKPOINT_EVERY`], on a connection of its own (see there), until aborted.
/// A checkpoint that fails is tried again at the next turn; the next one
/// that runs copies everything.
async fn checkpoint(options: AnyConnectOptions) {
    let mut conn: Option<sqlx::AnyConnection> = None;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if conn.is_none() {
            conn = sqlx::AnyConnection::connect_with(&options).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *c)
            .await
        {
            tracing::debug!(error = %e, "a SQLite checkpoint failed; trying again");
            conn = None;
        }
    }
}

/// `sqlite://klaxon.db` → `sqlite://klaxon.db?mode=rwc`, so a first start creates the file.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Reads a required column, naming it when the row does not fit.
pub(crate) fn col<T>(row: &sqlx::any::AnyRow, name: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    use sqlx::Row;
    row.try_get::<T, _>(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_is_described_without_its_password() {
        assert_eq!(
            super::describe("sqlite://klaxon.db"),
            "SQLite file klaxon.db"
        );
        assert_eq!(
            super::describe("postgres://klaxon:s3cr3t@db.internal:5432/klaxon?sslmode=require"),
            "PostgreSQL at db.internal:5432/klaxon"
        );
    }

    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_given() {
        assert_eq!(
            sqlite_url_with_create("sqlite://k.db"),
            "sqlite://k.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://k.db?mode=ro"),
            "sqlite://k.db?mode=ro"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://k.db?cache=shared"),
            "sqlite://k.db?cache=shared&mode=rwc"
        );
    }
}
