//! Big incidents: a channel of their own, roles, follow-ups (and their
//! tracker), the postmortem file and its download. Slack is the fake, which
//! names, invites, archives and uploads as strictly as Slack; Klaxon's clock
//! moves forward where a test waits for hours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";
const CAROL: &str = "U0CAROL";
const HISTORY_TOKEN: &str = "3f9c1d7a5e2b8c4d6a0f1e3b5c7d9a2e";

fn options(extra: &str) -> Options {
    Options {
        extra_toml: format!(
            "history_token = \"{HISTORY_TOKEN}\"\n{}\n[incidents]\nchannel_for = [\"P0\"]\n{extra}",
            three_level_ladder("10m")
        ),
        ..Options::default()
    }
}

/// Waits until the fake made a channel, and returns it.
async fn room_of(slack: &FakeSlack) -> fake_slack::CreatedChannel {
    slack
        .wait_for(WAIT, "the incident's channel", |_| {
            !slack.created_channels().is_empty()
        })
        .await;
    slack.created_channels().remove(0)
}

fn texts(slack: &FakeSlack, channel: &str) -> Vec<String> {
    slack
        .messages_in(channel)
        .iter()
        .map(|m| {
            let mut t = klaxon::blocks::visible_text(m);
            if let Some(c) = m.get("initial_comment").and_then(Value::as_str) {
                t.push_str(c);
            }
            t
        })
        .collect()
}

fn press(user: &str, channel: &str, action: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "x"},
        "channel": {"id": channel},
        "trigger_id": format!("trigger-{action}"),
        "actions": [{"action_id": action, "value": "1", "type": "button"}],
    })
}

