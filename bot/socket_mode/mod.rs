//! Socket Mode: Slack's second transport, for a Klaxon with no public URL.
//!
//! With an app-level token (`KLAXON_SLACK_APP_TOKEN`, `xapp-…`, scope
//! `connections:write`) Klaxon asks Slack for a WebSocket URL
//! (`apps.connections.open`, through `KLAXON_SLACK_API_URL` like every Web API
//! call), connects out to it, and Slack sends slash commands, interactions and
//! events down the socket as envelopes instead of HTTP requests (Slack: "Using
//! Socket Mode"). Each envelope's payload goes to the same handlers as the
//! HTTP endpoints ([`crate::inbound`]); the answer rides back in the
//! envelope's acknowledgement (`{"envelope_id", "payload"}`), which Slack
//! expects within 3 seconds.
//!
//! The link lives on its own:
//! - a socket is put to work only after Slack's `hello`;
//! - `disconnect` with `refresh_requested` or `warning` (Slack refreshes every
//!   socket every few hours) opens a fresh socket at once while the old one
//!   keeps reading and answering until Slack closes it (or [`LEAVE_WITHIN`]
//!   passes): Slack allows several sockets per app, and the side that closes
//!   a socket is the one that knows what was in flight on it, so Klaxon
//!   leaves that to Slack;
//! - a dropped socket, a socket silent past [`SILENT_FOR`] (Klaxon pings every
//!   [`PING_EVERY`]), a failing `apps.connections.open` or connect → a new
//!   socket, forever, logged, with backoff from 1 s up to [`MAX_BACKOFF`]
//!   (or Slack's `Retry-After`); a socket that lived less than [`STABLE_FOR`]
//!   counts as a failure too, so a proxy that cuts sockets right after
//!   `hello` does not make Klaxon reconnect in a tight loop;
//! - `link_disabled` (Socket Mode turned off in the app's settings) → an error
//!   in the log and on `/readyz` until a socket works again, and a try every
//!   [`MAX_BACKOFF`] in case it is turned on again.
//!
//! Envelopes are acted on 32 at a time per socket, in arrival order, and the
//! work on one always runs to its end, also when its socket goes meanwhile:
//! cutting it off halfway could leave an event marked as seen but not done,
//! and Slack's redelivery would then do nothing. What [`envelope`] does with
//! each: act, acknowledge within Slack's 3 s, leave unacknowledged what Slack
//! should redeliver. A redelivered command, press or event does nothing twice
//! (the inbound replay guard keys it by the press's `trigger_id`, else the
//! envelope id, and events by their `event_id`).
//!
//! [`connect`] opens the socket, through the outbound proxy the environment
//! names, as the Web API client does.
//!
//! The socket is tokio-tungstenite's. slack-morphism's Socket Mode listener
//! needs its own hyper client (Klaxon's Web API client is reqwest), hands
//! typed payloads to callbacks (Klaxon's handlers read Slack's JSON, so a field
//! slack-morphism cannot parse would lose the envelope), and keeps the
//! disconnect reasons, the acknowledgement timing and `link_disabled` to
//! itself, which the metrics and `/readyz` need.

pub mod connect;
pub mod envelope;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::app::App;
use crate::slack::api::CallError;
use crate::telemetry::{ReasonLabels, SlackErrorLabels};
use crate::usecases::reach::SocketLink;
use connect::Proxies;
use envelope::Envelope;

/// Klaxon pings an idle socket this often.
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// A socket that has sent nothing (not even a pong) for this long is dead.
pub const SILENT_FOR: Duration = Duration::from_secs(30);
/// Reconnects back off up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A socket that went sooner than this after `hello` counts as a failed
/// attempt: the next one backs off.
pub const STABLE_FOR: Duration = Duration::from_secs(30);
/// How long `apps.connections.open`, the WebSocket handshake, and the wait for
/// `hello` may each take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a socket Slack asked to leave keeps answering before Klaxon
/// closes it itself (Slack closes it about 10 s after its warning).
pub const LEAVE_WITHIN: Duration = Duration::from_secs(30);
/// Envelopes one socket acts on at once; the next wait their turn, in order.
/// Unbounded, a burst of writes queues on the database in no order and the
/// slowest wait longest (bench run 6: ack p99 181 ms at 500 opens a second,
/// 16 ms with the bound).
const IN_FLIGHT: usize = 32;
/// At shutdown, how long handlers in flight may take to be acknowledged.
const DRAIN_WITHIN: Duration = Duration::from_secs(3);
/// At shutdown, how long work in hand may take to finish (its answer aside).
const FINISH_WITHIN: Duration = Duration::from_secs(15);

