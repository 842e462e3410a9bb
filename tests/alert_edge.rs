//! The alert edge: every well-formed notification is accepted and kept whole,
//! nothing resolves while alerts still fire (`max_alerts` truncation), a stale
//! out-of-order firing opens nothing, and one alert group costs few messages.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::alertmanager::Alertmanager;
use crate::support::*;

const TOKEN: &str = "alert-t0ken-for-edge-tests";
const WAIT: Duration = Duration::from_secs(40);

fn options(extra: &str) -> Options {
    Options {
        extra_toml: format!("alert_token = \"{TOKEN}\"\n{extra}"),
        ..Options::default()
    }
}

/// One alert of a notification, as Alertmanager sends it.
fn alert(fingerprint: &str, status: &str, starts: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "KubePodNotReady", "namespace": "shop", "pod": format!("pod-{fingerprint}"), "severity": "critical"},
        "annotations": {"summary": format!("Pod {fingerprint} is not ready"), "description": "It has been not ready for 15 minutes."},
        "startsAt": starts,
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-22T18:00:00Z" },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=kube_pod_status_ready",
        "fingerprint": fingerprint,
    })
}

/// An Alertmanager notification (version 4) of the `KubePodNotReady` group.
fn notification(status: &str, alerts: Vec<Value>, truncated: u64) -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"KubePodNotReady\"}",
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "klaxon",
        "groupLabels": {"alertname": "KubePodNotReady"},
        "commonLabels": {"alertname": "KubePodNotReady", "namespace": "shop", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
    .to_string()
}

const STARTS: &str = "2026-11-22T17:04:09Z";

fn firing(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| alert(&format!("{i:05}"), "firing", STARTS))
        .collect()
}

async fn post(app: &TestApp, path: &str, body: String) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("deliver");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn scalar(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(app.store().pool())
        .await
        .expect("query")
        .get::<i64, _>("n")
}

fn roots(calls: &[fake_slack::Call]) -> Vec<&fake_slack::Call> {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.str("thread_ts").is_none())
        .collect()
}

/// The root message as it reads now (after every `chat.update` of it).
fn root_now(calls: &[fake_slack::Call]) -> String {
    let root = roots(calls).first().map(|c| c.text()).unwrap_or_default();
    calls
        .iter()
        .rfind(|c| c.method == "chat.update" && c.str("thread_ts").is_none())
        .map(|c| c.text())
        .unwrap_or(root)
}

#[tokio::test]
async fn a_notification_of_1001_alerts_gets_2xx_and_keeps_every_alert_and_the_root_cuts_what_it_shows()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let (status, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(1_001), 0),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["opened"], true);
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM alerts").await,
        1_001
    );
    // Every alert is kept whole: its labels and annotations as received.
    let detail: String = sqlx::query("SELECT detail FROM alerts WHERE fingerprint = '01000'")
        .fetch_one(app.store().pool())
        .await
        .expect("row")
        .get("detail");
    assert!(
        detail.contains("pod-01000") && detail.contains("not ready for 15 minutes"),
        "{detail}"
    );
    let calls = slack
        .wait_for(WAIT, "the root", |c| !roots(c).is_empty())
        .await;
    let root = roots(&calls)[0].text();
    assert!(root.contains("1,001 alerts firing"), "{root}");
    assert!(root.contains("… and 996 more"), "{root}");
    assert!(
        root.chars().count() <= 3_000,
        "a section is at most 3,000 characters"
    );
    app.stop().await;
}

