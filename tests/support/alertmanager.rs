//! A real Prometheus Alertmanager on 127.0.0.1, clustering off, whose webhook
//! receiver points at the Klaxon under test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Alertmanager {
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager on `port` with a 1-second group wait and interval, sending to `webhook`.
    pub async fn start_on(port: u16, webhook: &str, token: &str) -> Alertmanager {
        Self::start_with(port, webhook, token, 0).await
    }

    /// Like [`Alertmanager::start_on`], with the receiver's `max_alerts` (0: all).
    pub async fn start_with(
        port: u16,
        webhook: &str,
        token: &str,
        max_alerts: u32,
    ) -> Alertmanager {
        let config = format!(
            r#"route:
  receiver: klaxon
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: klaxon
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        max_alerts: {max_alerts}
        http_config:
          authorization:
            credentials: {token}
"#
        );
        Self::start_config(port, &config).await
    }

    /// Starts Alertmanager on `port` with the route of Klaxon's Watchdog
    /// snippet (`deploy/alertmanager-watchdog.yml`), its repeat interval cut
    /// to one second: the always-firing `Watchdog` alert beats every second.
    pub async fn start_with_watchdog(port: u16, webhook: &str, token: &str) -> Alertmanager {
        let config = format!(
            r#"route:
  receiver: klaxon
  group_by: ['alertname', 'service']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: klaxon-heartbeat
      matchers: ['alertname = "Watchdog"']
      group_wait: 0s
      group_interval: 1s
      repeat_interval: 1s
receivers:
  - name: klaxon
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
  - name: klaxon-heartbeat
    webhook_configs:
      - url: {webhook}
        send_resolved: false
        http_config:
          authorization:
            credentials: {token}
"#
        );
        Self::start_config(port, &config).await
    }

    /// Starts Alertmanager on `port` with `config` (alertmanager.yml).
    pub async fn start_config(port: u16, config: &str) -> Alertmanager {
        let bin = std::env::var("KLAXON_TEST_ALERTMANAGER_BIN").unwrap_or_else(|_| {
            panic!(
                "KLAXON_TEST_ALERTMANAGER_BIN is not set. Run the tests with tests/run.sh, \
                 which installs Debian's prometheus-alertmanager"
            )
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).expect("write config");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Alertmanager starts");
        let am = Alertmanager {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/-/ready", am.base)).send().await
                && r.status() == 200
            {
                return am;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("Alertmanager did not become ready at {}", am.base);
    }

    /// Posts alerts through Alertmanager's API v2.
    pub async fn post_alerts(&self, alerts: &Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .expect("post alerts");
        assert!(
            r.status().is_success(),
            "Alertmanager refused the alerts: {}",
            r.status()
        );
    }

    /// Prometheus' always-firing `Watchdog` alert (kube-prometheus' rule),
    /// posted with an end an hour away, as Prometheus keeps re-sending it.
    pub fn watchdog() -> Value {
        let ends = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        json!({
            "labels": {"alertname": "Watchdog", "severity": "none"},
            "annotations": {"summary": "An alert that should always be firing, to prove the alerting pipeline works"},
            "endsAt": ends.to_string(),
        })
    }

    /// Stops Alertmanager (as a crash would: SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An alert as Prometheus would post it; `resolved` sets endsAt to now.
    pub fn alert(alertname: &str, service: &str, resolved: bool) -> Value {
        let now = jiff::Timestamp::now();
        let mut a = json!({
            "labels": {"alertname": alertname, "service": service, "severity": "critical"},
            "annotations": {
                "summary": format!("{alertname} on {service}"),
                "description": "5xx ratio is above 5% for 5 minutes",
                "runbook_url": "https://runbooks.example.com/high-error-rate"
            },
            "generatorURL": "http://prometheus.example.com/graph?g0.expr=up&g0.tab=1",
        });
        if resolved {
            a["endsAt"] = json!(now.to_string());
        }
        a
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
