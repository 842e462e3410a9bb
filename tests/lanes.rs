//! Pages never wait: jobs that wait on the outside world (action steps,
//! Alertmanager, Docker) run on lanes of their own, and a page still queued when
//! its incident is acknowledged is dropped, not delivered late.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use sqlx::Row;
use tokio::net::TcpListener;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

/// A TCP server that accepts connections and never answers: a hung Alertmanager
/// or Docker engine. Connections stay open while the returned task lives.
async fn hung_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

fn paging(calls: &[fake_slack::Call], level: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.method == "chat.postMessage" && c.text().contains(&format!("*Paging {level}*"))
        })
        .count()
}

/// How late (ms) a ladder step was paged: the page's time minus its due time
/// (the incident opened at step 0's due time; each level waits `wait`).
async fn page_lateness_ms(store: &klaxon::store::Store, step: i64, wait_ms: i64) -> i64 {
    let row = sqlx::query(
        "SELECT p.at - (i.opened_at + $1 * $2) AS late FROM pages p JOIN incidents i ON i.id = p.incident_id \
         WHERE p.step = $1 ORDER BY p.id LIMIT 1",
    )
    .bind(step)
    .bind(wait_ms)
    .fetch_one(store.pool())
    .await
    .expect("the page was recorded");
    row.get::<i64, _>("late")
}

fn alert_notification() -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"DatabaseDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "klaxon",
        "groupLabels": {"alertname": "DatabaseDown"},
        "commonLabels": {"alertname": "DatabaseDown", "severity": "critical"},
        "commonAnnotations": {"summary": "The primary database is down"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "DatabaseDown", "severity": "critical", "instance": "db-1:5432"},
            "annotations": {"summary": "The primary database is down"},
            "startsAt": "2026-11-22T17:04:09Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "d1b2c3",
        }],
    })
    .to_string()
}