#[tokio::test]
async fn values_of_any_length_are_accepted_and_stored_whole() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let mut alerts = firing(2);
    let long = "stack trace line\n".repeat(20_000);
    alerts[0]["annotations"]["description"] = json!(long);
    let (status, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification("firing", alerts, 0),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let detail: String = sqlx::query("SELECT detail FROM alerts WHERE fingerprint = '00000'")
        .fetch_one(app.store().pool())
        .await
        .expect("row")
        .get("detail");
    let detail: Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(
        detail["annotations"]["description"].as_str().map(str::len),
        Some(long.len())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_firing_alert_already_seen_resolved_opens_nothing_and_is_counted_as_stale() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    // The resolved notification arrives first (HA peers, retries) …
    let (status, _) = post(
        &app,
        "/alerts/alertmanager",
        notification("resolved", vec![alert("f1", "resolved", STARTS)], 0),
    )
    .await;
    assert_eq!(status, 200);
    // … then the firing one for the same fingerprint and start.
    let (status, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification("firing", vec![alert("f1", "firing", STARTS)], 0),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["incident"], Value::Null, "{answer}");
    assert_eq!(answer["stale"], 1, "{answer}");
    assert_eq!(
        app.count("incidents").await,
        0,
        "nothing opens, nobody is paged"
    );
    app.settle().await;
    assert!(slack.calls().is_empty(), "nothing is posted");
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics.contains(r#"klaxon_alerts_stale_total{source="alertmanager"} 1"#),
        "{metrics}"
    );
    // A new start of the same alert is not stale: it opens an incident.
    let (_, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification(
            "firing",
            vec![alert("f1", "firing", "2026-11-22T19:00:00Z")],
            0,
        ),
    )
    .await;
    assert_eq!(answer["opened"], true, "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_stale_firing_inside_an_open_incident_does_not_fire_again() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(2), 0),
    )
    .await;
    let mut partly = firing(2);
    partly[0] = alert("00000", "resolved", STARTS);
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", partly, 0),
    )
    .await;
    // A late notification from the other HA peer still lists alert 0 as firing
    // (same start), beside a new alert 2.
    let late = vec![
        alert("00000", "firing", STARTS),
        alert("00001", "firing", STARTS),
        alert("00002", "firing", STARTS),
    ];
    let (status, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification("firing", late, 0),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["stale"], 1, "{answer}");
    app.settle().await;
    let fired: Vec<String> = slack
        .delivered()
        .iter()
        .map(|c| c.text())
        .filter(|t| t.contains("alert fires") || t.contains("alerts fire"))
        .collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert!(fired[0].contains("1 alert fires"), "{}", fired[0]);
    assert!(fired[0].contains("Pod 00002 is not ready"), "{}", fired[0]);
    assert!(
        !fired[0].contains("Pod 00000"),
        "the stale alert is not announced: {}",
        fired[0]
    );
    let status: String = sqlx::query("SELECT status FROM alerts WHERE fingerprint = '00000'")
        .fetch_one(app.store().pool())
        .await
        .expect("row")
        .get("status");
    assert_eq!(status, "resolved");
    app.stop().await;
}

#[tokio::test]
async fn a_truncated_notification_never_resolves_an_incident_whose_left_out_alerts_may_fire() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    // max_alerts: 5 with 50 firing: 5 listed, 45 left out.
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(5), 45),
    )
    .await;
    let calls = slack
        .wait_for(WAIT, "the root", |c| !roots(c).is_empty())
        .await;
    let root = roots(&calls)[0].text();
    // Klaxon knows 5 fire; the 45 left out may or may not.
    assert!(root.contains("5 alerts firing"), "{root}");
    assert!(
        root.contains("up to 45 more left out by Alertmanager"),
        "{root}"
    );
    assert!(root.contains("max_alerts: 0"), "{root}");
    // The first 5 resolve; 45 still fire. Whatever the top-level status says.
    for status in ["resolved", "firing"] {
        let resolved: Vec<Value> = (0..5)
            .map(|i| alert(&format!("{i:05}"), "resolved", STARTS))
            .collect();
        let (code, answer) = post(
            &app,
            "/alerts/alertmanager",
            notification(status, resolved, 45),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(answer["resolved"], false, "{status}: {answer}");
    }
    app.settle().await;
    let r = klaxon::incident::IncidentRef::new(1).expect("ref");
    let incident = klaxon::store::incidents::get(app.store().pool(), r)
        .await
        .expect("query")
        .expect("incident");
    assert!(!incident.is_resolved(), "45 alerts may still fire");
    let said = slack
        .delivered()
        .iter()
        .map(|c| c.text())
        .find(|t| t.contains("5 alerts resolved"))
        .expect("the thread says what resolved");
    assert!(
        said.contains("left out 45 alerts")
            && said.contains("cannot see whether they still fire")
            && said.contains("`alerts.alertmanager_url` is not set")
            && said.contains("INC-1 stays open"),
        "{said}"
    );
    assert!(said.contains("max_alerts: 0"), "{said}");
    // The root says the same: nothing known to fire, some may.
    let root = slack
        .delivered()
        .iter()
        .rev()
        .find(|c| c.method == "chat.update")
        .map(|c| c.text())
        .expect("the root was updated");
    assert!(
        root.contains("Up to 45 alerts left out by Alertmanager"),
        "{root}"
    );
    assert!(!root.contains("all resolved"), "{root}");
    app.stop().await;
}

