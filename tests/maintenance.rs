//! Maintenance windows: a route's new alert groups open nothing and page
//! nobody; its running ladders pause and resume; start and end are announced
//! and audited.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::alertmanager::Alertmanager;
use crate::support::*;

const TOKEN: &str = "alert-t0ken-for-maintenance";
const WAIT: Duration = Duration::from_secs(40);
const ALICE: &str = "U0ALICE";
const MINUTE: Duration = Duration::from_secs(60);

/// A `checkout` route paging the three-level ladder (waits of `wait`), and
/// more of the file in `extra`.
fn options(wait: &str, extra: &str) -> Options {
    options_with_alerts(wait, "", extra)
}

/// Like [`options`], with keys of the `[alerts]` table in `alerts`.
fn options_with_alerts(wait: &str, alerts: &str, extra: &str) -> Options {
    Options {
        extra_toml: format!(
            r#"alert_token = "{TOKEN}"
{}
[alerts]
{alerts}

[[alerts.routes]]
name = "checkout"
match = ["service=checkout"]
ladder = "default"
{extra}"#,
            three_level_ladder(wait)
        ),
        ..Options::default()
    }
}

/// An Alertmanager notification of one firing alert of `service`'s group.
fn notification(service: &str) -> String {
    let labels = json!({"alertname": "HighErrorRate", "service": service, "severity": "critical"});
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"HighErrorRate\", service=\"{service}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "klaxon",
        "groupLabels": {"alertname": "HighErrorRate", "service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": format!("HighErrorRate on {service}")},
            "startsAt": "2026-11-30T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": format!("fp-{service}"),
        }],
    })
    .to_string()
}

async fn notify(app: &TestApp, body: &str) -> Value {
    let r = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("notify");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(app.store().pool())
        .await
        .expect("query")
        .get::<i64, _>("n")
}

