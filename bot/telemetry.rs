//! Logs and metrics: how operators see what Klaxon is doing.
//!
//! Logs go through `tracing`, as JSON when stdout is not a terminal (or when
//! `KLAXON_LOG_FORMAT=json`). Metrics are Prometheus families kept in one
//! [`Metrics`] value; the gauges that describe the database (open incidents,
//! pending messages) are read from it at scrape time, so every replica reports
//! the same truth.

use std::io::IsTerminal;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Starts logging. `RUST_LOG` filters (default `info`). Safe to call twice.
/// The log filter without `RUST_LOG`.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

pub fn init_logging(format: Option<LogFormat>) {
    // An empty or unusable RUST_LOG means the default, never silence. PostgreSQL's
    // notices ("relation … already exists, skipping") are not news.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    // At trace, the WebSocket library logs the Socket Mode request line (its
    // URL carries a one-time ticket) and every envelope whole (Slack's
    // verification token, people's text): never log a secret, whatever
    // RUST_LOG says.
    // Handlebars at debug logs what it renders (incident titles, resolutions).
    let filter = [
        "tungstenite=debug",
        "tokio_tungstenite=debug",
        "handlebars=info",
    ]
    .iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, |f, d| f.add_directive(d));
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlackErrorLabels {
    pub method: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub source: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabels {
    pub level: String,
}

/// A Socket Mode envelope's `type` (`slash_commands`, `interactive`,
/// `events_api`, or `other`: a closed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvelopeLabels {
    pub r#type: String,
}

/// Why a Socket Mode socket was replaced (a closed set, see `crate::socket_mode`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// How a page reached people: `thread` (the page in the incident's thread) or
/// `direct` (a person's direct message).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViaLabels {
    pub via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

/// Why an alert webhook refused a request, and from which sender (closed sets:
/// [`Metrics::new`] creates every series at zero).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: String,
    pub reason: String,
}

/// The reasons an alert webhook refuses a request, as `reason` labels.
pub const REJECT_REASONS: &[&str] = &[
    "unauthorized",
    "unparseable",
    "too_large",
    "unknown_sender",
    "unknown_path",
    "unknown_heartbeat",
    "database_unavailable",
    "failed",
];

/// A Slack channel Klaxon is configured to post in (a closed set: the config's).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

/// A configured heartbeat (a closed set: the config's `[[heartbeats]]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeartbeatLabels {
    pub name: String,
}

/// A job lane (`paging`, `actions`, `outside`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabels {
    pub lane: String,
}

/// A job kind and its lane (closed sets: the registered kinds).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub lane: String,
    pub kind: String,
}

