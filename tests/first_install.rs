//! The first real install: what goes wrong between `docker compose up` and the
//! first real incident is found at start and said plainly — a channel the bot
//! cannot post in, a refused token, missing scopes, a proxy in the way, a
//! database that is not up yet — and nothing is lost meanwhile.

use std::time::Duration;

use serde_json::Value;

use crate::support::fake_slack::{Access, RESPONSE_URL};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

fn ladder() -> String {
    r#"
[[escalation.ladders]]
name = "default"
levels = [
  { name = "on-call engineer", notify = ["user:U0ALICE"], wait = "1h" },
]
"#
    .to_string()
}

/// `/readyz`'s JSON.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let r = app.get("/readyz").await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("/readyz answers JSON"))
}

/// Waits until `/readyz`'s detail satisfies `done`.
async fn readyz_until(app: &TestApp, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let (_, v) = readyz(app).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never showed {what}: {}", readyz(app).await.1);
}

/// The value of one series in Klaxon's `/metrics`, if present.
fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn posts_in(calls: &[fake_slack::Call], channel: &str) -> Vec<fake_slack::Call> {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.str("channel") == Some(channel))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_channel_the_bot_cannot_post_in_is_named_at_start_in_the_answer_and_in_the_page_and_the_thread_appears_after_the_invitation()
 {
    // A private channel the bot was not invited to does not exist for it; a
    // public one refuses without chat:write.public.
    for (access, withheld, code) in [
        (Access::PrivateNotMember, None, "channel_not_found"),
        (
            Access::PublicNotMember,
            Some("chat:write.public"),
            "not_in_channel",
        ),
    ] {
        let db = TestDb::sqlite();
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        slack.set_access(INCIDENT_CHANNEL, access);
        if let Some(scope) = withheld {
            slack.withhold_scopes(&[scope]);
        }
        let app = TestApp::start_with(
            &db,
            &slack,
            Options {
                extra_toml: ladder(),
                ..Options::default()
            },
        )
        .await;

        // Found at start, before anyone types a command.
        let detail = readyz_until(&app, "the blocked channel", |v| {
            v["slack"]["channels_blocked"][INCIDENT_CHANNEL] == code
        })
        .await;
        if let Some(scope) = withheld {
            assert_eq!(detail["slack"]["scopes_missing"][0], scope, "{detail}");
        }
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        assert_eq!(
            metric(
                &metrics,
                &format!("klaxon_slack_channel_ok{{channel=\"{INCIDENT_CHANNEL}\"}}")
            ),
            Some(0.0),
            "{metrics}"
        );
        assert_eq!(
            metric(&metrics, "klaxon_slack_scopes_missing"),
            Some(if withheld.is_some() { 1.0 } else { 0.0 })
        );

        // The person who opens the incident is told, in the answer, how to fix it.
        let answer = app.command(ALICE, "open P1 Checkout is down").await;
        assert!(answer.contains("INC-1"), "{answer}");
        assert!(
            answer.contains("/invite @Klaxon") && answer.contains(code),
            "{code}: {answer}"
        );

        // The page does not send anyone to a thread that is not there.
        let calls = slack
            .wait_for(WAIT, "the page's direct message", |c| {
                c.iter()
                    .any(|c| c.str("channel") == Some("DU0ALICE") && c.text().contains("paged"))
            })
            .await;
        let page = calls
            .iter()
            .find(|c| c.str("channel") == Some("DU0ALICE") && c.text().contains("paged"))
            .expect("page");
        assert!(
            page.text().contains("cannot appear yet") && page.text().contains(code),
            "{}",
            page.text()
        );
        // Slack refused the root, and Klaxon told the opener by direct message.
        slack
            .wait_for(WAIT, "the note to the opener", |c| {
                c.iter().any(|c| {
                    c.str("channel") == Some("DU0ALICE")
                        && c.text().contains("could not post INC-1")
                })
            })
            .await;
        let refused: Vec<_> = posts_in(&slack.calls(), INCIDENT_CHANNEL);
        assert!(!refused.is_empty(), "the root was tried");
        assert!(
            refused.iter().all(|c| !c.ok),
            "nothing reached the channel yet"
        );

        // `/invite @Klaxon`: the waiting thread appears, with everything after it.
        app.command(ALICE, "status Rolling back deploy 2026.11.30-1")
            .await;
        slack.invite(INCIDENT_CHANNEL);
        let delivered = slack
            .wait_for(WAIT, "the thread after the invitation", |c| {
                posts_in(c, INCIDENT_CHANNEL)
                    .iter()
                    .any(|c| c.text().contains("Rolling back"))
            })
            .await;
        let thread = posts_in(&delivered, INCIDENT_CHANNEL);
        assert!(thread[0].text().contains("INC-1"), "{}", thread[0].text());
        assert!(
            thread
                .iter()
                .skip(1)
                .all(|c| c.str("thread_ts") == thread[0].ts.as_deref()),
            "replies are in the thread"
        );
        readyz_until(&app, "the channel unblocked", |v| {
            v["slack"]["channels_blocked"]
                .as_object()
                .is_some_and(|o| o.is_empty())
        })
        .await;
        let later = app.command(ALICE, "status Rollback done").await;
        assert!(
            !later.contains("/invite"),
            "no warning once it works: {later}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn button_feedback_goes_to_the_response_url_and_falls_back_to_an_ephemeral_message() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P0 Database primary down").await;
    app.command(BOB, "ack").await;
    app.settle().await;
    let press = |user: &str, response_url: &str| {
        serde_json::json!({
            "type": "block_actions",
            "user": {"id": user},
            "channel": {"id": INCIDENT_CHANNEL},
            "trigger_id": "1.2.3",
            "response_url": response_url,
            "actions": [{"action_id": "incident_ack", "value": "1", "type": "button"}],
        })
    };
    // Slack refuses chat.postEphemeral where the bot has not joined; the
    // response_url of the press works everywhere.
    assert_eq!(
        app.interact(&press(ALICE, &slack.response_url()))
            .await
            .status(),
        200
    );
    let calls = slack
        .wait_for(WAIT, "the reply at the response_url", |c| {
            c.iter().any(|c| c.method == RESPONSE_URL)
        })
        .await;
    let reply = calls
        .iter()
        .find(|c| c.method == RESPONSE_URL)
        .expect("reply");
    assert!(
        reply
            .str("text")
            .is_some_and(|t| t.contains("already acknowledged by <@U0BOB>")),
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["response_type"], "ephemeral");
    assert_eq!(reply.body["replace_original"], false);
    assert!(!calls.iter().any(|c| c.method == "chat.postEphemeral"));

    // When the response_url fails, the feedback still arrives.
    slack.fail_next([Fault::Status(500)]);
    app.interact(&press(ALICE, &slack.response_url())).await;
    let calls = slack
        .wait_for(WAIT, "the ephemeral fallback", |c| {
            c.iter().any(|c| c.method == "chat.postEphemeral")
        })
        .await;
    let fallback = calls
        .iter()
        .find(|c| c.method == "chat.postEphemeral")
        .expect("ephemeral");
    assert_eq!(fallback.str("user"), Some(ALICE));
    assert!(fallback.text().contains("already acknowledged"));
    app.stop().await;
}

#[tokio::test]
async fn answers_that_are_not_slack_speaking_are_retried_and_counted_never_dropped() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    // A corporate proxy's 403 and 407, a wrong API URL's 404, an error code
    // Slack may add tomorrow.
    slack.fail_next([
        Fault::Status(403),
        Fault::Status(407),
        Fault::Status(404),
        Fault::SlackError("a_code_klaxon_has_never_seen"),
    ]);
    app.command(ALICE, "open P2 Search is slow").await;
    let delivered = slack
        .wait_for(WAIT, "the root after the refusals", |c| {
            c.iter().any(|c| c.text().contains("Search is slow"))
        })
        .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(slack.calls().len(), 5, "four refusals, then the post");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for error in [
        "http_403",
        "http_407",
        "http_404",
        "a_code_klaxon_has_never_seen",
    ] {
        assert_eq!(
            metric(
                &metrics,
                &format!(
                    "klaxon_slack_api_errors_total{{method=\"chat.postMessage\",error=\"{error}\"}}"
                )
            ),
            Some(1.0),
            "{error}"
        );
    }
    assert_eq!(
        metric(&metrics, "klaxon_slack_permanent_failures_total"),
        Some(0.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bot_token_slack_refuses_at_start_shows_in_the_log_readyz_and_a_metric() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let log = dir.path().join("klaxon.log");
    let served = Served::start_with(
        dir.path(),
        &db.url,
        &slack,
        "",
        &[("KLAXON_SLACK_BOT_TOKEN", "xoxb-a-token-from-another-app")],
        Some(&log),
    )
    .await;
    let mut detail = Value::Null;
    for _ in 0..500 {
        let (status, v) = served.readyz().await;
        assert_eq!(status, 200, "messages wait in the outbox: still ready");
        if v["slack"]["auth"] != "not checked yet" {
            detail = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(detail["slack"]["auth"], "refused: invalid_auth", "{detail}");
    let metrics = metrics_of(&served.base).await;
    assert_eq!(metric(&metrics, "klaxon_slack_auth_ok"), Some(0.0));
    let logged = std::fs::read_to_string(&log).expect("log");
    let line = logged
        .lines()
        .find(|l| l.contains("Slack refuses the bot token"))
        .unwrap_or_else(|| panic!("no log line about the token:\n{logged}"));
    assert!(line.contains("invalid_auth") && line.contains("KLAXON_SLACK_BOT_TOKEN"));
    assert!(
        !logged.contains("xoxb-a-token-from-another-app"),
        "never log a secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_at_start_is_waited_for_and_klaxon_becomes_ready_without_a_restart()
{
    let pg = OwnPostgres::init_stopped();
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let mut served = Served::spawn(
        dir.path(),
        &pg.url(),
        &slack,
        "alert_token = \"alert-token-first-install\"\n",
        &[],
        None,
    );
    served.wait_alive().await;
    let (status, detail) = served.readyz().await;
    assert_eq!(status, 503, "not ready while the database is down");
    assert_eq!(detail["status"], "not ready", "{detail}");
    let client = reqwest::Client::new();
    let webhook = client
        .post(format!("{}/alerts/alertmanager", served.base))
        .bearer_auth("alert-token-first-install")
        .body(
            serde_json::json!({
                "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "status": "firing",
                "receiver": "klaxon", "groupLabels": {"alertname": "DiskFull"},
                "commonLabels": {"alertname": "DiskFull", "severity": "warning"},
                "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
                "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "severity": "warning"},
                            "annotations": {"summary": "Disk 91% full"},
                            "startsAt": "2026-11-30T03:04:09Z", "endsAt": "0001-01-01T00:00:00Z",
                            "fingerprint": "4f2a9c1d7e3b5a60"}]
            })
            .to_string(),
        )
        .send()
        .await
        .expect("webhook");
    assert_eq!(webhook.status(), 503, "Alertmanager is told to retry");

    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "Klaxon waits for the database instead of exiting"
    );
    assert_eq!(served.readyz().await.0, 503);
    pg.start();
    // Reconnect attempts back off to at most 30 s.
    served.wait_ready(Duration::from_secs(45)).await;
    let answer = served.command(ALICE, "open P2 Late database").await;
    assert!(answer.contains("INC-1"), "{answer}");
    slack.wait_for_count(1).await;
}

/// A signed Events API body as Slack posts it.
async fn post_event(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_signed("/slack/events", &body.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_fails_slack_events_and_presses_get_503_so_slack_retries_and_url_verification_still_passes()
 {
    let pg = OwnPostgres::start_new();
    let db = TestDb::at(&pg.url());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    pg.stop();
    let ack = serde_json::json!({
        "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
        "event_id": "Ev0DBDOWN", "event_time": now_secs(),
        "event": {"type": "message", "channel_type": "im", "channel": "DU0ALICE", "user": "U0ALICE",
                  "text": "ack", "ts": "1795367100.000300"}
    });
    assert_eq!(post_event(&app, &ack).await.status(), 503);
    let press = serde_json::json!({
        "type": "block_actions", "user": {"id": ALICE}, "channel": {"id": INCIDENT_CHANNEL},
        "trigger_id": "1.2.3",
        "actions": [{"action_id": "incident_ack", "value": "1", "type": "button"}],
    });
    assert_eq!(app.interact(&press).await.status(), 503);
    // Saving the Events URL works whatever the database does.
    let challenge = serde_json::json!({
        "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification"
    });
    let r = post_event(&app, &challenge).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["challenge"], challenge["challenge"]);
    pg.start();
    app.stop().await;
}

#[tokio::test]
async fn a_proxy_in_the_way_of_auth_test_is_reported_as_unreachable_not_as_a_refused_token() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_checks(Fault::Status(407));
    let app = TestApp::start(&db, &slack).await;
    let detail = readyz_until(&app, "the check's verdict", |v| {
        v["slack"]["auth"] != "not checked yet"
    })
    .await;
    assert_eq!(
        detail["slack"]["auth"], "no answer from Slack: http_407",
        "{detail}"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(&metrics, "klaxon_slack_auth_ok"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "klaxon_slack_reachable"), Some(0.0));
    // Once Slack answers, it is reachable again.
    slack.heal();
    klaxon::health::check_slack(&app.app.ctx, &app.app.slack).await;
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(metric(&metrics, "klaxon_slack_reachable"), Some(1.0));
    app.stop().await;
}

#[tokio::test]
async fn a_page_that_cannot_reach_someone_for_a_missing_scope_says_so_in_the_thread() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.withhold_scopes(&["im:write"]);
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: ladder(),
            ..Options::default()
        },
    )
    .await;
    app.command(BOB, "open P1 Checkout is down").await;
    let note = slack
        .wait_for_text("The page did not reach <@U0ALICE>")
        .await;
    assert!(note.contains("im:write"), "{note}");
    app.stop().await;
}

