//! `klaxon demo`: an incident from the first alert to the resolution summary,
//! locally, in well under a minute.
//!
//! It starts a real Klaxon — HTTP server, SQLite in a temporary directory, the
//! scheduler and the outbox sender — in console mode, plus a small "checkout"
//! service whose health endpoint fails until the fix is deployed. Then it plays
//! the incident through the same doors production uses: an Alertmanager
//! notification, escalation on (short) durable timers, a check through the
//! executor, signed slash commands and button presses from three engineers.
//! The alert is critical, so the incident is a P0 and gets a channel of its
//! own; it ends with the postmortem draft Klaxon writes from the record.
//! What Klaxon posts to Slack is printed as a transcript.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::blocks;
use crate::config;
use crate::http::signature;
use crate::server;
use crate::slack::api::ConsoleMessage;

const CHANNEL: &str = "C0INCIDENTS";
const PEOPLE: [(&str, &str); 3] = [("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0CAROL", "carol")];

/// The channels Klaxon created in the demo: id → name.
fn rooms() -> &'static std::sync::Mutex<HashMap<String, String>> {
    static ROOMS: std::sync::OnceLock<std::sync::Mutex<HashMap<String, String>>> =
        std::sync::OnceLock::new();
    ROOMS.get_or_init(Default::default)
}

/// What the transcript showed last: the text of the last message updated,
/// and the invitations (a second one of the same person is news to nobody).
#[derive(Default)]
struct Shown {
    last_update: String,
    invited: std::collections::HashSet<(String, String)>,
}

fn shown() -> &'static std::sync::Mutex<Shown> {
    static SHOWN: std::sync::OnceLock<std::sync::Mutex<Shown>> = std::sync::OnceLock::new();
    SHOWN.get_or_init(Default::default)
}

/// The name a channel id shows as.
fn channel_name(id: &str) -> String {
    if id == CHANNEL {
        return "#incidents".into();
    }
    rooms()
        .lock()
        .map(|r| r.get(id).cloned())
        .ok()
        .flatten()
        .unwrap_or_else(|| id.to_string())
}

