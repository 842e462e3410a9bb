//! Test fixtures: databases, a fake Slack, a Klaxon started on port 0, and
//! helpers that sign requests the way Slack does.

#![allow(dead_code)]

pub mod alertmanager;
pub mod fake_slack;
pub mod own_postgres;
pub mod proxy;
pub mod socket_mode;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use klaxon::app::App;
use klaxon::config;
use klaxon::server;
use klaxon::store::Store;
use klaxon::time::Clock;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fake_slack::{FakeSlack, Fault};
pub use own_postgres::OwnPostgres;
pub use socket_mode::SocketMode;

pub const SECRET: &str = "4e9d1c07b2a85f36e0d9c4a1b7f2e813";
pub const INCIDENT_CHANNEL: &str = "C0INCIDENTS";
pub const ALICE: &str = "U0ALICE";
pub const BOB: &str = "U0BOB";

/// A database for one test: a SQLite file in a temp dir, or a fresh PostgreSQL database.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A database someone else runs (an [`OwnPostgres`], say) at `url`.
    pub fn at(url: &str) -> TestDb {
        TestDb {
            url: url.to_string(),
            _dir: None,
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("klaxon.db").display());
        TestDb {
            url,
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the PostgreSQL that `tests/run.sh` started.
    pub async fn postgres() -> TestDb {
        let base = std::env::var("KLAXON_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "KLAXON_TEST_POSTGRES_URL is not set. Run the tests with tests/run.sh, \
                 which starts PostgreSQL on 127.0.0.1 (e.g. postgres://postgres@127.0.0.1:54329)"
            )
        });
        let base = base.trim_end_matches('/').to_string();
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} does not answer: {e}"));
        let name = format!("klaxon_test_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        TestDb {
            url: format!("{base}/{name}"),
            _dir: None,
        }
    }

    pub async fn of(kind: Backend) -> TestDb {
        match kind {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().await,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Options for [`TestApp::start`].
#[derive(Debug, Clone)]
pub struct Options {
    pub incident_channel: Option<&'static str>,
    pub signing_secret: Option<&'static str>,
    /// Socket Mode's app-level token (`KLAXON_SLACK_APP_TOKEN`); `None`: HTTP only.
    pub app_token: Option<&'static str>,
    pub extra_toml: String,
    /// The `[outbox]` table (fast pacing and short backoffs by default).
    pub outbox_toml: String,
}

/// The `[outbox]` settings tests use unless they say otherwise.
pub const FAST_OUTBOX: &str =
    "channel_rate = 500.0\nchannel_burst = 500\nrequest_timeout = \"2s\"\nmax_backoff = \"1s\"\n";

impl Default for Options {
    fn default() -> Self {
        Options {
            incident_channel: Some(INCIDENT_CHANNEL),
            signing_secret: Some(SECRET),
            app_token: None,
            extra_toml: String::new(),
            outbox_toml: FAST_OUTBOX.to_string(),
        }
    }
}

/// A Klaxon running in this process against a fake Slack.
pub struct TestApp {
    pub base: String,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test: fast outbox pacing and short timeouts.
pub fn test_settings(db_url: &str, slack: &FakeSlack, opts: &Options) -> config::Settings {
    let mut env: HashMap<&str, String> = HashMap::new();
    env.insert("KLAXON_DATABASE_URL", db_url.to_string());
    env.insert("KLAXON_SLACK_BOT_TOKEN", fake_slack::TOKEN.to_string());
    env.insert("KLAXON_SLACK_API_URL", slack.api_url.clone());
    if let Some(s) = opts.signing_secret {
        env.insert("KLAXON_SLACK_SIGNING_SECRET", s.to_string());
    }
    if let Some(t) = opts.app_token {
        env.insert("KLAXON_SLACK_APP_TOKEN", t.to_string());
    }
    if let Some(c) = opts.incident_channel {
        env.insert("KLAXON_INCIDENT_CHANNEL", c.to_string());
    }
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n{}\n[outbox]\n{}",
        opts.extra_toml, opts.outbox_toml
    );
    config::from_toml(&toml, "test", &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("test settings are invalid: {e}"))
}

impl TestApp {
    pub async fn start(db: &TestDb, slack: &FakeSlack) -> TestApp {
        Self::start_with(db, slack, Options::default()).await
    }

    pub async fn start_with(db: &TestDb, slack: &FakeSlack, opts: Options) -> TestApp {
        let settings = test_settings(&db.url, slack, &opts);
        let app = server::build_with_clock(settings, None, Clock::system())
            .await
            .expect("klaxon starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(app.clone(), listener, async {
            let _ = stopped.await;
        }));
        let test_app = TestApp {
            base,
            app,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        test_app.wait_until_ready().await;
        test_app
    }

    /// Waits until `/readyz` answers 200 (the database is migrated and the
    /// lanes run), as a load balancer would.
    pub async fn wait_until_ready(&self) {
        for _ in 0..1_000 {
            if self.get("/readyz").await.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("Klaxon did not become ready at {}", self.base);
    }

    /// Shuts down cleanly (as on SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("clean shutdown");
        }
    }

    pub fn store(&self) -> &Store {
        &self.app.ctx.store
    }

    /// Klaxon's clock (move it with [`TestApp::advance`]).
    pub fn clock(&self) -> &Clock {
        &self.app.ctx.clock
    }

    /// Moves Klaxon's clock forward by `d`, then waits until everything that
    /// fell due by then (jobs, messages) has been handled: an hour of ladder in
    /// milliseconds, no real waiting.
    pub async fn advance(&self, d: Duration) {
        self.clock().advance(d);
        self.settle().await;
    }

    /// Waits until no job is due (waiting or running) and no message is due in
    /// the outbox, by Klaxon's clock.
    pub async fn settle(&self) {
        let pool = self.store().pool();
        for _ in 0..1_500 {
            let now = self.clock().now();
            let jobs = klaxon::store::jobs::due_count(pool, now)
                .await
                .expect("count jobs");
            let messages = klaxon::store::outbox::due_count(pool, now)
                .await
                .expect("count messages");
            if jobs == 0 && messages == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let now = self.clock().now().0;
        let jobs: Vec<String> = sqlx::query(
            "SELECT kind || ' ' || payload || ' attempts=' || attempts AS d FROM jobs WHERE run_at <= $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map(|rows| rows.iter().map(|r| sqlx::Row::get::<String, _>(r, "d")).collect())
        .unwrap_or_default();
        let messages: Vec<String> = sqlx::query(
            "SELECT kind || ' ' || channel || ' ' || COALESCE(last_error, '') AS d FROM outbox \
             WHERE state = 'pending' AND next_attempt_at <= $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| sqlx::Row::get::<String, _>(r, "d"))
                .collect()
        })
        .unwrap_or_default();
        panic!("Klaxon did not settle: jobs {jobs:?} and messages {messages:?} stayed due");
    }

    /// Posts `body` to `path` with Slack's signature headers made from `secret` at `ts`.
    pub async fn post_signed_with(
        &self,
        path: &str,
        body: &str,
        secret: &str,
        ts: i64,
    ) -> reqwest::Response {
        let ts = ts.to_string();
        let sig = klaxon::http::signature::sign(secret, &ts, body.as_bytes());
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn post_signed(&self, path: &str, body: &str) -> reqwest::Response {
        self.post_signed_with(path, body, SECRET, now_secs()).await
    }

    /// `/incident <text>` typed by `user` in `channel`; returns the ephemeral text.
    pub async fn command_in(&self, user: &str, channel: &str, text: &str) -> String {
        let body = command_form(user, channel, text);
        let response = self.post_signed("/slack/commands", &body).await;
        assert_eq!(response.status(), 200, "slash command answered non-200");
        let v: Value = response.json().await.expect("JSON answer");
        assert_eq!(v["response_type"], "ephemeral");
        v["text"].as_str().expect("text").to_string()
    }

    pub async fn command(&self, user: &str, text: &str) -> String {
        self.command_in(user, INCIDENT_CHANNEL, text).await
    }

    /// Posts an interaction payload (buttons, modals).
    pub async fn interact(&self, payload: &Value) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
        self.post_signed("/slack/interactions", &body).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// Rows in a table (to prove nothing was stored).
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(self.store(), table).await
    }

    /// Waits until the outbox has nothing pending.
    pub async fn outbox_drained(&self) {
        for _ in 0..500 {
            if klaxon::store::outbox::pending_count(self.store().pool())
                .await
                .expect("count")
                == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the outbox did not drain");
    }
}

/// Waits (up to `timeout`) until `done` says yes, looking every 20 ms.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !done().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the Klaxons on the database at `url` have nothing left to do
/// now: no job due (waiting or running) and no message waiting in the outbox.
/// For tests of `klaxon serve` processes, whose clock is the system's.
pub async fn quiet(url: &str) {
    let store = Store::connect(url)
        .await
        .expect("connect to the test database");
    for _ in 0..3_000 {
        let now = klaxon::time::Clock::system().now();
        let jobs = klaxon::store::jobs::due_count(store.pool(), now)
            .await
            .expect("count jobs");
        let messages = klaxon::store::outbox::pending_count(store.pool())
            .await
            .expect("count messages");
        if jobs == 0 && messages == 0 {
            store.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the Klaxons on {url} did not go quiet");
}

/// Incidents missing their thread root message or their first timeline event:
/// what a crash in the middle of opening one would leave (must be 0).
pub async fn half_written_incidents(store: &Store) -> i64 {
    use sqlx::Row;
    sqlx::query(
        "SELECT COUNT(*) AS n FROM incidents i \
         WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = i.id AND o.kind = 'root') \
            OR NOT EXISTS (SELECT 1 FROM timeline_events t WHERE t.incident_id = i.id)",
    )
    .fetch_one(store.pool())
    .await
    .expect("count")
    .get::<i64, _>("n")
}

/// The `/metrics` text of the Klaxon at `base`.
pub async fn metrics_of(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of one series (`name{labels}` exactly as exposed) in a metrics text.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

pub async fn count_rows(store: &Store, table: &str) -> i64 {
    use sqlx::Row;
    let sql = match table {
        "incidents" => "SELECT COUNT(*) AS n FROM incidents",
        "outbox" => "SELECT COUNT(*) AS n FROM outbox",
        "timeline_events" => "SELECT COUNT(*) AS n FROM timeline_events",
        "followups" => "SELECT COUNT(*) AS n FROM followups",
        "public_updates" => "SELECT COUNT(*) AS n FROM public_updates",
        "component_overrides" => "SELECT COUNT(*) AS n FROM component_overrides",
        other => panic!("no count query for {other}"),
    };
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .expect("count")
        .get::<i64, _>("n")
}

/// A `klaxon serve` child process.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
}

impl Served {
    /// Starts the binary with `config` (TOML text) and waits for `/readyz`.
    pub async fn start(
        dir: &std::path::Path,
        db_url: &str,
        slack: &FakeSlack,
        config: &str,
    ) -> Served {
        Self::start_with(dir, db_url, slack, config, &[], None).await
    }

    /// Like [`Served::start`], with extra environment variables, and stdout and
    /// stderr appended to `log` (else discarded).
    pub async fn start_with(
        dir: &std::path::Path,
        db_url: &str,
        slack: &FakeSlack,
        config: &str,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Served {
        let served = Self::spawn(dir, db_url, slack, config, env, log);
        served.wait_ready(Duration::from_secs(10)).await;
        served
    }

    /// Starts the binary without waiting for anything.
    pub fn spawn(
        dir: &std::path::Path,
        db_url: &str,
        slack: &FakeSlack,
        config: &str,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let file = dir.join(format!("klaxon-{port}.toml"));
        std::fs::write(&file, config).expect("write config");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_klaxon"))
            .args(["serve", "--config"])
            .arg(&file)
            .current_dir(dir)
            .env_clear()
            .env("KLAXON_LISTEN", format!("127.0.0.1:{port}"))
            .env("KLAXON_DATABASE_URL", db_url)
            .env("KLAXON_SLACK_BOT_TOKEN", fake_slack::TOKEN)
            .env("KLAXON_SLACK_SIGNING_SECRET", SECRET)
            .env("KLAXON_SLACK_API_URL", &slack.api_url)
            .env("KLAXON_INCIDENT_CHANNEL", INCIDENT_CHANNEL)
            .env("KLAXON_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(output(log))
            .stderr(output(log))
            .spawn()
            .expect("klaxon serve starts");
        // From here on, Drop kills and reaps the child whatever happens.
        Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits (up to `timeout`) until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("klaxon serve did not become ready at {}", self.base);
    }

    /// Waits (up to 10 s) until the process answers `/healthz`.
    pub async fn wait_alive(&self) {
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("klaxon serve did not answer /healthz at {}", self.base);
    }

    /// `/readyz`: its status and its JSON detail.
    pub async fn readyz(&self) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("readyz answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `/incident <text>` typed by `user`; returns the ephemeral text.
    pub async fn command(&self, user: &str, text: &str) -> String {
        let response = send_command(&reqwest::Client::new(), &self.base, user, text)
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let v: Value = response.json().await.expect("json");
        v["text"].as_str().unwrap_or_default().to_string()
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("exit")
    }
}

fn output(log: Option<&std::path::Path>) -> std::process::Stdio {
    match log.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    }) {
        Some(f) => std::process::Stdio::from(f),
        None => std::process::Stdio::null(),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `/incident <text>` typed by `user` to the Klaxon at `base`, signed like Slack.
pub async fn send_command(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    text: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = command_form(user, INCIDENT_CHANNEL, text);
    let ts = now_secs().to_string();
    client
        .post(format!("{base}/slack/commands"))
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            klaxon::http::signature::sign(SECRET, &ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
}

pub fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The form Slack posts for `/incident <text>`.
pub fn command_form(user: &str, channel: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("token", "deprecated-verification-token"),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("channel_id", channel),
        ("channel_name", "incidents"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/incident"),
        ("text", text),
        ("api_app_id", "A0KLAXON"),
        ("is_enterprise_install", "false"),
        (
            "response_url",
            "https://hooks.slack.com/commands/T0001/1/abc",
        ),
        (
            "trigger_id",
            &format!("13345224609.738474920.{:016x}", rand::random::<u64>()),
        ),
    ])
    .expect("form")
}

/// The three-level ladder most escalation tests use: U0ALICE, then U0LEAD,
/// then U0BOSS, each waiting `wait`.
pub fn three_level_ladder(wait: &str) -> String {
    format!(
        r#"
[[escalation.ladders]]
name = "default"
levels = [
  {{ name = "on-call engineer", notify = ["user:U0ALICE"], wait = "{wait}" }},
  {{ name = "team lead", notify = ["user:U0LEAD"], wait = "{wait}" }},
  {{ name = "engineering manager", notify = ["user:U0BOSS"], wait = "{wait}" }},
]
"#
    )
}

/// Test options with [`three_level_ladder`].
pub fn with_three_level_ladder(wait: &str) -> Options {
    Options {
        extra_toml: three_level_ladder(wait),
        ..Options::default()
    }
}

/// The incident roots among `calls` (`chat.postMessage` outside a thread).
pub fn roots(calls: &[fake_slack::Call]) -> Vec<fake_slack::Call> {
    calls
        .iter()
        .filter(|c| {
            c.method == "chat.postMessage"
                && c.str("thread_ts").is_none()
                && c.text().contains("INCIDENT INC-")
        })
        .cloned()
        .collect()
}

/// Every incident stored (the first 200 numbers), oldest first.
pub async fn all_incidents(store: &Store) -> Vec<klaxon::incident::Incident> {
    let mut out = Vec::new();
    for n in 1..=200 {
        let Some(r) = klaxon::incident::IncidentRef::new(n) else {
            continue;
        };
        if let Some(i) = klaxon::store::incidents::get(store.pool(), r)
            .await
            .expect("read an incident")
        {
            out.push(i);
        }
    }
    out
}

/// Serves `router` on a free port of 127.0.0.1 until the test ends;
/// returns `http://127.0.0.1:PORT`.
pub async fn serve_router(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Direct messages delivered to `user` among `calls` (the fake opens `D<user>`).
pub fn dms_to(calls: &[fake_slack::Call], user: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.str("channel") == Some(&format!("D{user}")))
        .count()
}
