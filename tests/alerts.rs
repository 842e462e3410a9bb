//! Alerts open incidents: webhooks, grouping, idempotency, storms, auto-resolve,
//! silences — with a real Alertmanager where one is involved.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::alertmanager::Alertmanager;
use crate::support::*;

const TOKEN: &str = "alert-t0ken-for-tests";
const WAIT: Duration = Duration::from_secs(30);

fn alert_options(extra: &str) -> Options {
    Options {
        extra_toml: format!("alert_token = \"{TOKEN}\"\n{extra}"),
        ..Options::default()
    }
}

/// An Alertmanager webhook payload (version 4) for one group.
fn am_payload(group: &str, alerts: &[(&str, &str)]) -> String {
    let status = if alerts.iter().any(|(_, s)| *s == "firing") {
        "firing"
    } else {
        "resolved"
    };
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(fp, s)| {
            json!({
                "status": s,
                "labels": {"alertname": group, "instance": format!("{fp}:9100"), "severity": "critical"},
                "annotations": {"summary": format!("{group} is failing"), "description": "it broke"},
                "startsAt": "2026-11-22T17:04:09.123456789Z",
                "endsAt": if *s == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-22T17:34:09Z" },
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
                "fingerprint": fp,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "klaxon",
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "severity": "critical"},
        "commonAnnotations": {"summary": format!("{group} is failing")},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
    .to_string()
}

async fn deliver(app: &TestApp, path: &str, body: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

fn count_text(calls: &[fake_slack::Call], needle: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.text().contains(needle))
        .count()
}

async fn fifty_groups(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = std::sync::Arc::new(TestApp::start_with(&db, &slack, alert_options("")).await);
    const N: usize = 50;
    // Every notification delivered three times, concurrently (HA peers and retries).
    let mut tasks = Vec::new();
    for n in 0..N {
        for _ in 0..3 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let body = am_payload(
                    &format!("Group{n}"),
                    &[("aaaa", "firing"), ("bbbb", "firing")],
                );
                let r = deliver(&app, "/alerts/alertmanager", &body, Some(TOKEN)).await;
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
            }));
        }
    }
    for t in tasks {
        t.await.expect("delivery");
    }
    let calls = slack
        .wait_for(WAIT, "50 threads", |c| roots(c).len() >= N)
        .await;
    assert_eq!(roots(&calls).len(), N, "exactly one thread per group");
    assert!(
        roots(&calls)
            .iter()
            .all(|c| c.text().contains("2 alerts firing")),
        "each root carries its group's alerts"
    );
    assert_eq!(app.count("incidents").await, N as i64);

    for n in 0..N {
        for _ in 0..3 {
            let body = am_payload(
                &format!("Group{n}"),
                &[("aaaa", "resolved"), ("bbbb", "resolved")],
            );
            let r = deliver(&app, "/alerts/alertmanager", &body, Some(TOKEN)).await;
            assert_eq!(r.status(), 200);
        }
    }
    let calls = slack
        .wait_for(WAIT, "50 resolutions", |c| {
            count_text(c, "RESOLVED: INC-") >= N
        })
        .await;
    app.outbox_drained().await;
    let calls = if calls.len() < slack.delivered().len() {
        slack.delivered()
    } else {
        calls
    };
    assert_eq!(roots(&calls).len(), N, "no new thread on resolution");
    // A group that fires once and resolves once: its root, then one reply (the
    // resolution summary, naming what resolved) and one update of the root.
    assert_eq!(count_text(&calls, "RESOLVED: INC-"), N);
    assert_eq!(count_text(&calls, "*Alerts resolved:* Group"), N);
    let posts = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .count();
    let updates = calls.iter().filter(|c| c.method == "chat.update").count();
    assert_eq!(
        (posts, updates),
        (2 * N, N),
        "2 posts and 1 update per group"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.method == "chat.update" && c.text().contains("RESOLVED"))
            .count(),
        N
    );
    let list = app.command(ALICE, "list").await;
    assert_eq!(list, "No open incidents. 🎉");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("klaxon_alert_notifications_deduplicated_total 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"klaxon_incidents_opened_total{source="alertmanager"} 50"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn fifty_alert_groups_delivered_three_times_make_fifty_threads_and_fifty_resolutions_on_sqlite()
 {
    fifty_groups(Backend::Sqlite).await;
}

#[tokio::test]
async fn fifty_alert_groups_delivered_three_times_make_fifty_threads_and_fifty_resolutions_on_postgres()
 {
    fifty_groups(Backend::Postgres).await;
}

#[tokio::test]
async fn new_and_resolved_alerts_of_a_group_reply_in_its_thread_and_a_refire_opens_a_linked_incident()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, alert_options("")).await;
    let send = |body: String| {
        let app = &app;
        async move {
            let r = deliver(app, "/alerts/alertmanager", &body, Some(TOKEN)).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let first = send(am_payload("DiskFull", &[("aaaa", "firing")])).await;
    assert_eq!(first["incident"], "INC-1");
    assert_eq!(first["opened"], true);
    send(am_payload(
        "DiskFull",
        &[("aaaa", "firing"), ("bbbb", "firing")],
    ))
    .await;
    send(am_payload(
        "DiskFull",
        &[("aaaa", "resolved"), ("bbbb", "firing")],
    ))
    .await;
    let done = send(am_payload(
        "DiskFull",
        &[("aaaa", "resolved"), ("bbbb", "resolved")],
    ))
    .await;
    assert_eq!(done["resolved"], true);

    let calls = slack
        .wait_for(WAIT, "the resolution", |c| {
            count_text(c, "RESOLVED: INC-1") >= 1
        })
        .await;
    let root = roots(&calls)[0].clone();
    let root_ts = root.ts.clone().expect("ts");
    // The root carries the first alert: what, since when, its links.
    let first_root = root.text();
    assert!(first_root.contains("1 alert firing"), "{first_root}");
    assert!(first_root.contains("DiskFull is failing"), "{first_root}");
    assert!(
        first_root.contains("since 2026-11-22 17:04 UTC"),
        "{first_root}"
    );
    assert!(
        first_root.contains("<http://prometheus:9090/graph?g0.expr=up|source (prometheus)>"),
        "{first_root}"
    );
    let thread: Vec<String> = calls
        .iter()
        .filter(|c| c.str("thread_ts") == Some(root_ts.as_str()))
        .map(|c| c.text())
        .collect();
    assert_eq!(thread.len(), 3, "one reply per change: {thread:#?}");
    assert!(
        thread[0].contains("1 alert fires") && thread[0].contains("2 alerts firing now"),
        "the new alert bbbb: {thread:#?}"
    );
    assert!(
        thread[0].contains("`instance=bbbb:9100 severity=critical`"),
        "{}",
        thread[0]
    );
    assert!(
        thread[1].contains("1 alert resolved") && thread[1].contains("1 alert still fires"),
        "{thread:#?}"
    );
    assert!(
        thread[2].contains("*Resolution:* every alert resolved (Alertmanager)")
            && thread[2].contains("*Alerts resolved:* DiskFull ×2"),
        "{}",
        thread[2]
    );

    // The same group fires again later: a new incident that names the old one.
    let mut refire: Value =
        serde_json::from_str(&am_payload("DiskFull", &[("aaaa", "firing")])).expect("json");
    refire["alerts"][0]["startsAt"] = json!("2026-11-22T19:00:00Z");
    let again = send(refire.to_string()).await;
    assert_eq!(again["incident"], "INC-2");
    let calls = slack
        .wait_for(WAIT, "the second thread", |c| roots(c).len() >= 2)
        .await;
    assert!(
        roots(&calls)[1].text().contains("fired before as INC-1"),
        "{}",
        roots(&calls)[1].text()
    );
    app.stop().await;
}

#[tokio::test]
async fn alert_webhooks_refuse_missing_tokens_and_bad_payloads_and_store_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, alert_options("")).await;
    let good = am_payload("Down", &[("aaaa", "firing")]);
    assert_eq!(
        deliver(&app, "/alerts/alertmanager", &good, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        deliver(&app, "/alerts/alertmanager", &good, Some("wrong"))
            .await
            .status(),
        401
    );
    assert_eq!(
        deliver(&app, "/alerts/grafana", &good, Some("alert-t0ken-for-test"))
            .await
            .status(),
        401
    );
    for (body, reason) in [
        ("{not json".to_string(), "not JSON"),
        (
            good.replace("\"version\":\"4\"", "\"version\":\"3\""),
            "version",
        ),
        (good.replace("\"groupKey\"", "\"groupKee\""), "groupKey"),
        (
            good.replace("2026-11-22T17:04:09.123456789Z", "yesterday"),
            "startsAt",
        ),
    ] {
        let r = deliver(&app, "/alerts/alertmanager", &body, Some(TOKEN)).await;
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.expect("body");
        assert!(text.contains(reason), "{text}");
        assert_eq!(text.lines().count(), 1);
    }
    // Above the default limit (32 MiB, far above what Alertmanager sends for
    // 10,000 alerts): 413.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(33 * 1024 * 1024));
    assert_eq!(
        deliver(&app, "/alerts/alertmanager", &huge, Some(TOKEN))
            .await
            .status(),
        413
    );
    app.settle().await;
    assert_eq!(app.count("incidents").await, 0);
    assert!(slack.calls().is_empty());

    // The database stops answering: 503, so Alertmanager retries.
    app.store().pool().close().await;
    let r = deliver(&app, "/alerts/alertmanager", &good, Some(TOKEN)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
}

#[tokio::test]
async fn a_grafana_notification_opens_an_incident_with_its_dashboard_links() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, alert_options("")).await;
    let body = json!({
        "receiver": "klaxon", "status": "firing", "orgId": 1,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": "api", "grafana_folder": "prod"},
            "annotations": {"summary": "API 5xx above 5%"},
            "startsAt": "2026-11-22T17:04:09Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://grafana:3000/alerting/grafana/abc/view",
            "fingerprint": "f3a1c0ffee",
            "silenceURL": "http://grafana:3000/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "http://grafana:3000/d/klaxon", "panelURL": "http://grafana:3000/d/klaxon?viewPanel=2",
            "values": {"B": 0.07, "C": 1}
        }],
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "api"},
        "commonAnnotations": {"summary": "API 5xx above 5%"},
        "externalURL": "http://grafana:3000/", "version": "1",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "title": "[FIRING:1] HighErrorRate api", "state": "alerting", "message": "API 5xx above 5%"
    })
    .to_string();
    let r = deliver(&app, "/alerts/grafana", &body, Some(TOKEN)).await;
    assert_eq!(r.status(), 200);
    let calls = slack
        .wait_for(WAIT, "the thread", |c| !roots(c).is_empty())
        .await;
    assert!(roots(&calls)[0].text().contains("API 5xx above 5%"));
    assert!(roots(&calls)[0].text().contains("*Source:* Grafana"));
    let details = roots(&calls)[0].text();
    assert!(details.contains("1 alert firing"), "{details}");
    assert!(
        details.contains("<http://grafana:3000/d/klaxon|dashboard (grafana)>"),
        "{details}"
    );
    assert!(details.contains("|panel (grafana)>"), "{details}");
    app.stop().await;
}