/// A P0 from Alertmanager with a 3-second ladder; a 15-second action and six
/// silences against an Alertmanager that never answers run meanwhile.
async fn slow_outside_work_never_delays_a_page(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let (hung, _hold) = hung_server().await;
    let extra = format!(
        r#"
[alerts]
alertmanager_url = "http://{hung}"
silencers = ["user:U0BOB"]

[[escalation.ladders]]
name = "default"
levels = [
  {{ name = "on-call engineer", notify = ["user:U0ALICE"], wait = "3s" }},
  {{ name = "team lead", notify = ["user:U0LEAD"], wait = "3s" }},
]

[[actions]]
name = "slow-check"
description = "A check that takes 15 seconds"
kind = "command"
argv = ["/bin/sleep", "15"]
read_only = true
timeout = "30s"
allowed = ["user:U0ALICE"]
"#
    );
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: extra,
            ..Options::default()
        },
    )
    .await;
    let r = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .body(alert_notification())
        .send()
        .await
        .expect("deliver");
    assert_eq!(r.status(), 200);
    slack
        .wait_for(WAIT, "level 1", |c| paging(c, "on-call engineer") == 1)
        .await;

    let answer = app.command(ALICE, "run slow-check INC-1").await;
    assert!(answer.contains("Running `slow-check`"), "{answer}");
    slack
        .wait_for(WAIT, "the run to start", |c| {
            c.iter().any(|c| c.text().contains("Running *slow-check*"))
        })
        .await;
    for _ in 0..6 {
        let answer = app.command(BOB, "silence INC-1 1h").await;
        assert!(answer.contains("Asking Alertmanager"), "{answer}");
    }
    // Level 2 falls due now; the action still has about 15 s to go and every
    // silence is stuck in Alertmanager.
    app.clock().advance(Duration::from_secs(3));
    slack
        .wait_for(WAIT, "level 2", |c| paging(c, "team lead") == 1)
        .await;
    assert!(
        !slack
            .delivered()
            .iter()
            .any(|c| c.text().contains("*slow-check* succeeded")),
        "level 2 is paged while the action still runs"
    );
    let late = page_lateness_ms(app.store(), 1, 3_000).await;
    assert!(
        (0..1_000).contains(&late),
        "level 2 paged {late} ms after it fell due"
    );

    // The action still finishes, and the audit log has all of it.
    slack
        .wait_for(WAIT, "the action's outcome", |c| {
            c.iter()
                .any(|c| c.method == "chat.update" && c.text().contains("*slow-check* succeeded"))
        })
        .await;
    let events: Vec<String> = klaxon::store::actions::audit_log(app.store().pool())
        .await
        .expect("audit")
        .into_iter()
        .filter(|(_, _, action, _)| action.as_deref() == Some("slow-check"))
        .map(|(event, ..)| event)
        .collect();
    assert_eq!(events, ["requested", "started", "succeeded"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_action_and_a_hung_alertmanager_never_delay_a_page_on_sqlite() {
    slow_outside_work_never_delays_a_page(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_action_and_a_hung_alertmanager_never_delay_a_page_on_postgres() {
    slow_outside_work_never_delays_a_page(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_docker_engine_never_delays_a_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let (hung, _hold) = hung_server().await;
    let config = r#"
[outbox]
channel_rate = 1000.0
channel_burst = 1000
request_timeout = "2s"
max_backoff = "1s"

[[escalation.ladders]]
name = "default"
levels = [
  { name = "on-call engineer", notify = ["user:U0ALICE"], wait = "3s" },
  { name = "team lead", notify = ["user:U0LEAD"], wait = "3s" },
]

[[actions]]
name = "inspect-web"
kind = "docker"
operation = "inspect"
container = "web"
timeout = "60s"
allowed = ["user:U0ALICE"]
"#;
    let served = Served::start_with(
        dir.path(),
        &url,
        &slack,
        config,
        &[("DOCKER_HOST", &format!("tcp://{hung}"))],
        None,
    )
    .await;
    served.command(BOB, "open P1 Web down").await;
    served.command(ALICE, "run inspect-web").await;
    slack
        .wait_for(WAIT, "level 2", |c| paging(c, "team lead") == 1)
        .await;
    assert!(
        !slack
            .delivered()
            .iter()
            .any(|c| c.text().contains("*inspect-web* failed")),
        "the Docker call still hangs"
    );
    let store = klaxon::store::Store::connect(&url).await.expect("connect");
    let late = page_lateness_ms(&store, 1, 3_000).await;
    assert!(
        (0..1_000).contains(&late),
        "level 2 paged {late} ms after it fell due"
    );
    served.kill();
}

#[tokio::test]
async fn a_page_queued_while_slack_is_down_is_dropped_after_an_ack_and_the_ack_is_delivered() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let extra = r#"
[[escalation.ladders]]
name = "default"
levels = [
  { name = "on-call engineer", notify = ["user:U0ALICE"], wait = "1h" },
  { name = "team lead", notify = ["user:U0LEAD"], wait = "1h" },
]
"#;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: extra.into(),
            ..Options::default()
        },
    )
    .await;
    slack.fail_always(Fault::Status(503));
    app.command(BOB, "open P1 Checkout API returning 500s")
        .await;
    // The page (thread reply and DM) waits in the outbox while Slack is down.
    pages_queued(&app, 1).await;
    let answer = app.command(ALICE, "ack").await;
    assert!(answer.contains("You acknowledged INC-1"), "{answer}");
    slack.heal();
    let calls = slack
        .wait_for(WAIT, "the acknowledgement", |c| {
            c.iter()
                .any(|c| c.ok && c.text().contains("<@U0ALICE> acknowledged INC-1"))
        })
        .await;
    app.outbox_drained().await;
    let delivered = slack.delivered();
    assert_eq!(
        paging(&delivered, "on-call engineer"),
        0,
        "the stale page is not posted"
    );
    assert!(
        !delivered
            .iter()
            .any(|c| c.ok && c.str("channel") == Some("DU0ALICE")),
        "the stale page's DM is not sent: {calls:?}"
    );
    let dropped: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'dropped'")
        .fetch_one(app.store().pool())
        .await
        .expect("count")
        .get("n");
    assert_eq!(dropped, 2, "the thread page and the DM are dropped");
    let timeline = klaxon::store::incidents::timeline(app.store().pool(), incident(1))
        .await
        .expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.text.contains("held back the page") && e.text.contains("acknowledged")),
        "the timeline says the page was not delivered and why"
    );
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics.contains("klaxon_pages_dropped_total 2"),
        "{metrics}"
    );
    app.stop().await;
}

