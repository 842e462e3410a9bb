//! `klaxon demo`: an incident from declaration to resolution summary, locally.
//!
//! It starts a real Klaxon (HTTP server, SQLite in a temporary directory, the
//! outbox sender) in console mode, then plays three engineers who type signed
//! slash commands and press buttons over HTTP exactly as Slack would send them.
//! What Klaxon posts is printed as a Slack-like transcript.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::app::{self, App};
use crate::config;
use crate::http::signature;
use crate::slack::api::ConsoleMessage;
use crate::slack::blocks;
use crate::store::outbox;

const CHANNEL: &str = "C0INCIDENTS";
const PEOPLE: [(&str, &str); 3] = [("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0CAROL", "carol")];

/// Turns Slack mrkdwn into what a terminal should show.
fn for_terminal(text: &str, names: &HashMap<&str, &str>) -> String {
    let mut out = text.to_string();
    for (id, name) in names {
        out = out.replace(&format!("<@{id}>"), &format!("@{name}"));
    }
    out.replace(&format!("<#{CHANNEL}>"), "#incidents")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

struct Player {
    client: reqwest::Client,
    base: String,
    secret: String,
    names: HashMap<&'static str, &'static str>,
    trigger: u32,
}

impl Player {
    async fn post(&self, path: &str, body: String) -> anyhow::Result<String> {
        let ts = (crate::time::Millis::now().0 / 1000).to_string();
        let sig = signature::sign(&self.secret, &ts, body.as_bytes());
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
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
        let name = self.names.get(user).copied().unwrap_or(user);
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
            ("trigger_id", "demo"),
            ("response_url", "http://127.0.0.1/unused"),
        ])?;
        let answer: Value = serde_json::from_str(&self.post("/slack/commands", body).await?)?;
        let reply = answer
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for line in for_terminal(reply, &self.names).lines() {
            println!("    (only @{name} sees) {line}");
        }
        Ok(())
    }

    async fn interaction(&mut self, payload: Value) -> anyhow::Result<()> {
        self.trigger += 1;
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])?;
        self.post("/slack/interactions", body).await.map(|_| ())
    }

    async fn press(&mut self, user: &str, action: &str, incident: i64) -> anyhow::Result<()> {
        let name = self.names.get(user).copied().unwrap_or(user);
        println!(
            "\n  @{name} presses [{}]",
            if action == blocks::ACTION_ACK {
                "Acknowledge"
            } else {
                "Resolve"
            }
        );
        let trigger = format!("demo-trigger-{}", self.trigger);
        self.interaction(json!({
            "type": "block_actions",
            "user": {"id": user, "username": name},
            "channel": {"id": CHANNEL},
            "trigger_id": trigger,
            "actions": [{"action_id": action, "value": incident.to_string(), "type": "button"}],
        }))
        .await
    }
}

fn print_messages(rx: &mut mpsc::UnboundedReceiver<ConsoleMessage>, names: &HashMap<&str, &str>) {
    while let Ok(m) = rx.try_recv() {
        let text = for_terminal(&m.text, names);
        let (head, indent) = match (m.method.as_str(), &m.thread_ts) {
            ("chat.postMessage", None) => ("#incidents · Klaxon".to_string(), "  │ "),
            ("chat.postMessage", Some(_)) => {
                ("    ↳ Klaxon, in the thread".to_string(), "      │ ")
            }
            ("chat.update", _) => (
                "    ✎ Klaxon updated the thread's first message".to_string(),
                "      │ ",
            ),
            ("chat.postEphemeral", _) => (
                format!(
                    "    Klaxon, only to @{}",
                    m.user
                        .as_deref()
                        .and_then(|u| names.get(u).copied())
                        .unwrap_or("someone")
                ),
                "      │ ",
            ),
            ("views.open", _) => (
                "    ▣ A form opens: Resolve (Root cause · Resolution · Follow-up)".to_string(),
                "",
            ),
            (other, _) => (format!("    Klaxon calls {other}"), "      │ "),
        };
        println!("\n{head}");
        if !indent.is_empty() {
            for line in text.lines() {
                println!("{indent}{line}");
            }
        }
    }
}