/// Turns Slack mrkdwn into what a terminal should show.
fn for_terminal(text: &str, names: &HashMap<&str, &str>) -> String {
    let mut out = text.to_string();
    if let Ok(rooms) = rooms().lock() {
        for (id, name) in rooms.iter() {
            out = out.replace(&format!("<#{id}>"), name);
        }
    }
    for (id, name) in names {
        out = out.replace(&format!("<@{id}>"), &format!("@{name}"));
    }
    // <url|label> → label (url)
    let mut shown = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(start) = rest.find("<http") {
        shown.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                match inner.split_once('|') {
                    Some((url, label)) => shown.push_str(&format!("{label} ({url})")),
                    None => shown.push_str(inner),
                }
                rest = &after[end + 1..];
            }
            None => {
                shown.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    shown.push_str(rest);
    shown
        .replace(&format!("<#{CHANNEL}>"), "#incidents")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The demo's engineers and their Slack client.
struct Player {
    client: reqwest::Client,
    base: String,
    secret: String,
    alert_token: String,
    names: HashMap<&'static str, &'static str>,
}

impl Player {
    /// Waits until `/readyz` answers 200 (the database is migrated).
    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        for _ in 0..500 {
            let ready = self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        anyhow::bail!("Klaxon did not become ready at {}", self.base)
    }

    fn name<'a>(&self, user: &'a str) -> &'a str {
        self.names.get(user).copied().unwrap_or(user)
    }

    async fn post(&self, path: &str, body: String, content_type: &str) -> anyhow::Result<String> {
        // Slack signs with the wall-clock time, and the verifier checks it against the same.
        let ts = jiff::Timestamp::now().as_second().to_string();
        let sig = signature::sign(&self.secret, &ts, body.as_bytes());
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path} answered {status}: {text}");
        Ok(text)
    }

    /// Types `/incident <text>` as `user` and prints the ephemeral answer.
    async fn command(&self, user: &str, text: &str) -> anyhow::Result<()> {
        let name = self.name(user);
        println!(
            "\n  @{name} types: /incident {}",
            for_terminal(text, &self.names)
        );
        let body = serde_urlencoded::to_string([
            ("command", "/incident"),
            ("text", text),
            ("user_id", user),
            ("user_name", name),
            ("channel_id", CHANNEL),
            ("team_id", "T0DEMO"),
            (
                "trigger_id",
                &format!("demo.{:016x}", rand::random::<u64>()),
            ),
            ("response_url", "http://127.0.0.1/unused"),
        ])?;
        let answer: Value = serde_json::from_str(
            &self
                .post("/slack/commands", body, "application/x-www-form-urlencoded")
                .await?,
        )?;
        let reply = answer
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for line in for_terminal(reply, &self.names).lines() {
            println!("    (only @{name} sees) {line}");
        }
        Ok(())
    }

    async fn interaction(&self, payload: Value) -> anyhow::Result<()> {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
        self.post(
            "/slack/interactions",
            body,
            "application/x-www-form-urlencoded",
        )
        .await
        .map(|_| ())
    }

    async fn press(
        &self,
        user: &str,
        label: &str,
        action: &str,
        incident: i64,
    ) -> anyhow::Result<()> {
        println!("\n  @{} presses [{label}]", self.name(user));
        self.interaction(json!({
            "type": "block_actions",
            "user": {"id": user, "username": self.name(user)},
            "channel": {"id": CHANNEL},
            "trigger_id": format!("demo-trigger-{action}"),
            "actions": [{"action_id": action, "value": incident.to_string(), "type": "button"}],
        }))
        .await
    }

    /// What Alertmanager would POST for the checkout error-rate alert.
    async fn alertmanager(&self, status: &str) -> anyhow::Result<()> {
        let ends = if status == "firing" {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            jiff::Timestamp::now().to_string()
        };
        let started = "2026-11-22T03:12:09.428719133Z";
        let alert = |instance: &str, fp: &str| {
            json!({
                "status": status,
                "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical", "instance": instance},
                "annotations": {
                    "summary": "Checkout API is returning 5xx",
                    "description": "More than 5% of checkout requests failed over the last 5 minutes.",
                    "runbook_url": "https://runbooks.example.com/checkout#high-error-rate"
                },
                "startsAt": started, "endsAt": ends,
                "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=job%3Acheckout_errors%3Aratio5m",
                "fingerprint": fp,
            })
        };
        let body = json!({
            "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\", service=\"checkout\"}",
            "truncatedAlerts": 0, "status": status, "receiver": "klaxon",
            "groupLabels": {"alertname": "HighErrorRate", "service": "checkout"},
            "commonLabels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
            "commonAnnotations": {"summary": "Checkout API is returning 5xx"},
            "externalURL": "http://alertmanager.example.com:9093",
            "alerts": [alert("checkout-1:8080", "8b1c7f3e2a9d4c10"), alert("checkout-2:8080", "c4e9a0d17b3f5e22")],
        });
        println!("\n  Alertmanager posts a {status} notification to /alerts/alertmanager");
        let response = self
            .client
            .post(format!("{}/alerts/alertmanager", self.base))
            .bearer_auth(&self.alert_token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "/alerts/alertmanager answered {}",
            response.status()
        );
        Ok(())
    }
}

