//! `klaxon-bench`: measures how fast and lean Klaxon is, on SQLite and on
//! PostgreSQL, and prints one Markdown table. Run it with `bench/run.sh`, which
//! builds everything, starts PostgreSQL and documents the options.
//!
//! ```text
//! klaxon-bench [--quick] [--klaxon PATH] [--postgres URL | --no-postgres]
//!              [--out DIR] [--connections N]
//! ```
//!
//! Everything it starts listens on 127.0.0.1 and every load loop is bounded in
//! time and count. The PostgreSQL URL defaults to `$KLAXON_TEST_POSTGRES_URL`.

mod db;
mod load;
mod pages;
mod proc;
mod replicas;
mod report;
mod requests;
mod servers;
mod socket;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hyper::body::Bytes;

use db::Backend;
use load::Report;
use proc::{BucketQuantiles, Klaxon, KlaxonSetup};
use requests::{AlertNotification, SlashCommand, Text};

/// How long each part runs; `--quick` shortens them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub conns: usize,
    pub warmup: Duration,
    pub saturation: Duration,
    pub fixed: Duration,
    pub fixed_rate: f64,
    pub idle: Duration,
    pub drain_max: Duration,
    pub seed_incidents: u64,
    pub far_jobs: usize,
    pub due_jobs: usize,
    pub due_window: Duration,
    pub due_lead: Duration,
    pub max_list: u64,
    pub max_writes: u64,
    /// Alerts in run 3b's one big notification.
    pub big_alerts: usize,
}

impl Plan {
    fn new(quick: bool, conns: usize) -> Plan {
        let s = |full: u64, short: u64| Duration::from_secs(if quick { short } else { full });
        Plan {
            quick,
            conns,
            warmup: s(2, 1),
            saturation: s(10, 5),
            fixed: s(10, 5),
            fixed_rate: 1_000.0,
            idle: s(60, 20),
            drain_max: s(30, 15),
            seed_incidents: 10,
            far_jobs: 100_000,
            due_jobs: 10_000,
            due_window: Duration::from_secs(10),
            due_lead: Duration::from_secs(3),
            max_list: 5_000_000,
            max_writes: 200_000,
            big_alerts: 5_000,
        }
    }
}

struct Opts {
    plan: Plan,
    klaxon: PathBuf,
    postgres: Option<String>,
    out: PathBuf,
    /// The one part to run alone (`--*-only`), or `None` for every run.
    only: Option<Part>,
    /// CPUs every `klaxon serve` is pinned to (`taskset -c` syntax).
    klaxon_cpus: Option<String>,
}

/// A part of the bench that a `--*-only` flag runs alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    /// Run 6 (Socket Mode) and its baseline.
    Socket,
    /// Run 7 (the web pages at 10,000 incidents).
    Pages,
    /// Runs 1–3, the memory figures and run 8 (no timers, Socket Mode, pages).
    Main,
    /// Runs 4 and 4b (timers, idle CPU, timers beside slow actions).
    Timers,
}

impl Part {
    fn flag(self) -> &'static str {
        match self {
            Part::Socket => "--socket-only",
            Part::Pages => "--pages-only",
            Part::Main => "--main-only",
            Part::Timers => "--timers-only",
        }
    }

    /// Whether this part runs when `only` is the part asked for alone.
    fn runs(self, only: Option<Part>) -> bool {
        only.is_none_or(|o| o == self)
    }
}