#[tokio::test]
async fn the_bot_invited_at_last_posts_what_waited_at_once_not_when_its_backoff_runs_out() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.set_access(INCIDENT_CHANNEL, Access::PrivateNotMember);
    let app = TestApp::start(&db, &slack).await;
    readyz_until(&app, "the blocked channel", |v| {
        v["slack"]["channels_blocked"][INCIDENT_CHANNEL] == "channel_not_found"
    })
    .await;
    app.command(ALICE, "open P2 Search is slow").await;
    wait_until(WAIT, "the root to be refused", || async {
        !posts_in(&slack.calls(), INCIDENT_CHANNEL).is_empty()
    })
    .await;
    // Long refused: its next attempt is an hour away.
    let later = app.clock().now().plus(Duration::from_secs(3_600));
    sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE state = 'pending'")
        .bind(later.0)
        .execute(app.store().pool())
        .await
        .expect("backoff");
    slack.invite(INCIDENT_CHANNEL);
    // The next check sees the invitation.
    klaxon::health::check_slack(&app.app.ctx, &app.app.slack).await;
    slack
        .wait_for(WAIT, "the thread", |c| {
            posts_in(c, INCIDENT_CHANNEL)
                .iter()
                .any(|c| c.text().contains("Search is slow"))
        })
        .await;
    app.stop().await;
}