/// A group that fires once and resolves once, with no ladder.
async fn messages_of_one_group(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(2), 0),
    )
    .await;
    app.settle().await;
    let resolved = vec![
        alert("00000", "resolved", STARTS),
        alert("00001", "resolved", STARTS),
    ];
    let (_, answer) = post(
        &app,
        "/alerts/alertmanager",
        notification("resolved", resolved, 0),
    )
    .await;
    assert_eq!(answer["resolved"], true, "{answer}");
    app.outbox_drained().await;
    app.settle().await;
    let calls = slack.calls();
    let posts: Vec<String> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .map(|c| c.text())
        .collect();
    let updates = calls.iter().filter(|c| c.method == "chat.update").count();
    assert_eq!(
        posts.len(),
        2,
        "the root and the resolution summary: {posts:#?}"
    );
    assert!(posts[0].contains("2 alerts firing"), "{}", posts[0]);
    assert!(
        posts[1].contains("RESOLVED: INC-1")
            && posts[1].contains("*Alerts resolved:* KubePodNotReady ×2"),
        "{}",
        posts[1]
    );
    assert_eq!(updates, 1, "the root, once, when it resolved");
    app.stop().await;
}

#[tokio::test]
async fn a_group_that_fires_and_resolves_costs_two_posts_and_one_update_on_sqlite() {
    messages_of_one_group(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_group_that_fires_and_resolves_costs_two_posts_and_one_update_on_postgres() {
    messages_of_one_group(Backend::Postgres).await;
}

#[tokio::test]
async fn refusals_are_logged_counted_and_a_body_over_the_limit_is_413() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("[alerts]\nmax_body_bytes = 65536\n")).await;
    let big = notification("firing", firing(400), 0);
    assert!(big.len() > 65_536);
    let (status, _) = post(&app, "/alerts/alertmanager", big).await;
    assert_eq!(status, 413);
    let (status, _) = post(&app, "/alerts/alertmanager", "{not json".into()).await;
    assert_eq!(status, 400);
    let r = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .body(notification("firing", firing(1), 0))
        .send()
        .await
        .expect("deliver");
    assert_eq!(r.status(), 401);
    let (status, _) = post(&app, "/alerts/nagios", "{}".into()).await;
    assert_eq!(status, 404);
    let metrics = metrics_of(&app.base).await;
    for series in [
        r#"klaxon_alerts_rejected_total{source="alertmanager",reason="too_large"} 1"#,
        r#"klaxon_alerts_rejected_total{source="alertmanager",reason="unparseable"} 1"#,
        r#"klaxon_alerts_rejected_total{source="alertmanager",reason="unauthorized"} 1"#,
        r#"klaxon_alerts_rejected_total{source="unknown",reason="unknown_sender"} 1"#,
        r#"klaxon_alerts_rejected_total{source="grafana",reason="too_large"} 0"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    assert_eq!(app.count("incidents").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_real_alertmanager_group_of_1200_alerts_opens_one_incident_that_says_all_fire() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let am_port = free_port();
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let am =
        Alertmanager::start_on(am_port, &format!("{}/alerts/alertmanager", app.base), TOKEN).await;
    let alerts: Vec<Value> = (0..1_200).map(|i| pod_alert(i, false)).collect();
    am.post_alerts(&json!(alerts)).await;
    let calls = slack
        .wait_for(WAIT, "the thread", |c| {
            roots(c)
                .iter()
                .any(|r| r.text().contains("1,200 alerts firing"))
        })
        .await;
    assert_eq!(roots(&calls).len(), 1, "one incident for the group");
    assert_eq!(app.count("incidents").await, 1);
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM alerts").await,
        1_200
    );
    app.stop().await;
}

