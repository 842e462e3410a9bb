//! Klaxon: a chat-ops bot for Slack incident channels.
//!
//! Every trigger (a slash command, a button, later an alert) follows one path:
//! **verify → parse into domain types → one database transaction that changes
//! state and enqueues the Slack messages → answer the caller → the outbox sender
//! delivers the messages.** Nothing slow happens inside a webhook.
//!
//! The modules, in the order a newcomer should read them:
//!
//! - [`incident`]: the domain. Severities, incident refs (`INC-n`), states, the
//!   timeline, the `/incident` command grammar, and the service that applies a
//!   command to the database.
//! - [`escalation`]: ladders, on-call schedules, and the job that pages one
//!   level and schedules the next, until somebody acknowledges.
//! - [`scheduler`]: runs durable jobs (escalation steps, action runs, silences)
//!   when they fall due.
//! - [`executor`]: approved checks and restarts (HTTP, Docker, commands) with
//!   permissions, approvals and an append-only audit log.
//! - [`alerts`]: alert notifications from Alertmanager and Grafana webhooks,
//!   parsed into alert batches, and the routes that decide where they go.
//! - [`store`]: the database. One code base for SQLite (the default) and
//!   PostgreSQL through sqlx's `Any` driver; migrations; the queries.
//! - [`slack`]: talking to Slack. Block Kit rendering, the Web API client (or the
//!   console stand-in when no bot token is set), and the outbox sender that
//!   delivers queued messages in order, with rate limits and retries.
//! - [`templates`]: the communication templates (handlebars, Slack-escaped).
//! - [`http`]: the axum router: Slack endpoints with signature checks, health,
//!   readiness and metrics.
//! - [`config`]: typed settings from `klaxon.toml` and `KLAXON_*` variables, and
//!   the validation behind `klaxon check-config`.
//! - [`telemetry`]: logging set-up and the Prometheus metrics.
//! - [`app`]: wires everything together and runs it until shutdown.
//! - [`demo`]: `klaxon demo`, the whole lifecycle locally, no Slack account.
//! - [`time`]: epoch-millisecond timestamps and human durations.

pub mod alerts;
pub mod app;
pub mod config;
pub mod demo;
pub mod escalation;
pub mod executor;
pub mod http;
pub mod incident;
pub mod scheduler;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod time;
