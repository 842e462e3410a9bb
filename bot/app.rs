//! Wiring: settings in, a running Klaxon out.
//!
//! [`App::build`] connects and migrates the database, loads the templates and
//! chooses the Slack client (or the console stand-in). [`run`] serves HTTP and
//! runs the outbox sender until the shutdown future completes; then it stops
//! accepting connections, lets requests in flight and the Slack call in flight
//! finish, and leaves everything else in the database for the next start.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

use crate::alerts::silence::AlertmanagerApi;
use crate::config::Settings;
use crate::incident::service::IncidentService;
use crate::scheduler::Scheduler;
use crate::slack::api::{ConsoleMessage, SlackApi};
use crate::slack::groups::GroupDirectory;
use crate::slack::outbox::OutboxSender;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::templates::Templates;

/// Everything a request handler may need.
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub service: IncidentService,
    pub metrics: Arc<Metrics>,
    pub slack: Arc<SlackApi>,
    pub verifier: Option<SlackEventSignatureVerifier>,
    pub outbox_wake: Arc<Notify>,
    pub jobs_wake: Arc<Notify>,
    /// Alertmanager's API, when `alerts.alertmanager_url` is set (silences).
    pub alertmanager: Option<AlertmanagerApi>,
    /// Slack user group members, for action permissions.
    pub groups: GroupDirectory,
}

/// Installs the one TLS crypto provider the process uses (two are linked in).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl App {
    /// Connects, migrates and loads templates. `transcript` receives what the
    /// console stand-in posts (used by `klaxon demo`).
    pub async fn build(
        settings: Settings,
        transcript: Option<mpsc::UnboundedSender<ConsoleMessage>>,
    ) -> anyhow::Result<Arc<App>> {
        install_crypto_provider();
        let settings = Arc::new(settings);
        let store = Store::connect(settings.database_url.expose_secret())
            .await
            .context("cannot connect to the database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
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
            SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
                s.expose_secret().to_string(),
            ))
        });
        if verifier.is_none() {
            tracing::warn!(
                "no Slack signing secret: every request to /slack/* will be refused (401)"
            );
        }
        let metrics = Arc::new(Metrics::new());
        let outbox_wake = Arc::new(Notify::new());
        let jobs_wake = Arc::new(Notify::new());
        let service = IncidentService::new(
            store.clone(),
            Arc::new(templates),
            outbox_wake.clone(),
            jobs_wake.clone(),
            metrics.clone(),
            settings.clone(),
        );
        let alertmanager = settings
            .alerts
            .alertmanager_url
            .as_deref()
            .map(AlertmanagerApi::new)
            .transpose()?;
        let groups = GroupDirectory::new(slack.clone());
        Ok(Arc::new(App {
            groups,
            alertmanager,
            settings,
            store,
            service,
            metrics,
            slack,
            verifier,
            outbox_wake,
            jobs_wake,
        }))
    }
}

/// Serves on `listener` until `shutdown` completes, then shuts down cleanly.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let sender = Arc::new(OutboxSender::new(
        app.store.clone(),
        app.slack.clone(),
        app.settings.outbox.clone(),
        app.metrics.clone(),
        app.outbox_wake.clone(),
    ));
    let sender_task = tokio::spawn(sender.run(stop_rx.clone()));
    let scheduler = Arc::new(Scheduler::new(
        app.store.clone(),
        app.service.clone(),
        app.metrics.clone(),
        app.jobs_wake.clone(),
        app.outbox_wake.clone(),
        app.alertmanager.clone(),
    ));
    let scheduler_task = tokio::spawn(scheduler.run(stop_rx));

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "klaxon listening");
    let router = crate::http::router(app.clone());
    let served = serve(listener, router, &app.settings.http, shutdown).await;

    tracing::info!("shutting down: waiting for the scheduler and the outbox sender");
    let _ = stop_tx.send(true);
    let _ = scheduler_task.await;
    let _ = sender_task.await;
    app.store.close().await;
    served.context("the HTTP server failed")
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
        let (stream, _peer) = tokio::select! {
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
        let service = TowerToHyperService::new(router.clone());
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