#[tokio::test]
async fn with_max_alerts_5_a_partly_resolved_group_stays_open_and_a_fully_resolved_one_resolves() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let am_port = free_port();
    let app = TestApp::start_with(
        &db,
        &slack,
        options(&format!(
            "[alerts]\nalertmanager_url = \"http://127.0.0.1:{am_port}\"\n"
        )),
    )
    .await;
    let am = Alertmanager::start_with(
        am_port,
        &format!("{}/alerts/alertmanager", app.base),
        TOKEN,
        5,
    )
    .await;
    let alerts: Vec<Value> = (0..50).map(|i| pod_alert(i, false)).collect();
    am.post_alerts(&json!(alerts)).await;
    // The notification lists 5 and leaves 45 out; Klaxon asks Alertmanager's
    // API how many fire and the root says so.
    let calls = slack
        .wait_for(WAIT, "the exact count in the root", |c| {
            !roots(c).is_empty() && root_now(c).contains("50 alerts firing")
        })
        .await;
    let first_root = roots(&calls)[0].text();
    assert!(
        first_root.contains("*5 alerts firing* · up to 45 more left out"),
        "{first_root}"
    );

    // The first five (Alertmanager lists alerts sorted by their labels) resolve.
    let first: Vec<Value> = (0..5).map(|i| pod_alert(i, true)).collect();
    am.post_alerts(&json!(first)).await;
    let calls = slack
        .wait_for(WAIT, "what still fires, in the thread and the root", |c| {
            c.iter()
                .any(|c| c.text().contains("45 of this group still fire"))
                && root_now(c).contains("45 alerts firing")
        })
        .await;
    assert!(
        !calls.iter().any(|c| c.text().contains("RESOLVED: INC-1")),
        "the incident stays open while 45 alerts fire"
    );
    assert!(
        root_now(&calls).contains("45 alerts firing"),
        "{}",
        root_now(&calls)
    );

    // Then every alert resolves: the incident resolves.
    let all: Vec<Value> = (0..50).map(|i| pod_alert(i, true)).collect();
    am.post_alerts(&json!(all)).await;
    let calls = slack
        .wait_for(WAIT, "the resolution", |c| {
            c.iter().any(|c| c.text().contains("RESOLVED: INC-1"))
        })
        .await;
    app.outbox_drained().await;
    let calls = slack
        .delivered()
        .into_iter()
        .chain(calls)
        .collect::<Vec<_>>();
    let root = root_now(&slack.delivered());
    assert!(root.contains("50 alerts, all resolved"), "{root}");
    let summary = calls
        .iter()
        .map(|c| c.text())
        .find(|t| t.contains("RESOLVED: INC-1") && t.contains("*Timeline*"))
        .expect("the summary");
    assert!(
        summary.contains("Alertmanager listed only some of them")
            && summary.contains("up to 50 alerts at once"),
        "{summary}"
    );
    assert!(
        !summary.contains("Alerts still firing"),
        "nothing fires any more: {summary}"
    );
    app.stop().await;
}

/// A pod alert as Prometheus posts it to Alertmanager; `resolved` ends it now.
fn pod_alert(i: usize, resolved: bool) -> Value {
    let mut a = json!({
        "labels": {"alertname": "KubePodNotReady", "service": "shop", "instance": format!("pod-{i:04}"), "severity": "critical"},
        "annotations": {"summary": format!("pod-{i:04} is not ready")},
        "generatorURL": "http://prometheus.example.com/graph?g0.expr=kube_pod_status_ready",
    });
    if resolved {
        a["endsAt"] = json!(jiff::Timestamp::now().to_string());
    }
    a
}

