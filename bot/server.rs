//! Wiring: settings in, a running Klaxon out.
//!
//! [`build`] opens the database (lazily: a PostgreSQL that is not up yet is
//! waited for), loads the templates, chooses the Slack client (or the console
//! stand-in) and plugs the adapters into the use cases. [`run`] serves HTTP at
//! once, migrates the database when it answers, then runs the job lanes, the
//! outbox sender and the health checks until the shutdown future completes; then it stops accepting connections,
//! lets requests in flight, running jobs (within a grace period) and the Slack
//! call in flight finish, and leaves everything else in the database for the
//! next start. [`check_config`] is `klaxon check-config`.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::alertmanager::AlertmanagerApi;
use crate::app::App;
use crate::config::Settings;
use crate::jobs::Registry;
use crate::jobs::scheduler::Scheduler;
use crate::slack::api::{ConsoleMessage, SlackApi};
use crate::slack::groups::GroupDirectory;
use crate::slack::outbox::OutboxSender;
use crate::store::Store;
use crate::store::changes::Changes;
use crate::store::outbox::OutboxWake;
use crate::store::readcache::ReadCache;
use crate::telemetry::Metrics;
use crate::templates::Templates;
use crate::time::Clock;
use crate::usecases::{
    Ctx, actions, alerts, escalate, followups, heartbeats, housekeeping, maintenance, ports,
    postmortem, reminders, rooms, silences,
};

/// Installs the one TLS crypto provider the process uses (two are linked in).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the database and loads templates, on the system clock. `transcript`
/// receives what the console stand-in posts (used by `klaxon demo`).
pub async fn build(
    settings: Settings,
    transcript: Option<mpsc::UnboundedSender<ConsoleMessage>>,
) -> anyhow::Result<Arc<App>> {
    build_with_clock(settings, transcript, Clock::system()).await
}

/// Like [`build`], on `clock` (tests and the demo move it forward).
pub async fn build_with_clock(
    settings: Settings,
    transcript: Option<mpsc::UnboundedSender<ConsoleMessage>>,
    clock: Clock,
) -> anyhow::Result<Arc<App>> {
    install_crypto_provider();
    let settings = Arc::new(settings);
    // A PostgreSQL that is down now is waited for (see `run`); a SQLite file
    // that cannot be opened is a mistake to report at once.
    let database = crate::store::describe(settings.database_url.expose_secret());
    tracing::info!(%database, "opening the database");
    if settings.alert_token.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %settings.listen,
            "KLAXON_ALERT_TOKEN is not set: the alert webhooks accept anyone who can reach Klaxon"
        );
    }
    let store = Store::connect_lazily(settings.database_url.expose_secret())
        .await
        .with_context(|| {
            if database.starts_with("SQLite") {
                format!("cannot open the database ({database}): does its directory exist, and may Klaxon write there?")
            } else {
                format!("cannot open the database ({database})")
            }
        })?;
    let templates = Templates::load(settings.templates_dir.as_deref()).map_err(|problems| {
        anyhow::anyhow!(
            "templates are broken: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let slack = Arc::new(match &settings.slack.bot_token {
        Some(token) => SlackApi::web(
            &settings.slack.api_url,
            token.clone(),
            settings.outbox.request_timeout,
        )?,
        None => {
            tracing::warn!("no Slack bot token: console mode, messages go to the log");
            SlackApi::console(transcript)
        }
    });
    let verifier = settings.slack.signing_secret.as_ref().map(|s| {
        SlackEventSignatureVerifier::new(&SlackSigningSecret::new(s.expose_secret().to_string()))
    });
    if verifier.is_none() {
        if settings.slack.app_token.is_some() {
            tracing::info!(
                "Socket Mode without a signing secret: Slack's HTTP endpoints (/slack/*) refuse every request (401)"
            );
        } else {
            tracing::warn!(
                "no Slack signing secret: every request to /slack/* will be refused (401)"
            );
        }
    }
    let alertmanager: Option<Arc<dyn ports::Alertmanager>> = match &settings.alerts.alertmanager_url
    {
        Some(url) => Some(Arc::new(AlertmanagerApi::new(url)?)),
        None => None,
    };
    let tracker: Option<Arc<dyn ports::Tracker>> = match &settings.followup_webhook {
        Some(webhook) => Some(Arc::new(crate::tracker::WebhookTracker::new(webhook)?)),
        None => None,
    };
    let metrics = Metrics::new();
    let levels: Vec<String> = settings
        .escalation
        .ladders
        .values()
        .flat_map(|l| l.levels.iter().map(|level| level.name.clone()))
        .collect();
    metrics.start_series(&levels, &job_registry().lanes_and_kinds());
    let backend = store.backend();
    let ctx = Ctx {
        store,
        clock,
        templates: Arc::new(templates),
        metrics: Arc::new(metrics),
        outbox_wake: Arc::new(OutboxWake::default()),
        jobs_wake: Default::default(),
        directory: Arc::new(GroupDirectory::new(slack.clone())),
        reach: Default::default(),
        alertmanager,
        conversations: Arc::new(crate::slack::conversations::SlackConversations::new(
            slack.clone(),
        )),
        tracker,
        settings,
        changes: Arc::new(match backend {
            crate::store::Backend::Sqlite => Changes::local(),
            crate::store::Backend::Postgres => Changes::shared(),
        }),
        open_incidents: Arc::new(ReadCache::new(open_incidents_for(backend))),
    };
    Ok(Arc::new(App {
        database_ready: AtomicBool::new(false),
        ctx,
        slack,
        verifier,
        events_in_flight: Default::default(),
        status_page: crate::web::status::Cache::new(crate::web::status::CACHE_FOR),
    }))
}