async fn download(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = app
        .client
        .get(format!("{}/incidents/INC-1/postmortem.md", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn a_p0_is_worked_in_a_channel_of_its_own_from_open_to_archive(kind: Backend) {
    let db = TestDb::of(kind).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;

    // Open: a channel named after it, with a topic, the opener and the paged in it.
    app.command(BOB, "open P0 Checkout API down: 5xx > 50%")
        .await;
    let room = room_of(&slack).await;
    assert_eq!(room.name, "inc-1-checkout-api-down-5xx-50");
    app.settle().await;
    app.outbox_drained().await;
    let room = slack.channel(&room.id).expect("the room");
    assert_eq!(room.topic, "INC-1 · Checkout API down: 5xx > 50%");
    assert!(room.members.contains(&BOB.to_string()), "{room:?}");
    assert!(room.members.contains(&ALICE.to_string()), "paged: {room:?}");
    // The root's copy opens the room (a page may come first: pages never wait).
    let in_room = texts(&slack, &room.id);
    let copy = in_room
        .iter()
        .position(|t| t.contains("INCIDENT INC-1: [P0] Checkout API down"))
        .expect("the root's copy in the room");
    let welcome = in_room
        .iter()
        .position(|t| t.contains("This is INC-1's own channel"))
        .expect("the room's welcome");
    assert!(copy < welcome, "{in_room:?}");
    let in_thread = texts(&slack, INCIDENT_CHANNEL);
    assert!(
        in_thread
            .iter()
            .any(|t| t.contains(&format!("INC-1 has its own channel: <#{}>", room.id))),
        "{in_thread:?}"
    );
    let root = slack
        .delivered()
        .into_iter()
        .rfind(|c| c.method == "chat.update" && c.str("channel") == Some(INCIDENT_CHANNEL))
        .expect("the root refreshed");
    assert!(
        root.text().contains(&format!("*Channel:* <#{}>", room.id)),
        "{}",
        root.text()
    );

    // A role, given in the room without naming the incident.
    let answer = app
        .command_in(ALICE, &room.id, "role commander <@U0CAROL>")
        .await;
    assert!(answer.contains("is now the commander of INC-1"), "{answer}");
    app.settle().await;
    app.outbox_drained().await;
    let duties = slack
        .delivered()
        .into_iter()
        .find(|c| c.str("channel") == Some("DU0CAROL"))
        .expect("the commander's DM")
        .text();
    assert!(
        duties.contains("You are now the *commander* of INC-1"),
        "{duties}"
    );
    assert!(duties.contains("you decide what is tried"), "{duties}");
    let room_now = slack.channel(&room.id).expect("room");
    assert!(room_now.members.contains(&CAROL.to_string()));

    // The next level is paged, and invited as it is.
    app.advance(10 * MINUTE).await;
    app.outbox_drained().await;
    assert!(
        slack
            .channel(&room.id)
            .expect("room")
            .members
            .contains(&"U0LEAD".to_string())
    );
    assert!(
        texts(&slack, &room.id)
            .iter()
            .any(|t| t.contains("Paging team lead")),
        "pages are told in the room"
    );

    // Status: in the room and, as a headline, in the thread.
    app.command_in(ALICE, &room.id, "status Failing over to the replica")
        .await;
    app.command_in(ALICE, &room.id, "ack").await;
    app.command_in(ALICE, &room.id, "resolve Failed over to the replica")
        .await;
    app.command_in(
        CAROL,
        &room.id,
        "followup <@U0ALICE> Alert on replication lag",
    )
    .await;
    app.settle().await;
    app.outbox_drained().await;
    let in_room = texts(&slack, &room.id);
    let in_thread = texts(&slack, INCIDENT_CHANNEL);
    for t in [&in_room, &in_thread] {
        assert!(
            t.iter().any(|m| m.contains("Failing over to the replica")),
            "{t:?}"
        );
        assert!(
            t.iter().any(|m| m.contains("RESOLVED: INC-1")),
            "the summary goes to both: {t:?}"
        );
    }
    assert!(
        !in_thread.iter().any(|m| m.contains("Paging team lead")),
        "the thread keeps the headlines only"
    );
    assert!(
        in_room.iter().any(|m| m.contains("Follow-up #1 for INC-1")),
        "{in_room:?}"
    );

    // The postmortem, from the summary's button, as a file in the room.
    assert_eq!(
        app.interact(&press(ALICE, &room.id, klaxon::blocks::ACTION_POSTMORTEM))
            .await
            .status(),
        200
    );
    slack
        .wait_for(WAIT, "the postmortem file", |_| {
            !slack.uploaded_files().is_empty()
        })
        .await;
    let file = slack.uploaded_files().remove(0);
    assert_eq!(file.filename, "INC-1-postmortem.md");
    assert_eq!(file.channel.as_deref(), Some(room.id.as_str()));
    let content = String::from_utf8(file.content).expect("UTF-8");
    for needle in [
        "# Postmortem: INC-1 [P0] Checkout API down: 5xx > 50%",
        "| Channel | #inc-1-checkout-api-down-5xx-50 |",
        "- @U0CAROL: commander",
        "status update: Failing over to the replica",
        "| 1 | Alert on replication lag | @U0ALICE |",
        "- **Resolution:** Failed over to the replica",
        "## Root cause",
    ] {
        assert!(content.contains(needle), "{needle} in:\n{content}");
    }
    // The same document over HTTP, behind the token.
    assert_eq!(download(&app, None).await.0, 401);
    assert_eq!(download(&app, Some("wrong-token-wrong-token")).await.0, 401);
    let (status, served) = download(&app, Some(HISTORY_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        normalise(&served),
        normalise(&content),
        "the download is the file"
    );

    // Archived three days later.
    app.advance(71 * 60 * MINUTE).await;
    assert!(!slack.channel(&room.id).expect("room").archived);
    app.advance(60 * MINUTE).await;
    assert!(slack.channel(&room.id).expect("room").archived);
    // After the archive, the thread hears what comes later.
    app.command(CAROL, "followup INC-1 Write the failover runbook")
        .await;
    app.settle().await;
    app.outbox_drained().await;
    assert!(
        texts(&slack, INCIDENT_CHANNEL)
            .iter()
            .any(|t| t.contains("Follow-up #2 for INC-1")),
        "a follow-up after the archive goes to the thread"
    );
    let calls = slack.calls();
    let made = |method: &str| calls.iter().filter(|c| c.method == method && c.ok).count();
    for (method, n) in [
        ("conversations.create", 1),
        ("conversations.setTopic", 1),
        ("conversations.archive", 1),
        ("files.getUploadURLExternal", 1),
        ("upload", 1),
        ("files.completeUploadExternal", 1),
    ] {
        assert_eq!(made(method), n, "{method}");
    }
    let mut by_method: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in calls.iter().filter(|c| c.ok) {
        *by_method.entry(c.method.as_str()).or_default() += 1;
    }
    eprintln!("Slack calls for one P0 from open to archive: {by_method:?}");

    // A P2 stays a thread.
    app.command(BOB, "open P2 Thumbnails slow").await;
    app.settle().await;
    app.outbox_drained().await;
    assert_eq!(slack.created_channels().len(), 1);
    let p2 = all_incidents(app.store()).await.remove(1);
    assert!(p2.room.is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_p0_is_worked_in_a_channel_of_its_own_from_open_to_archive_on_sqlite() {
    a_p0_is_worked_in_a_channel_of_its_own_from_open_to_archive(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_p0_is_worked_in_a_channel_of_its_own_from_open_to_archive_on_postgres() {
    a_p0_is_worked_in_a_channel_of_its_own_from_open_to_archive(Backend::Postgres).await;
}

/// The postmortem with its instants and durations made stable.
fn normalise(doc: &str) -> String {
    let instants = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? UTC").expect("regex");
    let durations = regex::Regex::new(r"\b(\d+d )?(\d+h )?(\d+m )?\d+[dhms]\b").expect("regex");
    let ports = regex::Regex::new(r"127\.0\.0\.1:\d+").expect("regex");
    let doc = instants.replace_all(doc, "<time>");
    let doc = durations.replace_all(&doc, "<duration>");
    ports.replace_all(&doc, "127.0.0.1:<port>").into_owned()
}

/// A search service whose health check fails.
async fn failing_search() -> String {
    let router = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "shard 3: 0 documents",
            )
        }),
    );
    format!("{}/health", serve_router(router).await)
}

#[tokio::test]
async fn the_postmortem_of_a_scripted_incident_matches_the_golden_file() {
    let health = failing_search().await;
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        options(&format!(
            "[[actions]]\nname = \"check-search\"\ndescription = \"Search health check\"\nkind = \"http\"\nurl = \"{health}\"\ntimeout = \"2s\"\nallowed = [\"user:U0LEAD\"]\n"
        )),
    )
    .await;
    // Alertmanager opens it (severity "page": a P1, so a thread, no channel).
    let notification = json!({
        "version": "4", "groupKey": "{}:{alertname=\"SearchEmptyResults\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "klaxon", "externalURL": "http://alertmanager:9093",
        "groupLabels": {"alertname": "SearchEmptyResults"},
        "commonLabels": {"alertname": "SearchEmptyResults", "severity": "page"},
        "commonAnnotations": {"summary": "Search returns no results for some users"},
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "SearchEmptyResults", "severity": "page", "shard": "3"},
            "annotations": {"summary": "Search returns no results for some users"},
            "startsAt": "2026-11-22T17:04:09Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=search_empty_ratio",
            "fingerprint": "5e4c3b2a1f0e9d8c",
        }],
    });
    let posted = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .json(&notification)
        .send()
        .await
        .expect("notification");
    assert_eq!(posted.status(), 200);
    app.settle().await;
    app.advance(10 * MINUTE).await;
    app.command("U0LEAD", "ack INC-1").await;
    app.command(BOB, "role scribe INC-1 <@U0BOB>").await;
    app.command("U0LEAD", "run check-search INC-1").await;
    slack.wait_for_text("*check-search* failed").await;
    app.command(
        "U0LEAD",
        "status INC-1 Index shard 3 is empty after the reindex | rebuilding it",
    )
    .await;
    app.advance(20 * MINUTE).await;
    app.command(
        "U0LEAD",
        "followup INC-1 <@U0LEAD> Alert when a shard's document count drops",
    )
    .await;
    app.command(BOB, "followup INC-1 Document the reindex runbook")
        .await;
    app.command("U0LEAD", "resolve INC-1 Rebuilt shard 3 from the snapshot")
        .await;
    app.command(BOB, "postmortem INC-1").await;
    app.settle().await;
    slack
        .wait_for(WAIT, "the postmortem file", |_| {
            !slack.uploaded_files().is_empty()
        })
        .await;
    let file = slack.uploaded_files().remove(0);
    assert_eq!(
        file.channel.as_deref(),
        Some(INCIDENT_CHANNEL),
        "a P1 has no room: the file goes to the thread"
    );
    assert!(file.thread_ts.is_some(), "in the thread");
    let got = normalise(&String::from_utf8(file.content).expect("UTF-8"));
    let golden_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/postmortem.md");
    if std::env::var_os("KLAXON_BLESS").is_some() {
        std::fs::write(&golden_path, &got).expect("write the golden file");
    }
    let want = std::fs::read_to_string(&golden_path).expect("tests/golden/postmortem.md");
    assert_eq!(
        got, want,
        "the postmortem changed; if on purpose, rerun with KLAXON_BLESS=1 and review the diff"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_taken_name_gets_the_next_one() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.take_name("inc-1-database-down");
    slack.take_name("inc-1-database-down-2");
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Database down").await;
    let room = room_of(&slack).await;
    assert_eq!(room.name, "inc-1-database-down-3");
    app.settle().await;
    let incident = all_incidents(app.store()).await.remove(0);
    assert_eq!(
        incident.room.map(|r| r.name),
        Some("inc-1-database-down-3".to_string())
    );
    app.stop().await;
}

/// Opens a P0 while Slack refuses channels as `refuse` arranges, and
/// returns what the thread said.
async fn refused(refuse: impl Fn(&FakeSlack)) -> (TestDb, TestApp, String) {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    refuse(&slack);
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Database down").await;
    let said = slack
        .wait_for_text("INC-1 stays in this thread: Slack refused to create its own channel")
        .await;
    app.settle().await;
    app.outbox_drained().await;
    assert!(slack.created_channels().is_empty());
    assert!(all_incidents(app.store()).await[0].room.is_none());
    // It goes on in the thread.
    app.command(ALICE, "status Restarting the primary").await;
    slack.wait_for_text("Restarting the primary").await;
    let thread_ts = all_incidents(app.store()).await[0].thread_ts.clone();
    let status = slack
        .delivered()
        .into_iter()
        .rfind(|c| c.text().contains("Restarting the primary"))
        .expect("status");
    assert_eq!(status.str("channel"), Some(INCIDENT_CHANNEL));
    assert_eq!(status.str("thread_ts"), thread_ts.as_deref());
    (db, app, said)
}

#[tokio::test]
async fn a_workspace_that_restricts_channel_creation_keeps_the_incident_in_its_thread() {
    let (_db, app, said) = refused(|s| s.restrict_channel_creation(true)).await;
    assert!(said.contains("`restricted_action`"), "{said}");
    assert!(said.contains("ask an admin"), "{said}");
    app.stop().await;
}

#[tokio::test]
async fn an_app_without_the_channels_manage_scope_keeps_the_incident_in_its_thread() {
    let (_db, app, said) = refused(|s| s.withhold_scopes(&["channels:manage"])).await;
    assert!(said.contains("missing_scope (channels:manage)"), "{said}");
    assert!(said.contains("reinstall the app"), "{said}");
    app.stop().await;
}

#[tokio::test]
async fn every_name_taken_keeps_the_incident_in_its_thread() {
    let (_db, app, said) = refused(|s| {
        s.take_name("inc-1-database-down");
        for n in 2..=5 {
            s.take_name(&format!("inc-1-database-down-{n}"));
        }
    })
    .await;
    assert!(said.contains("`name_taken`"), "{said}");
    app.stop().await;
}

/// A tracker's webhook: answers each request with the next of `answers`
/// (status, JSON body), the last one forever; records the bodies.
async fn tracker(answers: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let answers = Arc::new(Mutex::new(answers));
    let router = axum::Router::new().route(
        "/issues",
        axum::routing::post({
            let seen = seen.clone();
            move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                let answers = answers.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().expect("lock").push((auth, body));
                    let mut a = answers.lock().expect("lock");
                    let (status, json) = if a.len() > 1 {
                        a.remove(0)
                    } else {
                        a[0].clone()
                    };
                    (
                        StatusCode::from_u16(status).expect("status"),
                        axum::Json(json),
                    )
                }
            }
        }),
    );
    (format!("{}/issues", serve_router(router).await), seen)
}

