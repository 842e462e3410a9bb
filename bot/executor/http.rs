//! `kind = "http"`: the runbooks' `curl -f …/health` checks, through reqwest.
//!
//! Settings: `url` (placeholders only in the path or query, never the host),
//! `method` (GET, HEAD or POST; default GET), `expect_status` (default: any
//! 2xx), `body_contains`, `timeout` (default 10s). GET and HEAD are read-only.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Backend, Outcome, Step, Values, fill, placeholders};

#[derive(Debug)]
pub struct HttpBackend;

fn default_method() -> String {
    "GET".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    expect_status: Option<u16>,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

fn settings(table: &toml::Table) -> Result<Settings, String> {
    super::settings_of(table)
}

fn timeout(s: &Settings) -> Duration {
    s.timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(10))
}

/// The scheme, host and port: the part no placeholder may fill.
fn authority(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[start..]
        .find('/')
        .map(|i| start + i)
        .unwrap_or(url.len());
    &url[..end]
}

impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn check(&self, table: &toml::Table, params: &[String]) -> Vec<(String, String)> {
        let s = match settings(table) {
            Ok(s) => s,
            Err(e) => return vec![("settings".into(), e)],
        };
        let mut problems = Vec::new();
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            problems.push(("url".into(), format!("`{}` is not an http(s) URL", s.url)));
        }
        if authority(&s.url).contains('{') {
            problems.push((
                "url".into(),
                "placeholders may fill only the path or query, never the scheme, host or port"
                    .into(),
            ));
        }
        for name in placeholders(&s.url) {
            if !params.contains(&name) {
                problems.push(("url".into(), format!("`{{{name}}}` names no parameter")));
            }
        }
        if !["GET", "HEAD", "POST"].contains(&s.method.as_str()) {
            problems.push((
                "method".into(),
                format!("`{}` must be GET, HEAD or POST", s.method),
            ));
        }
        problems.extend(super::check_duration("timeout", s.timeout.as_deref()));
        problems
    }

    fn read_only(&self, table: &toml::Table) -> bool {
        settings(table).is_ok_and(|s| s.method != "POST")
    }

    fn prepare(&self, table: &toml::Table, values: &Values) -> Result<Box<dyn Step>, String> {
        let s = settings(table)?;
        let url = fill(&s.url, values)?;
        let method = reqwest::Method::from_bytes(s.method.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Box::new(HttpStep {
            timeout: timeout(&s),
            target: authority(&url).to_string(),
            url,
            method,
            expect_status: s.expect_status,
            body_contains: s.body_contains,
        }))
    }
}

struct HttpStep {
    url: String,
    method: reqwest::Method,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    timeout: Duration,
    target: String,
}

impl Step for HttpStep {
    fn describe(&self) -> String {
        format!(
            "HTTP {} {} expecting {}{} (timeout {})",
            self.method,
            self.url,
            self.expect_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "2xx".into()),
            self.body_contains
                .as_ref()
                .map(|b| format!(" and a body containing {b:?}"))
                .unwrap_or_default(),
            humantime::format_duration(self.timeout)
        )
    }

    fn target(&self) -> String {
        self.target.clone()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            let started = Instant::now();
            let client = match reqwest::Client::builder().timeout(self.timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    return Outcome {
                        success: false,
                        summary: format!("cannot build an HTTP client: {e}"),
                        output: String::new(),
                        duration: started.elapsed(),
                    };
                }
            };
            let response = client.request(self.method.clone(), &self.url).send().await;
            let (success, summary, output) = match response {
                Err(e) if e.is_timeout() => (
                    false,
                    format!(
                        "timed out after {}",
                        humantime::format_duration(self.timeout)
                    ),
                    String::new(),
                ),
                Err(e) => (
                    false,
                    format!("no answer: {}", e.without_url()),
                    String::new(),
                ),
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    let status_ok = match self.expect_status {
                        Some(want) => status.as_u16() == want,
                        None => status.is_success(),
                    };
                    let body_ok = self
                        .body_contains
                        .as_ref()
                        .is_none_or(|needle| body.contains(needle.as_str()));
                    let mut summary = format!("HTTP {}", status.as_u16());
                    if status_ok && !body_ok {
                        summary.push_str(", but the body lacks the expected text");
                    }
                    (status_ok && body_ok, summary, body)
                }
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