/// Prints what Klaxon posted, as a person in Slack would see it.
fn print_message(m: &ConsoleMessage, names: &HashMap<&str, &str>) {
    let text = for_terminal(&m.text, names);
    let who = |u: Option<&str>| u.and_then(|u| names.get(u).copied()).unwrap_or("someone");
    if m.method == "conversations.create"
        && let Ok(mut rooms) = rooms().lock()
    {
        rooms.insert(m.channel.clone(), m.text.clone());
    }
    let (head, indent) = match (m.method.as_str(), &m.thread_ts) {
        ("chat.postMessage", _) if m.channel.starts_with('D') => (
            format!(
                "    ✉ Klaxon, in a direct message to @{}",
                who(m.channel.get(1..))
            ),
            "      │ ",
        ),
        ("chat.postMessage", None) => (format!("{} · Klaxon", channel_name(&m.channel)), "  │ "),
        ("conversations.create", _) => {
            (format!("    🏠 Klaxon creates the channel {}", m.text), "")
        }
        ("conversations.setTopic", _) => return,
        ("conversations.invite", _)
            if !shown().lock().is_ok_and(|mut s| {
                s.invited
                    .insert((m.channel.clone(), m.user.clone().unwrap_or_default()))
            }) =>
        {
            return;
        }
        ("conversations.invite", _) => (
            format!(
                "    ➕ Klaxon invites @{} to {}",
                who(m.user.as_deref()),
                channel_name(&m.channel)
            ),
            "",
        ),
        ("files.completeUploadExternal", _) => {
            let (name, content) = m.file.clone().unwrap_or_default();
            println!(
                "\n    📎 Klaxon shares the file {name} in {}",
                channel_name(&m.channel)
            );
            for line in text.lines() {
                println!("      │ {line}");
            }
            println!("      ┌── {name} ──");
            for line in content.lines() {
                println!("      │ {line}");
            }
            println!("      └──");
            return;
        }
        ("chat.postMessage", Some(_)) => ("    ↳ Klaxon, in the thread".to_string(), "      │ "),
        ("chat.update", _) => {
            let same = shown()
                .lock()
                .map(|mut s| std::mem::replace(&mut s.last_update, text.clone()) == text)
                .unwrap_or(false);
            if same {
                println!(
                    "    ✎ Klaxon made the same update in {}",
                    channel_name(&m.channel)
                );
                return;
            }
            (
                format!(
                    "    ✎ Klaxon updated a message in {}",
                    channel_name(&m.channel)
                ),
                "      │ ",
            )
        }
        ("chat.postEphemeral", _) => (
            format!("    Klaxon, only to @{}", who(m.user.as_deref())),
            "      │ ",
        ),
        ("views.open", _) => (
            "    ▣ A form opens: Resolve (Root cause · Resolution · Follow-up)".to_string(),
            "",
        ),
        ("conversations.open", _) => return,
        (other, _) => (format!("    Klaxon calls {other}"), "      │ "),
    };
    println!("\n{head}");
    if !indent.is_empty() {
        for line in text.lines() {
            println!("{indent}{line}");
        }
    }
}

/// Prints messages as they arrive until one contains `needle`, with a progress line.
async fn until(
    rx: &mut mpsc::UnboundedReceiver<ConsoleMessage>,
    names: &HashMap<&str, &str>,
    needle: &str,
    waiting_for: &str,
) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let started = tokio::time::Instant::now();
    let mut announced = false;
    loop {
        match tokio::time::timeout(Duration::from_millis(250), rx.recv()).await {
            Ok(Some(m)) => {
                if tty {
                    print!("\r{}\r", " ".repeat(70));
                }
                print_message(&m, names);
                if m.text.contains(needle) || m.method == needle {
                    // Let the messages that belong with it arrive too.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while let Ok(m) = rx.try_recv() {
                        print_message(&m, names);
                    }
                    return Ok(());
                }
            }
            Ok(None) => anyhow::bail!("Klaxon stopped while the demo waited for {waiting_for}"),
            Err(_) => {
                let waited = started.elapsed().as_secs();
                anyhow::ensure!(waited < 30, "gave up waiting for {waiting_for}");
                if tty {
                    print!("\r  ⏳ waiting for {waiting_for} ({waited}s) ");
                    let _ = std::io::stdout().flush();
                } else if !announced {
                    println!("\n  ⏳ waiting for {waiting_for}…");
                    announced = true;
                }
            }
        }
    }
}

