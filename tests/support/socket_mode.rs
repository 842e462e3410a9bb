//! A fake of Slack's Socket Mode on 127.0.0.1, as strict as Slack where it
//! matters (Slack: "Using Socket Mode").
//!
//! [`SocketMode::attach`] makes the fake Web API answer `apps.connections.open`
//! — only for the app-level token [`APP_TOKEN`] (a bot token gets
//! `not_allowed_token_type`, anything else `invalid_auth`) — with a one-time
//! `ws://127.0.0.1:PORT/link/?ticket=…` URL. A socket that connects with a
//! valid ticket gets `hello`, then whatever the test pushes: envelopes shaped
//! as Slack shapes them (`envelope_id`, `type`, `payload`,
//! `accepts_response_payload`, `retry_attempt`, `retry_reason`), each sent to
//! one open socket (the newest not told to leave, else one that was), or
//! held until one connects when none is open. Acknowledgements are recorded with their
//! timing and the socket they came on. The test can send `disconnect`, drop
//! every socket without a close frame, refuse `apps.connections.open` for a
//! while, and redeliver an envelope.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::fake_slack::FakeSlack;

/// The app-level token the fake accepts for `apps.connections.open`.
pub const APP_TOKEN: &str = "xapp-1-A0KLAXON-1111-fake-socket-mode-token";

/// An envelope's acknowledgement, as the fake received it.
#[derive(Debug, Clone)]
pub struct Ack {
    pub envelope_id: String,
    /// The `payload` Klaxon put in the ack, if any.
    pub payload: Option<Value>,
    /// From the envelope's (last) sending to its acknowledgement.
    pub after: Duration,
    /// The socket it was sent on, and the socket the ack came on.
    pub sent_on: u64,
    pub acked_on: u64,
}

enum Command {
    Text(String),
    /// Close with a close frame (Slack's own close after a disconnect).
    Close,
    /// Drop the TCP connection without a word.
    Drop,
}

struct Socket {
    tx: mpsc::UnboundedSender<Command>,
    /// Not sent `disconnect`: preferred for envelopes. A socket told to leave
    /// still gets envelopes while no other is open, as with Slack, until it
    /// closes.
    working: bool,
}

struct Sent {
    frame: Value,
    at: Instant,
    socket: u64,
}