async fn a_window_holds_a_real_alertmanager_group_and_pages_nobody(kind: Backend) {
    let db = TestDb::of(kind).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("10m", "")).await;
    let am = Alertmanager::start_on(
        free_port(),
        &format!("{}/alerts/alertmanager", app.base),
        TOKEN,
    )
    .await;

    let answer = app
        .command(
            ALICE,
            "maintenance start checkout 30m database failover rehearsal",
        )
        .await;
    assert!(
        answer.contains("Maintenance window #1 covers route `checkout`"),
        "{answer}"
    );
    let announced = slack.wait_for_text("*Maintenance window* #1").await;
    assert!(
        announced.contains("by <@U0ALICE>: database failover rehearsal"),
        "{announced}"
    );

    // Inside the window: checkout's group is held; search's opens as usual.
    am.post_alerts(&json!([
        Alertmanager::alert("HighErrorRate", "checkout", false),
        Alertmanager::alert("HighErrorRate", "search", false),
    ]))
    .await;
    let calls = slack
        .wait_for(
            WAIT,
            "search's incident and the listing of the held group",
            |c| {
                roots(c).len() == 1
                    && dms_to(c, ALICE) == 1
                    && c.iter().any(|c| {
                        c.method == "chat.update"
                            && c.text()
                                .contains("*Held* (no incident, nobody paged): 1 alert group")
                    })
            },
        )
        .await;
    assert!(
        roots(&calls)[0].text().contains("search"),
        "only search opens"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM maintenance_held").await,
        1
    );
    let kept: String = sqlx::query("SELECT alerts FROM maintenance_held")
        .fetch_one(app.store().pool())
        .await
        .expect("held")
        .get("alerts");
    assert!(
        kept.contains("HighErrorRate on checkout"),
        "kept whole: {kept}"
    );
    app.outbox_drained().await;
    assert_eq!(
        dms_to(&slack.delivered(), ALICE),
        1,
        "only search's incident paged (once)"
    );

    // Ended by hand: announced, and the group that still fires is named.
    let answer = app.command(ALICE, "maintenance end 1").await;
    assert!(answer.contains("ended"), "{answer}");
    let ended = slack
        .wait_for_text(
            "Maintenance window #1 on route `checkout` ended early (ended by <@U0ALICE>)",
        )
        .await;
    assert!(
        ended.contains("1 alert group held during it still fires"),
        "{ended}"
    );
    assert_eq!(
        all_incidents(app.store()).await.len(),
        1,
        "the window opened nothing"
    );
    let audited: Vec<(String, Option<String>)> =
        sqlx::query("SELECT event, actor FROM audit_log WHERE action = 'maintenance' ORDER BY id")
            .fetch_all(app.store().pool())
            .await
            .expect("audit")
            .iter()
            .map(|r| (r.get("event"), r.get("actor")))
            .collect();
    assert_eq!(
        audited,
        [
            ("maintenance_started".to_string(), Some(ALICE.to_string())),
            ("maintenance_ended".to_string(), Some(ALICE.to_string())),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_window_holds_a_real_alertmanager_group_and_pages_nobody_on_sqlite() {
    a_window_holds_a_real_alertmanager_group_and_pages_nobody(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_window_holds_a_real_alertmanager_group_and_pages_nobody_on_postgres() {
    a_window_holds_a_real_alertmanager_group_and_pages_nobody(Backend::Postgres).await;
}

#[tokio::test]
async fn a_ladder_running_when_a_window_starts_pauses_and_resumes_where_it_stopped() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("10m", "")).await;
    let done = notify(&app, &notification("checkout")).await;
    assert_eq!(done["opened"], true, "{done}");
    slack
        .wait_for(WAIT, "level 1 paged", |c| dms_to(c, ALICE) == 1)
        .await;

    app.command(ALICE, "maintenance start checkout 1h deploy")
        .await;
    // Level 2 falls due inside the window: nobody is paged, the thread says why.
    app.advance(10 * MINUTE).await;
    app.outbox_drained().await;
    let paused = slack.wait_for_text("Paging for INC-1 is paused").await;
    assert!(paused.contains("maintenance window #1"), "{paused}");
    app.advance(30 * MINUTE).await;
    app.outbox_drained().await;
    assert_eq!(
        dms_to(&slack.delivered(), "U0LEAD"),
        0,
        "the team lead is not paged"
    );

    // The window ends early: the ladder resumes at the level it stopped at.
    app.command(ALICE, "maintenance end 1").await;
    app.settle().await;
    slack
        .wait_for(WAIT, "the team lead paged", |c| dms_to(c, "U0LEAD") == 1)
        .await;
    slack.wait_for_text("paging resumes now").await;
    let ended = slack.wait_for_text("Paging resumed for 1 incident").await;
    assert!(
        ended.contains("ended early (ended by <@U0ALICE>)"),
        "{ended}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_window_starts_and_ends_on_time_and_holds_groups_between() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let now = jiff::Timestamp::now();
    let start = (now + jiff::SignedDuration::from_hours(1)).strftime("%Y-%m-%dT%H:%M:%SZ");
    let end = (now + jiff::SignedDuration::from_hours(3)).strftime("%Y-%m-%dT%H:%M:%SZ");
    let schedule = format!(
        "[[maintenance]]\nname = \"db-patching\"\nroute = \"checkout\"\nreason = \"monthly patching\"\nstart = \"{start}\"\nend = \"{end}\"\n"
    );
    let app = TestApp::start_with(&db, &slack, options("10m", &schedule)).await;
    let listed = app.command(ALICE, "maintenance list").await;
    assert!(
        listed.contains("schedule `db-patching` route `checkout` — next"),
        "{listed}"
    );

    // Before it: an alert opens an incident. Resolve it to start clean.
    app.advance(61 * MINUTE).await;
    let announced = slack.wait_for_text("*Maintenance window* #1").await;
    assert!(
        announced.contains("(schedule `db-patching`): monthly patching"),
        "{announced}"
    );
    let done = notify(&app, &notification("checkout")).await;
    assert_eq!(done["held_by_maintenance_window"], 1, "{done}");
    assert!(all_incidents(app.store()).await.is_empty());

    // It ends by itself at its end.
    app.advance(2 * 60 * MINUTE).await;
    app.outbox_drained().await;
    let ended = slack
        .wait_for_text("Maintenance window #1 on route `checkout` ended.")
        .await;
    assert!(ended.contains("still fires: HighErrorRate"), "{ended}");
    // The clock jumped past the end: the window still ended at its end.
    slack
        .wait_for(WAIT, "the announcement's final edit", |c| {
            c.iter()
                .any(|c| c.method == "chat.update" && c.text().contains("(2h)."))
        })
        .await;
    let windows = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM maintenance_windows WHERE ended_at IS NOT NULL",
    )
    .await;
    assert_eq!(windows, 1);
    // Alertmanager repeats the group after the window: now it opens its incident.
    let done = notify(&app, &notification("checkout")).await;
    assert_eq!(done["opened"], true, "{done}");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_maintenance_command_says_what_is_wrong_and_changes_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("10m", "")).await;
    for (text, expected) in [
        (
            "maintenance start payments 1h",
            "There is no alert route named `payments`",
        ),
        (
            "maintenance start checkout 30d",
            "A maintenance window lasts from a second to 7d",
        ),
        (
            "maintenance start checkout soon",
            "Usage: `/incident maintenance start",
        ),
        ("maintenance start", "which alert route?"),
        ("maintenance end 7", "There is no maintenance window #7"),
        ("maintenance end seven", "`seven` is not a window number"),
        (
            "maintenance pause checkout",
            "`pause` is not a maintenance command",
        ),
    ] {
        let answer = app.command(ALICE, text).await;
        assert!(answer.contains(expected), "{text}: {answer}");
    }
    // Someone on no ladder may not stop pages.
    let answer = app
        .command("U0INTERN", "maintenance start checkout 1h")
        .await;
    assert!(
        answer.starts_with("⛔ Only the people of the escalation ladders"),
        "{answer}"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM maintenance_windows").await,
        0
    );
    let refused = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'maintenance' AND event = 'refused'",
    )
    .await;
    assert_eq!(refused, 1, "the refusal is audited");
    app.stop().await;
}

