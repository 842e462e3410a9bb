//! Pages on time through crashes, outages and floods: no lost step, no
//! doubled post, no deadlock, one pace per Slack channel across replicas.

use std::time::{Duration, Instant};

use sqlx::Row;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_channels_backlog_is_looked_up_in_one_read_and_each_message_is_posted_once()
 {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    // Three roots reach the channel but their answers are lost; then Slack
    // fails every call while 40 more are queued. Every one of the 43 is now
    // "maybe posted": it must be looked for before it is posted again.
    slack.fail_next([Fault::LoseAnswer, Fault::LoseAnswer, Fault::LoseAnswer]);
    for n in 0..3 {
        app.command(BOB, &format!("open P3 Disk filling on db-{n}"))
            .await;
    }
    wait_until(WAIT, "the three lost answers", || async {
        slack.calls().iter().filter(|c| c.status == 504).count() == 3
    })
    .await;
    slack.fail_always(Fault::Status(503));
    const N: usize = 40;
    for n in 0..N {
        app.command(
            BOB,
            &format!("open P3 Certificate for host-{n} expires soon"),
        )
        .await;
    }
    wait_for_maybe_posted(&app, "root", N + 3).await;
    let reads_before = history_reads(&slack);
    slack.heal();
    app.outbox_drained().await;

    let reads = history_reads(&slack) - reads_before;
    println!(
        "{reads} conversations.history reads answered the lookups of {} roots",
        N + 3
    );
    assert!(
        reads <= 5,
        "the backlog's lookups share reads of the channel: {reads} reads for {} roots",
        N + 3
    );
    assert_eq!(
        slack
            .messages_in(INCIDENT_CHANNEL)
            .iter()
            .filter(|m| m.get("thread_ts").is_none())
            .count(),
        N + 3,
        "every root is in the channel"
    );
    assert!(
        slack.doubled_posts().is_empty(),
        "no message in Slack twice"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("klaxon_slack_doubles_avoided_total 3"),
        "the three lost answers were found, not posted again"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_persons_queued_pages_are_looked_up_in_one_read_of_their_direct_messages()
{
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_three_level_ladder("1h")).await;
    // Ten paging incidents while Slack fails: each pages Alice by DM.
    slack.fail_always(Fault::Status(503));
    const N: usize = 10;
    for n in 0..N {
        app.command(BOB, &format!("open P1 Payments failing in region {n}"))
            .await;
    }
    wait_for_maybe_posted(&app, "direct", N).await;
    let dm_reads = |slack: &FakeSlack| {
        slack
            .checks()
            .iter()
            .filter(|c| {
                c.method == "conversations.history" && c.ok && c.str("channel") == Some("DU0ALICE")
            })
            .count()
    };
    let before = dm_reads(&slack);
    slack.heal();
    app.outbox_drained().await;

    let reads = dm_reads(&slack) - before;
    println!("{reads} reads of Alice's direct messages answered the lookups of {N} pages");
    assert!(reads <= 2, "{reads} reads for {N} page DMs");
    assert_eq!(slack.messages_in("DU0ALICE").len(), N, "each page DM once");
    assert!(
        slack.doubled_posts().is_empty(),
        "no message in Slack twice"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_refused_by_a_rate_limit_looks_again_and_never_posts_the_message_twice() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // The root reaches the channel, its answer is lost, and the first
    // lookup of it is refused with a 429.
    let app = TestApp::start(&db, &slack).await;
    slack.fail_next([Fault::LoseAnswer]);
    slack.fail_checks(Fault::RateLimited(1));
    app.command(ALICE, "open P3 Disk filling on db-1").await;
    wait_until(WAIT, "a lookup refused with 429", || async {
        slack
            .checks()
            .iter()
            .any(|c| c.method == "conversations.history" && c.status == 429)
    })
    .await;
    slack.heal();
    app.outbox_drained().await;
    let lookups = slack
        .checks()
        .iter()
        .filter(|c| c.method == "conversations.history")
        .map(|c| c.status)
        .collect::<Vec<_>>();
    assert_eq!(lookups.first(), Some(&429), "{lookups:?}");
    assert_eq!(lookups.last(), Some(&200), "looked up again: {lookups:?}");
    assert_eq!(
        slack.messages_in(INCIDENT_CHANNEL).len(),
        1,
        "the root is in Slack once"
    );
    assert!(
        slack.doubled_posts().is_empty(),
        "no message in Slack twice"
    );
    app.stop().await;
}

/// Waits until `n` outbox messages of `kind` (`root`, `direct` …) are
/// "maybe posted": tried while Slack failed, so looked for before the next post.
async fn wait_for_maybe_posted(app: &TestApp, kind: &str, n: usize) {
    wait_until(
        WAIT,
        &format!("{n} {kind} messages to be maybe posted"),
        || async {
            sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE kind = $1 AND maybe_posted = 1")
                .bind(kind)
                .fetch_one(app.store().pool())
                .await
                .expect("count")
                .get::<i64, _>("n")
                == i64::try_from(n).expect("n")
        },
    )
    .await;
}

/// How many `conversations.history` reads Slack answered.
fn history_reads(slack: &FakeSlack) -> usize {
    slack
        .checks()
        .iter()
        .filter(|c| c.method == "conversations.history" && c.ok)
        .count()
}

async fn lost_answer_is_found_again(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // The root reaches the channel, but its answer is lost on the way back.
    slack.fail_next([Fault::LoseAnswer]);
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P2 Checkout latency above 2s")
        .await;
    app.command(ALICE, "status INC-1 rolled back the canary")
        .await;
    slack
        .wait_for(WAIT, "the status update in the thread", |c| {
            c.iter()
                .any(|c| c.ok && c.text().contains("rolled back the canary"))
        })
        .await;
    app.outbox_drained().await;

    let calls = slack.calls();
    let posted = roots(&calls);
    assert_eq!(
        posted.len(),
        1,
        "the root was posted once, its lost answer found by a lookup: {:#?}",
        calls
            .iter()
            .map(|c| (&c.method, c.status))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        posted[0].status, 504,
        "the one post is the one whose answer was lost"
    );
    assert!(
        slack.doubled_posts().is_empty(),
        "no message in Slack twice"
    );
    assert!(
        slack
            .checks()
            .iter()
            .any(|c| c.method == "conversations.history"
                && c.str("include_all_metadata") == Some("true")),
        "Klaxon looked the message up by its metadata"
    );
    // The thread goes on under the message Slack has.
    let stored = sqlx::query("SELECT thread_ts FROM incidents WHERE id = 1")
        .fetch_one(app.store().pool())
        .await
        .expect("incident")
        .get::<Option<String>, _>("thread_ts")
        .expect("the root's ts was learnt from the lookup");
    let update = calls
        .iter()
        .find(|c| c.ok && c.text().contains("rolled back the canary"))
        .expect("the update");
    assert_eq!(update.str("thread_ts"), Some(stored.as_str()));
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("klaxon_slack_doubles_avoided_total 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_in_slack_and_not_posted_again_on_sqlite() {
    lost_answer_is_found_again(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_found_in_slack_and_not_posted_again_on_postgres() {
    lost_answer_is_found_again(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_ten_seconds_after_slack_took_a_root_posts_nothing_twice() {
    let pg = OwnPostgres::start_new();
    let db = TestDb::at(&pg.url());
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, with_three_level_ladder("2s")).await;
    let hold = slack.hold_next_post();
    app.command(BOB, "open P1 Payments failing").await;
    // Slack has the root; before its answer arrives, the database goes away,
    // so "sent" cannot be recorded.
    tokio::time::timeout(WAIT, hold.arrived())
        .await
        .expect("the root reached Slack");
    pg.stop();
    hold.release();
    tokio::time::sleep(Duration::from_secs(10)).await;
    pg.start();

    slack
        .wait_for(Duration::from_secs(60), "the ladder to run out", |c| {
            c.iter()
                .any(|c| c.ok && c.text().contains("Nobody has acknowledged INC-1"))
        })
        .await;
    app.outbox_drained().await;
    let calls = slack.delivered();
    assert_eq!(roots(&calls).len(), 1, "one root");
    assert!(
        slack.doubled_posts().is_empty(),
        "no message posted twice: {:#?}",
        slack.doubled_posts()
    );
    for user in ["DU0ALICE", "DU0LEAD", "DU0BOSS"] {
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.str("channel") == Some(user))
                .count(),
            1,
            "one page DM to {user}"
        );
    }
    app.stop().await;
}

async fn deadlocks(url: &str) -> i64 {
    let store = klaxon::store::Store::connect(url).await.expect("connect");
    sqlx::query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_database")
        .get::<i64, _>("deadlocks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolutions_and_acknowledgements_racing_ladder_steps_on_two_replicas_never_deadlock_postgres()
 {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = format!("[outbox]\n{FAST_OUTBOX}{}", three_level_ladder("1s"));
    let a = Served::start(dir.path(), &db.url, &slack, &config).await;
    let b = Served::start(dir.path(), &db.url, &slack, &config).await;
    let before = deadlocks(&db.url).await;
    const N: usize = 40;
    let client = reqwest::Client::new();
    for n in 0..N {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        let r = send_command(&client, base, BOB, &format!("open P1 Service {n} down"))
            .await
            .expect("open");
        assert_eq!(r.status(), 200);
    }
    // Acknowledge and resolve while level 2 (due at 1 s) and level 3 (2 s) fall due.
    let mut tasks = Vec::new();
    for n in 0..N {
        let base = if n % 2 == 0 {
            b.base.clone()
        } else {
            a.base.clone()
        };
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            tokio::time::sleep(Duration::from_millis(800 + (n as u64 % 10) * 130)).await;
            let inc = n + 1;
            let verb = if n % 2 == 0 {
                format!("ack INC-{inc}")
            } else {
                format!("resolve INC-{inc} restarted the pods")
            };
            let r = send_command(&client, &base, ALICE, &verb)
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "{verb}");
            if n % 2 == 0 {
                let r = send_command(&client, &base, ALICE, &format!("resolve INC-{inc} done"))
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("race");
    }
    quiet(&db.url).await;
    let after = deadlocks(&db.url).await;
    assert_eq!(after - before, 0, "PostgreSQL detected deadlocks");
    let store = klaxon::store::Store::connect(&db.url)
        .await
        .expect("connect");
    let open: i64 = sqlx::query("SELECT COUNT(*) AS n FROM incidents WHERE state <> 'resolved'")
        .fetch_one(store.pool())
        .await
        .expect("count")
        .get("n");
    assert_eq!(open, 0, "every incident resolved");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_posting_in_one_channel_keep_to_slacks_pace_for_it() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // Slack's limit for the channel, and Klaxon's pace just under it.
    slack.limit_channel_rate(5.0, 5);
    let config = "[outbox]\nchannel_rate = 4.0\nchannel_burst = 4\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n";
    let a = Served::start(dir.path(), &db.url, &slack, config).await;
    let b = Served::start(dir.path(), &db.url, &slack, config).await;
    const N: usize = 24;
    let mut tasks = Vec::new();
    for n in 0..N {
        let base = if n % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        tasks.push(tokio::spawn(async move {
            let r = send_command(
                &reqwest::Client::new(),
                &base,
                BOB,
                &format!("open P3 Disk at 80% on db-{n}"),
            )
            .await
            .expect("open");
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.expect("open");
    }
    let calls = slack
        .wait_for(Duration::from_secs(60), "every root", |c| {
            roots(c).iter().filter(|c| c.ok).count() >= N
        })
        .await;
    let refused = calls.iter().filter(|c| c.status == 429).count();
    assert_eq!(
        refused, 0,
        "Slack never had to refuse a post for the channel's rate"
    );
    let busiest = slack.busiest_second(INCIDENT_CHANNEL);
    println!(
        "two replicas, one channel: at most {busiest} posts in any one second, {refused} refused"
    );
    assert!(
        busiest <= 4 + 4,
        "at most the burst plus a second's rate in any second: {busiest}"
    );
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Klaxon on SQLite at Slack's own pace for a channel (about one message a
/// second, bursts of 3) against a fake Slack that enforces it, with the
/// three-level ladder at 5-minute waits.
async fn at_slacks_pace() -> (TestDb, FakeSlack, TestApp) {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.limit_channel_rate(1.0, 3);
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: three_level_ladder("5m"),
            outbox_toml: "channel_rate = 1.0\nchannel_burst = 3\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n"
                .to_string(),
            ..Options::default()
        },
    )
    .await;
    (db, slack, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p0_page_goes_out_within_two_seconds_after_sixty_quiet_p3_incidents() {
    let (_db, slack, app) = at_slacks_pace().await;
    for n in 0..60 {
        app.command(
            BOB,
            &format!("open P3 Certificate for host-{n} expires in 20 days"),
        )
        .await;
    }
    let opened = Instant::now();
    app.command(BOB, "open P0 Checkout is down").await;
    let (dm, calls) = slack.wait_for_post_in(WAIT, "DU0ALICE").await;
    let took = dm.at.duration_since(opened);
    println!("the P0's page DM went out {took:?} after it was opened, behind 60 P3 roots");
    assert!(
        dm.text().contains("INC-61"),
        "the DM pages for the P0: {}",
        dm.text()
    );
    assert!(
        took < Duration::from_secs(2),
        "the P0's page DM went out {took:?} after it was opened, behind the channel's chatter"
    );
    let p3_roots_before = roots(&calls)
        .iter()
        .filter(|c| c.ok && c.at < dm.at && c.text().contains("host-"))
        .count();
    assert!(
        p3_roots_before < 60,
        "the page did not wait for the channel's backlog ({p3_roots_before} P3 roots before it)"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p0_page_goes_out_within_two_seconds_after_sixty_quiet_p3_incidents_on_two_postgres_replicas()
 {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.limit_channel_rate(1.0, 3);
    let config = format!(
        "[outbox]\nchannel_rate = 1.0\nchannel_burst = 3\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n{}",
        three_level_ladder("5m")
    );
    let a = Served::start(dir.path(), &db.url, &slack, &config).await;
    let b = Served::start(dir.path(), &db.url, &slack, &config).await;
    let client = reqwest::Client::new();
    for n in 0..60 {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        let r = send_command(
            &client,
            base,
            BOB,
            &format!("open P3 Certificate for host-{n} expires in 20 days"),
        )
        .await
        .expect("open");
        assert_eq!(r.status(), 200);
    }
    let opened = Instant::now();
    let r = send_command(&client, &b.base, BOB, "open P0 Checkout is down")
        .await
        .expect("open");
    assert_eq!(r.status(), 200);
    let is_dm = |c: &fake_slack::Call| c.ok && c.str("channel") == Some("DU0ALICE");
    let calls = slack
        .wait_for(WAIT, "the P0's page DM", |c| c.iter().any(is_dm))
        .await;
    let dm = calls.iter().find(|c| is_dm(c)).expect("the DM");
    let took = dm.at.duration_since(opened);
    println!(
        "two replicas: the P0's page DM went out {took:?} after it was opened, behind 60 P3 roots"
    );
    assert!(
        took < Duration::from_secs(2),
        "the P0's page DM went out {took:?} after it was opened, behind the channel's chatter"
    );
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// The incident a page names ("… for INC-7 …").
fn paged_incident(call: &fake_slack::Call) -> Option<String> {
    call.text().split(" for ").nth(1).map(|s| {
        s.trim_start_matches('*')
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .next()
            .unwrap_or("")
            .to_string()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_as_ladder_steps_fall_due_leaves_no_page_more_than_three_seconds_late_on_postgres()
 {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = format!("[outbox]\n{FAST_OUTBOX}{}", three_level_ladder("3s"));
    let a = Served::start(dir.path(), &db.url, &slack, &config).await;
    let b = Served::start(dir.path(), &db.url, &slack, &config).await;
    const N: usize = 12;
    let client = reqwest::Client::new();
    let mut opened = Vec::new();
    // Every incident opens on A: B has had no traffic at all, and must still
    // notice the steps A leaves behind.
    for n in 0..N {
        let r = send_command(
            &client,
            &a.base,
            BOB,
            &format!("open P1 Shard {n} unavailable"),
        )
        .await
        .expect("open");
        assert_eq!(r.status(), 200);
        // The ladder started before the answer: level 2 is due by now + 3 s.
        opened.push(Instant::now());
    }
    // SIGKILL A, and let it hold every level-2 step as it would had it
    // claimed each the moment it fell due: the worst case for the survivor,
    // which may only take them when the claims run out.
    let before_due = opened[0] + Duration::from_millis(2_500);
    tokio::time::sleep(before_due.saturating_duration_since(Instant::now())).await;
    a.kill();
    let store = klaxon::store::Store::connect(&db.url)
        .await
        .expect("connect");
    let lease_ms = klaxon::jobs::Lane::Paging.lease().as_millis() as i64;
    let held = sqlx::query(
        "UPDATE jobs SET lease_owner = 'killed-replica', lease_expires_at = run_at + $1 \
         WHERE lane = 'paging' AND kind = 'escalate' AND lease_owner IS NULL",
    )
    .bind(lease_ms)
    .execute(store.pool())
    .await
    .expect("hold the steps")
    .rows_affected();
    assert_eq!(
        held as usize, N,
        "every level-2 step held by the killed replica"
    );

    let calls = slack
        .wait_for(Duration::from_secs(40), "every level 3 DM", |c| {
            c.iter()
                .filter(|c| c.ok && c.str("channel") == Some("DU0BOSS"))
                .count()
                >= N
        })
        .await;
    let mut latest = Duration::ZERO;
    for (user, wait) in [("DU0LEAD", 3), ("DU0BOSS", 6)] {
        let dms: Vec<&fake_slack::Call> = calls
            .iter()
            .filter(|c| c.ok && c.str("channel") == Some(user))
            .collect();
        assert_eq!(dms.len(), N, "one page to {user} per incident");
        for (n, opened_at) in opened.iter().enumerate() {
            let inc = format!("INC-{}", n + 1);
            let dm = dms
                .iter()
                .find(|c| paged_incident(c).as_deref() == Some(inc.as_str()))
                .unwrap_or_else(|| {
                    panic!(
                        "{user} was paged for {inc}: {:?}",
                        dms.iter().map(|c| c.text()).collect::<Vec<_>>()
                    )
                });
            let due = *opened_at + Duration::from_secs(wait);
            let late = dm.at.saturating_duration_since(due);
            latest = latest.max(late);
            assert!(
                late <= Duration::from_secs(3),
                "{inc}: {user} paged {late:?} after the step was due"
            );
        }
    }
    println!("after the SIGKILL, the latest page went out {latest:?} after its due time");
    let metrics = metrics_of(&b.base).await;
    assert!(
        metrics.contains(&format!(
            "klaxon_jobs_taken_over_total{{lane=\"paging\"}} {N}"
        )),
        "the survivor took every held step over and counted it: {}",
        metrics
            .lines()
            .filter(|l| l.starts_with("klaxon_jobs_taken_over_total"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(b.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p0_page_dm_goes_out_ahead_of_thirty_p2_pages_queued_for_the_same_person() {
    let (_db, slack, app) = at_slacks_pace().await;
    // Thirty P2s page Alice: her DMs go out at Slack's pace, one a second.
    for n in 0..30 {
        app.command(BOB, &format!("open P2 Queue {n} backing up"))
            .await;
    }
    let opened = Instant::now();
    app.command(BOB, "open P0 Payments are down").await;
    let is_p0_dm = |c: &fake_slack::Call| {
        c.ok && c.str("channel") == Some("DU0ALICE") && c.text().contains("*INC-31*")
    };
    let calls = slack
        .wait_for(WAIT, "the P0's page DM", |c| c.iter().any(is_p0_dm))
        .await;
    let dm = calls.iter().find(|c| is_p0_dm(c)).expect("the DM");
    let took = dm.at.duration_since(opened);
    let p2_before = calls
        .iter()
        .filter(|c| c.ok && c.str("channel") == Some("DU0ALICE") && c.at < dm.at)
        .count();
    println!(
        "the P0's page DM went out {took:?} after it was opened, after {p2_before} of 30 P2 page DMs"
    );
    assert!(
        p2_before < 10,
        "the P0's page waited behind {p2_before} P2 pages to the same person ({took:?})"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_list_shows_what_another_replica_changed_once_postgresql_notified_it() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let config = format!("[outbox]\n{FAST_OUTBOX}");
    let a = Served::start(dir.path(), &db.url, &slack, &config).await;
    let b = Served::start(dir.path(), &db.url, &slack, &config).await;
    const LISTENING: &str = "klaxon_replica_changes_listening";
    const HEARD: &str = "klaxon_replica_changes_heard_total";
    let heard = || async { metric(&metrics_of(&b.base).await, HEARD) };
    wait_until(WAIT, "B to listen", || async {
        metric(&metrics_of(&b.base).await, LISTENING) == Some(1.0)
    })
    .await;
    // B reads the list, and keeps its copy while nothing changes.
    let empty = b.command(ALICE, "list").await;
    assert!(empty.contains("No open incidents"), "{empty}");
    assert_eq!(b.command(ALICE, "list").await, empty);
    // A opens an incident. No incident existed, so the first change B hears
    // of after this point is the open's transaction: its list then shows it.
    let before = heard().await.expect("heard");
    a.command(BOB, "open P2 Checkout down").await;
    wait_until(WAIT, "B to hear of the open", || async {
        heard().await.is_some_and(|n| n > before)
    })
    .await;
    let opened = b.command(ALICE, "list").await;
    assert!(
        opened.contains("INC-1") && opened.contains("Checkout down"),
        "{opened}"
    );
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// The outbox asks for several of a bucket's slots in one statement: it gets
/// them all while the burst allows, else none, and the bucket's pace holds
/// for what comes after (GCRA, as `pacing::reserve` keeps it).
async fn several_slots_are_taken_whole_or_not_at_all(backend: Backend) {
    use klaxon::store::pacing::{Pace, reserve, reserve_all};
    use klaxon::time::Millis;
    let db = TestDb::of(backend).await;
    let store = klaxon::store::Store::connect(&db.url)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let pool = store.pool();
    // One a second, bursts of 4.
    let pace = Pace::new(1.0, 4);
    let t0 = Millis(1_000_000);
    assert!(
        !reserve_all(pool, "C1", pace, t0, 5).await.expect("reserve"),
        "more than a burst is never granted"
    );
    assert!(reserve_all(pool, "C1", pace, t0, 3).await.expect("reserve"));
    assert!(
        !reserve_all(pool, "C1", pace, t0, 2).await.expect("reserve"),
        "one slot of the burst is left, not two"
    );
    assert_eq!(reserve(pool, "C1", pace, t0).await.expect("reserve"), None);
    assert_eq!(
        reserve(pool, "C1", pace, t0).await.expect("reserve"),
        Some(1_000),
        "the burst is spent: the next slot is a second away"
    );
    // Two seconds on, two slots came back.
    let t2 = Millis(t0.0 + 2_000);
    assert!(reserve_all(pool, "C1", pace, t2, 2).await.expect("reserve"));
    assert!(!reserve_all(pool, "C1", pace, t2, 1).await.expect("reserve"));
    // Another bucket is not touched.
    assert!(reserve_all(pool, "D1", pace, t0, 4).await.expect("reserve"));
}

#[tokio::test]
async fn several_slots_are_taken_whole_or_not_at_all_on_sqlite() {
    several_slots_are_taken_whole_or_not_at_all(Backend::Sqlite).await;
}

#[tokio::test]
async fn several_slots_are_taken_whole_or_not_at_all_on_postgres() {
    several_slots_are_taken_whole_or_not_at_all(Backend::Postgres).await;
}
