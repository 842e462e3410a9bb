//! The incident lifecycle through Slack's front door, checked at the fake Slack.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(15);

/// open → status → sev → assign → resolve, asserting the exact Slack calls.
async fn whole_flow(backend: Backend) {
    let db = TestDb::of(backend).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;

    let answer = app
        .command(ALICE, "open P1 Checkout API returning 500s")
        .await;
    assert!(answer.contains("INC-1"), "{answer}");
    assert!(answer.contains("P1"), "{answer}");

    let calls = slack.wait_for_count(1).await;
    let root = &calls[0];
    assert_eq!(root.method, "chat.postMessage");
    assert_eq!(root.str("channel"), Some(INCIDENT_CHANNEL));
    assert_eq!(root.str("thread_ts"), None, "the root is not a reply");
    let root_text = root.text();
    for needle in [
        "INCIDENT INC-1: [P1] Checkout API returning 500s",
        "*Status:* Investigating",
        "*Owner:* unassigned",
        "*Impact:* High",
        "*Response target:* 1 hour",
    ] {
        assert!(
            root_text.contains(needle),
            "root lacks {needle:?}:\n{root_text}"
        );
    }
    let root_ts = root.ts.clone().expect("root ts");
    let buttons: Vec<&str> = root.body["blocks"][1]["elements"]
        .as_array()
        .expect("buttons")
        .iter()
        .filter_map(|b| b["action_id"].as_str())
        .collect();
    assert_eq!(buttons, vec!["incident_ack", "incident_resolve"]);

    app.command(ALICE, "status Rolled back the deploy; error rate falling")
        .await;
    let calls = slack.wait_for_count(2).await;
    assert_eq!(calls[1].method, "chat.postMessage");
    assert_eq!(calls[1].str("thread_ts"), Some(root_ts.as_str()));
    assert!(
        calls[1]
            .text()
            .contains("Rolled back the deploy; error rate falling")
    );
    assert!(calls[1].text().contains("<@U0ALICE>"));

    let answer = app.command(BOB, "sev INC-1 P0").await;
    assert!(answer.contains("now P0"), "{answer}");
    let calls = slack.wait_for_count(4).await;
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].str("thread_ts"), Some(root_ts.as_str()));
    assert!(
        calls[2].text().contains("from *P1* to *P0*"),
        "{}",
        calls[2].text()
    );
    assert_eq!(calls[3].method, "chat.update");
    assert_eq!(calls[3].str("ts"), Some(root_ts.as_str()));
    assert_eq!(calls[3].str("channel"), Some(INCIDENT_CHANNEL));
    assert!(calls[3].text().contains("[P0]"), "{}", calls[3].text());

    app.command(BOB, "assign <@U0ALICE|alice>").await;
    let calls = slack.wait_for_count(6).await;
    assert!(
        calls[4].text().contains("made <@U0ALICE> the owner"),
        "{}",
        calls[4].text()
    );
    assert_eq!(calls[5].method, "chat.update");
    assert!(
        calls[5].text().contains("*Owner:* <@U0ALICE>"),
        "{}",
        calls[5].text()
    );

    let answer = app
        .command(ALICE, "resolve Rolled back to the previous release")
        .await;
    assert!(answer.contains("INC-1 resolved"), "{answer}");
    let calls = slack.wait_for_count(8).await;
    let summary = calls[6].text();
    assert_eq!(calls[6].str("thread_ts"), Some(root_ts.as_str()));
    for needle in [
        "RESOLVED: INC-1 Checkout API returning 500s",
        "*Duration:*",
        "*Root cause:* —",
        "*Resolution:* Rolled back to the previous release",
        "*Follow-up:* —",
        "*MTTA:* not acknowledged",
        "*MTTR:*",
        "declared the incident (P1): Checkout API returning 500s",
        "status update: Rolled back the deploy; error rate falling",
        "changed severity from P1 to P0",
        "assigned the incident to <@U0ALICE>",
        "resolved the incident: Rolled back to the previous release",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    assert_eq!(calls[7].method, "chat.update");
    assert!(calls[7].text().contains("RESOLVED: INC-1"));
    assert!(
        calls[7].body["blocks"][1].is_null(),
        "a resolved root has no buttons"
    );

    // Exactly these eight calls, nothing repeated.
    app.outbox_drained().await;
    app.settle().await;
    let methods: Vec<String> = slack.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.update",
            "chat.postMessage",
            "chat.update",
            "chat.postMessage",
            "chat.update"
        ]
    );

    let after = app.command(ALICE, "status INC-1 still fine").await;
    assert!(after.contains("already resolved"), "{after}");
    assert_eq!(app.command(ALICE, "list").await, "No open incidents. 🎉");
    app.stop().await;
}