fn parse_args(args: &[String]) -> anyhow::Result<Opts> {
    let mut quick = false;
    let mut only: Option<Part> = None;
    let mut klaxon_cpus = None;
    let mut klaxon = None;
    let mut postgres = std::env::var("KLAXON_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let mut out = None;
    let mut conns = 32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--socket-only" | "--pages-only" | "--main-only" | "--timers-only" => {
                let part = match a.as_str() {
                    "--socket-only" => Part::Socket,
                    "--pages-only" => Part::Pages,
                    "--main-only" => Part::Main,
                    _ => Part::Timers,
                };
                if let Some(other) = only.filter(|o| *o != part) {
                    bail!(
                        "{} and {} each run a part alone; give one of them",
                        other.flag(),
                        part.flag()
                    );
                }
                only = Some(part);
            }
            "--klaxon-cpus" => {
                let cpus = value()?;
                if cpus.is_empty()
                    || !cpus
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
                {
                    bail!(
                        "--klaxon-cpus takes a CPU list such as 1 or 0-1 (taskset -c), not {cpus:?}"
                    );
                }
                // taskset itself says whether this machine has those CPUs.
                let ok = std::process::Command::new("taskset")
                    .args(["-c", &cpus, "true"])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    bail!(
                        "--klaxon-cpus {cpus}: taskset cannot pin to those CPUs here (is taskset installed, do they exist?)"
                    );
                }
                klaxon_cpus = Some(cpus);
            }
            "--klaxon" => klaxon = Some(PathBuf::from(value()?)),
            "--postgres" => postgres = Some(value()?),
            "--no-postgres" => postgres = None,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--connections" => {
                let v = value()?;
                conns = v.parse().with_context(|| {
                    format!("--connections takes a whole number of connections, not {v:?}")
                })?;
            }
            "-h" | "--help" => {
                println!(
                    "klaxon-bench [--quick] [--socket-only | --pages-only | --main-only | --timers-only] [--klaxon PATH] [--klaxon-cpus LIST] [--postgres URL | --no-postgres] [--out DIR] [--connections N]\n\
                     Measures Klaxon on SQLite and PostgreSQL and prints one Markdown table. See bench/run.sh."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    let klaxon = match klaxon {
        Some(k) => k,
        None => {
            // target/release/klaxon-bench → target/release/klaxon
            let me = std::env::current_exe()?;
            me.with_file_name("klaxon")
        }
    };
    if !klaxon.is_file() {
        bail!(
            "no Klaxon binary at {} (build it with cargo build --release, or pass --klaxon)",
            klaxon.display()
        );
    }
    let out = match out {
        Some(o) => o,
        None => std::env::temp_dir().join(format!("klaxon-bench-{}", stamp())),
    };
    Ok(Opts {
        plan: Plan::new(quick, conns.max(1)),
        klaxon,
        postgres,
        out,
        only,
        klaxon_cpus,
    })
}

fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}_{}", std::process::id())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random hex string from the kernel's generator.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let helper = match args.first().map(String::as_str) {
        Some("__fake-slack") => Some(servers::fake_slack_main()),
        Some("__baseline") => Some(servers::baseline_main()),
        _ => None,
    };
    if let Some(result) = helper {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("klaxon-bench helper: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("klaxon-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klaxon-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        // On Ctrl-C or SIGTERM the run is dropped, which kills every child.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = run(opts) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("klaxon-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the bench shares between back ends.
struct Ctx {
    plan: Plan,
    setup: KlaxonSetup,
    out: PathBuf,
    postgres: Option<String>,
    stamp: String,
    secret: Arc<str>,
    alert_token: Arc<str>,
    fake_slack: SocketAddr,
    slack_pid: u32,
    /// PostgreSQL's port, to count its CPU.
    pg_port: Option<u16>,
    /// Makes incident titles unique across the whole run.
    numbers: Arc<AtomicU64>,
    groups: Arc<AtomicU64>,
    pg_databases: std::sync::Mutex<Vec<String>>,
}

impl Ctx {
    fn slash(&self, addr: SocketAddr, path: &'static str, text: Text) -> SlashCommand {
        SlashCommand {
            host: addr.to_string(),
            path,
            secret: self.secret.clone(),
            text,
            fake_slack: format!("http://{}", self.fake_slack),
            seq: 0,
        }
    }
    fn list(&self, addr: SocketAddr) -> SlashCommand {
        self.slash(addr, "/slack/commands", Text::Fixed("list"))
    }
    fn open(&self, addr: SocketAddr, prefix: &'static str) -> SlashCommand {
        self.slash(
            addr,
            "/slack/commands",
            Text::Numbered(prefix, self.numbers.clone()),
        )
    }
    fn alerts(&self, addr: SocketAddr) -> AlertNotification {
        AlertNotification {
            host: addr.to_string(),
            token: self.alert_token.clone(),
            groups: self.groups.clone(),
            count: 0,
            recent: [Bytes::new(), Bytes::new()],
        }
    }
    async fn fresh_db(&self, backend: Backend, what: &str) -> anyhow::Result<String> {
        let name = format!("klaxon_bench_{}_{what}", self.stamp);
        if backend == Backend::Postgres
            && let Ok(mut dbs) = self.pg_databases.lock()
        {
            dbs.push(name.clone());
        }
        db::fresh(backend, &self.out, self.postgres.as_deref(), &name).await
    }
}

const KLAXON_CONFIG: &str = r#"# Written by klaxon-bench: the fake Slack never throttles, so the outbox's
# own pacing does not hide how fast Klaxon is.
[outbox]
channel_rate = 100000.0
channel_burst = 100000

[[escalation.ladders]]
name = "default"
levels = [{ name = "on-call", notify = ["user:U0BENCH"], wait = "1h" }]

# Run 7: the status page's components.
[status]
title = "Bench status"

[[status.components]]
name = "checkout"

[[status.components]]
name = "search"

[[status.components]]
name = "login"

# Run 4b: four of these run while the timers fall due (a restart that hangs on
# a slow engine looks the same to the scheduler).
[[actions]]
name = "slow-check"
description = "A read-only check that takes a minute"
kind = "command"
argv = ["/bin/sleep", "60"]
read_only = true
timeout = "90s"
concurrency = 4
allowed = ["user:U0BENCH"]
"#;

async fn run(opts: Opts) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    // Only plain HTTP to 127.0.0.1, but reqwest insists when rustls is compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plan = opts.plan.clone();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create the output directory {}", opts.out.display()))?;
    let out = opts.out.canonicalize()?;
    let pid_file = out.join("children.pids");
    // A directory used before keeps its files, but not the pids of its last run.
    std::fs::write(&pid_file, "").with_context(|| format!("cannot write in {}", out.display()))?;
    if let Some(pg) = &opts.postgres {
        match db::drop_leftovers(pg).await {
            Ok(names) if !names.is_empty() => progress(format!(
                "dropped {} database(s) an earlier run left behind",
                names.len()
            )),
            Ok(_) => {}
            Err(e) => progress(format!(
                "could not look for databases earlier runs left: {e:#}"
            )),
        }
    }
    if let Some(cpus) = &opts.klaxon_cpus {
        progress(format!("Klaxon pinned to CPUs {cpus} (taskset -c)"));
    }
    progress(format!(
        "output directory {} ({} mode, {} connections)",
        out.display(),
        if plan.quick { "quick" } else { "full" },
        plan.conns
    ));
    let config = out.join("klaxon-bench.toml");
    std::fs::write(&config, KLAXON_CONFIG)?;

    let slack = proc::spawn_helper("__fake-slack", &pid_file).await?;
    let baseline = proc::spawn_helper("__baseline", &pid_file).await?;
    progress(format!(
        "fake Slack on {}, baseline on {}",
        slack.addr, baseline.addr
    ));

    let secret: Arc<str> = random_hex(16)?.into();
    let alert_token: Arc<str> = random_hex(16)?.into();
    let env = vec![
        (
            "RUST_LOG".into(),
            std::env::var("KLAXON_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
        ("KLAXON_LOG_FORMAT".into(), "json".into()),
        ("KLAXON_SLACK_BOT_TOKEN".into(), "xoxb-bench".into()),
        ("KLAXON_SLACK_SIGNING_SECRET".into(), secret.to_string()),
        (
            "KLAXON_SLACK_API_URL".into(),
            format!("http://{}/api", slack.addr),
        ),
        ("KLAXON_INCIDENT_CHANNEL".into(), requests::CHANNEL.into()),
        ("KLAXON_ALERT_TOKEN".into(), alert_token.to_string()),
        ("KLAXON_HISTORY_TOKEN".into(), HISTORY_TOKEN.into()),
    ];
    let ctx = Ctx {
        plan: plan.clone(),
        setup: KlaxonSetup {
            bin: opts.klaxon.clone(),
            config,
            env,
            pid_file,
            cpus: opts.klaxon_cpus.clone(),
        },
        out: out.clone(),
        postgres: opts.postgres.clone(),
        stamp: stamp(),
        secret,
        alert_token,
        fake_slack: slack.addr,
        slack_pid: slack.pid,
        pg_port: opts.postgres.as_deref().and_then(db::port),
        numbers: Arc::new(AtomicU64::new(1)),
        groups: Arc::new(AtomicU64::new(1)),
        pg_databases: std::sync::Mutex::new(Vec::new()),
    };

    if opts.only == Some(Part::Pages) {
        let text = pages_run(&ctx).await;
        drop_databases(&ctx).await;
        println!("{text}");
        std::fs::write(out.join("results.md"), &text)?;
        return Ok(());
    }
    if opts.only == Some(Part::Socket) {
        let text = socket_run(&ctx).await;
        drop_databases(&ctx).await;
        println!("{text}");
        std::fs::write(out.join("results.md"), &text)?;
        return Ok(());
    }

    // The baseline: the very same signed request, to a handler that does nothing.
    progress("baseline: bare axum, POST /");
    let b = baseline.addr;
    load::closed(
        b,
        plan.conns,
        plan.warmup,
        plan.max_list,
        |_| ctx.slash(b, "/", Text::Fixed("list")),
        requests::classify_any_2xx,
    )
    .await?;
    let base = measured(
        (baseline.pid, slack.pid, ctx.pg_port),
        load::closed(
            b,
            plan.conns,
            plan.saturation,
            plan.max_list,
            |_| ctx.slash(b, "/", Text::Fixed("list")),
            requests::classify_any_2xx,
        ),
    )
    .await?;
    progress(format!(
        "baseline: {:.0} req/s, {}",
        base.ok_per_sec(),
        base.latency_line()
    ));
    drop(baseline);

    let mut runs = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && ctx.postgres.is_none() {
            runs.push(report::BackendRun::skipped(
                backend,
                "not run: no PostgreSQL URL (set KLAXON_TEST_POSTGRES_URL or use bench/run.sh)",
            ));
            continue;
        }
        progress(format!("=== {} ===", backend.name()));
        let main = phase(opts.only, Part::Main, backend, "load runs", || {
            main_phase(&ctx, backend)
        })
        .await;
        let timers = phase(opts.only, Part::Timers, backend, "timer run", || {
            timer_phase(&ctx, backend)
        })
        .await;
        runs.push(report::BackendRun {
            backend,
            main,
            timers,
        });
    }

    let replicas_text = if Part::Main.runs(opts.only) {
        replicas::run(&ctx).await
    } else {
        String::new()
    };
    let (socket_text, pages_text) = if opts.only.is_none() {
        (socket_run(&ctx).await, pages_run(&ctx).await)
    } else {
        (String::new(), String::new())
    };
    let slack_calls = fake_slack_calls(slack.addr).await.unwrap_or_default();
    drop(slack);

    drop_databases(&ctx).await;

    let mut text = report::render(&report::Inputs {
        plan: &plan,
        baseline: &base,
        runs: &runs,
        slack_calls: &slack_calls,
        out: &out,
        klaxon_cpus: opts.klaxon_cpus.as_deref(),
    });
    text.push_str(&replicas_text);
    text.push_str(&socket_text);
    text.push_str(&pages_text);
    println!("{text}");
    std::fs::write(out.join("results.md"), &text)?;
    progress(format!(
        "table also in {}",
        out.join("results.md").display()
    ));
    Ok(())
}

/// Run 7: the status page and the history at 10,000 incidents, on each
/// back end (see `pages`). The table's Markdown.
/// Runs one phase of a back end unless another part was asked for alone;
/// its error (or why it did not run) is the report's cell text.
async fn phase<T, F>(
    only: Option<Part>,
    part: Part,
    backend: Backend,
    what: &str,
    run: impl FnOnce() -> F,
) -> Result<T, String>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    if let Some(o) = only.filter(|_| !part.runs(only)) {
        return Err(format!("not run: {}", o.flag()));
    }
    let result = run().await.map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        progress(format!("{}: {what} failed: {e}", backend.name()));
    }
    result
}

