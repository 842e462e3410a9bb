//! Fresh databases for each back end, and the timers inserted straight into
//! Klaxon's `jobs` table while Klaxon is stopped.

use std::path::Path;

use anyhow::Context;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
    pub fn slug(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// `postgres://user@host:port` without any database path or query.
fn server_url(pg: &str) -> &str {
    let after_scheme = pg.find("://").map(|i| i + 3).unwrap_or(0);
    match pg[after_scheme..].find(['/', '?']) {
        Some(i) => &pg[..after_scheme + i],
        None => pg,
    }
}

/// The port of a `postgres://user@host:port…` URL.
pub fn port(pg: &str) -> Option<u16> {
    let server = server_url(pg);
    let host = &server[server.find("://")? + 3..];
    let host = host.rsplit('@').next()?;
    host.rsplit_once(':')?.1.parse().ok()
}

/// A database that did not exist before: a new SQLite file in `dir`, or a new
/// PostgreSQL database named after this run. Returns Klaxon's database URL.
pub async fn fresh(
    backend: Backend,
    dir: &Path,
    pg: Option<&str>,
    name: &str,
) -> anyhow::Result<String> {
    match backend {
        Backend::Sqlite => {
            let path = dir.join(format!("{name}.db"));
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
            }
            Ok(format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let server = server_url(pg.context("no PostgreSQL URL")?);
            let mut admin = AnyConnection::connect(&format!("{server}/postgres"))
                .await
                .with_context(|| format!("cannot connect to PostgreSQL at {server}"))?;
            admin
                .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                .await?;
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await?;
            admin.close().await?;
            Ok(format!("{server}/{name}"))
        }
    }
}

/// Drops the PostgreSQL databases this run created (SQLite files stay in the
/// run's directory in /tmp, next to Klaxon's logs).
pub async fn drop_postgres(pg: &str, names: &[String]) -> anyhow::Result<()> {
    let server = server_url(pg);
    let mut admin = AnyConnection::connect(&format!("{server}/postgres")).await?;
    for name in names {
        admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await?;
    }
    admin.close().await?;
    Ok(())
}

/// Drops the databases earlier runs left behind (an interrupted run cannot
/// drop its own): every `klaxon_bench_*` database on the server. Two
/// benchmarks must not run at once anyway (they share the machine's cores).
pub async fn drop_leftovers(pg: &str) -> anyhow::Result<Vec<String>> {
    let server = server_url(pg);
    let mut admin = AnyConnection::connect(&format!("{server}/postgres")).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'klaxon\\_bench\\_%'",
    )
    .fetch_all(&mut admin)
    .await?;
    admin.close().await?;
    drop_postgres(pg, &names).await?;
    Ok(names)
}

/// The id of an incident that does not exist: its escalation job finds no
/// incident and finishes without paging anybody.
pub const NO_INCIDENT: i64 = 999_999_999;

/// Inserts `run_at.len()` escalation jobs in one transaction, 1,000 rows a statement.
pub async fn insert_jobs(url: &str, run_at: &[i64], now_ms: i64) -> anyhow::Result<()> {
    let mut conn = AnyConnection::connect(url)
        .await
        .context("cannot open the database to insert jobs")?;
    let mut tx = conn.begin().await?;
    for chunk in run_at.chunks(1_000) {
        let mut sql = String::with_capacity(chunk.len() * 110 + 100);
        sql.push_str(
            "INSERT INTO jobs (kind, payload, incident_id, dedupe_key, run_at, created_at) VALUES ",
        );
        for (i, at) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('escalate', '{{\"incident\": {NO_INCIDENT}, \"step\": 0}}', NULL, NULL, {at}, {now_ms})"
            ));
        }
        (&mut *tx).execute(AssertSqlSafe(sql)).await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:54329"),
            "postgres://postgres@127.0.0.1:54329"
        );
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:54329/x?sslmode=disable"),
            "postgres://postgres@127.0.0.1:54329"
        );
        assert_eq!(port("postgres://postgres@127.0.0.1:54329/x"), Some(54329));
        assert_eq!(port("postgres://localhost/x"), None);
    }
}