/// Waits until the outbox has delivered everything, showing a progress line.
async fn settle(
    app: &App,
    rx: &mut mpsc::UnboundedReceiver<ConsoleMessage>,
    names: &HashMap<&str, &str>,
) -> anyhow::Result<()> {
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if outbox::pending_count(app.store.pool()).await? == 0 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    print_messages(rx, names);
    Ok(())
}

async fn pause(what: &str, secs: u64) {
    for left in (1..=secs).rev() {
        print!("\r  ⏳ {what} ({left}s) ");
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    print!("\r{}\r", " ".repeat(60));
    let _ = std::io::stdout().flush();
}

/// Plays the demo; the temporary database is removed afterwards.
pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("klaxon-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create the demo directory")?;
    let result = play(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn play(dir: &std::path::Path) -> anyhow::Result<()> {
    let secret = format!("demo-{:016x}", rand::random::<u64>());
    let db = format!("sqlite://{}", dir.join("klaxon.db").display());
    let env = |k: &str| match k {
        "KLAXON_DATABASE_URL" => Some(db.clone()),
        "KLAXON_SLACK_SIGNING_SECRET" => Some(secret.clone()),
        "KLAXON_INCIDENT_CHANNEL" => Some(CHANNEL.to_string()),
        _ => None,
    };
    let settings = config::from_toml(
        "listen = \"127.0.0.1:0\"\n[outbox]\nchannel_rate = 20.0\nchannel_burst = 20\n",
        "demo",
        &env,
    )?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = App::build(settings, Some(tx)).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app::run(app.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let names: HashMap<&'static str, &'static str> = PEOPLE.into_iter().collect();
    let mut p = Player {
        client: reqwest::Client::new(),
        base: base.clone(),
        secret,
        names: names.clone(),
        trigger: 0,
    };

    println!(
        "Klaxon demo: a real Klaxon at {base}, SQLite in {}, Slack replaced by this transcript.",
        dir.display()
    );
    println!("Three engineers: @alice (on call), @bob (team lead), @carol (payments).");

    p.command("U0ALICE", "open P1 Checkout API returning 500s")
        .await?;
    settle(&app, &mut rx, &names).await?;
    pause("alice opens the dashboards", 2).await;
    p.press("U0ALICE", blocks::ACTION_ACK, 1).await?;
    settle(&app, &mut rx, &names).await?;
    pause("alice rolls back the last deploy", 2).await;
    p.command(
        "U0ALICE",
        "status Rolled back deploy 2026.11.22-3; 5xx rate falling from 38% to 2%",
    )
    .await?;
    settle(&app, &mut rx, &names).await?;
    p.command("U0BOB", "sev INC-1 P2").await?;
    settle(&app, &mut rx, &names).await?;
    p.command("U0BOB", "assign <@U0CAROL|carol>").await?;
    settle(&app, &mut rx, &names).await?;
    pause("carol confirms payments are healthy", 2).await;
    p.press("U0CAROL", blocks::ACTION_RESOLVE, 1).await?;
    settle(&app, &mut rx, &names).await?;
    println!("\n  @carol fills in the form and presses [Resolve]");
    p.interaction(json!({
        "type": "view_submission",
        "user": {"id": "U0CAROL", "username": "carol"},
        "view": {
            "callback_id": blocks::CALLBACK_RESOLVE,
            "private_metadata": "1",
            "state": {"values": {
                "root_cause": {"root_cause": {"type": "plain_text_input", "value": "Deploy 2026.11.22-3 shipped a config without the payment provider's key"}},
                "resolution": {"resolution": {"type": "plain_text_input", "value": "Rolled back to 2026.11.22-2"}},
                "follow_up": {"follow_up": {"type": "plain_text_input", "value": "OPS-1234: validate provider keys in CI"}}
            }}
        }
    }))
    .await?;
    settle(&app, &mut rx, &names).await?;
    p.command("U0ALICE", "list").await?;

    let _ = stop_tx.send(());
    server.await??;
    println!(
        "\nDemo complete. Run `klaxon serve` with a Slack app to do this for real (see README)."
    );
    Ok(())
}
