//! Run 7: the web pages at 10,000 incidents. With Klaxon stopped, 10,000
//! incidents spread over the last 120 days go straight into a fresh
//! database (severities P0–P3, most acknowledged and resolved, a third on a
//! status-page component (with its span), one in ten with public updates, two pages and
//! five timeline events each, a handful still open). Klaxon starts and each
//! page is fetched one request at a time (a person's browser, not a load
//! test): bytes, median and p99 time to the whole body, beside `/healthz`
//! on the same server (which touches neither the database nor a template).

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

/// How many incidents the run seeds.
pub const INCIDENTS: i64 = 10_000;

/// The components `KLAXON_CONFIG` lists (`[[status.components]]`).
pub const COMPONENTS: [&str; 3] = ["checkout", "search", "login"];

/// Inserts [`INCIDENTS`] incidents with their components, public updates,
/// pages and timeline events, 500 rows a statement, in one transaction.
pub async fn seed(url: &str, now_ms: i64) -> anyhow::Result<()> {
    let mut conn = AnyConnection::connect(url)
        .await
        .context("cannot open the database to seed incidents")?;
    let mut tx = conn.begin().await?;
    let span = 120 * 24 * 3_600 * 1_000_i64;
    let minute = 60_000_i64;
    let severities = ["P0", "P1", "P1", "P2", "P2", "P2", "P3", "P3"];
    let sources = ["slack", "alertmanager", "alertmanager", "grafana"];
    let ids: Vec<i64> = (1..=INCIDENTS).collect();
    for chunk in ids.chunks(500) {
        let mut incidents = String::from(
            "INSERT INTO incidents (id, title, severity, state, channel, source, opened_by, opened_at, \
             acknowledged_at, acknowledged_by, resolved_at, resolved_by, updated_at) VALUES ",
        );
        let mut components =
            String::from("INSERT INTO incident_components (incident_id, component) VALUES ");
        let mut spans = String::from(
            "INSERT INTO component_spans (incident_id, component, status, from_at, to_at) VALUES ",
        );
        let mut updates = String::from(
            "INSERT INTO public_updates (incident_id, at, status, body, posted_by) VALUES ",
        );
        let mut pages =
            String::from("INSERT INTO pages (incident_id, step, level_name, user_id, at) VALUES ");
        let mut events = String::from(
            "INSERT INTO timeline_events (incident_id, at, kind, actor, text) VALUES ",
        );
        let (mut any_component, mut any_update) = (false, false);
        for (k, id) in chunk.iter().enumerate() {
            let sep = if k > 0 { "," } else { "" };
            let opened = now_ms - span + id * span / INCIDENTS;
            let open = *id > INCIDENTS - 4;
            let ack = opened + (1 + id % 37) * minute;
            let resolved = ack + (10 + id % 240) * minute;
            let severity = severities[(*id as usize * 7) % severities.len()];
            let source = sources[*id as usize % sources.len()];
            let user = format!("U0ONCALL{}", id % 6);
            incidents.push_str(&format!(
                "{sep}({id}, 'Checkout API returning 5xx on node {n} (bench incident {id})', '{severity}', '{state}', 'C0INCIDENTS', '{source}', '{user}', {opened}, {ack}, '{user}', {res}, {resby}, {opened})",
                n = id % 17,
                state = if open { "acknowledged" } else { "resolved" },
                res = if open { "NULL".to_string() } else { resolved.to_string() },
                resby = if open { "NULL".to_string() } else { format!("'{user}'") },
            ));
            if id % 3 == 0 {
                let component = COMPONENTS[(*id as usize / 3) % COMPONENTS.len()];
                let comma = if any_component { "," } else { "" };
                components.push_str(&format!("{comma}({id}, '{component}')"));
                let status = match severity {
                    "P0" => "major_outage",
                    "P1" => "partial_outage",
                    _ => "degraded_performance",
                };
                spans.push_str(&format!(
                    "{comma}({id}, '{component}', '{status}', {opened}, {})",
                    if open {
                        "NULL".to_string()
                    } else {
                        resolved.to_string()
                    }
                ));
                any_component = true;
            }
            if id % 10 == 0 {
                for (j, (status, body)) in [
                    (
                        "investigating",
                        "Some customers see errors at checkout. We are on it.",
                    ),
                    ("update", "A fix is rolling out; errors are going down."),
                    ("resolved", "This incident has been resolved."),
                ]
                .iter()
                .enumerate()
                {
                    if open && *status == "resolved" {
                        continue;
                    }
                    updates.push_str(&format!(
                        "{}({id}, {}, '{status}', '{body}', '{user}')",
                        if any_update { "," } else { "" },
                        opened + j as i64 * 20 * minute
                    ));
                    any_update = true;
                }
            }
            pages.push_str(&format!(
                "{sep}({id}, 0, 'on-call', '{user}', {opened}),({id}, 1, 'team lead', 'U0LEAD{}', {})",
                id % 2,
                opened + minute
            ));
            events.push_str(&format!(
                "{sep}({id}, {opened}, 'opened', '{user}', 'declared the incident'),\
                 ({id}, {}, 'status_update', '{user}', 'status update: looking at the load balancer'),\
                 ({id}, {ack}, 'acknowledged', '{user}', 'acknowledged'),\
                 ({id}, {}, 'status_update', '{user}', 'status update: rolled back'),\
                 ({id}, {resolved}, 'resolved', '{user}', 'resolved the incident: rolled back')",
                opened + minute,
                ack + minute
            ));
        }
        let tx = &mut *tx;
        tx.execute(AssertSqlSafe(incidents)).await?;
        if any_component {
            tx.execute(AssertSqlSafe(components)).await?;
            tx.execute(AssertSqlSafe(spans)).await?;
        }
        if any_update {
            tx.execute(AssertSqlSafe(updates)).await?;
        }
        tx.execute(AssertSqlSafe(pages)).await?;
        tx.execute(AssertSqlSafe(events)).await?;
    }
    // PostgreSQL's identity must continue after the ids given above.
    if url.starts_with("postgres") {
        (&mut *tx)
            .execute("SELECT setval(pg_get_serial_sequence('incidents', 'id'), (SELECT MAX(id) FROM incidents))")
            .await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// One page's figures.
#[derive(Debug, Clone)]
pub struct PageFigures {
    pub path: String,
    pub status: u16,
    pub bytes: usize,
    pub median: Duration,
    pub p99: Duration,
}

/// Fetches `path` `n` times, one after another (after 3 unmeasured).
pub async fn measure(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    n: usize,
) -> anyhow::Result<PageFigures> {
    let get = || async {
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.bytes().await?;
        anyhow::Ok((status, body.len()))
    };
    for _ in 0..3 {
        get().await?;
    }
    let mut times = Vec::with_capacity(n);
    let (mut status, mut bytes) = (0, 0);
    for _ in 0..n {
        let started = Instant::now();
        (status, bytes) = get().await?;
        times.push(started.elapsed());
    }
    times.sort();
    let at = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(PageFigures {
        path: path.to_string(),
        status,
        bytes,
        median: at(0.5),
        p99: at(0.99),
    })
}
