//! `kind = "http"`: the runbooks' `curl -f …/health` checks, through reqwest.
//!
//! Settings: `url` (placeholders only in the path or query, never the host),
//! `method` (GET, HEAD or POST; default GET), `expect_status` (default: any
//! 2xx), `body_contains`, `timeout` (default 10s), `follow_redirects`
//! (default false; when true, only to the same scheme, host and port). GET
//! and HEAD are read-only.
//!
//! The URL is parsed at config load with a real URL parser (the WHATWG rules
//! browsers and reqwest follow), and its scheme, host and port are fixed
//! there: the template is parsed twice with different stand-ins for its
//! placeholders, and both must name the same origin (`http:///{host}/x` does
//! not: the parser takes the first path segment for the host). Each value is
//! then percent-encoded for where it lands: a path segment (`/`, `?`, `#`,
//! `%` encoded, `.` and `..` refused, so it cannot climb out of the path) or
//! a query value; the filled URL's origin is checked again before the call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use std::collections::BTreeMap;

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
    #[serde(default)]
    follow_redirects: bool,
}

/// What a path segment value keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL with every placeholder replaced by `stand_in`, parsed.
fn parse_with(template: &str, stand_in: &str) -> Result<reqwest::Url, String> {
    let names = super::placeholders(template);
    let mut values = Values::new();
    for n in names {
        values.insert(n, stand_in.to_string());
    }
    let text = super::fill(template, &values)?;
    reqwest::Url::parse(&text).map_err(|e| format!("`{template}` is not a valid URL: {e}"))
}

/// `scheme://host:port`: the part no placeholder may fill.
fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// Where a placeholder's value lands, which decides how it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    PathSegment,
    Query,
}

/// An `http` action's settings, checked.
#[derive(Debug)]
struct Http {
    url: String,
    /// `scheme://host:port`, fixed by the template.
    origin: String,
    /// Each placeholder's position.
    positions: BTreeMap<String, Position>,
    method: reqwest::Method,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    timeout: Duration,
    follow_redirects: bool,
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
        let mut fixed_origin = String::new();
        match (parse_with(&s.url, "a"), parse_with(&s.url, "b")) {
            (Ok(a), Ok(b)) => {
                if !matches!(a.scheme(), "http" | "https") {
                    problems.push(("url".into(), format!("`{}` is not an http(s) URL", s.url)));
                } else if origin(&a) != origin(&b) || a.host_str().is_none() {
                    problems.push((
                        "url".into(),
                        "placeholders may fill only the path or query, never the scheme, host or port"
                            .into(),
                    ));
                } else if !a.username().is_empty() || a.password().is_some() {
                    problems.push((
                        "url".into(),
                        "credentials do not belong in the URL (they would show in approvals and the audit log)"
                            .into(),
                    ));
                } else {
                    fixed_origin = origin(&a);
                }
            }
            (Err(e), _) | (_, Err(e)) => problems.push(("url".into(), e)),
        }
        let query_at = s.url.find('?').unwrap_or(s.url.len());
        if s.url.contains('#') {
            problems.push((
                "url".into(),
                "a fragment (`#…`) is never sent to the server; leave it out".into(),
            ));
        }
        let mut positions = BTreeMap::new();
        let mut rest = s.url.as_str();
        let mut offset = 0;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = rest[start + 1..start + len].to_string();
            let at = offset + start;
            let position = if at > query_at {
                if !s.url[..at].ends_with('=') {
                    problems.push((
                        "url".into(),
                        format!("`{{{name}}}` in the query must be a value (`?key={{{name}}}`), never a key"),
                    ));
                }
                Position::Query
            } else {
                // In the path, a placeholder must be a whole segment of its own.
                let before = &s.url[..at];
                let after = &s.url[at + len + 1..];
                if !before.ends_with('/') || !(after.is_empty() || after.starts_with(['/', '?'])) {
                    problems.push((
                        "url".into(),
                        format!("`{{{name}}}` must be a whole path segment (`/{{{name}}}/`) or a query value"),
                    ));
                }
                Position::PathSegment
            };
            positions.insert(name, position);
            offset = at + len + 1;
            rest = &s.url[offset..];
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
                origin: fixed_origin,
                positions,
                method,
                expect_status: s.expect_status,
                body_contains: s.body_contains,
                timeout: s.timeout.unwrap_or(Duration::from_secs(10)),
                follow_redirects: s.follow_redirects,
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
        let mut encoded = Values::new();
        for (name, value) in values {
            let e = match self.positions.get(name) {
                Some(Position::PathSegment) => {
                    if value.is_empty() || value == "." || value == ".." {
                        return Err(format!(
                            "`{value}` cannot be a path segment of the URL (it would leave the configured path)"
                        ));
                    }
                    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
                }
                Some(Position::Query) => {
                    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
                }
                None => value.clone(),
            };
            encoded.insert(name.clone(), e);
        }
        let url = fill(&self.url, &encoded)?;
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("the filled URL is not valid: {e}"))?;
        if origin(&parsed) != self.origin {
            return Err(format!(
                "the filled URL points at {} instead of {}",
                origin(&parsed),
                self.origin
            ));
        }
        Ok(Box::new(HttpStep {
            timeout: self.timeout,
            target: self.origin.clone(),
            url: parsed.to_string(),
            method: self.method.clone(),
            expect_status: self.expect_status,
            body_contains: self.body_contains.clone(),
            follow_redirects: self.follow_redirects,
        }))
    }
}

