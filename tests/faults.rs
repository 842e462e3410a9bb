//! Faults, each counted: what was accepted must still be there afterwards.
//! PostgreSQL stopping under load, Slack down then rate-limiting, SIGKILL under
//! load, a Docker engine that is gone or hangs — and secrets never leaking.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::*;

const ALERT_TOKEN: &str = "alert-token-faults";

fn am_notification(group: &str) -> String {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"), "truncatedAlerts": 0,
        "status": "firing", "receiver": "klaxon",
        "groupLabels": {"alertname": group}, "commonLabels": {"alertname": group, "severity": "warning"},
        "commonAnnotations": {"summary": format!("{group} degraded")}, "externalURL": "http://am",
        "alerts": [{"status": "firing", "labels": {"alertname": group, "severity": "warning"},
                    "annotations": {"summary": format!("{group} degraded")},
                    "startsAt": "2026-11-22T17:04:09Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph", "fingerprint": format!("{group}-fp")}]
    })
    .to_string()
}

/// Posts like Alertmanager: retries until a 2xx (or `give_up`); true when delivered.
async fn deliver_like_alertmanager(base: &str, body: String, give_up: Duration) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let deadline = tokio::time::Instant::now() + give_up;
    while tokio::time::Instant::now() < deadline {
        let r = client
            .post(format!("{base}/alerts/alertmanager"))
            .bearer_auth(ALERT_TOKEN)
            .body(body.clone())
            .send()
            .await;
        if let Ok(r) = r
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

fn fast_outbox() -> String {
    format!(
        "alert_token = \"{ALERT_TOKEN}\"\n[outbox]\nchannel_rate = 1000.0\nchannel_burst = 1000\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_thirty_seconds_under_load_loses_no_delivered_alert() {
    let pg = OwnPostgres::start_new();
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let served = Served::start(dir.path(), &pg.url(), &slack, &fast_outbox()).await;
    let base = served.base.clone();

    const N: usize = 120;
    let mut senders = Vec::new();
    for n in 0..N {
        let base = base.clone();
        senders.push(tokio::spawn(async move {
            // Spread over ~40 s, so notifications arrive before, during and after the outage.
            tokio::time::sleep(Duration::from_millis(n as u64 * 330)).await;
            deliver_like_alertmanager(
                &base,
                am_notification(&format!("Fault{n:03}")),
                Duration::from_secs(120),
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.stop();
    let client = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503, "not ready while the database is down");
    let during = client
        .post(format!("{base}/alerts/alertmanager"))
        .bearer_auth(ALERT_TOKEN)
        .body(am_notification("DuringOutage"))
        .send()
        .await
        .expect("webhook");
    assert_eq!(during.status(), 503, "Alertmanager is told to retry");
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(28)).await;
    pg.start();

    let mut delivered = 0;
    for s in senders {
        if s.await.expect("sender") {
            delivered += 1;
        }
    }
    assert_eq!(delivered, N, "every notification was eventually accepted");
    println!(
        "postgres outage: {N} notifications sent, {delivered} accepted, checking the database"
    );
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "Klaxon reconnected by itself");

    let store = klaxon::store::Store::connect(&pg.url())
        .await
        .expect("connect");
    let groups: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT group_id) AS n FROM alert_groups WHERE group_id LIKE '%Fault%'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count")
    .get("n");
    assert_eq!(groups, N as i64, "every delivered notification is stored");
    assert_eq!(
        half_written_incidents(&store).await,
        0,
        "no half-written incident"
    );
    drop(served);
}

#[tokio::test]
async fn slack_down_for_a_minute_then_rate_limiting_delays_every_message_but_loses_none() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_always(Fault::Status(503));
    let app = TestApp::start(&db, &slack).await;
    const INCIDENTS: usize = 5;
    const UPDATES: usize = 4;
    for i in 0..INCIDENTS {
        app.command(ALICE, &format!("open P2 Outage {i}")).await;
        for u in 0..UPDATES {
            app.command(
                ALICE,
                &format!("status INC-{} update {u} of outage {i}", i + 1),
            )
            .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(slack.delivered().is_empty());
    let attempts_while_down = slack.calls().len();
    assert!(attempts_while_down >= INCIDENTS, "the sender kept trying");
    slack.fail_always(Fault::RateLimited(1));
    tokio::time::sleep(Duration::from_secs(4)).await;
    slack.heal();
    let total = INCIDENTS * (1 + UPDATES);
    let delivered = slack
        .wait_for(Duration::from_secs(60), "every message", |c| {
            c.len() >= total
        })
        .await;
    app.outbox_drained().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered = if delivered.len() < slack.delivered().len() {
        slack.delivered()
    } else {
        delivered
    };
    assert_eq!(delivered.len(), total, "each message exactly once");
    for i in 0..INCIDENTS {
        let mine: Vec<String> = delivered
            .iter()
            .map(|c| c.text())
            .filter(|t| t.contains(&format!("Outage {i}")) || t.contains(&format!("of outage {i}")))
            .collect();
        assert_eq!(mine.len(), 1 + UPDATES, "outage {i}: {mine:#?}");
        assert!(mine[0].contains("INCIDENT"));
        for u in 0..UPDATES {
            assert!(
                mine[1 + u].contains(&format!("update {u} of outage {i}")),
                "in order: {mine:#?}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_every_acknowledged_request_and_resumes_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = fast_outbox();
    let first = Served::start(dir.path(), &url, &slack, &config).await;
    let base = first.base.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let base = base.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut opened = Vec::new();
            let mut alerts = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 500 {
                n += 1;
                if w % 2 == 0 {
                    let sent =
                        send_command(&client, &base, BOB, &format!("open P2 Load {w}-{n}")).await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            let text = v["text"].as_str().unwrap_or_default().to_string();
                            if let Some(r) = text.split('*').nth(1) {
                                opened.push(r.to_string());
                            }
                        }
                        _ => break,
                    }
                } else {
                    let group = format!("Kill{w}-{n}");
                    let sent = client
                        .post(format!("{base}/alerts/alertmanager"))
                        .bearer_auth(ALERT_TOKEN)
                        .body(am_notification(&group))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => alerts.push(group),
                        _ => break,
                    }
                }
            }
            (opened, alerts)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    first.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut opened = Vec::new();
    let mut alerts = Vec::new();
    for w in workers {
        let (o, a) = w.await.expect("worker");
        opened.extend(o);
        alerts.extend(a);
    }
    assert!(
        opened.len() + alerts.len() >= 10,
        "the load ran: {} opens, {} alerts",
        opened.len(),
        alerts.len()
    );
    println!(
        "sigkill: {} opens and {} alert notifications answered 2xx before the kill",
        opened.len(),
        alerts.len()
    );

    let second = Served::start(dir.path(), &url, &slack, &config).await;
    let store = klaxon::store::Store::connect(&url).await.expect("connect");
    for r in &opened {
        let number: i64 = r.trim_start_matches("INC-").parse().expect("ref");
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM incidents WHERE id = $1")
            .bind(number)
            .fetch_one(store.pool())
            .await
            .expect("count")
            .get("n");
        assert_eq!(n, 1, "{r} was answered, so it is stored");
    }
    let stored: BTreeSet<String> = sqlx::query("SELECT group_id FROM alert_groups")
        .fetch_all(store.pool())
        .await
        .expect("groups")
        .iter()
        .map(|r| r.get::<String, _>("group_id"))
        .collect();
    for g in &alerts {
        assert!(
            stored.iter().any(|s| s.contains(&format!("\"{g}\""))),
            "{g} was accepted, so it is stored"
        );
    }
    assert_eq!(
        half_written_incidents(&store).await,
        0,
        "no half-written incident"
    );
    let incidents: i64 = sqlx::query("SELECT COUNT(*) AS n FROM incidents")
        .fetch_one(store.pool())
        .await
        .expect("count")
        .get("n");
    // Messages resume: every incident's thread root reaches Slack, once.
    let calls = slack
        .wait_for(
            Duration::from_secs(60),
            "every root after the restart",
            |c| {
                c.iter()
                    .filter(|c| c.text().contains("INCIDENT INC-"))
                    .count()
                    >= incidents as usize
            },
        )
        .await;
    let mut roots: Vec<String> = calls
        .iter()
        .filter(|c| c.str("thread_ts").is_none() && c.text().contains("INCIDENT INC-"))
        .filter_map(|c| c.text().split(':').next().map(String::from))
        .collect();
    let total = roots.len();
    roots.sort();
    roots.dedup();
    assert_eq!(roots.len(), incidents as usize);
    println!(
        "sigkill: {incidents} incidents stored, {} roots posted after the restart ({total} posts)",
        roots.len()
    );
    assert!(
        total <= roots.len() + 6,
        "at most the messages in flight at the kill are sent twice ({total} for {})",
        roots.len()
    );
    drop(second);
}

fn docker_catalog() -> String {
    format!(
        "{}{}",
        fast_outbox(),
        r#"
[[actions]]
name = "inspect-web"
kind = "docker"
operation = "inspect"
container = "web"
timeout = "2s"
allowed = ["user:U0ALICE"]
"#
    )
}

async fn docker_fault(docker_host: &str, expected: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let served = Served::start_with(
        dir.path(),
        &url,
        &slack,
        &docker_catalog(),
        &[("DOCKER_HOST", docker_host)],
        None,
    )
    .await;
    served.command(ALICE, "open P1 Web down").await;
    served.command(ALICE, "run inspect-web").await;
    let calls = slack
        .wait_for(Duration::from_secs(20), "the failed outcome", |c| {
            c.iter()
                .any(|c| c.method == "chat.update" && c.text().contains("*inspect-web* failed"))
        })
        .await;
    let outcome = calls
        .iter()
        .find(|c| c.method == "chat.update" && c.text().contains("*inspect-web* failed"))
        .expect("outcome")
        .text();
    assert!(outcome.contains(expected), "{outcome}");
    let store = klaxon::store::Store::connect(&url).await.expect("connect");
    let events: Vec<String> = klaxon::store::actions::audit_log(store.pool())
        .await
        .expect("audit")
        .into_iter()
        .map(|(e, ..)| e)
        .collect();
    assert_eq!(events, vec!["requested", "started", "failed"]);
}

#[tokio::test]
async fn a_docker_engine_that_is_gone_fails_the_action_clearly_and_is_audited() {
    docker_fault(
        "unix:///nonexistent/docker.sock",
        "Docker engine unreachable",
    )
    .await;
}

#[tokio::test]
async fn a_docker_engine_that_hangs_times_out_and_is_audited() {
    // A socket that accepts and never answers.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hung.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    docker_fault(&format!("unix://{}", path.display()), "timed out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_errors_metrics_or_slack_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("klaxon.log");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // A database password: PostgreSQL's trust authentication ignores it, so the URL works.
    let db = TestDb::postgres().await;
    let password = "pg-pass-0f1e2d3c4b5a";
    let url = db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    );
    let served = Served::start_with(
        dir.path(),
        &url,
        &slack,
        &fast_outbox(),
        &[("RUST_LOG", "debug")],
        Some(&log),
    )
    .await;
    let client = reqwest::Client::new();
    served.command(ALICE, "open P1 Secret test").await;
    served.command(ALICE, "status checking").await;
    served.command(ALICE, "frobnicate").await;
    // A forged Slack request, a wrong alert token, a good one, a Slack that rejects the token.
    client
        .post(format!("{}/slack/commands", served.base))
        .header("x-slack-request-timestamp", now_secs().to_string())
        .header("x-slack-signature", "v0=deadbeef")
        .body(command_form(ALICE, INCIDENT_CHANNEL, "list"))
        .send()
        .await
        .expect("request");
    client
        .post(format!("{}/alerts/alertmanager", served.base))
        .bearer_auth("not-the-token")
        .body(am_notification("Leak"))
        .send()
        .await
        .expect("request");
    assert!(
        deliver_like_alertmanager(
            &served.base,
            am_notification("Leak"),
            Duration::from_secs(10)
        )
        .await
    );
    slack.fail_next([Fault::SlackError("invalid_auth"), Fault::Status(500)]);
    served.command(ALICE, "status INC-1 still checking").await;
    slack
        .wait_for(Duration::from_secs(20), "the messages", |c| c.len() >= 4)
        .await;
    let metrics = metrics_of(&served.base).await;
    assert!(served.terminate().success());

    let logs = std::fs::read_to_string(&log).expect("log file");
    assert!(
        logs.contains("refused a Slack request"),
        "the log was captured"
    );
    let slack_bodies: String = slack.calls().iter().map(|c| c.body.to_string()).collect();
    for secret in [SECRET, fake_slack::TOKEN, ALERT_TOKEN, password] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(!metrics.contains(secret), "a secret is in the metrics");
        assert!(!slack_bodies.contains(secret), "a secret was sent to Slack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_requests_in_flight_and_the_next_start_sends_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_always(Fault::Status(503));
    let config = fast_outbox();
    let first = Served::start(dir.path(), &url, &slack, &config).await;
    let base = first.base.clone();
    let mut workers = Vec::new();
    for w in 0..4 {
        let base = base.clone();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut refused, mut server_errors) = (Vec::new(), 0, 0);
            for n in 0..400 {
                let sent =
                    send_command(&client, &base, BOB, &format!("open P2 Term {w}-{n}")).await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(r) = v["text"].as_str().and_then(|t| t.split('*').nth(1)) {
                            ok.push(r.to_string());
                        }
                    }
                    Ok(r) if r.status().is_server_error() => server_errors += 1,
                    // The server stopped accepting: connection refused or closed.
                    _ => {
                        refused += 1;
                        break;
                    }
                }
            }
            (ok, refused, server_errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let started = std::time::Instant::now();
    let status = first.terminate();
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown does not hang"
    );
    let mut answered = Vec::new();
    let mut server_errors = 0;
    for w in workers {
        let (ok, _, errors) = w.await.expect("worker");
        answered.extend(ok);
        server_errors += errors;
    }
    assert_eq!(server_errors, 0, "no request failed half-way");
    assert!(!answered.is_empty());
    println!(
        "sigterm: {} opens answered before the shutdown",
        answered.len()
    );

    let store = klaxon::store::Store::connect(&url).await.expect("connect");
    for r in &answered {
        let number: i64 = r.trim_start_matches("INC-").parse().expect("ref");
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE incident_id = $1 AND kind = 'root'",
        )
        .bind(number)
        .fetch_one(store.pool())
        .await
        .expect("count")
        .get("n");
        assert_eq!(n, 1, "{r} was answered, so its root message is queued");
    }
    slack.heal();
    let second = Served::start(dir.path(), &url, &slack, &config).await;
    slack
        .wait_for(
            Duration::from_secs(60),
            "every root after the restart",
            |c| {
                c.iter()
                    .filter(|c| c.text().contains("INCIDENT INC-"))
                    .count()
                    >= answered.len()
            },
        )
        .await;
    drop(second);
}
