//! The files in deploy/ say what the binary really does: the example config
//! passes check-config, every YAML and JSON file parses, and the ports, probes,
//! paths and variables they name are the ones Klaxon uses.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_klaxon");

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every document of a YAML file, as JSON values.
fn yaml(file: &str) -> Vec<Value> {
    let text = read(file);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
            serde_json::to_value(v).unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .collect()
}

/// The variables Klaxon reads (DESIGN §1).
use klaxon::config::ENV_VARS as KNOWN_VARIABLES;

#[test]
fn the_example_config_passes_check_config() {
    // Secrets come from the environment, as the example says; its heartbeats
    // need the alert token.
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(deploy("klaxon.example.toml"))
        .env_clear()
        .env("KLAXON_ALERT_TOKEN", "4f1c9e27b8d35a60c2e7f9b1d4a8c3e5")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_yaml_and_json_file_in_deploy_parses() {
    let mut files = Vec::new();
    for dir in [deploy(""), deploy("kubernetes")] {
        for entry in std::fs::read_dir(&dir).expect("deploy dir").flatten() {
            let p = entry.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                files.push(
                    p.strip_prefix(deploy(""))
                        .expect("inside")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        assert!(!yaml(f).is_empty(), "{f} is empty");
    }
    let dashboard: Value =
        serde_json::from_str(&read("grafana-dashboard.json")).expect("dashboard JSON");
    let exprs = dashboard.to_string();
    for metric in [
        "http_requests_total",
        "klaxon_outbox_pending",
        "klaxon_job_lateness_seconds_bucket",
        "klaxon_pages_sent_total",
        "klaxon_heartbeat_missed",
    ] {
        assert!(exprs.contains(metric), "the dashboard charts {metric}");
    }
}

#[test]
fn compose_and_kubernetes_use_the_real_port_probes_and_variables() {
    let compose = &yaml("docker-compose.yml")[0];
    let klaxon = &compose["services"]["klaxon"];
    assert!(
        klaxon["healthcheck"]["test"]
            .to_string()
            .contains("/readyz")
    );
    assert!(klaxon["ports"].to_string().contains("8080"));
    let am = &compose["services"]["alertmanager"];
    assert!(!am.is_null(), "compose runs an Alertmanager");

    for line in read("klaxon.env.example").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            KNOWN_VARIABLES.contains(&name),
            "klaxon.env.example sets {name}, which Klaxon does not read"
        );
    }

    let docs = yaml("kubernetes/deployment.yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        deployment["spec"]["replicas"].as_u64().unwrap_or(0) >= 2,
        "several replicas"
    );
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        assert!(
            KNOWN_VARIABLES.contains(&name),
            "the Deployment sets {name}"
        );
    }
    let secret = &yaml("kubernetes/examples/secret.example.yaml")[0];
    for name in secret["stringData"].as_object().expect("stringData").keys() {
        assert!(
            KNOWN_VARIABLES.contains(&name.as_str()),
            "the Secret sets {name}"
        );
    }

    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/healthz"));
    assert!(
        dockerfile.contains("USER 10001"),
        "the image runs as a non-root user"
    );
    assert!(dockerfile.contains("EXPOSE 8080"));
    let unit = read("klaxon.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/klaxon serve"));
    assert!(unit.contains("NoNewPrivileges=yes") || unit.contains("NoNewPrivileges=true"));
}