#[tokio::test]
async fn a_storm_of_three_hundred_groups_stays_within_the_cap_and_loses_none() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let routes = r#"
[[alerts.routes]]
name = "everything"
match = []
max_new_incidents_per_minute = 10
"#;
    let app = TestApp::start_with(&db, &slack, alert_options(routes)).await;
    const N: usize = 300;
    for n in 0..N {
        let r = deliver(
            &app,
            "/alerts/alertmanager",
            &am_payload(&format!("Storm{n:03}"), &[("aaaa", "firing")]),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let calls = slack
        .wait_for(WAIT, "the storm digests", |c| {
            let listed: usize = c
                .iter()
                .filter(|c| c.text().contains("folded into this storm"))
                .map(|c| {
                    c.text()
                        .lines()
                        .filter(|l| l.starts_with("• Storm"))
                        .count()
                })
                .sum();
            listed >= N - 10
        })
        .await;
    let threads = roots(&calls);
    assert_eq!(threads.len(), 11, "ten incidents and one storm thread");
    assert!(
        threads[10]
            .text()
            .contains("Alert storm on route everything"),
        "{}",
        threads[10].text()
    );
    let mut listed: Vec<String> = calls
        .iter()
        .filter(|c| c.text().contains("folded into this storm"))
        .flat_map(|c| {
            c.text()
                .lines()
                .filter(|l| l.starts_with("• Storm"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), N - 10, "every folded group is listed once");
    let groups: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alert_groups")
        .fetch_one(app.store().pool())
        .await
        .expect("count")
        .get("n");
    assert_eq!(groups, N as i64, "no group lost");
    app.stop().await;
}

/// Klaxon on SQLite with a real Alertmanager that notifies it, and whose API
/// it uses for silences; `alerts` is more of the `[alerts]` table.
async fn with_real_alertmanager(alerts: &str) -> (TestDb, FakeSlack, TestApp, Alertmanager) {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let am_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let app = TestApp::start_with(
        &db,
        &slack,
        alert_options(&format!(
            "[alerts]\nalertmanager_url = \"http://127.0.0.1:{am_port}\"\n{alerts}"
        )),
    )
    .await;
    let am =
        Alertmanager::start_on(am_port, &format!("{}/alerts/alertmanager", app.base), TOKEN).await;
    (db, slack, app, am)
}

#[tokio::test]
async fn a_real_alertmanager_opens_threads_resolves_them_and_honours_a_silence_from_slack() {
    let (_db, slack, app, am) = with_real_alertmanager("silencers = [\"user:U0ALICE\"]\n").await;

    am.post_alerts(&json!([
        Alertmanager::alert("HighErrorRate", "checkout", false),
        Alertmanager::alert("HighLatency", "search", false),
    ]))
    .await;
    let calls = slack
        .wait_for(WAIT, "two threads", |c| roots(c).len() >= 2)
        .await;
    let titles: Vec<String> = roots(&calls).iter().map(|c| c.text()).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.contains("HighErrorRate on checkout")),
        "{titles:#?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("HighLatency on search")),
        "{titles:#?}"
    );

    // Resolve one at the source: its incident resolves with a summary.
    am.post_alerts(&json!([Alertmanager::alert("HighLatency", "search", true)]))
        .await;
    let calls = slack
        .wait_for(WAIT, "the resolution", |c| {
            count_text(c, "RESOLVED: INC-") >= 1
        })
        .await;
    let resolved = calls
        .iter()
        .find(|c| c.text().contains("RESOLVED: INC-"))
        .expect("summary")
        .text();
    assert!(resolved.contains("HighLatency on search"), "{resolved}");

    // Silence the other one from Slack.
    let still_open = if titles[0].contains("HighErrorRate") {
        "INC-1"
    } else {
        "INC-2"
    };
    // Only its ladder's people and `alerts.silencers` may silence; owning
    // the incident (anyone can, with an ack) is not enough.
    app.command(BOB, &format!("ack {still_open}")).await;
    let answer = app.command(BOB, &format!("silence {still_open} 2h")).await;
    assert!(answer.contains("may silence its alerts"), "{answer}");
    let answer = app
        .command(ALICE, &format!("silence {still_open} 2h"))
        .await;
    assert!(answer.contains("Asking Alertmanager"), "{answer}");
    let calls = slack
        .wait_for(WAIT, "the silence notice", |c| {
            count_text(c, "silenced 1 alert group of") >= 1
        })
        .await;
    assert!(
        calls
            .iter()
            .any(|c| c.text().contains("<@U0ALICE> silenced"))
    );
    let silences = am.get("/api/v2/silences").await;
    let active: Vec<&Value> = silences
        .as_array()
        .expect("array")
        .iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{silences}");
    assert_eq!(active[0]["createdBy"], "slack:U0ALICE");
    assert!(
        active[0]["comment"]
            .as_str()
            .unwrap_or_default()
            .contains(still_open)
    );
    let matchers: Vec<(String, String)> = active[0]["matchers"]
        .as_array()
        .expect("matchers")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().into(),
                m["value"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert!(
        matchers.contains(&("alertname".into(), "HighErrorRate".into())),
        "{matchers:?}"
    );
    assert!(
        matchers.contains(&("service".into(), "checkout".into())),
        "{matchers:?}"
    );
    // Alertmanager now suppresses the alert.
    let alerts = am
        .get("/api/v2/alerts?filter=alertname%3D%22HighErrorRate%22")
        .await;
    assert_eq!(alerts[0]["status"]["state"], "suppressed", "{alerts}");

    // Resolving the incident expires the silence it made.
    app.command(ALICE, &format!("resolve {still_open} fixed the config"))
        .await;
    let mut expired = false;
    for _ in 0..100 {
        let silences = am.get("/api/v2/silences").await;
        if silences
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s["status"]["state"] == "expired"))
        {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(expired, "the silence is expired when the incident resolves");
    slack
        .wait_for(WAIT, "the expiry notice", |c| {
            count_text(c, "silence in Alertmanager is expired") >= 1
        })
        .await;
    app.stop().await;
}

/// The reference of the `nth` incident whose root mentions `needle`.
async fn wait_for_incident(slack: &FakeSlack, needle: &str, nth: usize) -> String {
    let is_root = |c: &fake_slack::Call| {
        c.method == "chat.postMessage"
            && c.str("thread_ts").is_none()
            && c.text().contains("INCIDENT")
            && c.text().contains(needle)
    };
    let calls = slack
        .wait_for(WAIT, needle, |c| {
            c.iter().filter(|c| is_root(c)).count() >= nth
        })
        .await;
    let root = calls
        .iter()
        .filter(|c| is_root(c))
        .nth(nth - 1)
        .expect("root")
        .text();
    root.split("INCIDENT ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .expect("the incident's ref")
        .to_string()
}

/// A notification sent straight to Klaxon (as anyone holding the alert token
/// could), for a group labelled only by `labels`, with one alert.
fn crafted(group_labels: Value, alert_labels: Value) -> String {
    json!({
        "version": "4", "groupKey": format!("{{}}:{group_labels}"), "truncatedAlerts": 0,
        "status": "firing", "receiver": "klaxon",
        "groupLabels": group_labels, "commonLabels": alert_labels.clone(),
        "commonAnnotations": {"summary": "disk almost full"}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": alert_labels,
                    "annotations": {"summary": "disk almost full"},
                    "startsAt": "2026-11-30T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph", "fingerprint": "c0ffee0000000001"}]
    })
    .to_string()
}

#[tokio::test]
async fn a_silence_from_slack_never_mutes_alerts_outside_its_incident() {
    let (_db, slack, app, am) = with_real_alertmanager("silencers = [\"user:U0ALICE\"]\n").await;
    // Three real critical alerts, in Alertmanager.
    am.post_alerts(&json!([
        Alertmanager::alert("PaymentsDown", "payments", false),
        Alertmanager::alert("CheckoutErrors", "checkout", false),
        Alertmanager::alert("DatabaseDown", "db", false),
    ]))
    .await;
    wait_until(WAIT, "Alertmanager to hold the three alerts", || async {
        am.get("/api/v2/alerts")
            .await
            .as_array()
            .map_or(0, |a| a.len())
            == 3
    })
    .await;
    let real_inc = wait_for_incident(&slack, "PaymentsDown on payments", 1).await;
    wait_for_incident(&slack, "DatabaseDown on db", 1).await;
    wait_for_incident(&slack, "CheckoutErrors on checkout", 1).await;

    // A notification whose group is labelled only by severity, with an alert
    // that carries nothing else either: a silence on it would mute every
    // critical alert.
    let post = |body: String| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/alerts/alertmanager", app.base))
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
        }
    };
    assert_eq!(
        post(crafted(
            json!({"severity": "critical"}),
            json!({"severity": "critical"})
        ))
        .await,
        200
    );
    let inc = wait_for_incident(&slack, "disk almost full", 1).await;
    // Someone in the channel who is not among the silencers is refused.
    let answer = app.command(BOB, &format!("silence {inc} 7d")).await;
    assert!(answer.contains("may silence its alerts"), "{answer}");
    let answer = app.command(ALICE, &format!("silence {inc} 7d")).await;
    assert!(answer.contains("Asking Alertmanager"), "{answer}");
    let refusal = slack.wait_for_text("Did not silence").await;
    assert!(
        refusal.contains("no `alertname`"),
        "a silence without an alert name is never made: {refusal}"
    );

    // A crafted alert named like a real one: its silence would mute the real
    // alert, which this incident does not hold.
    let mut named = serde_json::from_str::<Value>(&crafted(
        json!({"alertname": "PaymentsDown"}),
        json!({"alertname": "PaymentsDown", "severity": "critical"}),
    ))
    .expect("json");
    named["commonAnnotations"]["summary"] = json!("crafted payments alert");
    assert_eq!(post(named.to_string()).await, 200);
    let named_inc = wait_for_incident(&slack, "crafted payments alert", 1).await;
    app.command(ALICE, &format!("silence {named_inc} 7d")).await;
    let refusal = slack.wait_for_text("would also mute 1 alert").await;
    assert!(
        refusal.contains("PaymentsDown"),
        "the thread says why: {refusal}"
    );
    app.command(ALICE, &format!("resolve {named_inc} crafted"))
        .await;
    let silences = am.get("/api/v2/silences").await;
    assert_eq!(
        silences.as_array().map_or(0, |a| a.len()),
        0,
        "no silence was made: {silences}"
    );

    // An alert with a name of its own, but one Alertmanager never had: a
    // silence for it would only mute alerts that fire later.
    assert_eq!(
        post(crafted(
            json!({"severity": "critical", "team": "storage"}),
            json!({"alertname": "DiskAlmostFull", "severity": "critical", "team": "storage"})
        ))
        .await,
        200
    );
    let inc2 = wait_for_incident(&slack, "DiskAlmostFull", 1).await;
    app.command(ALICE, &format!("silence {inc2} 7d")).await;
    let refusal = slack.wait_for_text("does not hold 1 of the 1 alert").await;
    assert!(refusal.contains(&inc2), "{refusal}");

    // A forged copy of a real alert (same labels, and its fingerprint, which
    // anyone can compute from them): its start is not Alertmanager's.
    let real = am
        .get("/api/v2/alerts?filter=alertname%3D%22PaymentsDown%22")
        .await;
    let fingerprint = real[0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    let labels = real[0]["labels"].clone();
    let mut forged = serde_json::from_str::<Value>(&crafted(
        json!({"alertname": "PaymentsDown", "severity": "critical"}),
        labels.clone(),
    ))
    .expect("json");
    forged["alerts"][0]["fingerprint"] = json!(fingerprint);
    forged["commonAnnotations"]["summary"] = json!("forged payments copy");
    assert_eq!(post(forged.to_string()).await, 200);
    let forged_inc = wait_for_incident(&slack, "forged payments copy", 1).await;
    app.command(ALICE, &format!("silence {forged_inc} 7d"))
        .await;
    let refusal = slack.wait_for_text("did not come from Alertmanager").await;
    assert!(refusal.contains(&forged_inc), "{refusal}");
    app.command(ALICE, &format!("resolve {forged_inc} forged"))
        .await;

    // The same copy with the exact start too (whoever can read Alertmanager's
    // API): the real incident holds the alert as well, so still no silence.
    let mut exact = forged.clone();
    // Grouped by a label the real alert has.
    exact["groupKey"] = json!("{}:{service=\"payments\"}");
    exact["groupLabels"] = json!({"service": "payments"});
    exact["alerts"][0]["startsAt"] = real[0]["startsAt"].clone();
    exact["commonAnnotations"]["summary"] = json!("exact payments copy");
    assert_eq!(post(exact.to_string()).await, 200);
    let exact_inc = wait_for_incident(&slack, "exact payments copy", 1).await;
    app.command(ALICE, &format!("silence {exact_inc} 7d")).await;
    let refusal = slack.wait_for_text("also holds these alerts").await;
    assert!(refusal.contains(&real_inc), "{refusal}");
    assert_eq!(
        am.get("/api/v2/silences")
            .await
            .as_array()
            .map_or(0, |a| a.len()),
        0,
        "still no silence"
    );

    // A forged alert slipped into the real incident's own group (its group
    // key is no secret either): Alertmanager does not hold it, so it cannot
    // widen the real incident's silence.
    let number: i64 = real_inc.trim_start_matches("INC-").parse().expect("number");
    let group_id: String = sqlx::query("SELECT group_id FROM alert_groups WHERE incident_id = $1")
        .bind(number)
        .fetch_one(app.store().pool())
        .await
        .expect("group")
        .get("group_id");
    let group_key = group_id.trim_start_matches("alertmanager:").to_string();
    let slipped = |forged_status: &str| {
        json!({
            "version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": "firing",
            "receiver": "klaxon", "groupLabels": {"alertname": "PaymentsDown", "service": "payments"},
            "commonLabels": {"alertname": "PaymentsDown"}, "commonAnnotations": {},
            "externalURL": "http://am",
            "alerts": [
                {"status": "firing", "labels": labels.clone(), "annotations": {},
                 "startsAt": real[0]["startsAt"].clone(), "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": fingerprint.clone()},
                {"status": forged_status, "labels": {"alertname": "PaymentsDown"}, "annotations": {},
                 "startsAt": "2026-11-30T05:00:00Z",
                 "endsAt": if forged_status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-30T05:01:00Z" },
                 "fingerprint": "f0f0f0f0f0f0f0f0"}
            ]
        })
        .to_string()
    };
    assert_eq!(post(slipped("firing")).await, 200);
    app.settle().await;
    app.command(ALICE, &format!("silence {real_inc} 7d")).await;
    let refusal = slack.wait_for_text("does not hold 1 of the 2 alerts").await;
    assert!(refusal.contains(&real_inc), "{refusal}");
    assert_eq!(post(slipped("resolved")).await, 200);
    app.settle().await;

    // With the copy resolved, the real incident's silence is made: its own
    // alert name and labels, the end date shown, nothing else muted.
    app.command(ALICE, &format!("resolve {exact_inc} a forged copy"))
        .await;
    app.command(ALICE, &format!("silence {real_inc} 7d")).await;
    let notice = slack.wait_for_text("silenced 1 alert group of").await;
    assert!(
        notice.contains(r#"alertname="PaymentsDown""#),
        "the matchers are shown: {notice}"
    );
    let until = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(7 * 24))
        .expect("date")
        .strftime("%Y-%m-%d")
        .to_string();
    assert!(
        notice.contains(&until),
        "the end date is shown ({until}): {notice}"
    );
    let alerts = am.get("/api/v2/alerts").await;
    for a in alerts.as_array().expect("alerts") {
        let muted = a["status"]["state"] == "suppressed";
        assert_eq!(
            muted,
            a["labels"]["alertname"] == "PaymentsDown",
            "only PaymentsDown is muted: {a}"
        );
    }
    app.stop().await;
}
