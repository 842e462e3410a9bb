//! Klaxon: a chat-ops bot for Slack incident channels.
//!
//! Every trigger (a slash command, a button, an alert) follows one path:
//! **verify → parse into domain types → one database transaction that changes
//! state and enqueues the Slack messages and the jobs → answer the caller →
//! workers do the slow part.** Nothing slow happens inside a webhook, and
//! nothing that waits on the outside world runs on the lane that pages.
//!
//! The modules, bottom up; a module only uses the ones above it in this list
//! (a test, `tests/architecture.rs`, fails on an import cycle):
//!
//! **Domain** — types and rules, no I/O:
//! - [`time`]: instants, the one [`time::Clock`], durations as people write them.
//! - [`incident`]: severities, refs (`INC-n`), states, the timeline, the
//!   `/incident` grammar.
//! - [`alerts`]: Alertmanager and Grafana notifications parsed into alert
//!   batches, the routes that decide where they go, heartbeats and scheduled
//!   maintenance windows.
//! - [`escalation`]: ladders and on-call schedules.
//! - [`status`]: the status page's components, their states and 90-day bars,
//!   and the history's weekly figures (MTTA, MTTR, on-call load).
//! - [`executor`]: the catalog of approved actions and its back ends (HTTP,
//!   Docker, commands), each a [`executor::Step`] that runs one thing.
//! - [`config`]: typed settings from `klaxon.toml` and `KLAXON_*` variables,
//!   and the validation behind `klaxon check-config`.
//! - [`templates`], [`blocks`]: the words Klaxon posts (handlebars, Slack-escaped)
//!   and the Block Kit layout around them.
//! - [`telemetry`]: logging set-up and the Prometheus metrics.
//!
//! **Store and jobs**:
//! - [`store`]: the database. One code base for SQLite (the default) and
//!   PostgreSQL through sqlx's `Any` driver; migrations; the queries; a
//!   shared reading for hot reads (`store::readcache`: the status page,
//!   `/incident list`), kept fresh by a count of changes that PostgreSQL
//!   replicas share through `LISTEN`/`NOTIFY` (`store::changes`); a
//!   transaction that notes the work it enqueued, so its commit wakes only
//!   the workers concerned (`store::Tx`).
//! - [`jobs`]: durable jobs as types, run on lanes (paging, actions, outside)
//!   by the scheduler.
//!
//! **Use cases** — [`usecases`]: what Klaxon does for each trigger (open,
//! acknowledge, ingest alerts, page a level, run an action, silence, a missed
//! heartbeat, a maintenance window, a reminder …), all
//! writing incidents' threads through one seam.
//!
//! **Adapters** — the outside world:
//! - [`slack`]: the Web API client (or the console stand-in) and the outbox
//!   sender that delivers queued messages in order, with rate limits and retries.
//! - [`alertmanager`]: Alertmanager's silences API.
//! - [`tracker`]: the team's issue tracker, through one outgoing webhook
//!   (follow-ups).
//! - [`web`]: the status page (HTML, JSON, RSS, Atom) and the incident
//!   history, rendered on the server with SVG charts.
//! - [`health`]: Klaxon watching itself (database, Slack credentials and
//!   channels, overdue jobs) for the metrics, the log and `/readyz`.
//! - [`inbound`]: what Slack sends (commands, presses, forms, DM events),
//!   acted on the same way whichever transport carried it.
//! - [`http`]: the axum router: Slack endpoints with signature checks, alert
//!   webhooks, health, readiness, metrics, the status page and the history.
//! - [`socket_mode`]: Slack's other transport, an outbound WebSocket (no
//!   public URL needed), feeding the same [`inbound`] handlers.
//!
//! **Wiring** — [`app`] (the state handlers share), [`server`] (build, run,
//! shut down, check-config) and [`demo`] (`klaxon demo`, the whole lifecycle
//! locally, no Slack account).

pub mod alertmanager;
pub mod alerts;
pub mod app;
pub mod blocks;
pub mod config;
pub mod demo;
pub mod escalation;
pub mod executor;
pub mod health;
pub mod http;
pub mod inbound;
pub mod incident;
pub mod jobs;
pub mod server;
pub mod slack;
pub mod socket_mode;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod time;
pub mod tracker;
pub mod usecases;
pub mod web;