#[derive(Default)]
struct State {
    tickets: Vec<String>,
    sockets: BTreeMap<u64, Socket>,
    next_socket: u64,
    /// `apps.connections.open` answers this error until the instant passes.
    refuse_until: Option<(Instant, &'static str)>,
    opens: usize,
    refused: usize,
    /// Sockets connected, ever.
    connected: usize,
    /// The most sockets open at one time.
    most_open: usize,
    /// Until then, every socket is closed right after its `hello`.
    flap_until: Option<Instant>,
    envelopes: HashMap<String, Sent>,
    /// Envelopes waiting for a socket.
    waiting: VecDeque<String>,
    /// Pushes that found no open socket (a gap in the link).
    found_no_socket: usize,
    acks: Vec<Ack>,
    counter: u64,
}

/// The Socket Mode side of the fake Slack.
#[derive(Clone)]
pub struct SocketMode {
    /// `ws://127.0.0.1:PORT`
    pub ws_base: String,
    /// The fake Slack's `…/hooks` base: commands' `response_url`s point there.
    hooks: String,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl SocketMode {
    /// Starts the socket server and makes `slack` answer
    /// `apps.connections.open` with its URLs.
    pub async fn attach(slack: &FakeSlack) -> SocketMode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Socket Mode server");
        let addr = listener.local_addr().expect("address");
        let socket_mode = SocketMode {
            ws_base: format!("ws://{addr}"),
            hooks: format!("{}/hooks", slack.api_url.trim_end_matches("/api")),
            state: Arc::new(Mutex::new(State::default())),
            changed: Arc::new(Notify::new()),
        };
        let server = socket_mode.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        let opener = socket_mode.clone();
        slack.on_connections_open(super::fake_slack::ConnectionsOpen(Arc::new(
            move |auth: Option<&str>| opener.open(auth),
        )));
        socket_mode
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `apps.connections.open`: Slack's answer for this Authorization header.
    fn open(&self, auth: Option<&str>) -> Value {
        let mut s = self.lock();
        let token = auth.and_then(|a| a.strip_prefix("Bearer "));
        let error = match token {
            None => Some("not_authed"),
            Some(t) if t.starts_with("xoxb-") => Some("not_allowed_token_type"),
            Some(t) if t != APP_TOKEN => Some("invalid_auth"),
            Some(_) => match s.refuse_until {
                Some((until, error)) if Instant::now() < until => Some(error),
                _ => None,
            },
        };
        if let Some(error) = error {
            s.refused += 1;
            return json!({"ok": false, "error": error});
        }
        s.opens += 1;
        s.counter += 1;
        let ticket = format!("t{:08x}{}", rand::random::<u32>(), s.counter);
        s.tickets.push(ticket.clone());
        json!({"ok": true, "url": format!("{}/link/?ticket={ticket}&app_id=A0KLAXON", self.ws_base)})
    }

    async fn serve(&self, stream: tokio::net::TcpStream) {
        // As Slack's edge: each frame goes out at once.
        let _ = stream.set_nodelay(true);
        let state = self.state.clone();
        // The handshake callback's signature is tungstenite's.
        #[allow(clippy::result_large_err)]
        let check = move |req: &Request, response: Response| -> Result<Response, ErrorResponse> {
            let ticket = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
                .map(str::to_string);
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            match ticket.and_then(|t| s.tickets.iter().position(|x| *x == t)) {
                // A ticket is good for one connection.
                Some(i) => {
                    s.tickets.remove(i);
                    Ok(response)
                }
                None => {
                    let mut refusal = ErrorResponse::new(Some("invalid ticket".into()));
                    *refusal.status_mut() =
                        tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                    Err(refusal)
                }
            }
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
        let id = {
            let mut s = self.lock();
            s.next_socket += 1;
            s.connected += 1;
            let id = s.next_socket;
            s.sockets.insert(id, Socket { tx, working: true });
            s.most_open = s.most_open.max(s.sockets.len());
            id
        };
        let hello = json!({
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0KLAXON"}
        });
        if ws.send(Message::text(hello.to_string())).await.is_err() {
            self.forget(id);
            return;
        }
        if self.lock().flap_until.is_some_and(|t| Instant::now() < t) {
            let _ = ws.close(None).await;
            self.forget(id);
            return;
        }
        self.deliver_waiting();
        self.changed.notify_waiters();
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Some(Command::Text(t)) => {
                        if ws.send(Message::text(t)).await.is_err() {
                            break;
                        }
                    }
                    Some(Command::Close) => {
                        let _ = ws.close(None).await;
                        break;
                    }
                    Some(Command::Drop) | None => break,
                },
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => self.record_ack(id, t.as_str()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        self.forget(id);
    }

    fn forget(&self, id: u64) {
        self.lock().sockets.remove(&id);
        self.changed.notify_waiters();
    }

    fn record_ack(&self, socket: u64, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(envelope_id) = v["envelope_id"].as_str() else {
            return;
        };
        let mut s = self.lock();
        let (after, sent_on) = s
            .envelopes
            .get(envelope_id)
            .map(|e| (e.at.elapsed(), e.socket))
            .unwrap_or_default();
        s.acks.push(Ack {
            envelope_id: envelope_id.to_string(),
            payload: v.get("payload").cloned(),
            after,
            sent_on,
            acked_on: socket,
        });
        drop(s);
        self.changed.notify_waiters();
    }

    /// Sends an envelope to the newest socket not told to leave (else to one
    /// that was), or holds it until one says hello.
    fn send(&self, envelope_id: &str) {
        let mut s = self.lock();
        let target = s
            .sockets
            .iter()
            .rev()
            .find(|(_, sock)| sock.working)
            .or_else(|| s.sockets.iter().next_back())
            .map(|(id, sock)| (*id, sock.tx.clone()));
        let Some((socket, tx)) = target else {
            s.found_no_socket += 1;
            s.waiting.push_back(envelope_id.to_string());
            return;
        };
        if let Some(e) = s.envelopes.get_mut(envelope_id) {
            e.at = Instant::now();
            e.socket = socket;
            let _ = tx.send(Command::Text(e.frame.to_string()));
        }
    }

    fn deliver_waiting(&self) {
        let waiting: Vec<String> = self.lock().waiting.drain(..).collect();
        for id in waiting {
            self.send(&id);
        }
    }

    /// Pushes an envelope of `kind` with `payload`; its `envelope_id`.
    pub fn push(&self, kind: &str, payload: Value, accepts_response_payload: bool) -> String {
        let envelope_id = {
            let mut s = self.lock();
            s.counter += 1;
            let id = format!(
                "{:08x}-4d35-4d0b-b6aa-{:012x}",
                rand::random::<u32>(),
                s.counter
            );
            let frame = json!({
                "envelope_id": id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": 0,
                "retry_reason": "",
            });
            s.envelopes.insert(
                id.clone(),
                Sent {
                    frame,
                    at: Instant::now(),
                    socket: 0,
                },
            );
            id
        };
        self.send(&envelope_id);
        envelope_id
    }

    /// `/incident <text>` typed by `user` in `channel`, as a `slash_commands` envelope.
    pub fn command(&self, user: &str, channel: &str, text: &str) -> String {
        let n = rand::random::<u32>();
        self.push(
            "slash_commands",
            json!({
                "token": "deprecated-verification-token",
                "team_id": "T0KLAXON",
                "team_domain": "klaxon",
                "channel_id": channel,
                "channel_name": "incidents",
                "user_id": user,
                "user_name": user.to_lowercase(),
                "command": "/incident",
                "text": text,
                "api_app_id": "A0KLAXON",
                "is_enterprise_install": "false",
                "response_url": format!("{}/cmd-{n:x}", self.hooks),
                "trigger_id": format!("{n}.1.{n:x}"),
            }),
            true,
        )
    }

    /// An interaction payload (`block_actions`, `view_submission`), as an `interactive` envelope.
    pub fn interact(&self, payload: &Value) -> String {
        // Slack accepts a response payload for form submissions.
        let accepts = payload["type"] == "view_submission";
        self.push("interactive", payload.clone(), accepts)
    }

    /// An Events API callback, as an `events_api` envelope.
    pub fn event(&self, callback: &Value) -> String {
        self.push("events_api", callback.clone(), false)
    }

    /// Sends the envelope again, as Slack does when its ack is late
    /// (`retry_attempt` one more, `retry_reason: timeout`).
    pub fn redeliver(&self, envelope_id: &str) {
        {
            let mut s = self.lock();
            let Some(e) = s.envelopes.get_mut(envelope_id) else {
                panic!("no envelope {envelope_id}");
            };
            let attempt = e.frame["retry_attempt"].as_u64().unwrap_or(0) + 1;
            e.frame["retry_attempt"] = json!(attempt);
            e.frame["retry_reason"] = json!("timeout");
        }
        self.send(envelope_id);
    }

    /// Sends `disconnect` with `reason` to every working socket, and closes
    /// them `close_after` later, as Slack does on a refresh.
    pub fn disconnect(&self, reason: &str, close_after: Duration) {
        let frame = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-fake"}
        })
        .to_string();
        let mut leaving = Vec::new();
        for sock in self.lock().sockets.values_mut().filter(|s| s.working) {
            sock.working = false;
            let _ = sock.tx.send(Command::Text(frame.clone()));
            leaving.push(sock.tx.clone());
        }
        tokio::spawn(async move {
            tokio::time::sleep(close_after).await;
            for tx in leaving {
                let _ = tx.send(Command::Close);
            }
        });
    }

