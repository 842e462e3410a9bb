//! Slack misbehaving: messages are delayed, never lost, never doubled, never reordered.

use std::time::Duration;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

fn posts_with(calls: &[fake_slack::Call], needle: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.text().contains(needle))
        .count()
}

#[tokio::test]
async fn rate_limits_and_server_errors_delay_messages_but_each_arrives_exactly_once_in_order() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_next([
        Fault::RateLimited(1),
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::SlackError("internal_error"),
        Fault::Status(500),
    ]);
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P1 Checkout API returning 500s")
        .await;
    for n in 1..=3 {
        app.command(ALICE, &format!("status update number {n}"))
            .await;
    }
    let delivered = slack
        .wait_for(WAIT, "root and three updates", |c| {
            posts_with(c, "update number 3") == 1
        })
        .await;
    app.outbox_drained().await;
    let delivered = if delivered.len() < 4 {
        slack.delivered()
    } else {
        delivered
    };

    let texts: Vec<String> = delivered.iter().map(|c| c.text()).collect();
    assert_eq!(
        delivered.len(),
        4,
        "exactly four messages delivered: {texts:#?}"
    );
    assert!(texts[0].contains("INCIDENT INC-1"));
    for n in 1..=3 {
        assert!(
            texts[n].contains(&format!("update number {n}")),
            "order: {texts:#?}"
        );
    }
    let root_ts = delivered[0].ts.clone().expect("ts");
    for reply in &delivered[1..] {
        assert_eq!(reply.str("thread_ts"), Some(root_ts.as_str()));
    }
    let attempts = slack.calls().len();
    assert_eq!(
        attempts,
        4 + 6,
        "every fault cost exactly one extra attempt"
    );

    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(
            r#"klaxon_slack_api_errors_total{method="chat.postMessage",error="ratelimited"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"klaxon_slack_api_errors_total{method="chat.postMessage",error="http_500"} 2"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn messages_slack_will_never_accept_are_marked_failed_logged_and_counted() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    // Slack's answer for blocks it will never render, whenever it is sent.
    slack.fail_always(Fault::SlackError("invalid_blocks"));
    app.command(ALICE, "open P2 Queue backlog").await;
    app.command(ALICE, "status draining").await;
    app.outbox_drained().await;

    let calls = slack.calls();
    assert_eq!(
        calls.len(),
        1,
        "the reply is not attempted without a thread"
    );
    assert!(!calls[0].ok);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(
            r#"klaxon_slack_api_errors_total{method="chat.postMessage",error="invalid_blocks"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("klaxon_slack_permanent_failures_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("klaxon_outbox_pending 0"), "{metrics}");

    use sqlx::Row;
    let rows = sqlx::query("SELECT kind, state, last_error FROM outbox ORDER BY id")
        .fetch_all(app.store().pool())
        .await
        .expect("rows");
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get("kind"), r.get("state"), r.get("last_error")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("root".into(), "failed".into(), "invalid_blocks".into()),
            (
                "reply".into(),
                "failed".into(),
                "thread_root_never_posted".into()
            ),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_bot_token_keeps_messages_queued_until_slack_accepts_it() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_always(Fault::SlackError("invalid_auth"));
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P1 Login broken").await;
    slack
        .wait_for(WAIT, "a few refused attempts", |_| slack.calls().len() >= 2)
        .await;
    assert!(slack.delivered().is_empty());
    let pending = klaxon::store::outbox::pending_count(app.store().pool())
        .await
        .expect("count");
    assert_eq!(pending, 1, "the message waits, it is not dropped");

    slack.heal();
    let delivered = slack.wait_for_count(1).await;
    assert!(delivered[0].text().contains("Login broken"));
    app.stop().await;
}

#[tokio::test]
async fn twenty_incidents_opened_at_once_each_get_their_messages_in_order() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = std::sync::Arc::new(TestApp::start(&db, &slack).await);
    let mut tasks = Vec::new();
    for n in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let answer = app
                .command(ALICE, &format!("open P2 Service {n} degraded"))
                .await;
            let r = answer
                .split('*')
                .nth(1)
                .expect("the answer names the incident")
                .to_string();
            app.command(ALICE, &format!("status {r} first look at service {n}"))
                .await;
            app.command(ALICE, &format!("status {r} second look at service {n}"))
                .await;
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let delivered = slack.wait_for_count(60).await;
    assert_eq!(app.count("incidents").await, 20);
    for n in 0..20 {
        let mine: Vec<&fake_slack::Call> = delivered
            .iter()
            .filter(|c| {
                let t = c.text();
                t.contains(&format!("Service {n} degraded"))
                    || t.contains(&format!("at service {n}\n"))
            })
            .collect();
        assert_eq!(
            mine.len(),
            3,
            "service {n}: {:#?}",
            mine.iter().map(|c| c.text()).collect::<Vec<_>>()
        );
        assert!(mine[0].text().contains("INCIDENT"));
        assert!(mine[1].text().contains("first look"));
        assert!(mine[2].text().contains("second look"));
        let root_ts = mine[0].ts.as_deref();
        assert_eq!(mine[1].str("thread_ts"), root_ts);
        assert_eq!(mine[2].str("thread_ts"), root_ts);
    }
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn root_refreshes_queued_while_slack_is_down_go_out_as_one_update() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    slack.fail_always(Fault::Status(503));
    app.command(ALICE, "open P2 Search is slow").await;
    // Three changes, each re-rendering the root, while Slack is down.
    app.command(ALICE, "sev P1").await;
    app.command(ALICE, "assign <@U0BOB>").await;
    app.command(ALICE, "ack").await;
    slack.heal();
    app.outbox_drained().await;
    let delivered = slack.delivered();
    let updates: Vec<String> = delivered
        .iter()
        .filter(|c| c.method == "chat.update")
        .map(|c| c.text())
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "only the newest root goes out: {updates:#?}"
    );
    assert!(
        updates[0].contains("[P1]")
            && updates[0].contains("*Owner:* <@U0BOB>")
            && updates[0].contains("Acknowledged"),
        "the newest root has every change: {}",
        updates[0]
    );
    let replies = delivered
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.str("thread_ts").is_some())
        .count();
    assert_eq!(replies, 3, "each change still has its reply in the thread");
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics.contains("klaxon_slack_updates_coalesced_total 2"),
        "{metrics}"
    );
    app.stop().await;
}