/// A tiny "checkout" service whose /health fails until `fixed` is set.
async fn checkout_service(fixed: Arc<AtomicBool>) -> anyhow::Result<String> {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let fixed = fixed.clone();
            async move {
                if fixed.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok: payments provider reachable")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "error: payments provider key missing",
                    )
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Plays the demo; the temporary database is removed afterwards. `keep`:
/// once played, Klaxon goes on serving (the status page, the history) until
/// Ctrl-C.
pub async fn run(keep: bool) -> anyhow::Result<()> {
    // The transcript is the demo's output; Klaxon's own log only when asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        crate::telemetry::init_logging(None);
    }
    let dir = std::env::temp_dir().join(format!("klaxon-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create the demo directory")?;
    // Ctrl-C (or SIGTERM) at any moment stops it; its directory goes either way.
    let result = tokio::select! {
        r = play(&dir, keep) => r,
        _ = server::shutdown_signal() => {
            println!("\nStopped.");
            Ok(())
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn demo_config(checkout: &str, alert_token: &str, history_token: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
alert_token = "{alert_token}"
history_token = "{history_token}"

[status]
title = "Acme status"

[[status.components]]
name = "checkout"
title = "Checkout"
description = "Cart and card payments"
services = ["checkout"]

[[status.components]]
name = "search"
title = "Search"
description = "Product search"

[[status.components]]
name = "login"
title = "Login"
description = "Sign-in and accounts"

[outbox]
channel_rate = 20.0
channel_burst = 20

[incidents]
channel_for = ["P0"]

[[escalation.schedules]]
name = "primary"
timezone = "UTC"
rotation = ["U0ALICE"]
period = "1w"
handoff = "2026-01-05T09:00"

[[escalation.ladders]]
name = "default"
levels = [
  {{ name = "on-call engineer", notify = ["schedule:primary"], wait = "4s" }},
  {{ name = "team lead", notify = ["user:U0BOB"], wait = "4s" }},
  {{ name = "engineering manager", notify = ["user:U0CAROL"], wait = "4s" }},
]

[[actions]]
name = "check-checkout"
description = "Checkout health check (curl -f …/health)"
kind = "http"
url = "{checkout}/health"
timeout = "2s"
allowed = ["schedule:primary", "user:U0BOB"]
"#
    )
}

async fn play(dir: &std::path::Path, keep: bool) -> anyhow::Result<()> {
    let fixed = Arc::new(AtomicBool::new(false));
    let checkout = checkout_service(fixed.clone()).await?;
    let secret = format!("demo-{:016x}", rand::random::<u64>());
    let alert_token = format!("demo-{:016x}", rand::random::<u64>());
    let history_token = format!("demo-{:032x}", rand::random::<u128>());
    let db = format!("sqlite://{}", dir.join("klaxon.db").display());
    let env = |k: &str| match k {
        "KLAXON_DATABASE_URL" => Some(db.clone()),
        "KLAXON_SLACK_SIGNING_SECRET" => Some(secret.clone()),
        "KLAXON_INCIDENT_CHANNEL" => Some(CHANNEL.to_string()),
        _ => None,
    };
    let settings = config::from_toml(
        &demo_config(&checkout, &alert_token, &history_token),
        "demo",
        &env,
    )?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = server::build(settings, Some(tx)).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let names: HashMap<&'static str, &'static str> = PEOPLE.into_iter().collect();
    let p = Player {
        client: reqwest::Client::new(),
        base: base.clone(),
        secret,
        alert_token,
        names: names.clone(),
    };
    p.wait_until_ready().await?;

    println!(
        "Klaxon demo — a real Klaxon at {base} on SQLite in {}",
        dir.display()
    );
    println!(
        "Slack is replaced by this transcript. On call this week: @alice; team lead: @bob; manager: @carol."
    );
    println!("The escalation ladder uses 4-second levels here (the runbooks' are 30 minutes).");

    p.alertmanager("firing").await?;
    until(
        &mut rx,
        &names,
        "Paging on-call engineer",
        "the thread and the first page",
    )
    .await?;
    until(
        &mut rx,
        &names,
        "Paging team lead",
        "nobody acknowledges: the next level",
    )
    .await?;
    p.command("U0BOB", "run check-checkout").await?;
    until(
        &mut rx,
        &names,
        "check-checkout* failed",
        "the health check",
    )
    .await?;
    p.press("U0ALICE", "Acknowledge", blocks::ACTION_ACK, 1)
        .await?;
    until(&mut rx, &names, "acknowledged INC-1", "the acknowledgement").await?;
    p.command("U0BOB", "role commander <@U0BOB>").await?;
    until(&mut rx, &names, "Your duties", "the commander's duties").await?;
    p.command(
        "U0ALICE",
        "status Payments provider key missing since deploy 2026.11.22-3; rolling back",
    )
    .await?;
    until(&mut rx, &names, "Status update", "the status update").await?;
    p.command(
        "U0BOB",
        "status --public Some customers cannot complete checkout. We have found the cause and are rolling out a fix.",
    )
    .await?;
    until(&mut rx, &names, "Status update", "the public status update").await?;
    println!("  (published on the status page: only these words, never the thread's)");
    fixed.store(true, Ordering::Relaxed);
    println!("\n  (the rollback finishes: checkout is healthy again)");
    p.command("U0ALICE", "run check-checkout").await?;
    until(
        &mut rx,
        &names,
        "check-checkout* succeeded",
        "the health check",
    )
    .await?;
    p.press("U0ALICE", "Resolve", blocks::ACTION_RESOLVE, 1)
        .await?;
    until(&mut rx, &names, "views.open", "the form").await?;
    println!("\n  @alice fills in the form and presses [Resolve]");
    p.interaction(json!({
        "type": "view_submission",
        "user": {"id": "U0ALICE", "username": "alice"},
        "view": {
            "callback_id": blocks::CALLBACK_RESOLVE,
            "private_metadata": "1",
            "state": {"values": {
                "root_cause": {"root_cause": {"type": "plain_text_input", "value": "Deploy 2026.11.22-3 shipped a config without the payments provider's key"}},
                "resolution": {"resolution": {"type": "plain_text_input", "value": "Rolled back to 2026.11.22-2"}},
                "follow_up": {"follow_up": {"type": "plain_text_input", "value": "OPS-1234: validate provider keys in CI"}}
            }}
        }
    }))
    .await?;
    until(&mut rx, &names, "RESOLVED: INC-1", "the resolution summary").await?;
    p.alertmanager("resolved").await?;
    p.command(
        "U0BOB",
        "followup INC-1 <@U0ALICE> Validate payment provider keys in CI before deploying",
    )
    .await?;
    until(&mut rx, &names, "Follow-up #1", "the follow-up").await?;
    p.press(
        "U0BOB",
        "📝 Write the postmortem",
        blocks::ACTION_POSTMORTEM,
        1,
    )
    .await?;
    until(
        &mut rx,
        &names,
        "files.completeUploadExternal",
        "the postmortem file",
    )
    .await?;
    p.command("U0ALICE", "list").await?;

    println!(
        "\nDemo complete: alert → thread and a channel of its own (P0) → pages → check → ack → commander → status (and a public one) → check → resolution summary → follow-up → postmortem."
    );
    println!("\nStatus page:      {base}/status   (also /status.json, /status.rss, /status.atom)");
    println!("Incident history: {base}/incidents   (sign in with the token {history_token})");
    if keep {
        println!("Serving until Ctrl-C.");
        // Until the signal (`run` stops the demo then), print what Klaxon posts.
        while let Some(m) = rx.recv().await {
            print_message(&m, &names);
        }
    } else {
        println!("Run `klaxon demo --keep` to browse them; they go away with the demo.");
    }
    let _ = stop_tx.send(());
    server.await??;
    println!("Run `klaxon serve` with a Slack app to do this for real (see README).");
    Ok(())
}
