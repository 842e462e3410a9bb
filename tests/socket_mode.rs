//! Socket Mode: Klaxon connects out to the fake Slack's WebSocket and takes
//! commands, presses, forms and DM events from it exactly as it takes them
//! over HTTP.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(15);

/// Options for a Klaxon on Socket Mode; without a signing secret, so nothing
/// can come in over Slack's HTTP endpoints.
fn socket_options() -> Options {
    Options {
        signing_secret: None,
        app_token: Some(socket_mode::APP_TOKEN),
        ..Options::default()
    }
}

/// A Klaxon on SQLite, the fake Slack, its Socket Mode, a socket working.
struct Rig {
    db: TestDb,
    slack: FakeSlack,
    socket: SocketMode,
    app: TestApp,
}

impl Rig {
    async fn start(opts: Options) -> Rig {
        let db = TestDb::sqlite();
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        let socket = SocketMode::attach(&slack).await;
        let app = TestApp::start_with(&db, &slack, opts).await;
        socket.wait_working().await;
        Rig {
            db,
            slack,
            socket,
            app,
        }
    }
}

/// How a test reaches Klaxon: signed HTTP requests or Socket Mode envelopes.
enum Transport<'a> {
    Http(&'a TestApp),
    Socket(&'a SocketMode),
}

impl Transport<'_> {
    async fn command(&self, user: &str, text: &str) -> String {
        match self {
            Transport::Http(app) => app.command(user, text).await,
            Transport::Socket(s) => s.command_answer(user, INCIDENT_CHANNEL, text).await,
        }
    }

    /// The answer to an interaction: the HTTP body or the ack's payload
    /// (`None` when empty).
    async fn interact(&self, payload: &Value) -> Option<Value> {
        match self {
            Transport::Http(app) => {
                let r = app.interact(payload).await;
                assert_eq!(r.status(), 200);
                let body = r.text().await.expect("body");
                (!body.is_empty()).then(|| serde_json::from_str(&body).expect("JSON"))
            }
            Transport::Socket(s) => {
                let id = s.interact(payload);
                s.ack_of(&id).await.payload
            }
        }
    }
}

fn press(user: &str, action: &str, trigger: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "x"},
        "channel": {"id": INCIDENT_CHANNEL},
        "trigger_id": trigger,
        "actions": [{"action_id": action, "value": "1", "type": "button"}],
    })
}

fn submit(user: &str, resolution: &str, trigger: &str) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": user},
        "trigger_id": trigger,
        "view": {
            "callback_id": "incident_resolve_modal",
            "private_metadata": "1",
            "state": {"values": {
                "root_cause": {"root_cause": {"type": "plain_text_input", "value": "Expired certificate"}},
                "resolution": {"resolution": {"type": "plain_text_input", "value": resolution}},
                "follow_up": {"follow_up": {"type": "plain_text_input", "value": "OPS-77"}}
            }}
        }
    })
}

/// open → Acknowledge → Resolve (form) → an empty form (errors) → the form →
/// summary; the Slack calls, with message ids and durations left out.
async fn flow(transport: Transport<'_>, slack: &FakeSlack, app: &TestApp) -> Vec<String> {
    let answer = transport
        .command(ALICE, "open P1 Checkout API returning 500s")
        .await;
    assert!(answer.contains("INC-1"), "{answer}");
    slack.wait_for_count(1).await;

    assert_eq!(
        transport
            .interact(&press(BOB, "incident_ack", "1.1.a"))
            .await,
        None
    );
    slack.wait_for_text("<@U0BOB> acknowledged INC-1").await;
    // The root's update to "Acknowledged" goes out through the outbox; the
    // form's views.open below is answered at once. Both orders are right, so
    // the comparison waits for the outbox before pressing Resolve.
    app.outbox_drained().await;

    assert_eq!(
        transport
            .interact(&press(ALICE, "incident_resolve", "1.2.b"))
            .await,
        None
    );
    let modal = slack.wait_for_method("views.open").await;
    assert_eq!(modal.str("trigger_id"), Some("1.2.b"));

    let errors = transport
        .interact(&submit(ALICE, "   ", "1.3.c"))
        .await
        .expect("an empty resolution answers with errors");
    assert_eq!(errors["response_action"], "errors", "{errors}");
    assert!(errors["errors"]["resolution"].is_string(), "{errors}");

    assert_eq!(
        transport
            .interact(&submit(ALICE, "Renewed the certificate", "1.4.d"))
            .await,
        None,
        "an empty answer closes the form"
    );
    slack
        .wait_for_text("RESOLVED: INC-1 Checkout API returning 500s")
        .await;
    app.outbox_drained().await;
    app.settle().await;
    let times = regex::Regex::new(r"\d\d:\d\d(:\d\d)?").expect("regex");
    let durations = regex::Regex::new(r"\d+[smhd]( \d+[smhd])?").expect("regex");
    slack
        .calls()
        .iter()
        .map(|c| {
            let text = times.replace_all(&c.text(), "<t>").to_string();
            let text = durations.replace_all(&text, "<d>").to_string();
            format!(
                "{} channel={:?} thread={} {}",
                c.method,
                c.str("channel"),
                c.str("thread_ts").is_some(),
                text
            )
        })
        .collect()
}

