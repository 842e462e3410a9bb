//! Heartbeats (dead man's switches): a real Alertmanager's always-firing
//! `Watchdog`, and `POST /heartbeats/{name}` from cron jobs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::alertmanager::Alertmanager;
use crate::support::*;

const TOKEN: &str = "alert-t0ken-for-heartbeats";
const WAIT: Duration = Duration::from_secs(40);

/// Klaxon's side of `deploy/alertmanager-watchdog.yml`, with a short interval.
fn watchdog(interval: &str, grace: &str) -> Options {
    Options {
        extra_toml: format!(
            r#"alert_token = "{TOKEN}"

[[heartbeats]]
name = "watchdog"
watches = "the Prometheus → Alertmanager → Klaxon path"
interval = "{interval}"
grace = "{grace}"
severity = "P1"

[[heartbeats]]
name = "nightly-backup"
watches = "the nightly database backup"
interval = "24h"
grace = "1h"
severity = "P2"

[[alerts.routes]]
name = "watchdog"
match = ["alertname=Watchdog"]
heartbeat = "watchdog"
"#
        ),
        ..Options::default()
    }
}

async fn beats(app: &TestApp, name: &str) -> i64 {
    klaxon::store::heartbeats::get(app.store().pool(), name)
        .await
        .expect("read")
        .map_or(0, |h| h.beats)
}

async fn incidents(app: &TestApp) -> Vec<klaxon::incident::Incident> {
    all_incidents(app.store()).await
}