/// Slack's error codes from `apps.connections.open` that say the app token is
/// wrong: retrying does not help until the operator fixes it.
const TOKEN_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "not_allowed_token_type",
    "token_revoked",
    "token_expired",
    "account_inactive",
];

/// Why a socket ended or was asked to end: the `reason` label of
/// `klaxon_socket_mode_reconnects_total` (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Slack's `disconnect` with `refresh_requested` (a routine refresh).
    RefreshRequested,
    /// Slack's `disconnect` with `warning` (the socket closes in ~10 s).
    Warning,
    /// Slack's `disconnect` with `link_disabled`: Socket Mode is off for the app.
    LinkDisabled,
    /// The socket closed or failed without a word.
    Closed,
    /// The socket sent nothing, not even a pong, for [`SILENT_FOR`].
    NoPong,
    /// `apps.connections.open` failed.
    OpenFailed,
    /// The connection, the proxy's tunnel or the WebSocket handshake failed.
    ConnectFailed,
    /// Slack sent no `hello` within the connect timeout.
    NoHello,
    /// Klaxon is shutting down.
    Stopped,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RefreshRequested => "refresh_requested",
            Reason::Warning => "warning",
            Reason::LinkDisabled => "link_disabled",
            Reason::Closed => "closed",
            Reason::NoPong => "no_pong",
            Reason::OpenFailed => "open_failed",
            Reason::ConnectFailed => "connect_failed",
            Reason::NoHello => "no_hello",
            Reason::Stopped => "stopped",
        }
    }

    /// A `disconnect` message's reason.
    fn of_disconnect(reason: &str) -> Reason {
        match reason {
            "link_disabled" => Reason::LinkDisabled,
            "refresh_requested" => Reason::RefreshRequested,
            // `warning`, and whatever Slack may add: leave in good order.
            _ => Reason::Warning,
        }
    }
}

/// How a socket ended.
#[derive(Debug, Clone)]
struct Ended {
    reason: Reason,
    /// What failed, for `/readyz` (Slack's error code, the connect error).
    detail: Option<String>,
    /// Slack's `Retry-After` on a rate-limited `apps.connections.open`.
    retry_after: Option<Duration>,
}

impl From<Reason> for Ended {
    fn from(reason: Reason) -> Ended {
        Ended {
            reason,
            detail: None,
            retry_after: None,
        }
    }
}

/// What a socket tells the supervisor.
#[derive(Debug)]
enum News {
    /// Slack said `hello`: the socket takes work.
    Ready(u64),
    /// Slack asked the socket to go (`disconnect`); it still answers.
    Leaving(u64, Reason),
    /// The socket is gone (or never came up).
    Closed(u64, Ended),
}

