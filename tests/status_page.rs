//! The status page and the incident history: what the public may see (and
//! what it must never see), component states from incidents and by hand,
//! the JSON against its schema, the feeds through a feed parser, who may
//! read the history, its filters, and the pages in a real browser
//! (headless Chromium with axe-core, `tests/browser/`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const HISTORY_TOKEN: &str = "7d1e9b3c5a2f4e6d8c0b1a3f5e7d9c2b";
const ALERT_TOKEN: &str = "alert-t0ken-for-status-tests";
const ALICE: &str = "U0ALICE";
const BOB: &str = "U0BOB";

/// Words that exist only inside the team: none may reach the public page.
const INTERNAL: &[&str] = &[
    "payments-db-7",
    "Stripe key",
    "hunter2",
    "search cluster OOM",
    ALICE,
    BOB,
    "alertname",
];

fn options(extra: &str) -> Options {
    Options {
        extra_toml: format!(
            r#"history_token = "{HISTORY_TOKEN}"
alert_token = "{ALERT_TOKEN}"
{extra}
[status]
title = "Acme status"

[[status.components]]
name = "checkout"
title = "Checkout"
description = "Cart and card payments"
services = ["payments-api"]

[[status.components]]
name = "search"
title = "Search"

[[status.components]]
name = "login"
title = "Login"
"#
        ),
        ..Options::default()
    }
}

/// Opens the two incidents of the page's story: a P1 on checkout told to the
/// public, and a P0 on search kept internal.
async fn two_incidents(app: &TestApp) {
    let answer = app
        .command(
            ALICE,
            "open P1 --component checkout Stripe key rotated on payments-db-7 broke card payments",
        )
        .await;
    assert!(answer.contains("INC-1"), "{answer}");
    let answer = app
        .command(
            ALICE,
            "status INC-1 --public Some card payments fail. We have found the cause and are fixing it.",
        )
        .await;
    assert!(answer.contains("published on the status page"), "{answer}");
    app.command(
        ALICE,
        "status INC-1 internal: the password is hunter2, rotate it",
    )
    .await;
    let answer = app
        .command(BOB, "open P0 --component search search cluster OOM on es-3")
        .await;
    assert!(answer.contains("INC-2"), "{answer}");
}

async fn body(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = app.get(path).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.expect("body"), headers)
}

async fn status_json(app: &TestApp) -> Value {
    let (status, text, _) = body(app, "/status.json").await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("JSON")
}

fn component<'a>(page: &'a Value, name: &str) -> &'a Value {
    page["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == name))
        .unwrap_or_else(|| panic!("no component {name} in {page}"))
}

fn schema_errors(page: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("../docs/status.schema.json"))
        .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(page)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