#[tokio::test]
async fn the_whole_incident_flow_reaches_slack_in_order_on_sqlite() {
    whole_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_whole_incident_flow_reaches_slack_in_order_on_postgres() {
    whole_flow(Backend::Postgres).await;
}

#[tokio::test]
async fn commands_without_a_ref_act_on_the_channels_only_open_incident() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&["C0AAA", "C0BBB"]).await;
    let opts = Options {
        incident_channel: None,
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;

    app.command_in(ALICE, "C0AAA", "open P2 Search is slow")
        .await;
    app.command_in(ALICE, "C0BBB", "open P3 Typo on the status page")
        .await;
    let answer = app.command_in(ALICE, "C0AAA", "sev P1").await;
    assert!(answer.contains("INC-1 is now P1"), "{answer}");

    let none = app.command_in(ALICE, "C0CCC", "status hello").await;
    assert!(none.contains("no open incident in this channel"), "{none}");

    app.command_in(BOB, "C0AAA", "open P2 Search index lagging")
        .await;
    let two = app.command_in(ALICE, "C0AAA", "status investigating").await;
    assert!(two.contains("2 open incidents (INC-1, INC-3)"), "{two}");

    let named = app
        .command_in(ALICE, "C0CCC", "status INC-2 fixed the typo")
        .await;
    assert!(named.contains("INC-2"), "{named}");
    let calls = slack
        .wait_for(WAIT, "the status reply in C0BBB", |c| {
            c.iter().any(|c| c.text().contains("fixed the typo"))
        })
        .await;
    let reply = calls
        .iter()
        .find(|c| c.text().contains("fixed the typo"))
        .expect("reply");
    assert_eq!(reply.str("channel"), Some("C0BBB"));

    let missing = app.command_in(ALICE, "C0AAA", "ack INC-99").await;
    assert!(missing.contains("INC-99 does not exist"), "{missing}");
    app.stop().await;
}

