//! Escalation along the ladder, on durable timers: through acknowledgements,
//! crashes and several replicas, every page is sent exactly once.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

fn ladder(wait: &str) -> String {
    format!(
        r#"
[[escalation.ladders]]
name = "default"
levels = [
  {{ name = "on-call engineer", notify = ["user:U0ALICE"], wait = "{wait}" }},
  {{ name = "team lead", notify = ["user:U0LEAD"], wait = "{wait}" }},
  {{ name = "engineering manager", notify = ["user:U0BOSS", "group:S0MANAGERS"], wait = "{wait}" }},
]
"#
    )
}

fn paging(calls: &[fake_slack::Call], level: &str) -> Vec<fake_slack::Call> {
    calls
        .iter()
        .filter(|c| {
            c.method == "chat.postMessage" && c.text().contains(&format!("*Paging {level}*"))
        })
        .cloned()
        .collect()
}

/// Escalation steps still waiting.
async fn escalation_jobs(app: &TestApp) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'escalate'")
        .fetch_one(app.store().pool())
        .await
        .expect("count")
        .get("n")
}

fn with_ladder(wait: &str) -> Options {
    Options {
        extra_toml: ladder(wait),
        ..Options::default()
    }
}

const HOUR: Duration = Duration::from_secs(3_600);
const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_unacknowledged_incident_pages_each_level_in_turn_then_says_the_ladder_ran_out() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Checkout API returning 500s")
        .await;
    slack
        .wait_for(WAIT, "level 1", |c| {
            !paging(c, "on-call engineer").is_empty()
        })
        .await;
    // Levels wait for their turn: not a minute early, and on time (Klaxon's clock
    // moves forward an hour in a moment; nothing here waits for real).
    app.advance(HOUR - MINUTE).await;
    assert!(paging(&slack.delivered(), "team lead").is_empty());
    app.advance(MINUTE).await;
    assert_eq!(paging(&slack.delivered(), "team lead").len(), 1);
    app.advance(HOUR - MINUTE).await;
    assert!(paging(&slack.delivered(), "engineering manager").is_empty());
    app.advance(MINUTE).await;
    assert_eq!(paging(&slack.delivered(), "engineering manager").len(), 1);
    assert!(
        !slack
            .delivered()
            .iter()
            .any(|c| c.text().contains("Nobody has acknowledged")),
        "the last level has its hour too"
    );
    app.advance(HOUR).await;

    let calls = slack
        .wait_for(WAIT, "the ladder to run out", |c| {
            c.iter()
                .any(|c| c.text().contains("Nobody has acknowledged INC-1"))
        })
        .await;
    let l1 = paging(&calls, "on-call engineer");
    let l2 = paging(&calls, "team lead");
    let l3 = paging(&calls, "engineering manager");
    assert_eq!(
        (l1.len(), l2.len(), l3.len()),
        (1, 1, 1),
        "each level paged once"
    );
    let root_ts = calls[0].ts.clone().expect("root ts");
    for page in [&l1[0], &l2[0], &l3[0]] {
        assert_eq!(
            page.str("thread_ts"),
            Some(root_ts.as_str()),
            "pages are thread replies"
        );
    }
    assert!(l1[0].text().contains("<@U0ALICE>"));
    assert!(l2[0].text().contains("<@U0LEAD>"));
    assert!(l3[0].text().contains("<@U0BOSS>") && l3[0].text().contains("<!subteam^S0MANAGERS>"));
    assert!(l2[0].at > l1[0].at && l3[0].at > l2[0].at, "in order");

    // Each paged person gets a direct message with an Acknowledge button.
    for user in ["U0ALICE", "U0LEAD", "U0BOSS"] {
        let dm: Vec<_> = calls
            .iter()
            .filter(|c| {
                c.method == "chat.postMessage" && c.str("channel") == Some(&format!("D{user}"))
            })
            .collect();
        assert_eq!(dm.len(), 1, "one DM for {user}");
        assert!(dm[0].text().contains("You are being paged"));
        assert_eq!(
            dm[0].body["blocks"][1]["elements"][0]["action_id"],
            "incident_ack"
        );
    }
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"klaxon_pages_sent_total{level="team lead"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"klaxon_pages_sent_total{level="engineering manager"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"klaxon_job_lateness_seconds_count{lane="paging",kind="escalate"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"klaxon_jobs_pending{lane="paging"} 2"#),
        "only housekeeping and the P1's status-update reminder wait: {metrics}"
    );
    assert_eq!(escalation_jobs(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_between_levels_stops_the_rest_and_records_mtta() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P0 Database primary down").await;
    app.settle().await;
    app.advance(HOUR).await;
    slack
        .wait_for(WAIT, "level 2", |c| !paging(c, "team lead").is_empty())
        .await;
    let answer = app.command("U0LEAD", "ack").await;
    assert!(answer.contains("You acknowledged INC-1"), "{answer}");
    // Two more hours: level 3 and the end of the ladder would both be due.
    app.advance(2 * HOUR).await;
    let calls = slack.delivered();
    assert!(
        paging(&calls, "engineering manager").is_empty(),
        "no level 3 after the ack"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.text().contains("Nobody has acknowledged"))
    );
    let r = klaxon::incident::IncidentRef::new(1).expect("ref");
    let incident = klaxon::store::incidents::get(app.store().pool(), r)
        .await
        .expect("query")
        .expect("incident");
    assert_eq!(
        incident.acknowledged_by.as_ref().map(|u| u.to_string()),
        Some("U0LEAD".into())
    );
    assert!(incident.time_to_acknowledge().is_some());
    assert_eq!(escalation_jobs(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn escalate_pages_the_next_level_now_even_after_an_acknowledgement() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Search down").await;
    slack
        .wait_for(WAIT, "level 1", |c| {
            !paging(c, "on-call engineer").is_empty()
        })
        .await;
    let answer = app.command(ALICE, "escalate").await;
    assert!(
        answer.contains("Paging team lead for INC-1 now"),
        "{answer}"
    );
    slack
        .wait_for(WAIT, "level 2", |c| !paging(c, "team lead").is_empty())
        .await;

    app.command(ALICE, "ack").await;
    app.command(ALICE, "escalate").await;
    let calls = slack
        .wait_for(WAIT, "level 3", |c| {
            !paging(c, "engineering manager").is_empty()
        })
        .await;
    assert_eq!(paging(&calls, "engineering manager").len(), 1);
    let by_hand = paging(&calls, "engineering manager")[0].text();
    assert!(
        by_hand.contains("Paged by hand: INC-1 is acknowledged")
            && !by_hand.contains("Not acknowledged")
            && !by_hand.contains("Next:"),
        "an acknowledged incident's page says so and promises no next level: {by_hand}"
    );
    assert_eq!(
        escalation_jobs(&app).await,
        0,
        "an acknowledged incident keeps no timers"
    );
    let p3 = app.command(ALICE, "open P3 Typo on the status page").await;
    assert!(p3.contains("INC-2"));
    let refused = app.command(ALICE, "escalate INC-2").await;
    assert!(refused.contains("no escalation ladder"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn a_level_with_nobody_on_call_escalates_at_once_and_says_why() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let extra = r#"
[[escalation.schedules]]
name = "primary"
timezone = "Europe/Berlin"
rotation = []
handoff = "2026-01-05T09:00"

[[escalation.ladders]]
name = "default"
levels = [
  { name = "on-call engineer", notify = ["schedule:primary"], wait = "1h" },
  { name = "team lead", notify = ["user:U0LEAD"], wait = "1h" },
]
"#;
    let opts = Options {
        extra_toml: extra.into(),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;
    app.command(BOB, "open P1 Queue stuck").await;
    // A page goes ahead of its thread's backlog: wait for both.
    let calls = slack
        .wait_for(WAIT, "level 2 and the notice", |c| {
            !paging(c, "team lead").is_empty()
                && c.iter().any(|c| c.text().contains("has nobody to page"))
        })
        .await;
    let notice = calls
        .iter()
        .find(|c| c.text().contains("has nobody to page"))
        .expect("the thread says why level 1 was skipped");
    assert!(
        notice
            .text()
            .contains("schedule `primary` has nobody on call"),
        "{}",
        notice.text()
    );
    assert!(paging(&calls, "on-call engineer").is_empty());
    let level2 = &paging(&calls, "team lead")[0];
    assert!(
        level2
            .text()
            .contains("on-call engineer had nobody to page, so team lead is paged now"),
        "{}",
        level2.text()
    );
    assert!(
        !level2.text().contains("Not acknowledged after"),
        "{}",
        level2.text()
    );
    let who = app.command(ALICE, "oncall").await;
    assert!(who.contains("*primary*: nobody"), "{who}");
    app.stop().await;
}

#[tokio::test]
async fn ack_in_a_direct_message_acknowledges_the_incident_that_paged_you_once() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Payments failing").await;
    slack
        .wait_for(WAIT, "level 1", |c| {
            !paging(c, "on-call engineer").is_empty()
        })
        .await;
    let event = json!({
        "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
        "event_id": "Ev0ACK1", "event_time": now_secs(),
        "event": {"type": "message", "channel_type": "im", "channel": "D0ALICEDM", "user": "U0ALICE",
                  "text": "ack", "ts": "1795367100.000100"}
    })
    .to_string();
    for retry in 0..3 {
        // Slack retries a delivery as a new request (new timestamp, new signature,
        // X-Slack-Retry-Num); the event id makes them one.
        let r = app
            .post_signed_with("/slack/events", &event, SECRET, now_secs() - retry)
            .await;
        assert_eq!(r.status(), 200);
    }
    slack
        .wait_for(WAIT, "the answer in the DM", |c| {
            c.iter()
                .any(|c| c.text().contains("You acknowledged INC-1"))
        })
        .await;
    let calls = slack
        .wait_for(WAIT, "the acknowledgement", |c| {
            c.iter()
                .any(|c| c.text().contains("<@U0ALICE> acknowledged INC-1"))
        })
        .await;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.text().contains("You acknowledged INC-1"))
            .count(),
        1,
        "one answer in the DM"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.text().contains("acknowledged INC-1 after"))
            .count(),
        1,
        "one acknowledgement in the thread"
    );
    app.stop().await;
}

#[tokio::test]
async fn oncall_names_who_is_on_call_in_each_schedule() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let extra = r#"
[[escalation.schedules]]
name = "primary"
timezone = "UTC"
rotation = ["U0ALICE"]
period = "1d"
handoff = "2026-01-01T09:00"
"#;
    let opts = Options {
        extra_toml: extra.into(),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;
    let who = app.command(BOB, "who").await;
    assert!(who.contains("*primary*: <@U0ALICE> until"), "{who}");
    app.stop().await;
}

fn served_config(wait: &str) -> String {
    format!(
        "[outbox]\nchannel_rate = 1000.0\nchannel_burst = 1000\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n{}",
        ladder(wait)
    )
}

async fn crash_between_levels(backend: Backend) {
    let db = TestDb::of(backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("k.db").display()),
        Backend::Postgres => db.url.clone(),
    };
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = served_config("2s");
    let first = Served::start(dir.path(), &url, &slack, &config).await;
    first
        .command(BOB, "open P1 Checkout API returning 500s")
        .await;
    slack
        .wait_for(WAIT, "level 1 and its DM", |c| {
            !paging(c, "on-call engineer").is_empty()
                && c.iter().any(|c| c.str("channel") == Some("DU0ALICE"))
        })
        .await;
    first.kill();
    // Levels 2 (due at 2 s) and 3 (due at 4 s) fall due while Klaxon is down.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert!(paging(&slack.delivered(), "team lead").is_empty());

    let second = Served::start(dir.path(), &url, &slack, &config).await;
    slack
        .wait_for(WAIT, "the ladder to finish after the restart", |c| {
            c.iter()
                .any(|c| c.text().contains("Nobody has acknowledged INC-1"))
        })
        .await;
    quiet(&url).await;
    let calls = slack.delivered();
    for level in ["on-call engineer", "team lead", "engineering manager"] {
        assert_eq!(paging(&calls, level).len(), 1, "{level} paged exactly once");
    }
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.text().contains("Nobody has acknowledged"))
            .count(),
        1
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.text().contains("INCIDENT INC-1"))
            .count(),
        1,
        "one root"
    );
    assert!(second.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_levels_loses_and_doubles_no_page_on_sqlite() {
    crash_between_levels(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_levels_loses_and_doubles_no_page_on_postgres() {
    crash_between_levels(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgres_page_every_level_of_two_hundred_incidents_exactly_once() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = format!(
        "[outbox]\nchannel_rate = 5000.0\nchannel_burst = 5000\nrequest_timeout = \"5s\"\nmax_backoff = \"1s\"\n{}",
        r#"
[[escalation.ladders]]
name = "default"
levels = [
  { name = "on-call engineer", notify = ["user:U0ALICE"], wait = "1s" },
  { name = "team lead", notify = ["user:U0LEAD"], wait = "1s" },
]
"#
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Served::start(dir.path(), &db.url, &slack, &config).await);
    }
    const N: usize = 200;
    let mut tasks = Vec::new();
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    for n in 0..N {
        let base = bases[n % 3].clone();
        tasks.push(tokio::spawn(async move {
            let r = send_command(
                &reqwest::Client::new(),
                &base,
                BOB,
                &format!("open P1 Service {n} down"),
            )
            .await
            .expect("request");
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.expect("open");
    }
    let calls = slack
        .wait_for(Duration::from_secs(90), "every ladder to run out", |c| {
            c.iter()
                .filter(|c| c.text().contains("Nobody has acknowledged"))
                .count()
                >= N
        })
        .await;
    quiet(&db.url).await;
    let calls = if calls.len() < slack.delivered().len() {
        slack.delivered()
    } else {
        calls
    };
    for level in ["on-call engineer", "team lead"] {
        let pages = paging(&calls, level);
        assert_eq!(pages.len(), N, "{level}: one page per incident");
        let mut incidents: Vec<String> = pages
            .iter()
            .filter_map(|c| {
                c.text()
                    .split(" for ")
                    .nth(1)
                    .map(|s| s.split(' ').next().unwrap_or("").to_string())
            })
            .collect();
        incidents.sort();
        incidents.dedup();
        assert_eq!(
            incidents.len(),
            N,
            "{level}: every incident paged, none twice"
        );
    }
    let dms = calls
        .iter()
        .filter(|c| c.str("channel").is_some_and(|ch| ch.starts_with('D')))
        .count();
    assert_eq!(dms, 2 * N, "one DM per page");
    let exhausted = calls
        .iter()
        .filter(|c| c.text().contains("Nobody has acknowledged"))
        .count();
    assert_eq!(exhausted, N);
    for r in replicas {
        assert!(r.terminate().success());
    }
}

#[tokio::test]
async fn reopening_an_incident_resumes_its_ladder_at_the_next_level() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Queue stuck").await;
    slack
        .wait_for(WAIT, "level 1", |c| {
            !paging(c, "on-call engineer").is_empty()
        })
        .await;
    app.command(ALICE, "ack").await;
    app.command(ALICE, "resolve drained the queue").await;
    let answer = app.command(ALICE, "reopen INC-1").await;
    assert_eq!(answer, "INC-1 is open again.");
    // A page goes ahead of its thread's backlog: wait for both.
    let calls = slack
        .wait_for(
            WAIT,
            "level 2 after the reopen, and the reopen notice",
            |c| {
                !paging(c, "team lead").is_empty()
                    && c.iter()
                        .any(|c| c.text().contains("<@U0ALICE> reopened INC-1"))
            },
        )
        .await;
    assert_eq!(
        paging(&calls, "on-call engineer").len(),
        1,
        "level 1 is not paged again"
    );
    let again = app.command(ALICE, "reopen INC-1").await;
    assert!(again.contains("open already"), "{again}");
    let ack = app.command(ALICE, "ack").await;
    assert!(
        ack.contains("You acknowledged INC-1"),
        "a new acknowledgement is needed: {ack}"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_dm_ack_delivered_under_two_event_ids_gets_one_answer() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Payments failing").await;
    slack
        .wait_for(WAIT, "level 1", |c| {
            !paging(c, "on-call engineer").is_empty()
        })
        .await;
    for event_id in ["Ev0ONE", "Ev0TWO"] {
        // Slack sends one message to each event subscription it matches.
        let event = json!({
            "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
            "event_id": event_id, "event_time": now_secs(),
            "event": {"type": "message", "channel_type": "im", "channel": "D0ALICEDM", "user": "U0ALICE",
                      "text": "ack", "ts": "1795367100.000200"}
        })
        .to_string();
        let r = app.post_signed("/slack/events", &event).await;
        assert_eq!(r.status(), 200);
    }
    app.settle().await;
    let answers: Vec<String> = slack
        .delivered()
        .iter()
        .map(|c| c.text())
        .filter(|t| t.contains("You acknowledged INC-1") || t.contains("already acknowledged"))
        .collect();
    assert_eq!(answers.len(), 1, "one answer: {answers:#?}");
    assert!(
        answers[0].contains("You acknowledged INC-1"),
        "{answers:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_page_whose_dm_slack_refuses_says_so_in_the_thread() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.disable_user("U0ALICE");
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Payments failing").await;
    let calls = slack
        .wait_for(WAIT, "the failed DM in the thread", |c| {
            c.iter()
                .any(|c| c.text().contains("The page did not reach <@U0ALICE>"))
        })
        .await;
    let notice = calls
        .iter()
        .find(|c| c.text().contains("The page did not reach"))
        .expect("notice");
    assert!(
        notice.text().contains("user_disabled") && notice.text().contains("deactivated"),
        "{}",
        notice.text()
    );
    assert!(
        notice.str("thread_ts").is_some(),
        "a reply in the incident's thread"
    );
    let timeline = klaxon::store::incidents::timeline(
        app.store().pool(),
        klaxon::incident::IncidentRef::new(1).expect("ref"),
    )
    .await
    .expect("timeline");
    assert!(
        timeline.iter().any(|e| e
            .text
            .contains("could not deliver the page (user_disabled)")),
        "{timeline:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bare_ack_in_a_direct_message_answers_the_newest_page_delivered_not_one_still_queued() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_ladder("1h")).await;
    app.command(BOB, "open P1 Payments failing").await;
    slack
        .wait_for(WAIT, "INC-1's page in Alice's direct messages", |c| {
            c.iter().any(|c| c.str("channel") == Some("DU0ALICE"))
        })
        .await;
    // INC-2 pages Alice too, but Slack is down: she has not seen that page.
    slack.fail_always(Fault::Status(503));
    app.command(BOB, "open P1 Search failing").await;
    let inc2 = klaxon::incident::IncidentRef::new(2).expect("ref");
    wait_until(WAIT, "INC-2's page to be queued", || async {
        klaxon::store::pages::count_for(app.store().pool(), inc2)
            .await
            .expect("count")
            == 1
    })
    .await;
    let event = json!({
        "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
        "event_id": "Ev0ACKNEWEST", "event_time": now_secs(),
        "event": {"type": "message", "channel_type": "im", "channel": "DU0ALICE", "user": "U0ALICE",
                  "text": "ack", "ts": "1795367100.000200"}
    })
    .to_string();
    let r = app.post_signed("/slack/events", &event).await;
    assert_eq!(r.status(), 200);
    let state = |n: i64| {
        let store = app.store().clone();
        async move {
            klaxon::store::incidents::get(
                store.pool(),
                klaxon::incident::IncidentRef::new(n).expect("ref"),
            )
            .await
            .expect("get")
            .expect("exists")
            .state
        }
    };
    wait_until(WAIT, "INC-1 to be acknowledged", || async {
        state(1).await == klaxon::incident::IncidentState::Acknowledged
    })
    .await;
    assert_eq!(
        state(2).await,
        klaxon::incident::IncidentState::Open,
        "the page Alice never saw is not what her ack meant"
    );
    slack.heal();
    app.stop().await;
}