/// How long `/incident list` may serve its copy of the open incidents while
/// the count of changes says nothing changed (`crate::store::changes`). On
/// SQLite this process is the only writer, so the count is exact and the
/// minute a safety net. On PostgreSQL it counts what other replicas' commits
/// notified; the 5 s bound what a lost connection could hide before it is
/// noticed.
fn open_incidents_for(backend: crate::store::Backend) -> Duration {
    match backend {
        crate::store::Backend::Sqlite => Duration::from_secs(60),
        crate::store::Backend::Postgres => Duration::from_secs(5),
    }
}

/// Every job type Klaxon runs: the one registry, built here at wiring time.
pub fn job_registry() -> Registry<Ctx> {
    let mut registry = Registry::default();
    registry
        .register::<escalate::Step>()
        .register::<alerts::StormDigest>()
        .register::<alerts::CheckGroup>()
        .register::<actions::Run>()
        .register::<actions::Expire>()
        .register::<actions::Watchdog>()
        .register::<silences::Create>()
        .register::<silences::ExpireAll>()
        .register::<housekeeping::Prune>()
        .register::<heartbeats::Watch>()
        .register::<maintenance::End>()
        .register::<maintenance::Occurrence>()
        .register::<maintenance::Silence>()
        .register::<maintenance::Unsilence>()
        .register::<reminders::UpdateDue>()
        .register::<reminders::AckStale>()
        .register::<escalate::GroupPage>()
        .register::<rooms::Open>()
        .register::<rooms::Invite>()
        .register::<rooms::Archive>()
        .register::<postmortem::Due>()
        .register::<followups::File>();
    registry
}

/// Serves on `listener` until `shutdown` completes, then shuts down cleanly.
///
/// HTTP answers at once: `/healthz` 200, `/readyz` 503 until the database
/// answers and is migrated (retried with backoff, so a database that starts
/// after Klaxon is simply waited for). Then the job lanes and the outbox
/// sender start, and `/readyz` turns 200.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "klaxon listening");
    let router = crate::http::router(app.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    // The status page's own listener (`status.listen`), if set: only the public pages.
    let status_page = match app.ctx.settings.status.listen {
        None => None,
        Some(at) => {
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for the status page"))?;
            tracing::info!(addr = %at, "status page listening");
            let router = crate::http::status::router(app.clone());
            let http = app.ctx.settings.http.clone();
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                serve(listener, router, &http, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
            }))
        }
    };
    let workers = tokio::spawn(run_workers(app.clone(), stop_rx));
    let served = serve(listener, router, &app.ctx.settings.http, shutdown).await;

    tracing::info!("shutting down: waiting for the job lanes and the outbox sender");
    let _ = stop_tx.send(true);
    if let Some(status_page) = status_page {
        let _ = status_page.await;
    }
    let _ = workers.await;
    app.ctx.store.close().await;
    served.context("the HTTP server failed")
}