#[tokio::test]
async fn the_whole_incident_flow_over_socket_mode_makes_the_same_slack_calls_as_over_http() {
    let http = {
        let db = TestDb::sqlite();
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        let app = TestApp::start(&db, &slack).await;
        let calls = flow(Transport::Http(&app), &slack, &app).await;
        app.stop().await;
        calls
    };

    let Rig {
        db: _db,
        slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;
    let over_socket = flow(Transport::Socket(&socket), &slack, &app).await;

    assert_eq!(over_socket, http, "the same Slack calls, in the same order");
    let methods: Vec<&str> = over_socket
        .iter()
        .map(|c| c.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage", // the root
            "chat.postMessage", // acknowledged
            "chat.update",
            "views.open",
            "chat.postMessage", // the summary
            "chat.update"
        ]
    );
    for ack in socket.acks() {
        assert_eq!(
            ack.sent_on, ack.acked_on,
            "an envelope is acknowledged on its own socket"
        );
    }
    // Slack's HTTP endpoints refuse everything without a signing secret.
    let refused = app
        .post_signed(
            "/slack/commands",
            &command_form(ALICE, INCIDENT_CHANNEL, "list"),
        )
        .await;
    assert_eq!(refused.status(), 401);
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics.contains("klaxon_socket_mode_envelopes_total{type=\"interactive\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("klaxon_socket_mode_connections 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("klaxon_socket_mode_ack_seconds_count 5"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refresh_and_a_dropped_socket_in_the_middle_of_the_flow_lose_nothing() {
    let Rig {
        db: _db,
        slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    let first = socket.command(ALICE, INCIDENT_CHANNEL, "open P2 Search is slow");
    socket.ack_of(&first).await;

    // Slack refreshes the socket: it warns, keeps the old socket a second,
    // then closes it. Commands keep coming the whole time.
    socket.disconnect("refresh_requested", Duration::from_secs(1));
    let mut during = Vec::new();
    for n in 0..10 {
        during.push(socket.command(ALICE, INCIDENT_CHANNEL, &format!("status INC-1 update {n}")));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &during {
        let ack = socket.ack_of(id).await;
        let text = ack.payload.expect("an answer")["text"].to_string();
        assert!(text.contains("INC-1"), "{text}");
    }
    assert_eq!(
        socket.most_open_at_once(),
        2,
        "the fresh socket was open before Slack closed the old one"
    );
    assert_eq!(
        socket.found_no_socket(),
        0,
        "no envelope found the link down"
    );
    socket
        .wait(WAIT, "the old socket gone", |s| s.sockets() == (1, 1))
        .await;

    // The network drops the socket without a word.
    socket.drop_all();
    let after_drop = socket.command(BOB, INCIDENT_CHANNEL, "open P1 Payments failing");
    let ack = socket.ack_of(&after_drop).await;
    assert!(
        ack.payload.expect("answer")["text"]
            .as_str()
            .is_some_and(|t| t.contains("INC-2")),
        "the command waiting for the new socket was taken"
    );
    for n in 0..10 {
        slack.wait_for_text(&format!("update {n}")).await;
    }
    slack.wait_for_text("Payments failing").await;
    assert_eq!(app.count("incidents").await, 2);
    let (opens, _, connected) = socket.opens();
    assert_eq!(
        (opens, connected),
        (3, 3),
        "one socket at start, one per replacement"
    );
    let metrics = metrics_of(&app.base).await;
    for reason in ["refresh_requested", "closed"] {
        assert!(
            metrics.contains(&format!(
                "klaxon_socket_mode_reconnects_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_command_press_or_event_acts_once() {
    let Rig {
        db: _db,
        slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    let open = socket.command(ALICE, INCIDENT_CHANNEL, "open P2 Search is slow");
    socket.ack_of(&open).await;
    socket.redeliver(&open);
    socket
        .wait(WAIT, "the redelivery's ack", |s| {
            s.acks().iter().filter(|a| a.envelope_id == open).count() == 2
        })
        .await;
    let acks: Vec<_> = socket
        .acks()
        .into_iter()
        .filter(|a| a.envelope_id == open)
        .collect();
    let second = acks[1].payload.clone().expect("an answer");
    assert!(
        second["text"]
            .as_str()
            .is_some_and(|t| t.contains("already handled")),
        "{second}"
    );
    assert_eq!(app.count("incidents").await, 1);

    let ack = socket.interact(&press(BOB, "incident_ack", "2.1.a"));
    socket.ack_of(&ack).await;
    socket.redeliver(&ack);

    let dm = json!({
        "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
        "event_id": "Ev0SOCKETACK", "event_time": now_secs(),
        "event": {"type": "message", "channel_type": "im", "channel": "D0ALICEDM", "user": "U0ALICE",
                  "text": "ack INC-1", "ts": "1795367100.000300"}
    });
    let event = socket.event(&dm);
    socket.ack_of(&event).await;
    for n in 2..=3 {
        // Slack spaces its retries; each is acknowledged and does nothing.
        socket.redeliver(&event);
        socket
            .wait(WAIT, "the redelivery's ack", |s| {
                s.acks().iter().filter(|a| a.envelope_id == event).count() == n
            })
            .await;
    }
    slack.wait_for_text("already acknowledged").await;
    app.settle().await;
    assert_eq!(
        app.count("timeline_events").await,
        2,
        "opened, and one acknowledgement by Bob"
    );
    let dm_answers = slack
        .delivered()
        .iter()
        .filter(|c| c.text().contains("already acknowledged"))
        .count();
    assert_eq!(dm_answers, 1, "the DM is answered once");

    // A form refused for its fields is refused again when redelivered (an
    // empty answer would close it with nothing resolved).
    let form = socket.interact(&submit(ALICE, " ", "2.2.b"));
    socket.ack_of(&form).await;
    socket.redeliver(&form);
    socket
        .wait(WAIT, "the form's second ack", |s| {
            s.acks().iter().filter(|a| a.envelope_id == form).count() == 2
        })
        .await;
    for ack in socket.acks().iter().filter(|a| a.envelope_id == form) {
        let payload = ack.payload.clone().expect("errors");
        assert_eq!(payload["response_action"], "errors", "{payload}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_refused_connections_open_is_retried_and_link_disabled_shows_on_readyz() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let socket = SocketMode::attach(&slack).await;
    socket.refuse_opens_for(Duration::from_millis(1500), "internal_error");
    // HTTP stays on beside the socket when a signing secret is set.
    let opts = Options {
        app_token: Some(socket_mode::APP_TOKEN),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;
    socket.wait_working().await;
    let (_, refused, connected) = socket.opens();
    assert!(refused >= 1, "the first opens were refused");
    assert_eq!(connected, 1);
    let metrics = metrics_of(&app.base).await;
    assert_eq!(
        metric(
            &metrics,
            "klaxon_socket_mode_reconnects_total{reason=\"open_failed\"}"
        ),
        Some(refused as f64),
        "one new attempt per refusal: {metrics}"
    );
    let readyz: Value = app.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(
        readyz["slack"]["socket_mode"], "connected (1 socket)",
        "{readyz}"
    );

    assert!(
        app.command(ALICE, "list")
            .await
            .contains("No open incidents"),
        "the HTTP endpoints still answer"
    );

    socket.disconnect("link_disabled", Duration::from_millis(100));
    wait_until(WAIT, "readyz to say link_disabled", || async {
        let r: Value = app.get("/readyz").await.json().await.expect("JSON");
        r["slack"]["socket_mode"]
            .as_str()
            .is_some_and(|s| s.starts_with("link_disabled"))
    })
    .await;
    let r = app.get("/readyz").await;
    assert_eq!(
        r.status(),
        200,
        "alerts still come in over HTTP and pages still go out: Klaxon stays ready"
    );
    socket
        .wait(WAIT, "Slack to close the disabled socket", |s| {
            s.sockets() == (0, 0)
        })
        .await;
    app.settle().await;
    assert_eq!(
        socket.opens().0,
        1,
        "no new socket right away: Socket Mode is off for the app"
    );
    app.stop().await;
}

/// Takes SQLite's write lock from outside Klaxon until dropped (Klaxon's
/// writes wait on its 10 s busy timeout meanwhile).
struct WriteLock(sqlx::AnyConnection);

impl WriteLock {
    async fn take(db: &TestDb) -> WriteLock {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(&db.url)
            .await
            .expect("a second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .expect("the write lock");
        WriteLock(c)
    }

    /// Incidents, as the lock's own connection sees them (Klaxon's waits).
    async fn incidents(&mut self) -> i64 {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) AS n FROM incidents")
            .fetch_one(&mut self.0)
            .await
            .expect("count")
            .get::<i64, _>("n")
    }

    async fn release(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.0)
            .await
            .expect("commit");
    }
}

/// Waits until Klaxon has taken `n` envelopes of `kind` off its sockets.
/// Read in the process, not through `/metrics`, whose database gauges wait
/// on the locked database: the lock must go before SQLite's 10 s busy timeout.
async fn taken(app: &TestApp, kind: &str, n: u64) {
    let labels = klaxon::telemetry::EnvelopeLabels {
        r#type: kind.into(),
    };
    wait_until(WAIT, "Klaxon to take the envelope", || async {
        app.app
            .ctx
            .metrics
            .socket_envelopes
            .get_or_create(&labels)
            .get()
            == n
    })
    .await;
}

#[tokio::test]
async fn work_in_hand_runs_to_its_end_when_its_socket_drops() {
    let Rig {
        db,
        slack: _slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    let lock = WriteLock::take(&db).await;
    let open = socket.command(ALICE, INCIDENT_CHANNEL, "open P1 Payments failing");
    taken(&app, "slash_commands", 1).await;
    socket.drop_all();
    socket
        .wait(WAIT, "Klaxon's next socket", |s| {
            s.opens().2 == 2 && s.sockets().1 == 1
        })
        .await;
    lock.release().await;
    wait_until(WAIT, "the incident the command opened", || async {
        app.count("incidents").await == 1
    })
    .await;
    // However Slack redelivers it, it is done once.
    socket.redeliver(&open);
    socket
        .wait(WAIT, "the redelivery's ack", |s| {
            s.acks().iter().any(|a| {
                a.envelope_id == open
                    && a.payload
                        .as_ref()
                        .is_some_and(|p| p.to_string().contains("already handled"))
            })
        })
        .await;
    assert_eq!(app.count("incidents").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_database_gets_a_holding_answer_within_slacks_3_s_and_the_work_still_finishes() {
    let Rig {
        db,
        slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    let mut lock = WriteLock::take(&db).await;
    let open = socket.command(ALICE, INCIDENT_CHANNEL, "open P1 Payments failing");
    // The ack comes while the database is still locked: before the work.
    let ack = socket.ack_of(&open).await;
    let text = ack.payload.expect("an answer")["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(text.contains("still being done"), "{text}");
    assert_eq!(lock.incidents().await, 0, "nothing done while locked");
    lock.release().await;
    slack.wait_for_text("Payments failing").await;
    assert_eq!(app.count("incidents").await, 1);
    assert_eq!(
        socket
            .acks()
            .iter()
            .filter(|a| a.envelope_id == open)
            .count(),
        1,
        "one acknowledgement per envelope"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_socket_cut_right_after_hello_is_replaced_with_backoff_not_in_a_loop() {
    let Rig {
        db: _db,
        slack: _slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    socket.flap_for(Duration::from_secs(4));
    socket.drop_all();
    socket
        .wait(Duration::from_secs(30), "a socket that stays", |s| {
            !s.flapping() && s.sockets().1 == 1
        })
        .await;
    let (opens, _, _) = socket.opens();
    assert!(
        opens <= 6,
        "{opens} sockets: across 4 s of cut sockets, backoff (1 s, 2 s, 4 s …) allows 3 or 4 after the first"
    );
    assert!(
        socket
            .command_answer(ALICE, INCIDENT_CHANNEL, "list")
            .await
            .contains("No open incidents")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_socket_goes_through_the_outbound_proxy_the_environment_names() {
    let dir = tempfile::tempdir().expect("dir");
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let socket = SocketMode::attach(&slack).await;
    let proxy = proxy::Proxy::start().await;
    let served = Served::start_with(
        dir.path(),
        &db.url,
        &slack,
        "",
        &[
            ("KLAXON_SLACK_APP_TOKEN", socket_mode::APP_TOKEN),
            ("ALL_PROXY", &proxy.url),
        ],
        None,
    )
    .await;
    socket.wait_working().await;
    let ws_host = socket.ws_base.trim_start_matches("ws://").to_string();
    assert!(
        proxy.tunnels().contains(&ws_host),
        "a CONNECT tunnel to {ws_host}: {:?}",
        proxy.tunnels()
    );
    let answer = socket
        .command_answer(ALICE, INCIDENT_CHANNEL, "open P3 Through the proxy")
        .await;
    assert!(answer.contains("INC-1"), "{answer}");
    drop(served);
}

#[tokio::test]
async fn a_command_that_fails_after_its_holding_answer_is_reported_to_its_author() {
    let Rig {
        db,
        slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    // Locked past SQLite's 10 s busy timeout: the open fails.
    let mut lock = WriteLock::take(&db).await;
    let open = socket.command(ALICE, INCIDENT_CHANNEL, "open P1 Payments failing");
    let ack = socket.ack_of(&open).await;
    assert!(
        ack.payload
            .expect("an answer")
            .to_string()
            .contains("still being done"),
        "a holding answer first"
    );
    let calls = slack
        .wait_for(Duration::from_secs(40), "the late notice", |c| {
            c.iter().any(|c| c.text().contains("did not go through"))
        })
        .await;
    let notice = calls
        .iter()
        .find(|c| c.text().contains("did not go through"))
        .expect("notice");
    assert_eq!(
        notice.method,
        fake_slack::RESPONSE_URL,
        "through the command's response_url"
    );
    assert_eq!(lock.incidents().await, 0, "nothing was opened");
    lock.release().await;
    app.stop().await;
}

#[tokio::test]
async fn shutting_down_lets_work_in_hand_finish_before_the_database_closes() {
    let Rig {
        db,
        slack: _slack,
        socket,
        app,
    } = Rig::start(socket_options()).await;

    let lock = WriteLock::take(&db).await;
    socket.command(ALICE, INCIDENT_CHANNEL, "open P1 Payments failing");
    taken(&app, "slash_commands", 1).await;
    let stopping = tokio::spawn(app.stop());
    // The socket closes (the fake sees it go) while the work waits on the lock.
    socket
        .wait(WAIT, "Klaxon to close its socket", |s| s.sockets().0 == 0)
        .await;
    lock.release().await;
    stopping.await.expect("Klaxon stops");
    let mut check = WriteLock::take(&db).await;
    assert_eq!(
        check.incidents().await,
        1,
        "the open finished before the database closed"
    );
    check.release().await;
}
