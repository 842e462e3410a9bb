//! `kind = "http"`: the runbooks' `curl -f …/health` checks, through reqwest.
//!
//! Settings: `url` (placeholders only in the path or query, never the host),
//! `method` (GET, HEAD or POST; default GET), `expect_status` (default: any
//! 2xx), `body_contains`, `timeout` (default 10s). GET and HEAD are read-only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Backend, Configured, Outcome, Step, Values, fill};

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
    #[serde(default, with = "crate::time::duration_text")]
    timeout: Option<Duration>,
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

/// An `http` action's settings, checked.
#[derive(Debug)]
struct Http {
    url: String,
    method: reqwest::Method,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    timeout: Duration,
}

impl Backend for HttpBackend {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn configure(
        &self,
        table: &toml::Table,
        params: &[String],
    ) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let s: Settings = super::settings_of(table)?;
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
        problems.extend(super::unknown_placeholders("url", &s.url, params));
        let method = match s.method.as_str() {
            "GET" => Some(reqwest::Method::GET),
            "HEAD" => Some(reqwest::Method::HEAD),
            "POST" => Some(reqwest::Method::POST),
            other => {
                problems.push((
                    "method".into(),
                    format!("`{other}` must be GET, HEAD or POST"),
                ));
                None
            }
        };
        match method {
            Some(method) if problems.is_empty() => Ok(Arc::new(Http {
                url: s.url,
                method,
                expect_status: s.expect_status,
                body_contains: s.body_contains,
                timeout: s.timeout.unwrap_or(Duration::from_secs(10)),
            })),
            _ => Err(problems),
        }
    }
}

impl Configured for Http {
    fn read_only(&self) -> bool {
        self.method != reqwest::Method::POST
    }

    fn prepare(&self, values: &Values) -> Result<Box<dyn Step>, String> {
        let url = fill(&self.url, values)?;
        Ok(Box::new(HttpStep {
            timeout: self.timeout,
            target: authority(&url).to_string(),
            url,
            method: self.method.clone(),
            expect_status: self.expect_status,
            body_contains: self.body_contains.clone(),
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