/// Keeps Klaxon connected to Slack over Socket Mode until `stop` turns true.
/// `proxies` are the outbound proxy settings (see [`connect`]).
pub async fn run(
    app: Arc<App>,
    token: SecretString,
    proxies: Proxies,
    mut stop: watch::Receiver<bool>,
) {
    let metrics = app.ctx.metrics.clone();
    let (news_tx, mut news_rx) = mpsc::unbounded_channel::<News>();
    let (closing_tx, closing_rx) = watch::channel(false);
    // Every handler holds a sender: when all are dropped, no work is in hand.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let proxies = Arc::new(proxies);
    let mut sockets = JoinSet::new();
    // Sockets past `hello` and not asked to leave; every socket past `hello`,
    // with when it said it.
    let mut working: BTreeSet<u64> = BTreeSet::new();
    let mut open: HashMap<u64, Instant> = HashMap::new();
    let mut connecting: Option<u64> = None;
    let mut next_id = 0u64;
    let mut failures = 0u32;
    let mut next_attempt = Instant::now();
    // Why the next socket is opened (`None`: the first one), and what failed.
    let mut replacing: Option<Reason> = None;
    let mut detail: Option<String> = None;
    // Slack said link_disabled and no socket has worked since.
    let mut disabled = false;
    app.ctx
        .reach
        .set_socket(SocketLink::Connecting("starting".into()));
    metrics.socket_enabled.set(1);
    tracing::info!("Socket Mode on: connecting to Slack");
    loop {
        let want_socket = working.is_empty() && connecting.is_none();
        tokio::select! {
            _ = tokio::time::sleep_until(next_attempt), if want_socket => {
                next_id += 1;
                connecting = Some(next_id);
                if let Some(reason) = replacing {
                    metrics
                        .socket_reconnects
                        .get_or_create(&ReasonLabels { reason: reason.as_str().into() })
                        .inc();
                }
                sockets.spawn(socket(
                    next_id,
                    app.clone(),
                    token.clone(),
                    proxies.clone(),
                    news_tx.clone(),
                    closing_rx.clone(),
                    alive_tx.clone(),
                ));
            }
            Some(news) = news_rx.recv() => match news {
                News::Ready(id) => {
                    if connecting == Some(id) {
                        connecting = None;
                    }
                    disabled = false;
                    detail = None;
                    working.insert(id);
                    open.insert(id, Instant::now());
                    tracing::info!(socket = id, open = open.len(), "Socket Mode connected");
                }
                News::Leaving(id, reason) => {
                    working.remove(&id);
                    replacing = Some(reason);
                    if open.get(&id).is_some_and(|at| at.elapsed() >= STABLE_FOR) {
                        failures = 0;
                    }
                    if reason == Reason::LinkDisabled {
                        disabled = true;
                        tracing::error!(
                            "Slack disabled Klaxon's Socket Mode link (link_disabled): Socket Mode is off in the app's settings, so no command, press or event reaches Klaxon; turn it on (Settings → Socket Mode) or unset KLAXON_SLACK_APP_TOKEN and use the HTTP request URLs. Trying again every {}s",
                            MAX_BACKOFF.as_secs()
                        );
                        next_attempt = Instant::now() + MAX_BACKOFF;
                    } else {
                        tracing::info!(socket = id, reason = reason.as_str(), "Slack asked for a fresh socket; opening it while this one still answers");
                        next_attempt = Instant::now();
                    }
                }
                News::Closed(id, ended) => {
                    let was_working = working.remove(&id);
                    let lived = open.remove(&id).map(|at| at.elapsed());
                    if connecting == Some(id) {
                        connecting = None;
                        failures = failures.saturating_add(1);
                        // Slack's Retry-After, up to two backoffs' worth (a
                        // proxy's 429 must not silence Socket Mode for an hour).
                        let mut wait = crate::time::backoff(failures, MAX_BACKOFF)
                            .max(ended.retry_after.unwrap_or_default().min(2 * MAX_BACKOFF));
                        if disabled {
                            wait = wait.max(MAX_BACKOFF);
                        }
                        tracing::warn!(reason = ended.reason.as_str(), retry_in = ?wait, "could not open a Socket Mode socket");
                        next_attempt = next_attempt.max(Instant::now() + wait);
                        replacing = Some(ended.reason);
                        detail = ended.detail;
                    } else if was_working {
                        // A socket that went soon after hello is a failed
                        // attempt: back off, or a proxy that cuts every
                        // socket would have Klaxon reconnect in a tight loop.
                        // A socket gone silent was no healthy socket either.
                        let wait = if lived.is_some_and(|l| l >= STABLE_FOR)
                            && ended.reason != Reason::NoPong
                        {
                            failures = 0;
                            Duration::ZERO
                        } else {
                            failures = failures.saturating_add(1);
                            crate::time::backoff(failures, MAX_BACKOFF)
                        };
                        tracing::warn!(socket = id, reason = ended.reason.as_str(), lived = ?lived, retry_in = ?wait, "the Socket Mode socket went; reconnecting");
                        replacing = Some(ended.reason);
                        detail = ended.detail;
                        next_attempt = Instant::now() + wait;
                    }
                }
            },
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
        metrics.socket_connections.set(open.len() as i64);
        let link = if disabled && working.is_empty() {
            SocketLink::Disabled
        } else if open.is_empty() {
            let why = replacing.map_or("starting", Reason::as_str);
            SocketLink::Connecting(match &detail {
                Some(d) => format!("{why}: {d}"),
                None => why.to_string(),
            })
        } else {
            SocketLink::Connected(open.len())
        };
        app.ctx.reach.set_socket(link);
    }
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_WITHIN + Duration::from_secs(1), async {
        while sockets.join_next().await.is_some() {}
    })
    .await;
    sockets.abort_all();
    metrics.socket_connections.set(0);
    // Work in hand finishes before the database closes: cut off, an event
    // marked as seen would never be done (Slack's redelivery would be taken
    // for a duplicate). Its own timeouts (the pool's 5 s, SQLite's 10 s) bound it.
    drop(alive_tx);
    if tokio::time::timeout(FINISH_WITHIN, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "Socket Mode work still in hand after {}s at shutdown",
            FINISH_WITHIN.as_secs()
        );
    }
    tracing::info!("Socket Mode closed");
}

