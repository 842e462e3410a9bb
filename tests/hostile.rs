//! Hostile input: replays, slow clients, floods and garbage. Nothing gets in,
//! nothing falls over, nothing is stored that should not be.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn hardened(extra: &str) -> Options {
    Options {
        extra_toml: format!("alert_token = \"t0ken-for-hostile-tests\"\n{extra}"),
        ..Options::default()
    }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_replayed_slack_request_does_nothing_the_second_time() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    let body = command_form(ALICE, INCIDENT_CHANNEL, "open P1 Replayed outage");
    let ts = now_secs();
    let first = app
        .post_signed_with("/slack/commands", &body, SECRET, ts)
        .await;
    assert!(first.text().await.expect("body").contains("INC-1"));
    let replay = app
        .post_signed_with("/slack/commands", &body, SECRET, ts)
        .await;
    assert_eq!(replay.status(), 200);
    assert!(
        replay
            .text()
            .await
            .expect("body")
            .contains("already handled")
    );
    assert_eq!(app.count("incidents").await, 1, "the replay opened nothing");
    app.stop().await;
}

#[tokio::test]
async fn slow_loris_clients_are_cut_off_and_others_are_still_served() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        hardened("[http]\nheader_read_timeout = \"1s\"\n"),
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr(&app)).await.expect("connect");
        s.write_all(b"POST /slack/commands HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        slow.push(s);
    }
    // While 50 connections trickle their headers, a normal request is answered.
    assert_eq!(app.get("/healthz").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for mut s in slow {
        let mut buf = Vec::new();
        // The server has closed it (possibly after a 408): reading ends instead of hanging.
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow-loris connection was left open");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_overload_gets_503() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        hardened("[http]\nrequest_timeout = \"2s\"\nmax_concurrent_requests = 2\n"),
    )
    .await;
    // Two requests whose bodies never come hold both slots …
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr(&app)).await.expect("connect");
        s.write_all(
            b"POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\ntext=",
        )
        .await
        .expect("write");
        stuck.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // … so a third is refused at once instead of queueing.
    assert_eq!(app.get("/healthz").await.status(), 503);
    for mut s in stuck {
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    }
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "slots are free again"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains(r#"status="503""#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn invented_methods_and_paths_never_create_metric_series() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, hardened("")).await;
    let series = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with("http_requests_total"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
            .collect()
    };
    // One request of each kind first, so the series these requests may use exist.
    let warm = reqwest::Method::from_bytes(b"WARMUP").expect("method");
    let _ = app
        .client
        .request(warm, format!("{}/nowhere", app.base))
        .send()
        .await;
    let _ = app.client.get(format!("{}/nowhere", app.base)).send().await;
    let _ = app
        .client
        .post(format!("{}/nowhere", app.base))
        .send()
        .await;
    let before = series(&app.get("/metrics").await.text().await.expect("metrics"));
    for n in 0..500 {
        let method = reqwest::Method::from_bytes(format!("BREW{n}").as_bytes()).expect("method");
        for path in [
            format!("/x{n}"),
            format!("/alerts/a{n}"),
            "/metrics".to_string(),
        ] {
            let _ = app
                .client
                .request(method.clone(), format!("{}{path}", app.base))
                .send()
                .await;
        }
        let _ = app.client.get(format!("{}/p{n}/q", app.base)).send().await;
    }
    let after_text = app.get("/metrics").await.text().await.expect("metrics");
    let after = series(&after_text);
    let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    // At most: (unmatched, other, 404), (a matched route, other, 405) × 3.
    assert!(
        new.len() <= 4,
        "invented methods and paths added {} series: {new:#?}",
        new.len()
    );
    assert!(
        !after_text.contains("BREW"),
        "an invented method became a label"
    );
    assert!(
        !after_text.contains("/x1"),
        "an invented path became a label"
    );
    assert!(
        // Every (lane, job kind) has its series from the start: about 3 KiB a kind.
        after_text.len() < 96 * 1024,
        "/metrics stays small: {} bytes",
        after_text.len()
    );
    drop(slack);
    app.stop().await;
}

