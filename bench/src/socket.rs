//! Run 6: Socket Mode. The fake Slack (its own process) answers
//! `apps.connections.open` with a `ws://127.0.0.1` URL, says `hello` on each
//! socket, and on `POST /socket/load` pushes `slash_commands` envelopes at a
//! fixed rate (open loop: an envelope is due every 1/rate s whatever the acks
//! do) to the newest socket, timing each from its sending to its ack.
//!
//! The baseline is a bare client in the bench's own process that acks every
//! envelope the moment it reads it: the most the socket, the JSON and the
//! fake's timing allow on this machine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The Socket Mode side of the fake Slack.
pub struct FakeSocketMode {
    pub ws_addr: SocketAddr,
    sockets: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    sent: Mutex<HashMap<String, Instant>>,
    acked: Mutex<Histogram<u64>>,
    /// Acks that carried a payload (a command's answer).
    answered: Mutex<u64>,
}

impl FakeSocketMode {
    /// Binds the WebSocket listener and accepts sockets in the background.
    pub async fn start() -> anyhow::Result<Arc<FakeSocketMode>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = Arc::new(FakeSocketMode {
            ws_addr: listener.local_addr()?,
            sockets: Mutex::new(Vec::new()),
            sent: Mutex::new(HashMap::new()),
            acked: Mutex::new(new_hist()),
            answered: Mutex::new(0),
        });
        let accepting = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(accepting.clone().serve(stream));
            }
        });
        Ok(fake)
    }

    /// `apps.connections.open`'s answer.
    pub fn open(&self) -> Value {
        json!({"ok": true, "url": format!("ws://{}/link/?ticket=bench", self.ws_addr)})
    }

    async fn serve(self: Arc<Self>, stream: tokio::net::TcpStream) {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        if ws
            .send(Message::text(json!({"type": "hello"}).to_string()))
            .await
            .is_err()
        {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        if let Ok(mut s) = self.sockets.lock() {
            s.push(tx);
        }
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(text) => if ws.send(Message::text(text)).await.is_err() { break },
                    None => break,
                },
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => self.ack(t.as_str()),
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
    }

    fn ack(&self, text: &str) {
        let at = Instant::now();
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(id) = v["envelope_id"].as_str() else {
            return;
        };
        let sent = self.sent.lock().ok().and_then(|mut s| s.remove(id));
        if let (Some(sent), Ok(mut h)) = (sent, self.acked.lock()) {
            let _ = h.record((at - sent).as_micros().max(1) as u64);
        }
        if v.get("payload").is_some()
            && let Ok(mut n) = self.answered.lock()
        {
            *n += 1;
        }
    }

    /// Sockets connected so far (dead ones included).
    pub fn sockets(&self) -> usize {
        self.sockets.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Pushes `rate` slash commands a second for `secs` to the newest socket,
    /// waits up to 10 s for the last acks, and reports the latencies.
    pub async fn load(&self, rate: f64, secs: f64, text: &str) -> Value {
        if let (Ok(mut s), Ok(mut h), Ok(mut n)) =
            (self.sent.lock(), self.acked.lock(), self.answered.lock())
        {
            s.clear();
            h.reset();
            *n = 0;
        }
        let Some(socket) = self.sockets.lock().ok().and_then(|s| s.last().cloned()) else {
            return json!({"error": "no socket"});
        };
        let total = (rate * secs).round() as u64;
        let every = Duration::from_secs_f64(1.0 / rate);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        for n in 0..total {
            tick.tick().await;
            let id = format!("bench-{n}");
            let envelope = json!({
                "envelope_id": id,
                "type": "slash_commands",
                "accepts_response_payload": true,
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": {
                    "command": "/incident",
                    "text": format!("{text} {n}"),
                    "user_id": "U0BENCH",
                    "channel_id": "C0BENCH",
                    "trigger_id": format!("{n}.bench"),
                    "response_url": "https://hooks.slack.com/commands/T/1/x",
                },
            });
            if let Ok(mut s) = self.sent.lock() {
                s.insert(id, Instant::now());
            }
            if socket.send(envelope.to_string()).is_err() {
                break;
            }
        }
        let sending = started.elapsed();
        let wait_until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < wait_until
            && self.sent.lock().map(|s| !s.is_empty()).unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let h = self
            .acked
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_hist());
        let unacked = self.sent.lock().map(|s| s.len()).unwrap_or(0);
        json!({
            "sent": total,
            "sending_s": sending.as_secs_f64(),
            "acked": h.len(),
            "unacked": unacked,
            "answered": self.answered.lock().map(|n| *n).unwrap_or(0),
            "p50_us": h.value_at_quantile(0.5),
            "p99_us": h.value_at_quantile(0.99),
            "max_us": h.max(),
        })
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// `GET /socket/status`.
pub async fn status(State(fake): State<Arc<FakeSocketMode>>) -> Json<Value> {
    Json(json!({"sockets": fake.sockets()}))
}