/// Waits for the database (migrating it), then runs the job lanes, the outbox
/// sender and the health checks until `stop` turns true.
async fn run_workers(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let ctx = &app.ctx;
    let mut attempts = 0u32;
    loop {
        match ctx.store.migrate().await {
            Ok(()) => break,
            Err(e) => {
                attempts = attempts.saturating_add(1);
                let wait = crate::time::backoff(attempts, Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in = ?wait, "the database does not answer (or cannot be migrated) yet; not ready");
                ctx.metrics.database_up.set(0);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
    app.database_ready.store(true, Ordering::Release);
    ctx.metrics.database_up.set(1);
    tracing::info!("database ready");
    let stop_rx = stop.clone();
    let sender = Arc::new(OutboxSender::new(
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.reach.clone(),
        app.slack.clone(),
        ctx.settings.outbox.clone(),
        ctx.metrics.clone(),
        ctx.outbox_wake.clone(),
    ));
    // The sender stops after the lanes: pages queued while running jobs
    // finish at shutdown still go out.
    let (stop_sender, sender_stopped) = watch::channel(false);
    let sender_task = tokio::spawn(sender.run(sender_stopped));
    if let Err(e) = housekeeping::schedule(ctx).await {
        tracing::warn!(error = %e, "could not schedule housekeeping");
    }
    // Heartbeats and maintenance schedules are armed once; if the database
    // fails right now, keep trying: an unarmed heartbeat would never report
    // a silence.
    let arming = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                let armed = match heartbeats::watch_all(&ctx).await {
                    Ok(()) => maintenance::schedule_all(&ctx).await,
                    Err(e) => Err(e),
                };
                match armed {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?wait, "could not arm the heartbeats and maintenance schedules");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    };
    let scheduler = Arc::new(Scheduler::new(
        job_registry(),
        ctx.clone(),
        ctx.store.clone(),
        ctx.clock.clone(),
        ctx.metrics.clone(),
        ctx.jobs_wake.clone(),
    ));
    let scheduler_task = tokio::spawn(scheduler.run(stop_rx.clone()));
    // Socket Mode starts once the database answers: an envelope is acted on
    // (and acknowledged) only when it can be recorded.
    let socket_task = match (&ctx.settings.slack.app_token, app.slack.is_console()) {
        (Some(token), false) => Some(tokio::spawn(crate::socket_mode::run(
            app.clone(),
            token.clone(),
            crate::socket_mode::connect::Proxies::from_env(&crate::config::process_env),
            stop_rx.clone(),
        ))),
        _ => None,
    };
    let listen_task = ctx.store.backend().is_shared().then(|| {
        tokio::spawn(crate::store::changes::listen(
            ctx.settings.database_url.clone(),
            ctx.changes.clone(),
            crate::store::changes::ListenMetrics {
                listening: ctx.metrics.changes_listening.clone(),
                heard: ctx.metrics.changes_heard.clone(),
            },
            stop_rx.clone(),
        ))
    });
    let health_task = tokio::spawn(crate::health::watch(
        ctx.clone(),
        app.slack.clone(),
        stop_rx,
    ));
    if let Some(task) = socket_task {
        let _ = task.await;
    }
    let _ = scheduler_task.await;
    arming.abort();
    let _ = stop_sender.send(true);
    let _ = sender_task.await;
    let _ = health_task.await;
    if let Some(task) = listen_task {
        let _ = task.await;
    }
}

/// Accepts connections until `shutdown`, then lets requests in flight finish.
///
/// Like `axum::serve`, plus a header read timeout, so a client that trickles
/// its headers (slow-loris) is cut off instead of holding a connection forever.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    http: &crate::config::HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Handlers that must know who connected (the history's trusted proxies) read it here.
        let peer = crate::http::history::Peer(peer.ip());
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer);
                req
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
        });
    }
    drop(listener);
    // Requests in flight finish (bounded by the request timeout); idle connections close.
    if tokio::time::timeout(http.request_timeout * 2, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// `klaxon check-config`: every problem with the configuration and the templates,
/// in one pass. Exit code 0 when there is none, 1 otherwise.
pub fn check_config(path: Option<&std::path::Path>) -> std::process::ExitCode {
    let path = crate::config::resolve_path(path);
    let source = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults (no klaxon.toml)".into());
    let mut problems: Vec<String> = Vec::new();
    let templates_dir = match crate::config::load(path.as_deref(), &crate::config::process_env) {
        Ok(s) => s.templates_dir,
        Err(e) => {
            problems.extend(e.0.iter().map(ToString::to_string));
            None
        }
    };
    match Templates::load(templates_dir.as_deref()) {
        Ok(t) => problems.extend(t.check().iter().map(|e| format!("templates: {e}"))),
        Err(errors) => problems.extend(errors.iter().map(|e| format!("templates: {e}"))),
    }
    if problems.is_empty() {
        println!("{source}: configuration and templates are valid");
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("{source}: {} problem(s)", problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        std::process::ExitCode::from(1)
    }
}
