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
//!   socket, with backoff from 1 s up to [`MAX_BACKOFF`], forever, logged;
//! - `link_disabled` (Socket Mode turned off in the app's settings) → an error
//!   in the log and on `/readyz`, and a try every [`MAX_BACKOFF`] in case it
//!   is turned on again.
//!
//! An envelope Klaxon cannot take (its database does not answer) is left
//! unacknowledged, so Slack redelivers it (`retry_attempt`, `retry_reason`);
//! a redelivered command, press or event does nothing twice (the inbound
//! replay guard keys it by the press's `trigger_id`, else the envelope id,
//! and events by their `event_id`).
//!
//! The socket is tokio-tungstenite's. slack-morphism's Socket Mode listener
//! needs its own hyper client (Klaxon's Web API client is reqwest), hands
//! typed payloads to callbacks (Klaxon's handlers read Slack's JSON, so a field
//! slack-morphism cannot parse would lose the envelope), and keeps the
//! disconnect reasons, the acknowledgement timing and `link_disabled` to
//! itself, which the metrics and `/readyz` need.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::app::App;
use crate::inbound::{self, Reply};
use crate::telemetry::{EnvelopeLabels, ReasonLabels};
use crate::usecases::reach::SocketLink;

/// Klaxon pings an idle socket this often.
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// A socket that has sent nothing (not even a pong) for this long is dead.
pub const SILENT_FOR: Duration = Duration::from_secs(30);
/// Reconnects back off up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long `apps.connections.open`, the WebSocket handshake, and the wait for
/// `hello` may each take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a socket Slack asked to leave keeps answering before Klaxon
/// closes it itself (Slack closes it about 10 s after its warning).
pub const LEAVE_WITHIN: Duration = Duration::from_secs(30);
/// Envelopes one socket acts on at once; the next wait their turn, in order.
/// Unbounded, a burst of writes queues on the database in no order and the
/// slowest wait longest (bench run 6).
const IN_FLIGHT: usize = 32;
/// At shutdown, how long handlers in flight may take to be acknowledged.
const DRAIN_WITHIN: Duration = Duration::from_secs(3);

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
    /// The WebSocket handshake failed.
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

/// What a socket tells the supervisor.
#[derive(Debug)]
enum News {
    /// Slack said `hello`: the socket takes work.
    Ready(u64),
    /// Slack asked the socket to go (`disconnect`); it still answers.
    Leaving(u64, Reason),
    /// The socket is gone (or never came up).
    Closed(u64, Reason),
}

/// A message Slack sends down the socket (Slack: "Using Socket Mode",
/// "Sending and receiving events").
#[derive(Debug, Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    accepts_response_payload: bool,
    #[serde(default)]
    retry_attempt: Option<u32>,
    #[serde(default)]
    retry_reason: Option<String>,
}