/// `POST /socket/load` with `{"rate", "secs", "text"}`.
pub async fn load(State(fake): State<Arc<FakeSocketMode>>, Json(req): Json<Value>) -> Json<Value> {
    let rate = req["rate"].as_f64().unwrap_or(500.0).max(1.0);
    let secs = req["secs"].as_f64().unwrap_or(10.0).max(0.1);
    let text = req["text"].as_str().unwrap_or("list").to_string();
    Json(fake.load(rate, secs, &text).await)
}

/// The baseline: opens a socket through the fake's `apps.connections.open`
/// and acks every envelope at once, until dropped.
pub async fn bare_acker(api: SocketAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let open: Value = reqwest::Client::new()
        .post(format!("http://{api}/api/apps.connections.open"))
        .send()
        .await?
        .json()
        .await?;
    let url = open["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("apps.connections.open gave no url"))?
        .to_string();
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            let Message::Text(text) = frame else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if let Some(id) = v["envelope_id"].as_str() {
                let ack = json!({"envelope_id": id}).to_string();
                if ws.send(Message::text(ack)).await.is_err() {
                    break;
                }
            }
        }
    }))
}

/// Run 6's table: each load's envelope → ack figures; `p99 < 50 ms` judged
/// for Klaxon's rows.
pub fn render(rate: f64, secs: f64, rows: &[(String, bool, Result<Value, String>)]) -> String {
    let ms = |v: &Value, k: &str| {
        v[k].as_f64()
            .map_or("–".into(), |us| format!("{:.2} ms", us / 1000.0))
    };
    let mut out = format!(
        "\n### Run 6. Socket Mode on SQLite: envelope → ack at {rate:.0} slash commands/s for {secs:.0} s (open loop)\n\n\
         | load | envelopes sent / acked / with an answer | p50 | p99 | max | target | result |\n|---|---|---|---|---|---|---|\n"
    );
    for (name, judged, result) in rows {
        match result {
            Ok(v) => {
                let p99 = v["p99_us"].as_f64().unwrap_or(f64::INFINITY);
                let complete = v["unacked"].as_u64() == Some(0);
                let (target, mark) = if *judged {
                    (
                        "p99 < 50 ms, every envelope acked",
                        if p99 < 50_000.0 && complete {
                            "**met**"
                        } else {
                            "**missed**"
                        },
                    )
                } else {
                    ("–", "–")
                };
                out.push_str(&format!(
                    "| {name} | {} / {} / {} | {} | {} | {} | {target} | {mark} |\n",
                    v["sent"],
                    v["acked"],
                    v["answered"],
                    ms(v, "p50_us"),
                    ms(v, "p99_us"),
                    ms(v, "max_us"),
                ));
            }
            Err(e) => out.push_str(&format!("| {name} | failed: {e} | | | | | |\n")),
        }
    }
    out
}
