//! A restart loses nothing: incidents stay, unsent messages go out, sent ones are not resent.

use std::time::Duration;

use crate::support::*;

async fn survives(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    slack.fail_always(Fault::Status(503));
    let first = TestApp::start(&db, &slack).await;
    first.command(ALICE, "open P1 Disk full on db-2").await;
    first.command(ALICE, "status freeing space").await;
    first.command(BOB, "sev P0").await;
    slack
        .wait_for(Duration::from_secs(10), "a failed attempt", |_| {
            !slack.calls().is_empty()
        })
        .await;
    first.stop().await;
    assert!(
        slack.delivered().is_empty(),
        "Slack was down the whole time"
    );

    slack.heal();
    let second = TestApp::start(&db, &slack).await;
    let delivered = slack.wait_for_count(4).await;
    let texts: Vec<String> = delivered.iter().map(|c| c.text()).collect();
    assert!(
        texts[0].contains("INCIDENT INC-1: [P1] Disk full on db-2"),
        "{texts:#?}"
    );
    assert!(texts[1].contains("freeing space"), "{texts:#?}");
    assert!(texts[2].contains("from *P1* to *P0*"), "{texts:#?}");
    assert_eq!(delivered[3].method, "chat.update");
    assert!(texts[3].contains("[P0]"));

    let list = second.command(ALICE, "list").await;
    assert!(list.contains("INC-1* [P0] Disk full on db-2"), "{list}");
    second.outbox_drained().await;
    second.stop().await;

    // A third start finds nothing left to send.
    let before = slack.calls().len();
    let third = TestApp::start(&db, &slack).await;
    third.settle().await;
    assert_eq!(slack.calls().len(), before, "nothing is sent twice");
    third.stop().await;
}

#[tokio::test]
async fn incidents_and_unsent_messages_survive_a_restart_on_sqlite() {
    survives(Backend::Sqlite).await;
}

#[tokio::test]
async fn incidents_and_unsent_messages_survive_a_restart_on_postgres() {
    survives(Backend::Postgres).await;
}