/// Any parseable notification with up to 10,000 alerts: 2xx, and every alert kept.
fn every_parseable_notification_is_accepted_and_kept(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (db, slack, app) = rt.block_on(async {
        let db = TestDb::of(backend).await;
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        let app = TestApp::start_with(&db, &slack, options("")).await;
        (db, slack, app)
    });
    let sizes = prop_oneof![Just(0usize), Just(1), Just(10_000), 2usize..3_000];
    let strategy = (
        sizes,
        any::<u64>(),
        "[ -~\u{80}-\u{3000}]{0,40}",
        0usize..20_000,
        any::<bool>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let groups = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&strategy, |(n, seed, text, long, grafana)| {
            let group = groups.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let alerts: Vec<Value> = (0..n)
                .map(|i| {
                    let status = if (seed >> (i % 64)) & 1 == 0 {
                        "firing"
                    } else {
                        "resolved"
                    };
                    let mut a = alert(&format!("g{group}-{i}"), status, STARTS);
                    a["labels"]["note"] = json!(text.clone());
                    if i == 0 {
                        a["annotations"]["description"] = json!("x".repeat(long));
                    }
                    a
                })
                .collect();
            let firing = alerts.iter().filter(|a| a["status"] == "firing").count();
            let mut body: Value = serde_json::from_str(&notification(
                if firing > 0 { "firing" } else { "resolved" },
                alerts,
                0,
            ))
            .expect("json");
            body["groupKey"] = json!(format!("{{}}:{{prop=\"{group}\"}}"));
            let (path, body) = if grafana {
                body["version"] = json!("1");
                ("/alerts/grafana", body.to_string())
            } else {
                ("/alerts/alertmanager", body.to_string())
            };
            let (status, answer) = rt.block_on(post(&app, path, body));
            prop_assert_eq!(status, 200, "{} alerts: {}", n, answer);
            let (held, remembered) = rt.block_on(async {
                let held =
                    sqlx::query("SELECT COUNT(*) AS n FROM alerts WHERE fingerprint LIKE $1")
                        .bind(format!("g{group}-%"))
                        .fetch_one(app.store().pool())
                        .await
                        .expect("count")
                        .get::<i64, _>("n");
                let remembered = sqlx::query(
                    "SELECT COUNT(*) AS n FROM resolved_alerts WHERE fingerprint LIKE $1",
                )
                .bind(format!("g{group}-%"))
                .fetch_one(app.store().pool())
                .await
                .expect("count")
                .get::<i64, _>("n");
                (held, remembered)
            });
            if firing > 0 {
                prop_assert_eq!(held as usize, n, "every alert is stored under the incident");
            } else {
                prop_assert_eq!(remembered as usize, n, "every resolved alert is remembered");
            }
            Ok(())
        })
        .expect("every parseable notification is accepted and kept");
    rt.block_on(async {
        drop(slack);
        app.stop().await;
        drop(db);
    });
}

#[test]
fn any_parseable_notification_of_up_to_10000_alerts_gets_2xx_and_every_alert_is_kept_on_sqlite() {
    every_parseable_notification_is_accepted_and_kept(Backend::Sqlite);
}

#[test]
fn any_parseable_notification_of_up_to_10000_alerts_gets_2xx_and_every_alert_is_kept_on_postgres() {
    every_parseable_notification_is_accepted_and_kept(Backend::Postgres);
}

/// A `checkout` group alert with its own severity label.
fn checkout_alert(instance: &str, severity: &str) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "instance": instance, "severity": severity},
        "annotations": {"summary": "Checkout returns 5xx"},
        "startsAt": STARTS, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": format!("fp-{instance}"),
    })
}

/// A notification of the `HighErrorRate/checkout` group; `commonLabels` as
/// Alertmanager computes them (no `severity` when the alerts disagree).
fn checkout_group(alerts: Vec<Value>) -> String {
    let severities: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter_map(|a| a["labels"]["severity"].as_str())
        .collect();
    let mut common = json!({"alertname": "HighErrorRate", "service": "checkout"});
    if severities.len() == 1 {
        common["severity"] = json!(severities.iter().next());
    }
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\", service=\"checkout\"}",
        "truncatedAlerts": 0, "status": "firing", "receiver": "klaxon",
        "groupLabels": {"alertname": "HighErrorRate", "service": "checkout"},
        "commonLabels": common, "commonAnnotations": {"summary": "Checkout returns 5xx"},
        "externalURL": "http://alertmanager:9093", "alerts": alerts,
    })
    .to_string()
}