/// 1 ms … ~65 s
fn lateness_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Every metric Klaxon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub incidents_open: Gauge,
    pub outbox_pending: Gauge,
    pub incidents_opened: Family<SourceLabels, Counter>,
    pub slack_messages_sent: Family<MethodLabels, Counter>,
    pub slack_api_errors: Family<SlackErrorLabels, Counter>,
    pub slack_permanent_failures: Counter,
    pub slack_updates_coalesced: Counter,
    pub slack_doubles_avoided: Counter,
    pub jobs_pending: Family<LaneLabels, Gauge>,
    pub jobs_running: Family<LaneLabels, Gauge>,
    pub job_lateness: Family<JobLabels, Histogram, fn() -> Histogram>,
    pub jobs_timed_out: Family<JobLabels, Counter>,
    pub jobs_taken_over: Family<LaneLabels, Counter>,
    pub job_failures: Family<JobLabels, Counter>,
    pub pages_dropped: Counter,
    pub page_delivery: Family<ViaLabels, Histogram, fn() -> Histogram>,
    pub socket_enabled: Gauge,
    pub socket_connections: Gauge,
    pub socket_envelopes: Family<EnvelopeLabels, Counter>,
    pub socket_ack: Histogram,
    pub socket_reconnects: Family<ReasonLabels, Counter>,
    pub pages_sent: Family<LevelLabels, Counter>,
    pub alerts_received: Family<AlertLabels, Counter>,
    pub notifications_deduplicated: Counter,
    pub alerts_stale: Family<SourceLabels, Counter>,
    pub alerts_rejected: Family<RejectLabels, Counter>,
    pub database_up: Gauge,
    /// See `crate::store::changes`.
    pub changes_listening: Gauge,
    pub changes_heard: Counter,
    pub slack_auth_ok: Gauge,
    pub slack_scopes_missing: Gauge,
    pub slack_reachable: Gauge,
    pub slack_channel_ok: Family<ChannelLabels, Gauge>,
    pub scheduler_last_run: Gauge<f64, AtomicU64>,
    pub outbox_last_run: Gauge<f64, AtomicU64>,
    pub jobs_oldest_due: Family<LaneLabels, Gauge<f64, AtomicU64>>,
    pub heartbeat_last_beat: Family<HeartbeatLabels, Gauge<f64, AtomicU64>>,
    pub heartbeat_beats: Family<HeartbeatLabels, Counter>,
    pub heartbeat_missed: Family<HeartbeatLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            http_duration.clone(),
        );
        let incidents_open = Gauge::default();
        registry.register(
            "klaxon_incidents_open",
            "Incidents not yet resolved",
            incidents_open.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "klaxon_outbox_pending",
            "Slack messages waiting in the outbox",
            outbox_pending.clone(),
        );
        let incidents_opened = Family::<SourceLabels, Counter>::default();
        registry.register(
            "klaxon_incidents_opened",
            "Incidents opened by this process, by source",
            incidents_opened.clone(),
        );
        let slack_messages_sent = Family::<MethodLabels, Counter>::default();
        registry.register(
            "klaxon_slack_messages_sent",
            "Slack Web API calls that succeeded, by method",
            slack_messages_sent.clone(),
        );
        let slack_api_errors = Family::<SlackErrorLabels, Counter>::default();
        registry.register(
            "klaxon_slack_api_errors",
            "Slack Web API calls that failed, by method and error",
            slack_api_errors.clone(),
        );
        let slack_permanent_failures = Counter::default();
        registry.register(
            "klaxon_slack_permanent_failures",
            "Outbox messages given up on because Slack will never accept them",
            slack_permanent_failures.clone(),
        );
        let slack_updates_coalesced = Counter::default();
        registry.register(
            "klaxon_slack_updates_coalesced",
            "Message updates not sent because a newer update of the same message waited behind them",
            slack_updates_coalesced.clone(),
        );
        let slack_doubles_avoided = Counter::default();
        registry.register(
            "klaxon_slack_doubles_avoided",
            "Posts whose outcome was lost (a timeout, a database failure) found in Slack by their metadata, and so not posted again",
            slack_doubles_avoided.clone(),
        );
        let jobs_pending = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "klaxon_jobs_pending",
            "Durable jobs waiting (escalation steps and other timers), by lane",
            jobs_pending.clone(),
        );
        let jobs_running = Family::<LaneLabels, Gauge>::default();
        registry.register(
            "klaxon_jobs_running",
            "Jobs this process runs now, by lane",
            jobs_running.clone(),
        );
        let job_lateness = Family::<JobLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            lateness_histogram,
        );
        registry.register_with_unit(
            "klaxon_job_lateness",
            "How late a job started: actual start minus due time, by lane and kind",
            Unit::Seconds,
            job_lateness.clone(),
        );
        let page_delivery = Family::<ViaLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            lateness_histogram,
        );
        registry.register_with_unit(
            "klaxon_page_delivery_delay",
            "From a page being queued (its escalation step ran) to Slack accepting it, by via (thread, direct); add klaxon_job_lateness for the time from due",
            Unit::Seconds,
            page_delivery.clone(),
        );
        let socket_enabled = Gauge::default();
        registry.register(
            "klaxon_socket_mode_enabled",
            "1 when Socket Mode is on (KLAXON_SLACK_APP_TOKEN set), else 0",
            socket_enabled.clone(),
        );
        let socket_connections = Gauge::default();
        registry.register(
            "klaxon_socket_mode_connections",
            "Socket Mode sockets open and past Slack's hello (0 when Socket Mode is off or the link is down; 2 during a refresh)",
            socket_connections.clone(),
        );
        let socket_envelopes = Family::<EnvelopeLabels, Counter>::default();
        registry.register(
            "klaxon_socket_mode_envelopes",
            "Socket Mode envelopes received, by type (slash_commands, interactive, events_api, other), redeliveries included",
            socket_envelopes.clone(),
        );
        let socket_ack = latency_histogram();
        registry.register_with_unit(
            "klaxon_socket_mode_ack",
            "From a Socket Mode envelope read off the socket to its acknowledgement written (Slack waits 3 s)",
            Unit::Seconds,
            socket_ack.clone(),
        );
        let socket_reconnects = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "klaxon_socket_mode_reconnects",
            "Socket Mode sockets opened to replace one, by reason (refresh_requested, warning, closed, no_pong, open_failed, connect_failed, no_hello, link_disabled)",
            socket_reconnects.clone(),
        );
        let jobs_timed_out = Family::<JobLabels, Counter>::default();
        registry.register(
            "klaxon_jobs_timed_out",
            "Jobs abandoned at their lane's timeout (retried later), by lane and kind",
            jobs_timed_out.clone(),
        );
        let jobs_taken_over = Family::<LaneLabels, Counter>::default();
        registry.register(
            "klaxon_jobs_taken_over",
            "Jobs claimed after another worker's lease on them ran out before they finished (a replica died or stalled), by lane",
            jobs_taken_over.clone(),
        );
        let job_failures = Family::<JobLabels, Counter>::default();
        registry.register(
            "klaxon_job_failures",
            "Job runs that failed and were put back for a retry, by lane and kind",
            job_failures.clone(),
        );
        let pages_dropped = Counter::default();
        registry.register(
            "klaxon_pages_dropped",
            "Pages not delivered because their incident was acknowledged or resolved while they waited",
            pages_dropped.clone(),
        );
        let pages_sent = Family::<LevelLabels, Counter>::default();
        registry.register(
            "klaxon_pages_sent",
            "People and groups paged, by ladder level",
            pages_sent.clone(),
        );
        let alerts_received = Family::<AlertLabels, Counter>::default();
        registry.register(
            "klaxon_alerts_received",
            "Alerts received in webhook notifications, by source and status",
            alerts_received.clone(),
        );
        let notifications_deduplicated = Counter::default();
        registry.register(
            "klaxon_alert_notifications_deduplicated",
            "Alert notifications delivered again (HA peers, retries) and ignored",
            notifications_deduplicated.clone(),
        );
        let alerts_stale = Family::<SourceLabels, Counter>::default();
        registry.register(
            "klaxon_alerts_stale",
            "Firing alerts already seen resolved (same fingerprint and start, delivered out of order) and ignored",
            alerts_stale.clone(),
        );
        let alerts_rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "klaxon_alerts_rejected",
            "Alert webhook requests refused, by sender and reason (Alertmanager never retries a 4xx)",
            alerts_rejected.clone(),
        );
        for source in ["alertmanager", "grafana", "unknown", "heartbeat"] {
            if source != "heartbeat" {
                let _ = alerts_stale.get_or_create(&SourceLabels {
                    source: source.into(),
                });
            }
            for reason in REJECT_REASONS {
                let _ = alerts_rejected.get_or_create(&RejectLabels {
                    source: source.into(),
                    reason: (*reason).into(),
                });
            }
        }
        let database_up = Gauge::default();
        registry.register(
            "klaxon_database_up",
            "1 while the database answers (checked every 15 s and by /readyz), 0 otherwise",
            database_up.clone(),
        );
        let changes_listening = Gauge::default();
        registry.register(
            "klaxon_replica_changes_listening",
            "PostgreSQL: 1 while this replica hears the other replicas' changes to incidents (LISTEN klaxon_incidents), 0 otherwise (then /incident list reads the database each time); always 0 on SQLite, which has no other replica",
            changes_listening.clone(),
        );
        let changes_heard = Counter::default();
        registry.register(
            "klaxon_replica_changes_heard",
            "PostgreSQL: transactions that changed incidents, as notified to this replica (its own included)",
            changes_heard.clone(),
        );
        // 1 until Slack says otherwise: a Klaxon that has not asked yet (its
        // database is not up) must not look like one with a revoked token.
        let slack_auth_ok = Gauge::default();
        slack_auth_ok.set(1);
        registry.register(
            "klaxon_slack_auth_ok",
            "0 while Slack refuses the bot token (auth.test every minute: invalid_auth, token_revoked …), 1 otherwise (also before the first check and in console mode)",
            slack_auth_ok.clone(),
        );
        let slack_reachable = Gauge::default();
        slack_reachable.set(1);
        registry.register(
            "klaxon_slack_reachable",
            "0 while auth.test gets no answer from Slack's API (timeout, a proxy's refusal, a wrong API URL, Slack's 5xx), 1 otherwise",
            slack_reachable.clone(),
        );
        let slack_scopes_missing = Gauge::default();
        registry.register(
            "klaxon_slack_scopes_missing",
            "How many of the scopes Klaxon uses the bot token lacks (from auth.test's X-OAuth-Scopes; the log names them)",
            slack_scopes_missing.clone(),
        );
        let slack_channel_ok = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "klaxon_slack_channel_ok",
            "1 while Klaxon can post in a configured channel, 0 when Slack refuses (not in the channel, not found, archived)",
            slack_channel_ok.clone(),
        );
        // From the process's start, so "stalled" counts from there.
        let started = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let scheduler_last_run = Gauge::<f64, AtomicU64>::default();
        scheduler_last_run.set(started);
        registry.register_with_unit(
            "klaxon_scheduler_last_run_timestamp",
            "When a job lane last looked for due jobs (Unix time); lanes look at least every 30 s",
            Unit::Seconds,
            scheduler_last_run.clone(),
        );
        let outbox_last_run = Gauge::<f64, AtomicU64>::default();
        outbox_last_run.set(started);
        registry.register_with_unit(
            "klaxon_outbox_last_run_timestamp",
            "When the outbox sender last looked for messages to send (Unix time); it looks at least every 30 s",
            Unit::Seconds,
            outbox_last_run.clone(),
        );
        let jobs_oldest_due = Family::<LaneLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "klaxon_jobs_oldest_due",
            "How long the oldest job that is due and not finished has been due, by lane (0 when none)",
            Unit::Seconds,
            jobs_oldest_due.clone(),
        );
        let heartbeat_last_beat = Family::<HeartbeatLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "klaxon_heartbeat_last_beat_timestamp",
            "When each heartbeat last beat (Unix time; 0 before its first beat)",
            Unit::Seconds,
            heartbeat_last_beat.clone(),
        );
        let heartbeat_beats = Family::<HeartbeatLabels, Counter>::default();
        registry.register(
            "klaxon_heartbeat_beats",
            "Beats received per heartbeat (Alertmanager notifications of its route, or POST /heartbeats/NAME)",
            heartbeat_beats.clone(),
        );
        let heartbeat_missed = Family::<HeartbeatLabels, Gauge>::default();
        registry.register(
            "klaxon_heartbeat_missed",
            "1 while a heartbeat's missed-beat incident is open, 0 otherwise (every replica reads it from the database, at least every 15 s)",
            heartbeat_missed.clone(),
        );
        Metrics {
            heartbeat_last_beat,
            heartbeat_beats,
            heartbeat_missed,
            database_up,
            changes_listening,
            changes_heard,
            slack_auth_ok,
            slack_scopes_missing,
            slack_reachable,
            slack_channel_ok,
            scheduler_last_run,
            outbox_last_run,
            jobs_oldest_due,
            alerts_stale,
            alerts_rejected,
            registry,
            alerts_received,
            notifications_deduplicated,
            jobs_pending,
            jobs_running,
            job_lateness,
            page_delivery,
            socket_enabled,
            socket_connections,
            socket_envelopes,
            socket_ack,
            socket_reconnects,
            jobs_timed_out,
            jobs_taken_over,
            job_failures,
            pages_dropped,
            pages_sent,
            http_requests,
            http_duration,
            incidents_open,
            outbox_pending,
            incidents_opened,
            slack_messages_sent,
            slack_api_errors,
            slack_permanent_failures,
            slack_updates_coalesced,
            slack_doubles_avoided,
        }
    }

    /// Creates the labelled series Klaxon can know in advance at zero, so the
    /// first event of each shows as an increase (`increase()` cannot see a
    /// series that appears at 1): every alert source and status, incident
    /// source, Slack method, ladder level (`levels`) and job (`jobs`: lane, kind).
    pub fn start_series(&self, levels: &[String], jobs: &[(&str, &str)]) {
        for source in ["alertmanager", "grafana"] {
            for status in ["firing", "resolved"] {
                let _ = self.alerts_received.get_or_create(&AlertLabels {
                    source: source.into(),
                    status: status.into(),
                });
            }
        }
        for source in ["slack", "alertmanager", "grafana"] {
            let _ = self.incidents_opened.get_or_create(&SourceLabels {
                source: source.into(),
            });
        }
        for method in [
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "conversations.open",
        ] {
            let _ = self.slack_messages_sent.get_or_create(&MethodLabels {
                method: method.into(),
            });
        }
        for kind in ["slash_commands", "interactive", "events_api", "other"] {
            let _ = self.socket_envelopes.get_or_create(&EnvelopeLabels {
                r#type: kind.into(),
            });
        }
        for reason in [
            "refresh_requested",
            "warning",
            "link_disabled",
            "closed",
            "no_pong",
            "open_failed",
            "connect_failed",
            "no_hello",
        ] {
            let _ = self.socket_reconnects.get_or_create(&ReasonLabels {
                reason: reason.into(),
            });
        }
        for via in ["thread", "direct"] {
            let _ = self
                .page_delivery
                .get_or_create(&ViaLabels { via: via.into() });
        }
        for level in levels {
            let _ = self.pages_sent.get_or_create(&LevelLabels {
                level: level.clone(),
            });
        }
        for (lane, kind) in jobs {
            let labels = JobLabels {
                lane: (*lane).into(),
                kind: (*kind).into(),
            };
            let _ = self.job_lateness.get_or_create(&labels);
            let _ = self.jobs_timed_out.get_or_create(&labels);
            let _ = self.job_failures.get_or_create(&labels);
        }
        for lane in jobs.iter().map(|(lane, _)| *lane) {
            let labels = LaneLabels { lane: lane.into() };
            let _ = self.jobs_running.get_or_create(&labels);
            let _ = self.jobs_pending.get_or_create(&labels);
            let _ = self.jobs_taken_over.get_or_create(&labels);
        }
    }

    /// The OpenMetrics text exposition (what Prometheus asks for).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The classic Prometheus text format (version 0.0.4), for scrapers and
    /// tools that do not ask for OpenMetrics (`promtool check metrics`, curl).
    pub fn encode_classic(&self) -> String {
        classic_text(&self.encode())
    }
}

/// OpenMetrics text → the classic Prometheus text format: a counter family
/// `x` is named `x_total` in its HELP and TYPE lines (as its samples are),
/// and the `# UNIT` and `# EOF` lines go.
pub fn classic_text(openmetrics: &str) -> String {
    // TYPE follows HELP in OpenMetrics: read the types first.
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