/// Runs `cases` random bodies against `path` and returns the statuses seen.
fn fuzz_endpoint(
    rt: &tokio::runtime::Runtime,
    app: &TestApp,
    path: &'static str,
    signed: bool,
    strategy: impl Strategy<Value = String>,
) -> Vec<u16> {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let seen = std::sync::Mutex::new(Vec::new());
    runner
        .run(&strategy, |body| {
            let status = rt.block_on(async {
                if signed {
                    app.post_signed(path, &body).await.status().as_u16()
                } else {
                    app.client
                        .post(format!("{}{path}", app.base))
                        .bearer_auth("t0ken-for-hostile-tests")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request")
                        .status()
                        .as_u16()
                }
            });
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(status);
            prop_assert!(status < 500, "{path} answered {status} to {body:?}");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    seen.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Slash-command forms with random text and random (often invalid) ids.
fn command_forms() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("U0ALICE".to_string()), "[A-Za-z0-9<>!@|&;$` -]{0,12}"],
        prop_oneof![Just(INCIDENT_CHANNEL.to_string()), "[A-Z0-9#]{0,12}"],
        prop_oneof![
            "(open|status|sev|assign|resolve|ack|escalate|silence|run|list|help|oncall|actions)( [ -~]{0,40})?",
            "[ -~\\n\\u{80}-\\u{3000}]{0,200}",
        ],
    )
        .prop_map(|(user, channel, text)| command_form(&user, &channel, &text))
}

/// JSON-ish alert payloads: valid skeletons with random values, and plain garbage.
fn alert_bodies() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,300}",
        (
            "[0-9]{1,2}",
            "[ -~]{0,20}",
            prop_oneof![Just("firing"), Just("resolved"), Just("bogus")],
            "[ -~]{0,30}",
            "[ -~]{0,40}",
        )
            .prop_map(|(version, key, status, fp, starts)| {
                serde_json::json!({
                    "version": version, "groupKey": key, "status": status, "receiver": "r",
                    "groupLabels": {"alertname": key}, "commonLabels": {}, "commonAnnotations": {},
                    "externalURL": "http://x", "truncatedAlerts": 0,
                    "alerts": [{"status": status, "labels": {"alertname": key}, "annotations": {},
                                "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp}]
                })
                .to_string()
            }),
    ]
}

/// Any Unicode, weighted towards what breaks text handling: multi-byte and
/// astral characters, combining marks, bidi controls, zero-width and control
/// characters, newlines.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => Just('\u{202E}'),
            1 => Just('\u{2066}'),
            1 => Just('\u{200B}'),
            1 => Just('\u{0301}'),
            1 => Just('\n'),
            1 => Just('\u{0}'),
            1 => Just('数'),
            1 => Just('🚨'),
            1 => Just(' '),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

const VERBS: &[&str] = &[
    "open",
    "open P1",
    "status",
    "status INC-1",
    "sev",
    "sev INC-1",
    "assign",
    "resolve",
    "resolve INC-1",
    "ack",
    "escalate",
    "silence",
    "silence INC-1",
    "run",
    "run INC-1",
    "list",
    "help",
    "reopen",
    "oncall",
    "actions",
];

#[test]
fn every_text_field_takes_any_unicode_and_gets_an_answer_without_a_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = TestDb::sqlite();
    let (slack, app) = rt.block_on(async {
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        let app = TestApp::start_with(&db, &slack, hardened("")).await;
        app.command(ALICE, "open P2 Something to act on").await;
        (slack, app)
    });
    // Every subcommand, with any text where an INC-n, a severity, a person
    // or a title may stand.
    let commands = fuzz_endpoint(
        &rt,
        &app,
        "/slack/commands",
        true,
        (proptest::sample::select(VERBS), any_text(24)).prop_map(|(verb, text)| {
            command_form(ALICE, INCIDENT_CHANNEL, &format!("{verb} {text}"))
        }),
    );
    assert!(
        commands.iter().all(|s| *s == 200),
        "every command gets an answer: {commands:?}"
    );
    // Button presses, select menus and the resolve form, with any text in every field.
    fuzz_endpoint(
        &rt,
        &app,
        "/slack/interactions",
        true,
        (any_text(16), any_text(16), any_text(40), 0..3usize).prop_map(|(action, value, text, kind)| {
            let payload = match kind {
                0 => serde_json::json!({
                    "type": "block_actions", "user": {"id": "U0ALICE"}, "channel": {"id": INCIDENT_CHANNEL},
                    "trigger_id": "1.2.3", "response_url": text,
                    "actions": [{"action_id": action, "value": value, "type": "button"}],
                }),
                1 => serde_json::json!({
                    "type": "block_actions", "user": {"id": "U0ALICE"}, "channel": {"id": INCIDENT_CHANNEL},
                    "trigger_id": "1.2.3",
                    "actions": [{"action_id": "incident_run", "block_id": value, "type": "static_select",
                                 "selected_option": {"value": action}}],
                }),
                _ => serde_json::json!({
                    "type": "view_submission", "user": {"id": "U0ALICE"},
                    "view": {"callback_id": "incident_resolve_modal", "private_metadata": value,
                             "state": {"values": {
                                 "root_cause": {"root_cause": {"type": "plain_text_input", "value": text}},
                                 "resolution": {"resolution": {"type": "plain_text_input", "value": action}},
                             }}},
                }),
            };
            serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form")
        }),
    );
    // The DM `ack`, and other direct messages, with any text.
    fuzz_endpoint(
        &rt,
        &app,
        "/slack/events",
        true,
        (any_text(40), "[A-Za-z0-9]{6}").prop_map(|(text, id)| {
            serde_json::json!({
                "token": "x", "team_id": "T0001", "api_app_id": "A0KLAXON", "type": "event_callback",
                "event_id": format!("Ev{id}"), "event_time": now_secs(),
                "event": {"type": "message", "channel_type": "im", "channel": "D0ALICEDM", "user": "U0ALICE",
                          "text": text, "ts": "1795367100.000100"}
            })
            .to_string()
        }),
    );
    // Alerts whose names, labels, annotations and links are any text.
    fuzz_endpoint(
        &rt,
        &app,
        "/alerts/alertmanager",
        false,
        (any_text(20), any_text(20), any_text(60), any_text(30)).prop_map(|(name, value, summary, url)| {
            serde_json::json!({
                "version": "4", "groupKey": format!("{{}}:{{alertname={name:?}}}"), "status": "firing",
                "receiver": "r", "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name},
                "commonAnnotations": {"summary": summary}, "externalURL": "http://x", "truncatedAlerts": 0,
                "alerts": [{"status": "firing", "labels": {"alertname": name, "instance": value},
                            "annotations": {"summary": summary, "runbook_url": url, "description": value},
                            "startsAt": "2026-11-30T05:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": url, "fingerprint": format!("fp-{value}")}]
            })
            .to_string()
        }),
    );
    rt.block_on(async {
        assert_eq!(app.get("/readyz").await.status(), 200, "still healthy");
        drop(slack);
        app.stop().await;
    });
}