#[test]
fn the_receiver_snippet_and_the_slack_manifest_point_at_klaxons_endpoints() {
    let snippet = read("alertmanager-receiver.yml");
    assert!(snippet.contains("/alerts/alertmanager"));
    assert!(snippet.contains("send_resolved: true"));
    let manifest = &yaml("slack-app-manifest.yml")[0];
    let command = &manifest["features"]["slash_commands"][0];
    assert_eq!(command["command"], "/incident");
    assert!(
        command["url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/slack/commands")
    );
    assert_eq!(
        command["should_escape"], true,
        "mentions arrive as <@U…> IDs"
    );
    let settings = &manifest["settings"];
    assert!(
        settings["interactivity"]["request_url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/slack/interactions")
    );
    assert!(
        settings["event_subscriptions"]["request_url"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/slack/events")
    );
    for file in [
        "slack-app-manifest.yml",
        "slack-app-manifest.socket-mode.yml",
    ] {
        let manifest = &yaml(file)[0];
        let granted: Vec<&str> = manifest["oauth_config"]["scopes"]["bot"]
            .as_array()
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for (scope, why) in klaxon::slack::api::REQUIRED_SCOPES
            .iter()
            .chain([("commands", "/incident")].iter())
        {
            assert!(granted.contains(scope), "{file} must grant {scope} ({why})");
        }
    }
    let rules = &yaml("prometheus-rules.yml")[0];
    let text = rules.to_string();
    for alert in [
        "KlaxonDown",
        "KlaxonOutboxBacklog",
        "KlaxonJobLateness",
        "KlaxonAlertsRejected",
    ] {
        assert!(text.contains(alert), "rules include {alert}");
    }
}

#[test]
fn the_socket_mode_manifest_asks_for_the_same_scopes_and_has_no_request_urls() {
    let http = &yaml("slack-app-manifest.yml")[0];
    let socket = &yaml("slack-app-manifest.socket-mode.yml")[0];
    assert_eq!(socket["settings"]["socket_mode_enabled"], true);
    assert_eq!(http["settings"]["socket_mode_enabled"], false);
    assert_eq!(
        socket["oauth_config"], http["oauth_config"],
        "both transports need the same bot scopes"
    );
    assert_eq!(
        socket["settings"]["event_subscriptions"]["bot_events"],
        http["settings"]["event_subscriptions"]["bot_events"]
    );
    assert_eq!(socket["settings"]["interactivity"]["is_enabled"], true);
    let text = serde_json::to_string(socket).expect("JSON");
    assert!(
        !text.contains("url") && !text.contains("https://"),
        "Socket Mode needs no request URL: {text}"
    );
    let command = &socket["features"]["slash_commands"][0];
    assert_eq!(command["command"], "/incident");
    assert_eq!(command["should_escape"], true);
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docker() -> String {
    std::env::var("KLAXON_TEST_DOCKER_CLI").unwrap_or_else(|_| {
        panic!("KLAXON_TEST_DOCKER_CLI is not set. Run the tests with tests/run.sh, which starts a Docker engine")
    })
}

/// The image's build context, made by Docker itself from the repository's files
/// and its .dockerignore, read back into `out`.
fn docker_build_context(out: &Path) {
    let ctx = tempfile::tempdir().expect("tempdir");
    // The files a checkout has: tracked ones and new ones git does not ignore.
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(repo())
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = String::from_utf8_lossy(file).into_owned();
        let from = repo().join(&rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = ctx.path().join(&rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {rel}: {e}"));
    }
    let probe = ctx.path().join("context.Dockerfile");
    std::fs::write(&probe, "FROM scratch\nCOPY . /src\n").expect("write");
    let tag = format!("klaxon-context-check:{:08x}", rand::random::<u32>());
    let built = Command::new(docker())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-f"])
        .arg(&probe)
        .args(["-t", &tag])
        .arg(ctx.path())
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "docker build of the context failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let name = format!("klaxon-context-{:08x}", rand::random::<u32>());
    let created = Command::new(docker())
        .args(["create", "--name", &name, &tag, "/none"])
        .output()
        .expect("docker create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let copied = Command::new(docker())
        .args(["cp", &format!("{name}:/src"), &out.display().to_string()])
        .output()
        .expect("docker cp");
    let _ = Command::new(docker()).args(["rm", "-f", &name]).output();
    let _ = Command::new(docker()).args(["rmi", "-f", &tag]).output();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
}

#[test]
fn the_image_build_context_holds_every_workspace_member_and_no_local_state() {
    let out = tempfile::tempdir().expect("tempdir");
    docker_build_context(out.path());
    let src = out.path().join("src");
    // Cargo itself reads the workspace as the Dockerfile's build will.
    let metadata = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
            "--locked",
        ])
        .current_dir(&src)
        .output()
        .expect("cargo metadata");
    assert!(
        metadata.status.success(),
        "Cargo cannot read the workspace in the image's build context (a member left out by .dockerignore?): {}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let v: Value = serde_json::from_slice(&metadata.stdout).expect("json");
    let members = v["workspace_members"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        members >= 2,
        "every member is there: {}",
        v["workspace_members"]
    );
    for dir in ["bot", "migrations", "templates"] {
        assert!(src.join(dir).is_dir(), "{dir}/ is in the context");
    }
    for local in ["target", ".git"] {
        assert!(
            !src.join(local).exists(),
            "{local} stays out of the context"
        );
    }
}

#[test]
fn the_dockerfile_pulls_no_frontend_and_copies_the_whole_context() {
    let dockerfile = read("Dockerfile");
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.trim_start().to_ascii_lowercase().starts_with("# syntax=")),
        "a `# syntax=` line pulls a frontend image at build time"
    );
    assert!(
        dockerfile.lines().any(|l| l.trim() == "COPY . ."),
        "the build stage copies the whole context"
    );
}

/// A checker's path, from `tests/run.sh` (`ensure_checkers`).
fn checker(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. Run the tests with tests/run.sh, which installs the deploy/ checkers"
        )
    })
}

/// Runs a checker; panics with what it said unless it succeeds.
fn check(var: &str, args: &[&str], what: &str) -> String {
    let out = Command::new(checker(var))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{var} does not run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what}:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_alert_rules() {
    check(
        "KLAXON_TEST_PROMTOOL",
        &["check", "rules", "deploy/prometheus-rules.yml"],
        "promtool check rules",
    );
}