/// Waits until INC-1 has queued `n` pages (whether Slack took them or not).
async fn pages_queued(app: &TestApp, n: i64) {
    wait_until(
        WAIT,
        &format!("{n} pages of INC-1 to be queued"),
        || async {
            klaxon::store::pages::count_for(app.store().pool(), incident(1))
                .await
                .expect("count")
                == n
        },
    )
    .await;
}

fn incident(n: i64) -> klaxon::incident::IncidentRef {
    klaxon::incident::IncidentRef::new(n).expect("ref")
}

const HOUR: Duration = Duration::from_secs(3_600);

#[tokio::test]
async fn a_page_goes_out_ahead_of_its_threads_backlog_and_its_direct_message_is_paced_apart() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // Slack's pace: about one message a second per channel.
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: three_level_ladder("1h"),
            outbox_toml: "channel_rate = 2.0\nchannel_burst = 1\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    app.command(BOB, "open P1 Checkout API returning 500s")
        .await;
    slack
        .wait_for(WAIT, "level 1", |c| paging(c, "on-call engineer") == 1)
        .await;
    const UPDATES: usize = 12;
    for n in 0..UPDATES {
        app.command(BOB, &format!("status look {n}")).await;
    }
    // Level 2 falls due while twelve status updates wait for their turn.
    app.clock().advance(HOUR);
    let calls = slack
        .wait_for(WAIT, "every status update", |c| {
            c.iter().filter(|c| c.text().contains("\nlook ")).count() == UPDATES
        })
        .await;
    let position =
        |f: &dyn Fn(&fake_slack::Call) -> bool| calls.iter().position(f).expect("delivered");
    let thread_page = position(&|c| c.text().contains("*Paging team lead*"));
    let dm = position(&|c| c.str("channel") == Some("DU0LEAD"));
    let after = |at: usize| {
        calls[at..]
            .iter()
            .filter(|c| c.text().contains("\nlook "))
            .count()
    };
    assert!(
        after(thread_page) >= UPDATES / 2,
        "the thread's page jumped the queue: only {} status updates came after it",
        after(thread_page)
    );
    assert!(
        after(dm) >= UPDATES / 2,
        "the direct message is not paced by the incident channel: only {} status updates came after it",
        after(dm)
    );
    let metrics = metrics_of(&app.base).await;
    for via in ["thread", "direct"] {
        assert!(
            metrics.contains(&format!(
                "klaxon_page_delivery_delay_seconds_count{{via=\"{via}\"}} 2"
            )),
            "{via}: {metrics}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_page_queued_before_an_acknowledgement_is_dropped_even_when_the_incident_was_reopened_since()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_three_level_ladder("1h")).await;
    app.command(BOB, "open P1 Checkout API returning 500s")
        .await;
    slack
        .wait_for(WAIT, "level 1", |c| paging(c, "on-call engineer") == 1)
        .await;
    // Level 1's direct message too, before Slack fails (else it waits with
    // the others and is dropped with them).
    app.outbox_drained().await;
    slack.fail_always(Fault::Status(503));
    app.clock().advance(HOUR);
    pages_queued(&app, 2).await;
    app.command(ALICE, "ack").await;
    let reopened = app.command(ALICE, "reopen INC-1").await;
    assert!(reopened.contains("open again"), "{reopened}");
    slack.heal();
    // Reopening resumes the ladder at the next level: that page is current.
    let calls = slack
        .wait_for(WAIT, "level 3", |c| paging(c, "engineering manager") == 1)
        .await;
    app.outbox_drained().await;
    let delivered = slack.delivered();
    assert_eq!(
        paging(&delivered, "team lead"),
        0,
        "the page queued before the acknowledgement is not posted: {calls:?}"
    );
    assert!(
        !delivered
            .iter()
            .any(|c| c.str("channel") == Some("DU0LEAD")),
        "nor sent as a direct message"
    );
    assert!(
        delivered
            .iter()
            .any(|c| c.str("channel") == Some("DU0BOSS")),
        "the current level's page is sent"
    );
    let metrics = metrics_of(&app.base).await;
    assert!(
        metrics.contains("klaxon_pages_dropped_total 2"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_severity_that_moves_the_incident_off_its_ladder_drops_the_pages_still_queued() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let extra = format!(
        "{}\n[escalation.severities]\nP3 = \"none\"\n",
        three_level_ladder("1h")
    );
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: extra,
            ..Options::default()
        },
    )
    .await;
    slack.fail_always(Fault::Status(503));
    app.command(BOB, "open P1 Checkout API returning 500s")
        .await;
    pages_queued(&app, 1).await;
    let answer = app.command(BOB, "sev P3").await;
    assert!(answer.contains("now P3"), "{answer}");
    slack.heal();
    app.outbox_drained().await;
    let delivered = slack.delivered();
    assert_eq!(paging(&delivered, "on-call engineer"), 0);
    assert!(
        !delivered
            .iter()
            .any(|c| c.str("channel") == Some("DU0ALICE"))
    );
    app.stop().await;
}

#[tokio::test]
async fn when_slack_answers_again_every_message_that_backed_off_goes_out_at_once() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL, "C0OTHER"]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            outbox_toml: "channel_rate = 500.0\nchannel_burst = 500\nrequest_timeout = \"2s\"\nmax_backoff = \"1h\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    slack.fail_always(Fault::Status(503));
    app.command(BOB, "open P2 Search is slow").await;
    // Several failures: the next attempt is minutes away on Klaxon's clock.
    for _ in 0..8 {
        let before = slack.calls().len();
        app.clock().advance(Duration::from_secs(300));
        slack
            .wait_for(WAIT, "another attempt", |_| slack.calls().len() > before)
            .await;
    }
    slack.heal();
    // Another incident's first message finds Slack back; the backed-off root
    // goes out with it, without Klaxon's clock moving.
    app.command_in(BOB, "C0OTHER", "open P2 Queue backlog")
        .await;
    slack
        .wait_for(WAIT, "both roots", |c| {
            c.iter().any(|c| c.text().contains("Search is slow"))
                && c.iter().any(|c| c.text().contains("Queue backlog"))
        })
        .await;
    app.stop().await;
}