#[tokio::test]
async fn the_acknowledge_button_acknowledges_once_and_tells_a_second_presser_who_did() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P0 Database primary down").await;
    slack.wait_for_count(1).await;

    let press = |user: &str| {
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": "x"},
            "channel": {"id": INCIDENT_CHANNEL},
            "trigger_id": "1.2.3",
            "actions": [{"action_id": "incident_ack", "value": "1", "type": "button"}],
        })
    };
    assert_eq!(app.interact(&press(BOB)).await.status(), 200);
    let calls = slack.wait_for_count(3).await;
    assert!(
        calls[1].text().contains("<@U0BOB> acknowledged INC-1"),
        "{}",
        calls[1].text()
    );
    assert!(calls[2].text().contains("*Status:* Acknowledged"));
    assert!(
        calls[2].text().contains("*Owner:* <@U0BOB>"),
        "the acknowledger becomes owner"
    );

    assert_eq!(app.interact(&press(ALICE)).await.status(), 200);
    let calls = slack.wait_for_count(4).await;
    assert_eq!(calls[3].method, "chat.postEphemeral");
    assert_eq!(calls[3].str("user"), Some(ALICE));
    assert!(
        calls[3].text().contains("already acknowledged by <@U0BOB>"),
        "{}",
        calls[3].text()
    );
    assert_eq!(
        app.count("timeline_events").await,
        2,
        "opened + one acknowledgement"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_resolve_button_opens_a_modal_whose_answers_go_into_the_summary() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P1 Payments failing").await;
    slack.wait_for_count(1).await;

    let press = json!({
        "type": "block_actions",
        "user": {"id": ALICE},
        "channel": {"id": INCIDENT_CHANNEL},
        "trigger_id": "trigger-123",
        "actions": [{"action_id": "incident_resolve", "value": "1"}],
    });
    assert_eq!(app.interact(&press).await.status(), 200);
    let modal = slack.wait_for_method("views.open").await;
    assert_eq!(modal.str("trigger_id"), Some("trigger-123"));
    assert_eq!(modal.body["view"]["private_metadata"], "1");

    let submit = |resolution: &str| {
        json!({
            "type": "view_submission",
            "user": {"id": BOB},
            "view": {
                "callback_id": "incident_resolve_modal",
                "private_metadata": "1",
                "state": {"values": {
                    "root_cause": {"root_cause": {"type": "plain_text_input", "value": "Expired TLS certificate <!channel>"}},
                    "resolution": {"resolution": {"type": "plain_text_input", "value": resolution}},
                    "follow_up": {"follow_up": {"type": "plain_text_input", "value": "OPS-77"}}
                }}
            }
        })
    };
    let empty = app.interact(&submit("   ")).await;
    assert_eq!(empty.status(), 200);
    let errors: serde_json::Value = empty.json().await.expect("json");
    assert_eq!(errors["response_action"], "errors");
    assert!(errors["errors"]["resolution"].is_string());

    let ok = app.interact(&submit("Renewed the certificate")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.text().await.expect("body"),
        "",
        "an empty answer closes the modal"
    );
    let calls = slack
        .wait_for(WAIT, "the summary", |c| {
            c.iter()
                .any(|c| c.text().contains("RESOLVED: INC-1 Payments failing"))
        })
        .await;
    let summary = calls
        .iter()
        .find(|c| c.text().contains("RESOLVED: INC-1 Payments failing"))
        .expect("summary")
        .text();
    assert!(
        summary.contains("*Root cause:* Expired TLS certificate &lt;!channel&gt;"),
        "{summary}"
    );
    assert!(summary.contains("*Resolution:* Renewed the certificate"));
    assert!(summary.contains("*Follow-up:* OPS-77"));
    assert!(!summary.contains("<!channel>"));

    let again = app.interact(&submit("twice")).await;
    let errors: serde_json::Value = again.json().await.expect("json");
    assert!(
        errors["errors"]["resolution"]
            .as_str()
            .is_some_and(|e| e.contains("already resolved")),
        "{errors}"
    );
    app.stop().await;
}

#[tokio::test]
async fn list_shows_open_incidents_most_severe_first_with_titles_escaped() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P3 Slow <admin> page").await;
    app.command(ALICE, "open P0 Everything is down").await;
    app.command(ALICE, "open Search degraded").await;
    let list = app.command(BOB, "list").await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "*3 open incidents*");
    assert!(
        lines[1].starts_with("• *INC-2* [P0] Everything is down"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("• *INC-3* [P2] Search degraded"),
        "default severity is P2: {list}"
    );
    assert!(lines[3].contains("Slow &lt;admin&gt; page"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn the_list_shows_every_change_at_once_though_its_reading_is_shared() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    assert!(
        app.command("U0ALICE", "list")
            .await
            .contains("No open incidents")
    );
    app.command("U0ALICE", "open P1 Checkout down").await;
    let first = app.command("U0ALICE", "list").await;
    assert!(
        first.contains("INC-1") && first.contains("no owner"),
        "{first}"
    );
    // The same list again comes from the shared reading …
    assert_eq!(app.command("U0ALICE", "list").await, first);
    // … and any write makes the next one read again.
    app.command("U0BOB", "ack INC-1").await;
    let acked = app.command("U0ALICE", "list").await;
    assert!(acked.contains("owner <@U0BOB>"), "{acked}");
    app.command("U0BOB", "resolve INC-1 fixed").await;
    assert!(
        app.command("U0ALICE", "list")
            .await
            .contains("No open incidents")
    );
    app.stop().await;
}