    /// Drops every socket's connection without a close frame (a network cut).
    pub fn drop_all(&self) {
        let gone = std::mem::take(&mut self.lock().sockets);
        for sock in gone.values() {
            let _ = sock.tx.send(Command::Drop);
        }
        self.changed.notify_waiters();
    }

    /// For the next `d`, every socket is closed right after its `hello` (a
    /// proxy that cuts WebSockets, a Slack edge in trouble).
    pub fn flap_for(&self, d: Duration) {
        self.lock().flap_until = Some(Instant::now() + d);
    }

    /// Whether sockets are still being cut after `hello`.
    pub fn flapping(&self) -> bool {
        self.lock().flap_until.is_some_and(|t| Instant::now() < t)
    }

    /// `apps.connections.open` answers `error` for the next `d`.
    pub fn refuse_opens_for(&self, d: Duration, error: &'static str) {
        self.lock().refuse_until = Some((Instant::now() + d, error));
    }

    /// Successful `apps.connections.open` calls, refused ones, and sockets connected.
    pub fn opens(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.opens, s.refused, s.connected)
    }

    /// The most sockets that were open at one time (2 during a gap-free refresh).
    pub fn most_open_at_once(&self) -> usize {
        self.lock().most_open
    }

    /// Pushes that found no open socket (each a gap in the link).
    pub fn found_no_socket(&self) -> usize {
        self.lock().found_no_socket
    }

    /// Every acknowledgement so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.lock().acks.clone()
    }

    /// Sockets open now, and of them those that take envelopes.
    pub fn sockets(&self) -> (usize, usize) {
        let s = self.lock();
        (
            s.sockets.len(),
            s.sockets.values().filter(|s| s.working).count(),
        )
    }

    /// Waits until `done` holds, re-checking whenever a socket or ack changes.
    pub async fn wait(&self, timeout: Duration, what: &str, done: impl Fn(&SocketMode) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                assert!(done(self), "timed out waiting for {what}");
                return;
            }
        }
    }

    /// Waits until a socket is working (said hello, not asked to leave).
    pub async fn wait_working(&self) {
        self.wait(Duration::from_secs(15), "a working socket", |s| {
            s.sockets().1 >= 1
        })
        .await;
    }

    /// Waits for the acknowledgement of `envelope_id`.
    pub async fn ack_of(&self, envelope_id: &str) -> Ack {
        self.wait(
            Duration::from_secs(15),
            &format!("the ack of {envelope_id}"),
            |s| s.acks().iter().any(|a| a.envelope_id == envelope_id),
        )
        .await;
        self.acks()
            .into_iter()
            .find(|a| a.envelope_id == envelope_id)
            .expect("ack")
    }

    /// The ephemeral text a command's ack carried.
    pub async fn command_answer(&self, user: &str, channel: &str, text: &str) -> String {
        let id = self.command(user, channel, text);
        let ack = self.ack_of(&id).await;
        let payload = ack
            .payload
            .unwrap_or_else(|| panic!("the ack of {text:?} carried no answer"));
        assert_eq!(payload["response_type"], "ephemeral", "{payload}");
        payload["text"].as_str().expect("text").to_string()
    }
}