/// Keeps Klaxon connected to Slack over Socket Mode until `stop` turns true.
pub async fn run(app: Arc<App>, token: SecretString, mut stop: watch::Receiver<bool>) {
    let metrics = app.ctx.metrics.clone();
    let (news_tx, mut news_rx) = mpsc::unbounded_channel::<News>();
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut sockets = JoinSet::new();
    // Sockets past `hello` and not asked to leave; and every socket past `hello`.
    let mut working: BTreeSet<u64> = BTreeSet::new();
    let mut open: BTreeSet<u64> = BTreeSet::new();
    let mut connecting: Option<u64> = None;
    let mut next_id = 0u64;
    let mut failures = 0u32;
    let mut next_attempt = Instant::now();
    // Why the next socket is opened (`None`: the first one).
    let mut replacing: Option<Reason> = None;
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
                    news_tx.clone(),
                    closing_rx.clone(),
                ));
            }
            Some(news) = news_rx.recv() => match news {
                News::Ready(id) => {
                    if connecting == Some(id) {
                        connecting = None;
                    }
                    failures = 0;
                    working.insert(id);
                    open.insert(id);
                    tracing::info!(socket = id, open = open.len(), "Socket Mode connected");
                }
                News::Leaving(id, reason) => {
                    working.remove(&id);
                    replacing = Some(reason);
                    if reason == Reason::LinkDisabled {
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
                News::Closed(id, reason) => {
                    let was_working = working.remove(&id);
                    open.remove(&id);
                    if connecting == Some(id) {
                        connecting = None;
                        failures = failures.saturating_add(1);
                        let wait = crate::time::backoff(failures, MAX_BACKOFF);
                        tracing::warn!(reason = reason.as_str(), retry_in = ?wait, "could not open a Socket Mode socket");
                        next_attempt = next_attempt.max(Instant::now() + wait);
                        replacing = Some(reason);
                    } else if was_working {
                        tracing::warn!(socket = id, reason = reason.as_str(), "the Socket Mode socket went; reconnecting");
                        replacing = Some(reason);
                        next_attempt = Instant::now();
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
        let link = if replacing == Some(Reason::LinkDisabled) && working.is_empty() {
            SocketLink::Disabled
        } else if open.is_empty() {
            SocketLink::Connecting(replacing.map_or("starting", Reason::as_str).to_string())
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
    tracing::info!("Socket Mode closed");
}

/// One socket, from `apps.connections.open` until it goes; tells the
/// supervisor how it went.
async fn socket(
    id: u64,
    app: Arc<App>,
    token: SecretString,
    news: mpsc::UnboundedSender<News>,
    closing: watch::Receiver<bool>,
) {
    let reason = serve(id, &app, &token, &news, closing).await;
    let _ = news.send(News::Closed(id, reason));
}

async fn serve(
    id: u64,
    app: &Arc<App>,
    token: &SecretString,
    news: &mpsc::UnboundedSender<News>,
    mut closing: watch::Receiver<bool>,
) -> Reason {
    let url = match tokio::time::timeout(CONNECT_TIMEOUT, app.slack.open_connection(token)).await {
        Ok(Ok(url)) => url,
        Ok(Err(e)) => {
            tracing::warn!(error = %e.code(), "apps.connections.open failed (is KLAXON_SLACK_APP_TOKEN an app-level token with connections:write?)");
            return Reason::OpenFailed;
        }
        Err(_) => {
            tracing::warn!("apps.connections.open did not answer in time");
            return Reason::OpenFailed;
        }
    };
    // The URL carries a one-time ticket: log its host only.
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("?")
        .to_string();
    // Nagle off: an acknowledgement is one small frame that must not wait
    // for the previous one's TCP ACK.
    let mut ws = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url.as_str(), None, true),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            tracing::warn!(%host, error = %e, "could not connect the Socket Mode socket");
            return Reason::ConnectFailed;
        }
        Err(_) => {
            tracing::warn!(%host, "the Socket Mode handshake did not finish in time");
            return Reason::ConnectFailed;
        }
    };
    tracing::debug!(socket = id, %host, "Socket Mode socket open; waiting for hello");

    let (acks_tx, mut acks) = mpsc::unbounded_channel::<(Value, Instant)>();
    let turns = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut handlers = JoinSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let hello_by = Instant::now() + CONNECT_TIMEOUT;
    let mut said_hello = false;
    let mut leave_by: Option<(Instant, Reason)> = None;
    let metrics = &app.ctx.metrics;
    let ended = loop {
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
                let frame: Frame = match serde_json::from_str(text.as_str()) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(socket = id, error = %e, "ignored a Socket Mode message that is not Slack's JSON");
                        continue;
                    }
                };
                match frame.kind.as_str() {
                    "hello" => {
                        said_hello = true;
                        let _ = news.send(News::Ready(id));
                    }
                    "disconnect" => {
                        let reason = Reason::of_disconnect(frame.reason.as_deref().unwrap_or_default());
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
                        handlers.spawn(async move {
                            // In the order they arrived (the semaphore is fair).
                            let Ok(_turn) = turns.acquire().await else {
                                return;
                            };
                            if let Some(ack) = handle(&app, frame).await {
                                let _ = acks_tx.send((ack, started));
                            }
                        });
                    }
                }
            }
            Some((ack, started)) = acks.recv() => {
                if let Err(e) = ws.send(Message::text(ack.to_string())).await {
                    tracing::debug!(socket = id, error = %e, "could not acknowledge an envelope; Slack redelivers it");
                    break Reason::Closed;
                }
                metrics.socket_ack.observe(started.elapsed().as_secs_f64());
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
    let _ = ws.close(None).await;
    ended
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
                    if ws.send(Message::text(ack.to_string())).await.is_err() {
                        return;
                    }
                    metrics.socket_ack.observe(started.elapsed().as_secs_f64());
                }
                joined = handlers.join_next() => if joined.is_none() && acks.is_empty() {
                    return;
                },
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_WITHIN, work).await;
}