async fn the_public_sees_component_states_and_published_words_only(kind: Backend) {
    let db = TestDb::of(kind).await;
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;

    let page = status_json(&app).await;
    assert_eq!(schema_errors(&page), Vec::<String>::new());
    assert_eq!(component(&page, "checkout")["status"], "partial_outage");
    assert_eq!(component(&page, "search")["status"], "major_outage");
    assert_eq!(component(&page, "login")["status"], "operational");
    assert_eq!(page["status"]["indicator"], "critical");
    // Only the incident with a public update is listed, with the public words.
    let incidents = page["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{page}");
    assert_eq!(incidents[0]["id"], "INC-1");
    assert_eq!(incidents[0]["name"], "Partial outage: Checkout");
    assert_eq!(
        incidents[0]["incident_updates"][0]["body"],
        "Some card payments fail. We have found the cause and are fixing it."
    );
    assert_eq!(
        incidents[0]["incident_updates"][0]["status"],
        "investigating"
    );

    let (status, html, headers) = body(&app, "/status").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=30");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("default-src 'none'")
    );
    assert!(html.contains("Some card payments fail."), "{html}");
    assert!(html.contains(r#"data-overall="major_outage""#));
    for source in [html.as_str(), &page.to_string()] {
        for word in INTERNAL {
            assert!(!source.contains(word), "`{word}` reached the public page");
        }
    }

    // Both feeds parse with a feed library and carry the one public update.
    for path in ["/status.rss", "/status.atom"] {
        let (status, text, headers) = body(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .expect("ascii")
                .contains("xml"),
            "{path}"
        );
        let feed = feed_rs::parser::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("{path} does not parse: {e}\n{text}"));
        assert_eq!(feed.entries.len(), 1, "{path}: {text}");
        let entry = &feed.entries[0];
        let said = entry
            .summary
            .as_ref()
            .map(|s| s.content.clone())
            .unwrap_or_default();
        assert!(said.contains("Some card payments fail."), "{path}: {said}");
        assert!(entry.updated.or(entry.published).is_some(), "{path}");
        for word in INTERNAL {
            assert!(!text.contains(word), "`{word}` reached {path}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_public_sees_component_states_and_published_words_only_on_sqlite() {
    the_public_sees_component_states_and_published_words_only(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_public_sees_component_states_and_published_words_only_on_postgres() {
    the_public_sees_component_states_and_published_words_only(Backend::Postgres).await;
}

#[tokio::test]
async fn a_state_set_by_hand_wins_until_auto_and_resolving_tells_the_public() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;

    let answer = app.command(BOB, "component login degraded").await;
    assert!(answer.contains("Degraded performance"), "{answer}");
    assert_eq!(
        component(&status_json(&app).await, "login")["status"],
        "degraded_performance"
    );
    let answer = app.command(BOB, "component checkout operational").await;
    assert!(answer.contains("Operational"), "{answer}");
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "operational"
    );
    app.command(BOB, "component checkout auto").await;
    app.command(BOB, "component login auto").await;
    let page = status_json(&app).await;
    assert_eq!(component(&page, "checkout")["status"], "partial_outage");
    assert_eq!(component(&page, "login")["status"], "operational");

    // Resolving: the public is told, the component recovers, today's bar keeps it.
    let answer = app
        .command(ALICE, "resolve INC-1 rolled the key back")
        .await;
    assert!(answer.contains("INC-1"), "{answer}");
    let page = status_json(&app).await;
    assert_eq!(schema_errors(&page), Vec::<String>::new());
    assert_eq!(component(&page, "checkout")["status"], "operational");
    assert_eq!(page["incidents"].as_array().map(Vec::len), Some(0));
    let past = &page["past_incidents"][0];
    assert_eq!(past["id"], "INC-1");
    assert_eq!(past["status"], "resolved");
    assert_eq!(past["incident_updates"][0]["status"], "resolved");
    assert_eq!(
        past["incident_updates"][0]["body"],
        klaxon::usecases::statuspage::RESOLVED_TEXT
    );
    let checkout_days = page["history"]
        .as_array()
        .and_then(|h| h.iter().find(|c| c["component"] == "checkout"))
        .map(|c| c["days"].clone())
        .expect("checkout's days");
    assert_eq!(checkout_days[89]["status"], "partial_outage");
    assert_eq!(checkout_days[88]["status"], "operational");
    // Reopened: current again, and the public is told so.
    app.command(ALICE, "reopen INC-1").await;
    let page = status_json(&app).await;
    assert_eq!(schema_errors(&page), Vec::<String>::new());
    assert_eq!(component(&page, "checkout")["status"], "partial_outage");
    assert_eq!(page["incidents"][0]["id"], "INC-1", "{page}");
    assert_eq!(
        page["incidents"][0]["incident_updates"][0]["body"],
        klaxon::usecases::statuspage::REOPENED_TEXT
    );
    app.command(ALICE, "resolve INC-1 rolled the key back again")
        .await;
    // The internal incident never reached the public, resolved or not.
    let answer = app.command(BOB, "resolve INC-2 restarted es-3").await;
    assert!(answer.contains("INC-2"), "{answer}");
    let page = status_json(&app).await;
    assert_eq!(page["past_incidents"].as_array().map(Vec::len), Some(1));
    app.stop().await;
}

#[tokio::test]
async fn wrong_component_commands_are_refused_and_change_nothing() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(ALICE, "open P2 --component checkout slow carts")
        .await;
    let before = status_json(&app).await;
    let incidents = app.count("incidents").await;
    for (text, says) in [
        (
            "open P1 --component payments card payments fail",
            "is not a status-page component",
        ),
        ("open P1 --component", "needs a component name"),
        ("open P1 --component Checkout! x", "is not a component name"),
        ("components INC-1 nope", "is not a status-page component"),
        ("components INC-9 search", "INC-9"),
        ("component login sideways", "is not a component state"),
        (
            "component nope major_outage",
            "is not a status-page component",
        ),
        ("component login", "which component, and which state"),
        ("status INC-1 --public", "status update"),
    ] {
        let answer = app.command(ALICE, text).await;
        assert!(answer.contains(says), "`{text}` answered: {answer}");
    }
    assert_eq!(app.count("incidents").await, incidents);
    assert_eq!(app.count("public_updates").await, 0);
    assert_eq!(app.count("component_overrides").await, 0);
    let after = status_json(&app).await;
    assert_eq!(before["components"], after["components"]);

    // And the right command does change it.
    let answer = app
        .command(ALICE, "components INC-1 checkout, search")
        .await;
    assert!(answer.contains("Checkout, Search"), "{answer}");
    let page = status_json(&app).await;
    assert_eq!(component(&page, "search")["status"], "degraded_performance");
    let answer = app.command(ALICE, "components INC-1 none").await;
    assert!(answer.contains("no status-page component"), "{answer}");
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "operational"
    );
    app.stop().await;
}

/// Alertmanager's notification of a firing `PaymentsDown` (service
/// `payments-api`, which the `checkout` component names).
fn payments_down() -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"PaymentsDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "klaxon",
        "groupLabels": {"alertname": "PaymentsDown"},
        "commonLabels": {"alertname": "PaymentsDown", "severity": "critical", "service": "payments-api"},
        "commonAnnotations": {"summary": "payments-api answers 5xx"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "PaymentsDown", "severity": "critical", "service": "payments-api"},
            "annotations": {"summary": "payments-api answers 5xx"},
            "startsAt": "2026-11-22T17:04:09Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "f1",
        }],
    })
}