#[tokio::test]
async fn a_window_silences_its_route_in_a_real_alertmanager_and_an_early_end_expires_it() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let port = free_port();
    let app = TestApp::start_with(
        &db,
        &slack,
        options_with_alerts(
            "10m",
            &format!("alertmanager_url = \"http://127.0.0.1:{port}\"\nsilence_maintenance = true"),
            "",
        ),
    )
    .await;
    let am =
        Alertmanager::start_on(port, &format!("{}/alerts/alertmanager", app.base), TOKEN).await;
    app.command(ALICE, "maintenance start checkout 2h failover")
        .await;
    wait_until(WAIT, "the window's silence", || async {
        am.get("/api/v2/silences")
            .await
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["status"]["state"] == "active"))
    })
    .await;
    let silence = am
        .get("/api/v2/silences")
        .await
        .as_array()
        .and_then(|a| a.iter().find(|s| s["status"]["state"] == "active").cloned())
        .expect("the active silence");
    assert_eq!(
        silence["matchers"],
        json!([{"name": "service", "value": "checkout", "isRegex": false, "isEqual": true}]),
        "the route's matchers: {silence}"
    );
    assert_eq!(silence["createdBy"], "slack:U0ALICE");
    assert!(
        silence["comment"]
            .as_str()
            .is_some_and(|c| c.contains("#1 on route checkout: failover"))
    );
    // Alertmanager itself holds the route's alerts back now.
    am.post_alerts(&json!([Alertmanager::alert(
        "HighErrorRate",
        "checkout",
        false
    )]))
    .await;
    wait_until(WAIT, "the alert suppressed in Alertmanager", || async {
        am.get("/api/v2/alerts")
            .await
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["status"]["state"] == "suppressed"))
    })
    .await;

    app.command(ALICE, "maintenance end 1").await;
    let id = silence["id"].as_str().expect("id").to_string();
    wait_until(WAIT, "the silence expired", || async {
        am.get(&format!("/api/v2/silence/{id}")).await["status"]["state"] == "expired"
    })
    .await;
    assert!(all_incidents(app.store()).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_group_resolved_by_hand_that_still_fires_through_a_window_opens_at_its_next_repeat() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("10m", "")).await;
    assert_eq!(
        notify(&app, &notification("checkout")).await["opened"],
        true
    );
    app.command(ALICE, "resolve INC-1 looks fine").await;
    // The same content again is a duplicate: nothing new opens.
    assert_eq!(
        notify(&app, &notification("checkout")).await["status"],
        "duplicate"
    );

    app.command(ALICE, "maintenance start checkout 1h deploy")
        .await;
    let held = notify(&app, &notification("checkout")).await;
    assert_eq!(held["held_by_maintenance_window"], 1, "{held}");
    app.command(ALICE, "maintenance end 1").await;
    let ended = slack.wait_for_text("held during it still fires").await;
    assert!(
        ended.contains("Each opens its incident when its sender next repeats it"),
        "{ended}"
    );
    // The promise holds: Alertmanager's next repeat opens it.
    let repeat = notify(&app, &notification("checkout")).await;
    assert_eq!(repeat["opened"], true, "{repeat}");
    assert_eq!(repeat["incident"], "INC-2");
    app.stop().await;
}
