//! The `klaxon` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_klaxon");

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
    // A misspelt key, a duplicate key, bad values and a broken action: all
    // reported in one run, the action by its name.
    std::fs::write(
        &file,
        r##"listen = "nowhere"
lisen = "127.0.0.1:8080"
[slack]
incident_channel = "#incidents"
incident_channel = "C0INCIDENTS"
[incidents]
default_severity = "P9"
[[actions]]
name = "restart-web"
kind = "docker"
container = "web"
operation = "restart"
timeout = "forever"
allowed = ["user:U0ALICE"]
"##,
    )
    .expect("write");
    let output = Command::new(BIN)
        .args(["check-config", file.to_str().expect("utf-8 path")])
        .env_clear()
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("6 problem(s)"), "{err}");
    for (key, says) in [
        ("listen", "not an address"),
        ("lisen", "not a key Klaxon knows"),
        ("(syntax)", "duplicate key"),
        ("slack.incident_channel", "not a channel ID"),
        ("incidents.default_severity", "not a severity"),
        ("actions.restart-web.timeout", "not a duration"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!(": {key}: ")) && l.contains(says)),
            "{key} ({says}) missing from:\n{err}"
        );
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

/// The value of `KEY=value` in an env file.
fn env_file_value(file: &str, key: &str) -> String {
    let text = std::fs::read_to_string(file).expect("read");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} is not in {file}"))
        .to_string()
}

/// Every `credentials:` of an `authorization` block in an Alertmanager config.
fn alertmanager_credentials(file: &str) -> Vec<String> {
    fn walk(v: &serde_yaml_ng::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                if let Some(c) = m
                    .get("authorization")
                    .and_then(|a| a.get("credentials"))
                    .and_then(|c| c.as_str())
                {
                    out.push(c.to_string());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(file).expect("read");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let mut out = Vec::new();
    walk(&doc, &mut out);
    out
}

#[test]
fn the_placeholders_the_deploy_files_publish_are_refused_as_secrets() {
    let env_file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/klaxon.env.example");
    let am_file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/alertmanager.yml");
    let signing = env_file_value(env_file, "KLAXON_SLACK_SIGNING_SECRET");
    let mut tokens = alertmanager_credentials(am_file);
    tokens.push(env_file_value(env_file, "KLAXON_ALERT_TOKEN"));
    assert!(
        !signing.is_empty() && tokens.len() >= 2,
        "{signing} {tokens:?}"
    );
    for token in &tokens {
        // check-config exits 1 on problems; serve exits 2 on a configuration it refuses.
        for (command, code) in [("check-config", 1), ("serve", 2)] {
            let output = Command::new(BIN)
                .arg(command)
                .env_clear()
                .env("KLAXON_LISTEN", "127.0.0.1:0")
                .env("KLAXON_SLACK_BOT_TOKEN", "xoxb-0000-0000-placeholder-test")
                .env("KLAXON_SLACK_SIGNING_SECRET", &signing)
                .env("KLAXON_ALERT_TOKEN", token)
                .output()
                .expect("runs");
            assert_eq!(output.status.code(), Some(code), "{command} with {token}");
            let err = String::from_utf8_lossy(&output.stderr);
            for key in ["KLAXON_SLACK_SIGNING_SECRET", "KLAXON_ALERT_TOKEN"] {
                assert!(
                    err.lines()
                        .any(|l| l.contains(key) && l.contains("published placeholder")),
                    "{command}: {key} not refused:\n{err}"
                );
            }
            assert!(!err.contains(token.as_str()), "a secret was echoed");
        }
    }
    // Too short to be a secret, however random.
    let output = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("KLAXON_ALERT_TOKEN", "k3y9")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is 4 characters long; use at least 16")
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
    // A page's direct message has its own order (it never queues behind the
    // thread), so it may come before or after the page in the thread.
    assert!(
        transcript.contains("in a direct message to @alice"),
        "{transcript}"
    );
    assert!(!transcript.contains("<@U0"), "mentions are shown as names");
}
