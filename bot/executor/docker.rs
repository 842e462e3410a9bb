//! `kind = "docker"`: restart a container, inspect its state and health, or tail
//! its logs, through the Docker Engine API (bollard; `DOCKER_HOST` honoured).
//!
//! Settings: `operation` (`restart`, `inspect` or `logs`), `container` (may hold
//! placeholders), `stop_timeout` for restarts (default 10s), `tail` lines for
//! logs (default 50), `timeout` for the whole call (default 60s). Only
//! `restart` changes anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, LogsOptionsBuilder, RestartContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde::Deserialize;

use super::{Backend, Configured, Outcome, Step, Values, fill};

#[derive(Debug)]
pub struct DockerBackend;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    operation: String,
    container: String,
    #[serde(default, with = "crate::time::duration_text")]
    stop_timeout: Option<Duration>,
    #[serde(default)]
    tail: Option<u32>,
    #[serde(default, with = "crate::time::duration_text")]
    timeout: Option<Duration>,
}

/// A `docker` action's settings, checked.
#[derive(Debug)]
struct Container {
    container: String,
    op: Operation,
    timeout: Duration,
}

impl Backend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn configure(
        &self,
        table: &toml::Table,
        params: &[String],
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let s: Settings = super::settings_of(table)?;
        let mut problems = Vec::new();
        let op = match s.operation.as_str() {
            "restart" => Some(Operation::Restart {
                stop_timeout: s.stop_timeout.unwrap_or(Duration::from_secs(10)),
            }),
            "inspect" => Some(Operation::Inspect),
            "logs" => Some(Operation::Logs {
                tail: s.tail.unwrap_or(50).clamp(1, 1000),
            }),
            other => {
                problems.push((
                    "operation".into(),
                    format!("`{other}` must be restart, inspect or logs"),
                ));
                None
            }
        };
        if s.container.is_empty() {
            problems.push(("container".into(), "name the container".into()));
        }
        problems.extend(super::unknown_placeholders(
            "container",
            &s.container,
            params,
        ));
        match op {
            Some(op) if problems.is_empty() => Ok(Arc::new(Container {
                container: s.container,
                op,
                timeout: s.timeout.unwrap_or(Duration::from_secs(60)),
            })),
            _ => Err(problems),
        }
    }
}

impl Configured for Container {
    fn read_only(&self) -> bool {
        !matches!(self.op, Operation::Restart { .. })
    }

    fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, String> {
        Ok(Box::new(DockerStep {
            container: fill(&self.container, values)?,
            op: self.op.clone(),
            timeout: self.timeout,
        }))
    }
}

#[derive(Debug, Clone)]
enum Operation {
    Restart { stop_timeout: Duration },
    Inspect,
    Logs { tail: u32 },
}

struct DockerStep {
    container: String,
    op: Operation,
    timeout: Duration,
}

/// The container's state in one line: `running (healthy), started 2026-11-22T17:40:16Z`.
async fn state(docker: &Docker, container: &str) -> Result<(String, String), String> {
    let info = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(explain)?;
    let st = info.state.unwrap_or_default();
    let status = st
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let health = st
        .health
        .and_then(|h| h.status)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let started = st.started_at.unwrap_or_default();
    let details = format!(
        "status: {status}{health}\nstarted: {started}\nrestarts: {}\nexit code: {}",
        info.restart_count.unwrap_or(0),
        st.exit_code.unwrap_or(0)
    );
    Ok((format!("{status}{health}, started {started}"), details))
}

/// A Docker error as an on-call engineer needs to read it.
fn explain(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::RequestTimeoutError => {
            "timed out: the Docker engine did not answer".to_string()
        }
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("Docker answered {status_code}: {message}"),
        other => format!("Docker engine unreachable: {other}"),
    }
}

impl DockerStep {
    async fn execute(&self) -> Result<(String, String), String> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| format!("Docker engine unreachable: {e}"))?
            .with_timeout(self.timeout);
        match &self.op {
            Operation::Restart { stop_timeout } => {
                let t = i32::try_from(stop_timeout.as_secs()).unwrap_or(i32::MAX);
                docker
                    .restart_container(
                        &self.container,
                        Some(RestartContainerOptionsBuilder::new().t(t).build()),
                    )
                    .await
                    .map_err(explain)?;
                let (line, details) = state(&docker, &self.container).await?;
                Ok((format!("restarted; now {line}"), details))
            }
            Operation::Inspect => state(&docker, &self.container).await,
            Operation::Logs { tail } => {
                let options = LogsOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .tail(&tail.to_string())
                    .build();
                let mut stream = docker.logs(&self.container, Some(options));
                let mut out = String::new();
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => out.push_str(&String::from_utf8_lossy(&c.into_bytes())),
                        Err(e) => return Err(explain(e)),
                    }
                }
                let lines = out.lines().count();
                Ok((format!("last {lines} log line(s)"), out))
            }
        }
    }
}

impl Step for DockerStep {
    fn describe(&self) -> String {
        match &self.op {
            Operation::Restart { stop_timeout } => format!(
                "docker restart {} (stop timeout {})",
                self.container,
                humantime::format_duration(*stop_timeout)
            ),
            Operation::Inspect => format!("docker inspect {} (state and health)", self.container),
            Operation::Logs { tail } => format!("docker logs --tail {tail} {}", self.container),
        }
    }

    fn target(&self) -> String {
        format!("docker:{}", self.container)
    }

    fn timeout(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    fn run(&self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            let started = Instant::now();
            // The client's own timeout covers each call; this one bounds the whole step.
            let result =
                tokio::time::timeout(self.timeout + Duration::from_secs(1), self.execute()).await;
            let (success, summary, output) = match result {
                Err(_) => (
                    false,
                    format!(
                        "timed out after {}",
                        humantime::format_duration(self.timeout)
                    ),
                    String::new(),
                ),
                Ok(Err(e)) => (false, e, String::new()),
                Ok(Ok((summary, output))) => (true, summary, output),
            };
            Outcome {
                success,
                summary,
                output,
                duration: started.elapsed(),
            }
        })
    }
}