/// When the claim on the outbox row the sender holds runs out (ms, Klaxon's clock).
async fn lease_expires_at(app: &TestApp) -> Option<i64> {
    let row = sqlx::query("SELECT lease_expires_at FROM outbox WHERE lease_owner IS NOT NULL")
        .fetch_optional(app.store().pool())
        .await
        .expect("lease");
    row.and_then(|r| r.get::<Option<i64>, _>("lease_expires_at"))
}

#[tokio::test]
async fn a_claim_on_a_message_is_short_renewed_while_its_call_runs_and_a_dead_senders_claim_runs_out()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            outbox_toml: "channel_rate = 500.0\nchannel_burst = 500\nrequest_timeout = \"10s\"\nmax_backoff = \"1s\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    // Slack takes 5 s to answer the root.
    slack.fail_next([Fault::Delay(Duration::from_secs(5))]);
    app.command(BOB, "open P2 Search is slow").await;
    wait_until(WAIT, "the claim", || async {
        lease_expires_at(&app).await.is_some()
    })
    .await;
    let first = lease_expires_at(&app).await.expect("claimed");
    let left = first - app.clock().now().0;
    assert!(
        left <= 2_000,
        "a crashed sender's message waits at most 2 s, not {left} ms"
    );
    wait_until(WAIT, "the claim to be renewed", || async {
        let at = lease_expires_at(&app).await;
        at.is_some_and(|at| at >= first + 1_000)
    })
    .await;
    assert!(
        slack.calls().is_empty(),
        "renewed while the call was in flight"
    );
    slack
        .wait_for(WAIT, "the root", |c| {
            c.iter().any(|c| c.text().contains("Search is slow"))
        })
        .await;

    // A sender elsewhere claimed a message, then died mid-call.
    slack.fail_always(Fault::Status(503));
    app.command(BOB, "status looking").await;
    wait_until(WAIT, "the reply to be tried", || async {
        slack.calls().len() >= 2
    })
    .await;
    let now = app.clock().now();
    sqlx::query(
        "UPDATE outbox SET lease_owner = 'dead-replica', lease_expires_at = $1, next_attempt_at = $2 \
         WHERE state = 'pending'",
    )
    .bind(now.plus(Duration::from_secs(2)).0)
    .bind(now.0)
    .execute(app.store().pool())
    .await
    .expect("claim");
    slack.heal();
    app.clock().advance(Duration::from_secs(3));
    slack
        .wait_for(WAIT, "the reply", |c| {
            c.iter().any(|c| c.text().contains("looking"))
        })
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_paged_incidents_drains_roots_first_and_no_page_starves_the_threads() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_three_level_ladder("1h")).await;
    // Hundreds of paged incidents, all queued while Slack is down: each has
    // a root, a page in its thread and a DM.
    const N: usize = 300;
    slack.fail_always(Fault::Status(503));
    for n in 0..N {
        app.command(BOB, &format!("open P1 Service {n} down")).await;
    }
    pages_queued_everywhere(&app, N).await;
    slack.heal();
    let calls = slack
        .wait_for(Duration::from_secs(90), "every thread's page", |c| {
            paging(c, "on-call engineer") == N
        })
        .await;
    let roots = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.text().contains("INCIDENT INC-"))
        .count();
    assert_eq!(roots, N);
    app.stop().await;
}

