//! Run 8: three `klaxon serve` replicas on one PostgreSQL database, the way a
//! team runs Klaxon past one machine. The load is run 3's (Alertmanager
//! notifications of 10 alerts) and run 2's (`/incident open`), spread evenly
//! over the replicas; every replica's outbox sender and scheduler share the
//! database's rows, so the outbox drain after the open load is the three
//! senders together. On this 2-core machine the replicas, PostgreSQL and the
//! load generator share the same two cores: the figures show that replicas
//! agree on one database (nothing refused, nothing sent twice) and what one
//! machine's CPU gives them, not the throughput of three machines.

use std::time::{Duration, Instant};

use crate::db::Backend;
use std::net::SocketAddr;

use crate::load::{self, Classify, Maker, Report};
use crate::proc::{self, Klaxon};
use crate::report::thousands;
use crate::{Ctx, Drain, progress, requests};

/// How many replicas run 8 starts.
pub const REPLICAS: usize = 3;
/// A bound on each replica's requests per run, so a run always ends.
const MAX_REQUESTS: u64 = 200_000;

/// Run 8's figures.
pub struct ReplicaRun {
    pub alerts: Report,
    pub alerts_cpu: Cpu,
    pub alerts_drain: Drain,
    pub open: Report,
    pub open_cpu: Cpu,
    pub open_drain: Drain,
    /// `chat.postMessage` calls the fake Slack received during run 8, against
    /// the messages the replicas recorded as sent (each sent once).
    pub posts: u64,
    pub sent_rows: Option<i64>,
}

/// Where the CPU went during a load, in % of one core.
pub struct Cpu {
    pub replicas: f64,
    pub postgres: f64,
    pub bench: f64,
}

/// Starts the replicas on a fresh database, runs the loads and returns the
/// section's Markdown (a table, or why it did not run).
pub async fn run(ctx: &Ctx) -> String {
    let mut text = format!(
        "\n### Run 8: {REPLICAS} Klaxon replicas on one PostgreSQL ({} connections spread over them)\n\n",
        ctx.plan.conns
    );
    if ctx.postgres.is_none() {
        text.push_str("not run: no PostgreSQL URL\n");
        return text;
    }
    progress(format!("=== run 8: {REPLICAS} replicas on PostgreSQL ==="));
    match phase(ctx).await {
        Ok(r) => text.push_str(&render(&r)),
        Err(e) => {
            progress(format!("run 8 failed: {e:#}"));
            text.push_str(&format!("failed: {e:#}\n"));
        }
    }
    text
}

async fn phase(ctx: &Ctx) -> anyhow::Result<ReplicaRun> {
    let plan = &ctx.plan;
    let url = ctx.fresh_db(Backend::Postgres, "replicas").await?;
    let mut replicas: Vec<Klaxon> = Vec::with_capacity(REPLICAS);
    for i in 0..REPLICAS {
        // One after another: the first creates the schema.
        let log = ctx.out.join(format!("klaxon-postgres-replica-{i}"));
        let (k, _) = ctx.setup.start(&url, &log).await?;
        replicas.push(k);
    }
    let posts0 = posts(ctx).await;

    let (alerts, alerts_cpu) = saturate(
        ctx,
        &replicas,
        "Alertmanager notifications",
        |a| ctx.alerts(a),
        requests::classify_alert,
    )
    .await?;
    let alerts_drain = crate::drain(ctx, &replicas[0], plan.drain_max).await;
    let (open, open_cpu) = saturate(
        ctx,
        &replicas,
        "/incident open",
        |a| ctx.open(a, "open P2 replica "),
        requests::classify_slash,
    )
    .await?;
    let open_drain = crate::drain(ctx, &replicas[0], plan.drain_max).await;
    // Stopped first, so no message goes out between the two counts.
    for k in replicas {
        let _ = k.stop().await;
    }
    let posts = posts(ctx).await.saturating_sub(posts0);
    let sent_rows = sent_posts(&url).await.ok();
    Ok(ReplicaRun {
        alerts,
        alerts_cpu,
        alerts_drain,
        open,
        open_cpu,
        open_drain,
        posts,
        sent_rows,
    })
}

/// A one-second warm-up, then the measured saturation run, both spread over
/// the replicas (run 8's share of the bench's connections each).
async fn saturate<M: Maker>(
    ctx: &Ctx,
    replicas: &[Klaxon],
    what: &str,
    make: impl Fn(SocketAddr) -> M + Copy,
    classify: Classify,
) -> anyhow::Result<(Report, Cpu)> {
    progress(format!("run 8: {what} over {REPLICAS} replicas"));
    let per = (ctx.plan.conns / REPLICAS).max(1);
    let _ = spread(replicas, per, Duration::from_secs(1), make, classify).await;
    let measured = with_cpu(
        ctx,
        replicas,
        spread(replicas, per, ctx.plan.saturation, make, classify),
    )
    .await?;
    progress(format!(
        "run 8: {what} {:.0}/s, {}",
        measured.0.ok_per_sec(),
        measured.0.latency_line()
    ));
    Ok(measured)
}