#[test]
fn amtool_accepts_the_alertmanager_configurations() {
    check(
        "KLAXON_TEST_AMTOOL",
        &["check-config", "deploy/alertmanager.yml"],
        "amtool check-config deploy/alertmanager.yml",
    );
    // The snippet, pasted into an existing configuration as its comments say:
    // its receiver beside the existing ones, its route under the top route.
    let snippet = &yaml("alertmanager-receiver.yml")[0];
    amtool_on_pasted(
        snippet,
        snippet["route"].clone(),
        "amtool check-config on a configuration with the receiver snippet pasted in",
    );
}

/// Pastes `route` under an existing configuration's top route and the
/// snippet's receivers beside its own, as the snippets' comments say, and
/// runs `amtool check-config` on the result.
fn amtool_on_pasted(snippet: &serde_json::Value, route: serde_json::Value, what: &str) {
    let mut receivers = vec![serde_json::json!({"name": "existing-team"})];
    receivers.extend(snippet["receivers"].as_array().cloned().unwrap_or_default());
    let config = serde_json::json!({
        "route": {"receiver": "existing-team", "routes": [route]},
        "receivers": receivers,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, serde_yaml_ng::to_string(&config).expect("yaml")).expect("write");
    check(
        "KLAXON_TEST_AMTOOL",
        &["check-config", &file.display().to_string()],
        what,
    );
}

#[test]
fn amtool_accepts_the_watchdog_heartbeat_snippet_alone_and_pasted_first_into_a_configuration() {
    check(
        "KLAXON_TEST_AMTOOL",
        &["check-config", "deploy/alertmanager-watchdog.yml"],
        "amtool check-config deploy/alertmanager-watchdog.yml",
    );
    let snippet = &yaml("alertmanager-watchdog.yml")[0];
    let watchdog_route = snippet["route"]["routes"][0].clone();
    assert_eq!(
        watchdog_route["matchers"][0], "alertname = \"Watchdog\"",
        "the snippet's first route takes the Watchdog"
    );
    amtool_on_pasted(
        snippet,
        watchdog_route,
        "amtool check-config on a configuration with the Watchdog route pasted in",
    );
}

#[test]
fn the_kubernetes_manifests_validate_strictly_on_1_30_and_1_37() {
    let mut files: Vec<String> = std::fs::read_dir(deploy("kubernetes"))
        .expect("kubernetes/")
        .chain(std::fs::read_dir(deploy("kubernetes/examples")).expect("examples/"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for version in ["1.30.0", "1.37.0"] {
        let mut args = vec!["--strict", "-k", version];
        args.extend(files.iter().map(String::as_str));
        let said = check(
            "KLAXON_TEST_KUBERNETES_VALIDATE",
            &args,
            &format!("kubernetes-validate --strict -k {version}"),
        );
        assert!(!said.contains("ERROR"), "{said}");
    }
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    check("KLAXON_TEST_HADOLINT", &["deploy/Dockerfile"], "hadolint");
}

#[test]
fn systemd_accepts_the_unit_and_rates_its_exposure_ok() {
    // The unit names /usr/local/bin/klaxon: verify it against the binary built here.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("klaxon.service");
    std::fs::write(
        &unit,
        read("klaxon.service").replace("/usr/local/bin/klaxon", BIN),
    )
    .expect("write");
    let unit = unit.display().to_string();
    let said = check(
        "KLAXON_TEST_SYSTEMD_ANALYZE",
        &["verify", &unit],
        "systemd-analyze verify",
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify said: {said}"
    );
    let said = check(
        "KLAXON_TEST_SYSTEMD_ANALYZE",
        &["security", "--offline=true", &unit],
        "systemd-analyze security",
    );
    let exposure: f64 = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for klaxon.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {said}"));
    assert!(
        exposure <= 2.0,
        "exposure {exposure} (0 is best, 10 worst): {said}"
    );
}

#[tokio::test]
async fn promtool_accepts_the_metrics_klaxon_serves() {
    use crate::support::*;
    let db = TestDb::sqlite();
    let slack = FakeSlack::start(&[INCIDENT_CHANNEL]).await;
    let app = TestApp::start(&db, &slack).await;
    app.command(ALICE, "open P2 Metrics lint").await;
    app.settle().await;
    let text = metrics_of(&app.base).await;
    app.stop().await;
    let mut child = Command::new(checker("KLAXON_TEST_PROMTOOL"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for series in [
        "klaxon_database_up 1",
        "klaxon_slack_auth_ok",
        "klaxon_scheduler_last_run_timestamp_seconds",
        "klaxon_jobs_oldest_due_seconds{lane=\"paging\"}",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}