/// Drops the PostgreSQL databases this run made.
async fn drop_databases(ctx: &Ctx) {
    if let Some(pg) = &ctx.postgres {
        let names = ctx
            .pg_databases
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        if let Err(e) = db::drop_postgres(pg, &names).await {
            progress(format!(
                "could not drop the bench's PostgreSQL databases: {e:#}"
            ));
        }
    }
}

async fn pages_run(ctx: &Ctx) -> String {
    let mut text = String::from(
        "\n### Run 7: web pages at 10,000 incidents (one request at a time)\n\n\
         | back end | page | bytes | median | p99 | target |\n|---|---|---|---|---|---|\n",
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && ctx.postgres.is_none() {
            continue;
        }
        match pages_phase(ctx, backend).await {
            Ok(rows) => {
                for r in rows {
                    let target = if r.path == "/healthz" {
                        "baseline".to_string()
                    } else if r.status != 200 {
                        format!("answered {}", r.status)
                    } else if r.p99 < Duration::from_millis(200) {
                        "< 200 ms: met".to_string()
                    } else {
                        "< 200 ms: MISSED".to_string()
                    };
                    text.push_str(&format!(
                        "| {} | `{}` | {} | {:.1} ms | {:.1} ms | {target} |\n",
                        backend.name(),
                        r.path,
                        r.bytes,
                        r.median.as_secs_f64() * 1000.0,
                        r.p99.as_secs_f64() * 1000.0
                    ));
                }
            }
            Err(e) => text.push_str(&format!(
                "| {} | run 7 failed: {e:#} | | | | |\n",
                backend.name()
            )),
        }
    }
    text
}

