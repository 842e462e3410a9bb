//! Reminders for incidents gone quiet, re-pages after a stale
//! acknowledgement, and pages that reach every member of a user group.
//! Klaxon's clock moves forward; nothing here waits for real.

use std::time::Duration;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";

fn options(extra: &str) -> Options {
    Options {
        extra_toml: format!("{}\n{extra}", three_level_ladder("10m")),
        ..Options::default()
    }
}

fn texts_with(slack: &FakeSlack, needle: &str) -> Vec<String> {
    slack
        .delivered()
        .iter()
        .map(fake_slack::Call::text)
        .filter(|t| t.contains(needle))
        .collect()
}

async fn state_of_first(app: &TestApp) -> klaxon::incident::IncidentState {
    all_incidents(app.store()).await[0].state
}

/// Moves the clock and waits until what fell due reached Slack.
async fn after(app: &TestApp, d: Duration) {
    app.advance(d).await;
    app.outbox_drained().await;
}

#[tokio::test]
async fn a_quiet_p0_is_reminded_once_per_interval_naming_its_owner_until_it_resolves() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P0 Checkout down").await;
    app.command(ALICE, "ack INC-1").await;

    after(&app, 29 * MINUTE).await;
    assert!(texts_with(&slack, "⏰").is_empty(), "not before 30 minutes");
    after(&app, MINUTE).await;
    let first = slack.wait_for_text("⏰ No status update on INC-1").await;
    assert!(first.contains("since it opened 30m ago"), "{first}");
    assert!(
        first.contains("P0 incidents promise one every 30m"),
        "{first}"
    );
    assert!(
        first.contains("<@U0ALICE>, post one with `/incident status INC-1"),
        "{first}"
    );

    // A status update restarts the interval.
    after(&app, 10 * MINUTE).await;
    app.command(ALICE, "status INC-1 failing over the database")
        .await;
    after(&app, 29 * MINUTE).await;
    assert_eq!(
        texts_with(&slack, "⏰").len(),
        1,
        "none within 30m of the update"
    );
    after(&app, MINUTE).await;
    let calls = slack
        .wait_for(WAIT, "the second reminder", |c| {
            c.iter().filter(|c| c.text().contains("⏰")).count() == 2
        })
        .await;
    let second = calls
        .iter()
        .map(fake_slack::Call::text)
        .rfind(|t| t.contains("⏰"))
        .expect("second");
    assert!(
        second.contains("No status update on INC-1 for 30m"),
        "{second}"
    );

    // Resolved: no more.
    app.command(ALICE, "resolve INC-1 failed over").await;
    after(&app, 3 * 60 * MINUTE).await;
    assert_eq!(texts_with(&slack, "⏰").len(), 2);
    let summary = slack.wait_for_text("RESOLVED: INC-1").await;
    assert!(
        summary.contains("reminder: no status update"),
        "in the timeline: {summary}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_for_an_incident_nobody_owns_names_its_first_level_and_p2_gets_none() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(BOB, "open P1 Search slow").await;
    app.command(BOB, "open P2 Thumbnails missing").await;
    after(&app, 60 * MINUTE).await;
    let reminder = slack.wait_for_text("⏰ No status update on INC-1").await;
    assert!(
        reminder
            .contains("Nobody owns this incident: <@U0ALICE>, take it with `/incident ack INC-1`"),
        "{reminder}"
    );
    after(&app, 5 * 60 * MINUTE).await;
    assert!(
        texts_with(&slack, "⏰ No status update on INC-2").is_empty(),
        "P2 has no reminders by default"
    );
    let help = app.command(BOB, "help").await;
    assert!(
        help.contains(
            "Without a status update, Klaxon reminds the thread of a P0 after 30m, a P1 after 1h."
        ),
        "{help}"
    );
    app.stop().await;
}

const STALE_ACK: &str =
    "[incidents]\nack_timeout = { P1 = \"30m\" }\nupdate_every = { P1 = \"off\" }\n";