fn with_tracker(url: &str) -> Options {
    options(&format!(
        "[followups]\nwebhook_url = \"{url}\"\nwebhook_token = \"tracker-token-7d2f9c\"\n"
    ))
}

#[tokio::test]
async fn a_follow_up_is_filed_in_the_tracker_through_the_webhook_after_a_failed_attempt() {
    let (url, seen) = tracker(vec![
        (503, json!({"error": "try later"})),
        (201, json!({"id": "10001", "key": "OPS-7"})),
    ])
    .await;
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_tracker(&url)).await;
    app.command(BOB, "open P1 Search slow").await;
    let answer = app
        .command(BOB, "followup <@U0ALICE> Add a \"slow query\" alert")
        .await;
    assert!(
        answer.contains("Follow-up #1 recorded on INC-1"),
        "{answer}"
    );
    slack
        .wait_for_text("Follow-up #1 of INC-1 is in the tracker: OPS-7")
        .await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "retried once after the 503");
    let (auth, body) = &seen[1];
    assert_eq!(auth, "Bearer tracker-token-7d2f9c");
    let body: Value = serde_json::from_str(body).expect("the default body is JSON");
    assert_eq!(body["title"], "INC-1 follow-up: Add a \"slow query\" alert");
    assert_eq!(body["incident"], "INC-1");
    assert_eq!(body["owner"], ALICE);
    app.command(BOB, "resolve INC-1 Added an index").await;
    let summary = slack.wait_for_text("RESOLVED: INC-1").await;
    assert!(
        summary.contains("1. Add a \"slow query\" alert (<@U0ALICE>) · OPS-7"),
        "{summary}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tracker_that_refuses_a_follow_up_is_said_in_the_thread_and_the_follow_up_stays() {
    let (url, seen) = tracker(vec![(422, json!({"error": "project not found"}))]).await;
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_tracker(&url)).await;
    app.command(BOB, "open P1 Search slow").await;
    app.command(BOB, "followup Add a slow query alert").await;
    let said = slack
        .wait_for_text("The tracker did not take follow-up #1 of INC-1")
        .await;
    assert!(said.contains("`http_422`"), "{said}");
    assert_eq!(seen.lock().expect("lock").len(), 1, "a 4xx is not retried");
    let items = klaxon::store::followups::of_incident(
        app.store().pool(),
        klaxon::incident::IncidentRef::new(1).expect("ref"),
    )
    .await
    .expect("follow-ups");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].tracker_state.as_deref(), Some("failed"));
    app.stop().await;
}