#[test]
fn every_endpoint_answers_random_input_without_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = TestDb::sqlite();
    let (slack, app) = rt.block_on(async {
        let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
        let app = TestApp::start_with(&db, &slack, hardened("")).await;
        (slack, app)
    });
    let commands = fuzz_endpoint(&rt, &app, "/slack/commands", true, command_forms());
    assert!(
        commands.contains(&200) && commands.contains(&400),
        "both kinds were generated: {commands:?}"
    );
    fuzz_endpoint(
        &rt,
        &app,
        "/slack/interactions",
        true,
        "payload=[ -~]{0,300}".prop_map(|s| s),
    );
    fuzz_endpoint(
        &rt,
        &app,
        "/slack/events",
        true,
        "[ -~]{0,300}".prop_map(|s| s),
    );
    fuzz_endpoint(&rt, &app, "/alerts/alertmanager", false, alert_bodies());
    fuzz_endpoint(&rt, &app, "/alerts/grafana", false, alert_bodies());
    rt.block_on(async {
        assert_eq!(app.get("/readyz").await.status(), 200, "still healthy");
        drop(slack);
        app.stop().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_command_grammar_never_panics_and_explains_every_refusal(text in "[ -~\\n\\u{80}-\\u{2000}]{0,120}") {
        if let Err(e) = klaxon::incident::command::parse(&text) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.usage.starts_with("/incident"));
        }
    }

    #[test]
    fn alert_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = klaxon::alerts::payload::parse_alertmanager(&body);
        let _ = klaxon::alerts::payload::parse_grafana(&body);
    }

    #[test]
    fn rendered_user_text_never_mentions_anyone(title in "[ -~]{1,80}") {
        let t = klaxon::templates::Templates::load(None).expect("templates");
        let mut i = klaxon::templates::sample_incident();
        i.title = title;
        i.owner = None;
        let text = t.render(klaxon::templates::TemplateName::IncidentOpened, &klaxon::templates::incident_data(&i)).expect("renders");
        prop_assert!(!text.contains("<!"), "{text}");
        prop_assert!(!text.contains("<@"), "{text}");
    }
}

#[tokio::test]
async fn only_configured_people_may_change_the_severity_of_someone_elses_incident() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let opts = Options {
        extra_toml: "[incidents]\nseverity_changers = [\"user:U0LEAD\"]\n".into(),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, opts).await;
    app.command(ALICE, "open P2 Search slow").await;
    let refused = app.command(BOB, "sev P0").await;
    assert!(refused.starts_with('⛔'), "{refused}");
    assert!(refused.contains("severity_changers"), "{refused}");
    assert!(
        app.command(ALICE, "sev P1").await.contains("now P1"),
        "the opener may"
    );
    assert!(
        app.command("U0LEAD", "sev INC-1 P0")
            .await
            .contains("now P0"),
        "a configured changer may"
    );
    let audit = klaxon::store::actions::audit_log(app.store().pool())
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "refused");
    assert_eq!(audit[0].1.as_deref(), Some(BOB));
    app.stop().await;
}