#[tokio::test]
async fn a_group_mixing_severities_takes_the_highest_and_a_higher_alert_joining_raises_it_and_pages()
 {
    let ladder = r#"
[[escalation.ladders]]
name = "default"
levels = [ { name = "on-call engineer", notify = ["user:U0ALICE"], wait = "1h" } ]

[escalation.severities]
P2 = "none"
"#;
    // Critical and page in one group: Alertmanager's commonLabels has no severity.
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options(ladder)).await;
    post(
        &app,
        "/alerts/alertmanager",
        checkout_group(vec![
            checkout_alert("api-1:9090", "critical"),
            checkout_alert("api-2:9090", "warning"),
        ]),
    )
    .await;
    let calls = slack
        .wait_for(WAIT, "the root and the page", |c| {
            !roots(c).is_empty()
                && c.iter()
                    .any(|c| c.text().contains("*Paging on-call engineer*"))
        })
        .await;
    assert!(
        roots(&calls)[0].text().contains("[P0]"),
        "{}",
        roots(&calls)[0].text()
    );
    app.stop().await;

    // A warning group pages nobody (P2 = "none") until a critical alert joins.
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options(ladder)).await;
    post(
        &app,
        "/alerts/alertmanager",
        checkout_group(vec![checkout_alert("api-1:9090", "warning")]),
    )
    .await;
    app.settle().await;
    assert!(roots(&slack.delivered())[0].text().contains("[P2]"));
    assert!(
        !slack
            .delivered()
            .iter()
            .any(|c| c.text().contains("*Paging"))
    );
    post(
        &app,
        "/alerts/alertmanager",
        checkout_group(vec![
            checkout_alert("api-1:9090", "warning"),
            checkout_alert("api-2:9090", "critical"),
        ]),
    )
    .await;
    slack.wait_for_text("*Paging on-call engineer*").await;
    let raised = slack.wait_for_text("raised from").await;
    assert!(
        raised.contains("INC-1 raised from *P2* to *P0*"),
        "{raised}"
    );
    slack
        .wait_for(WAIT, "the root at P0", |c| root_now(c).contains("[P0]"))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_url_with_a_trailing_slash_works_and_a_misspelt_one_is_refused_loudly() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let (code, answer) = post(
        &app,
        "/alerts/alertmanager/",
        notification("firing", firing(1), 0),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["incident"], "INC-1");
    for path in [
        "/alerts",
        "/alert/alertmanager",
        "/alerts//alertmanager",
        "/alerts/",
    ] {
        let (code, answer) = post(&app, path, notification("firing", firing(2), 0)).await;
        assert_eq!(code, 404, "{path}");
        assert!(
            answer.to_string().contains("/alerts/alertmanager"),
            "{path}: the refusal names the right URL: {answer}"
        );
    }
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics
            .contains(r#"klaxon_alerts_rejected_total{source="unknown",reason="unknown_path"} 4"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_change_hidden_behind_max_alerts_still_reaches_the_thread() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(5), 15),
    )
    .await;
    app.settle().await;
    // Ten more fire; the listing (the first five by labels) does not change.
    post(
        &app,
        "/alerts/alertmanager",
        notification("firing", firing(5), 25),
    )
    .await;
    let reply = slack.wait_for_text("leaves out 25 more").await;
    assert!(
        reply.contains("Alertmanager now lists 5 alerts firing"),
        "{reply}"
    );
    app.settle().await;
    let root = root_now(&slack.delivered());
    assert!(root.contains("up to 25 more left out"), "{root}");
    app.stop().await;
}