/// One socket, from `apps.connections.open` until it goes; tells the
/// supervisor how it went.
async fn socket(
    id: u64,
    app: Arc<App>,
    token: SecretString,
    proxies: Arc<Proxies>,
    news: mpsc::UnboundedSender<News>,
    closing: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let ended = serve(id, &app, &token, &proxies, &news, closing, alive).await;
    let _ = news.send(News::Closed(id, ended));
}

/// `apps.connections.open`: the socket's URL, or how it failed (logged,
/// counted in `klaxon_slack_api_errors_total`).
async fn open_url(app: &App, token: &SecretString) -> Result<String, Ended> {
    let failed = |code: String, retry_after: Option<Duration>| {
        app.ctx
            .metrics
            .slack_api_errors
            .get_or_create(&SlackErrorLabels {
                method: "apps.connections.open".into(),
                error: code.clone(),
            })
            .inc();
        Ended {
            reason: Reason::OpenFailed,
            detail: Some(code),
            retry_after,
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, app.slack.open_connection(token)).await {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(e)) => {
            let code = e.code();
            if TOKEN_ERRORS.contains(&code.as_str()) || matches!(e, CallError::Auth(_)) {
                tracing::error!(error = %code, "Slack refuses KLAXON_SLACK_APP_TOKEN for apps.connections.open: it must be this app's app-level token (xapp-…, Basic Information → App-Level Tokens) with the connections:write scope. Retrying");
            } else {
                tracing::warn!(error = %code, "apps.connections.open failed; retrying");
            }
            let retry_after = match e {
                CallError::RateLimited(d) => Some(d),
                _ => None,
            };
            Err(failed(code, retry_after))
        }
        Err(_) => {
            tracing::warn!("apps.connections.open did not answer in time; retrying");
            Err(failed("timeout".into(), None))
        }
    }
}