async fn a_real_watchdog_going_quiet_opens_one_incident_and_its_return_resolves_it(kind: Backend) {
    let db = TestDb::of(kind).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, watchdog("3s", "1s")).await;
    let port = free_port();
    let webhook = format!("{}/alerts/alertmanager", app.base);
    let am = Alertmanager::start_with_watchdog(port, &webhook, TOKEN).await;
    am.post_alerts(&json!([Alertmanager::watchdog()])).await;

    // Beats arrive (Alertmanager repeats the Watchdog every second) and open nothing.
    wait_until(WAIT, "three beats", || async {
        beats(&app, "watchdog").await >= 3
    })
    .await;
    assert!(incidents(&app).await.is_empty(), "a beat opens no incident");
    assert!(roots(&slack.delivered()).is_empty());
    let groups: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM alert_groups")
            .fetch_one(app.store().pool())
            .await
            .expect("count"),
        "n",
    );
    assert_eq!(groups, 0, "beats are not alert groups");

    // Alertmanager dies: within interval + grace, one incident says what went quiet.
    am.kill();
    let calls = slack
        .wait_for(WAIT, "the missed-beat incident", |c| roots(c).len() == 1)
        .await;
    let root = roots(&calls)[0].text();
    assert!(root.contains("No watchdog beat for"), "{root}");
    assert!(
        root.contains("the Prometheus → Alertmanager → Klaxon path may be broken"),
        "{root}"
    );
    let opened = incidents(&app).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].severity, klaxon::incident::Severity::P1);
    assert_eq!(
        opened[0].source,
        klaxon::incident::IncidentSource::Heartbeat
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(&metrics, r#"klaxon_heartbeat_missed{name="watchdog"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            r#"klaxon_heartbeat_last_beat_timestamp_seconds{name="watchdog"}"#
        )
        .is_some_and(|t| t > 1.7e9),
        "{metrics}"
    );

    // It comes back (Prometheus posts the Watchdog again): the incident resolves.
    let am = Alertmanager::start_with_watchdog(port, &webhook, TOKEN).await;
    am.post_alerts(&json!([Alertmanager::watchdog()])).await;
    let summary = slack.wait_for_text("RESOLVED: INC-1").await;
    assert!(
        summary.contains("heartbeat `watchdog` beat again"),
        "{summary}"
    );
    let after = incidents(&app).await;
    assert_eq!(after.len(), 1, "one incident for one silence");
    assert!(after[0].is_resolved());

    // Beats go on: no second incident while they do.
    let now = beats(&app, "watchdog").await;
    wait_until(WAIT, "more beats", || async {
        beats(&app, "watchdog").await >= now + 3
    })
    .await;
    assert_eq!(incidents(&app).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_real_watchdog_going_quiet_opens_one_incident_and_its_return_resolves_it_on_sqlite() {
    a_real_watchdog_going_quiet_opens_one_incident_and_its_return_resolves_it(Backend::Sqlite)
        .await;
}

#[tokio::test]
async fn a_real_watchdog_going_quiet_opens_one_incident_and_its_return_resolves_it_on_postgres() {
    a_real_watchdog_going_quiet_opens_one_incident_and_its_return_resolves_it(Backend::Postgres)
        .await;
}

async fn post_beat(app: &TestApp, name: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.post(format!("{}/heartbeats/{name}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let body = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn a_restart_while_a_beat_is_overdue_opens_exactly_one_incident(kind: Backend) {
    let db = TestDb::of(kind).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, watchdog("1h", "5m")).await;
    let (status, _) = post_beat(&app, "nightly-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    app.stop().await;

    // Klaxon comes back after the deadline passed while it was down (its
    // clock moves past it), twice: each missed heartbeat is reported once
    // (the watchdog, which never beat, too).
    for _ in 0..2 {
        let app = TestApp::start_with(&db, &slack, watchdog("1h", "5m")).await;
        app.advance(Duration::from_secs(26 * 3600)).await;
        // Each missed heartbeat opens its incident from a check of its own;
        // wait for both (the event), then count them once everything settled.
        wait_until(WAIT, "an incident per missed heartbeat", || async {
            incidents(&app).await.len() >= 2
        })
        .await;
        app.settle().await;
        app.outbox_drained().await;
        let all = incidents(&app).await;
        let titles: Vec<&str> = all.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(all.len(), 2, "one incident per heartbeat: {titles:#?}");
        assert_eq!(
            titles
                .iter()
                .filter(|t| t.starts_with("No nightly-backup beat for 1d"))
                .count(),
            1,
            "{titles:#?}"
        );
        assert_eq!(
            titles
                .iter()
                .filter(|t| t.starts_with("No watchdog beat since Klaxon started watching"))
                .count(),
            1,
            "{titles:#?}"
        );
        app.stop().await;
    }
    let posted = roots(&slack.delivered());
    assert_eq!(posted.len(), 2, "one root per heartbeat in Slack");
}

#[tokio::test]
async fn a_restart_while_a_beat_is_overdue_opens_exactly_one_incident_on_sqlite() {
    a_restart_while_a_beat_is_overdue_opens_exactly_one_incident(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_restart_while_a_beat_is_overdue_opens_exactly_one_incident_on_postgres() {
    a_restart_while_a_beat_is_overdue_opens_exactly_one_incident(Backend::Postgres).await;
}

#[tokio::test]
async fn a_beat_needs_the_token_and_a_configured_name_and_moves_the_deadline() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, watchdog("1h", "5m")).await;
    let before = klaxon::store::heartbeats::get(app.store().pool(), "nightly-backup")
        .await
        .expect("read")
        .expect("watched from the start");
    assert_eq!(before.beats, 0);

    let (status, _) = post_beat(&app, "nightly-backup", None).await;
    assert_eq!(status, 401, "no token");
    let (status, _) = post_beat(&app, "nightly-backup", Some("wrong-token-of-same-size!!")).await;
    assert_eq!(status, 401, "wrong token");
    let (status, body) = post_beat(&app, "nightly-backups", Some(TOKEN)).await;
    assert_eq!(status, 404, "unknown name");
    assert!(
        body.as_str().is_some_and(|t| t.contains("nightly-backup")),
        "the answer lists the configured names: {body}"
    );
    let unchanged = klaxon::store::heartbeats::get(app.store().pool(), "nightly-backup")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(unchanged, before, "refused beats change nothing");

    app.clock().advance(Duration::from_secs(600));
    let (status, body) = post_beat(&app, "nightly-backup", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let after = klaxon::store::heartbeats::get(app.store().pool(), "nightly-backup")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(after.beats, 1);
    let beat_at = after.last_beat_at.expect("the beat's time");
    assert_eq!(
        after.deadline_at.since(beat_at),
        Duration::from_secs(25 * 3600),
        "the next beat is due within interval + grace (24h + 1h) of this one"
    );
    assert!(
        after.deadline_at.since(before.deadline_at) >= Duration::from_secs(600),
        "the deadline moved by the time since the first one"
    );
    assert_eq!(
        body["next_beat_before"],
        after.deadline_at.timestamp().to_string()
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(
            &metrics,
            r#"klaxon_alerts_rejected_total{source="heartbeat",reason="unauthorized"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"klaxon_heartbeat_beats_total{name="nightly-backup"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_shorter_interval_configured_after_a_beat_takes_effect_at_the_next_start() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, watchdog("24h", "1h")).await;
    let (status, _) = post_beat(&app, "watchdog", Some(TOKEN)).await;
    assert_eq!(status, 200);
    app.stop().await;

    // Restarted with a one-hour interval: silent for 1h 5m since the beat is a miss.
    let app = TestApp::start_with(&db, &slack, watchdog("1h", "5m")).await;
    app.advance(Duration::from_secs(64 * 60)).await;
    assert!(
        incidents(&app).await.is_empty(),
        "not before interval + grace"
    );
    app.advance(Duration::from_secs(2 * 60)).await;
    let all = incidents(&app).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].title.starts_with("No watchdog beat for 1h 6m"),
        "{}",
        all[0].title
    );
    app.stop().await;
}