struct HttpStep {
    url: String,
    follow_redirects: bool,
    method: reqwest::Method,
    expect_status: Option<u16>,
    body_contains: Option<String>,
    timeout: Duration,
    target: String,
}

impl Step for HttpStep {
    fn describe(&self) -> String {
        format!(
            "HTTP {} {} expecting {}{} ({}timeout {})",
            self.method,
            self.url,
            self.expect_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "2xx".into()),
            self.body_contains
                .as_ref()
                .map(|b| format!(" and a body containing {b:?}"))
                .unwrap_or_default(),
            if self.follow_redirects {
                "redirects followed on the same host, "
            } else {
                "redirects not followed, "
            },
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
            // Redirects: none by default; on request, only to the same origin
            // (a redirect elsewhere, e.g. to a cloud metadata address, stops).
            let policy = if self.follow_redirects {
                let from = reqwest::Url::parse(&self.url)
                    .map(|u| origin(&u))
                    .unwrap_or_default();
                reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() >= 5 || origin(attempt.url()) != from {
                        attempt.stop()
                    } else {
                        attempt.follow()
                    }
                })
            } else {
                reqwest::redirect::Policy::none()
            };
            let client = match reqwest::Client::builder()
                .timeout(self.timeout)
                .redirect(policy)
                .build()
            {
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
                    let location = r
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .map(crate::incident::single_line);
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
                    if status.is_redirection()
                        && let Some(to) = location
                    {
                        summary.push_str(&format!(" (a redirect to {to} was not followed)"));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::tests::values;

    fn configure(url: &str) -> Result<Arc<dyn Configured>, Vec<(String, String)>> {
        let table: toml::Table = toml::from_str(&format!("url = {:?}", url)).expect("toml");
        HttpBackend.configure(&table, &["host".to_string(), "svc".to_string()])
    }

    #[test]
    fn a_placeholder_can_never_choose_the_host_whatever_the_url_looks_like() {
        for url in [
            "http:///{host}/health",
            "http://{host}/health",
            "http://{host}.example.com/health",
            "http://example.com:{host}/health",
            "https://{host}@example.com/health",
            "{host}://example.com/health",
        ] {
            assert!(configure(url).is_err(), "{url} must be refused");
        }
        assert!(configure("http://127.0.0.1:8001/api/{svc}/health?verbose={host}").is_ok());
        assert!(
            configure("http://127.0.0.1:8001/api/x{svc}/health").is_err(),
            "a placeholder is a whole path segment"
        );
        assert!(
            configure("http://127.0.0.1:8001/api?{svc}").is_err(),
            "a placeholder in the query is a value, never a key"
        );
    }

    #[test]
    fn a_value_cannot_climb_out_of_its_path_segment_or_break_out_of_its_query_value() {
        let action =
            configure("http://127.0.0.1:8001/api/{svc}/health?verbose={host}").expect("ok");
        for bad in ["..", "."] {
            assert!(
                action
                    .prepare(&values(&[("svc", bad), ("host", "1")]))
                    .is_err(),
                "{bad}"
            );
        }
        let step = action
            .prepare(&values(&[
                ("svc", "%2e%2e/admin"),
                ("host", "1&drop=all#x"),
            ]))
            .expect("encoded");
        let d = step.describe();
        assert!(
            d.contains("/api/%252e%252e%2Fadmin/health?verbose=1%26drop%3Dall%23x"),
            "{d}"
        );
        assert_eq!(step.target(), "http://127.0.0.1:8001");
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_never_followed() {
        use axum::routing::get;
        // As `klaxon serve` does at start: reqwest needs a TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new().route(
            "/health",
            get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/latest/meta-data/iam/")],
                )
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        for follow in [false, true] {
            let table: toml::Table = toml::from_str(&format!(
                "url = \"http://127.0.0.1:{port}/health\"\nfollow_redirects = {follow}"
            ))
            .expect("toml");
            let action = HttpBackend.configure(&table, &[]).expect("ok");
            let outcome = action.prepare(&Values::new()).expect("step").run().await;
            assert!(!outcome.success, "follow_redirects = {follow}: {outcome:?}");
            assert!(
                outcome.summary.contains("HTTP 302") && outcome.summary.contains("169.254.169.254"),
                "{}",
                outcome.summary
            );
        }
    }
}