async fn pages_phase(ctx: &Ctx, backend: Backend) -> anyhow::Result<Vec<pages::PageFigures>> {
    progress(format!(
        "{}: run 7, web pages at {} incidents",
        backend.name(),
        pages::INCIDENTS
    ));
    let url = ctx.fresh_db(backend, "pages").await?;
    ctx.setup
        .migrate(
            &url,
            &ctx.out
                .join(format!("klaxon-{}-pages-migrate", backend.slug())),
        )
        .await?;
    let started = Instant::now();
    pages::seed(&url, now_ms()).await?;
    progress(format!(
        "{}: seeded in {:.1} s",
        backend.name(),
        started.elapsed().as_secs_f64()
    ));
    let log = ctx.out.join(format!("klaxon-{}-pages", backend.slug()));
    let (k, _) = ctx.setup.start(&url, &log).await?;
    let http = proc::control_client()?;
    let base = format!("http://{}", k.addr);
    let n = if ctx.plan.quick { 30 } else { 100 };
    let mut rows = Vec::new();
    for path in [
        "/healthz",
        "/status",
        "/status.json",
        "/status.atom",
        "/incidents",
        "/incidents?page=150",
        "/incidents?severity=P1&month=current",
        "/incidents/INC-5000",
    ] {
        let path = path.replace(
            "month=current",
            &format!("month={}", jiff::Timestamp::now().strftime("%Y-%m")),
        );
        let r = pages::measure(&http, &base, &path, HISTORY_TOKEN, n).await?;
        progress(format!(
            "{}: {} {} bytes, median {:.1} ms, p99 {:.1} ms",
            backend.name(),
            r.path,
            r.bytes,
            r.median.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0
        ));
        rows.push(r);
    }
    k.stop().await;
    Ok(rows)
}