#[tokio::test]
async fn a_group_that_keeps_firing_is_never_forgotten_by_pruning_and_opens_nothing_new() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let body = notification("firing", firing(1), 0);
    post(&app, "/alerts/alertmanager", body.clone()).await;
    app.settle().await;
    // Resolved by hand while it still fires; Alertmanager repeats the group
    // every 4 hours (its repeat_interval), unchanged.
    let answer = app
        .command(ALICE, "resolve INC-1 known flapping pod, tracked in OPS-9")
        .await;
    assert!(answer.contains("resolved"), "{answer}");
    for _ in 0..(12 * 6) {
        app.advance(Duration::from_secs(4 * 3600)).await;
        let (code, answer) = post(&app, "/alerts/alertmanager", body.clone()).await;
        assert_eq!(code, 200);
        assert_eq!(answer["status"], "duplicate", "{answer}");
    }
    assert_eq!(
        app.count("incidents").await,
        1,
        "12 days on, still one incident"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_storm_roots_count_follows_the_groups_folded_in_and_its_digest_counts_them_once() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        options("[[alerts.routes]]\nname = \"all\"\nmax_new_incidents_per_minute = 1\n"),
    )
    .await;
    for n in 0..4 {
        let body = json!({
            "version": "4", "groupKey": format!("{{}}:{{alertname=\"Storm{n}\"}}"),
            "truncatedAlerts": 0, "status": "firing", "receiver": "klaxon",
            "groupLabels": {"alertname": format!("Storm{n}")},
            "commonLabels": {"alertname": format!("Storm{n}"), "severity": "warning"},
            "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": [{"status": "firing", "labels": {"alertname": format!("Storm{n}"), "severity": "warning"},
                        "annotations": {}, "startsAt": STARTS, "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": format!("storm-{n}")}],
        })
        .to_string();
        post(&app, "/alerts/alertmanager", body).await;
    }
    // Group 0 opens its own incident; groups 1–3 fold into the storm.
    app.advance(Duration::from_secs(5)).await;
    let digest = slack.wait_for_text("folded into this storm").await;
    assert!(
        digest.contains("3 alert groups folded into this storm* (3 in all)"),
        "{digest}"
    );
    app.settle().await;
    let storm_root = slack
        .delivered()
        .iter()
        .rev()
        .find(|c| c.method == "chat.update" && c.text().contains("Alert storm"))
        .map(|c| c.text())
        .expect("the storm's root was updated");
    assert!(storm_root.contains("3 alerts firing"), "{storm_root}");
    app.stop().await;
}

#[test]
fn check_config_refuses_alerts_with_no_channel_to_open_incidents_in() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .arg("check-config")
        .env_clear()
        .env("KLAXON_ALERT_TOKEN", "an-alert-token-long-enough")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("alerts need a channel") && err.contains("KLAXON_INCIDENT_CHANNEL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_late_resolution_of_an_alert_that_fired_again_since_resolves_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    const LATER: &str = "2026-11-22T17:30:00Z";
    let both = |a: (&str, &str), b: (&str, &str)| {
        notification(
            if a.0 == "resolved" && b.0 == "resolved" {
                "resolved"
            } else {
                "firing"
            },
            vec![alert("0000a", a.0, a.1), alert("0000b", b.0, b.1)],
            0,
        )
    };
    post(
        &app,
        "/alerts/alertmanager",
        both(("firing", STARTS), ("firing", STARTS)),
    )
    .await;
    // A fired again (a new start) ...
    post(
        &app,
        "/alerts/alertmanager",
        both(("firing", LATER), ("firing", STARTS)),
    )
    .await;
    // ... and a notification from before that, delivered late, says both resolved.
    let (code, answer) = post(
        &app,
        "/alerts/alertmanager",
        both(("resolved", STARTS), ("resolved", STARTS)),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(answer["resolved"], false, "A still fires: {answer}");
    app.settle().await;
    let incident = klaxon::store::incidents::get(
        app.store().pool(),
        klaxon::incident::IncidentRef::new(1).expect("ref"),
    )
    .await
    .expect("query")
    .expect("incident");
    assert!(!incident.is_resolved());
    let root = root_now(&slack.delivered());
    assert!(root.contains("1 alert firing"), "{root}");
    app.stop().await;
}
