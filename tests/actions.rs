//! Approved checks and restarts from the thread: a real Docker engine, local HTTP
//! servers, real processes — and every refusal audited.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);
const CAROL: &str = "U0CAROL";

/// A container running busybox, removed when dropped.
struct Container {
    name: String,
    cli: String,
}

impl Container {
    fn start(prefix: &str) -> Container {
        let cli = std::env::var("KLAXON_TEST_DOCKER_CLI").unwrap_or_else(|_| {
            panic!("KLAXON_TEST_DOCKER_CLI is not set. Run the tests with tests/run.sh, which starts a Docker engine")
        });
        let name = format!("klaxon-{prefix}-{:08x}", rand::random::<u32>());
        let out = Command::new(&cli)
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "none",
                "klaxon-test-busybox",
            ])
            .args([
                "sh",
                "-c",
                "echo started at $(date +%s%N); while true; do sleep 1; done",
            ])
            .output()
            .expect("docker run");
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container { name, cli }
    }

    fn started_at(&self) -> String {
        let out = Command::new(&self.cli)
            .args(["inspect", "-f", "{{.State.StartedAt}}", &self.name])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(&self.cli)
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn catalog(container: &str, http_base: &str) -> String {
    format!(
        r#"
[[actions]]
name = "restart-web"
description = "Restart the web container"
kind = "docker"
operation = "restart"
container = "{{service}}"
stop_timeout = "1s"
allowed = ["user:U0ALICE", "user:U0BOB"]
approval_expiry = "2s"
params = [{{ name = "service", allowed = ["{container}"] }}]

[[actions]]
name = "inspect-web"
description = "State and health of the web container"
kind = "docker"
operation = "inspect"
container = "{container}"
allowed = ["group:S0ONCALL"]

[[actions]]
name = "logs-web"
description = "Last log lines of the web container"
kind = "docker"
operation = "logs"
container = "{container}"
tail = 5
allowed = ["user:U0ALICE"]

[[actions]]
name = "check-up"
description = "Health check"
kind = "http"
url = "{http_base}/up"
body_contains = "ok"
timeout = "1s"
allowed = ["user:U0ALICE"]

[[actions]]
name = "check-down"
kind = "http"
url = "{http_base}/down"
timeout = "1s"
allowed = ["user:U0ALICE"]

[[actions]]
name = "check-slow"
kind = "http"
url = "{http_base}/slow"
timeout = "1s"
allowed = ["user:U0ALICE"]

[[actions]]
name = "echo-word"
kind = "command"
argv = ["/bin/echo", "word:", "{{word}}"]
read_only = true
allowed = ["user:U0ALICE"]
params = [{{ name = "word", pattern = "[a-z]{{1,12}}", default = "hello" }}]

[[actions]]
name = "flood"
kind = "command"
argv = ["/usr/bin/seq", "1", "200000"]
read_only = true
output_limit = 4096
allowed = ["user:U0ALICE"]

[[actions]]
name = "nap"
kind = "command"
argv = ["/bin/sleep", "1"]
read_only = true
allowed = ["user:U0ALICE"]

[[actions]]
name = "hang"
kind = "command"
argv = ["/bin/sleep", "30"]
timeout = "1s"
read_only = true
allowed = ["user:U0ALICE"]
"#
    )
}

/// A local HTTP server: /up answers 200 "ok", /down 503, /slow after 3 s.
async fn http_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/up", get(|| async { "ok" }))
        .route(
            "/down",
            get(|| async {
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "db unreachable",
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    serve_router(app).await
}

async fn setup(container: &str) -> (TestDb, FakeSlack, TestApp) {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.set_group("S0ONCALL", &[BOB]);
    let http = http_server().await;
    let opts = Options {
        extra_toml: catalog(container, &http),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;
    app.command(ALICE, "open P1 Web is throwing 502s").await;
    slack.wait_for_count(1).await;
    (db, slack, app)
}

fn press(user: &str, action_id: &str, value: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user},
        "channel": {"id": INCIDENT_CHANNEL},
        "trigger_id": "1.2.3",
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    })
}

/// The final text of the message that reports a run (the last update of it).
fn outcome_of(calls: &[fake_slack::Call], action: &str) -> Option<String> {
    calls
        .iter()
        .rev()
        .find(|c| {
            c.method == "chat.update"
                && (c.text().contains(&format!("*{action}* succeeded"))
                    || c.text().contains(&format!("*{action}* failed")))
        })
        .map(|c| c.text())
}

async fn wait_outcome(slack: &FakeSlack, action: &str) -> String {
    let calls = slack
        .wait_for(WAIT, &format!("the outcome of {action}"), |c| {
            outcome_of(c, action).is_some()
        })
        .await;
    outcome_of(&calls, action).unwrap_or_default()
}

async fn audit_events(app: &TestApp) -> Vec<String> {
    klaxon::store::actions::audit_log(app.store().pool())
        .await
        .expect("audit")
        .into_iter()
        .map(|(event, _, action, _)| format!("{event}:{}", action.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_restart_needs_a_second_person_and_really_restarts_the_container() {
    let container = Container::start("web");
    let (_db, slack, app) = setup(&container.name).await;
    let before = container.started_at();

    let answer = app
        .command(
            ALICE,
            &format!("run restart-web service={}", container.name),
        )
        .await;
    assert!(answer.contains("Approval requested"), "{answer}");
    let calls = slack
        .wait_for(WAIT, "the approval request", |c| {
            c.iter()
                .any(|c| c.text().contains("asks to run *restart-web*"))
        })
        .await;
    let request = calls
        .iter()
        .find(|c| c.text().contains("asks to run"))
        .expect("request");
    let buttons = &request.body["blocks"][1]["elements"];
    assert_eq!(buttons[0]["action_id"], "action_approve");
    let id = buttons[0]["value"]
        .as_str()
        .expect("request id")
        .to_string();

    // The requester cannot approve their own request.
    assert_eq!(
        app.interact(&press(ALICE, "action_approve", &id))
            .await
            .status(),
        200
    );
    let calls = slack
        .wait_for(WAIT, "the refusal", |c| {
            c.iter()
                .any(|c| c.text().contains("cannot approve your own"))
        })
        .await;
    let refusal = calls
        .iter()
        .find(|c| c.text().contains("cannot approve your own"))
        .expect("refusal");
    assert_eq!(refusal.method, "chat.postEphemeral");
    assert_eq!(container.started_at(), before, "nothing ran");

    assert_eq!(
        app.interact(&press(BOB, "action_approve", &id))
            .await
            .status(),
        200
    );
    let outcome = wait_outcome(&slack, "restart-web").await;
    assert!(outcome.contains("✅ *restart-web* succeeded"), "{outcome}");
    assert!(outcome.contains("restarted; now running"), "{outcome}");
    assert!(outcome.contains("approved by <@U0BOB>"), "{outcome}");
    assert_ne!(
        container.started_at(),
        before,
        "the container really restarted"
    );
    let calls = slack.delivered();
    assert!(
        calls.iter().any(|c| c.method == "chat.update"
            && c.text().contains("approved by <@U0BOB>")
            && c.text().contains("asked to run")),
        "the approval request shows who approved it"
    );

    let events = audit_events(&app).await;
    assert_eq!(
        events,
        vec![
            "requested:restart-web",
            "refused:restart-web",
            "approved:restart-web",
            "started:restart-web",
            "succeeded:restart-web"
        ]
    );
    // The audit log is append-only.
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(app.store().pool())
            .await
            .is_err()
    );
    assert!(
        sqlx::query("UPDATE audit_log SET detail = 'x'")
            .execute(app.store().pool())
            .await
            .is_err()
    );

    app.command(ALICE, "resolve restarted the web container")
        .await;
    let calls = slack
        .wait_for(WAIT, "the summary", |c| {
            c.iter().any(|c| c.text().contains("RESOLVED: INC-1"))
        })
        .await;
    let summary = calls
        .iter()
        .find(|c| c.text().contains("RESOLVED: INC-1"))
        .expect("summary")
        .text();
    assert!(summary.contains("approved restart-web"), "{summary}");
    assert!(summary.contains("succeeded restart-web"), "{summary}");
    app.stop().await;
}

#[tokio::test]
async fn inspect_and_logs_report_the_containers_state_and_output() {
    let container = Container::start("state");
    let (_db, slack, app) = setup(&container.name).await;
    // inspect is allowed through the S0ONCALL group, of which Bob is a member.
    let answer = app.command(BOB, "run inspect-web").await;
    assert!(answer.contains("Running `inspect-web`"), "{answer}");
    let outcome = wait_outcome(&slack, "inspect-web").await;
    assert!(outcome.contains("✅ *inspect-web* succeeded"), "{outcome}");
    assert!(outcome.contains("running"), "{outcome}");

    app.command(ALICE, "run logs-web").await;
    let outcome = wait_outcome(&slack, "logs-web").await;
    assert!(
        outcome.contains("started at"),
        "the container's output: {outcome}"
    );

    let refused = app.command(ALICE, "run inspect-web").await;
    assert!(
        refused.contains("You may not run `inspect-web`"),
        "Alice is not in S0ONCALL: {refused}"
    );
    app.stop().await;
}

#[tokio::test]
async fn http_checks_report_up_down_and_slow_targets() {
    let (_db, slack, app) = setup("unused").await;
    app.command(ALICE, "run check-up").await;
    let up = wait_outcome(&slack, "check-up").await;
    assert!(
        up.contains("✅ *check-up* succeeded") && up.contains("HTTP 200"),
        "{up}"
    );
    app.command(ALICE, "run check-down").await;
    let down = wait_outcome(&slack, "check-down").await;
    assert!(
        down.contains("❌ *check-down* failed") && down.contains("HTTP 503"),
        "{down}"
    );
    assert!(down.contains("db unreachable"), "the body is shown: {down}");
    app.command(ALICE, "run check-slow").await;
    let slow = wait_outcome(&slack, "check-slow").await;
    assert!(
        slow.contains("❌ *check-slow* failed") && slow.contains("timed out after 1s"),
        "{slow}"
    );
    app.stop().await;
}

#[tokio::test]
async fn commands_run_without_a_shell_with_a_timeout_and_capped_output() {
    let (_db, slack, app) = setup("unused").await;
    app.command(ALICE, "run echo-word word=pager").await;
    let echo = wait_outcome(&slack, "echo-word").await;
    assert!(echo.contains("word: pager"), "{echo}");

    app.command(ALICE, "run flood").await;
    let flood = wait_outcome(&slack, "flood").await;
    assert!(flood.contains("✅ *flood* succeeded"), "{flood}");
    assert!(flood.contains("200000"), "the last lines are kept: {flood}");
    assert!(flood.contains("earlier"), "and the cut is said: {flood}");
    assert!(
        flood.chars().count() < 4_000,
        "a huge output never makes a huge message"
    );

    app.command(ALICE, "run hang").await;
    let hang = wait_outcome(&slack, "hang").await;
    assert!(
        hang.contains("❌ *hang* failed") && hang.contains("timed out after 1s; killed"),
        "{hang}"
    );
    app.stop().await;
}

#[tokio::test]
async fn hostile_parameters_unknown_actions_strangers_and_late_approvals_are_refused_and_audited() {
    let container = Container::start("hostile");
    let (_db, slack, app) = setup(&container.name).await;
    let before = container.started_at();
    for (user, text, expected) in [
        (
            ALICE,
            "run restart-web service=web;rm".to_string(),
            "is not allowed",
        ),
        (
            ALICE,
            "run restart-web service=$(id)".into(),
            "is not allowed",
        ),
        (
            ALICE,
            "run restart-web service=../../etc/passwd".into(),
            "is not allowed",
        ),
        (ALICE, "run echo-word word=`id`".into(), "is not allowed"),
        (ALICE, "run echo-word word=--help".into(), "is not allowed"),
        (
            ALICE,
            "run echo-word host=x".into(),
            "takes no parameter `host`",
        ),
        (ALICE, "run format-disks".into(), "not an approved action"),
        (
            CAROL,
            format!("run restart-web service={}", container.name),
            "You may not run `restart-web`",
        ),
    ] {
        let answer = app.command(user, &text).await;
        assert!(answer.contains(expected), "{text:?} → {answer}");
        assert!(answer.starts_with('⛔'), "{answer}");
    }
    let spaced = app
        .command(ALICE, "run restart-web service=web; rm -rf /")
        .await;
    assert!(spaced.contains("is not `key=value`"), "{spaced}");
    let dry = app
        .command(
            ALICE,
            &format!("run restart-web service={} --dry-run", container.name),
        )
        .await;
    assert!(
        dry.contains(&format!(
            "docker restart {} (stop timeout 1s)",
            container.name
        )),
        "{dry}"
    );
    assert!(dry.contains("Dry run, nothing ran"), "{dry}");

    // An approval that comes after the request expired.
    app.command(
        ALICE,
        &format!("run restart-web service={}", container.name),
    )
    .await;
    let calls = slack
        .wait_for(WAIT, "the approval request", |c| {
            c.iter()
                .any(|c| c.text().contains("asks to run *restart-web*"))
        })
        .await;
    let id = calls
        .iter()
        .find(|c| c.text().contains("asks to run"))
        .and_then(|c| c.body["blocks"][1]["elements"][0]["value"].as_str())
        .expect("request id")
        .to_string();
    // The request expires after 2 s of Klaxon's clock.
    app.advance(Duration::from_secs(3)).await;
    slack
        .wait_for(WAIT, "the expiry", |c| {
            c.iter().any(|c| c.text().contains("Expired at"))
        })
        .await;
    app.interact(&press(BOB, "action_approve", &id)).await;
    slack
        .wait_for(WAIT, "the late approval refused", |c| {
            c.iter().any(|c| c.text().contains("already expired"))
        })
        .await;

    app.settle().await;
    assert_eq!(container.started_at(), before, "nothing ran");
    assert!(
        !slack
            .delivered()
            .iter()
            .any(|c| c.text().contains("Running *")),
        "no run started"
    );
    let events = audit_events(&app).await;
    assert_eq!(
        events.iter().filter(|e| e.starts_with("refused:")).count(),
        10,
        "{events:#?}"
    );
    assert!(events.contains(&"dry_run:restart-web".to_string()));
    assert!(events.contains(&"expired:restart-web".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn actions_lists_the_catalog_and_who_may_run_each() {
    let (_db, _slack, app) = setup("unused").await;
    let list = app.command(ALICE, "actions").await;
    assert!(
        list.contains("*restart-web* — Restart the web container"),
        "{list}"
    );
    assert!(
        list.contains("needs approval by <@U0ALICE>, <@U0BOB>"),
        "{list}"
    );
    assert!(
        list.contains("*inspect-web*") && list.contains("<!subteam^S0ONCALL>"),
        "{list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn runs_on_the_same_target_wait_for_each_other() {
    let (_db, slack, app) = setup("unused").await;
    app.command(ALICE, "run nap").await;
    app.command(ALICE, "run nap").await;
    slack
        .wait_for(WAIT, "both naps", |c| {
            c.iter()
                .filter(|c| c.method == "chat.update" && c.text().contains("*nap* succeeded"))
                .count()
                >= 2
        })
        .await;
    let events: Vec<String> = audit_events(&app)
        .await
        .into_iter()
        .filter(|e| e.ends_with(":nap") && (e.starts_with("started") || e.starts_with("succeeded")))
        .collect();
    assert_eq!(
        events,
        vec![
            "started:nap",
            "succeeded:nap",
            "started:nap",
            "succeeded:nap"
        ],
        "the concurrency limit (1 per target) kept the second run waiting"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_approval_pressed_after_the_incident_resolved_runs_nothing_and_the_request_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("touched");
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: format!(
                r#"
[[actions]]
name = "touch-marker"
kind = "command"
argv = ["/usr/bin/touch", "{}"]
allowed = ["user:U0ALICE", "user:U0BOB"]
"#,
                marker.display()
            ),
            ..Options::default()
        },
    )
    .await;
    app.command(ALICE, "open P1 Web is throwing 502s").await;
    let answer = app.command(ALICE, "run touch-marker").await;
    assert!(answer.contains("Approval requested"), "{answer}");
    let calls = slack
        .wait_for(WAIT, "the approval request", |c| {
            c.iter()
                .any(|c| c.text().contains("asks to run *touch-marker*"))
        })
        .await;
    let id = calls
        .iter()
        .find(|c| c.text().contains("asks to run"))
        .and_then(|c| c.body["blocks"][1]["elements"][0]["value"].as_str())
        .expect("request id")
        .to_string();

    let resolved = app
        .command(ALICE, "resolve INC-1 Rolled back the load balancer change")
        .await;
    assert!(resolved.contains("resolved"), "{resolved}");
    let closed = slack
        .wait_for_text("resolved before it ran; nothing ran")
        .await;
    assert!(closed.contains("touch-marker"), "{closed}");

    app.interact(&press(BOB, "action_approve", &id)).await;
    let refusal = slack.wait_for_text("INC-1 is resolved").await;
    assert!(refusal.contains("nothing ran"), "{refusal}");
    app.settle().await;
    assert!(!marker.exists(), "the change did not run");
    let events = audit_events(&app).await;
    assert!(
        events.contains(&"closed:touch-marker".to_string()),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("approved")),
        "{events:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_run_two_actions_on_one_target_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `flock -n` fails at once if another run holds the lock: an overlap is a
    // failed run.
    let lock = dir.path().join("target.lock");
    let catalog = format!(
        r#"
[[actions]]
name = "locked-nap"
kind = "command"
argv = ["/usr/bin/flock", "-n", "{}", "/bin/sleep", "1"]
allow_interpreter = "the overlap probe: flock -n fails when two runs overlap"
read_only = true
allowed = ["user:U0ALICE"]
"#,
        lock.display()
    );
    let db = TestDb::postgres().await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let options = || Options {
        extra_toml: catalog.clone(),
        ..Options::default()
    };
    let a = TestApp::start_with(&db, &slack, options()).await;
    let b = TestApp::start_with(&db, &slack, options()).await;
    a.command(ALICE, "open P2 Web is slow").await;
    const RUNS: usize = 3;
    let mut asked = Vec::new();
    for _ in 0..RUNS {
        asked.push(a.command(ALICE, "run locked-nap"));
        asked.push(b.command(ALICE, "run locked-nap"));
    }
    for answer in futures_util::future::join_all(asked).await {
        assert!(answer.contains("locked-nap"), "{answer}");
    }
    let outcomes = |c: &[fake_slack::Call]| -> Vec<String> {
        let mut last: std::collections::BTreeMap<String, String> = Default::default();
        for c in c.iter().filter(|c| c.method == "chat.update") {
            if let Some(ts) = c.str("ts") {
                last.insert(ts.to_string(), c.text());
            }
        }
        last.into_values()
            .filter(|t| t.contains("*locked-nap* succeeded") || t.contains("*locked-nap* failed"))
            .collect()
    };
    let calls = slack
        .wait_for(Duration::from_secs(60), "every run's outcome", |c| {
            outcomes(c).len() == 2 * RUNS
        })
        .await;
    let failed: Vec<String> = outcomes(&calls)
        .into_iter()
        .filter(|t| t.contains("failed"))
        .collect();
    assert!(failed.is_empty(), "runs overlapped: {failed:#?}");
    a.stop().await;
    b.stop().await;
}
