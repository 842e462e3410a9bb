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
const KNOWN_VARIABLES: &[&str] = &[
    "KLAXON_CONFIG",
    "KLAXON_LISTEN",
    "KLAXON_DATABASE_URL",
    "KLAXON_SLACK_BOT_TOKEN",
    "KLAXON_SLACK_SIGNING_SECRET",
    "KLAXON_SLACK_API_URL",
    "KLAXON_INCIDENT_CHANNEL",
    "KLAXON_ALERT_TOKEN",
    "KLAXON_LOG_FORMAT",
    "RUST_LOG",
];

#[test]
fn the_example_config_passes_check_config() {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(deploy("klaxon.example.toml"))
        .env_clear()
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
    let secret = &yaml("kubernetes/secret.example.yaml")[0];
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
    let scopes = manifest["oauth_config"]["scopes"]["bot"].to_string();
    for scope in ["commands", "chat:write", "im:write"] {
        assert!(scopes.contains(scope), "the bot needs {scope}");
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