#[tokio::test]
async fn wrong_role_postmortem_and_followup_commands_change_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P1 Search slow").await;
    app.settle().await;
    app.outbox_drained().await;
    let before = slack.delivered().len();
    for (text, expect) in [
        ("role captain <@U0ALICE>", "`captain` is not a role here"),
        ("role commander alice", "is not a Slack user"),
        ("role commander INC-9 <@U0ALICE>", "INC-9 does not exist"),
        ("postmortem INC-9", "INC-9 does not exist"),
        ("followup", "the follow-up is empty"),
        ("followup INC-9 do it", "INC-9 does not exist"),
    ] {
        let answer = app.command(ALICE, text).await;
        assert!(answer.contains(expect), "{text}: {answer}");
    }
    let help = app.command(ALICE, "help").await;
    assert!(
        help.contains("Roles here: `commander`, `comms`, `scribe`."),
        "{help}"
    );
    assert!(
        help.contains("P0 incidents get a channel of their own"),
        "{help}"
    );
    app.command(ALICE, "role commander <@U0ALICE>").await;
    let again = app.command(BOB, "role commander <@U0ALICE>").await;
    assert!(
        again.contains("is already the commander of INC-1"),
        "{again}"
    );
    app.command(ALICE, "resolve Fixed").await;
    let late = app.command(ALICE, "role scribe INC-1 <@U0BOB>").await;
    assert!(late.contains("INC-1 is resolved"), "{late}");
    app.settle().await;
    app.outbox_drained().await;
    let roles = klaxon::store::roles::of_incident(
        app.store().pool(),
        klaxon::incident::IncidentRef::new(1).expect("ref"),
    )
    .await
    .expect("roles");
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(app.count("followups").await, 0);
    assert!(slack.uploaded_files().is_empty());
    assert!(slack.delivered().len() > before, "the valid ones posted");
    // Without a token configured, postmortems are not served at all.
    let plain = TestApp::start_with(&TestDb::sqlite(), &slack, Options::default()).await;
    let r = plain
        .client
        .get(format!("{}/incidents/INC-1/postmortem.md", plain.base))
        .bearer_auth(HISTORY_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    plain.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_resolved_incident_without_a_postmortem_reminds_its_owner_after_a_day() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Checkout down").await;
    app.command(BOB, "open P0 Search down").await;
    app.command(ALICE, "ack INC-1").await;
    app.command(ALICE, "ack INC-2").await;
    app.command(ALICE, "resolve INC-1 Fixed").await;
    app.command(ALICE, "resolve INC-2 Fixed").await;
    app.command(ALICE, "postmortem INC-2").await;
    app.advance(23 * 60 * MINUTE).await;
    app.outbox_drained().await;
    let reminders = |slack: &FakeSlack| {
        slack
            .delivered()
            .iter()
            .filter(|c| c.text().contains("has no postmortem yet"))
            .map(fake_slack::Call::text)
            .collect::<Vec<_>>()
    };
    assert!(reminders(&slack).is_empty(), "not before 24h");
    app.advance(60 * MINUTE).await;
    app.outbox_drained().await;
    let said = reminders(&slack);
    assert_eq!(
        said.len(),
        2,
        "the room and the DM, for INC-1 only: {said:?}"
    );
    assert!(said.iter().all(|t| t.contains("INC-1")), "{said:?}");
    assert!(
        said.iter()
            .any(|t| t.contains("<@U0ALICE>, `/incident postmortem INC-1`")),
        "{said:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_file_slack_refuses_is_said_in_the_thread_and_holds_up_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P1 Search slow").await;
    app.settle().await;
    app.outbox_drained().await;
    slack.withhold_scopes(&["files:write"]);
    let answer = app.command(BOB, "postmortem").await;
    assert!(
        answer.contains("on its way to the thread in <#C0INCIDENTS>"),
        "{answer}"
    );
    app.command(ALICE, "status Rebuilding the index").await;
    app.settle().await;
    app.outbox_drained().await;
    let said = slack
        .wait_for_text("Slack did not take the file `INC-1-postmortem.md`")
        .await;
    assert!(said.contains("`files:write` scope"), "{said}");
    assert!(slack.uploaded_files().is_empty());
    assert!(
        texts(&slack, INCIDENT_CHANNEL)
            .iter()
            .any(|t| t.contains("Rebuilding the index")),
        "the incident's later messages go out"
    );
    let (_, ready) = {
        let r = app.get("/readyz").await;
        (r.status(), r.json::<Value>().await.expect("JSON"))
    };
    assert_eq!(
        ready["slack"]["channels_blocked"],
        json!({}),
        "a refused file blocks no channel: {ready}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_channel_created_while_its_answer_was_lost_is_adopted_not_made_twice() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // The channel is made, but the answer never reaches Klaxon.
    slack.fail_next_call_of("conversations.create", fake_slack::Fault::LoseAnswer);
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Database down").await;
    wait_until(WAIT, "the incident's channel recorded", || async {
        all_incidents(app.store()).await[0].room.is_some()
    })
    .await;
    let created = slack.created_channels();
    assert_eq!(created.len(), 1, "one channel: {created:?}");
    let room = all_incidents(app.store())
        .await
        .remove(0)
        .room
        .expect("room");
    assert_eq!(room.channel.as_str(), created[0].id);
    assert_eq!(room.name, "inc-1-database-down");
    app.stop().await;
}

#[tokio::test]
async fn a_channel_archived_by_a_person_sends_the_incident_back_to_its_thread() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Database down").await;
    let room = room_of(&slack).await;
    app.settle().await;
    app.outbox_drained().await;
    // Somebody archives the channel by hand.
    slack.set_access(&room.id, fake_slack::Access::Archived);
    app.command_in(ALICE, &room.id, "followup Add a disk alert")
        .await;
    app.command(ALICE, "ack INC-1").await;
    app.command(ALICE, "resolve INC-1 Freed disk space").await;
    app.settle().await;
    app.outbox_drained().await;
    let thread = texts(&slack, INCIDENT_CHANNEL);
    for needle in [
        "INC-1's own channel",
        "Follow-up #1 for INC-1",
        "acknowledged INC-1",
        "RESOLVED: INC-1",
    ] {
        assert!(
            thread.iter().any(|t| t.contains(needle)),
            "{needle} in the thread: {thread:?}"
        );
    }
    let incident = all_incidents(app.store()).await.remove(0);
    assert!(incident.room.expect("room").archived);
    let ready: Value = app.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(
        ready["slack"]["channels_blocked"],
        json!({}),
        "an archived room blocks nothing: {ready}"
    );
    app.stop().await;
}

#[tokio::test]
async fn follow_ups_recorded_at_once_get_distinct_numbers_on_postgres() {
    let db = TestDb::of(Backend::Postgres).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P1 Search slow").await;
    let texts: Vec<String> = (0..12)
        .map(|n| format!("followup INC-1 item {n}"))
        .collect();
    let answers = futures_util::future::join_all(texts.iter().map(|t| app.command(BOB, t))).await;
    assert!(
        answers.iter().all(|a| a.contains("recorded on INC-1")),
        "{answers:?}"
    );
    let mut numbers: Vec<i64> = klaxon::store::followups::of_incident(
        app.store().pool(),
        klaxon::incident::IncidentRef::new(1).expect("ref"),
    )
    .await
    .expect("follow-ups")
    .iter()
    .map(|f| f.number)
    .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
    app.stop().await;
}
