//! The `klaxon` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_klaxon");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klaxon_serve_turns_a_signed_open_into_a_root_message_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let port = free_port();
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("KLAXON_LISTEN", format!("127.0.0.1:{port}"))
        .env("KLAXON_DATABASE_URL", "sqlite://klaxon.db")
        .env("KLAXON_SLACK_BOT_TOKEN", fake_slack::TOKEN)
        .env("KLAXON_SLACK_SIGNING_SECRET", SECRET)
        .env("KLAXON_SLACK_API_URL", &slack.api_url)
        .env("KLAXON_INCIDENT_CHANNEL", INCIDENT_CHANNEL)
        .env("KLAXON_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klaxon serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "klaxon serve did not become ready");
    assert!(
        dir.path().join("klaxon.db").exists(),
        "the SQLite file is created on first start"
    );

    let response = send_command(&client, &base, ALICE, "open P1 Checkout API returning 500s")
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let calls = slack.wait_for_count(1).await;
    assert!(
        calls[0]
            .text()
            .contains("INCIDENT INC-1: [P1] Checkout API returning 500s")
    );

    let metrics = metrics_of(&base).await;
    for name in [
        r#"http_requests_total{route="/slack/commands",method="POST",status="200"} 1"#,
        "http_request_duration_seconds_bucket",
        "klaxon_incidents_open 1",
        "klaxon_outbox_pending 0",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("\"incident\":\"INC-1\""),
        "request logs carry the incident ref:\n{logs}"
    );
    for secret in [SECRET, fake_slack::TOKEN] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
        assert!(!String::from_utf8_lossy(&output.stderr).contains(secret));
    }
}

#[test]
fn check_config_lists_every_problem_and_exits_nonzero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("klaxon.toml");
    std::fs::write(
        &file,
        "listen = \"nowhere\"\n[slack]\nincident_channel = \"#incidents\"\n[incidents]\ndefault_severity = \"P9\"\n",
    )
    .expect("write");
    let output = Command::new(BIN)
        .args(["check-config", file.to_str().expect("utf-8 path")])
        .env_clear()
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    for key in [
        "listen",
        "slack.incident_channel",
        "incidents.default_severity",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }

    std::fs::write(&file, "[slack]\nincident_channel = \"C0INCIDENTS\"\n").expect("write");
    let ok = Command::new(BIN)
        .args(["check-config", file.to_str().expect("utf-8 path")])
        .env_clear()
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let output = Command::new(BIN)
            .arg("migrate")
            .current_dir(dir.path())
            .env_clear()
            .env("KLAXON_DATABASE_URL", "sqlite://k.db")
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dir.path().join("k.db").exists());
}

#[test]
fn klaxon_demo_shows_the_whole_incident_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BIN)
        .arg("demo")
        .current_dir(dir.path())
        .env_clear()
        .env("TMPDIR", dir.path())
        .output()
        .expect("runs");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{transcript}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let milestones = [
        "Alertmanager posts a firing notification",
        "INCIDENT INC-1: [P0] Checkout API is returning 5xx",
        "2 alerts firing",
        "Paging on-call engineer",
        "in a direct message to @alice",
        "Paging team lead",
        "check-checkout* failed",
        "HTTP 503",
        "@alice acknowledged INC-1",
        "Status update — INC-1",
        "check-checkout* succeeded",
        "RESOLVED: INC-1 Checkout API is returning 5xx",
        "*Root cause:* Deploy 2026.11.22-3",
        "*MTTA:*",
        "Demo complete",
    ];
    let mut at = 0;
    for m in milestones {
        let found = transcript[at..]
            .find(m)
            .unwrap_or_else(|| panic!("{m:?} missing (or out of order) in:\n{transcript}"));
        at += found;
    }
    assert!(!transcript.contains("<@U0"), "mentions are shown as names");
}