/// The history token every bench Klaxon gets (`KLAXON_HISTORY_TOKEN`).
const HISTORY_TOKEN: &str = "bench-history-token-7c1f9e2d4b6a8c0e";

/// Run 6: envelope → ack over Socket Mode at 500 slash commands/s, first to a
/// bare client that acks at once (the baseline), then to Klaxon on a fresh
/// SQLite database (`list`, then `open`). The table's Markdown.
async fn socket_run(ctx: &Ctx) -> String {
    let rate = 500.0;
    let secs = if ctx.plan.quick { 5.0 } else { 10.0 };
    let mut rows = Vec::new();
    let http = match proc::control_client() {
        Ok(c) => c,
        Err(e) => return format!("\nRun 6 (Socket Mode) could not start: {e:#}\n"),
    };
    let api = ctx.fake_slack;
    let sockets = || async {
        let v: serde_json::Value = http
            .get(format!("http://{api}/socket/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["sockets"].as_u64()
    };
    let load = |text: &'static str| {
        let http = http.clone();
        async move {
            let v: serde_json::Value = http
                .post(format!("http://{api}/socket/load"))
                .timeout(Duration::from_secs_f64(secs + 30.0))
                .json(&serde_json::json!({"rate": rate, "secs": secs, "text": text}))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            match v.get("error") {
                Some(e) => Err(e.to_string()),
                None => Ok(v),
            }
        }
    };
    let wait_for_socket = |before: u64| async move {
        for _ in 0..500 {
            if sockets().await.unwrap_or(0) > before {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };

    progress("run 6: Socket Mode baseline, a bare client acking at once");
    let before = sockets().await.unwrap_or(0);
    match socket::bare_acker(api).await {
        Ok(acker) => {
            let base = if wait_for_socket(before).await {
                load("list").await
            } else {
                Err("the bare client's socket did not connect".into())
            };
            acker.abort();
            rows.push((
                "bare client acking at once (baseline)".to_string(),
                false,
                base,
            ));
        }
        Err(e) => rows.push((
            "bare client acking at once (baseline)".into(),
            false,
            Err(format!("{e:#}")),
        )),
    }

    progress("run 6: Klaxon on Socket Mode (SQLite)");
    let started = async {
        let url = ctx.fresh_db(Backend::Sqlite, "socket").await?;
        let mut setup = ctx.setup.clone();
        setup.env.push((
            "KLAXON_SLACK_APP_TOKEN".into(),
            "xapp-1-A0BENCH-1-socketmodebenchtoken".into(),
        ));
        let before = sockets().await.unwrap_or(0);
        let (k, _) = setup
            .start(&url, &ctx.out.join("klaxon-sqlite-socket"))
            .await?;
        if !wait_for_socket(before).await {
            bail!("Klaxon's socket did not connect within 10 s");
        }
        anyhow::Ok(k)
    };
    match started.await {
        Ok(k) => {
            rows.push((
                "Klaxon, `/incident list` (reads)".into(),
                true,
                load("list").await,
            ));
            let _ = drain(ctx, &k, ctx.plan.drain_max).await;
            rows.push((
                "Klaxon, `/incident open P3 …` (one write transaction each)".into(),
                true,
                load("open P3 Socket Mode bench").await,
            ));
            // The same opens over signed HTTP at the same rate, for comparison:
            // what the transport adds, and what the database does.
            let _ = drain(ctx, &k, ctx.plan.drain_max).await;
            let a = k.addr;
            let http = load::open(
                a,
                ctx.plan.conns,
                rate,
                Duration::from_secs_f64(secs),
                |_| ctx.open(a, "open P3 HTTP bench "),
                requests::classify_slash,
            )
            .await
            .map(|r| {
                serde_json::json!({
                    "sent": r.sent,
                    "acked": r.ok,
                    "answered": r.ok,
                    "unacked": r.sent - r.ok,
                    "p50_us": r.hist.value_at_quantile(0.5),
                    "p99_us": r.hist.value_at_quantile(0.99),
                    "max_us": r.hist.max(),
                })
            })
            .map_err(|e| format!("{e:#}"));
            rows.push((
                "the same opens over signed HTTP (comparison; sent / 2xx / 2xx)".into(),
                false,
                http,
            ));
            let _ = k.stop().await;
        }
        Err(e) => rows.push(("Klaxon".into(), true, Err(format!("{e:#}")))),
    }
    socket::render(rate, secs, &rows)
}

async fn fake_slack_calls(addr: SocketAddr) -> anyhow::Result<Vec<(String, u64)>> {
    let v: serde_json::Value = proc::control_client()?
        .get(format!("http://{addr}/stats"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v.get("calls")
        .and_then(|c| c.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default())
}

/// The outbox backlog when a run ended, how long it took to empty, and how
/// many Slack calls the fake Slack received meanwhile.
#[derive(Debug, Clone)]
pub struct Drain {
    pub pending_at_end: Option<f64>,
    pub drained_after: Option<Duration>,
    pub left: Option<f64>,
    pub slack_calls: u64,
    pub waited: Duration,
}

async fn fake_slack_total(addr: SocketAddr) -> u64 {
    fake_slack_calls(addr)
        .await
        .map(|c| c.iter().map(|(_, n)| n).sum())
        .unwrap_or(0)
}

async fn drain(ctx: &Ctx, k: &Klaxon, max: Duration) -> Drain {
    let started = Instant::now();
    let calls0 = fake_slack_total(ctx.fake_slack).await;
    let pending =
        |m: anyhow::Result<proc::Metrics>| m.ok().and_then(|m| m.gauge("klaxon_outbox_pending"));
    let first = pending(k.metrics().await);
    let mut last = first;
    let mut drained_after = None;
    while started.elapsed() < max {
        if last == Some(0.0) {
            drained_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = pending(k.metrics().await);
    }
    Drain {
        pending_at_end: first,
        drained_after,
        left: last,
        slack_calls: fake_slack_total(ctx.fake_slack)
            .await
            .saturating_sub(calls0),
        waited: started.elapsed(),
    }
}

/// Runs `run` and notes where the CPU went meanwhile.
async fn measured(
    (server, slack, pg_port): (u32, u32, Option<u16>),
    run: impl std::future::Future<Output = anyhow::Result<Report>>,
) -> anyhow::Result<Report> {
    let a = proc::cpu_snap(server, slack, pg_port);
    let mut report = run.await?;
    let b = proc::cpu_snap(server, slack, pg_port);
    report.cpu = proc::cpu_split(&a, &b);
    Ok(report)
}

/// Runs 1–3 and the memory figures on one fresh database and Klaxon process.
pub struct MainPhase {
    pub ready: Duration,
    pub idle_rss_kb: Option<u64>,
    pub list_warmup: Report,
    pub list: Report,
    pub list_fixed: Report,
    pub alerts_warmup: Report,
    pub alerts: Report,
    pub alerts_drain: Drain,
    pub open_warmup: Report,
    pub open: Report,
    pub open_drain: Drain,
    pub peak_rss_kb: Option<u64>,
    pub big: Result<Big, String>,
    pub stopped: (Duration, String),
    pub log: PathBuf,
}

/// Run 3b: one notification of thousands of alerts.
pub struct Big {
    pub alerts: usize,
    pub bytes: usize,
    /// From sending the request to the 2xx.
    pub took: Duration,
    /// Peak RSS (VmHWM) before and after.
    pub hwm_before_kb: Option<u64>,
    pub hwm_after_kb: Option<u64>,
}

async fn big_notification(ctx: &Ctx, k: &Klaxon, n: usize) -> Result<Big, String> {
    progress(format!("run 3b: one notification of {n} alerts"));
    let body = requests::big_notification(n);
    let bytes = body.len();
    let hwm_before_kb = proc::status_kb(k.pid, "VmHWM");
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("http://{}/alerts/alertmanager", k.addr))
        .header("content-type", "application/json")
        .bearer_auth(ctx.alert_token.as_ref())
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(120).collect::<String>()
        ));
    }
    Ok(Big {
        alerts: n,
        bytes,
        took,
        hwm_before_kb,
        hwm_after_kb: proc::status_kb(k.pid, "VmHWM"),
    })
}

async fn main_phase(ctx: &Ctx, backend: Backend) -> anyhow::Result<MainPhase> {
    let plan = &ctx.plan;
    let url = ctx.fresh_db(backend, "main").await?;
    let log = ctx.out.join(format!("klaxon-{}-main", backend.slug()));
    let (mut k, ready) = ctx.setup.start(&url, &log).await?;
    progress(format!(
        "{}: Klaxon ready {:.0} ms after spawn (fresh database)",
        backend.name(),
        ready.as_secs_f64() * 1000.0
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kb = proc::status_kb(k.pid, "VmRSS");
    let a = k.addr;
    let pids = (k.pid, ctx.slack_pid, ctx.pg_port);
    let name = backend.name();

    // A few open incidents, so `/incident list` has something to list.
    let seeded = load::closed(
        a,
        1,
        Duration::from_secs(30),
        plan.seed_incidents,
        |_| ctx.open(a, "open P1 seeded incident "),
        requests::classify_slash,
    )
    .await?;
    if seeded.ok != plan.seed_incidents {
        bail!("seeding incidents failed: {:?}", seeded.outcomes);
    }
    let _ = drain(ctx, &k, plan.drain_max).await;

    progress(format!("{name}: run 1, /incident list"));
    let list = |_| ctx.list(a);
    let list_warmup = load::closed(
        a,
        plan.conns,
        plan.warmup,
        plan.max_list,
        list,
        requests::classify_slash,
    )
    .await?;
    let list_sat = measured(
        pids,
        load::closed(
            a,
            plan.conns,
            plan.saturation,
            plan.max_list,
            list,
            requests::classify_slash,
        ),
    )
    .await?;
    progress(format!(
        "{name}: list {:.0} req/s, {}",
        list_sat.ok_per_sec(),
        list_sat.latency_line()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let list_fixed = measured(
        pids,
        load::open(
            a,
            plan.conns,
            plan.fixed_rate,
            plan.fixed,
            list,
            requests::classify_slash,
        ),
    )
    .await?;
    progress(format!(
        "{name}: list at {:.0}/s: {}",
        plan.fixed_rate,
        list_fixed.latency_line()
    ));
    check_alive(&mut k, &log)?;

    // Alerts before opens: the opens leave an outbox backlog that would compete.
    progress(format!("{name}: run 3, Alertmanager notifications"));
    let alerts = |_| ctx.alerts(a);
    let alerts_warmup = load::closed(
        a,
        plan.conns,
        Duration::from_secs(1),
        plan.max_writes,
        alerts,
        requests::classify_alert,
    )
    .await?;
    let alerts_sat = measured(
        pids,
        load::closed(
            a,
            plan.conns,
            plan.saturation,
            plan.max_writes,
            alerts,
            requests::classify_alert,
        ),
    )
    .await?;
    progress(format!(
        "{name}: alerts {:.0} notifications/s, {}",
        alerts_sat.ok_per_sec(),
        alerts_sat.latency_line()
    ));
    let alerts_drain = drain(ctx, &k, plan.drain_max).await;
    check_alive(&mut k, &log)?;

    progress(format!("{name}: run 2, /incident open"));
    let open = |_| ctx.open(a, "open P2 bench ");
    let open_warmup = load::closed(
        a,
        plan.conns,
        Duration::from_secs(1),
        plan.max_writes,
        open,
        requests::classify_slash,
    )
    .await?;
    let open_sat = measured(
        pids,
        load::closed(
            a,
            plan.conns,
            plan.saturation,
            plan.max_writes,
            open,
            requests::classify_slash,
        ),
    )
    .await?;
    progress(format!(
        "{name}: open {:.0} req/s, {}",
        open_sat.ok_per_sec(),
        open_sat.latency_line()
    ));
    let open_drain = drain(ctx, &k, plan.drain_max).await;
    check_alive(&mut k, &log)?;

    let peak_rss_kb = proc::status_kb(k.pid, "VmHWM");
    let big = big_notification(ctx, &k, plan.big_alerts).await;
    check_alive(&mut k, &log)?;
    let stopped = k.stop().await;
    Ok(MainPhase {
        ready,
        idle_rss_kb,
        list_warmup,
        list: list_sat,
        list_fixed,
        alerts_warmup,
        alerts: alerts_sat,
        alerts_drain,
        open_warmup,
        open: open_sat,
        open_drain,
        peak_rss_kb,
        big,
        stopped,
        log,
    })
}

fn check_alive(k: &mut Klaxon, log: &Path) -> anyhow::Result<()> {
    match k.exited() {
        Some(status) => bail!(
            "Klaxon exited during the run ({status}); see {}",
            log.display()
        ),
        None => Ok(()),
    }
}

/// Run 4: timers, on another fresh database.
pub struct TimerPhase {
    pub insert: Duration,
    pub ready: Duration,
    pub lateness: Option<BucketQuantiles>,
    pub due_done: u64,
    pub pending_after: Option<f64>,
    pub idle: Duration,
    pub cpu_percent: Option<f64>,
    pub rss_kb: Option<u64>,
    pub busy: Result<Busy, String>,
    pub stopped: (Duration, String),
    pub log: PathBuf,
}

async fn timer_phase(ctx: &Ctx, backend: Backend) -> anyhow::Result<TimerPhase> {
    let plan = &ctx.plan;
    progress(format!(
        "{}: run 4, timers ({} far-future + {} due over {} s)",
        backend.name(),
        plan.far_jobs,
        plan.due_jobs,
        plan.due_window.as_secs()
    ));
    let url = ctx.fresh_db(backend, "timers").await?;
    let log = ctx.out.join(format!("klaxon-{}-timers", backend.slug()));
    ctx.setup
        .migrate(
            &url,
            &ctx.out.join(format!("klaxon-{}-migrate", backend.slug())),
        )
        .await?;

    let started = Instant::now();
    let now = now_ms();
    let month = 30 * 24 * 3_600 * 1_000;
    let far: Vec<i64> = (0..plan.far_jobs as i64)
        .map(|i| now + month + i * 10)
        .collect();
    db::insert_jobs(&url, &far, now).await?;
    let first_due = now_ms() + plan.due_lead.as_millis() as i64;
    let step = plan.due_window.as_millis() as f64 / plan.due_jobs as f64;
    let due: Vec<i64> = (0..plan.due_jobs)
        .map(|i| first_due + (i as f64 * step) as i64)
        .collect();
    db::insert_jobs(&url, &due, now_ms()).await?;
    let insert = started.elapsed();

    let (mut k, ready) = ctx.setup.start(&url, &log).await?;
    progress(format!(
        "{}: Klaxon ready {:.0} ms after spawn with {} jobs waiting (inserted in {:.1} s)",
        backend.name(),
        ready.as_secs_f64() * 1000.0,
        plan.far_jobs + plan.due_jobs,
        insert.as_secs_f64()
    ));
    if now_ms() >= first_due {
        progress("warning: Klaxon was ready only after the first timers fell due");
    }
    let before = k.metrics().await?;
    let last_due = first_due + plan.due_window.as_millis() as i64;
    let wait = (last_due + 1_000 - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = k.metrics().await?;
    while after
        .lateness_count()
        .saturating_sub(before.lateness_count())
        < plan.due_jobs as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = k.metrics().await?;
    }
    let lateness = proc::bucket_quantiles(&before, &after);
    let due_done = after
        .lateness_count()
        .saturating_sub(before.lateness_count());
    let pending_after = after.gauge("klaxon_jobs_pending{lane=\"paging\"}");
    check_alive(&mut k, &log)?;

    // Idle: nobody talks to Klaxon while it holds the far-future timers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ticks = proc::clock_ticks_per_sec() as f64;
    let t0 = proc::cpu_ticks(k.pid);
    let i0 = Instant::now();
    progress(format!(
        "{}: idle CPU over {} s",
        backend.name(),
        plan.idle.as_secs()
    ));
    tokio::time::sleep(plan.idle).await;
    let t1 = proc::cpu_ticks(k.pid);
    let idle = i0.elapsed();
    let cpu_percent = match (t0, t1) {
        (Some(a), Some(b)) => Some((b - a) as f64 / ticks / idle.as_secs_f64() * 100.0),
        _ => None,
    };
    let rss_kb = proc::status_kb(k.pid, "VmRSS");
    check_alive(&mut k, &log)?;
    let busy = timers_beside_slow_actions(ctx, backend, &k, &url).await;
    check_alive(&mut k, &log)?;
    let stopped = k.stop().await;
    Ok(TimerPhase {
        insert,
        ready,
        lateness,
        due_done,
        pending_after,
        idle,
        cpu_percent,
        rss_kb,
        busy,
        stopped,
        log,
    })
}

/// Run 4b: the same due timers while four one-minute actions run (a slow
/// Docker restart, a check that hangs): the actions have a lane of their own,
/// so the pages must be as punctual as in run 4.
async fn timers_beside_slow_actions(
    ctx: &Ctx,
    backend: Backend,
    k: &proc::Klaxon,
    url: &str,
) -> Result<Busy, String> {
    let plan = &ctx.plan;
    progress(format!(
        "{}: run 4b, {} timers due over {} s while 4 slow actions run",
        backend.name(),
        plan.due_jobs,
        plan.due_window.as_secs()
    ));
    let http = reqwest::Client::new();
    let send = |text: &'static str| {
        let mut command = ctx.slash(k.addr, "/slack/commands", Text::Fixed(text));
        let http = http.clone();
        async move {
            let request = load::Maker::next(&mut command);
            let (parts, body) = request.into_parts();
            let body = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let mut builder = http.post(format!("http://{}{}", k.addr, parts.uri));
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let answer = builder
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<String, String>(answer)
        }
    };
    send("open P3 bench: slow actions").await?;
    for _ in 0..4 {
        let answer = send("run slow-check").await?;
        if !answer.contains("Running") {
            return Err(format!("the slow action did not start: {answer}"));
        }
    }
    let running = |m: &proc::Metrics| {
        m.gauge("klaxon_jobs_running{lane=\"actions\"}")
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut m = k.metrics().await.map_err(|e| e.to_string())?;
    while running(&m) < 4.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = k.metrics().await.map_err(|e| e.to_string())?;
    }
    let before = m;
    let first_due = now_ms() + plan.due_lead.as_millis() as i64;
    let step = plan.due_window.as_millis() as f64 / plan.due_jobs as f64;
    let due: Vec<i64> = (0..plan.due_jobs)
        .map(|i| first_due + (i as f64 * step) as i64)
        .collect();
    db::insert_jobs(url, &due, now_ms())
        .await
        .map_err(|e| e.to_string())?;
    // Rows written behind Klaxon's back wake nobody. A commit wakes the lanes
    // it enqueued jobs on, so the command that tells the paging lane to look
    // again must start a job there: a P2 pages, its first step is due at once
    // (another replica's enqueue would wake its own replica's lane alike).
    send("open P2 bench: timers queued").await?;
    let last_due = first_due + plan.due_window.as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(
        (last_due + 1_000 - now_ms()).max(0) as u64
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = k.metrics().await.map_err(|e| e.to_string())?;
    while after
        .lateness_count()
        .saturating_sub(before.lateness_count())
        < plan.due_jobs as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = k.metrics().await.map_err(|e| e.to_string())?;
    }
    Ok(Busy {
        actions_running: running(&after),
        lateness: proc::bucket_quantiles(&before, &after),
    })
}

/// Run 4b's figures.
pub struct Busy {
    /// Slow actions still running when the timers were measured (4 expected).
    pub actions_running: f64,
    pub lateness: Option<BucketQuantiles>,
}
