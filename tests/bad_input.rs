//! Bad input gets a clear answer and changes nothing.

use crate::support::*;

async fn nothing_stored(app: &TestApp, slack: &FakeSlack) {
    app.settle().await;
    assert_eq!(app.count("incidents").await, 0, "no incident stored");
    assert_eq!(app.count("timeline_events").await, 0, "no timeline stored");
    assert_eq!(app.count("outbox").await, 0, "no message queued");
    assert!(slack.calls().is_empty(), "nothing sent to Slack");
}

#[tokio::test]
async fn unsigned_missigned_stale_oversized_and_malformed_requests_are_refused_and_store_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    let body = command_form(ALICE, INCIDENT_CHANNEL, "open P1 Checkout down");

    let unsigned = app
        .client
        .post(format!("{}/slack/commands", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(unsigned.status(), 401);

    let wrong = app
        .post_signed_with("/slack/commands", &body, "not-the-secret", now_secs())
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("body").contains("signature"));

    let stale = app
        .post_signed_with("/slack/commands", &body, SECRET, now_secs() - 6 * 60)
        .await;
    assert_eq!(stale.status(), 401);
    assert!(stale.text().await.expect("body").contains("5 minutes"));

    let future = app
        .post_signed_with("/slack/commands", &body, SECRET, now_secs() + 6 * 60)
        .await;
    assert_eq!(future.status(), 401);

    // Signed correctly, then altered in transit.
    let ts = now_secs().to_string();
    let sig = klaxon::http::signature::sign(SECRET, &ts, body.as_bytes());
    let tampered = app
        .client
        .post(format!("{}/slack/commands", app.base))
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.replace("P1", "P0"))
        .send()
        .await
        .expect("request");
    assert_eq!(tampered.status(), 401);

    let huge = format!("{body}&pad={}", "x".repeat(300 * 1024));
    let oversized = app.post_signed("/slack/commands", &huge).await;
    assert_eq!(oversized.status(), 413);

    let malformed = app
        .post_signed("/slack/commands", "text=open+P1+x&user_id=U0ALICE")
        .await;
    assert_eq!(malformed.status(), 400);
    let reason = malformed.text().await.expect("body");
    assert!(
        reason.contains("channel_id") || reason.contains("command"),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1, "one-line reason: {reason}");

    let bad_user = app
        .post_signed(
            "/slack/commands",
            &command_form("<!channel>", INCIDENT_CHANNEL, "open P1 x"),
        )
        .await;
    assert_eq!(bad_user.status(), 400);

    let bad_payload = app
        .post_signed("/slack/interactions", "payload=%7Bnot-json")
        .await;
    assert_eq!(bad_payload.status(), 400);

    let bad_event = app.post_signed("/slack/events", "{not json").await;
    assert_eq!(bad_event.status(), 400);

    nothing_stored(&app, &slack).await;
    app.stop().await;
}

#[tokio::test]
async fn mistakes_in_a_slash_command_get_a_helpful_ephemeral_reply_and_change_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;

    for (text, expected) in [
        ("reboot everything", "`reboot` is not an /incident command"),
        ("open", "the title is empty"),
        ("open P7 Database down", "`P7` is not a severity"),
        ("sev INC-1 P9", "`P9` is not a severity"),
        ("assign @bob", "pick the person from the @ autocomplete"),
        ("status INC-1x hello", "not an incident ref"),
        ("resolve", "resolution summary is empty"),
        (
            "status the fix is deployed",
            "no open incident in this channel",
        ),
        ("ack INC-5", "INC-5 does not exist"),
        ("run restart-web", "no open incident in this channel"),
        ("silence INC-1 forever", "`forever` is not a duration"),
        ("escalate INC-3 now", "takes only an incident ref"),
    ] {
        let reply = app.command(ALICE, text).await;
        assert!(reply.contains(expected), "{text:?} → {reply:?}");
    }
    let help = app.command(ALICE, "help").await;
    assert!(
        help.contains("/incident open [P0|P1|P2|P3] [--component NAME …] <title>"),
        "{help}"
    );

    nothing_stored(&app, &slack).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_signing_secret_every_slack_request_is_refused() {
    let db = TestDb::sqlite();
    // A bot token without a signing secret is a configuration error …
    let with_token = |k: &str| match k {
        "KLAXON_SLACK_BOT_TOKEN" => Some("xoxb-1".to_string()),
        _ => None,
    };
    let err = klaxon::config::from_toml("", "test", &with_token).expect_err("must not load");
    assert!(err.to_string().contains("signing_secret"), "{err}");
    // … and in console mode, without a secret, nothing from /slack/* is accepted.
    app_without_secret_in_console_mode(&db).await;
}

async fn app_without_secret_in_console_mode(db: &TestDb) {
    let env = |k: &str| match k {
        "KLAXON_DATABASE_URL" => Some(db.url.clone()),
        _ => None,
    };
    let settings = klaxon::config::from_toml("listen = \"127.0.0.1:0\"", "test", &env)
        .expect("console mode needs no secret");
    let app = klaxon::server::build(settings, None).await.expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(klaxon::server::run(app.clone(), listener, async {
        let _ = stopped.await;
    }));
    let body = command_form(ALICE, INCIDENT_CHANNEL, "open P1 x");
    let ts = now_secs().to_string();
    let response = reqwest::Client::new()
        .post(format!("{base}/slack/commands"))
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            klaxon::http::signature::sign("", &ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("not configured")
    );
    assert_eq!(count_rows(&app.ctx.store, "incidents").await, 0);
    let _ = stop.send(());
    task.await.expect("join").expect("clean stop");
}
