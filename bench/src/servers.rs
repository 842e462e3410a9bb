//! The two helper servers, each run in its own process (`klaxon-bench
//! __fake-slack` / `__baseline`, started by the bench itself) so that neither
//! shares a runtime with the load generator:
//!
//! - a fake Slack Web API that Klaxon's outbox posts to: it answers at once,
//!   like Slack does when all is well, and counts the calls by method; it is
//!   also Slack's Socket Mode for run 6 (`crate::socket`);
//! - the baseline: a bare axum server answering 200 to `POST /`, the most the
//!   HTTP stack can do on this machine, which Klaxon's figures are compared to.
//!
//! Both print `LISTENING <addr>` on stdout once bound to 127.0.0.1:0, and exit
//! when their stdin closes (the bench holds it open), so they cannot outlive
//! the bench even if it is killed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::socket::{self, FakeSocketMode};

struct FakeSlack {
    ts: AtomicU64,
    calls: Mutex<BTreeMap<String, u64>>,
    socket: Arc<FakeSocketMode>,
}

async fn slack_call(
    State(state): State<Arc<FakeSlack>>,
    Path(method): Path<String>,
    body: Bytes,
) -> Json<Value> {
    let n = state.ts.fetch_add(1, Ordering::Relaxed) + 1;
    if let Ok(mut calls) = state.calls.lock() {
        *calls.entry(method.clone()).or_insert(0) += 1;
    }
    // Klaxon posts JSON to every method it uses on this path.
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| parsed.get(k).and_then(Value::as_str).map(str::to_string);
    match method.as_str() {
        "apps.connections.open" => Json(state.socket.open()),
        "conversations.open" => {
            let users = field("users").unwrap_or_else(|| "U0BENCH".into());
            let id = format!("D{}", users.replace(',', "").trim_start_matches('U'));
            Json(json!({"ok": true, "channel": {"id": id}}))
        }
        "usergroups.users.list" => Json(json!({"ok": true, "users": []})),
        _ => {
            // Increasing, unique message timestamps, as Slack's are.
            let ts = format!("1700000000.{n:06}");
            let channel = field("channel").unwrap_or_else(|| "C0BENCH".into());
            Json(json!({"ok": true, "channel": channel, "ts": ts, "message_ts": ts}))
        }
    }
}

async fn slack_stats(State(state): State<Arc<FakeSlack>>) -> Json<Value> {
    let calls = state.calls.lock().map(|c| c.clone()).unwrap_or_default();
    Json(json!({ "calls": calls }))
}

/// Exits the process when stdin reaches EOF (the bench went away).
fn exit_when_stdin_closes() {
    tokio::spawn(async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}

async fn serve(router: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTENING {}", listener.local_addr()?);
    exit_when_stdin_closes();
    axum::serve(listener, router).await?;
    Ok(())
}

/// `klaxon-bench __fake-slack`: one thread is plenty for what Klaxon sends.
pub fn fake_slack_main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let socket = FakeSocketMode::start().await?;
        let sockets = Router::new()
            .route("/socket/status", get(socket::status))
            .route("/socket/load", post(socket::load))
            .with_state(socket.clone());
        let router = Router::new()
            .route("/api/{method}", post(slack_call))
            .route("/stats", get(slack_stats))
            .with_state(Arc::new(FakeSlack {
                ts: AtomicU64::new(0),
                calls: Mutex::new(BTreeMap::new()),
                socket,
            }))
            .merge(sockets);
        serve(router).await
    })
}

/// `klaxon-bench __baseline`: the same runtime shape as Klaxon's (tokio's
/// default multi-thread runtime), reading the body like a real handler.
pub fn baseline_main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let router = Router::new().route("/", post(|_body: Bytes| async { StatusCode::OK }));
        serve(router).await
    })
}