#[tokio::test]
async fn a_stale_acknowledgement_pages_the_owner_again_then_resumes_the_ladder_if_nobody_answers() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options(STALE_ACK)).await;
    app.command(BOB, "open P1 Payments failing").await;
    app.settle().await;
    app.command(ALICE, "ack INC-1").await;
    slack
        .wait_for(WAIT, "the first page", |_| {
            dms_to(&slack.delivered(), ALICE) == 1
        })
        .await;

    after(&app, 29 * MINUTE).await;
    assert_eq!(dms_to(&slack.delivered(), ALICE), 1, "not stale yet");
    after(&app, MINUTE).await;
    slack
        .wait_for(WAIT, "the re-page", |_| {
            dms_to(&slack.delivered(), ALICE) == 2
        })
        .await;
    let thread = slack.wait_for_text("🔔 INC-1 was acknowledged but").await;
    assert!(
        thread.contains("for 30m; paging <@U0ALICE> again"),
        "{thread}"
    );
    assert!(thread.contains("*team lead* is paged"), "{thread}");
    assert_eq!(dms_to(&slack.delivered(), "U0LEAD"), 0);

    // Nobody answers within the level's wait: unacknowledged, the next level is paged.
    after(&app, 10 * MINUTE).await;
    slack
        .wait_for(WAIT, "the team lead", |_| {
            dms_to(&slack.delivered(), "U0LEAD") == 1
        })
        .await;
    slack
        .wait_for_text("Nobody answered the re-page for INC-1: it is unacknowledged again")
        .await;
    assert_eq!(
        state_of_first(&app).await,
        klaxon::incident::IncidentState::Open
    );

    // The team lead takes it: the next stale re-page goes to them, not to the
    // silent first acknowledger.
    let again = app.command("U0LEAD", "ack INC-1").await;
    assert_eq!(again, "You acknowledged INC-1 again.");
    slack
        .wait_for_text("acknowledged INC-1 again (its MTTA stays 0s, the first acknowledgement)")
        .await;
    after(&app, 30 * MINUTE).await;
    slack
        .wait_for(WAIT, "the team lead re-paged", |c| dms_to(c, "U0LEAD") == 2)
        .await;
    assert_eq!(
        dms_to(&slack.delivered(), ALICE),
        2,
        "not the silent one again"
    );
    let dm = slack
        .delivered()
        .into_iter()
        .rfind(|c| c.str("channel") == Some("DU0LEAD"))
        .expect("the lead's DM")
        .text();
    assert!(
        dm.contains("paged as *the person who acknowledged it*"),
        "{dm}"
    );
    // MTTA counts to the first acknowledgement.
    app.command("U0LEAD", "resolve INC-1 fixed").await;
    let summary = slack.wait_for_text("RESOLVED: INC-1").await;
    assert!(summary.contains("*MTTA:* 0s"), "{summary}");
    app.stop().await;
}

#[tokio::test]
async fn answering_the_re_page_keeps_the_incident_acknowledged_and_the_ladder_quiet() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options(STALE_ACK)).await;
    app.command(BOB, "open P1 Payments failing").await;
    app.settle().await;
    app.command(ALICE, "ack INC-1").await;
    after(&app, 30 * MINUTE).await;
    slack
        .wait_for(WAIT, "the re-page", |_| {
            dms_to(&slack.delivered(), ALICE) == 2
        })
        .await;

    let answer = app.command(ALICE, "ack INC-1").await;
    assert!(answer.contains("Noted: you are still on INC-1"), "{answer}");
    slack.wait_for_text("👍 <@U0ALICE> is still on INC-1").await;
    after(&app, 20 * MINUTE).await;
    assert_eq!(
        dms_to(&slack.delivered(), "U0LEAD"),
        0,
        "the ladder stays quiet"
    );
    assert_eq!(
        state_of_first(&app).await,
        klaxon::incident::IncidentState::Acknowledged
    );
    // A second "ack" is an ordinary one again: nothing is outstanding.
    let again = app.command(ALICE, "ack INC-1").await;
    assert!(again.contains("was already acknowledged"), "{again}");
    // The answer counts as attention: the next re-page comes 30m after it.
    after(&app, 9 * MINUTE).await;
    assert_eq!(dms_to(&slack.delivered(), ALICE), 2);
    after(&app, MINUTE).await;
    slack
        .wait_for(WAIT, "the second re-page", |_| {
            dms_to(&slack.delivered(), ALICE) == 3
        })
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_level_naming_a_user_group_pages_each_member_by_direct_message_once() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.set_group("S0ONCALL", &["U0ANN", "U0BEN", ALICE]);
    let ladder = r#"
[[escalation.ladders]]
name = "default"
levels = [
  { name = "platform on-call", notify = ["user:U0ALICE", "group:S0ONCALL"], wait = "10m" },
]
"#;
    let app = TestApp::start_with(
        &db,
        &slack,
        Options {
            extra_toml: ladder.into(),
            ..Options::default()
        },
    )
    .await;
    app.command(BOB, "open P1 Queue backlog growing").await;
    slack
        .wait_for(WAIT, "each member's DM", |_| {
            dms_to(&slack.delivered(), "U0ANN") == 1 && dms_to(&slack.delivered(), "U0BEN") == 1
        })
        .await;
    app.settle().await;
    app.outbox_drained().await;
    assert_eq!(
        dms_to(&slack.delivered(), ALICE),
        1,
        "named and a member: paged once"
    );
    let page = slack.wait_for_text("*Paging platform on-call*").await;
    assert!(
        page.contains("<!subteam^S0ONCALL>"),
        "the group is mentioned: {page}"
    );
    let pages: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM pages")
            .fetch_one(app.store().pool())
            .await
            .expect("pages"),
        "n",
    );
    assert_eq!(
        pages, 3,
        "every person paged is recorded (DM acks find the incident)"
    );
    // A member can acknowledge from the DM's words.
    let dm_ack = app.command("U0BEN", "ack").await;
    assert!(dm_ack.contains("INC-1"), "{dm_ack}");
    app.stop().await;
}