/// Acts on one envelope; the acknowledgement to send, or `None` to leave it
/// unacknowledged (Slack then redelivers it).
async fn handle(app: &Arc<App>, frame: Frame) -> Option<Value> {
    let metrics = &app.ctx.metrics;
    let kind = match frame.kind.as_str() {
        k @ ("slash_commands" | "interactive" | "events_api") => k,
        _ => "other",
    };
    metrics
        .socket_envelopes
        .get_or_create(&EnvelopeLabels {
            r#type: kind.into(),
        })
        .inc();
    let Some(envelope_id) = frame.envelope_id else {
        tracing::debug!(
            kind = frame.kind,
            "ignored a Socket Mode message without envelope_id"
        );
        return None;
    };
    if let Some(attempt) = frame.retry_attempt.filter(|a| *a > 0) {
        tracing::info!(
            envelope_id,
            retry_attempt = attempt,
            retry_reason = frame.retry_reason.as_deref().unwrap_or_default(),
            "Slack redelivered an envelope"
        );
    }
    let payload = frame.payload.unwrap_or(Value::Null);
    let replay_key = |trigger: Option<&str>| format!("socket:{}", trigger.unwrap_or(&envelope_id));
    let reply = match kind {
        "slash_commands" => match serde_json::from_value::<inbound::SlashCommand>(payload) {
            Ok(command) => {
                let key = replay_key(command.trigger_id());
                inbound::command(app, command, &key).await
            }
            Err(e) => Reply::Malformed(format!("malformed slash command: {e}")),
        },
        "interactive" => match serde_json::from_value::<inbound::Interaction>(payload) {
            Ok(interaction) => {
                let key = replay_key(interaction.trigger_id());
                inbound::interaction(app, interaction, &key).await
            }
            Err(e) => Reply::Malformed(format!("malformed interaction payload: {e}")),
        },
        "events_api" => match serde_json::from_value::<inbound::EventCallback>(payload) {
            Ok(callback) => inbound::event(app, callback).await,
            Err(e) => Reply::Malformed(format!("malformed event: {e}")),
        },
        _ => {
            tracing::debug!(
                kind = frame.kind,
                "acknowledged a Socket Mode envelope Klaxon does not use"
            );
            Reply::done()
        }
    };
    ack(envelope_id, frame.accepts_response_payload, reply)
}

/// The acknowledgement for `reply` (Slack: "Acknowledging events"): the
/// answer rides in `payload` where Slack accepts one; `None` for a reply
/// Slack should retry.
fn ack(envelope_id: String, accepts_payload: bool, reply: Reply) -> Option<Value> {
    match reply {
        Reply::Answer(Some(payload)) if accepts_payload => {
            Some(json!({"envelope_id": envelope_id, "payload": payload}))
        }
        Reply::Answer(_) => Some(json!({"envelope_id": envelope_id})),
        Reply::Malformed(why) => {
            tracing::warn!(envelope_id, reason = why, "refused a Socket Mode envelope");
            Some(json!({"envelope_id": envelope_id}))
        }
        Reply::Unavailable(why) => {
            tracing::warn!(
                envelope_id,
                reason = why,
                "left a Socket Mode envelope unacknowledged so that Slack redelivers it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_rides_in_the_ack_only_where_slack_accepts_a_payload() {
        let reply = Reply::ephemeral("INC-1 opened");
        assert_eq!(
            ack("e1".into(), true, reply.clone()),
            Some(
                json!({"envelope_id": "e1", "payload": {"response_type": "ephemeral", "text": "INC-1 opened"}})
            )
        );
        assert_eq!(
            ack("e2".into(), false, reply),
            Some(json!({"envelope_id": "e2"}))
        );
        assert_eq!(
            ack("e3".into(), true, Reply::Malformed("no user".into())),
            Some(json!({"envelope_id": "e3"})),
            "a malformed envelope is acknowledged: a redelivery would be as wrong"
        );
        assert_eq!(
            ack("e4".into(), true, Reply::Unavailable("database")),
            None,
            "an envelope Klaxon could not take is left for Slack to redeliver"
        );
    }

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

    #[test]
    fn slacks_envelope_shapes_are_read() {
        let f: Frame = serde_json::from_value(json!({
            "envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
            "payload": {"type": "event_callback", "event_id": "Ev1"},
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": 1,
            "retry_reason": "timeout"
        }))
        .expect("an events_api envelope");
        assert_eq!(f.kind, "events_api");
        assert_eq!(f.retry_attempt, Some(1));
        let f: Frame = serde_json::from_value(json!({
            "type": "disconnect", "reason": "refresh_requested",
            "debug_info": {"host": "applink-1"}
        }))
        .expect("a disconnect");
        assert_eq!(f.reason.as_deref(), Some("refresh_requested"));
        let f: Frame = serde_json::from_value(json!({
            "type": "hello", "num_connections": 1,
            "connection_info": {"app_id": "A1"},
            "debug_info": {"approximate_connection_time": 18060}
        }))
        .expect("a hello");
        assert_eq!(f.kind, "hello");
    }
}