/// Runs a closed-loop load of `per` connections against each replica at once
/// (the same requests as runs 2 and 3) and merges the reports.
async fn spread<M: Maker>(
    replicas: &[Klaxon],
    per: usize,
    duration: Duration,
    make: impl Fn(SocketAddr) -> M + Copy,
    classify: Classify,
) -> anyhow::Result<Report> {
    let runs = replicas.iter().map(|k| {
        let a = k.addr;
        load::closed(a, per, duration, MAX_REQUESTS, move |_| make(a), classify)
    });
    let reports = futures_util::future::try_join_all(runs).await?;
    load::merge_reports(reports)
}

async fn with_cpu(
    ctx: &Ctx,
    replicas: &[Klaxon],
    run: impl std::future::Future<Output = anyhow::Result<Report>>,
) -> anyhow::Result<(Report, Cpu)> {
    let hz = proc::clock_ticks_per_sec() as f64;
    let snap = || {
        let r: u64 = replicas.iter().filter_map(|k| proc::cpu_ticks(k.pid)).sum();
        let pg = ctx.pg_port.and_then(proc::postgres_ticks).unwrap_or(0);
        let b = proc::cpu_ticks(std::process::id()).unwrap_or(0);
        (Instant::now(), r, pg, b)
    };
    let a = snap();
    let report = run.await?;
    let b = snap();
    let secs = b.0.duration_since(a.0).as_secs_f64().max(1e-9);
    let pct = |x: u64, y: u64| y.saturating_sub(x) as f64 / hz / secs * 100.0;
    Ok((
        report,
        Cpu {
            replicas: pct(a.1, b.1),
            postgres: pct(a.2, b.2),
            bench: pct(a.3, b.3),
        },
    ))
}

async fn posts(ctx: &Ctx) -> u64 {
    crate::fake_slack_calls(ctx.fake_slack)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k == "chat.postMessage")
        .map(|(_, n)| n)
        .sum()
}

/// Messages the replicas recorded as posted (`chat.postMessage` kinds).
async fn sent_posts(url: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    let mut c = sqlx::AnyConnection::connect(url).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE state = 'sent' AND kind IN ('root','reply','direct','post')",
    )
    .fetch_one(&mut c)
    .await?;
    c.close().await?;
    Ok(n)
}

fn render(r: &ReplicaRun) -> String {
    let cpu = |c: &Cpu| {
        format!(
            "replicas {:.0}% · PostgreSQL {:.0}% · load gen {:.0}%",
            c.replicas, c.postgres, c.bench
        )
    };
    let problems = |rep: &Report| {
        let p = rep.failures();
        if p == 0 {
            "none".to_string()
        } else {
            format!("{} ({:?})", thousands(p as f64), rep.problems())
        }
    };
    let rows = [
        (
            "Alertmanager notifications accepted (2xx) per s, 10 alerts each",
            format!(
                "{} /s ({})",
                thousands(r.alerts.ok_per_sec()),
                r.alerts.latency_line()
            ),
        ),
        (
            "CPU during the alert run (% of one core)",
            cpu(&r.alerts_cpu),
        ),
        (
            "outbox backlog when the alert run ended → time to send it all",
            crate::report::drain_text(&r.alerts_drain),
        ),
        (
            "signed `/incident open P2 …` per s",
            format!(
                "{} req/s ({})",
                thousands(r.open.ok_per_sec()),
                r.open.latency_line()
            ),
        ),
        ("CPU during the open run (% of one core)", cpu(&r.open_cpu)),
        (
            "outbox backlog when the open run ended → time to send it all (three senders)",
            crate::report::drain_text(&r.open_drain),
        ),
        (
            "requests not accepted",
            format!(
                "alerts {} · open {}",
                problems(&r.alerts),
                problems(&r.open)
            ),
        ),
        (
            "`chat.postMessage` calls received vs messages recorded as posted",
            format!(
                "{} vs {}",
                thousands(r.posts as f64),
                r.sent_rows
                    .map(|n| thousands(n as f64))
                    .unwrap_or_else(|| "?".into())
            ),
        ),
    ];
    let mut t = String::from("| figure | 3 replicas, one PostgreSQL |\n|---|---|\n");
    for (figure, value) in rows {
        t.push_str(&format!("| 8. {figure} | {value} |\n"));
    }
    t
}