#[tokio::test]
async fn an_alert_touches_the_component_its_service_names() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    let notification = payments_down();
    let r = app
        .client
        .post(format!("{}/alerts/alertmanager", app.base))
        .bearer_auth(ALERT_TOKEN)
        .json(&notification)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let page = status_json(&app).await;
    assert_eq!(component(&page, "checkout")["status"], "major_outage");
    assert_eq!(component(&page, "search")["status"], "operational");
    // No public update: listed nowhere, and nothing of the alert shows.
    assert_eq!(page["incidents"].as_array().map(Vec::len), Some(0));
    assert!(!page.to_string().contains("PaymentsDown"));
    app.stop().await;
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = app.client.get(format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn the_history_needs_a_token_a_session_or_a_trusted_proxy() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(
        &db,
        &slack,
        options("[history]\ntrusted_proxy_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    )
    .await;
    two_incidents(&app).await;
    let bearer = format!("Bearer {HISTORY_TOKEN}");

    let (status, _) = get_with(&app, "/incidents", &[]).await;
    assert_eq!(status, 401);
    let (status, _) = get_with(
        &app,
        "/incidents/INC-1",
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, 401);
    // A browser gets the sign-in form.
    let (status, html) = get_with(&app, "/incidents", &[("accept", "text/html")]).await;
    assert_eq!(status, 401);
    assert!(html.contains(r#"action="/incidents/login""#), "{html}");
    // The status page never needs one.
    assert_eq!(get_with(&app, "/status", &[]).await.0, 200);

    let (status, html) = get_with(&app, "/incidents", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(html.contains("search cluster OOM on es-3"), "{html}");
    assert!(html.contains("Stripe key rotated"), "{html}");
    let (status, html) = get_with(&app, "/incidents/INC-1", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(html.contains("internal: the password is hunter2"), "{html}");
    assert!(html.contains("<svg"), "{html}");
    assert_eq!(
        get_with(&app, "/incidents/INC-99", &[("authorization", &bearer)])
            .await
            .0,
        404
    );

    // The sign-in form: a wrong token is refused, the right one gives a session.
    let no_redirects = no_redirects();
    let r = no_redirects
        .post(format!("{}/incidents/login", app.base))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = no_redirects
        .post(format!("{}/incidents/login", app.base))
        .form(&[("token", HISTORY_TOKEN)])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(HISTORY_TOKEN),
        "the token itself is stored in the browser"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();
    assert_eq!(
        get_with(&app, "/incidents", &[("cookie", &session)])
            .await
            .0,
        200
    );
    let forged = format!("{}0", &session[..session.len() - 1]);
    assert_eq!(
        get_with(&app, "/incidents", &[("cookie", &forged)]).await.0,
        401
    );

    // The trusted proxy (this test connects from 127.0.0.1): its header is enough.
    assert_eq!(
        get_with(
            &app,
            "/incidents",
            &[("x-forwarded-user", "alice@example.com")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get_with(
            &app,
            "/incidents/INC-1/postmortem.md",
            &[("x-forwarded-user", "alice@example.com")]
        )
        .await
        .0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_header_from_an_untrusted_address_opens_nothing_and_no_token_means_no_history() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    // The only trusted proxy is elsewhere: the same header from here proves nothing.
    let app = TestApp::start_with(
        &db,
        &slack,
        options("[history]\ntrusted_proxy_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"10.1.2.3\"]\n"),
    )
    .await;
    assert_eq!(
        get_with(&app, "/incidents", &[("x-forwarded-user", "mallory")])
            .await
            .0,
        401
    );
    app.stop().await;

    let db = TestDb::sqlite();
    let app = TestApp::start_with(&db, &slack, Options::default()).await;
    assert_eq!(get_with(&app, "/incidents", &[]).await.0, 404);
    // Without components the status page still answers, all operational.
    let page = status_json(&app).await;
    assert_eq!(page["status"]["indicator"], "none");
    assert_eq!(schema_errors(&page), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn the_history_filters_by_severity_source_and_month() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;
    let bearer = format!("Bearer {HISTORY_TOKEN}");
    let auth = [("authorization", bearer.as_str())];

    let (status, html) = get_with(&app, "/incidents?severity=P0", &auth).await;
    assert_eq!(status, 200);
    assert!(html.contains("search cluster OOM"), "{html}");
    assert!(!html.contains("Stripe key"), "{html}");
    let (_, html) = get_with(&app, "/incidents?source=alertmanager", &auth).await;
    assert!(html.contains("No incidents match"), "{html}");
    let this_month = app.clock().now().timestamp().strftime("%Y-%m").to_string();
    let (_, html) = get_with(&app, &format!("/incidents?month={this_month}"), &auth).await;
    assert!(
        html.contains("Stripe key") && html.contains("search cluster"),
        "{html}"
    );
    let (_, html) = get_with(&app, "/incidents?month=2001-01", &auth).await;
    assert!(html.contains("No incidents match"), "{html}");
    for bad in [
        "severity=P9",
        "source=pager",
        "month=11-2026",
        "page=0",
        "page=x",
    ] {
        let (status, text) = get_with(&app, &format!("/incidents?{bad}"), &auth).await;
        assert_eq!(status, 400, "{bad}: {text}");
    }
    // The charts count what the list shows, in numbers as well as bars.
    let (_, html) = get_with(&app, "/incidents", &auth).await;
    for id in ["chart-incidents", "chart-mtta", "chart-mttr", "chart-pages"] {
        assert!(html.contains(&format!(r#"<figure id="{id}">"#)), "{id}");
    }
    assert!(html.contains("2 incidents in 12 weeks"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn the_status_page_can_have_a_listener_of_its_own_that_serves_nothing_else() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let port = free_port();
    let mut opts = options("");
    opts.extra_toml = opts.extra_toml.replace(
        "[status]\n",
        &format!("[status]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let app = TestApp::start_with(&db, &slack, opts).await;
    two_incidents(&app).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .bearer_auth(HISTORY_TOKEN)
                .send()
                .await
                .expect("request");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let (status, html) = get("/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Some card payments fail."), "{html}");
    assert_eq!(get("/status.json").await.0, 200);
    for internal in [
        "/incidents",
        "/incidents/INC-1",
        "/metrics",
        "/slack/commands",
    ] {
        assert_eq!(get(internal).await.0, 404, "{internal}");
    }
    app.stop().await;
}

#[tokio::test]
async fn public_text_is_plain_text_and_a_mention_is_refused_before_anything_is_posted() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(ALICE, "open P1 --component checkout payments-db-7 is down")
        .await;
    app.settle().await;
    let events = app.count("timeline_events").await;
    for mention in [
        "status INC-1 --public <@U0ALICE|alice> is on it",
        "status INC-1 --public <!here> we are on it",
        "status INC-1 --public see <#C0INCIDENTS|incidents>",
    ] {
        let answer = app.command(ALICE, mention).await;
        assert!(answer.contains("cannot mention"), "{mention}: {answer}");
    }
    assert_eq!(app.count("public_updates").await, 0);
    assert_eq!(
        app.count("timeline_events").await,
        events,
        "nothing was posted"
    );

    // What Slack sends (its escaping, a link with a label, characters XML
    // forbids, markup) reaches the page as plain text and the feeds stay valid.
    let answer = app
        .command(
            ALICE,
            "status INC-1 --public R&amp;D &lt;script&gt;alert(1)&lt;/script&gt; see <https://internal.example/d|the notes>\u{FFFE}\u{FFFF} ok",
        )
        .await;
    assert!(answer.contains("published"), "{answer}");
    let page = status_json(&app).await;
    assert_eq!(
        page["incidents"][0]["incident_updates"][0]["body"],
        "R&D <script>alert(1)</script> see the notes ok"
    );
    for path in ["/status.rss", "/status.atom"] {
        let (_, text, _) = body(&app, path).await;
        assert!(
            feed_rs::parser::parse(text.as_bytes()).is_ok(),
            "{path}: {text}"
        );
        assert!(
            !text.contains("<script>"),
            "{path} carries live markup: {text}"
        );
        assert!(!text.contains("internal.example"), "{path}");
    }
    let (_, html, _) = body(&app, "/status").await;
    assert!(html.contains("R&amp;D &lt;script&gt;"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_day_keeps_the_worst_state_an_incident_held_whatever_changes_later() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(ALICE, "open P0 --component search search is down")
        .await;
    app.command(ALICE, "open P1 --component login login is slow")
        .await;
    app.command(ALICE, "status INC-1 —public Search is down.")
        .await;
    app.command(ALICE, "sev INC-1 P3").await;
    app.command(ALICE, "components INC-2 none").await;
    let page = status_json(&app).await;
    let today = |page: &Value, c: &str| {
        page["history"]
            .as_array()
            .and_then(|h| h.iter().find(|x| x["component"] == c))
            .map(|x| x["days"][89]["status"].clone())
            .expect("the component's days")
    };
    assert_eq!(component(&page, "search")["status"], "degraded_performance");
    assert_eq!(today(&page, "search"), "major_outage");
    // What the public was told stays told: the incident is still named by
    // the worst it did (an em dash typed for `--` counts as the flag).
    assert_eq!(
        page["incidents"][0]["name"], "Major outage: Search",
        "{page}"
    );
    assert_eq!(component(&page, "login")["status"], "operational");
    assert_eq!(today(&page, "login"), "partial_outage");
    app.command(ALICE, "resolve INC-1 fixed").await;
    let page = status_json(&app).await;
    assert_eq!(component(&page, "search")["status"], "operational");
    assert_eq!(today(&page, "search"), "major_outage");
    // A resolved incident's components no longer move.
    let answer = app.command(ALICE, "components INC-1 checkout").await;
    assert!(answer.contains("resolved"), "{answer}");
    assert_eq!(today(&status_json(&app).await, "checkout"), "operational");
    app.stop().await;
}

#[tokio::test]
async fn only_publishers_change_what_the_page_says_and_a_state_by_hand_is_announced() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let mut opts = options("");
    opts.extra_toml = opts
        .extra_toml
        .replace("[status]\n", "[status]\npublishers = [\"user:U0BOB\"]\n");
    let app = TestApp::start_with(&db, &slack, opts).await;
    app.command(BOB, "open P1 --component checkout cards fail")
        .await;
    for text in [
        "status INC-1 --public Card payments fail for some.",
        "components INC-1 search",
        "component login major_outage",
        "open P0 --component login login is down",
    ] {
        let answer = app.command(ALICE, text).await;
        assert!(answer.contains("status.publishers"), "{text}: {answer}");
    }
    assert_eq!(app.count("public_updates").await, 0);
    assert_eq!(app.count("component_overrides").await, 0);
    let log = klaxon::store::actions::audit_log(app.store().pool())
        .await
        .expect("audit log");
    assert_eq!(
        log.iter().filter(|e| e.0 == "refused").count(),
        4,
        "{log:?}"
    );

    let answer = app.command(BOB, "component login major_outage").await;
    assert!(answer.contains("Major outage"), "{answer}");
    app.settle().await;
    let said = slack
        .messages_in(INCIDENT_CHANNEL)
        .iter()
        .map(klaxon::blocks::visible_text)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(said.contains("set *Login* to *Major outage*"), "{said}");
    assert!(said.contains(BOB), "who did it is said: {said}");
    let answer = app
        .command(BOB, "status INC-1 --public Card payments fail for some.")
        .await;
    assert!(answer.contains("published"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_twelve_hours_and_sign_in_returns_to_the_page_asked_for() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;
    let no_redirects = no_redirects();
    let sign_in = |next: &'static str| {
        let client = no_redirects.clone();
        let url = format!("{}/incidents/login", app.base);
        async move {
            client
                .post(url)
                .form(&[("token", HISTORY_TOKEN), ("next", next)])
                .send()
                .await
                .expect("request")
        }
    };
    let r = sign_in("/incidents/INC-1").await;
    assert_eq!(r.headers()["location"], "/incidents/INC-1");
    let r = sign_in("https://evil.example/incidents").await;
    assert_eq!(r.headers()["location"], "/incidents");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    let session = cookie.split(';').next().expect("name=value").to_string();
    assert_eq!(
        get_with(&app, "/incidents", &[("cookie", &session)])
            .await
            .0,
        200
    );
    // The end is signed: moving it forward breaks the cookie.
    let (name, value) = session.split_once('=').expect("pair");
    let (end, mac) = value.split_once('.').expect("end.mac");
    let later = format!(
        "{name}={}.{mac}",
        end.parse::<i64>().expect("ms") + 86_400_000
    );
    assert_eq!(
        get_with(&app, "/incidents", &[("cookie", &later)]).await.0,
        401
    );
    app.clock().advance(Duration::from_secs(12 * 3600 + 1));
    assert_eq!(
        get_with(&app, "/incidents", &[("cookie", &session)])
            .await
            .0,
        401
    );
    // An empty form is the form again, not a framework error.
    let r = no_redirects
        .post(format!("{}/incidents/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("Type the history token")
    );

    let bearer = format!("Bearer {HISTORY_TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(
        get_with(&app, "/incidents?severity=P1&severity=P0", &auth)
            .await
            .0,
        200
    );
    let (status, text) = get_with(&app, "/incidents?page=2", &auth).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("no page 2"), "{text}");
    let (status, html) = get_with(
        &app,
        "/incidents/INC-77",
        &[("authorization", bearer.as_str()), ("accept", "text/html")],
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        html.contains("<main") && html.contains("INC-77 does not exist"),
        "{html}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_open_alert_incident_gains_a_component_added_to_the_config_at_its_next_notification() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let notification = payments_down();
    let deliver = |app: &TestApp| {
        let r = app
            .client
            .post(format!("{}/alerts/alertmanager", app.base))
            .bearer_auth(ALERT_TOKEN)
            .json(&notification)
            .send();
        async move { r.await.expect("request").status().as_u16() }
    };
    // Before the component exists (an older config, or an older Klaxon).
    let before = Options {
        extra_toml: format!("alert_token = \"{ALERT_TOKEN}\"\n"),
        ..Options::default()
    };
    let app = TestApp::start_with(&db, &slack, before).await;
    assert_eq!(deliver(&app).await, 200);
    app.stop().await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "operational"
    );
    assert_eq!(deliver(&app).await, 200);
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "major_outage"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_history_shows_what_slack_shows_not_its_escaping() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    app.command(
        ALICE,
        "open P3 R&amp;D API &lt;slow&gt; see <https://x.example/a|the dashboard>",
    )
    .await;
    app.command(ALICE, "status INC-1 <@U0BOB|bob> is looking")
        .await;
    let bearer = format!("Bearer {HISTORY_TOKEN}");
    let (status, html) = get_with(&app, "/incidents/INC-1", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("INC-1: R&amp;D API &lt;slow&gt; see the dashboard"),
        "{html}"
    );
    assert!(html.contains("status update: @bob is looking"), "{html}");
    assert!(
        !html.contains("&amp;amp;") && !html.contains("&lt;@U0BOB"),
        "{html}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_maintenance_window_on_a_route_puts_its_components_under_maintenance() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let mut opts = options(&format!(
        "{}\n[[alerts.routes]]\nname = \"payments\"\nmatch = [\"service=payments-api\"]\nladder = \"default\"\n",
        three_level_ladder("1h")
    ));
    opts.extra_toml = opts.extra_toml.replace(
        "services = [\"payments-api\"]",
        "routes = [\"payments\"]\nservices = [\"payments-api\"]",
    );
    let app = TestApp::start_with(&db, &slack, opts).await;
    let answer = app
        .command(
            ALICE,
            "maintenance start payments 1h card processor upgrade",
        )
        .await;
    assert!(answer.contains("#1"), "{answer}");
    let page = status_json(&app).await;
    assert_eq!(component(&page, "checkout")["status"], "under_maintenance");
    assert_eq!(component(&page, "search")["status"], "operational");
    assert_eq!(page["status"]["indicator"], "maintenance");
    // An incident on it is worse than maintenance, and shows.
    app.command(ALICE, "open P1 --component checkout cards fail")
        .await;
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "partial_outage"
    );
    app.command(ALICE, "resolve INC-1 fixed").await;
    app.command(ALICE, "maintenance end 1").await;
    assert_eq!(
        component(&status_json(&app).await, "checkout")["status"],
        "operational"
    );
    app.stop().await;
}

/// Loads `path` in headless Chromium (`tests/browser/check.mjs`) and returns
/// what it saw; the screenshot goes to `target/test-artifacts/NAME.png`.
async fn browse(app: &TestApp, path: &str, name: &str, headers: &[&str]) -> Value {
    let chromium = std::env::var("KLAXON_TEST_CHROMIUM").unwrap_or_else(|_| {
        panic!(
            "KLAXON_TEST_CHROMIUM is not set. Run the tests with tests/run.sh, which installs Debian's chromium and the npm packages of tests/browser"
        )
    });
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target").join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    let shot = artifacts.join(format!("{name}.png"));
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/check.mjs"))
        .arg(format!("{}{path}", app.base))
        .arg(&shot)
        .args(headers)
        .env("CHROMIUM", chromium)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the check prints JSON");
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    seen
}

/// axe-core's violations of impact serious or critical.
fn serious(seen: &Value) -> Vec<Value> {
    seen["axe"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn fits_a_phone(seen: &Value) -> bool {
    seen["phone"]["scrollWidth"].as_i64() <= seen["phone"]["width"].as_i64()
}

#[tokio::test]
async fn in_a_real_browser_the_status_page_shows_states_and_public_words_accessibly() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;

    // A word longer than a phone is wide, published.
    let long = "x".repeat(300);
    app.command(ALICE, &format!("status INC-1 --public {long}"))
        .await;

    let seen = browse(&app, "/status", "status", &[]).await;
    assert_eq!(seen["status"], 200);
    let dom = &seen["dom"];
    assert_eq!(dom["overall"], "major_outage", "{dom}");
    assert_eq!(dom["banner"], "✕ Major outage");
    let states: Vec<(String, String, String, i64)> = dom["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["badge"].as_str().unwrap_or_default().to_string(),
                c["bars"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (
                "checkout".into(),
                "partial_outage".into(),
                "⚠ Partial outage".into(),
                90
            ),
            (
                "search".into(),
                "major_outage".into(),
                "✕ Major outage".into(),
                90
            ),
            (
                "login".into(),
                "operational".into(),
                "✓ Operational".into(),
                90
            ),
        ]
    );
    // The bars say in words what their colours say.
    let label = dom["components"][0]["barsLabel"]
        .as_str()
        .unwrap_or_default();
    assert!(
        label.contains("1 day partial outage") && label.contains("89 days operational"),
        "{label}"
    );
    let incidents = dom["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{dom}");
    assert_eq!(incidents[0]["id"], "INC-1");
    let shown = incidents[0]["text"].as_str().unwrap_or_default();
    assert!(shown.contains("Partial outage: Checkout"), "{shown}");
    assert!(shown.contains("Some card payments fail."), "{shown}");
    let source = seen["source"].as_str().unwrap_or_default();
    let text = seen["text"].as_str().unwrap_or_default();
    for word in INTERNAL {
        assert!(!source.contains(word), "`{word}` is in the page source");
        assert!(!text.contains(word), "`{word}` is on the page");
    }
    assert_eq!(dom["scripts"], 0, "the page works without JavaScript");
    assert_eq!(
        seen["elsewhere"],
        json!([]),
        "a third-party asset was loaded"
    );
    assert_eq!(serious(&seen), Vec::<Value>::new(), "axe: {}", seen["axe"]);
    assert!(fits_a_phone(&seen), "{}", seen["phone"]);
    app.stop().await;
}

#[tokio::test]
async fn in_a_real_browser_the_history_and_an_incident_draw_their_charts_accessibly() {
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start_with(&db, &slack, options("")).await;
    two_incidents(&app).await;
    app.command(BOB, "ack INC-1").await;
    app.command(ALICE, "resolve INC-1 rolled the key back")
        .await;
    let auth = format!("Authorization: Bearer {HISTORY_TOKEN}");

    let seen = browse(&app, "/incidents/INC-1", "incident", &[&auth]).await;
    assert_eq!(seen["status"], 200, "{}", seen["source"]);
    let figures = seen["dom"]["figures"].as_array().expect("figures");
    assert!(
        figures
            .iter()
            .any(|f| f["id"] == "incident-chart" && f["svgs"] == 1),
        "{figures:?}"
    );
    let text = seen["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Stripe key rotated on payments-db-7"),
        "{text}"
    );
    assert!(text.contains("internal: the password is hunter2"), "{text}");
    assert_eq!(serious(&seen), Vec::<Value>::new(), "axe: {}", seen["axe"]);
    assert!(fits_a_phone(&seen), "{}", seen["phone"]);
    let seen = browse(&app, "/incidents/INC-3", "incident-long-title", &[&auth]).await;
    assert_eq!(serious(&seen), Vec::<Value>::new(), "axe: {}", seen["axe"]);
    assert!(fits_a_phone(&seen), "{}", seen["phone"]);

    let seen = browse(&app, "/incidents", "incidents", &[&auth]).await;
    assert_eq!(seen["status"], 200);
    let figures = seen["dom"]["figures"].as_array().expect("figures");
    let ids: Vec<&str> = figures.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(
        ids,
        vec!["chart-incidents", "chart-mtta", "chart-mttr", "chart-pages"]
    );
    assert!(
        figures.iter().all(|f| f["svgs"] == 1 && f["tables"] == 1),
        "each chart has its numbers in a table: {figures:?}"
    );
    assert_eq!(serious(&seen), Vec::<Value>::new(), "axe: {}", seen["axe"]);
    assert!(fits_a_phone(&seen), "{}", seen["phone"]);
    app.stop().await;
}