async fn serve(
    id: u64,
    app: &Arc<App>,
    token: &SecretString,
    proxies: &Proxies,
    news: &mpsc::UnboundedSender<News>,
    mut closing: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) -> Ended {
    let url = match open_url(app, token).await {
        Ok(url) => url,
        Err(ended) => return ended,
    };
    let mut ws = match connect::open(&url, proxies, CONNECT_TIMEOUT).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(error = %e, "could not connect the Socket Mode socket");
            return Ended {
                reason: Reason::ConnectFailed,
                detail: Some(e.to_string()),
                retry_after: None,
            };
        }
    };
    tracing::debug!(socket = id, "Socket Mode socket open; waiting for hello");

    let (acks_tx, mut acks) = mpsc::unbounded_channel::<(Value, Instant)>();
    let mut handlers = JoinSet::new();
    let turns = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let hello_by = Instant::now() + CONNECT_TIMEOUT;
    let mut said_hello = false;
    let mut leave_by: Option<(Instant, Reason)> = None;
    let metrics = &app.ctx.metrics;
    let ended: Reason = loop {
        tokio::select! {
            frame = ws.next() => {
                heard = Instant::now();
                let text = match frame {
                    None => break Reason::Closed,
                    Some(Err(e)) => {
                        tracing::debug!(socket = id, error = %e, "Socket Mode socket failed");
                        break Reason::Closed;
                    }
                    Some(Ok(Message::Text(text))) => text,
                    // Pings are answered by the library; pongs only prove life.
                    Some(Ok(_)) => continue,
                };
                let Some(envelope) = Envelope::parse(text.as_str()) else {
                    tracing::warn!(socket = id, "ignored a Socket Mode message that is not a JSON object with a type");
                    continue;
                };
                match envelope.kind.as_str() {
                    "hello" => {
                        said_hello = true;
                        let _ = news.send(News::Ready(id));
                    }
                    "disconnect" => {
                        let reason = Reason::of_disconnect(envelope.reason.as_deref().unwrap_or_default());
                        if leave_by.is_none() {
                            leave_by = Some((Instant::now() + LEAVE_WITHIN, reason));
                            let _ = news.send(News::Leaving(id, reason));
                        }
                    }
                    _ => {
                        let started = Instant::now();
                        let app = app.clone();
                        let acks_tx = acks_tx.clone();
                        let turns = turns.clone();
                        let alive = alive.clone();
                        handlers.spawn(async move {
                            envelope::act(&app, envelope, started, &turns, |ack| {
                                let _ = acks_tx.send((ack, started));
                            })
                            .await;
                            drop(alive);
                        });
                    }
                }
            }
            Some((ack, started)) = acks.recv() => {
                if let Err(e) = send_ack(&mut ws, ack, started, metrics).await {
                    tracing::debug!(socket = id, error = %e, "could not acknowledge an envelope; Slack redelivers it");
                    break Reason::Closed;
                }
            }
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            _ = ping.tick() => {
                if heard.elapsed() >= SILENT_FOR {
                    tracing::warn!(socket = id, silent_s = heard.elapsed().as_secs(), "the Socket Mode socket went silent");
                    break Reason::NoPong;
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break Reason::Closed;
                }
            }
            _ = tokio::time::sleep_until(hello_by), if !said_hello => break Reason::NoHello,
            _ = tokio::time::sleep_until(leave_by.map_or(hello_by, |(at, _)| at)), if leave_by.is_some() => {
                break leave_by.map_or(Reason::Closed, |(_, reason)| reason);
            }
            _ = closing.changed() => {
                // Shutting down: no new envelope is read (Slack sends the
                // next ones to another replica's socket, or redelivers them);
                // those in hand are answered first.
                drain(&mut ws, &mut acks, &mut handlers, metrics).await;
                break Reason::Stopped;
            }
        }
    };
    // Work in hand runs to its end even though its answer has nowhere to go
    // now: Slack redelivers the envelope, and the replay guards make the
    // redelivery a no-op once the work is done.
    handlers.detach_all();
    let _ = ws.close(None).await;
    ended.into()
}

/// Writes one acknowledgement and times it from the envelope's arrival
/// (`klaxon_socket_mode_ack_seconds`).
async fn send_ack<S>(
    ws: &mut S,
    ack: Value,
    received: Instant,
    metrics: &crate::telemetry::Metrics,
) -> Result<(), S::Error>
where
    S: futures_util::Sink<Message> + Unpin,
{
    ws.send(Message::text(ack.to_string())).await?;
    metrics.socket_ack.observe(received.elapsed().as_secs_f64());
    Ok(())
}

/// Sends the acknowledgements of the envelopes in hand, waiting at most
/// [`DRAIN_WITHIN`] for their handlers.
async fn drain<S>(
    ws: &mut S,
    acks: &mut mpsc::UnboundedReceiver<(Value, Instant)>,
    handlers: &mut JoinSet<()>,
    metrics: &crate::telemetry::Metrics,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    let work = async {
        loop {
            tokio::select! {
                Some((ack, started)) = acks.recv() => {
                    if send_ack(ws, ack, started, metrics).await.is_err() {
                        return;
                    }
                }
                joined = handlers.join_next() => if joined.is_none() && acks.is_empty() {
                    return;
                },
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WITHIN, work).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_reasons_map_to_their_labels_and_unknown_ones_to_warning() {
        for (sent, label) in [
            ("refresh_requested", "refresh_requested"),
            ("warning", "warning"),
            ("link_disabled", "link_disabled"),
            ("something_new", "warning"),
        ] {
            assert_eq!(Reason::of_disconnect(sent).as_str(), label);
        }
    }
}