/// Waits until `n` pages were queued across every incident.
async fn pages_queued_everywhere(app: &TestApp, n: usize) {
    wait_until(
        Duration::from_secs(60),
        "the pages to be queued",
        || async {
            sqlx::query("SELECT COUNT(*) AS n FROM pages")
                .fetch_one(app.store().pool())
                .await
                .expect("count")
                .get::<i64, _>("n")
                >= i64::try_from(n).expect("n")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_committed_during_a_pass_through_a_thousand_roots_goes_out_before_the_rest_of_that_pass()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: three_level_ladder("1h"),
            // Unpaced: a pass delivers every head it read, none waits for a slot.
            outbox_toml: "channel_rate = 100000.0\nchannel_burst = 100000\nrequest_timeout = \"2s\"\nmax_backoff = \"2s\"\n"
                .to_string(),
            ..Options::default()
        },
    )
    .await;
    // More quiet incidents (no page) than one pass reads (1,024 heads),
    // their roots queued while Slack rate-limits the channel (a definite
    // refusal: no lookup for a lost outcome before each post).
    const N: usize = 1_100;
    slack.fail_always(Fault::RateLimited(1));
    let opener = &app;
    futures_util::stream::iter(0..N)
        .for_each_concurrent(8, |n| async move {
            opener
                .command(
                    BOB,
                    &format!("open P3 Certificate for host-{n} expires soon"),
                )
                .await;
        })
        .await;
    slack.heal();
    // The backlog is due once Slack answers: open a P0 while a pass is
    // delivering it (the first pass after the first success reads 1,024).
    roots_sent_at_least(&app, 50).await;
    app.command(BOB, "open P0 Checkout is down").await;
    let when_opened = roots(&slack.delivered()).len();
    let (dm, calls) = slack.wait_for_post_in(WAIT, "DU0ALICE").await;
    assert!(
        dm.text().contains(&format!("INC-{}", N + 1)),
        "{}",
        dm.text()
    );
    let before_dm = roots(&calls)
        .iter()
        .filter(|c| c.ok && c.at < dm.at && c.text().contains("host-"))
        .count();
    let behind = before_dm.saturating_sub(when_opened);
    println!("{behind} of the backlog's roots went out between the P0's open and its page");
    // Had it waited for the pass (1,024 heads, read before the open), at
    // least 1,024 roots would have gone out before it; the cut comes 250 ms
    // into the pass.
    assert!(
        before_dm < 1_000,
        "the page waited for the pass to end: {before_dm} roots before it, {behind} after the open"
    );
    // The pass it cut short is delivered after it, whole.
    roots_sent_at_least(&app, N + 1).await;
    assert_eq!(roots(&slack.delivered()).len(), N + 1);
    app.stop().await;
}

/// Waits until the outbox recorded `n` incident roots as sent (asking the
/// database is cheaper than reading thousands of calls again and again).
async fn roots_sent_at_least(app: &TestApp, n: usize) {
    wait_until(Duration::from_secs(60), "the roots to be sent", || async {
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'root' AND state = 'sent'")
            .fetch_one(app.store().pool())
            .await
            .expect("count")
            .get::<i64, _>("n")
            >= i64::try_from(n).expect("n")
    })
    .await;
}
